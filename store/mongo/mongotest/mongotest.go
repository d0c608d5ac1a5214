// Package mongotest gives tests a MongoDB server to work against: a real
// MongoDB when TERN_TEST_MONGO_URI is set, and otherwise FerretDB on SQLite,
// built from the project's tools/ferretdb module and started on a loopback
// port the first time a test of the process asks for it.
//
// The FerretDB binary is built once per version of the tool's sources and
// cached under the user cache directory (tern-test/ferretdb-<hash>), so
// only the first run on a machine pays for the build (a few minutes). The
// server is one per test process, shared by its tests; each test takes a
// database of its own (NewDatabase), dropped when the test ends. The
// server exits when the test process does, however that ends: it is
// started with --exit-on-stdin-eof, and its stdin is a pipe only this
// process holds. TestMain may call Stop to end it earlier.
//
// When no server can be had for reasons outside the project (no go command
// to build FerretDB, no network to fetch its modules), the tests that need
// one are skipped loudly, or fail under TERN_TEST_REQUIRE=1 (see
// internal/testenv). Any other failure fails them.
//
// FerretDB is a stand-in: it is slow (one write at a time, see
// tools/ferretdb) and not MongoDB. It is enough to test correctness; it
// says little about performance.
package mongotest

import (
	"bufio"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/internal/testenv"
)

// EnvURI names the variable that points the tests at a real MongoDB.
const EnvURI = "TERN_TEST_MONGO_URI"

// server is what the first URI call found; later calls reuse it.
var server struct {
	once  sync.Once
	mu    sync.Mutex // guards stop
	uri   string
	label string // "MongoDB" or "FerretDB"
	skip  string // why tests skip: the server could not be had, not our fault
	fail  error  // why tests fail
	stop  func()
}

// URI returns the connection string of the test server, starting FerretDB
// on the first call when TERN_TEST_MONGO_URI is unset. It skips (or, in CI,
// fails) t when no server can be had.
func URI(t testing.TB) string {
	t.Helper()
	server.once.Do(setUp)
	switch {
	case server.fail != nil:
		t.Fatalf("mongotest: %v", server.fail)
	case server.skip != "":
		testenv.Unavailable(t, "no MongoDB-compatible server to test against: %s; set %s to use a MongoDB server",
			server.skip, EnvURI)
	}
	return server.uri
}

// Label says what the server is, "MongoDB" or "FerretDB", for messages;
// "" before the first URI call.
func Label() string { return server.label }

// NewDatabase returns the server's URI and the name of a fresh database on
// it, dropped when t ends. Cleanups run last-registered first, so a store
// a test opens (and closes in a cleanup) after this call is closed before
// its database is dropped.
func NewDatabase(t testing.TB) (uri, name string) {
	t.Helper()
	uri = URI(t)
	name = DatabaseName()
	DropAtEnd(t, name)
	return uri, name
}

// DatabaseName returns a database name no other test uses.
func DatabaseName() string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "tern_test_" + hex.EncodeToString(b[:])
}

// DropAtEnd drops database name on the test server when t ends.
func DropAtEnd(t testing.TB, name string) {
	t.Helper()
	uri := URI(t)
	t.Cleanup(func() {
		ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
		defer cancel()
		client, err := mongo.Connect(options.Client().ApplyURI(uri))
		if err != nil {
			t.Errorf("mongotest: drop %s: %v", name, err)
			return
		}
		defer func() { _ = client.Disconnect(ctx) }()
		if err := client.Database(name).Drop(ctx); err != nil {
			t.Errorf("mongotest: drop %s: %v", name, err)
		}
	})
}

// Stop ends the FerretDB server this process started, if any. A TestMain
// calls it after m.Run; without it the server ends with the process.
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
	if uri := os.Getenv(EnvURI); uri != "" {
		server.uri, server.label = uri, "MongoDB"
		return
	}
	server.label = "FerretDB"
	bin, err := testenv.Binary(testenv.Tool{Dir: "ferretdb", Label: "FerretDB",
		// -mod=readonly: the build may download modules, never change
		// go.mod or go.sum.
		Args: []string{"-mod=readonly", "."}, Env: []string{"GOWORK=off"}})
	var outside *testenv.OutsideError
	switch {
	case errors.As(err, &outside):
		server.skip = err.Error()
		fmt.Fprintf(os.Stderr, "\n*** mongotest: SKIPPING every test that needs a database: %v\n"+
			"*** Set %s to test against a MongoDB server instead.\n\n", err, EnvURI)
		return
	case err != nil:
		server.fail = err
		return
	}
	uri, stop, err := startFerret(bin)
	if err != nil {
		server.fail = err
		return
	}
	server.mu.Lock()
	server.uri, server.stop = uri, stop
	server.mu.Unlock()
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
		_ = os.RemoveAll(dir)
		return "", nil, fmt.Errorf("start FerretDB: %w", err)
	}
	exited := make(chan struct{})
	go func() { _ = cmd.Wait(); close(exited) }()
	stop = func() {
		_ = cmd.Process.Signal(syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			_ = cmd.Process.Kill()
			<-exited
		}
		_ = os.RemoveAll(dir)
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
		_, _ = io.Copy(io.Discard, out)
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
	defer func() { _ = client.Disconnect(ctx) }()
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
