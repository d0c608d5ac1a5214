package embedded

import (
	"bytes"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"time"

	"github.com/tern-im/tern/store"
)

// The business API's records. Businesses, tokens and templates are few,
// small and rarely written: JSON, like the admin records. The uniqueness of
// phone number and WABA ids is the writer's: their index entries are
// checked and written in the same writer step as the record, which makes
// it hold under concurrent calls without locks. The customer-service
// windows are many (a business's customers) and raised by every message a
// customer sends it, so they are a fixed 8 bytes each.

// CreateBusiness implements store.Businesses.
func (s *Store) CreateBusiness(ctx context.Context, b store.Business) error {
	if !validID(b.UserID) || b.DeviceID == "" || !validID(b.PhoneNumberID) || !validID(b.WABAID) {
		return fmt.Errorf("create business: %w", errInvalid("user, device, phone number or WABA id"))
	}
	v, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("create business: %w", err)
	}
	err = s.write(ctx, func(w *wtx) error {
		if w.has(key(tBusinesses, b.UserID)) {
			return fmt.Errorf("user is a business already: %w", store.ErrConflict)
		}
		if w.has(key(tBusinessPhoneIDs, b.PhoneNumberID)) {
			return fmt.Errorf("phone number id %q is taken: %w", b.PhoneNumberID, store.ErrConflict)
		}
		if w.has(key(tBusinessWABAs, b.WABAID)) {
			return fmt.Errorf("WABA id %q is taken: %w", b.WABAID, store.ErrConflict)
		}
		w.put(key(tBusinesses, b.UserID), v)
		w.put(key(tBusinessPhoneIDs, b.PhoneNumberID), []byte(b.UserID))
		w.put(key(tBusinessWABAs, b.WABAID), []byte(b.UserID))
		return nil
	})
	if err != nil {
		return fmt.Errorf("create business %s: %w", b.UserID, err)
	}
	return nil
}

// Business implements store.Businesses.
func (s *Store) Business(ctx context.Context, userID string) (store.Business, error) {
	var b store.Business
	err := s.view(ctx, func(r reader) error {
		b = store.Business{}
		return r.getJSON(key(tBusinesses, userID), &b)
	})
	if err != nil {
		return store.Business{}, fmt.Errorf("business %s: %w", userID, err)
	}
	return b, nil
}

// BusinessByPhoneNumberID implements store.Businesses.
func (s *Store) BusinessByPhoneNumberID(ctx context.Context, id string) (store.Business, error) {
	b, err := s.businessBy(ctx, tBusinessPhoneIDs, id)
	if err != nil {
		return store.Business{}, fmt.Errorf("business by phone number id %s: %w", id, err)
	}
	return b, nil
}

// BusinessByWABA implements store.Businesses.
func (s *Store) BusinessByWABA(ctx context.Context, id string) (store.Business, error) {
	b, err := s.businessBy(ctx, tBusinessWABAs, id)
	if err != nil {
		return store.Business{}, fmt.Errorf("business by WABA id %s: %w", id, err)
	}
	return b, nil
}

// businessBy reads the business that index table t maps id to: the entry
// and the record it points at from one snapshot.
func (s *Store) businessBy(ctx context.Context, t byte, id string) (store.Business, error) {
	var b store.Business
	err := s.snapshot(ctx, func(r reader) error {
		b = store.Business{}
		userID, err := r.get(key(t, id))
		if err != nil {
			return err
		}
		if userID == nil {
			return store.ErrNotFound
		}
		return r.getJSON(key(tBusinesses, string(userID)), &b)
	})
	return b, err
}

