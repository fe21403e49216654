// Package s3test starts a real S3-compatible server for tests: SeaweedFS's
// `weed server` (master, volume server, filer and S3 gateway in one
// process) on 127.0.0.1, built from source by `make seaweedfs` into
// bin/tools/weed. One server is started per test process, at the first
// Start (~14 s here, mostly until weed has grown its first volumes), and
// shared by the package's tests: each Start empties the buckets it names,
// so a test sees only its own objects (tests that share a bucket must not
// run in parallel). TestMain calls Stop; if it does not, weed is killed
// when the test process exits (Pdeathsig) and leaves its temporary
// directory behind.
//
// The binary is looked for in $LOADTAPE_WEED, then bin/tools/weed of this
// repository, then weed on PATH. In CI (CI set) a missing binary fails the
// test: CI builds it, so its absence is a broken build. Elsewhere the test
// runs against gofakes3, an in-memory fake, and logs that it does:
// Server.Real tells a test which one it got.
package s3test

import (
	"bytes"
	"context"
	"fmt"
	"net"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/johannesboyne/gofakes3"
	"github.com/johannesboyne/gofakes3/backend/s3mem"
	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
)

// The identity the server knows and the region the clients sign for.
const (
	AccessKey = "loadtape-test"
	SecretKey = "loadtape-test-secret-key"
	Region    = "us-east-1"
)

// How long the server may take to answer a first write (weed grows its
// first volumes then), and to stop.
const (
	StartTimeout = 60 * time.Second
	StopTimeout  = 10 * time.Second
)

// Server is one started store.
type Server struct {
	URL    string        // http://127.0.0.1:PORT, the S3 endpoint
	Real   bool          // SeaweedFS; false: the in-memory fake
	Client *minio.Client // a client of URL with the test identity
}

// Binary returns the path of the weed binary, or "" if there is none.
func Binary() string {
	if p := os.Getenv("LOADTAPE_WEED"); p != "" {
		return p
	}
	_, file, _, _ := runtime.Caller(0)
	if p := filepath.Join(filepath.Dir(file), "..", "..", "bin", "tools", "weed"); isExec(p) {
		return p
	}
	// Built with -trimpath, file names no directory: the tests run in
	// their package's directory, below the module root.
	for dir, _ := os.Getwd(); dir != "" && dir != filepath.Dir(dir); dir = filepath.Dir(dir) {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			if p := filepath.Join(dir, "bin", "tools", "weed"); isExec(p) {
				return p
			}
			break
		}
	}
	if p, err := exec.LookPath("weed"); err == nil {
		return p
	}
	return ""
}

func isExec(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir() && st.Mode()&0o111 != 0
}

// Start returns the shared store (started at the first call) holding the
// buckets, each one empty, and points this process's AWS environment at it
// (t.Setenv, so the binaries a test starts inherit it).
func Start(t testing.TB, buckets ...string) *Server {
	t.Helper()
	var s *Server
	if bin := Binary(); bin != "" {
		shared.once.Do(func() { shared.weed, shared.err = startWeed(bin) })
		if shared.err != nil {
			t.Fatal(shared.err)
		}
		s = shared.weed.Server
	} else {
		if os.Getenv("CI") != "" {
			t.Fatal("SeaweedFS's weed binary not found ($LOADTAPE_WEED, bin/tools/weed, PATH); CI must build it with `make seaweedfs`")
		}
		t.Log("SeaweedFS's weed binary not found ($LOADTAPE_WEED, bin/tools/weed, PATH; `make seaweedfs` builds it): using gofakes3, an in-memory fake S3")
		s = startFake(t)
	}
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": s.URL, "AWS_REGION": Region,
		"AWS_ACCESS_KEY_ID": AccessKey, "AWS_SECRET_ACCESS_KEY": SecretKey, "AWS_SHARED_CREDENTIALS_FILE": os.DevNull} {
		t.Setenv(k, v)
	}
	ctx, cancel := context.WithTimeout(context.Background(), StartTimeout)
	defer cancel()
	for _, b := range buckets {
		if !s.Real { // a new fake for every test
			if err := s.Client.MakeBucket(ctx, b, minio.MakeBucketOptions{Region: Region}); err != nil {
				t.Fatalf("bucket %s: %v", b, err)
			}
			continue
		}
		if err := s.fresh(ctx, b); err != nil {
			t.Fatalf("bucket %s: %v", b, err)
		}
	}
	return s
}

