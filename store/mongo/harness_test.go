package mongo

import (
	"bufio"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/internal/testenv"
)

// The tests run against a real MongoDB when TERN_TEST_MONGO_URI is set, and
// otherwise against FerretDB on SQLite, built from tools/ferretdb (once: the
// binary is cached under the user cache directory, keyed by the tool's
// sources) and started by TestMain on a loopback port. Every test gets a
// database of its own, dropped when it ends.

// harness is what TestMain found; it is written once, before any test runs.
var harness struct {
	uri   string
	skip  string // why the tests skip (the server could not be built)
	fail  error  // why the tests fail
	label string // "MongoDB" or "FerretDB"
}

func TestMain(m *testing.M) {
	stop := setUp()
	code := m.Run()
	stop()
	os.Exit(code)
}

func setUp() (stop func()) {
	if uri := os.Getenv("TERN_TEST_MONGO_URI"); uri != "" {
		harness.uri, harness.label = uri, "MongoDB"
		return func() {}
	}
	harness.label = "FerretDB"
	bin, err := ferretBinary()
	var outside *outsideError
	switch {
	case errors.As(err, &outside):
		harness.skip = err.Error()
		fmt.Fprintf(os.Stderr, "\n*** store/mongo: SKIPPING every test that needs a database: %v\n"+
			"*** Set TERN_TEST_MONGO_URI to test against a MongoDB server instead.\n\n", err)
		return func() {}
	case err != nil:
		harness.fail = err
		return func() {}
	}
	uri, stop, err := startFerret(bin)
	if err != nil {
		harness.fail = err
		return func() {}
	}
	harness.uri = uri
	return stop
}

// outsideError is a failure that is not the project's: no way to download
// modules, for one.
type outsideError struct{ msg string }

func (e *outsideError) Error() string { return e.msg }

// ferretBinary returns the path of the FerretDB tool, building it into the
// cache if this version of its sources has not been built yet.
func ferretBinary() (string, error) {
	dir, err := filepath.Abs(filepath.Join("..", "..", "tools", "ferretdb"))
	if err != nil {
		return "", err
	}
	h := sha256.New()
	for _, name := range []string{"go.mod", "go.sum", "main.go"} {
		b, err := os.ReadFile(filepath.Join(dir, name))
		if err != nil {
			return "", fmt.Errorf("FerretDB tool sources: %w", err)
		}
		fmt.Fprintf(h, "%s %d\n", name, len(b))
		h.Write(b)
	}
	fmt.Fprintf(h, "%s %s/%s\n", runtime.Version(), runtime.GOOS, runtime.GOARCH)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "tern-test", "ferretdb-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		return "", &outsideError{"no go command in PATH to build FerretDB: " + err.Error()}
	}
	// Built next to its final name and renamed, so that concurrent test
	// processes never run a half-written binary.
	tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
	defer os.Remove(tmp)
	fmt.Fprintf(os.Stderr, "store/mongo: building FerretDB (%s) into %s; the first build takes a few minutes\n", dir, bin)
	t0 := time.Now()
	// -mod=readonly: the build may download modules, never change go.mod
	// or go.sum.
	cmd := exec.Command(gotool, "build", "-mod=readonly", "-o", tmp, ".")
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), "GOWORK=off")
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("building FerretDB in %s: %v: %s", dir, err, strings.TrimSpace(string(out)))
		if outsideFailure(string(out)) {
			return "", &outsideError{msg}
		}
		return "", errors.New(msg)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	// Builds of older sources are of no more use.
	if old, _ := filepath.Glob(filepath.Join(filepath.Dir(bin), "ferretdb-????????????????")); len(old) > 0 {
		for _, o := range old {
			if o != bin {
				os.Remove(o)
			}
		}
	}
	fmt.Fprintf(os.Stderr, "store/mongo: built FerretDB in %v\n", time.Since(t0).Round(time.Second))
	return bin, nil
}

// outsideFailure reports whether go build failed for want of the network
// or the module proxy.
func outsideFailure(out string) bool {
	for _, s := range []string{
		"dial tcp", "no such host", "connection refused", "i/o timeout", "TLS handshake",
		"proxy.golang.org", "GOPROXY", "403 Forbidden", "410 Gone", "network is unreachable",
		"GOFLAGS=-mod=mod", // a module missing from the cache with downloads off
	} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}

// startFerret starts the tool on a free loopback port and a temporary
// directory and waits until it answers.
func startFerret(bin string) (uri string, stop func(), err error) {
	dir, err := os.MkdirTemp("", "tern-ferretdb-")
	if err != nil {
		return "", nil, err
	}
	cmd := exec.Command(bin, "--listen", "127.0.0.1:0", "--dir", dir, "--exit-on-stdin-eof", "--remove-dir")
	cmd.Stderr = os.Stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return "", nil, err
	}
	// Never written: it closes when this process ends, however it ends,
	// and the server then exits.
	if _, err := cmd.StdinPipe(); err != nil {
		return "", nil, err
	}
	if err := cmd.Start(); err != nil {
		os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start FerretDB: %w", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	stop = func() {
		cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			cmd.Process.Kill()
			<-exited
		}
		os.RemoveAll(dir)
	}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(out)
		for sc.Scan() {
			if a, ok := strings.CutPrefix(sc.Text(), "listening on "); ok {
				addr <- a
				break
			}
		}
		io.Copy(io.Discard, out)
	}()
	select {
	case a := <-addr:
		uri = "mongodb://" + a + "/"
	case <-exited:
		stop()
		return "", nil, errors.New("FerretDB exited before it listened")
	case <-time.After(60 * time.Second):
		stop()
		return "", nil, errors.New("FerretDB did not listen within a minute")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	client, err := mongo.Connect(options.Client().ApplyURI(uri))
	if err != nil {
		stop()
		return "", nil, err
	}
	defer client.Disconnect(ctx)
	for {
		if err = client.Ping(ctx, nil); err == nil {
			return uri, stop, nil
		}
		if ctx.Err() != nil {
			stop()
			return "", nil, fmt.Errorf("FerretDB does not answer ping: %w", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// needServer skips or fails t if there is no database to test against.
func needServer(t testing.TB) string {
	t.Helper()
	switch {
	case harness.fail != nil:
		t.Fatal(harness.fail)
	case harness.skip != "":
		testenv.Unavailable(t, "no database to test against: %s; set TERN_TEST_MONGO_URI to use a MongoDB server", harness.skip)
	}
	return harness.uri
}

// dbName returns a fresh database name.
func dbName() string {
	var b [6]byte
	rand.Read(b[:])
	return "tern_test_" + hex.EncodeToString(b[:])
}

// openDB opens a Store on database name, closed when t ends.
func openDB(t testing.TB, name string, cfg Config) *Store {
	t.Helper()
	cfg.URI, cfg.Database = needServer(t), name
	if cfg.Timeout == 0 {
		cfg.Timeout = 30 * time.Second
	}
	s, err := Open(context.Background(), cfg)
	if err != nil {
		t.Fatalf("open %s: %v", harness.label, err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

// dropDB drops database name when t ends.
func dropDB(t testing.TB, name string) {
	t.Helper()
	uri := needServer(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Errorf("drop %s: %v", name, err)
			return
		}
		defer client.Disconnect(ctx)
		if err := client.Database(name).Drop(ctx); err != nil {
			t.Errorf("drop %s: %v", name, err)
		}
	})
}

// newStore opens a Store on a fresh database, dropped when t ends.
func newStore(t testing.TB) *Store {
	t.Helper()
	name := dbName()
	dropDB(t, name) // registered first, so it runs after the Close
	return openDB(t, name, Config{})
}
