// Package objstore moves run and capture directories to and from
// S3-compatible object storage (AWS S3, MinIO, Ceph, R2, ...), so that the
// shards of a run on several machines can write to one place and analyze
// can read them from there. A location is s3://BUCKET/PREFIX; the files of
// a directory become the objects PREFIX/NAME. An object is written by one
// PUT, or past 16 MiB by a multipart upload that the store shows only once
// completed, so a reader sees it whole or not at all, as the local writers'
// .inprogress rename gives on disk; files still being written (.inprogress)
// are never uploaded.
//
// The endpoint and credentials come from the standard AWS environment:
// AWS_ENDPOINT_URL_S3 or AWS_ENDPOINT_URL (default: AWS), AWS_REGION or
// AWS_DEFAULT_REGION, AWS_ACCESS_KEY_ID / AWS_SECRET_ACCESS_KEY /
// AWS_SESSION_TOKEN, then the shared credentials file
// (AWS_SHARED_CREDENTIALS_FILE, ~/.aws/credentials; AWS_PROFILE), then the
// instance's IAM role.
package objstore

import (
	"context"
	"errors"
	"fmt"
	"net/url"
	"os"
	"path"
	"path/filepath"
	"slices"
	"sort"
	"strings"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// Scheme is the prefix of an object storage location.
const Scheme = "s3://"

// IsURL says whether s names object storage rather than a local path.
func IsURL(s string) bool { return strings.HasPrefix(s, Scheme) }

// Location is a parsed s3://BUCKET/PREFIX; Prefix has no leading or
// trailing slash.
type Location struct{ Bucket, Prefix string }

func (l Location) String() string {
	if l.Prefix == "" {
		return Scheme + l.Bucket
	}
	return Scheme + l.Bucket + "/" + l.Prefix
}

// key is the object name of rel (slash-separated) under the prefix.
func (l Location) key(rel string) string {
	if l.Prefix == "" {
		return rel
	}
	return l.Prefix + "/" + rel
}

// Parse reads s3://BUCKET/PREFIX.
func Parse(s string) (Location, error) {
	if !IsURL(s) {
		return Location{}, fmt.Errorf("%q: want s3://BUCKET/PREFIX", s)
	}
	bucket, prefix, _ := strings.Cut(strings.TrimPrefix(s, Scheme), "/")
	prefix = strings.Trim(prefix, "/")
	if bucket == "" || strings.Contains(prefix, "//") || slices.Contains(strings.Split(prefix, "/"), "..") {
		return Location{}, fmt.Errorf("%q: want s3://BUCKET/PREFIX", s)
	}
	return Location{Bucket: bucket, Prefix: prefix}, nil
}

// Store is a client of one S3-compatible endpoint.
type Store struct{ c *minio.Client }

// FromEnv makes the client the AWS environment describes (package doc).
func FromEnv() (*Store, error) {
	raw := firstEnv("AWS_ENDPOINT_URL_S3", "AWS_ENDPOINT_URL")
	region := firstEnv("AWS_REGION", "AWS_DEFAULT_REGION")
	host, secure, lookup := "s3.amazonaws.com", true, minio.BucketLookupAuto
	if raw != "" {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" || (u.Scheme != "http" && u.Scheme != "https") {
			return nil, fmt.Errorf("AWS_ENDPOINT_URL %q: want http(s)://HOST[:PORT]", raw)
		}
		// Self-hosted stores (MinIO, Ceph) name the bucket in the path.
		host, secure, lookup = u.Host, u.Scheme == "https", minio.BucketLookupPath
	} else if region != "" {
		host = "s3." + region + ".amazonaws.com"
	}
	creds := credentials.NewChainCredentials([]credentials.Provider{
		&credentials.EnvAWS{},
		&credentials.FileAWSCredentials{Filename: os.Getenv("AWS_SHARED_CREDENTIALS_FILE")},
		&credentials.IAM{},
	})
	c, err := minio.New(host, &minio.Options{Creds: creds, Secure: secure, Region: region, BucketLookup: lookup})
	if err != nil {
		return nil, fmt.Errorf("object storage %s: %w", host, err)
	}
	return &Store{c: c}, nil
}

func firstEnv(names ...string) string {
	for _, n := range names {
		if v := os.Getenv(n); v != "" {
			return v
		}
	}
	return ""
}

