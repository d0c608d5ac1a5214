package embedded

import (
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tern-im/tern/store"
)

// Media files are four tables. The record (tMedia) is read by every fetch
// and written once, or twice when its last message goes. The shares
// (tMediaShares) are one key per (file, chat), so that the check of every
// fetch by a chat member is a point read and a file forwarded to
// thousands of chats costs a small key per chat rather than a record that
// grows with each. The references (tMediaRefs) are one key per message
// that carries the file, for the same reason; a delete for everyone or an
// expiry removes its message's in the batch that erases the message.
// tMediaUnshared lists the files no message carries, by the time since
// when (their creation, or the zero time once their last message went):
// the collector reads it from its start, and so never walks the files in
// use, which are nearly all of them. A file leaves it at its first share,
// in the same batch.
//
// The record starts with the time its tMediaUnshared key has (or would
// have), so that a share can find that key without decoding the JSON
// (and its thumbnail) on the writer goroutine. Only a share of a listed
// file decodes it, to see whether the collector claimed it: a claimed
// file is always listed.

// mediaRecord is the JSON of a tMedia record. Counted says the file's
// references are kept (files recorded since they are): only such a file
// is listed again when its last reference goes, as an older one may be
// carried by messages that have none. Claimed says the collector is
// deleting the file (ClaimMediaFile): it is gone to fetches and shares.
type mediaRecord struct {
	store.MediaFile
	Counted bool `json:"rc,omitempty"`
	Claimed bool `json:"gone,omitempty"`
}

// createdKey orders times as unsigned numbers: milliseconds with the sign
// bit flipped, so that a time before 1970 (a zero time.Time) sorts first
// rather than last and is collected like any other.
func createdKey(ms int64) uint64 { return uint64(ms) ^ 1<<63 }

// idleKey is createdKey of t, with the zero time as the very first key.
func idleKey(t time.Time) uint64 {
	if t.IsZero() {
		return 0
	}
	return createdKey(t.UnixMilli())
}

// listedBelow is the idleKey that the files listed as idle since before
// before are below. Records are whole milliseconds: idle < before is idle
// below before rounded up to one.
func listedBelow(before time.Time) uint64 {
	ms := before.UnixMilli()
	if before.After(time.UnixMilli(ms)) {
		ms++
	}
	return createdKey(ms)
}

// unsharedKey is the key of file id in tMediaUnshared.
func unsharedKey(created uint64, id string) []byte {
	b := make([]byte, 0, 1+8+len(id))
	b = append(b, tMediaUnshared)
	b = binary.BigEndian.AppendUint64(b, created)
	return append(b, id...)
}

// decodeMedia parses a tMedia record.
func decodeMedia(k, v []byte) (store.MediaFile, error) {
	r, err := decodeMediaRecord(k, v)
	return r.MediaFile, err
}

func decodeMediaRecord(k, v []byte) (mediaRecord, error) {
	var r mediaRecord
	if len(v) < 8 {
		return r, fmt.Errorf("%w: media file %q: short record", errCorrupt, k)
	}
	if err := json.Unmarshal(v[8:], &r); err != nil {
		return r, fmt.Errorf("%w: media file %q: %v", errCorrupt, k, err)
	}
	return r, nil
}

// CreateMediaFile implements store.MediaFiles.
func (s *Store) CreateMediaFile(ctx context.Context, f store.MediaFile) error {
	if !validID(f.ID) || !validID(f.Owner) {
		return fmt.Errorf("create media file: %w", errInvalid("file or owner id"))
	}
	// Milliseconds, as the other adapters keep it: the index key is in
	// milliseconds, and the record must agree with it.
	f.CreatedAt = f.CreatedAt.UTC().Truncate(time.Millisecond)
	j, err := json.Marshal(mediaRecord{MediaFile: f, Counted: true})
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
		rec, err := decodeMediaRecord(k, v)
		if err != nil {
			return err
		}
		if rec.Claimed {
			return store.ErrNotFound // being deleted: nobody may send it now
		}
		f = rec.MediaFile
		return nil
	})
	if err != nil {
		return store.MediaFile{}, fmt.Errorf("media file %s: %w", id, err)
	}
	return f, nil
}

