package embedded

import (
	"context"
	"encoding/binary"
	"fmt"

	"github.com/tern-im/tern/store"
)

// Kinds of mark moves in tMarks.
const (
	markDelivered byte = 'd'
	markRead      byte = 'r'
)

// markPrefix returns tMarks chatID 0 userID 0 kind: the start of the moves
// of one reader's mark of one kind in one chat.
func markPrefix(chatID, userID string, kind byte) []byte {
	k := make([]byte, 0, 1+len(chatID)+1+len(userID)+1+1+8)
	k = append(k, tMarks)
	k = append(k, chatID...)
	k = append(k, sep)
	k = append(k, userID...)
	k = append(k, sep, kind)
	return k
}

// mark records that userID's mark of kind in chatID moved up to seq at ts.
// Each move is one small record keyed by the seq it reached, so that "when
// did the mark first reach seq S" is one seek to the first record at or
// above S; a move covers every message between the previous mark and seq.
func (w *wtx) mark(chatID, userID string, kind byte, seq, ts int64) {
	k := binary.BigEndian.AppendUint64(markPrefix(chatID, userID, kind), uint64(seq))
	w.put(k, binary.BigEndian.AppendUint64(nil, uint64(ts)))
}

// MessageMarks implements store.Messages.
func (s *Store) MessageMarks(ctx context.Context, chatID string, seq int64, userIDs []string) ([]store.Marks, error) {
	out := make([]store.Marks, len(userIDs))
	err := s.snapshot(ctx, func(r reader) error {
		for i, u := range userIDs {
			out[i] = store.Marks{UserID: u}
			if !validID(chatID) || !validID(u) {
				continue
			}
			for _, kind := range []byte{markDelivered, markRead} {
				p := markPrefix(chatID, u, kind)
				var ts int64
				end := append(p[:len(p)-1:len(p)-1], kind+1)
				err := r.scan(binary.BigEndian.AppendUint64(p, uint64(seq)), end, func(_, v []byte) (bool, error) {
					ts = u64(v)
					return false, nil
				})
				if err != nil {
					return err
				}
				if kind == markDelivered {
					out[i].DeliveredTS = ts
				} else {
					out[i].ReadTS = ts
				}
			}
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("marks of %s seq %d: %w", chatID, seq, err)
	}
	return out, nil
}
