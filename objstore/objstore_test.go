package objstore

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"

	"github.com/minio/minio-go/v7"

	"github.com/loadtape/loadtape/internal/s3test"
)

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
	s3test.Start(t, "runs")
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
	if _, err := st.Download(ctx, nob, t.TempDir()); !errors.Is(err, ErrNoBucket) || !strings.Contains(err.Error(), "s3://nobucket/x") {
		t.Errorf("missing bucket: %v, want ErrNoBucket naming it", err)
	}
	if _, err := st.Used(ctx, nob); !errors.Is(err, ErrNoBucket) {
		t.Errorf("missing bucket, Used: %v, want ErrNoBucket", err)
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

// TestLargeFileRoundTrip uploads a file past the client's single-PUT size
// (16 MiB), which goes up as a multipart upload: it comes back byte for
// byte, and no unfinished upload is left in the bucket.
func TestLargeFileRoundTrip(t *testing.T) {
	srv := s3test.Start(t, "runs")
	if !srv.Real {
		// gofakes3 stores a streamed part with its aws-chunked signatures.
		t.Skip("the fake corrupts multipart uploads; this needs SeaweedFS")
	}
	st, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	src := t.TempDir()
	body := make([]byte, 17<<20+123)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range body {
		body[i] = byte(rng.Uint32())
	}
	if err := os.WriteFile(filepath.Join(src, "exchanges-1.parquet"), body, 0o644); err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	loc, _ := Parse("s3://runs/big")
	if n, err := st.Upload(ctx, src, loc); err != nil || n != 1 {
		t.Fatalf("upload: %d, %v", n, err)
	}
	dst := t.TempDir()
	if _, err := st.Download(ctx, loc, dst); err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(filepath.Join(dst, "exchanges-1.parquet"))
	if err != nil || !bytes.Equal(got, body) {
		t.Fatalf("downloaded %d bytes (%v), want the %d uploaded", len(got), err, len(body))
	}
	for u := range srv.Client.ListIncompleteUploads(ctx, "runs", "big/", true) {
		t.Errorf("unfinished upload left: %+v", u)
	}
}

// TestUsedAndClearStayInTheirPrefix: a prefix is a folder, not a string
// prefix: job-1 is not used by job-10's objects, and clearing job-1 leaves
// job-10 and its parent's own objects alone.
func TestUsedAndClearStayInTheirPrefix(t *testing.T) {
	s3test.Start(t, "runs")
	st, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	file := filepath.Join(t.TempDir(), "run.json")
	if err := os.WriteFile(file, []byte(`{}`), 0o644); err != nil {
		t.Fatal(err)
	}
	job1, _ := Parse("s3://runs/r/job-1")
	job10, _ := Parse("s3://runs/r/job-10")
	parent, _ := Parse("s3://runs/r")
	if used, err := st.Used(ctx, job1); used || err != nil {
		t.Fatalf("an empty bucket: used %v, %v", used, err)
	}
	for _, rel := range []string{"run.json", "sub/run.json"} {
		if err := st.Put(ctx, job10, rel, file); err != nil {
			t.Fatal(err)
		}
	}
	if err := st.Put(ctx, parent, "index.json", file); err != nil {
		t.Fatal(err)
	}
	if used, err := st.Used(ctx, job1); used || err != nil {
		t.Errorf("job-1 with only job-10's objects: used %v, %v", used, err)
	}
	if err := st.Put(ctx, job1, "run.json", file); err != nil {
		t.Fatal(err)
	}
	if used, err := st.Used(ctx, job1); !used || err != nil {
		t.Errorf("job-1 holding run.json: used %v, %v", used, err)
	}
	if err := st.Clear(ctx, job1); err != nil {
		t.Fatal(err)
	}
	if used, _ := st.Used(ctx, job1); used {
		t.Error("job-1 still used after Clear")
	}
	got, err := st.Download(ctx, parent, t.TempDir())
	if want := []string{"index.json", "job-10/run.json", "job-10/sub/run.json"}; err != nil || !slices.Equal(got, want) {
		t.Errorf("after clearing job-1: %v, %v; want %v", got, err, want)
	}
}

// TestUnfinishedUploadIsInvisible: while a multipart upload (a file over
// 16 MiB) is still going, a reader of the prefix sees nothing of it, not
// a part and not the store's own bookkeeping of the upload; once completed
// it is there whole.
func TestUnfinishedUploadIsInvisible(t *testing.T) {
	srv := s3test.Start(t, "runs")
	if !srv.Real {
		t.Skip("the fake corrupts multipart uploads; this needs SeaweedFS")
	}
	st, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	core := minio.Core{Client: srv.Client}
	id, err := core.NewMultipartUpload(ctx, "runs", "up/exchanges-1.parquet", minio.PutObjectOptions{})
	if err != nil {
		t.Fatal(err)
	}
	part := bytes.Repeat([]byte("p"), 5<<20) // the least a part but the last may hold
	p1, err := core.PutObjectPart(ctx, "runs", "up/exchanges-1.parquet", id, 1, bytes.NewReader(part), int64(len(part)), minio.PutObjectPartOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, loc := range []Location{{"runs", "up"}, {"runs", ""}} {
		if got, err := st.Download(ctx, loc, t.TempDir()); !errors.Is(err, ErrEmpty) {
			t.Errorf("%s during the upload: %v, %v; want nothing there", loc, got, err)
		}
		if used, err := st.Used(ctx, loc); used || err != nil {
			t.Errorf("%s during the upload: used %v, %v", loc, used, err)
		}
	}
	if _, err := core.CompleteMultipartUpload(ctx, "runs", "up/exchanges-1.parquet", id,
		[]minio.CompletePart{{PartNumber: 1, ETag: p1.ETag}}, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	dst := t.TempDir()
	if got, err := st.Download(ctx, Location{"runs", ""}, dst); err != nil || !slices.Equal(got, []string{"up/exchanges-1.parquet"}) {
		t.Fatalf("after the upload: %v, %v", got, err)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, "up", "exchanges-1.parquet")); !bytes.Equal(b, part) {
		t.Errorf("got %d bytes, want the %d uploaded", len(b), len(part))
	}
}

// TestDownloadPastOnePage: a listing answers at most 1,000 keys a page; a
// long recording's prefix (a file per --roll) holds more, and Download must
// follow the continuation to get every one.
func TestDownloadPastOnePage(t *testing.T) {
	if testing.Short() {
		t.Skip("puts 1,050 objects")
	}
	srv := s3test.Start(t, "runs")
	st, err := FromEnv()
	if err != nil {
		t.Fatal(err)
	}
	ctx := context.Background()
	const n = 1050
	var want []string
	var wg sync.WaitGroup
	errs := make(chan error, n)
	sem := make(chan struct{}, 16)
	for i := range n {
		name := fmt.Sprintf("exchanges-%04d.parquet", i)
		want = append(want, name)
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if _, err := srv.Client.PutObject(ctx, "runs", "long/"+name, strings.NewReader(name), int64(len(name)), minio.PutObjectOptions{}); err != nil {
				errs <- err
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	dst := t.TempDir()
	got, err := st.Download(ctx, Location{"runs", "long"}, dst)
	if err != nil || !slices.Equal(got, want) {
		t.Fatalf("downloaded %d names (%v), want the %d put", len(got), err, n)
	}
	if b, _ := os.ReadFile(filepath.Join(dst, want[n-1])); string(b) != want[n-1] {
		t.Errorf("%s holds %q", want[n-1], b)
	}
}
