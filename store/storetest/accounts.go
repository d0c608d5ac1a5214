package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"

	"github.com/tern-im/tern/store"
)

func testUsers(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("EnsureUserGetOrCreate", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		id := store.NewID(store.PrefixUser)
		u, created, err := s.EnsureUser(ctx, "+15550000001", id, base)
		must(t, err)
		if !created || u.ID != id || u.Phone != "+15550000001" || !u.CreatedAt.Equal(base) || u.HideReadReceipts {
			t.Fatalf("first EnsureUser = %+v, created %v; want new user %s", u, created, id)
		}
		u2, created, err := s.EnsureUser(ctx, "+15550000001", store.NewID(store.PrefixUser), at(1000))
		must(t, err)
		if created || u2.ID != id || !u2.CreatedAt.Equal(base) {
			t.Fatalf("second EnsureUser = %+v, created %v; want the first user", u2, created)
		}
		for what, get := range map[string]func() (store.User, error){
			"User":        func() (store.User, error) { return s.User(ctx, id) },
			"UserByPhone": func() (store.User, error) { return s.UserByPhone(ctx, "+15550000001") },
		} {
			g, err := get()
			must(t, err)
			if g.ID != id || g.Phone != "+15550000001" || !g.CreatedAt.Equal(base) {
				t.Fatalf("%s = %+v", what, g)
			}
		}
		other, created, err := s.EnsureUser(ctx, "+15550000002", store.NewID(store.PrefixUser), base)
		must(t, err)
		if !created || other.ID == id {
			t.Fatalf("EnsureUser of another phone = %+v, created %v", other, created)
		}
	})

	t.Run("EnsureUserConcurrent", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		// Several rounds, each racing n calls for a new phone: a lost race
		// shows in some round even if the scheduler serializes others.
		const n, phones = 20, 20
		var (
			mu      sync.Mutex
			ids     = map[string]map[string]bool{} // phone -> user ids seen
			creates = map[string]int{}
			errs    []error
		)
		for p := range phones {
			phone := fmt.Sprintf("+1555000%04d", p)
			ids[phone] = map[string]bool{}
			race(n, func(int) {
				u, created, err := s.EnsureUser(ctx, phone, store.NewID(store.PrefixUser), base)
				mu.Lock()
				defer mu.Unlock()
				if err != nil {
					errs = append(errs, err)
					return
				}
				ids[phone][u.ID] = true
				if created {
					creates[phone]++
				}
			})
		}
		must(t, errors.Join(errs...))
		for phone, seen := range ids {
			if len(seen) != 1 || creates[phone] != 1 {
				t.Fatalf("%d concurrent EnsureUser of %s: %d distinct users, %d created; want 1 and 1", n, phone, len(seen), creates[phone])
			}
			us, err := s.UsersByPhones(ctx, []string{phone})
			must(t, err)
			if len(us) != 1 {
				t.Fatalf("UsersByPhones(%s) after concurrent EnsureUser: %d users", phone, len(us))
			}
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		_, err := s.User(ctx, store.NewID(store.PrefixUser))
		wantErr(t, err, store.ErrNotFound, "User of unknown id")
		_, err = s.UserByPhone(ctx, "+15559999999")
		wantErr(t, err, store.ErrNotFound, "UserByPhone of unknown phone")
	})

	t.Run("UsersByPhones", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		a := newUser(t, s, "+15550000001")
		newUser(t, s, "+15550000002")
		c := newUser(t, s, "+15550000003")
		us, err := s.UsersByPhones(ctx, []string{"+15550000003", "+15559999999", "+15550000001"})
		must(t, err)
		var got []string
		for _, u := range us {
			got = append(got, u.ID)
			if (u.ID == a) != (u.Phone == "+15550000001") {
				t.Fatalf("user %s came with phone %s", u.ID, u.Phone)
			}
		}
		if want := []string{a, c}; !slices.Equal(sorted(got), sorted(want)) {
			t.Fatalf("UsersByPhones = %v, want %v", got, want)
		}
		us, err = s.UsersByPhones(ctx, []string{"+15559999999"})
		must(t, err)
		if len(us) != 0 {
			t.Fatalf("UsersByPhones of unknown phones = %v", us)
		}
	})

	t.Run("UpdateProfile", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		id := newUser(t, s, "+15550000001")
		// Phone and CreatedAt are not the profile's: they must not change.
		priv := store.Privacy{LastSeen: store.Contacts, Online: store.SameAsLastSeen, GroupsAdd: store.Contacts}
		str := func(s string) *string { return &s }
		yes := true
		u, err := s.UpdateProfile(ctx, id, store.ProfilePatch{Name: str("Alice"), About: str("hi"), HideReadReceipts: &yes,
			LastSeen: str(priv.LastSeen), Online: str(priv.Online), GroupsAdd: str(priv.GroupsAdd), Email: str("alice@example.com")})
		must(t, err)
		if u.Name != "Alice" || u.About != "hi" || !u.HideReadReceipts || u.Privacy != priv || u.Email != "alice@example.com" ||
			u.Phone != "+15550000001" || !u.CreatedAt.Equal(base) {
			t.Fatalf("UpdateProfile answered %+v", u)
		}
		if got, err := s.User(ctx, id); err != nil || got != u {
			t.Fatalf("after UpdateProfile: %+v, %v; want %+v", got, err, u)
		}
		// Only what the patch names changes: two patches of different
		// fields at once both take.
		var wg sync.WaitGroup
		var errs [2]error
		wg.Go(func() { _, errs[0] = s.UpdateProfile(ctx, id, store.ProfilePatch{Name: str("Al")}) })
		wg.Go(func() { _, errs[1] = s.UpdateProfile(ctx, id, store.ProfilePatch{GroupsAdd: str(store.Everyone)}) })
		wg.Wait()
		must(t, errors.Join(errs[:]...))
		u, err = s.UserByPhone(ctx, "+15550000001")
		must(t, err)
		if u.Name != "Al" || u.About != "hi" || !u.HideReadReceipts || u.Privacy.GroupsAdd != store.Everyone || u.Privacy.LastSeen != store.Contacts {
			t.Fatalf("after two patches: %+v", u)
		}
		if got, err := s.UpdateProfile(ctx, id, store.ProfilePatch{}); err != nil || got != u {
			t.Fatalf("an empty patch: %+v, %v; want the user unchanged", got, err)
		}
		_, err = s.UpdateProfile(ctx, store.NewID(store.PrefixUser), store.ProfilePatch{Name: str("x")})
		wantErr(t, err, store.ErrNotFound, "UpdateProfile of unknown user")
		_, err = s.UpdateProfile(ctx, store.NewID(store.PrefixUser), store.ProfilePatch{})
		wantErr(t, err, store.ErrNotFound, "an empty UpdateProfile of unknown user")
	})

	t.Run("Contacts", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		alice := newUser(t, s, "+15550000001")
		bob := newUser(t, s, "+15550000002")
		has := func(user, phone string, want bool) {
			t.Helper()
			got, err := s.HasContact(ctx, user, phone)
			must(t, err)
			if got != want {
				t.Fatalf("HasContact(%s, %s) = %v, want %v", user, phone, got, want)
			}
		}
		has(alice, "+15550000002", false)
		must(t, s.SetContacts(ctx, alice, []string{"+15550000002", "+15550000003"}))
		has(alice, "+15550000002", true)
		has(alice, "+15550000003", true) // a number without a user yet
		has(bob, "+15550000001", false)  // books are one-way
		has(alice, "+1555000000", false) // a prefix is not a number
		// A new book replaces the old one whole.
		must(t, s.SetContacts(ctx, alice, []string{"+15550000004"}))
		has(alice, "+15550000002", false)
		has(alice, "+15550000004", true)
		must(t, s.SetContacts(ctx, alice, nil))
		has(alice, "+15550000004", false)
		wantErr(t, s.SetContacts(ctx, store.NewID(store.PrefixUser), []string{"+15550000001"}), store.ErrNotFound, "SetContacts of unknown user")
	})
}

