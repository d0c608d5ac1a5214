package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tern-im/tern/store"
)

// AddReport implements store.Reports. Reports are rare and read by admins,
// so a JSON record serves.
func (s *Store) AddReport(ctx context.Context, r store.Report) error {
	if !validID(r.ID) || !validID(r.By) || !validID(r.UserID) {
		return fmt.Errorf("add report: %w", errInvalid("report, reporter or reported user id"))
	}
	b, err := json.Marshal(r)
	if err != nil {
		return fmt.Errorf("add report: %w", err)
	}
	err = s.write(ctx, func(w *wtx) error {
		// Keyed by time, then id: ids sort by time only to the
		// millisecond. The index record keeps ids unique.
		idx := key(tReportIDs, r.ID)
		if w.has(idx) {
			return store.ErrConflict
		}
		w.put(idx, []byte{})
		w.put(append(binary.BigEndian.AppendUint64([]byte{tReports}, uint64(r.TS)), r.ID...), b)
		return nil
	})
	if err != nil {
		return fmt.Errorf("add report %s: %w", r.ID, err)
	}
	return nil
}

// Reports implements store.Reports: the newest are the last keys.
func (s *Store) Reports(ctx context.Context, limit int) ([]store.Report, error) {
	var out []store.Report
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		it, err := r.r.NewIter(&pebble.IterOptions{LowerBound: []byte{tReports}, UpperBound: []byte{tReports + 1}})
		if err != nil {
			return err
		}
		for ok := it.Last(); ok && (limit <= 0 || len(out) < limit); ok = it.Prev() {
			var rep store.Report
			if err := json.Unmarshal(it.Value(), &rep); err != nil {
				_ = it.Close()
				return fmt.Errorf("%w: report %q: %w", errCorrupt, it.Key(), err)
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
