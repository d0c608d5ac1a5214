package embedded

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tern-im/tern/store"
)

// This file holds the small, rarely written records: users, devices, codes
// and secrets. They are JSON: a few hundred bytes each, written on sign-in,
// so readability and painless schema growth matter more than speed.

// decodeJSON decodes raw, the record at k, into v; ErrNotFound if raw is
// nil (there is no record).
func decodeJSON(k, raw []byte, v any) error {
	if raw == nil {
		return store.ErrNotFound
	}
	if err := json.Unmarshal(raw, v); err != nil {
		return fmt.Errorf("%w: %q: %v", errCorrupt, k, err)
	}
	return nil
}

// errInvalid is a request refused whatever the store's state; it wraps
// store.ErrInvalid, which tells callers it is their bug, not an outage.
func errInvalid(what string) error { return invalidError(what) }

type invalidError string

func (e invalidError) Error() string { return "store/embedded: invalid " + string(e) }
func (invalidError) Unwrap() error   { return store.ErrInvalid }

// EnsureUser implements store.Users.
func (s *Store) EnsureUser(ctx context.Context, phone, newID string, now time.Time) (store.User, bool, error) {
	if phone == "" {
		return store.User{}, false, errInvalid("phone")
	}
	// Most calls are sign-ins of existing users: answer them with a read,
	// without queuing behind writes.
	u, err := s.UserByPhone(ctx, phone)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return u, false, err
	}
	if !validID(newID) {
		return store.User{}, false, errInvalid("user id")
	}
	var created bool
	err = s.write(ctx, func(w *wtx) error {
		created = false
		// Checked again inside the writer: a concurrent EnsureUser of the
		// same phone may have created the user since the read above.
		if id := w.get(key(tPhones, phone)); id != nil {
			return w.getJSON(key(tUsers, string(id)), &u)
		}
		if w.has(key(tUsers, newID)) {
			return fmt.Errorf("%w: user id %s is taken", store.ErrConflict, newID)
		}
		u = store.User{ID: newID, Phone: phone, CreatedAt: now.Round(0)}
		v, err := json.Marshal(u)
		if err != nil {
			return err
		}
		w.put(key(tUsers, newID), v)
		w.put(key(tPhones, phone), []byte(newID))
		created = true
		return nil
	})
	if err != nil {
		return store.User{}, false, fmt.Errorf("ensure user: %w", err)
	}
	return u, created, nil
}

// User implements store.Users.
func (s *Store) User(ctx context.Context, id string) (store.User, error) {
	u, ok, gen := cached(s.accounts, usersOf, id)
	if ok {
		return u, nil
	}
	err := s.view(ctx, func(r reader) error {
		return r.getJSON(key(tUsers, id), &u)
	})
	if err != nil {
		return store.User{}, fmt.Errorf("user %s: %w", id, err)
	}
	fill(s.accounts, usersOf, id, u, gen)
	return u, nil
}

// UserByPhone implements store.Users. The phone and the user it names are
// read from one snapshot.
func (s *Store) UserByPhone(ctx context.Context, phone string) (store.User, error) {
	var u store.User
	err := s.snapshot(ctx, func(r reader) error {
		id, err := r.get(key(tPhones, phone))
		if err != nil {
			return err
		}
		if id == nil {
			return store.ErrNotFound
		}
		return r.getJSON(key(tUsers, string(id)), &u)
	})
	if err != nil {
		return store.User{}, fmt.Errorf("user by phone: %w", err)
	}
	return u, nil
}

