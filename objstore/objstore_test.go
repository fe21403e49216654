package objstore

import (
	"context"
	"errors"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
)

// Fake starts an in-memory S3 server on 127.0.0.1 with the given buckets
// and points the AWS environment of this process at it.
func fakeS3(t *testing.T, buckets ...string) {
	t.Helper()
	be := s3mem.New()
	for _, b := range buckets {
		if err := be.CreateBucket(b); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(gofakes3.New(be).Server())
	t.Cleanup(srv.Close)
	t.Setenv("AWS_ENDPOINT_URL", srv.URL)
	t.Setenv("AWS_REGION", "us-east-1")
	t.Setenv("AWS_ACCESS_KEY_ID", "test")
	t.Setenv("AWS_SECRET_ACCESS_KEY", "test-secret")
}

func TestParse(t *testing.T) {
	for in, want := range map[string]Location{
		"s3://b":                {"b", ""},
		"s3://b/":               {"b", ""},
		"s3://b/runs/job-1/":    {"b", "runs/job-1"},
		"s3://b/runs/job-1/s-0": {"b", "runs/job-1/s-0"},
	} {
		got, err := Parse(in)
		if err != nil || got != want {
			t.Errorf("%q: %+v, %v; want %+v", in, got, err, want)
		}
	}
	for _, bad := range []string{"b/x", "s3://", "s3:///x", "s3://b/a//c", "s3://b/a/../c", "/tmp/x"} {
		if _, err := Parse(bad); err == nil {
			t.Errorf("%q accepted", bad)
		}
	}
}

func TestUploadDownload(t *testing.T) {
	fakeS3(t, "runs")
	st, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	files := map[string]string{"run.json": `{"id":"r"}`, "results-1.parquet": "PAR1...", "sub/samples-1.parquet": "PAR1 samples"}
	for name, body := range files {
		p := filepath.Join(src, filepath.FromSlash(name))
		_ = os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	// Being written: never uploaded.
	if err := os.WriteFile(filepath.Join(src, "results-2.parquet.inprogress"), []byte("half"), 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	loc, _ := Parse("s3://runs/job-1/shard-0")
	n, err := st.Upload(ctx, src, loc)
	if err != nil || n != 3 {
		t.Fatalf("upload: %d objects, %v; want 3", n, err)
	}
	dst := t.TempDir()
	whole, _ := Parse("s3://runs/job-1")
	got, err := st.Download(ctx, whole, dst)
	want := []string{"shard-0/results-1.parquet", "shard-0/run.json", "shard-0/sub/samples-1.parquet"}
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("download: %v, %v; want %v", got, err, want)
	}
	for name, body := range files {
		b, err := os.ReadFile(filepath.Join(dst, "shard-0", filepath.FromSlash(name)))
		if err != nil || string(b) != body {
			t.Errorf("%s: %q, %v; want %q", name, b, err, body)
		}
	}

	// A prefix with nothing under it, and a bucket that does not exist.
	empty, _ := Parse("s3://runs/job-2")
	if _, err := st.Download(ctx, empty, t.TempDir()); !errors.Is(err, ErrEmpty) || !strings.Contains(err.Error(), "s3://runs/job-2") {
		t.Errorf("empty prefix: %v", err)
	}
	nob, _ := Parse("s3://nobucket/x")
	if _, err := st.Download(ctx, nob, t.TempDir()); err == nil || errors.Is(err, ErrEmpty) {
		t.Errorf("missing bucket: %v", err)
	}
	if _, err := st.Upload(ctx, src, nob); err == nil || !strings.Contains(err.Error(), "s3://nobucket/x/") {
		t.Errorf("upload to a missing bucket: %v", err)
	}
}

func TestFromEnvBadEndpoint(t *testing.T) {
	t.Setenv("AWS_ENDPOINT_URL", "minio:9000")
	if _, err := FromEnv(); err == nil || !strings.Contains(err.Error(), "AWS_ENDPOINT_URL") {
		t.Errorf("%v", err)
	}
}
