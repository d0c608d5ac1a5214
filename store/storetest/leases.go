package storetest

import (
	"sync"
	"sync/atomic"
	"testing"

	"github.com/tern-im/tern/store"
)

// testLeases: one holder at a time; the holder renews; an ended lease is
// anyone's; a release frees it at once; of concurrent takes one wins.
func testLeases(t *testing.T, s store.Store) {
	ctx := t.Context()
	take := func(name, holder string, now, until int64) bool {
		t.Helper()
		ok, err := s.TakeLease(ctx, name, holder, at(now), at(until))
		must(t, err)
		return ok
	}
	if !take("job", "a", 0, 100) {
		t.Fatal("a free lease was refused")
	}
	if take("job", "b", 50, 150) {
		t.Fatal("b took a's running lease")
	}
	if !take("job", "a", 60, 200) {
		t.Fatal("a could not renew its lease")
	}
	if take("job", "b", 150, 250) {
		t.Fatal("b took a's renewed lease before it ended")
	}
	if !take("job", "b", 200, 300) {
		t.Fatal("b could not take a lease that ended")
	}
	if !take("other", "a", 200, 300) {
		t.Fatal("leases of other names are separate")
	}
	must(t, s.ReleaseLease(ctx, "job", "a")) // not a's: nothing happens
	if take("job", "a", 210, 300) {
		t.Fatal("a release by another freed b's lease")
	}
	must(t, s.ReleaseLease(ctx, "job", "b"))
	if !take("job", "a", 220, 300) {
		t.Fatal("a released lease was refused")
	}

	var won atomic.Int32
	var wg sync.WaitGroup
	for i := range 8 {
		wg.Go(func() {
			ok, err := s.TakeLease(ctx, "race", string(rune('a'+i)), at(0), at(1000))
			if err != nil {
				t.Error(err)
			}
			if ok {
				won.Add(1)
			}
		})
	}
	wg.Wait()
	if won.Load() != 1 {
		t.Fatalf("%d of 8 concurrent takes of a free lease won, want 1", won.Load())
	}
}
