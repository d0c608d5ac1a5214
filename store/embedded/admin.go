package embedded

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/cockroachdb/pebble/v2"

	"github.com/tern-im/tern/store"
)

// The admin dashboard's records: a handful of accounts, their sessions
// and keys, an audit log and bans. All are rare and small, so they are
// JSON like the account records. Uniqueness (usernames, audit and admin
// ids) is checked inside the writer, which makes it hold under concurrent
// calls without locks. Lists that need another order than their key's
// (admins, keys) are read whole and sorted: an operator has a few of each.

// CreateAdmin implements store.Admins.
func (s *Store) CreateAdmin(ctx context.Context, a store.Admin) error {
	if !validID(a.ID) || a.Username == "" {
		return fmt.Errorf("create admin: %w", errInvalid("admin id or username"))
	}
	v, err := json.Marshal(a)
	if err != nil {
		return fmt.Errorf("create admin: %w", err)
	}
	err = s.write(ctx, func(w *wtx) error {
		if w.has(key(tAdminNames, a.Username)) {
			return fmt.Errorf("username %q is taken: %w", a.Username, store.ErrConflict)
		}
		if w.has(key(tAdmins, a.ID)) {
			return fmt.Errorf("id is taken: %w", store.ErrConflict)
		}
		w.put(key(tAdmins, a.ID), v)
		w.put(key(tAdminNames, a.Username), []byte(a.ID))
		return nil
	})
	if err != nil {
		return fmt.Errorf("create admin %s: %w", a.ID, err)
	}
	return nil
}

// Admin implements store.Admins.
func (s *Store) Admin(ctx context.Context, id string) (store.Admin, error) {
	var a store.Admin
	err := s.view(ctx, func(r reader) error {
		a = store.Admin{}
		return r.getJSON(key(tAdmins, id), &a)
	})
	if err != nil {
		return store.Admin{}, fmt.Errorf("admin %s: %w", id, err)
	}
	return a, nil
}

// AdminByUsername implements store.Admins: the name and the account it
// points at are read from one snapshot.
func (s *Store) AdminByUsername(ctx context.Context, username string) (store.Admin, error) {
	var a store.Admin
	err := s.snapshot(ctx, func(r reader) error {
		a = store.Admin{}
		id, err := r.get(key(tAdminNames, username))
		if err != nil {
			return err
		}
		if id == nil {
			return store.ErrNotFound
		}
		return r.getJSON(key(tAdmins, string(id)), &a)
	})
	if err != nil {
		return store.Admin{}, fmt.Errorf("admin by username: %w", err)
	}
	return a, nil
}