func checkDevice(t testing.TB, got, want store.Device) {
	t.Helper()
	if got.ID != want.ID || got.UserID != want.UserID || got.Name != want.Name || got.Platform != want.Platform ||
		!got.CreatedAt.Equal(want.CreatedAt) || !got.LastSeen.Equal(want.LastSeen) ||
		!bytes.Equal(got.RefreshHash, want.RefreshHash) || !bytes.Equal(got.PrevRefreshHash, want.PrevRefreshHash) ||
		!got.RefreshExpires.Equal(want.RefreshExpires) ||
		got.PushProvider != want.PushProvider || got.PushToken != want.PushToken {
		t.Fatalf("device\n got %+v\nwant %+v", got, want)
	}
}

func deviceIDs(ds []store.Device) []string {
	var ids []string
	for _, d := range ds {
		ids = append(ids, d.ID)
	}
	return sorted(ids)
}

func testDevices(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("CreateAndList", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		alice, bob := newUser(t, s, "+15550000001"), newUser(t, s, "+15550000002")
		a1, a2, b1 := newDevice(t, s, alice, "a1"), newDevice(t, s, alice, "a2"), newDevice(t, s, bob, "b1")
		for _, want := range []store.Device{a1, a2, b1} {
			got, err := s.Device(ctx, want.ID)
			must(t, err)
			checkDevice(t, got, want)
		}
		ds, err := s.UserDevices(ctx, alice)
		must(t, err)
		if got, want := deviceIDs(ds), sorted([]string{a1.ID, a2.ID}); !slices.Equal(got, want) {
			t.Fatalf("UserDevices(alice) = %v, want %v", got, want)
		}
		for _, d := range ds {
			if d.ID == a1.ID {
				checkDevice(t, d, a1)
			}
		}
		ds, err = s.UserDevices(ctx, bob)
		must(t, err)
		if got := deviceIDs(ds); !slices.Equal(got, []string{b1.ID}) {
			t.Fatalf("UserDevices(bob) = %v, want [%s]", got, b1.ID)
		}
		ds, err = s.UserDevices(ctx, store.NewID(store.PrefixUser))
		must(t, err)
		if len(ds) != 0 {
			t.Fatalf("UserDevices of unknown user = %v", ds)
		}
		_, err = s.Device(ctx, store.NewID(store.PrefixDevice))
		wantErr(t, err, store.ErrNotFound, "Device of unknown id")
	})

	t.Run("RotateRefresh", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		d := newDevice(t, s, newUser(t, s, "+15550000001"), "a1")
		old := d.RefreshHash
		err := s.RotateRefresh(ctx, d.ID, []byte("wrong"), []byte("new-1"), at(1000))
		wantErr(t, err, store.ErrConflict, "RotateRefresh with a wrong old hash")
		got, err := s.Device(ctx, d.ID)
		must(t, err)
		checkDevice(t, got, d) // unchanged

		must(t, s.RotateRefresh(ctx, d.ID, old, []byte("new-1"), at(2000)))
		got, err = s.Device(ctx, d.ID)
		must(t, err)
		d.RefreshHash, d.PrevRefreshHash, d.RefreshExpires = []byte("new-1"), old, at(2000)
		checkDevice(t, got, d)

		// The replaced hash again: that is what a copied token looks like.
		err = s.RotateRefresh(ctx, d.ID, old, []byte("new-2"), at(3000))
		wantErr(t, err, store.ErrConflict, "RotateRefresh with the previous hash")
		got, err = s.Device(ctx, d.ID)
		must(t, err)
		checkDevice(t, got, d)

		err = s.RotateRefresh(ctx, store.NewID(store.PrefixDevice), old, []byte("x"), at(3000))
		wantErr(t, err, store.ErrNotFound, "RotateRefresh of unknown device")
	})

	t.Run("RotateRefreshConcurrent", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		d := newDevice(t, s, newUser(t, s, "+15550000001"), "a1")
		const n = 10
		results := make([]error, n)
		race(n, func(i int) {
			results[i] = s.RotateRefresh(ctx, d.ID, d.RefreshHash, fmt.Appendf(nil, "new-%d", i), at(1000))
		})
		winner := -1
		for i, err := range results {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("two concurrent rotations of one hash succeeded (%d and %d)", winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("rotation %d: %v, want ErrConflict", i, err)
			}
		}
		if winner < 0 {
			t.Fatal("no concurrent rotation succeeded")
		}
		got, err := s.Device(ctx, d.ID)
		must(t, err)
		if want := fmt.Appendf(nil, "new-%d", winner); !bytes.Equal(got.RefreshHash, want) {
			t.Fatalf("RefreshHash %q, want the winner's %q", got.RefreshHash, want)
		}
	})

	t.Run("TouchAndPush", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		d := newDevice(t, s, newUser(t, s, "+15550000001"), "a1")
		must(t, s.TouchDevice(ctx, d.ID, at(5000)))
		must(t, s.SetPush(ctx, d.ID, "fcm", "token-1"))
		d.LastSeen, d.PushProvider, d.PushToken = at(5000), "fcm", "token-1"
		got, err := s.Device(ctx, d.ID)
		must(t, err)
		checkDevice(t, got, d)
		must(t, s.SetPush(ctx, d.ID, "", ""))
		d.PushProvider, d.PushToken = "", ""
		got, err = s.Device(ctx, d.ID)
		must(t, err)
		checkDevice(t, got, d)

		missing := store.NewID(store.PrefixDevice)
		wantErr(t, s.TouchDevice(ctx, missing, at(1)), store.ErrNotFound, "TouchDevice of unknown device")
		wantErr(t, s.SetPush(ctx, missing, "fcm", "t"), store.ErrNotFound, "SetPush of unknown device")
	})

	t.Run("DeleteDevice", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		send(t, s, direct(w.alice, w.a1, w.bob, "m1", 1, "one", w.b1, w.b2, w.a2))
		send(t, s, direct(w.alice, w.a1, w.bob, "m2", 2, "two", w.b1, w.b2, w.a2))

		must(t, s.DeleteDevice(ctx, w.b1))
		_, err := s.Device(ctx, w.b1)
		wantErr(t, err, store.ErrNotFound, "Device after DeleteDevice")
		ds, err := s.UserDevices(ctx, w.bob)
		must(t, err)
		if got := deviceIDs(ds); !slices.Equal(got, []string{w.b2}) {
			t.Fatalf("UserDevices after delete = %v, want [%s]", got, w.b2)
		}
		evs, _, err := s.Inbox(ctx, w.b1, 0, 100)
		if err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Inbox of a deleted device: %v", err)
		}
		if len(evs) != 0 {
			t.Fatalf("a deleted device still has %d events", len(evs))
		}
		if evs, _ := inbox(t, s, w.b2); !slices.Equal(cursors(evs), []int64{1, 2}) {
			t.Fatalf("the other device's inbox changed: %v", cursors(evs))
		}
		wantErr(t, s.DeleteDevice(ctx, w.b1), store.ErrNotFound, "second DeleteDevice")
		wantErr(t, s.DeleteDevice(ctx, store.NewID(store.PrefixDevice)), store.ErrNotFound, "DeleteDevice of unknown device")
	})
}

