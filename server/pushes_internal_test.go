package server

import (
	"context"
	"log/slog"
	"maps"
	"sync"
	"testing"
	"testing/synctest"
	"time"

	"github.com/tern-im/tern/store"
)

// cancelStore counts CancelPush calls and holds each until gate closes.
type cancelStore struct {
	store.Store // nil: only CancelPush is called
	mu          sync.Mutex
	calls       map[string]int
	gate        chan struct{}
}

func (c *cancelStore) CancelPush(ctx context.Context, device string) error {
	c.mu.Lock()
	c.calls[device]++
	c.mu.Unlock()
	select {
	case <-c.gate:
	case <-ctx.Done():
	}
	return nil
}

func (c *cancelStore) snapshot() map[string]int {
	c.mu.Lock()
	defer c.mu.Unlock()
	return maps.Clone(c.calls)
}

// TestCancelPushCoalesces: connects of a device that come while the
// cancel of its push runs make one more cancel after it, not one each;
// another device's cancel runs alongside. synctest.Wait lets every
// goroutine the cancels started run until it blocks or ends, so the
// counts are final when read.
func TestCancelPushCoalesces(t *testing.T) {
	synctest.Test(t, func(t *testing.T) {
		st := &cancelStore{calls: map[string]int{}, gate: make(chan struct{})}
		s := &Server{st: st, ctx: t.Context(), log: slog.New(slog.DiscardHandler),
			wakes: newWakeQueue(time.Second, time.Now, func(string) {})}
		s.cancelPush("d1")
		synctest.Wait()
		for range 5 {
			s.cancelPush("d1") // reconnects while the first cancel runs
		}
		s.cancelPush("d2")
		synctest.Wait()
		if got := st.snapshot(); !maps.Equal(got, map[string]int{"d1": 1, "d2": 1}) {
			t.Fatalf("store cancels while d1's first ran: %v, want one each", got)
		}
		close(st.gate)
		synctest.Wait()
		if got := st.snapshot(); !maps.Equal(got, map[string]int{"d1": 2, "d2": 1}) {
			t.Fatalf("store cancels: %v, want d1 twice (the first, then one for the 5 connects during it) and d2 once", got)
		}
		s.pushCancels.mu.Lock()
		defer s.pushCancels.mu.Unlock()
		if len(s.pushCancels.m) != 0 {
			t.Fatalf("cancels still recorded as running: %v", s.pushCancels.m)
		}
	})
}
