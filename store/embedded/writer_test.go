package embedded

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tern-im/tern/store"
)

// holdWriter blocks the writer goroutine inside a batch until the returned
// release is called, so that a test can queue requests behind it.
func holdWriter(t *testing.T, s *Store) (release func()) {
	t.Helper()
	started, done := make(chan struct{}), make(chan struct{})
	errc := make(chan error, 1)
	go func() {
		errc <- s.write(context.Background(), func(*wtx) error {
			close(started)
			<-done
			return nil
		})
	}()
	<-started
	return func() {
		close(done)
		if err := <-errc; err != nil {
			t.Errorf("held write: %v", err)
		}
	}
}

// waitQueued waits until n requests wait in the writer's queue.
func waitQueued(s *Store, n int) {
	for len(s.reqs) < n {
		runtime.Gosched()
	}
}

func openTest(t *testing.T) *Store {
	t.Helper()
	s, err := Open(t.Context(), t.TempDir(), Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { s.Close() })
	return s
}

func TestCanceledWhileQueued(t *testing.T) {
	s := openTest(t)
	release := holdWriter(t, s)
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, _, err := s.EnsureUser(ctx, "+15550000001", "u1", time.Now())
		errc <- err
	}()
	waitQueued(s, 1)
	cancel()
	release()
	if err := <-errc; !errors.Is(err, context.Canceled) {
		t.Fatalf("EnsureUser canceled while queued: %v, want context.Canceled", err)
	}
	if _, err := s.User(t.Context(), "u1"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a request canceled before it was applied was stored: %v", err)
	}
}

// TestEngineErrorFailsAlone puts a request that makes bbolt fail between two
// good ones in one batch: the batch is rolled back and retried request by
// request, so only the bad one fails.
func TestEngineErrorFailsAlone(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	release := holdWriter(t, s)
	errs := make([]chan error, 3)
	for i := range errs {
		errs[i] = make(chan error, 1)
	}
	go func() { errs[0] <- s.PutCode(ctx, store.Code{Phone: "+15550000001"}) }()
	waitQueued(s, 1)
	go func() {
		errs[1] <- s.write(ctx, func(w *wtx) error {
			w.put(w.codes, []byte("+15550000002"), []byte("{}"))
			w.put(w.codes, nil, []byte("x")) // bbolt: key required
			return nil
		})
	}()
	waitQueued(s, 2)
	go func() { errs[2] <- s.PutCode(ctx, store.Code{Phone: "+15550000003"}) }()
	waitQueued(s, 3)
	release()
	if err := <-errs[0]; err != nil {
		t.Fatalf("good request before the bad one: %v", err)
	}
	if err := <-errs[1]; err == nil {
		t.Fatal("the bad request succeeded")
	}
	if err := <-errs[2]; err != nil {
		t.Fatalf("good request after the bad one: %v", err)
	}
	for phone, want := range map[string]error{"+15550000001": nil, "+15550000002": store.ErrNotFound, "+15550000003": nil} {
		if _, err := s.Code(ctx, phone); !errors.Is(err, want) && (want != nil || err != nil) {
			t.Fatalf("Code(%s) after the failed batch: %v, want %v", phone, err, want)
		}
	}
}

// TestGroupCommit checks that requests queued while the writer is busy
// share the next transaction: one commit (one fsync) for all of them.
func TestGroupCommit(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	lastTx := func() int {
		var id int
		if err := s.db.View(func(tx *bolt.Tx) error { id = tx.ID(); return nil }); err != nil {
			t.Fatal(err)
		}
		return id
	}
	start := lastTx()
	release := holdWriter(t, s) // transaction start+1
	const n = 50
	errc := make(chan error, n)
	for i := range n {
		go func() { errc <- s.PutCode(ctx, store.Code{Phone: fmt.Sprintf("+1555%07d", i)}) }()
	}
	waitQueued(s, n)
	release()
	for range n {
		if err := <-errc; err != nil {
			t.Fatal(err)
		}
	}
	if got := lastTx() - start; got != 2 {
		t.Fatalf("%d queued writes took %d commits after the held one, want 1", n, got-1)
	}
}

// TestCloseCommitsQueued closes the store while writes wait in the queue:
// Close must commit them before it returns, and later writes must fail.
func TestCloseCommitsQueued(t *testing.T) {
	dir := t.TempDir()
	s, err := Open(t.Context(), dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	ctx := t.Context()
	release := holdWriter(t, s)
	const n = 10
	errc := make(chan error, n)
	for i := range n {
		go func() { errc <- s.PutCode(ctx, store.Code{Phone: fmt.Sprintf("+1555%07d", i)}) }()
	}
	waitQueued(s, n)
	closed := make(chan error, 1)
	go func() { closed <- s.Close() }()
	for !s.isClosed.Load() {
		runtime.Gosched()
	}
	if err := s.PutCode(ctx, store.Code{Phone: "+15559999999"}); !errors.Is(err, ErrClosed) {
		t.Fatalf("write after Close began: %v, want ErrClosed", err)
	}
	release()
	if err := <-closed; err != nil {
		t.Fatal(err)
	}
	for range n {
		if err := <-errc; err != nil {
			t.Fatalf("write queued before Close: %v", err)
		}
	}
	s, err = Open(ctx, dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	for i := range n {
		if _, err := s.Code(ctx, fmt.Sprintf("+1555%07d", i)); err != nil {
			t.Fatalf("write queued before Close is lost: %v", err)
		}
	}
}