func checkCode(t testing.TB, got, want store.Code) {
	t.Helper()
	if got.Phone != want.Phone || !bytes.Equal(got.Hash, want.Hash) || !got.ExpiresAt.Equal(want.ExpiresAt) ||
		got.Attempts != want.Attempts || !got.SentAt.Equal(want.SentAt) ||
		!got.WindowStart.Equal(want.WindowStart) || got.WindowCount != want.WindowCount {
		t.Fatalf("code\n got %+v\nwant %+v", got, want)
	}
}

func testCodes(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("PutGetDelete", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		c := store.Code{Phone: "+15550000001", Hash: []byte("h1"), ExpiresAt: at(600000), SentAt: base, WindowStart: base, WindowCount: 1}
		must(t, s.PutCode(ctx, c))
		got, err := s.Code(ctx, c.Phone)
		must(t, err)
		checkCode(t, got, c)

		// A new code replaces the old one, attempts included.
		c2 := store.Code{Phone: c.Phone, Hash: []byte("h2"), ExpiresAt: at(700000), SentAt: at(100000), WindowStart: base, WindowCount: 2}
		_, err = s.CountAttempt(ctx, c.Phone)
		must(t, err)
		must(t, s.PutCode(ctx, c2))
		got, err = s.Code(ctx, c.Phone)
		must(t, err)
		checkCode(t, got, c2)

		got, err = s.CountAttempt(ctx, c.Phone)
		must(t, err)
		c2.Attempts = 1
		checkCode(t, got, c2)
		got, err = s.Code(ctx, c.Phone)
		must(t, err)
		checkCode(t, got, c2)

		must(t, s.DeleteCode(ctx, c.Phone))
		_, err = s.Code(ctx, c.Phone)
		wantErr(t, err, store.ErrNotFound, "Code after DeleteCode")
		wantErr(t, s.DeleteCode(ctx, c.Phone), store.ErrNotFound, "second DeleteCode")
		_, err = s.CountAttempt(ctx, c.Phone)
		wantErr(t, err, store.ErrNotFound, "CountAttempt of a deleted code")
		_, err = s.Code(ctx, "+15559999999")
		wantErr(t, err, store.ErrNotFound, "Code of unknown phone")
	})

	t.Run("CountAttemptConcurrent", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		c := store.Code{Phone: "+15550000001", Hash: []byte("h"), ExpiresAt: at(600000), SentAt: base}
		must(t, s.PutCode(ctx, c))
		const n = 20
		seen := make([]int, n)
		errs := make([]error, n)
		race(n, func(i int) {
			got, err := s.CountAttempt(ctx, c.Phone)
			seen[i], errs[i] = got.Attempts, err
		})
		must(t, errors.Join(errs...))
		// Atomic increments hand out every count from 1 to n exactly once.
		slices.Sort(seen)
		for i, a := range seen {
			if a != i+1 {
				t.Fatalf("concurrent CountAttempt returned counts %v, want 1..%d once each", seen, n)
			}
		}
		got, err := s.Code(ctx, c.Phone)
		must(t, err)
		if got.Attempts != n {
			t.Fatalf("Attempts = %d after %d concurrent CountAttempt", got.Attempts, n)
		}
	})

	t.Run("DeleteCodeSingleUse", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		must(t, s.PutCode(ctx, store.Code{Phone: "+15550000001", Hash: []byte("h"), ExpiresAt: at(600000)}))
		const n = 10
		errs := make([]error, n)
		race(n, func(i int) { errs[i] = s.DeleteCode(ctx, "+15550000001") })
		wins := 0
		for _, err := range errs {
			switch {
			case err == nil:
				wins++
			case !errors.Is(err, store.ErrNotFound):
				t.Fatalf("concurrent DeleteCode: %v", err)
			}
		}
		if wins != 1 {
			t.Fatalf("%d of %d concurrent DeleteCode succeeded, want 1", wins, n)
		}
	})
}