// fresh makes the bucket if it is missing, else removes every object and
// unfinished upload in it. A new bucket gets one object written and
// removed, so that its first volumes are grown now, not in the test.
func (s *Server) fresh(ctx context.Context, bucket string) error {
	ok, err := s.Client.BucketExists(ctx, bucket)
	if err != nil {
		return err
	}
	if !ok {
		if err := s.Client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: Region}); err != nil {
			return err
		}
		if _, err := s.Client.PutObject(ctx, bucket, "warm", strings.NewReader("ok"), 2, minio.PutObjectOptions{}); err != nil {
			return err
		}
	}
	for u := range s.Client.ListIncompleteUploads(ctx, bucket, "", true) {
		if u.Err != nil {
			return u.Err
		}
		if err := s.Client.RemoveIncompleteUpload(ctx, bucket, u.Key); err != nil {
			return err
		}
	}
	objs := s.Client.ListObjects(ctx, bucket, minio.ListObjectsOptions{Recursive: true})
	for e := range s.Client.RemoveObjects(ctx, bucket, objs, minio.RemoveObjectsOptions{}) {
		if e.Err != nil {
			return fmt.Errorf("remove %s: %w", e.ObjectName, e.Err)
		}
	}
	return nil
}

// shared is the process's weed, started by the first Start.
var shared struct {
	once sync.Once
	weed *weed
	err  error
}

// Stop stops the shared server, if one was started; TestMain calls it
// after m.Run.
func Stop() {
	if shared.weed != nil {
		shared.weed.stop()
	}
}

func client(url string) *minio.Client {
	c, err := minio.New(strings.TrimPrefix(url, "http://"), &minio.Options{
		Creds: credentials.NewStaticV4(AccessKey, SecretKey, ""), Region: Region, BucketLookup: minio.BucketLookupPath})
	if err != nil {
		panic(err) // only a malformed endpoint fails, and URL is ours
	}
	return c
}

func startFake(t testing.TB) *Server {
	srv := httptest.NewServer(gofakes3.New(s3mem.New()).Server())
	t.Cleanup(srv.Close)
	return &Server{URL: srv.URL, Client: client(srv.URL)}
}

// freePorts returns n distinct free loopback ports. All are held until
// every one is found, so none is handed out twice; another process may
// still take one before weed binds it (then the start fails and says so).
func freePorts(n int) ([]int, error) {
	var ports []int
	for range n {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			return nil, err
		}
		defer ln.Close()
		ports = append(ports, ln.Addr().(*net.TCPAddr).Port)
	}
	return ports, nil
}

// weed is a running `weed server`.
type weed struct {
	*Server
	dir      string
	cmd      *exec.Cmd
	exited   chan struct{}
	stopOnce sync.Once
}

func startWeed(bin string) (*weed, error) {
	// A short directory of its own: weed puts its Unix sockets there, and
	// a socket's path may not exceed 108 bytes.
	dir, err := os.MkdirTemp("", "loadtape-weed-")
	if err != nil {
		return nil, err
	}
	w := &weed{dir: dir, exited: make(chan struct{})}
	if err := w.start(bin); err != nil {
		w.stop()
		return nil, err
	}
	return w, nil
}

