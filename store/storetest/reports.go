package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// Reports: store.Reports, as the admin dashboard reads and resolves them.

func testReports(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("AddAndRead", func(t *testing.T) { testReportsAddAndRead(t, newStore(t)) })
	t.Run("Paging", func(t *testing.T) { testReportsPaging(t, newStore(t)) })
	t.Run("Resolve", func(t *testing.T) { testReportsResolve(t, newStore(t)) })
	t.Run("ConcurrentResolve", func(t *testing.T) { testReportsConcurrentResolve(t, newStore(t)) })
}

// reportIDs returns n new report ids in increasing order: the order of
// their creation, as far as ids tell it (two made in one millisecond
// sort by their random part).
func reportIDs(n int) []string {
	ids := make([]string, n)
	for i := range ids {
		ids[i] = store.NewID(store.PrefixReport)
	}
	slices.Sort(ids)
	return ids
}

func idsOfReports(rs []store.Report) []string {
	out := make([]string, len(rs))
	for i, r := range rs {
		out[i] = r.ID
	}
	return out
}

func reversed(s []string) []string {
	s = slices.Clone(s)
	slices.Reverse(s)
	return s
}

func testReportsAddAndRead(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	m := send(t, s, direct(w.bob, w.b1, w.alice, "x", 1, "spam", w.a1)).Message
	ids := reportIDs(2)
	first := store.Report{ID: ids[0], By: w.alice, UserID: w.bob, ChatID: w.chatAB,
		Messages: []store.Message{m}, Reason: "spam", TS: 10}
	must(t, s.AddReport(ctx, first))
	// Listed by id, not by TS: the second is newer though made earlier.
	second := store.Report{ID: ids[1], By: w.carol, UserID: w.bob, Reason: "rude", TS: 5}
	must(t, s.AddReport(ctx, second))
	wantErr(t, s.AddReport(ctx, second), store.ErrConflict, "a report id used twice")
	got, err := s.Reports(ctx, false, "", 0)
	must(t, err)
	if len(got) != 2 || got[0].ID != second.ID || got[1].ID != first.ID {
		t.Fatalf("Reports = %+v, want the second then the first", got)
	}
	check := func(what string, r store.Report) {
		t.Helper()
		if r.ID != first.ID || r.By != w.alice || r.UserID != w.bob || r.ChatID != w.chatAB || r.Reason != "spam" ||
			r.TS != 10 || len(r.Messages) != 1 || r.Messages[0].ID != m.ID || !jsonEqual(r.Messages[0].Body, m.Body) ||
			r.Resolution != "" || r.ResolvedBy != "" || r.ResolvedTS != 0 {
			t.Fatalf("%s: report read back as %+v, want %+v", what, r, first)
		}
	}
	check("Reports", got[1])
	if got, err := s.Reports(ctx, false, "", 1); err != nil || len(got) != 1 || got[0].ID != second.ID {
		t.Fatalf("Reports(limit 1) = %+v, %v", got, err)
	}
	r, err := s.Report(ctx, first.ID)
	must(t, err)
	check("Report", r)
	_, err = s.Report(ctx, store.NewID(store.PrefixReport))
	wantErr(t, err, store.ErrNotFound, "Report of an unknown id")
	_, err = s.Report(ctx, first.ID[:len(first.ID)-1])
	wantErr(t, err, store.ErrNotFound, "Report of a prefix of an id")
	_, err = s.Report(ctx, "")
	wantErr(t, err, store.ErrNotFound, "Report of an empty id")
}

func testReportsPaging(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	const n = 7
	ids := reportIDs(n)
	for i, id := range ids {
		must(t, s.AddReport(ctx, store.Report{ID: id, By: w.alice, UserID: w.bob, Reason: fmt.Sprint("r", i), TS: ts(int64(n - i))}))
	}
	// Resolve 1, 2 and 5: open are 0, 3, 4 and 6.
	for _, i := range []int{1, 2, 5} {
		must(t, s.ResolveReport(ctx, ids[i], "dismissed", "root", ts(100)))
	}
	open := []string{ids[0], ids[3], ids[4], ids[6]}
	list := func(openOnly bool, before string, limit int, want ...string) {
		t.Helper()
		got, err := s.Reports(ctx, openOnly, before, limit)
		must(t, err)
		if !slices.Equal(idsOfReports(got), want) {
			t.Fatalf("Reports(open only %v, before %q, %d) = %v, want %v", openOnly, before, limit, idsOfReports(got), want)
		}
		for _, r := range got {
			if openOnly && r.Resolution != "" {
				t.Fatalf("Reports(open only) lists %s, resolved %q", r.ID, r.Resolution)
			}
		}
	}
	all := reversed(ids)
	list(false, "", 0, all...)
	list(false, "", -1, all...)
	list(true, "", 0, reversed(open)...)
	// Pages below an id (not included), however far down the next is.
	list(false, "", 3, all[:3]...)
	list(false, all[2], 3, all[3:6]...)
	list(false, all[5], 3, all[6:]...)
	list(false, all[6], 3)
	list(true, "", 2, ids[6], ids[4])
	list(true, ids[4], 2, ids[3], ids[0])
	list(true, ids[0], 2)
	list(true, ids[3], 0, ids[0])
	// before need not be a report's id: it is compared. A new id is above
	// them all only if made in a later millisecond: one of the same
	// millisecond sorts by its random part.
	later := store.NewID(store.PrefixReport)
	for later <= all[0] {
		time.Sleep(time.Millisecond)
		later = store.NewID(store.PrefixReport)
	}
	list(false, later, 2, all[:2]...)
	list(false, ids[4]+"0", 2, ids[4], ids[3])
	list(false, ids[0], 0)
}

