// Package s3test gives tests an S3 server to work against: a real one
// when TERN_TEST_S3_ENDPOINT, TERN_TEST_S3_ACCESS_KEY and
// TERN_TEST_S3_SECRET_KEY are set (with TERN_TEST_S3_REGION and
// TERN_TEST_S3_BUCKET optional), and otherwise versitygw on a temporary
// directory, built from the project's tools/versitygw module and started
// on a free loopback port the first time a test of the process asks.
//
// The versitygw binary is built once per version of the tool module
// (its go.mod, go.sum and sources) and cached under the user cache
// directory (tern-test/versitygw-<hash>), so only the first run on a
// machine pays for the build (a few minutes, most of it compiling the
// AWS and Azure SDKs the gateway links). The server is one per test
// process, shared by its tests, with random keys; each test takes a
// bucket of its own (New), emptied and removed when the test ends. The
// server is killed when the test process exits, however it exits (a
// panic, a timeout, SIGKILL): on Linux it is started with a parent-death
// signal (see run_linux.go). Elsewhere only Stop ends it, which a TestMain
// calls after m.Run; a test process that is killed leaves it running. On
// Linux too, Stop ends it sooner and removes its directory; the
// directories that killed test processes leave behind are removed by the
// next test process that starts a server.
//
// When no server can be had for reasons outside the project (no go
// command to build versitygw, no network to fetch its modules), the tests
// that need one are skipped loudly, or fail under TERN_TEST_REQUIRE=1
// (see internal/testenv). Any other failure fails them.
package s3test

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"

	"github.com/tern-im/tern/internal/testenv"
)

// The variables that point the tests at a real S3 server.
const (
	EnvEndpoint  = "TERN_TEST_S3_ENDPOINT"   // e.g. https://s3.eu-west-1.amazonaws.com
	EnvAccessKey = "TERN_TEST_S3_ACCESS_KEY" // required with EnvEndpoint
	EnvSecretKey = "TERN_TEST_S3_SECRET_KEY" // required with EnvEndpoint
	EnvRegion    = "TERN_TEST_S3_REGION"     // default us-east-1
	// EnvBucket names an existing bucket the tests share, each under a
	// prefix of its own, for credentials that may not create buckets.
	EnvBucket = "TERN_TEST_S3_BUCKET"
)

// Region is the region of the versitygw server, and of a real server
// when EnvRegion is unset.
const Region = "us-east-1"

// versitygw is the module version tools/versitygw requires; it only names
// the binary in messages.
const versitygw = "versitygw v1.8.0"

// Config is what a test needs to reach S3: an endpoint URL
// (http://127.0.0.1:PORT for versitygw), keys, region, and from New a
// bucket and, for a shared bucket, a prefix.
type Config struct {
	Endpoint  string
	AccessKey string
	SecretKey string
	Region    string
	// Bucket is the test's bucket. New leaves a bucket of its own
	// uncreated, so that the code under test creates it; a shared one
	// (EnvBucket) exists.
	Bucket string
	// Prefix is "" for a bucket of the test's own, and a fresh
	// "tern-test-<random>/" in the shared bucket: every object of the
	// test must go under it.
	Prefix string
	// Shared reports a shared bucket (EnvBucket): the test must not
	// create or remove buckets.
	Shared bool
}

// server is what the first Endpoint call found; later calls reuse it.
var server struct {
	once   sync.Once
	mu     sync.Mutex // guards stop
	cfg    Config
	label  string // "S3 at <endpoint>" or "versitygw"
	bucket string // EnvBucket
	skip   string // why tests skip: no server, and not the project's fault
	fail   error  // why tests fail
	stop   func()
}