// UpdateAdmin implements store.Admins. The username is taken from the
// stored record, so the name index never needs to change.
func (s *Store) UpdateAdmin(ctx context.Context, a store.Admin) error {
	err := s.write(ctx, func(w *wtx) error {
		var cur store.Admin
		if err := w.getJSON(key(tAdmins, a.ID), &cur); err != nil {
			return err
		}
		next := a
		next.Username = cur.Username
		v, err := json.Marshal(next)
		if err != nil {
			return err
		}
		w.put(key(tAdmins, a.ID), v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("update admin %s: %w", a.ID, err)
	}
	return nil
}

// Admins implements store.Admins.
func (s *Store) Admins(ctx context.Context) ([]store.Admin, error) {
	var out []store.Admin
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		return r.scan([]byte{tAdmins}, []byte{tAdmins + 1}, func(k, v []byte) (bool, error) {
			var a store.Admin
			if err := decodeJSON(k, v, &a); err != nil {
				return false, err
			}
			out = append(out, a)
			return true, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("admins: %w", err)
	}
	slices.SortFunc(out, func(a, b store.Admin) int {
		return cmp.Or(a.CreatedAt.Compare(b.CreatedAt), cmp.Compare(a.ID, b.ID))
	})
	return out, nil
}

// PutAdminSession implements store.Admins. Pebble has no expiry, so each
// new session also deletes its admin's sessions that had expired by the
// time it was made (its CreatedAt): an admin's sessions stay as few as the
// browsers it signs in from, without a sweeper.
func (s *Store) PutAdminSession(ctx context.Context, as store.AdminSession) error {
	if as.ID == "" || !validID(as.AdminID) {
		return fmt.Errorf("put admin session: %w", errInvalid("session or admin id"))
	}
	v, err := json.Marshal(as)
	if err != nil {
		return fmt.Errorf("put admin session: %w", err)
	}
	err = s.write(ctx, func(w *wtx) error {
		p := prefix(tAdminSessIdx, as.AdminID)
		for _, ik := range w.keys(p, prefixEnd(p)) {
			sk := key(tAdminSessions, string(ik[len(p):]))
			var old store.AdminSession
			raw := w.get(sk)
			if raw != nil && decodeJSON(sk, raw, &old) != nil {
				continue // corrupt: left for an operator to look at
			}
			if raw == nil || !old.ExpiresAt.After(as.CreatedAt) {
				w.del(ik)
				if raw != nil {
					w.del(sk)
				}
			}
		}
		// Unlikely (ids are digests of random tokens), but a session id
		// put again for another admin must leave the first one's index.
		var prev store.AdminSession
		if err := w.getJSON(key(tAdminSessions, as.ID), &prev); err == nil && prev.AdminID != as.AdminID {
			w.del(pairKey(tAdminSessIdx, prev.AdminID, as.ID))
		}
		w.put(key(tAdminSessions, as.ID), v)
		w.put(pairKey(tAdminSessIdx, as.AdminID, as.ID), []byte{})
		return nil
	})
	if err != nil {
		return fmt.Errorf("put admin session of %s: %w", as.AdminID, err)
	}
	return nil
}

// AdminSession implements store.Admins.
func (s *Store) AdminSession(ctx context.Context, id string, now time.Time) (store.AdminSession, error) {
	var as store.AdminSession
	err := s.view(ctx, func(r reader) error {
		as = store.AdminSession{}
		return r.getJSON(key(tAdminSessions, id), &as)
	})
	if err == nil && !now.Before(as.ExpiresAt) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.AdminSession{}, fmt.Errorf("admin session: %w", err)
	}
	return as, nil
}

// DeleteAdminSession implements store.Admins.
func (s *Store) DeleteAdminSession(ctx context.Context, id string) error {
	err := s.write(ctx, func(w *wtx) error {
		raw := w.get(key(tAdminSessions, id))
		if raw == nil {
			return nil // already gone
		}
		var as store.AdminSession
		if err := decodeJSON(key(tAdminSessions, id), raw, &as); err != nil {
			return err
		}
		w.del(key(tAdminSessions, id))
		w.del(pairKey(tAdminSessIdx, as.AdminID, id))
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete admin session: %w", err)
	}
	return nil
}

// DeleteAdminSessions implements store.Admins.
func (s *Store) DeleteAdminSessions(ctx context.Context, adminID string) error {
	if !validID(adminID) {
		return nil
	}
	err := s.write(ctx, func(w *wtx) error {
		p := prefix(tAdminSessIdx, adminID)
		for _, ik := range w.keys(p, prefixEnd(p)) {
			w.del(ik)
			w.del(key(tAdminSessions, string(ik[len(p):])))
		}
		return nil
	})
	if err != nil {
		return fmt.Errorf("delete admin sessions of %s: %w", adminID, err)
	}
	return nil
}

// apiKeys are the admins' API keys, indexed by admin.
var apiKeys = owned[store.APIKey]{records: tAPIKeys, index: tAdminKeys,
	id: func(k *store.APIKey) string { return k.ID }, owner: func(k *store.APIKey) string { return k.AdminID },
	created: func(k *store.APIKey) time.Time { return k.CreatedAt }}

// PutAPIKey implements store.Admins.
func (s *Store) PutAPIKey(ctx context.Context, k store.APIKey) error {
	if err := apiKeys.put(ctx, s, k); err != nil {
		return fmt.Errorf("put api key %s: %w", k.ID, err)
	}
	return nil
}

// APIKey implements store.Admins.
func (s *Store) APIKey(ctx context.Context, id string) (store.APIKey, error) {
	k, err := apiKeys.get(ctx, s, id)
	if err != nil {
		return store.APIKey{}, fmt.Errorf("api key %s: %w", id, err)
	}
	return k, nil
}

// APIKeys implements store.Admins.
func (s *Store) APIKeys(ctx context.Context, adminID string) ([]store.APIKey, error) {
	out, err := apiKeys.list(ctx, s, adminID)
	if err != nil {
		return nil, fmt.Errorf("api keys of %s: %w", adminID, err)
	}
	return out, nil
}

// DeleteAPIKey implements store.Admins.
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	if err := apiKeys.del(ctx, s, id); err != nil {
		return fmt.Errorf("delete api key %s: %w", id, err)
	}
	return nil
}

// AppendAudit implements store.Admins. Entries are keyed by id, which
// sorts by time, so the log's newest entries are its last keys.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	if e.ID == "" {
		return fmt.Errorf("append audit: %w", errInvalid("entry id"))
	}
	v, err := json.Marshal(e)
	if err != nil {
		return fmt.Errorf("append audit: %w", err)
	}
	err = s.write(ctx, func(w *wtx) error {
		k := key(tAudit, e.ID)
		if w.has(k) {
			return store.ErrConflict
		}
		w.put(k, v)
		return nil
	})
	if err != nil {
		return fmt.Errorf("append audit %s: %w", e.ID, err)
	}
	return nil
}

