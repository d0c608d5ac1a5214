package embedded

import (
	"context"
	"errors"
	"fmt"
	"runtime"
	"testing"
	"time"

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

// TestEngineErrorFailsAlone puts a request that meets an engine error
// between two good ones in one round: the batch is discarded and retried
// request by request, so only the bad one fails. Pebble cannot be made to
// fail on demand, so the error is injected where a failed read or write
// would record it.
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
			w.put(key(tCodes, "+15550000002"), []byte("{}"))
			w.setErr(errors.New("injected engine failure"))
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
// share the next batch: one commit (one fsync) for all of them.
func TestGroupCommit(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	lastTx := func() int { return int(s.commits.Load()) }
	start := lastTx()
	release := holdWriter(t, s) // commits nothing: it writes nothing
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
	if got := lastTx() - start; got != 1 {
		t.Fatalf("%d queued writes took %d commits, want 1", n, got)
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
	for !isClosed(s) {
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

func isClosed(s *Store) bool {
	s.mu.RLock()
	defer s.mu.RUnlock()
	return s.closed
}

// pair makes two users with a device each and returns the request of a
// direct message from the first to the second device (and nothing else).
func pair(t *testing.T, s *Store) (users, devices [2]string, req func(clientID string) store.SendRequest) {
	t.Helper()
	ctx := t.Context()
	for i := range users {
		u, _, err := s.EnsureUser(ctx, fmt.Sprintf("+155500001%02d", i), store.NewID(store.PrefixUser), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		users[i], devices[i] = u.ID, store.NewID(store.PrefixDevice)
		if err := s.CreateDevice(ctx, store.Device{ID: devices[i], UserID: u.ID}); err != nil {
			t.Fatal(err)
		}
	}
	req = func(clientID string) store.SendRequest {
		return store.SendRequest{
			ClientID: clientID,
			Message:  store.Message{ID: store.NewID(store.PrefixMessage), ChatID: store.DirectChatID(users[0], users[1]), From: users[0], FromDevice: devices[0], Body: []byte(`{}`)},
			Kind:     "direct",
			Members:  users[:],
			Devices:  []string{devices[1]},
		}
	}
	return users, devices, req
}

// TestLazyAcks checks which rounds skip the fsync: an ack that only removes
// events, but not one that appends receipts, whose cursors must not be
// handed out twice after a crash.
func TestLazyAcks(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	_, devices, req := pair(t, s)
	r, err := s.Send(ctx, req("1"))
	if err != nil {
		t.Fatal(err)
	}
	commits, durable := s.commits.Load(), s.durable.Load()
	receipts, err := s.Ack(ctx, devices[1], r.Deliveries[0].Event.Cursor)
	if err != nil || len(receipts) != 1 {
		t.Fatalf("ack of a message: %d receipts, %v", len(receipts), err)
	}
	if s.commits.Load() != commits+1 || s.durable.Load() != durable+1 {
		t.Fatal("an ack that appended a receipt was committed without fsync")
	}
	if _, err := s.Ack(ctx, devices[0], receipts[0].Event.Cursor); err != nil {
		t.Fatal(err)
	}
	if s.commits.Load() != commits+2 || s.durable.Load() != durable+1 {
		t.Fatal("an ack that only removed an event was fsynced")
	}
}

// TestCacheIgnoresFailedRounds: cursors taken in a round that fails must
// not stay in the writer's cache, or the next append would leave a gap.
func TestCacheIgnoresFailedRounds(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	_, devices, req := pair(t, s)
	if _, err := s.Send(ctx, req("1")); err != nil { // the head is now cached
		t.Fatal(err)
	}
	err := s.write(ctx, func(w *wtx) error {
		w.appendFeed(w.head(devices[1]).User, []byte{evReceipt})
		w.setErr(errors.New("injected engine failure"))
		return nil
	})
	if err == nil {
		t.Fatal("the failing write succeeded")
	}
	r, err := s.Send(ctx, req("2"))
	if err != nil {
		t.Fatal(err)
	}
	if c := r.Deliveries[0].Event.Cursor; c != 2 {
		t.Fatalf("cursor after a failed round = %d, want 2", c)
	}
}

// TestCacheFollowsDevices: the writer's cached heads and device lists must
// follow devices being deleted and added.
func TestCacheFollowsDevices(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	users, devices, req := pair(t, s)
	r, err := s.Send(ctx, req("1"))
	if err != nil {
		t.Fatal(err)
	}
	// Caches the author's device list (one device).
	if rs, err := s.Ack(ctx, devices[1], r.Deliveries[0].Event.Cursor); err != nil || len(rs) != 1 {
		t.Fatalf("first ack: %d receipts, %v", len(rs), err)
	}
	newDev := store.NewID(store.PrefixDevice)
	if err := s.CreateDevice(ctx, store.Device{ID: newDev, UserID: users[0]}); err != nil {
		t.Fatal(err)
	}
	r, err = s.Send(ctx, req("2"))
	if err != nil {
		t.Fatal(err)
	}
	rs, err := s.Ack(ctx, devices[1], r.Deliveries[0].Event.Cursor)
	if err != nil || len(rs) != 2 {
		t.Fatalf("receipts after the author added a device: %d, %v; want 2", len(rs), err)
	}
	// The recipient's head is cached; deleting the device must end its
	// inbox.
	if err := s.DeleteDevice(ctx, devices[1]); err != nil {
		t.Fatal(err)
	}
	if r, err = s.Send(ctx, req("3")); err != nil || len(r.Deliveries) != 0 {
		t.Fatalf("send to a deleted device: %+v, %v", r.Deliveries, err)
	}
	if rs, err := s.Ack(ctx, newDev, 1); err != nil || len(rs) != 0 {
		t.Fatalf("ack of a receipt: %d receipts, %v", len(rs), err)
	}
}

// TestMessageIDsOfOlderStores: a store written before messages were
// indexed by id (no table 14) gets them indexed at its next Open, so that
// replies to its old messages are accepted.
func TestMessageIDsOfOlderStores(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(ctx, dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	_, _, req := pair(t, s)
	r, err := s.Send(ctx, req("1"))
	if err != nil {
		t.Fatal(err)
	}
	m := r.Message
	// What an older version left: the message, but no index or marker.
	if err := s.write(ctx, func(w *wtx) error {
		w.del(key(tMsgIDs, m.ID))
		w.del(msgIDsDone)
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Message(ctx, m.ChatID, m.ID); err == nil {
		t.Fatal("the staged older store still finds the message by id")
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	got, err := s.Message(ctx, m.ChatID, m.ID)
	if err != nil || got.ID != m.ID || got.Seq != m.Seq {
		t.Fatalf("after reopening: Message = %+v, %v; want the old message", got, err)
	}
}