// Upload puts every file under dir (recursively) at loc, keeping the
// relative paths; files being written (.inprogress) are left out. It
// returns the number of objects written.
func (s *Store) Upload(ctx context.Context, dir string, loc Location) (int, error) {
	n := 0
	err := filepath.WalkDir(dir, func(p string, d os.DirEntry, err error) error {
		if err != nil || d.IsDir() || strings.HasSuffix(p, ".inprogress") {
			return err
		}
		rel, err := filepath.Rel(dir, p)
		if err != nil {
			return err
		}
		if _, err := s.c.FPutObject(ctx, loc.Bucket, loc.key(filepath.ToSlash(rel)), p, minio.PutObjectOptions{}); err != nil {
			return fmt.Errorf("upload %s to %s: %w", p, loc.String()+"/"+filepath.ToSlash(rel), err)
		}
		n++
		return nil
	})
	return n, err
}

// Errors that say the location is wrong rather than the store failing.
var (
	ErrEmpty    = errors.New("no objects there") // nothing under the location
	ErrNoBucket = errors.New("no such bucket")   // the location's bucket does not exist
)

// listErr is a listing's error naming loc; a missing bucket (the store's
// NoSuchBucket) becomes ErrNoBucket.
func listErr(loc Location, err error) error {
	if minio.ToErrorResponse(err).Code == "NoSuchBucket" {
		return fmt.Errorf("%s: %w", loc, ErrNoBucket)
	}
	return fmt.Errorf("list %s: %w", loc, err)
}

// Download gets every object under loc into dir, keeping the paths below
// the prefix, and returns their relative paths, sorted.
func (s *Store) Download(ctx context.Context, loc Location, dir string) ([]string, error) {
	prefix := ""
	if loc.Prefix != "" {
		prefix = loc.Prefix + "/"
	}
	var got []string
	for obj := range s.c.ListObjects(ctx, loc.Bucket, minio.ListObjectsOptions{Prefix: prefix, Recursive: true}) {
		if obj.Err != nil {
			return nil, listErr(loc, obj.Err)
		}
		rel := strings.TrimPrefix(obj.Key, prefix)
		if rel == "" || strings.HasSuffix(rel, "/") || strings.HasSuffix(rel, ".inprogress") {
			continue
		}
		clean := path.Clean(rel)
		if clean == ".." || strings.HasPrefix(clean, "../") || path.IsAbs(clean) {
			return nil, fmt.Errorf("%s: object %q leaves the prefix", loc, obj.Key)
		}
		if err := s.c.FGetObject(ctx, loc.Bucket, obj.Key, filepath.Join(dir, filepath.FromSlash(clean)), minio.GetObjectOptions{}); err != nil {
			return nil, fmt.Errorf("download %s: %w", Scheme+loc.Bucket+"/"+obj.Key, err)
		}
		got = append(got, clean)
	}
	if len(got) == 0 {
		return nil, fmt.Errorf("%s: %w", loc, ErrEmpty)
	}
	sort.Strings(got)
	return got, nil
}

func (l Location) listPrefix() string {
	if l.Prefix == "" {
		return ""
	}
	return l.Prefix + "/"
}

// Used says whether any object is under loc.
func (s *Store) Used(ctx context.Context, loc Location) (bool, error) {
	ctx, cancel := context.WithCancel(ctx)
	defer cancel() // stops the listing after the first object
	for obj := range s.c.ListObjects(ctx, loc.Bucket, minio.ListObjectsOptions{Prefix: loc.listPrefix(), Recursive: true, MaxKeys: 1}) {
		if obj.Err != nil {
			return false, listErr(loc, obj.Err)
		}
		return true, nil
	}
	return false, nil
}

// Clear removes every object under loc (an earlier run's files, before a
// forced rerun writes there).
func (s *Store) Clear(ctx context.Context, loc Location) error {
	objs := s.c.ListObjects(ctx, loc.Bucket, minio.ListObjectsOptions{Prefix: loc.listPrefix(), Recursive: true})
	for e := range s.c.RemoveObjects(ctx, loc.Bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return fmt.Errorf("remove %s/%s: %w", loc, e.ObjectName, e.Err)
		}
	}
	return nil
}

// Put uploads one file as the object rel under loc.
func (s *Store) Put(ctx context.Context, loc Location, rel, file string) error {
	if _, err := s.c.FPutObject(ctx, loc.Bucket, loc.key(rel), file, minio.PutObjectOptions{}); err != nil {
		return fmt.Errorf("upload %s to %s/%s: %w", file, loc, rel, err)
	}
	return nil
}
