package embedded

import (
	"context"
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tern-im/tern/store"
)

// Reports are rare and read by admins, so a JSON record serves. Each is
// kept under its id in tReportIDs (reportID -> JSON store.Report): ids
// sort by creation time, so the newest reports are the table's last keys,
// a page below an id is a backward walk from it, and Report and
// ResolveReport are point reads.
//
// Stores written before reports could be resolved kept the record in
// tReports under (ts u64, reportID) and only an empty value in tReportIDs,
// to keep the ids unique. Such records are moved to tReportIDs the first
// time reports are read or resolved (migrateReports); AddReport needs no
// move, since either layout tells a taken id by its tReportIDs key. After
// the move tReports stays empty.

// Resolutions of a report (store.Report.Resolution).
const (
	resolutionDismissed = "dismissed"
	resolutionBanned    = "banned"
)

// AddReport implements store.Reports.
func (s *Store) AddReport(ctx context.Context, r store.Report) error {
	if !validID(r.ID) || !validID(r.By) || !validID(r.UserID) {
		return fmt.Errorf("add report: %w", errInvalid("report, reporter or reported user id"))
	}
	r.Resolution, r.ResolvedBy, r.ResolvedTS = "", "", 0 // a new report is open
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("add report: %w", err)
	}
	err = s.write(ctx, func(w *wtx) error {
		k := key(tReportIDs, r.ID)
		if w.has(k) {
			return store.ErrConflict
		}
		w.put(k, b)
		return nil
	})
	if err != nil {
		return fmt.Errorf("add report %s: %w", r.ID, err)
	}
	return nil
}

// migrateReports moves the records of the old layout (tReports) to
// tReportIDs. It costs one seek when there are none, which is always after
// the first move.
func (s *Store) migrateReports(ctx context.Context) error {
	old := false
	err := s.view(ctx, func(r reader) error {
		return r.scan([]byte{tReports}, []byte{tReports + 1}, func(_, _ []byte) (bool, error) {
			old = true
			return false, nil
		})
	})
	if err != nil || !old {
		return err
	}
	err = s.write(ctx, func(w *wtx) error {
		// Read everything before the first change: an error must leave
		// nothing in the round's batch.
		type move struct{ from, to, v []byte }
		var moves []move
		for _, k := range w.keys([]byte{tReports}, []byte{tReports + 1}) {
			if len(k) <= 1+8 || !validID(string(k[1+8:])) {
				return fmt.Errorf("%w: report key %q", errCorrupt, k)
			}
			to := key(tReportIDs, string(k[1+8:]))
			m := move{from: k, to: to}
			if cur := w.get(to); len(cur) == 0 {
				m.v = w.get(k) // copied by the reader
			} // else already moved (and maybe resolved since): the old record goes
			moves = append(moves, m)
		}
		if w.err != nil {
			return w.err
		}
		for _, m := range moves {
			if m.v != nil {
				w.put(m.to, m.v)
			}
			w.del(m.from)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("move reports to the id-keyed layout: %w", err)
	}
	s.log.Info("store/embedded: moved reports to the id-keyed layout")
	return nil
}

// Report implements store.Reports.
func (s *Store) Report(ctx context.Context, id string) (store.Report, error) {
	if !validID(id) {
		return store.Report{}, fmt.Errorf("report %s: %w", id, store.ErrNotFound)
	}
	if err := s.migrateReports(ctx); err != nil {
		return store.Report{}, fmt.Errorf("report %s: %w", id, err)
	}
	var rep store.Report
	err := s.view(ctx, func(r reader) error {
		rep = store.Report{}
		k := key(tReportIDs, id)
		raw, err := r.get(k)
		if err != nil {
			return err
		}
		if len(raw) == 0 {
			// None, or an id whose record of the old layout was lost.
			return store.ErrNotFound
		}
		return decodeJSON(k, raw, &rep)
	})
	if err != nil {
		return store.Report{}, fmt.Errorf("report %s: %w", id, err)
	}
	return rep, nil
}

// Reports implements store.Reports: a backward walk from before, which
// skips the resolved reports when openOnly. Reports are few enough that
// the walk needs no index of the open ones.
func (s *Store) Reports(ctx context.Context, openOnly bool, before string, limit int) ([]store.Report, error) {
	if err := s.migrateReports(ctx); err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	upper := []byte{tReportIDs + 1}
	if before != "" {
		upper = key(tReportIDs, before)
	}
	var out []store.Report
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		it, err := r.r.NewIter(&pebble.IterOptions{LowerBound: []byte{tReportIDs}, UpperBound: upper})
		if err != nil {
			return err
		}
		n := 0
		for ok := it.Last(); ok && (limit <= 0 || len(out) < limit); ok = it.Prev() {
			if n++; n%1024 == 0 {
				if err := ctx.Err(); err != nil {
					_ = it.Close()
					return err
				}
			}
			v, err := it.ValueAndErr()
			if err != nil {
				break // the iterator keeps the error for Close
			}
			if len(v) == 0 {
				continue // an id whose record of the old layout was lost
			}
			var rep store.Report
			if err := decodeJSON(it.Key(), v, &rep); err != nil {
				_ = it.Close()
				return err
			}
			if openOnly && rep.Resolution != "" {
				continue
			}
			out = append(out, rep)
		}
		return it.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	return out, nil
}

// ResolveReport implements store.Reports: the check and the change are
// one writer step, so of concurrent resolutions one finds the report open.
func (s *Store) ResolveReport(ctx context.Context, id, resolution, by string, ts int64) error {
	if resolution != resolutionDismissed && resolution != resolutionBanned {
		return fmt.Errorf("resolve report %s: %w", id, errInvalid(fmt.Sprintf("resolution %q", resolution)))
	}
	if by == "" {
		return fmt.Errorf("resolve report %s: %w", id, errInvalid("resolving admin (empty)"))
	}
	if !validID(id) {
		return fmt.Errorf("resolve report %s: %w", id, store.ErrNotFound)
	}
	if err := s.migrateReports(ctx); err != nil {
		return fmt.Errorf("resolve report %s: %w", id, err)
	}
	err := s.write(ctx, func(w *wtx) error {
		k := key(tReportIDs, id)
		raw := w.get(k)
		if w.err != nil {
			return w.err
		}
		if len(raw) == 0 {
			return store.ErrNotFound
		}
		var rep store.Report
		if err := decodeJSON(k, raw, &rep); err != nil {
			return err
		}
		if rep.Resolution != "" {
			return fmt.Errorf("already %s by %s: %w", rep.Resolution, rep.ResolvedBy, store.ErrConflict)
		}
		rep.Resolution, rep.ResolvedBy, rep.ResolvedTS = resolution, by, ts
		v, err := json.Marshal(rep)
		if err != nil {
			return err
		}
		w.put(k, v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("resolve report %s: %w", id, err)
	}
	return nil
}