// Endpoint returns how to reach the test server, starting versitygw on
// the first call when no real S3 is configured; Bucket and Prefix are
// empty. It skips (or, in CI, fails) t when no server can be had.
func Endpoint(t testing.TB) Config {
	t.Helper()
	server.once.Do(setUp)
	switch {
	case server.fail != nil:
		t.Fatalf("s3test: %v", server.fail)
	case server.skip != "":
		testenv.Unavailable(t, "no S3 server to test against: %s; set %s, %s and %s to use an S3 server",
			server.skip, EnvEndpoint, EnvAccessKey, EnvSecretKey)
	}
	return server.cfg
}

// Label says what the server is, for messages; "" before the first
// Endpoint call.
func Label() string { return server.label }

// New returns the server with a bucket (or, for a shared bucket, a
// prefix) that no other test uses. When t ends, every object of the test
// is removed, and so is its bucket if it has one of its own.
func New(t testing.TB) Config {
	t.Helper()
	cfg := Endpoint(t)
	id := randomID()
	if server.bucket != "" {
		cfg.Bucket, cfg.Prefix, cfg.Shared = server.bucket, id+"/", true
	} else {
		cfg.Bucket = id
	}
	t.Cleanup(func() {
		if err := clean(cfg); err != nil {
			t.Errorf("s3test: cleaning up after the test: %v", err)
		}
	})
	return cfg
}

// Client returns a minio-go client for cfg, to look at what a test stored
// from outside the code under test.
func Client(t testing.TB, cfg Config) *minio.Client {
	t.Helper()
	c, err := newClient(cfg)
	if err != nil {
		t.Fatalf("s3test: %v", err)
	}
	return c
}

// randomID returns a bucket name (and prefix) no other test uses:
// lowercase, short, and unique on AWS too.
func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return "tern-test-" + hex.EncodeToString(b[:])
}

func newClient(cfg Config) (*minio.Client, error) {
	return newClientRetries(cfg, 0)
}

// newClientRetries is newClient with at most retries attempts per request
// (0: minio-go's default).
func newClientRetries(cfg Config, retries int) (*minio.Client, error) {
	scheme, host, ok := strings.Cut(cfg.Endpoint, "://")
	if !ok || (scheme != "http" && scheme != "https") {
		return nil, fmt.Errorf("endpoint %q: want http(s)://host[:port]", cfg.Endpoint)
	}
	return minio.New(strings.TrimSuffix(host, "/"), &minio.Options{
		Creds:        credentials.NewStaticV4(cfg.AccessKey, cfg.SecretKey, ""),
		Secure:       scheme == "https",
		Region:       cfg.Region,
		BucketLookup: minio.BucketLookupPath,
		MaxRetries:   retries,
	})
}

// clean removes the objects of cfg (its prefix, or all of its own
// bucket), unfinished multipart uploads included, and then its own
// bucket. A bucket the test never created is fine.
func clean(cfg Config) error {
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c, err := newClient(cfg)
	if err != nil {
		return err
	}
	if !cfg.Shared {
		ok, err := c.BucketExists(ctx, cfg.Bucket)
		if err != nil || !ok {
			return err
		}
	}
	// A test leaves few objects: list them all, then remove them.
	var errs []error
	var found []minio.ObjectInfo
	for o := range c.ListObjects(ctx, cfg.Bucket, minio.ListObjectsOptions{Prefix: cfg.Prefix, Recursive: true}) {
		if o.Err != nil {
			errs = append(errs, fmt.Errorf("list %s: %w", cfg.Bucket, o.Err))
			break
		}
		found = append(found, o)
	}
	objects := make(chan minio.ObjectInfo, len(found))
	for _, o := range found {
		objects <- o
	}
	close(objects)
	for r := range c.RemoveObjects(ctx, cfg.Bucket, objects, minio.RemoveObjectsOptions{}) {
		errs = append(errs, fmt.Errorf("remove %s: %w", r.ObjectName, r.Err))
	}
	for u := range c.ListIncompleteUploads(ctx, cfg.Bucket, cfg.Prefix, true) {
		if u.Err != nil {
			errs = append(errs, fmt.Errorf("list uploads of %s: %w", cfg.Bucket, u.Err))
			break
		}
		if err := c.RemoveIncompleteUpload(ctx, cfg.Bucket, u.Key); err != nil {
			errs = append(errs, fmt.Errorf("abort upload of %s: %w", u.Key, err))
		}
	}
	if len(errs) == 0 && !cfg.Shared {
		if err := c.RemoveBucket(ctx, cfg.Bucket); err != nil {
			errs = append(errs, fmt.Errorf("remove bucket %s: %w", cfg.Bucket, err))
		}
	}
	return errors.Join(errs...)
}

