package admin

import (
	"sync"
	"time"
)

// Throttle limits failed sign-ins per account and per client address, in
// memory on each node: after Limit failures within Window the key waits
// until the oldest failure is Window old. Counting per address too means
// one address cannot lock an account by itself forever without being
// slowed itself, and spraying many accounts from one address is bounded.
type Throttle struct {
	Limit  int
	Window time.Duration

	mu    sync.Mutex
	fails map[string][]time.Time
}

// NewThrottle makes a throttle; limit <= 0 disables it.
func NewThrottle(limit int, window time.Duration) *Throttle {
	return &Throttle{Limit: limit, Window: window, fails: map[string][]time.Time{}}
}

// Wait is how long key must wait before trying again (0: it may try now).
func (t *Throttle) Wait(key string, now time.Time) time.Duration {
	if t.Limit <= 0 {
		return 0
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	fs := t.prune(key, now)
	if len(fs) < t.Limit {
		return 0
	}
	return fs[0].Add(t.Window).Sub(now)
}

// Fail counts a failed attempt of key.
func (t *Throttle) Fail(key string, now time.Time) {
	if t.Limit <= 0 {
		return
	}
	t.mu.Lock()
	defer t.mu.Unlock()
	t.fails[key] = append(t.prune(key, now), now)
}

// Clear forgets key's failures (a successful sign-in of the account).
func (t *Throttle) Clear(key string) {
	t.mu.Lock()
	defer t.mu.Unlock()
	delete(t.fails, key)
}

func (t *Throttle) prune(key string, now time.Time) []time.Time {
	fs := t.fails[key]
	i := 0
	for i < len(fs) && now.Sub(fs[i]) >= t.Window {
		i++
	}
	fs = fs[i:]
	if len(fs) == 0 {
		delete(t.fails, key)
		return nil
	}
	t.fails[key] = fs
	return fs
}

// Sweep drops every key whose failures are all older than the window:
// call it now and then, or a spray of sign-ins under many names would
// keep their entries forever.
func (t *Throttle) Sweep(now time.Time) {
	t.mu.Lock()
	defer t.mu.Unlock()
	for k := range t.fails {
		t.prune(k, now)
	}
}
