package embedded

import (
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tern-im/tern/store"
)

// SetBlock implements store.Blocks: one key per (user, target), so that
// Blocked is a point read.
func (s *Store) SetBlock(ctx context.Context, userID, target string, on bool, ts int64) error {
	if !validID(userID) || !validID(target) {
		return fmt.Errorf("block: %w", errInvalid("user id"))
	}
	err := s.write(ctx, func(w *wtx) error {
		if !w.has(key(tUsers, userID)) || !w.has(key(tUsers, target)) {
			return store.ErrNotFound
		}
		k := pairKey(tBlocks, userID, target)
		switch {
		case !on:
			if w.has(k) {
				w.del(k)
			}
		case !w.has(k): // blocking again keeps the first time
			w.put(k, binary.AppendVarint(nil, ts))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("block %s for %s: %w", target, userID, err)
	}
	return nil
}

// Blocks implements store.Blocks.
func (s *Store) Blocks(ctx context.Context, userID string) ([]store.Block, error) {
	if !validID(userID) {
		return nil, nil
	}
	var out []store.Block
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		p := prefix(tBlocks, userID)
		return r.scan(p, prefixEnd(p), func(k, v []byte) (bool, error) {
			ts, n := binary.Varint(v)
			if n <= 0 {
				return false, fmt.Errorf("%w: block record %q", errCorrupt, k)
			}
			out = append(out, store.Block{UserID: string(k[len(p):]), TS: ts})
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", userID, err)
	}
	slices.SortStableFunc(out, func(a, b store.Block) int { return cmp.Compare(a.TS, b.TS) })
	return out, nil
}

// Blocked implements store.Blocks.
func (s *Store) Blocked(ctx context.Context, userID, target string) (bool, error) {
	if !validID(userID) || !validID(target) {
		return false, nil
	}
	var v []byte
	err := s.view(ctx, func(r reader) error {
		var err error
		v, err = r.get(pairKey(tBlocks, userID, target))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("block of %s by %s: %w", target, userID, err)
	}
	return v != nil, nil
}