// Stop ends the versitygw server this process started, if any, and
// removes its directory. A TestMain calls it after m.Run; without it the
// server ends with the process.
func Stop() {
	server.mu.Lock()
	stop := server.stop
	server.stop = nil
	server.mu.Unlock()
	if stop != nil {
		stop()
	}
}

func setUp() {
	endpoint, access, secret := os.Getenv(EnvEndpoint), os.Getenv(EnvAccessKey), os.Getenv(EnvSecretKey)
	if endpoint != "" || access != "" || secret != "" {
		if endpoint == "" || access == "" || secret == "" {
			server.fail = fmt.Errorf("%s, %s and %s go together; set all three or none", EnvEndpoint, EnvAccessKey, EnvSecretKey)
			return
		}
		region := os.Getenv(EnvRegion)
		if region == "" {
			region = Region
		}
		server.cfg = Config{Endpoint: strings.TrimSuffix(endpoint, "/"), AccessKey: access, SecretKey: secret, Region: region}
		server.label = "S3 at " + server.cfg.Endpoint
		server.bucket = os.Getenv(EnvBucket)
		return
	}
	server.label = "versitygw"
	bin, err := testenv.Binary(testenv.Tool{Dir: "versitygw", Label: versitygw, Args: buildArgs, Env: buildEnv})
	var outside *testenv.OutsideError
	switch {
	case errors.As(err, &outside):
		server.skip = err.Error()
		fmt.Fprintf(os.Stderr, "\n*** s3test: SKIPPING every test that needs S3: %v\n"+
			"*** Set %s, %s and %s to test against an S3 server instead.\n\n", err, EnvEndpoint, EnvAccessKey, EnvSecretKey)
		return
	case err != nil:
		server.fail = err
		return
	}
	sweepStale()
	cfg, stop, err := start(bin)
	if err != nil {
		server.fail = err
		return
	}
	server.mu.Lock()
	server.cfg, server.stop = cfg, stop
	server.mu.Unlock()
}

// How the binary is built (in tools/versitygw). -mod=readonly: the build
// may download modules, never change go.mod or go.sum. -s -w: no debug
// information, which nobody reads here; the link is faster and the binary
// a third smaller. CGO_ENABLED=0: the gateway needs no C, and a pure-Go
// build needs no C compiler.
var (
	buildArgs = []string{"-mod=readonly", "-ldflags=-s -w", "github.com/versity/versitygw/cmd/versitygw"}
	buildEnv  = []string{"GOWORK=off", "CGO_ENABLED=0"}
)

// start runs versitygw on a temporary directory and a free loopback
// port, and waits until it answers a signed request with this process's
// keys. The port is found by listening on port 0 and closing, so another
// process can take it before versitygw binds it; versitygw then exits,
// and start tries again with another port.
func start(bin string) (Config, func(), error) {
	var errs []error
	for range 5 {
		cfg, stop, err := startOnce(bin)
		if err == nil {
			return cfg, stop, nil
		}
		errs = append(errs, err)
		if !errors.Is(err, errExited) {
			break
		}
	}
	return Config{}, nil, fmt.Errorf("starting %s: %w", versitygw, errors.Join(errs...))
}

// tempPrefix starts the name of a server's directory, followed by the
// test process's pid.
const tempPrefix = "tern-versitygw-"

// errExited: versitygw exited before it answered.
var errExited = errors.New("versitygw exited before it answered")