func testReportsResolve(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	ids := reportIDs(2)
	a := store.Report{ID: ids[0], By: w.alice, UserID: w.bob, Reason: "spam", TS: ts(1)}
	b := store.Report{ID: ids[1], By: w.carol, UserID: w.bob, Reason: "rude", TS: ts(2)}
	must(t, s.AddReport(ctx, a))
	must(t, s.AddReport(ctx, b))

	for _, res := range []string{"", "ban", "Dismissed", "open", "banned "} {
		wantErr(t, s.ResolveReport(ctx, a.ID, res, "root", ts(10)), store.ErrInvalid, fmt.Sprintf("resolution %q", res))
	}
	wantErr(t, s.ResolveReport(ctx, a.ID, "dismissed", "", ts(10)), store.ErrInvalid, "no resolving admin")
	wantErr(t, s.ResolveReport(ctx, store.NewID(store.PrefixReport), "dismissed", "root", ts(10)), store.ErrNotFound,
		"resolving an unknown report")
	wantErr(t, s.ResolveReport(ctx, a.ID[:len(a.ID)-1], "dismissed", "root", ts(10)), store.ErrNotFound,
		"resolving a prefix of a report's id")
	if r, err := s.Report(ctx, a.ID); err != nil || r.Resolution != "" {
		t.Fatalf("after refused resolutions: %+v, %v; want it open", r, err)
	}

	must(t, s.ResolveReport(ctx, a.ID, "banned", "root", ts(20)))
	err := s.ResolveReport(ctx, a.ID, "dismissed", "ops", ts(30))
	wantErr(t, err, store.ErrConflict, "resolving a resolved report")
	wantErr(t, s.ResolveReport(ctx, a.ID, "banned", "root", ts(20)), store.ErrConflict, "the same resolution again")
	r, err := s.Report(ctx, a.ID)
	must(t, err)
	if r.Resolution != "banned" || r.ResolvedBy != "root" || r.ResolvedTS != ts(20) ||
		r.Reason != "spam" || r.By != w.alice || r.UserID != w.bob || r.TS != ts(1) {
		t.Fatalf("resolved report reads back as %+v", r)
	}
	must(t, s.ResolveReport(ctx, b.ID, "dismissed", "ops", ts(40)))
	got, err := s.Reports(ctx, false, "", 0)
	must(t, err)
	if len(got) != 2 || got[0].Resolution != "dismissed" || got[0].ResolvedBy != "ops" || got[0].ResolvedTS != ts(40) ||
		got[1].Resolution != "banned" || got[1].ResolvedBy != "root" || got[1].ResolvedTS != ts(20) {
		t.Fatalf("Reports after resolutions: %+v", got)
	}
	if got, err := s.Reports(ctx, true, "", 0); err != nil || len(got) != 0 {
		t.Fatalf("open reports after resolving all: %+v, %v", got, err)
	}
	// A new report is open beside the resolved ones.
	c := store.Report{ID: store.NewID(store.PrefixReport), By: w.alice, UserID: w.carol, Reason: "x", TS: ts(50)}
	must(t, s.AddReport(ctx, c))
	if got, err := s.Reports(ctx, true, "", 0); err != nil || !slices.Equal(idsOfReports(got), []string{c.ID}) {
		t.Fatalf("open reports: %v, %v; want the new one", idsOfReports(got), err)
	}
}

func testReportsConcurrentResolve(t *testing.T, s store.Store) {
	ctx := t.Context()
	w := newWorld(t, s)
	r := store.Report{ID: store.NewID(store.PrefixReport), By: w.alice, UserID: w.bob, Reason: "spam", TS: ts(1)}
	must(t, s.AddReport(ctx, r))
	const n = 8
	errs := make([]error, n)
	resolution := func(i int) string {
		if i%2 == 0 {
			return "banned"
		}
		return "dismissed"
	}
	race(n, func(i int) {
		errs[i] = s.ResolveReport(ctx, r.ID, resolution(i), fmt.Sprint("admin", i), ts(int64(10+i)))
	})
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("two resolutions of one report succeeded: %d and %d", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("resolution %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no resolution of the report succeeded")
	}
	got, err := s.Report(ctx, r.ID)
	must(t, err)
	if got.Resolution != resolution(winner) || got.ResolvedBy != fmt.Sprint("admin", winner) || got.ResolvedTS != ts(int64(10+winner)) {
		t.Fatalf("report after the race: %+v; want the winner's (%d) resolution", got, winner)
	}
}