// Audit implements store.Admins: a backward walk from before.
func (s *Store) Audit(ctx context.Context, before string, limit int) ([]store.AuditEntry, error) {
	upper := []byte{tAudit + 1}
	if before != "" {
		upper = key(tAudit, before)
	}
	var out []store.AuditEntry
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		return walkBack(r, []byte{tAudit}, upper, limit, func(k, v []byte) error {
			var e store.AuditEntry
			if err := decodeJSON(k, v, &e); err != nil {
				return err
			}
			out = append(out, e)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	return out, nil
}

// walkBack calls fn on up to limit keys of [lower, upper), the last
// first (limit <= 0: all of them). k and v are only valid during the call.
func walkBack(r reader, lower, upper []byte, limit int, fn func(k, v []byte) error) error {
	it, err := r.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("iterate below %q: %w", upper, err)
	}
	n := 0
	for ok := it.Last(); ok && (limit <= 0 || n < limit); ok = it.Prev() {
		v, err := it.ValueAndErr()
		if err != nil {
			break // the iterator keeps the error for Close
		}
		if err := fn(it.Key(), v); err != nil {
			_ = it.Close()
			return err
		}
		n++
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("iterate below %q: %w", upper, err)
	}
	return nil
}

// banTimeKey is the key of userID's ban made at ts in tBanTimes.
func banTimeKey(ts int64, userID string) []byte {
	b := make([]byte, 0, 1+8+len(userID))
	b = append(b, tBanTimes)
	b = binary.BigEndian.AppendUint64(b, createdKey(ts))
	return append(b, userID...)
}

// SetBan implements store.Bans: the ban and its time index change in one
// writer step.
func (s *Store) SetBan(ctx context.Context, b store.Ban) error {
	if !validID(b.UserID) {
		return fmt.Errorf("ban: %w", errInvalid("user id"))
	}
	v, err := json.Marshal(b)
	if err != nil {
		return fmt.Errorf("ban: %w", err)
	}
	err = s.write(ctx, func(w *wtx) error {
		if !w.has(key(tUsers, b.UserID)) {
			return store.ErrNotFound
		}
		var prev store.Ban
		if raw := w.get(key(tBans, b.UserID)); raw != nil {
			if err := decodeJSON(key(tBans, b.UserID), raw, &prev); err != nil {
				return err
			}
			w.del(banTimeKey(prev.TS, b.UserID))
		}
		w.put(key(tBans, b.UserID), v)
		w.put(banTimeKey(b.TS, b.UserID), []byte{})
		return nil
	})
	if err != nil {
		return fmt.Errorf("ban %s: %w", b.UserID, err)
	}
	return nil
}

// Unban implements store.Bans.
func (s *Store) Unban(ctx context.Context, userID string) error {
	err := s.write(ctx, func(w *wtx) error {
		raw := w.get(key(tBans, userID))
		if raw == nil {
			return nil
		}
		var b store.Ban
		if err := decodeJSON(key(tBans, userID), raw, &b); err != nil {
			return err
		}
		w.del(key(tBans, userID))
		w.del(banTimeKey(b.TS, userID))
		return nil
	})
	if err != nil {
		return fmt.Errorf("unban %s: %w", userID, err)
	}
	return nil
}

// BanOf implements store.Bans.
func (s *Store) BanOf(ctx context.Context, userID string) (store.Ban, error) {
	var b store.Ban
	err := s.view(ctx, func(r reader) error {
		b = store.Ban{}
		return r.getJSON(key(tBans, userID), &b)
	})
	if err != nil {
		return store.Ban{}, fmt.Errorf("ban of %s: %w", userID, err)
	}
	return b, nil
}

// Banned implements store.Bans: the time index, newest last, read
// backwards, with each ban from the same snapshot.
func (s *Store) Banned(ctx context.Context, limit int) ([]store.Ban, error) {
	var out []store.Ban
	err := s.snapshot(ctx, func(r reader) error {
		out = out[:0]
		return walkBack(r, []byte{tBanTimes}, []byte{tBanTimes + 1}, limit, func(k, _ []byte) error {
			if len(k) <= 1+8 {
				return fmt.Errorf("%w: ban time key %q", errCorrupt, k)
			}
			var b store.Ban
			if err := r.getJSON(key(tBans, string(k[1+8:])), &b); err != nil {
				return err
			}
			out = append(out, b)
			return nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("banned: %w", err)
	}
	return out, nil
}

// maxSearchScan bounds the users one SearchUsers reads. The search walks
// the users table in id order and tests each record: the dashboard
// searches rarely, and an index by name (and the phone table's prefix
// scan, merged by id) is future work. Past the bound, the search answers
// what it found among the users it read.
const maxSearchScan = 200_000

// SearchUsers implements store.UserSearch.
func (s *Store) SearchUsers(ctx context.Context, query string, limit int) ([]store.User, error) {
	if query == "" || limit <= 0 {
		return nil, nil
	}
	digits := strings.TrimPrefix(query, "+")
	lower := strings.ToLower(query)
	var out []store.User
	err := s.view(ctx, func(r reader) error {
		out = out[:0]
		read := 0
		return r.scan([]byte{tUsers}, []byte{tUsers + 1}, func(k, v []byte) (bool, error) {
			if read++; read > maxSearchScan {
				return false, nil
			}
			if read%1024 == 0 {
				if err := ctx.Err(); err != nil {
					return false, err
				}
			}
			var u store.User
			if err := decodeJSON(k, v, &u); err != nil {
				return false, err
			}
			if (digits != "" && strings.HasPrefix(u.Phone, "+"+digits)) || strings.Contains(strings.ToLower(u.Name), lower) {
				out = append(out, u)
			}
			return len(out) < limit, nil
		})
	})
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	return out, nil
}