func testSecrets(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("FirstWins", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		v, err := s.Secret(ctx, "signing", []byte("first"))
		must(t, err)
		if string(v) != "first" {
			t.Fatalf("Secret = %q, want the fresh value", v)
		}
		v, err = s.Secret(ctx, "signing", []byte("second"))
		must(t, err)
		if string(v) != "first" {
			t.Fatalf("Secret again = %q, want the first value", v)
		}
		v, err = s.Secret(ctx, "other", []byte("second"))
		must(t, err)
		if string(v) != "second" {
			t.Fatalf("Secret of another name = %q", v)
		}
	})

	t.Run("Concurrent", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		const n = 10
		got := make([]string, n)
		errs := make([]error, n)
		race(n, func(i int) {
			v, err := s.Secret(ctx, "k", fmt.Appendf(nil, "fresh-%d", i))
			got[i], errs[i] = string(v), err
		})
		must(t, errors.Join(errs...))
		for _, v := range got {
			if v != got[0] {
				t.Fatalf("concurrent Secret returned different values: %q", got)
			}
		}
		v, err := s.Secret(ctx, "k", []byte("late"))
		must(t, err)
		if string(v) != got[0] {
			t.Fatalf("Secret after the race = %q, want %q", v, got[0])
		}
	})
	t.Run("Replace", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		if err := s.ReplaceSecret(ctx, "ring", []byte("a"), []byte("b")); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ReplaceSecret of a missing secret = %v, want ErrNotFound", err)
		}
		_, err := s.Secret(ctx, "ring", []byte("v1"))
		must(t, err)
		if err := s.ReplaceSecret(ctx, "ring", []byte("v0"), []byte("v2")); !errors.Is(err, store.ErrConflict) {
			t.Fatalf("ReplaceSecret from a stale value = %v, want ErrConflict", err)
		}
		must(t, s.ReplaceSecret(ctx, "ring", []byte("v1"), []byte("v2")))
		if v, err := s.Secret(ctx, "ring", []byte("fresh")); err != nil || string(v) != "v2" {
			t.Fatalf("after ReplaceSecret: %q, %v; want v2", v, err)
		}
		// Of concurrent replacements of one value, one wins.
		const n = 8
		errs := make([]error, n)
		race(n, func(i int) {
			errs[i] = s.ReplaceSecret(ctx, "ring", []byte("v2"), fmt.Appendf(nil, "v3-%d", i))
		})
		won := 0
		for _, err := range errs {
			switch {
			case err == nil:
				won++
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("concurrent ReplaceSecret: %v", err)
			}
		}
		if won != 1 {
			t.Fatalf("%d of %d concurrent replacements won, want exactly 1", won, n)
		}
	})
}
