package embedded

import (
	"context"
	"encoding/binary"
	"fmt"
	"time"
)

// TakeLease implements store.Leases. The writer serialises takes, so the
// check and the write are one step.
func (s *Store) TakeLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error) {
	if !validID(name) || !validID(holder) {
		return false, fmt.Errorf("take lease: %w", errInvalid("lease name or holder"))
	}
	took := false
	err := s.write(ctx, func(w *wtx) error {
		took = false
		if cur := w.get(key(tLeases, name)); len(cur) >= 8 {
			end := int64(binary.BigEndian.Uint64(cur))
			if string(cur[8:]) != holder && end > now.UnixMilli() {
				return nil
			}
		}
		w.put(key(tLeases, name), append(binary.BigEndian.AppendUint64(nil, uint64(until.UnixMilli())), holder...))
		took = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("take lease %s: %w", name, err)
	}
	return took, nil
}

// ReleaseLease implements store.Leases.
func (s *Store) ReleaseLease(ctx context.Context, name, holder string) error {
	err := s.write(ctx, func(w *wtx) error {
		if cur := w.get(key(tLeases, name)); len(cur) >= 8 && string(cur[8:]) == holder {
			w.del(key(tLeases, name))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("release lease %s: %w", name, err)
	}
	return nil
}