// ShareMediaFile implements store.MediaFiles.
func (s *Store) ShareMediaFile(ctx context.Context, id, chatID, msgID string) error {
	if !validID(id) || !validID(chatID) || !validID(msgID) {
		return fmt.Errorf("share media file: %w", errInvalid("file, chat or message id"))
	}
	err := s.write(ctx, func(w *wtx) error {
		rec := w.get(key(tMedia, id))
		if rec == nil {
			return store.ErrNotFound // or an engine error, which the writer reports instead
		}
		if len(rec) < 8 {
			return fmt.Errorf("%w: media file %s: short record", errCorrupt, id)
		}
		// Only a share of a listed file finds the index key; deleting it
		// blindly would leave a tombstone per share in the range the
		// collector scans. Such a file may be claimed: checked before
		// anything is written, as a failed request's writes stay in the
		// batch.
		uk := unsharedKey(binary.BigEndian.Uint64(rec), id)
		listed := w.has(uk)
		if listed {
			r, err := decodeMediaRecord(key(tMedia, id), rec)
			if err != nil {
				return err
			}
			if r.Claimed {
				return store.ErrNotFound // its bytes may be gone already
			}
		}
		if sk := pairKey(tMediaShares, id, chatID); !w.has(sk) {
			w.put(sk, []byte{})
		}
		if rk := pairKey(tMediaRefs, id, msgID); !w.has(rk) {
			w.put(rk, []byte(chatID))
		}
		if listed {
			w.del(uk)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("share media file %s to %s: %w", id, chatID, err)
	}
	return nil
}

// ReleaseMediaFile implements store.MediaFiles.
func (s *Store) ReleaseMediaFile(ctx context.Context, id, msgID string, idle time.Time) error {
	if !validID(id) || !validID(msgID) {
		return nil // no such reference
	}
	err := s.write(ctx, func(w *wtx) error {
		w.releaseMedia(id, msgID, idleKey(idle))
		return nil
	})
	if err != nil {
		return fmt.Errorf("release media file %s from %s: %w", id, msgID, err)
	}
	return nil
}

// releaseMedia removes the reference of message msgID to file id and, if
// it was the last of a counted file, lists the file as idle since idle
// (an idleKey). A record that does not decode stays as it is (and is
// logged): the file is kept, which is the safe side.
func (w *wtx) releaseMedia(id, msgID string, idle uint64) {
	if id == "" || !validID(id) || !validID(msgID) {
		return
	}
	rk := pairKey(tMediaRefs, id, msgID)
	if !w.has(rk) {
		return
	}
	w.del(rk)
	p := prefix(tMediaRefs, id)
	more := false
	_ = w.scan(p, prefixEnd(p), func([]byte, []byte) (bool, error) { more = true; return false, nil })
	if more {
		return
	}
	k := key(tMedia, id)
	rec := w.get(k)
	if rec == nil {
		return
	}
	r, err := decodeMediaRecord(k, rec)
	if err != nil {
		w.log.Error("store/embedded: a media record does not decode; its file is kept", "media_id", id, "err", err)
		return
	}
	if !r.Counted {
		return
	}
	if old := unsharedKey(binary.BigEndian.Uint64(rec), id); w.has(old) {
		w.del(old)
	}
	v := binary.BigEndian.AppendUint64(make([]byte, 0, len(rec)), idle)
	w.put(k, append(v, rec[8:]...))
	w.put(unsharedKey(idle, id), []byte{})
}

// ClaimMediaFile implements store.MediaFiles: the checks and the claim are
// one request of the writer, which also runs every share, so no share can
// come between them. A claim is final (nothing takes it back), so a file
// claimed already is given again at once: its collector stopped before
// DeleteMediaFile, and no share can have come since.
func (s *Store) ClaimMediaFile(ctx context.Context, id string, listedBefore time.Time) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	below := listedBelow(listedBefore)
	claimed := false
	err := s.write(ctx, func(w *wtx) error {
		claimed = false // a request retried alone runs again
		k := key(tMedia, id)
		rec := w.get(k)
		if rec == nil {
			return nil // or an engine error, which the writer reports instead
		}
		if len(rec) < 8 {
			return fmt.Errorf("%w: media file %s: short record", errCorrupt, id)
		}
		idle := binary.BigEndian.Uint64(rec)
		if !w.has(unsharedKey(idle, id)) {
			return nil // shared since it was listed
		}
		r, err := decodeMediaRecord(k, rec)
		if err != nil {
			return err
		}
		if r.Claimed {
			claimed = true
			return nil
		}
		if idle >= below {
			return nil // released again since, with a grace of its own
		}
		p := prefix(tMediaRefs, id)
		carried := false
		if err := w.scan(p, prefixEnd(p), func([]byte, []byte) (bool, error) { carried = true; return false, nil }); err != nil {
			return err
		}
		if carried {
			return nil
		}
		r.Claimed = true
		j, err := json.Marshal(r)
		if err != nil {
			return err
		}
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(j)), idle)
		w.put(k, append(v, j...))
		claimed = true
		return nil
	})
	if err != nil {
		return false, fmt.Errorf("claim media file %s: %w", id, err)
	}
	return claimed, nil
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

// MediaFileRefs implements store.MediaFiles; the messages come in id
// order.
func (s *Store) MediaFileRefs(ctx context.Context, id string, limit int) ([]store.MediaRef, error) {
	if !validID(id) {
		return nil, nil
	}
	var out []store.MediaRef
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		p := prefix(tMediaRefs, id)
		return r.scan(p, prefixEnd(p), func(k, v []byte) (bool, error) {
			out = append(out, store.MediaRef{ChatID: string(v), MsgID: string(k[len(p):])})
			return limit <= 0 || len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("references of media file %s: %w", id, err)
	}
	return out, nil
}

// UnsharedMediaFiles implements store.MediaFiles. The index and the
// records are read from one snapshot, so that a file shared, released or
// deleted meanwhile is seen in one state or the other, never half.
func (s *Store) UnsharedMediaFiles(ctx context.Context, before time.Time, limit int) ([]store.MediaFile, error) {
	upper := binary.BigEndian.AppendUint64([]byte{tMediaUnshared}, listedBelow(before))
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

// DeleteMediaFile implements store.MediaFiles: the record, its index key,
// its shares and references go in one batch.
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
		for _, t := range []byte{tMediaShares, tMediaRefs} {
			p := prefix(t, id)
			for _, sk := range w.keys(p, prefixEnd(p)) {
				w.del(sk)
			}
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete media file %s: %w", id, err)
	}
	return nil
}
