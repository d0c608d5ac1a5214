package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"fmt"
	"slices"

	"github.com/tern-im/tern/store"
)

// userChatKey is t userID 0x00 chatID 0x00 seq: a user's mark on one
// message, the user's marks in a chat a range.
func userChatKey(t byte, userID, chatID string, seq int64) []byte {
	return binary.BigEndian.AppendUint64(append(pairKey(t, userID, chatID), sep), uint64(seq))
}

// HideMessage implements store.UserMarks.
func (s *Store) HideMessage(ctx context.Context, userID, chatID string, seq int64) error {
	if !validID(userID) || !validID(chatID) || seq <= 0 {
		return fmt.Errorf("hide message: %w", errInvalid("user, chat or seq"))
	}
	err := s.write(ctx, func(w *wtx) error {
		w.put(userChatKey(tHidden, userID, chatID, seq), []byte{})
		return nil
	})
	if err != nil {
		return fmt.Errorf("hide message %d of %s for %s: %w", seq, chatID, userID, err)
	}
	return nil
}

// HiddenSeqs implements store.UserMarks.
func (s *Store) HiddenSeqs(ctx context.Context, userID, chatID string, from, to int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if !validID(userID) || !validID(chatID) || to < from {
		return out, nil
	}
	err := s.view(ctx, func(r reader) error {
		clear(out)
		return r.scan(userChatKey(tHidden, userID, chatID, max(from, 0)), userChatKey(tHidden, userID, chatID, to+1),
			func(k, _ []byte) (bool, error) {
				out[seqOf(k)] = true
				return true, nil
			})
	})
	if err != nil {
		return nil, fmt.Errorf("hidden messages of %s in %s: %w", userID, chatID, err)
	}
	return out, nil
}

// SetStar implements store.UserMarks.
func (s *Store) SetStar(ctx context.Context, userID string, st store.Star, on bool) error {
	if !validID(userID) || !validID(st.ChatID) || st.Seq <= 0 {
		return fmt.Errorf("star: %w", errInvalid("user, chat or seq"))
	}
	err := s.write(ctx, func(w *wtx) error {
		k := userChatKey(tStars, userID, st.ChatID, st.Seq)
		switch {
		case !on:
			if w.has(k) {
				w.del(k)
			}
		case !w.has(k):
			w.put(k, append(binary.AppendVarint(nil, st.TS), st.MsgID...))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("star %d of %s for %s: %w", st.Seq, st.ChatID, userID, err)
	}
	return nil
}

// Starred implements store.UserMarks: a user's stars are few enough to
// read whole and sort by time.
func (s *Store) Starred(ctx context.Context, userID string, limit int) ([]store.Star, error) {
	if !validID(userID) {
		return nil, nil
	}
	var out []store.Star
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		p := prefix(tStars, userID)
		return r.scan(p, prefixEnd(p), func(k, v []byte) (bool, error) {
			rest := k[len(p):]
			i := bytes.IndexByte(rest, sep)
			ts, n := binary.Varint(v)
			if i < 0 || len(rest) != i+1+8 || n <= 0 {
				return false, fmt.Errorf("%w: star record %q", errCorrupt, k)
			}
			out = append(out, store.Star{ChatID: string(rest[:i]), Seq: seqOf(k), MsgID: string(v[n:]), TS: ts})
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("stars of %s: %w", userID, err)
	}
	slices.SortStableFunc(out, func(a, b store.Star) int {
		return cmp.Or(cmp.Compare(b.TS, a.TS), cmp.Compare(b.Seq, a.Seq))
	})
	if limit > 0 && len(out) > limit {
		out = out[:limit]
	}
	return out, nil
}
