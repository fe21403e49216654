package s3test

import (
	"context"
	"os"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

func TestMain(m *testing.M) {
	code := m.Run()
	Stop()
	os.Exit(code)
}

// TestServerChecksWhoAsks: the store holds the buckets, empty at every
// Start; it refuses a wrong secret, an unsigned request and a bucket
// nobody made, as AWS does; Stop ends the process.
func TestServerChecksWhoAsks(t *testing.T) {
	s := Start(t, "alpha")
	ctx := context.Background()
	if _, err := s.Client.PutObject(ctx, "alpha", "a/b", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err != nil {
		t.Fatal(err)
	}
	s = Start(t, "alpha")
	for o := range s.Client.ListObjects(ctx, "alpha", minio.ListObjectsOptions{Recursive: true}) {
		t.Errorf("a second Start left %q (%v) in the bucket", o.Key, o.Err)
	}
	if !s.Real {
		t.Skip("the fake checks no signature")
	}
	host := strings.TrimPrefix(s.URL, "http://")
	for name, creds := range map[string]*credentials.Credentials{
		"a wrong secret": credentials.NewStaticV4(AccessKey, "wrong", ""),
		"no signature":   credentials.NewStaticV4("", "", ""),
	} {
		c, err := minio.New(host, &minio.Options{Creds: creds, Region: Region, BucketLookup: minio.BucketLookupPath})
		if err != nil {
			t.Fatal(err)
		}
		if _, err := c.PutObject(ctx, "alpha", "x", strings.NewReader("x"), 1, minio.PutObjectOptions{}); err == nil {
			t.Errorf("%s: the PUT was accepted", name)
		}
	}
	_, err := s.Client.PutObject(ctx, "nobody-made-it", "x", strings.NewReader("x"), 1, minio.PutObjectOptions{})
	if minio.ToErrorResponse(err).Code != "NoSuchBucket" {
		t.Errorf("PUT into a missing bucket: %v, want NoSuchBucket", err)
	}
	pid := shared.weed.cmd.Process.Pid
	began := time.Now()
	Stop()
	if err := syscall.Kill(pid, 0); err == nil {
		t.Errorf("weed (pid %d) still running after Stop", pid)
	}
	t.Logf("stopped in %v", time.Since(began).Round(time.Millisecond))
}
