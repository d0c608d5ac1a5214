package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"

	"github.com/tern-im/tern/store"
)

// PutNodeReport implements store.NodeReports.
func (s *Store) PutNodeReport(ctx context.Context, r store.NodeReport) error {
	if !validID(r.NodeID) {
		return fmt.Errorf("put node report: %w", errInvalid("node id"))
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(r.Body)), uint64(r.At.UnixMilli()))
	v = append(v, r.Body...)
	if err := s.write(ctx, func(w *wtx) error { w.put(key(tNodeReports, r.NodeID), v); return nil }); err != nil {
		return fmt.Errorf("put node report %s: %w", r.NodeID, err)
	}
	return nil
}

// NodeReports implements store.NodeReports.
func (s *Store) NodeReports(ctx context.Context) ([]store.NodeReport, error) {
	var out []store.NodeReport
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		return r.scan([]byte{tNodeReports}, []byte{tNodeReports + 1}, func(k, v []byte) (bool, error) {
			if len(v) < 8 {
				return false, fmt.Errorf("%w: node report %q", errCorrupt, k)
			}
			out = append(out, store.NodeReport{NodeID: string(k[1:]),
				At:   time.UnixMilli(int64(binary.BigEndian.Uint64(v))).UTC(),
				Body: append([]byte(nil), v[8:]...)})
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("node reports: %w", err)
	}
	return out, nil
}

// DeleteNodeReport implements store.NodeReports.
func (s *Store) DeleteNodeReport(ctx context.Context, nodeID string) error {
	if err := s.write(ctx, func(w *wtx) error { w.del(key(tNodeReports, nodeID)); return nil }); err != nil {
		return fmt.Errorf("delete node report %s: %w", nodeID, err)
	}
	return nil
}