func startOnce(bin string) (Config, func(), error) {
	port, err := freePort()
	if err != nil {
		return Config{}, nil, err
	}
	cfg := Config{
		Endpoint:  "http://" + net.JoinHostPort("127.0.0.1", port),
		AccessKey: "tern" + rand.Text()[:12],
		SecretKey: rand.Text(),
		Region:    Region,
	}
	dir, err := os.MkdirTemp("", fmt.Sprintf("%s%d-", tempPrefix, os.Getpid()))
	if err != nil {
		return Config{}, nil, err
	}
	cmd := exec.Command(bin, "-q", "--access", cfg.AccessKey, "--secret", cfg.SecretKey,
		"--region", cfg.Region, "--port", net.JoinHostPort("127.0.0.1", port), "posix", dir)
	// What it says goes to a buffer until it answers (for the error if it
	// does not), and to stderr after, marked as its own.
	var early bytes.Buffer
	w := &switchWriter{buf: &early}
	cmd.Stdout, cmd.Stderr = w, w
	exited, err := run(cmd)
	if err != nil {
		_ = os.RemoveAll(dir)
		return Config{}, nil, fmt.Errorf("start %s: %w", versitygw, err)
	}
	stop := func() {
		// The directory is thrown away, so nothing is lost by not letting
		// the server shut down in order (which takes seconds).
		_ = cmd.Process.Kill()
		<-exited
		_ = os.RemoveAll(dir)
	}
	if err := waitReady(cfg, exited); err != nil {
		stop()
		return Config{}, nil, fmt.Errorf("%w; its output: %q", err, w.early())
	}
	w.release()
	return cfg, stop, nil
}

// freePort returns a loopback port that was free a moment ago.
func freePort() (string, error) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return "", err
	}
	defer ln.Close()
	_, port, err := net.SplitHostPort(ln.Addr().String())
	return port, err
}

// waitReady polls the server with a signed ListBuckets until it answers
// with success. Its answering with an error (another server on the port,
// which does not know these keys) or not at all is not ready; exiting is
// errExited. The deadline is generous: a loaded CI machine may be slow to
// start an 80 MB binary.
func waitReady(cfg Config, exited <-chan struct{}) error {
	// One try per poll: minio-go would otherwise retry a refused
	// connection with backoff for seconds.
	c, err := newClientRetries(cfg, 1)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	tick := time.NewTicker(50 * time.Millisecond)
	defer tick.Stop()
	var last error
	for {
		attempt, cancelAttempt := context.WithTimeout(ctx, 5*time.Second)
		_, err := c.ListBuckets(attempt)
		cancelAttempt()
		if err == nil {
			return nil
		}
		last = err
		select {
		case <-exited:
			return errExited
		case <-ctx.Done():
			return fmt.Errorf("%s did not answer within a minute: %w", versitygw, last)
		case <-tick.C:
		}
	}
}

// switchWriter keeps what is written in buf until release, and then
// passes it to stderr line by line, each line marked as versitygw's (its
// failed-request lines, from tests that break uploads on purpose, would
// otherwise look like the test's own).
type switchWriter struct {
	mu       sync.Mutex
	buf      *bytes.Buffer
	released bool
	line     []byte // an unfinished line, after release
}

func (w *switchWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if !w.released {
		if w.buf.Len() < 64<<10 {
			w.buf.Write(p)
		}
		return len(p), nil
	}
	w.line = append(w.line, p...)
	for {
		i := bytes.IndexByte(w.line, '\n')
		if i < 0 {
			break
		}
		fmt.Fprintf(os.Stderr, "s3test: versitygw: %s\n", w.line[:i])
		w.line = w.line[i+1:]
	}
	if len(w.line) > 4<<10 { // no newline in sight: pass it on anyway
		fmt.Fprintf(os.Stderr, "s3test: versitygw: %s\n", w.line)
		w.line = w.line[:0]
	}
	return len(p), nil
}

func (w *switchWriter) early() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return strings.TrimSpace(w.buf.String())
}

func (w *switchWriter) release() {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.released = true
}