// UpdateBusiness implements store.Businesses. The ids and the creation
// time are taken from the stored record, so the unique indexes never need
// to change.
func (s *Store) UpdateBusiness(ctx context.Context, b store.Business) error {
	err := s.write(ctx, func(w *wtx) error {
		var cur store.Business
		if err := w.getJSON(key(tBusinesses, b.UserID), &cur); err != nil {
			return err
		}
		next := b
		next.DeviceID, next.PhoneNumberID, next.WABAID = cur.DeviceID, cur.PhoneNumberID, cur.WABAID
		next.CreatedAt = cur.CreatedAt
		v, err := json.Marshal(next)
		if err != nil {
			return err
		}
		w.put(key(tBusinesses, b.UserID), v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("update business %s: %w", b.UserID, err)
	}
	return nil
}

// defaultBusinessList is the page of ListBusinesses when the caller names
// none.
const defaultBusinessList = 50

// ListBusinesses implements store.Businesses: a walk of tBusinesses, which
// is keyed by user id, from after.
func (s *Store) ListBusinesses(ctx context.Context, after string, limit int) ([]store.Business, error) {
	if limit < 1 {
		limit = defaultBusinessList
	}
	lower := []byte{tBusinesses}
	if after != "" {
		// The first key above after's.
		lower = append(key(tBusinesses, after), 0)
	}
	var out []store.Business
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		return r.scan(lower, []byte{tBusinesses + 1}, func(k, v []byte) (bool, error) {
			var b store.Business
			if err := decodeJSON(k, v, &b); err != nil {
				return false, err
			}
			out = append(out, b)
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("list businesses: %w", err)
	}
	return out, nil
}

// businessTokens are the businesses' API tokens, indexed by business.
var businessTokens = owned[store.BusinessToken]{records: tBusinessTokens, index: tBusinessTokenIdx,
	id: func(t *store.BusinessToken) string { return t.ID }, owner: func(t *store.BusinessToken) string { return t.UserID },
	created: func(t *store.BusinessToken) time.Time { return t.CreatedAt }}

// PutBusinessToken implements store.Businesses.
func (s *Store) PutBusinessToken(ctx context.Context, t store.BusinessToken) error {
	if err := businessTokens.put(ctx, s, t); err != nil {
		return fmt.Errorf("put business token %s: %w", t.ID, err)
	}
	return nil
}

// BusinessToken implements store.Businesses.
func (s *Store) BusinessToken(ctx context.Context, id string) (store.BusinessToken, error) {
	t, err := businessTokens.get(ctx, s, id)
	if err != nil {
		return store.BusinessToken{}, fmt.Errorf("business token %s: %w", id, err)
	}
	return t, nil
}

// BusinessTokens implements store.Businesses.
func (s *Store) BusinessTokens(ctx context.Context, userID string) ([]store.BusinessToken, error) {
	out, err := businessTokens.list(ctx, s, userID)
	if err != nil {
		return nil, fmt.Errorf("business tokens of %s: %w", userID, err)
	}
	return out, nil
}

// DeleteBusinessToken implements store.Businesses.
func (s *Store) DeleteBusinessToken(ctx context.Context, id string) error {
	if err := businessTokens.del(ctx, s, id); err != nil {
		return fmt.Errorf("delete business token %s: %w", id, err)
	}
	return nil
}

// RaiseWindow implements store.Businesses. The comparison runs in the
// writer, so concurrent raises cannot lower the time: the last writer
// compares against what the one before it left.
func (s *Store) RaiseWindow(ctx context.Context, businessID, customerID string, ts int64) error {
	if !validID(businessID) || !validID(customerID) || ts <= 0 {
		return fmt.Errorf("raise window: %w", errInvalid("business id, customer id or time"))
	}
	k := pairKey(tWindows, businessID, customerID)
	err := s.write(ctx, func(w *wtx) error {
		if ts > u64(w.get(k)) {
			w.put(k, binary.BigEndian.AppendUint64(nil, uint64(ts)))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("raise window of %s with %s: %w", businessID, customerID, err)
	}
	return nil
}

// Window implements store.Businesses.
func (s *Store) Window(ctx context.Context, businessID, customerID string) (int64, error) {
	if !validID(businessID) || !validID(customerID) {
		return 0, nil // no such pair can have been raised
	}
	var ts int64
	err := s.view(ctx, func(r reader) error {
		v, err := r.get(pairKey(tWindows, businessID, customerID))
		ts = u64(v)
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("window of %s with %s: %w", businessID, customerID, err)
	}
	return ts, nil
}

// templatePrefix returns tTemplates userID 0x00 name 0x00: the start of the
// keys of every language of a template. No part holds a 0x00 (validID), so
// key order is (user, name, language) order, the order Templates lists.
func templatePrefix(userID, name string) []byte {
	return append(pairKey(tTemplates, userID, name), sep)
}

func templateKey(userID, name, language string) []byte {
	return append(templatePrefix(userID, name), language...)
}

// PutTemplate implements store.Businesses.
func (s *Store) PutTemplate(ctx context.Context, t store.Template) error {
	if !validID(t.UserID) || !validID(t.Name) || !validID(t.Language) {
		return fmt.Errorf("put template: %w", errInvalid("business id, template name or language"))
	}
	v, err := json.Marshal(t)
	if err != nil {
		return fmt.Errorf("put template: %w", err)
	}
	err = s.write(ctx, func(w *wtx) error {
		w.put(templateKey(t.UserID, t.Name, t.Language), v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("put template %s/%s of %s: %w", t.Name, t.Language, t.UserID, err)
	}
	return nil
}

// Template implements store.Businesses.
func (s *Store) Template(ctx context.Context, userID, name, language string) (store.Template, error) {
	var t store.Template
	err := store.ErrNotFound
	if validID(userID) && validID(name) && validID(language) {
		err = s.view(ctx, func(r reader) error {
			t = store.Template{}
			return r.getJSON(templateKey(userID, name, language), &t)
		})
	}
	if err != nil {
		return store.Template{}, fmt.Errorf("template %s/%s of %s: %w", name, language, userID, err)
	}
	return t, nil
}

// Templates implements store.Businesses: one prefix scan, in key order.
func (s *Store) Templates(ctx context.Context, userID string) ([]store.Template, error) {
	if !validID(userID) {
		return nil, nil
	}
	var out []store.Template
	p := prefix(tTemplates, userID)
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		return r.scan(p, prefixEnd(p), func(k, v []byte) (bool, error) {
			var t store.Template
			if err := decodeJSON(k, v, &t); err != nil {
				return false, err
			}
			out = append(out, t)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("templates of %s: %w", userID, err)
	}
	return out, nil
}

// DeleteTemplate implements store.Businesses: every language's key, in
// one writer step.
func (s *Store) DeleteTemplate(ctx context.Context, userID, name string) error {
	if !validID(userID) || !validID(name) {
		return nil // no such template can have been stored
	}
	p := templatePrefix(userID, name)
	err := s.write(ctx, func(w *wtx) error {
		for _, k := range w.keys(p, prefixEnd(p)) {
			w.del(k)
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete template %s of %s: %w", name, userID, err)
	}
	return nil
}

// Callback data is a record per message that carries some (tCallbackData)
// and a key in its time index (tCallbackAt), which the writer changes
// together, in one step: a prune reads the index's oldest keys and never
// walks the records still wanted. The record starts with the time of its
// index key, so that a put that replaces it finds the key to move without
// a scan. A message id is the last part of both keys, so it may hold any
// byte. Pruned keys leave tombstones at the front of the index, which the
// next prunes walk until compaction drops them: prunes are rare and
// batched, so that is a short walk.

// callbackAtKey is the key in tCallbackAt of the business's message put
// at at (a createdKey). Its tail is that of the record's key, which a
// prune deletes without parsing it.
func callbackAtKey(at uint64, businessID, msgID string) []byte {
	b := make([]byte, 0, 1+8+len(businessID)+1+len(msgID))
	b = append(b, tCallbackAt)
	b = binary.BigEndian.AppendUint64(b, at)
	b = append(b, businessID...)
	b = append(b, sep)
	return append(b, msgID...)
}

// PutCallbackData implements store.Businesses.
func (s *Store) PutCallbackData(ctx context.Context, businessID, msgID, data string, at time.Time) error {
	if !validID(businessID) || msgID == "" {
		return fmt.Errorf("put callback data: %w", errInvalid("business or message id"))
	}
	// Whole milliseconds, as the other adapters keep times; sign-flipped,
	// so that a time before 1970 sorts first and is pruned like any other.
	atKey := createdKey(at.UnixMilli())
	k := pairKey(tCallbackData, businessID, msgID)
	v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(data)), atKey)
	v = append(v, data...)
	err := s.write(ctx, func(w *wtx) error {
		if old := w.get(k); len(old) >= 8 {
			if oldAt := binary.BigEndian.Uint64(old); oldAt != atKey {
				w.del(callbackAtKey(oldAt, businessID, msgID))
			}
		}
		w.put(k, v)
		w.put(callbackAtKey(atKey, businessID, msgID), []byte{})
		return nil
	})
	if err != nil {
		return fmt.Errorf("put callback data of %s of %s: %w", msgID, businessID, err)
	}
	return nil
}

// CallbackData implements store.Businesses.
func (s *Store) CallbackData(ctx context.Context, businessID, msgID string) (string, error) {
	var v []byte
	err := store.ErrNotFound
	if validID(businessID) && msgID != "" {
		k := pairKey(tCallbackData, businessID, msgID)
		err = s.view(ctx, func(r reader) error {
			var err error
			if v, err = r.get(k); err == nil && v == nil {
				err = store.ErrNotFound
			}
			return err
		})
		if err == nil && len(v) < 8 {
			err = fmt.Errorf("%w: callback data %q: short record", errCorrupt, k)
		}
	}
	if err != nil {
		return "", fmt.Errorf("callback data of %s of %s: %w", msgID, businessID, err)
	}
	return string(v[8:]), nil
}

// PruneCallbackData implements store.Businesses: the index's keys below
// before, from its start, and their records, in one writer step.
func (s *Store) PruneCallbackData(ctx context.Context, before time.Time, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	upper := binary.BigEndian.AppendUint64([]byte{tCallbackAt}, listedBelow(before))
	var n int
	err := s.write(ctx, func(w *wtx) error {
		n = 0
		var old [][]byte
		// Checked before the first deletion: a request fails before it
		// writes anything, or not at all.
		if err := w.scan([]byte{tCallbackAt}, upper, func(k, _ []byte) (bool, error) {
			if len(k) < 1+8+2 || bytes.IndexByte(k[1+8:], sep) < 1 {
				return false, fmt.Errorf("%w: callback data index key %q", errCorrupt, k)
			}
			old = append(old, bytes.Clone(k))
			return len(old) < limit, nil
		}); err != nil {
			return err
		}
		for _, k := range old {
			w.del(k)
			w.del(append([]byte{tCallbackData}, k[1+8:]...))
		}
		n = len(old)
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("prune callback data: %w", err)
	}
	return n, nil
}
