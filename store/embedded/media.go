package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tern-im/tern/store"
)

// Media files are three tables. The record (tMedia) is read by every fetch
// and written once. The shares (tMediaShares) are one key per (file, chat),
// so that the check of every fetch by a chat member is a point read
// and a file forwarded to thousands of chats costs a small key per chat
// rather than a record that grows with each. tMediaUnshared indexes the
// files never shared by creation time: the collector reads it from its
// start, and so never walks the shared files, which are nearly all of
// them. A file leaves it at its first share, in the same batch.
//
// The record starts with its creation key, so that a share can find the
// file's index key without decoding the JSON (and its thumbnail) on the
// writer goroutine.

// createdKey orders creation times as unsigned numbers: milliseconds with
// the sign bit flipped, so that a time before 1970 (a zero time.Time) sorts
// first rather than last and is collected like any other.
func createdKey(ms int64) uint64 { return uint64(ms) ^ 1<<63 }

// unsharedKey is the key of file id in tMediaUnshared.
func unsharedKey(created uint64, id string) []byte {
	b := make([]byte, 0, 1+8+len(id))
	b = append(b, tMediaUnshared)
	b = binary.BigEndian.AppendUint64(b, created)
	return append(b, id...)
}

// decodeMedia parses a tMedia record.
func decodeMedia(k, v []byte) (store.MediaFile, error) {
	var f store.MediaFile
	if len(v) < 8 {
		return f, fmt.Errorf("%w: media file %q: short record", errCorrupt, k)
	}
	if err := json.Unmarshal(v[8:], &f); err != nil {
		return f, fmt.Errorf("%w: media file %q: %v", errCorrupt, k, err)
	}
	return f, nil
}

// CreateMediaFile implements store.MediaFiles.
func (s *Store) CreateMediaFile(ctx context.Context, f store.MediaFile) error {
	if !validID(f.ID) || !validID(f.Owner) {
		return fmt.Errorf("create media file: %w", errInvalid("file or owner id"))
	}
	// Milliseconds, as the other adapters keep it: the index key is in
	// milliseconds, and the record must agree with it.
	f.CreatedAt = f.CreatedAt.UTC().Truncate(time.Millisecond)
	j, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("create media file: %w", err)
	}
	created := createdKey(f.CreatedAt.UnixMilli())
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(j)), created)
	v = append(v, j...)
	err = s.write(ctx, func(w *wtx) error {
		k := key(tMedia, f.ID)
		if w.has(k) {
			return store.ErrConflict
		}
		w.put(k, v)
		w.put(unsharedKey(created, f.ID), []byte{})
		return nil
	})
	if err != nil {
		return fmt.Errorf("create media file %s: %w", f.ID, err)
	}
	return nil
}

// MediaFile implements store.MediaFiles.
func (s *Store) MediaFile(ctx context.Context, id string) (store.MediaFile, error) {
	if !validID(id) {
		return store.MediaFile{}, fmt.Errorf("media file %q: %w", id, store.ErrNotFound)
	}
	var f store.MediaFile
	err := s.view(ctx, func(r reader) error {
		k := key(tMedia, id)
		v, err := r.get(k)
		if err != nil {
			return err
		}
		if v == nil {
			return store.ErrNotFound
		}
		f, err = decodeMedia(k, v)
		return err
	})
	if err != nil {
		return store.MediaFile{}, fmt.Errorf("media file %s: %w", id, err)
	}
	return f, nil
}

// ShareMediaFile implements store.MediaFiles.
func (s *Store) ShareMediaFile(ctx context.Context, id, chatID string) error {
	if !validID(id) || !validID(chatID) {
		return fmt.Errorf("share media file: %w", errInvalid("file or chat id"))
	}
	err := s.write(ctx, func(w *wtx) error {
		rec := w.get(key(tMedia, id))
		if rec == nil {
			return store.ErrNotFound // or an engine error, which the writer reports instead
		}
		if len(rec) < 8 {
			return fmt.Errorf("%w: media file %s: short record", errCorrupt, id)
		}
		sk := pairKey(tMediaShares, id, chatID)
		if w.has(sk) {
			return nil
		}
		w.put(sk, []byte{})
		// Only the first share finds the index key; deleting it blindly
		// would leave a tombstone per share in the range the collector
		// scans.
		if uk := unsharedKey(binary.BigEndian.Uint64(rec), id); w.has(uk) {
			w.del(uk)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("share media file %s to %s: %w", id, chatID, err)
	}
	return nil
}

// MediaFileShared implements store.MediaFiles.
func (s *Store) MediaFileShared(ctx context.Context, id, chatID string) (bool, error) {
	if !validID(id) || !validID(chatID) {
		return false, nil
	}
	var v []byte
	err := s.view(ctx, func(r reader) error {
		var err error
		v, err = r.get(pairKey(tMediaShares, id, chatID))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("share of media file %s to %s: %w", id, chatID, err)
	}
	return v != nil, nil
}

// MediaFileChats implements store.MediaFiles; the chats come in id order.
func (s *Store) MediaFileChats(ctx context.Context, id string, limit int) ([]string, error) {
	if !validID(id) {
		return nil, nil
	}
	var out []string
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		p := prefix(tMediaShares, id)
		return r.scan(p, prefixEnd(p), func(k, _ []byte) (bool, error) {
			out = append(out, string(k[len(p):]))
			return limit <= 0 || len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("chats of media file %s: %w", id, err)
	}
	return out, nil
}

// UnsharedMediaFiles implements store.MediaFiles. The index and the
// records are read from one snapshot, so that a file shared or deleted
// meanwhile is seen in one state or the other, never half.
func (s *Store) UnsharedMediaFiles(ctx context.Context, before time.Time, limit int) ([]store.MediaFile, error) {
	// Records are whole milliseconds: created < before is created below
	// before rounded up to one.
	ms := before.UnixMilli()
	if before.After(time.UnixMilli(ms)) {
		ms++
	}
	upper := binary.BigEndian.AppendUint64([]byte{tMediaUnshared}, createdKey(ms))
	var out []store.MediaFile
	err := s.snapshot(ctx, func(r reader) error {
		out = out[:0]
		return r.scan([]byte{tMediaUnshared}, upper, func(k, _ []byte) (bool, error) {
			if len(k) <= 1+8 {
				return false, fmt.Errorf("%w: unshared media key %q", errCorrupt, k)
			}
			rk := key(tMedia, string(k[1+8:]))
			v, err := r.get(rk)
			if err != nil {
				return false, err
			}
			if v == nil {
				return false, fmt.Errorf("%w: unshared media key %q without its file", errCorrupt, k)
			}
			f, err := decodeMedia(rk, v)
			if err != nil {
				return false, err
			}
			out = append(out, f)
			return limit <= 0 || len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("unshared media files: %w", err)
	}
	return out, nil
}

// DeleteMediaFile implements store.MediaFiles: the record, its index key
// and its shares go in one batch.
func (s *Store) DeleteMediaFile(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("delete media file: %w", errInvalid("file id"))
	}
	err := s.write(ctx, func(w *wtx) error {
		k := key(tMedia, id)
		rec := w.get(k)
		if rec == nil {
			return nil // shares never outlive their file: they go in its batch
		}
		w.del(k)
		if len(rec) >= 8 {
			if uk := unsharedKey(binary.BigEndian.Uint64(rec), id); w.has(uk) {
				w.del(uk)
			}
		}
		p := prefix(tMediaShares, id)
		for _, sk := range w.keys(p, prefixEnd(p)) {
			w.del(sk)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete media file %s: %w", id, err)
	}
	return nil
}