// UsersByPhones implements store.Users. Users come in the order of phones,
// each once.
func (s *Store) UsersByPhones(ctx context.Context, phones []string) ([]store.User, error) {
	var users []store.User
	err := s.snapshot(ctx, func(r reader) error {
		users = users[:0]
		seen := make(map[string]bool, len(phones))
		for _, p := range phones {
			if seen[p] {
				continue
			}
			seen[p] = true
			id, err := r.get(key(tPhones, p))
			if err != nil {
				return err
			}
			if id == nil {
				continue
			}
			var u store.User
			if err := r.getJSON(key(tUsers, string(id)), &u); err != nil {
				return err
			}
			users = append(users, u)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("users by phones: %w", err)
	}
	return users, nil
}

// UpdateProfile implements store.Users: read, patch and write in one
// writer step.
func (s *Store) UpdateProfile(ctx context.Context, id string, p store.ProfilePatch) (store.User, error) {
	var cur store.User
	err := s.write(ctx, func(w *wtx) error {
		cur = store.User{}
		if err := w.getJSON(key(tUsers, id), &cur); err != nil {
			return err
		}
		p.Apply(&cur)
		v, err := json.Marshal(cur)
		if err != nil {
			return err
		}
		w.put(key(tUsers, id), v)
		return nil
	})
	if err != nil {
		return store.User{}, fmt.Errorf("update profile %s: %w", id, err)
	}
	return cur, nil
}

// CreateDevice implements store.Devices. The user must exist (ErrNotFound)
// and the id must be new (ErrConflict).
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	if !validID(d.ID) || !validID(d.UserID) {
		return errInvalid("device or user id")
	}
	err := s.write(ctx, func(w *wtx) error {
		if !w.has(key(tUsers, d.UserID)) {
			return fmt.Errorf("user %s: %w", d.UserID, store.ErrNotFound)
		}
		if w.has(key(tDevices, d.ID)) {
			return store.ErrConflict
		}
		v, err := json.Marshal(d)
		if err != nil {
			return err
		}
		w.put(key(tDevices, d.ID), v)
		w.put(pairKey(tUserDevices, d.UserID, d.ID), []byte{})
		// A new device starts at the end of its user's feed: what came
		// before it was for the devices there were.
		w.put(key(tHeads, d.ID), head{Acked: w.feedLast(d.UserID), User: d.UserID}.encode())
		return nil
	})
	if err != nil {
		return fmt.Errorf("create device %s: %w", d.ID, err)
	}
	return nil
}

// Device implements store.Devices.
func (s *Store) Device(ctx context.Context, id string) (store.Device, error) {
	d, ok, gen := cached(s.accounts, devicesOf, id)
	if ok {
		return d, nil
	}
	err := s.view(ctx, func(r reader) error {
		return r.getJSON(key(tDevices, id), &d)
	})
	if err != nil {
		return store.Device{}, fmt.Errorf("device %s: %w", id, err)
	}
	fill(s.accounts, devicesOf, id, d, gen)
	return d, nil
}

// UserDevices implements store.Devices; devices come oldest first.
func (s *Store) UserDevices(ctx context.Context, userID string) ([]store.Device, error) {
	ds, ok, gen := cached(s.accounts, userDevicesOf, userID)
	if ok {
		return cloneDevices(ds), nil
	}
	err := s.snapshot(ctx, func(r reader) error {
		ds = ds[:0]
		ids, err := userDeviceIDs(r, userID)
		if err != nil {
			return err
		}
		for _, id := range ids {
			var d store.Device
			if err := r.getJSON(key(tDevices, id), &d); err != nil {
				return err
			}
			ds = append(ds, d)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("devices of %s: %w", userID, err)
	}
	fill(s.accounts, userDevicesOf, userID, cloneDevices(ds), gen)
	return ds, nil
}

// userDeviceIDs lists the device ids of userID in id order, which is
// creation order.
func userDeviceIDs(r reader, userID string) ([]string, error) {
	if !validID(userID) {
		return nil, nil
	}
	p := prefix(tUserDevices, userID)
	var ids []string
	err := r.scan(p, prefixEnd(p), func(k, _ []byte) (bool, error) {
		ids = append(ids, string(k[len(p):]))
		return true, nil
	})
	return ids, err
}

// updateDevice applies change to the stored device id.
func (s *Store) updateDevice(ctx context.Context, id string, change func(d *store.Device) error) error {
	return s.write(ctx, func(w *wtx) error {
		var d store.Device
		if err := w.getJSON(key(tDevices, id), &d); err != nil {
			return err
		}
		if err := change(&d); err != nil {
			return err
		}
		v, err := json.Marshal(d)
		if err != nil {
			return err
		}
		w.put(key(tDevices, id), v)
		return nil
	})
}

// RotateRefresh implements store.Devices.
func (s *Store) RotateRefresh(ctx context.Context, deviceID string, oldHash, newHash []byte, expires time.Time) error {
	oldHash, newHash = bytes.Clone(oldHash), bytes.Clone(newHash)
	err := s.updateDevice(ctx, deviceID, func(d *store.Device) error {
		if !bytes.Equal(d.RefreshHash, oldHash) {
			return store.ErrConflict
		}
		d.PrevRefreshHash, d.RefreshHash, d.RefreshExpires = oldHash, newHash, expires
		return nil
	})
	if err != nil {
		return fmt.Errorf("rotate refresh of %s: %w", deviceID, err)
	}
	return nil
}

// TouchDevice implements store.Devices.
func (s *Store) TouchDevice(ctx context.Context, id string, lastSeen time.Time) error {
	err := s.updateDevice(ctx, id, func(d *store.Device) error {
		d.LastSeen = lastSeen
		return nil
	})
	if err != nil {
		return fmt.Errorf("touch device %s: %w", id, err)
	}
	return nil
}

// SetPush implements store.Devices.
func (s *Store) SetPush(ctx context.Context, id, provider, token string) error {
	err := s.updateDevice(ctx, id, func(d *store.Device) error {
		d.PushProvider, d.PushToken = provider, token
		return nil
	})
	if err != nil {
		return fmt.Errorf("set push of %s: %w", id, err)
	}
	return nil
}

// DeleteDevice implements store.Devices. With the device go its head (its
// ack cursor), the feed entries only it had not acked, and its idempotency
// keys: nothing can address them any more. All of them go as point deletes
// (see wtx.del).
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	err := s.write(ctx, func(w *wtx) error {
		var d store.Device
		if err := w.getJSON(key(tDevices, id), &d); err != nil {
			return err
		}
		p := prefix(tIdem, id)
		idem := w.keys(p, prefixEnd(p))
		for _, k := range idem {
			w.del(k)
		}
		w.del(key(tHeads, id))
		w.del(pairKey(tUserDevices, d.UserID, id))
		w.del(key(tDevices, id))
		// The feed entries only this device still held back go now.
		w.trim(d.UserID)
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete device %s: %w", id, err)
	}
	return nil
}

// keys copies the keys in [lower, upper) as of the round so far.
func (w *wtx) keys(lower, upper []byte) [][]byte {
	var keys [][]byte
	_ = w.scan(lower, upper, func(k, _ []byte) (bool, error) {
		keys = append(keys, bytes.Clone(k))
		return true, nil
	}) // an engine error is in w.err
	return keys
}

// PutCode implements store.Codes.
func (s *Store) PutCode(ctx context.Context, c store.Code) error {
	if c.Phone == "" {
		return errInvalid("phone")
	}
	v, err := json.Marshal(c)
	if err != nil {
		return fmt.Errorf("put code: %w", err)
	}
	err = s.write(ctx, func(w *wtx) error {
		w.put(key(tCodes, c.Phone), v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("put code: %w", err)
	}
	return nil
}

// Code implements store.Codes.
func (s *Store) Code(ctx context.Context, phone string) (store.Code, error) {
	var c store.Code
	err := s.view(ctx, func(r reader) error {
		return r.getJSON(key(tCodes, phone), &c)
	})
	if err != nil {
		return store.Code{}, fmt.Errorf("code: %w", err)
	}
	return c, nil
}

// CountAttempt implements store.Codes. The writer goroutine serializes it,
// which is what makes the increment atomic.
func (s *Store) CountAttempt(ctx context.Context, phone string) (store.Code, error) {
	var c store.Code
	err := s.write(ctx, func(w *wtx) error {
		c = store.Code{}
		if err := w.getJSON(key(tCodes, phone), &c); err != nil {
			return err
		}
		c.Attempts++
		v, err := json.Marshal(c)
		if err != nil {
			return err
		}
		w.put(key(tCodes, phone), v)
		return nil
	})
	if err != nil {
		return store.Code{}, fmt.Errorf("count attempt: %w", err)
	}
	return c, nil
}

// DeleteCode implements store.Codes.
func (s *Store) DeleteCode(ctx context.Context, phone string) error {
	err := s.write(ctx, func(w *wtx) error {
		if !w.has(key(tCodes, phone)) {
			return store.ErrNotFound
		}
		w.del(key(tCodes, phone))
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete code: %w", err)
	}
	return nil
}

// Secret implements store.Secrets.
func (s *Store) Secret(ctx context.Context, name string, fresh []byte) ([]byte, error) {
	if name == "" || len(fresh) == 0 {
		return nil, errInvalid("secret")
	}
	var v []byte
	err := s.view(ctx, func(r reader) error {
		var err error
		v, err = r.get(key(tSecrets, name))
		return err
	})
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	if v != nil {
		return v, nil
	}
	fresh = bytes.Clone(fresh)
	err = s.write(ctx, func(w *wtx) error {
		if cur := w.get(key(tSecrets, name)); cur != nil {
			v = cur
			return nil
		}
		w.put(key(tSecrets, name), fresh)
		v = fresh
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("secret %s: %w", name, err)
	}
	return v, nil
}

// ReplaceSecret implements store.Secrets: compare and put in one write.
func (s *Store) ReplaceSecret(ctx context.Context, name string, old, next []byte) error {
	if name == "" || len(next) == 0 {
		return errInvalid("secret")
	}
	next = bytes.Clone(next)
	err := s.write(ctx, func(w *wtx) error {
		cur := w.get(key(tSecrets, name))
		switch {
		case cur == nil:
			return store.ErrNotFound
		case !bytes.Equal(cur, old):
			return store.ErrConflict
		}
		w.put(key(tSecrets, name), next)
		return nil
	})
	if err != nil {
		return fmt.Errorf("replace secret %s: %w", name, err)
	}
	return nil
}
