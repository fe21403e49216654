package objstore

import (
	"os"
	"testing"

	"github.com/loadtape/loadtape/internal/s3test"
)

// The tests share one S3 server (internal/s3test), stopped here.
func TestMain(m *testing.M) {
	code := m.Run()
	s3test.Stop()
	os.Exit(code)
}
