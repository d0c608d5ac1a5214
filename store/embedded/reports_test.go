package embedded

import (
	"encoding/binary"
	"encoding/json"
	"errors"
	"sync"
	"testing"

	"github.com/tern-im/tern/store"
)

// TestReportsMoveFromTheOldLayout: reports written by a version that kept
// them by time (tReports: ts, id) are moved under their ids on first use,
// none lost or doubled, also with writers racing the move; ids order them.
func TestReportsMoveFromTheOldLayout(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	const old = 20
	var ids []string
	err := s.write(ctx, func(w *wtx) error {
		for i := range old {
			// Times in the opposite order to the ids: the listing must
			// follow the ids.
			r := store.Report{ID: store.NewID(store.PrefixReport), By: "u1", UserID: "u2", Reason: "old", TS: int64(1000 - i)}
			ids = append(ids, r.ID)
			b, err := json.Marshal(r)
			if err != nil {
				return err
			}
			w.put(append(binary.BigEndian.AppendUint64([]byte{tReports}, uint64(r.TS)), r.ID...), b)
			// The old layout's "id taken" marker.
			w.put(key(tReportIDs, r.ID), []byte{})
		}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}

	// Racing the move: new reports, a resolve of an old one, listings.
	var wg sync.WaitGroup
	added := make(chan string, 5)
	for range 5 {
		wg.Go(func() {
			r := store.Report{ID: store.NewID(store.PrefixReport), By: "u3", UserID: "u2", Reason: "new", TS: 5000}
			if err := s.AddReport(ctx, r); err != nil {
				t.Error(err)
			}
			added <- r.ID
		})
		wg.Go(func() {
			if _, err := s.Reports(ctx, false, "", 0); err != nil {
				t.Error(err)
			}
		})
	}
	wg.Go(func() {
		if err := s.ResolveReport(ctx, ids[3], "dismissed", "ops", 7000); err != nil {
			t.Error(err)
		}
	})
	wg.Wait()
	close(added)

	all, err := s.Reports(ctx, false, "", 0)
	if err != nil {
		t.Fatal(err)
	}
	if len(all) != old+5 {
		t.Fatalf("%d reports after the move, want %d", len(all), old+5)
	}
	seen := map[string]bool{}
	for i, r := range all {
		if seen[r.ID] {
			t.Fatalf("report %s listed twice", r.ID)
		}
		seen[r.ID] = true
		if i > 0 && r.ID >= all[i-1].ID {
			t.Fatalf("not newest first by id: %s after %s", r.ID, all[i-1].ID)
		}
	}
	for _, id := range ids {
		if !seen[id] {
			t.Fatalf("old report %s lost", id)
		}
	}
	if r, err := s.Report(ctx, ids[3]); err != nil || r.Resolution != "dismissed" || r.Reason != "old" {
		t.Fatalf("the resolved old report: %+v, %v", r, err)
	}
	if err := s.ResolveReport(ctx, ids[3], "banned", "ops", 8000); !errors.Is(err, store.ErrConflict) {
		t.Fatalf("resolving it again: %v", err)
	}
	open, err := s.Reports(ctx, true, "", 0)
	if err != nil || len(open) != old+5-1 {
		t.Fatalf("open reports: %d, %v; want %d", len(open), err, old+5-1)
	}
	left := 0
	err = s.view(ctx, func(r reader) error {
		return r.scan([]byte{tReports}, []byte{tReports + 1}, func(_, _ []byte) (bool, error) {
			left++
			return true, nil
		})
	})
	if err != nil || left != 0 {
		t.Fatalf("%d old-layout records left, %v", left, err)
	}
}