func (w *weed) start(bin string) error {
	identities := fmt.Sprintf(`{"identities":[{"name":"loadtape","credentials":[{"accessKey":%q,"secretKey":%q}],"actions":["Admin","Read","List","Tagging","Write"]}]}`, AccessKey, SecretKey)
	config := filepath.Join(w.dir, "s3.json")
	if err := os.WriteFile(config, []byte(identities), 0o600); err != nil {
		return err
	}
	data := filepath.Join(w.dir, "data")
	if err := os.Mkdir(data, 0o755); err != nil {
		return err
	}
	p, err := freePorts(8)
	if err != nil {
		return err
	}
	// -logtostderr: glog's files would go to /tmp, the log goes to weed.log.
	args := []string{"-logtostderr", "server", "-ip=127.0.0.1", "-ip.bind=127.0.0.1", "-dir=" + data,
		"-master.port=" + strconv.Itoa(p[0]), "-master.port.grpc=" + strconv.Itoa(p[1]),
		"-volume.port=" + strconv.Itoa(p[2]), "-volume.port.grpc=" + strconv.Itoa(p[3]),
		"-filer", "-filer.port=" + strconv.Itoa(p[4]), "-filer.port.grpc=" + strconv.Itoa(p[5]),
		"-filer.localSocket=" + filepath.Join(w.dir, "filer.sock"),
		"-s3", "-s3.port=" + strconv.Itoa(p[6]), "-s3.port.grpc=" + strconv.Itoa(p[7]),
		"-s3.localSocket=" + filepath.Join(w.dir, "s3.sock"),
		"-s3.port.iceberg=0", "-s3.port.lance=0", "-s3.config=" + config,
		// As AWS does: a PUT into a bucket nobody made fails (NoSuchBucket).
		"-s3.autoCreateBucket=false",
		// One master, no quorum to wait for; nothing sent off the machine.
		"-master.peers=none", "-master.telemetry=false",
		// Small volumes, enough of them for a few buckets (each bucket is a
		// collection that grows its own volumes), no wait when stopping.
		"-master.volumeSizeLimitMB=64", "-volume.max=64", "-volume.preStopSeconds=0",
	}
	logf, err := os.Create(filepath.Join(w.dir, "weed.log"))
	if err != nil {
		return err
	}
	w.cmd = exec.Command(bin, args...)
	w.cmd.Dir = w.dir // weed reads *.toml from its working directory: none there
	w.cmd.Stdout, w.cmd.Stderr = logf, logf
	// Its own process group, killed with the test process: Pdeathsig fires
	// when the thread that started it ends, so that thread is kept.
	w.cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	began := time.Now()
	started := make(chan error)
	go func() { // ends when weed exits; its OS thread is weed's parent till then
		runtime.LockOSThread()
		err := w.cmd.Start()
		started <- err
		if err == nil {
			_ = w.cmd.Wait()
		}
		logf.Close()
		close(w.exited)
	}()
	if err := <-started; err != nil {
		return fmt.Errorf("start %s: %w", bin, err)
	}
	url := "http://127.0.0.1:" + strconv.Itoa(p[6])
	w.Server = &Server{URL: url, Real: true, Client: client(url)}
	if err := w.ready(); err != nil {
		return fmt.Errorf("SeaweedFS (%s) not ready after %v: %w\n%s", bin, time.Since(began).Round(time.Millisecond), err, tail(filepath.Join(w.dir, "weed.log")))
	}
	return nil
}

// ready waits until the server takes a write: a bucket made, an object
// put, both removed. Listening alone is not enough: the gateway answers
// before the filer and the volume server can store anything.
func (w *weed) ready() error {
	deadline := time.Now().Add(StartTimeout)
	const probe = "loadtape-ready"
	var last error
	for time.Now().Before(deadline) {
		select {
		case <-w.exited:
			return fmt.Errorf("weed exited")
		default:
		}
		ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
		last = w.probe(ctx, probe)
		cancel()
		if last == nil {
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return last
}

func (s *Server) probe(ctx context.Context, bucket string) error {
	if ok, err := s.Client.BucketExists(ctx, bucket); err != nil {
		return err
	} else if !ok {
		if err := s.Client.MakeBucket(ctx, bucket, minio.MakeBucketOptions{Region: Region}); err != nil {
			return err
		}
	}
	if _, err := s.Client.PutObject(ctx, bucket, "probe", strings.NewReader("ok"), 2, minio.PutObjectOptions{}); err != nil {
		return err
	}
	return s.Client.RemoveObject(ctx, bucket, "probe", minio.RemoveObjectOptions{})
}

// stop ends weed's process group (SIGTERM, then SIGKILL if it has not
// exited within StopTimeout) and removes its directory.
func (w *weed) stop() {
	w.stopOnce.Do(func() {
		defer os.RemoveAll(w.dir)
		if w.cmd == nil || w.cmd.Process == nil {
			return
		}
		pgid := w.cmd.Process.Pid
		_ = syscall.Kill(-pgid, syscall.SIGTERM)
		select {
		case <-w.exited:
			return
		case <-time.After(StopTimeout):
		}
		fmt.Fprintf(os.Stderr, "s3test: weed did not stop within %v of SIGTERM: killed\n", StopTimeout)
		_ = syscall.Kill(-pgid, syscall.SIGKILL)
		select {
		case <-w.exited:
		case <-time.After(StopTimeout):
			fmt.Fprintf(os.Stderr, "s3test: weed (pid %d) still running %v after SIGKILL\n", pgid, StopTimeout)
		}
	})
}

// tail returns the log's last lines, for a failed start.
func tail(file string) string {
	b, _ := os.ReadFile(file)
	if len(b) > 4000 {
		b = b[len(b)-4000:]
	}
	return string(bytes.TrimSpace(b))
}
