package embedded_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
)

// TestAccountCacheNeverServesStaleDevices races readers of a user's device
// list against device creation and deletion: once a write has returned,
// every later read must reflect it, cached or not.
func TestAccountCacheNeverServesStaleDevices(t *testing.T) {
	s := open(t, t.TempDir(), embedded.Options{NoSync: true})
	ctx := context.Background()
	u, _, err := s.EnsureUser(ctx, "+14155550999", store.NewID(store.PrefixUser), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var stop atomic.Bool
	var wg sync.WaitGroup
	for r := 0; r < 4; r++ {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for !stop.Load() {
				if _, err := s.UserDevices(ctx, u.ID); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	defer func() { stop.Store(true); wg.Wait() }()
	want := map[string]bool{}
	for i := 0; i < 200; i++ {
		id := store.NewID(store.PrefixDevice)
		if err := s.CreateDevice(ctx, store.Device{ID: id, UserID: u.ID, Name: fmt.Sprint(i), CreatedAt: time.Now()}); err != nil {
			t.Fatal(err)
		}
		want[id] = true
		if i%3 == 0 {
			if err := s.DeleteDevice(ctx, id); err != nil {
				t.Fatal(err)
			}
			delete(want, id)
		}
		ds, err := s.UserDevices(ctx, u.ID)
		if err != nil {
			t.Fatal(err)
		}
		if len(ds) != len(want) {
			t.Fatalf("round %d: %d devices, want %d", i, len(ds), len(want))
		}
		for _, d := range ds {
			if !want[d.ID] {
				t.Fatalf("round %d: stale device %s", i, d.ID)
			}
		}
		if d, err := s.Device(ctx, id); (err == nil) != want[id] || (err == nil && d.ID != id) {
			t.Fatalf("round %d: Device(%s) = %v, %v; want present=%v", i, id, d.ID, err, want[id])
		}
	}
}
