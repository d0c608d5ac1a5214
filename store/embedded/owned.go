package embedded

import (
	"cmp"
	"context"
	"encoding/json"
	"slices"
	"time"
)

// owned is a table of JSON records that each belong to an owner, with an
// index of each owner's records: admins' API keys, businesses' tokens.
type owned[T any] struct {
	records, index byte
	id, owner      func(*T) string
	created        func(*T) time.Time
}

// put stores v, moving it out of another owner's index if its id was
// that owner's.
func (o owned[T]) put(ctx context.Context, s *Store, v T) error {
	id, owner := o.id(&v), o.owner(&v)
	if !validID(id) || !validID(owner) {
		return errInvalid("id or owner id")
	}
	b, err := json.Marshal(v)
	if err != nil {
		return err
	}
	return s.write(ctx, func(w *wtx) error {
		var prev T
		if err := w.getJSON(key(o.records, id), &prev); err == nil && o.owner(&prev) != owner {
			w.del(pairKey(o.index, o.owner(&prev), id))
		}
		w.put(key(o.records, id), b)
		w.put(pairKey(o.index, owner, id), []byte{})
		return nil
	})
}

func (o owned[T]) get(ctx context.Context, s *Store, id string) (T, error) {
	var v T
	err := s.view(ctx, func(r reader) error {
		var zero T
		v = zero
		return r.getJSON(key(o.records, id), &v)
	})
	return v, err
}

// list returns owner's records, oldest first: the index and the records
// it names are read from one snapshot (an owner has a few).
func (o owned[T]) list(ctx context.Context, s *Store, owner string) ([]T, error) {
	if !validID(owner) {
		return nil, nil
	}
	var out []T
	err := s.snapshot(ctx, func(r reader) error {
		out = out[:0]
		p := prefix(o.index, owner)
		var ids []string
		err := r.scan(p, prefixEnd(p), func(k, _ []byte) (bool, error) {
			ids = append(ids, string(k[len(p):]))
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, id := range ids {
			var v T
			if err := r.getJSON(key(o.records, id), &v); err != nil {
				return err
			}
			out = append(out, v)
		}
		return nil
	})
	slices.SortFunc(out, func(a, b T) int {
		return cmp.Or(o.created(&a).Compare(o.created(&b)), cmp.Compare(o.id(&a), o.id(&b)))
	})
	return out, err
}

// del removes record id and its index entry; none is not an error.
func (o owned[T]) del(ctx context.Context, s *Store, id string) error {
	return s.write(ctx, func(w *wtx) error {
		raw := w.get(key(o.records, id))
		if raw == nil {
			return nil
		}
		var v T
		if err := decodeJSON(key(o.records, id), raw, &v); err != nil {
			return err
		}
		w.del(key(o.records, id))
		w.del(pairKey(o.index, o.owner(&v), id))
		return nil
	})
}
