package embedded

import (
	"context"
	"fmt"

	"github.com/tern-im/tern/store"
)

// SetContacts implements store.AddressBooks: one key per saved number, so
// that HasContact is a point read; the old book goes in the same write.
func (s *Store) SetContacts(ctx context.Context, userID string, phones []string) error {
	if !validID(userID) {
		return fmt.Errorf("set contacts: %w", errInvalid("user id"))
	}
	for _, p := range phones {
		if p == "" {
			return fmt.Errorf("set contacts: %w", errInvalid("empty phone"))
		}
	}
	err := s.write(ctx, func(w *wtx) error {
		if !w.has(key(tUsers, userID)) {
			return store.ErrNotFound
		}
		p := prefix(tContacts, userID)
		for _, k := range w.keys(p, prefixEnd(p)) {
			w.del(k)
		}
		for _, phone := range phones {
			w.put(pairKey(tContacts, userID, phone), []byte{})
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("set contacts of %s: %w", userID, err)
	}
	return nil
}

// HasContact implements store.AddressBooks.
func (s *Store) HasContact(ctx context.Context, userID, phone string) (bool, error) {
	if !validID(userID) || phone == "" {
		return false, nil
	}
	var v []byte
	err := s.view(ctx, func(r reader) error {
		var err error
		v, err = r.get(pairKey(tContacts, userID, phone))
		return err
	})
	if err != nil {
		return false, fmt.Errorf("contact %s of %s: %w", phone, userID, err)
	}
	return v != nil, nil
}
