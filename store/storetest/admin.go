package storetest

import (
	"bytes"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// The admin dashboard's records: store.Admins, store.Bans and
// store.UserSearch.

// runAdmin runs the admin tests as Run's subtests Admins, Bans and
// UserSearch.
func runAdmin(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Admins", func(t *testing.T) { testAdmins(t, newStore) })
	t.Run("Bans", func(t *testing.T) { testBans(t, newStore) })
	t.Run("UserSearch", func(t *testing.T) { testUserSearch(t, newStore) })
}

func testAdmins(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Accounts", func(t *testing.T) { testAdminAccounts(t, newStore(t)) })
	t.Run("ConcurrentCreate", func(t *testing.T) { testAdminConcurrentCreate(t, newStore(t)) })
	t.Run("Sessions", func(t *testing.T) { testAdminSessions(t, newStore(t)) })
	t.Run("APIKeys", func(t *testing.T) { testAPIKeys(t, newStore(t)) })
	t.Run("Audit", func(t *testing.T) { testAudit(t, newStore(t)) })
}

func newAdmin(username string, ms int64) store.Admin {
	return store.Admin{ID: store.NewID("a"), Username: username, PasswordHash: []byte("hash-" + username),
		CreatedAt: at(ms)}
}

func checkAdmin(t testing.TB, what string, got, want store.Admin) {
	t.Helper()
	if got.ID != want.ID || got.Username != want.Username || !bytes.Equal(got.PasswordHash, want.PasswordHash) ||
		!bytes.Equal(got.TOTPSecret, want.TOTPSecret) || got.Disabled != want.Disabled || !got.CreatedAt.Equal(want.CreatedAt) {
		t.Fatalf("%s: got %+v, want %+v", what, got, want)
	}
}

func adminIDs(as []store.Admin) []string {
	out := make([]string, len(as))
	for i, a := range as {
		out[i] = a.ID
	}
	return out
}

func testAdminAccounts(t *testing.T, s store.Store) {
	ctx := t.Context()
	root := newAdmin("root", 100)
	root.TOTPSecret = []byte("sealed-totp")
	ops := newAdmin("ops", 50)
	// Created in the same millisecond as root: the id breaks the tie.
	late := newAdmin("late", 100)
	for _, a := range []store.Admin{root, ops, late} {
		must(t, s.CreateAdmin(ctx, a))
	}
	wantErr(t, s.CreateAdmin(ctx, newAdmin("root", 200)), store.ErrConflict, "a taken username")
	taken := newAdmin("fresh", 200)
	taken.ID = ops.ID
	wantErr(t, s.CreateAdmin(ctx, taken), store.ErrConflict, "a taken admin id")
	if _, err := s.AdminByUsername(ctx, "fresh"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused account is findable by its username: %v", err)
	}

	got, err := s.Admin(ctx, root.ID)
	must(t, err)
	checkAdmin(t, "Admin(root)", got, root)
	got, err = s.AdminByUsername(ctx, "ops")
	must(t, err)
	checkAdmin(t, "AdminByUsername(ops)", got, ops)
	_, err = s.Admin(ctx, store.NewID("a"))
	wantErr(t, err, store.ErrNotFound, "an unknown admin id")
	_, err = s.AdminByUsername(ctx, "nobody")
	wantErr(t, err, store.ErrNotFound, "an unknown username")
	_, err = s.AdminByUsername(ctx, "ROOT")
	wantErr(t, err, store.ErrNotFound, "a username in another case (compared as stored)")

	list, err := s.Admins(ctx)
	must(t, err)
	first, second := root.ID, late.ID
	if second < first {
		first, second = second, first
	}
	if want := []string{ops.ID, first, second}; !slices.Equal(adminIDs(list), want) {
		t.Fatalf("Admins = %v, want %v (oldest first, then by id)", adminIDs(list), want)
	}

	// An update replaces everything but the username.
	up := root
	up.Username = "renamed"
	up.PasswordHash = []byte("new-hash")
	up.TOTPSecret = nil
	up.Disabled = true
	must(t, s.UpdateAdmin(ctx, up))
	want := up
	want.Username = "root"
	got, err = s.Admin(ctx, root.ID)
	must(t, err)
	checkAdmin(t, "after UpdateAdmin", got, want)
	got, err = s.AdminByUsername(ctx, "root")
	must(t, err)
	checkAdmin(t, "AdminByUsername after UpdateAdmin", got, want)
	_, err = s.AdminByUsername(ctx, "renamed")
	wantErr(t, err, store.ErrNotFound, "the username an update tried to set")
	// And sets a second factor again.
	up.TOTPSecret = []byte("other-totp")
	must(t, s.UpdateAdmin(ctx, up))
	want.TOTPSecret = up.TOTPSecret
	got, err = s.Admin(ctx, root.ID)
	must(t, err)
	checkAdmin(t, "after a second UpdateAdmin", got, want)
	wantErr(t, s.UpdateAdmin(ctx, newAdmin("ghost", 1)), store.ErrNotFound, "updating an unknown admin")
	if _, err := s.AdminByUsername(ctx, "ghost"); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("updating an unknown admin created it: %v", err)
	}
	if list, err := s.Admins(ctx); err != nil || len(list) != 3 {
		t.Fatalf("Admins after the updates: %d, %v; want 3", len(list), err)
	}
}

func testAdminConcurrentCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	errs := make([]error, n)
	admins := make([]store.Admin, n)
	for i := range admins {
		admins[i] = newAdmin("same", int64(i))
	}
	race(n, func(i int) { errs[i] = s.CreateAdmin(ctx, admins[i]) })
	winner := -1
	for i, err := range errs {
		switch {
		case err == nil && winner >= 0:
			t.Fatalf("two creates of one username succeeded: %d and %d", winner, i)
		case err == nil:
			winner = i
		case !errors.Is(err, store.ErrConflict):
			t.Fatalf("create %d: %v, want nil or ErrConflict", i, err)
		}
	}
	if winner < 0 {
		t.Fatal("no create of the username succeeded")
	}
	got, err := s.AdminByUsername(ctx, "same")
	must(t, err)
	checkAdmin(t, "the winner", got, admins[winner])
	if list, err := s.Admins(ctx); err != nil || len(list) != 1 {
		t.Fatalf("Admins: %v, %v; want the winner alone", adminIDs(list), err)
	}
}

// sessionID is what package admin keeps as a session's id: a digest of
// the cookie's token, here random hex.
func sessionID() string {
	b := make([]byte, 32)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

func testAdminSessions(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newAdmin("a", 1), newAdmin("b", 2)
	must(t, s.CreateAdmin(ctx, a))
	must(t, s.CreateAdmin(ctx, b))
	sess := func(admin string, created, expires int64) store.AdminSession {
		return store.AdminSession{ID: sessionID(), AdminID: admin, CSRF: "csrf-" + fmt.Sprint(created),
			IP: "192.0.2.7", CreatedAt: at(created), ExpiresAt: at(expires)}
	}
	s1 := sess(a.ID, 100, 1000)
	s2 := sess(a.ID, 500, 2000) // made while s1 is live: it must stay
	s3 := sess(b.ID, 100, 1000)
	for _, x := range []store.AdminSession{s1, s2, s3} {
		must(t, s.PutAdminSession(ctx, x))
	}
	check := func(id string, now int64, want *store.AdminSession) {
		t.Helper()
		got, err := s.AdminSession(ctx, id, at(now))
		if want == nil {
			wantErr(t, err, store.ErrNotFound, fmt.Sprintf("session %.8s at %d", id, now))
			return
		}
		must(t, err)
		if got.ID != want.ID || got.AdminID != want.AdminID || got.CSRF != want.CSRF || got.IP != want.IP ||
			!got.CreatedAt.Equal(want.CreatedAt) || !got.ExpiresAt.Equal(want.ExpiresAt) {
			t.Fatalf("session %.8s at %d: got %+v, want %+v", id, now, got, *want)
		}
	}
	check(s1.ID, 200, &s1)
	check(s1.ID, 999, &s1)
	check(s1.ID, 1000, nil) // expired at ExpiresAt
	check(s2.ID, 1001, &s2)
	check(s3.ID, 200, &s3)
	check(sessionID(), 200, nil)

	must(t, s.DeleteAdminSession(ctx, s2.ID))
	must(t, s.DeleteAdminSession(ctx, s2.ID)) // again: already gone
	check(s2.ID, 600, nil)
	check(s1.ID, 600, &s1)

	s4 := sess(a.ID, 600, 3000)
	must(t, s.PutAdminSession(ctx, s4))
	must(t, s.DeleteAdminSessions(ctx, a.ID))
	check(s1.ID, 700, nil)
	check(s4.ID, 700, nil)
	check(s3.ID, 700, &s3) // another admin's: untouched
	// None left: fine.
	must(t, s.DeleteAdminSessions(ctx, a.ID))
}

func testAPIKeys(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newAdmin("a", 1), newAdmin("b", 2)
	must(t, s.CreateAdmin(ctx, a))
	must(t, s.CreateAdmin(ctx, b))
	newKey := func(admin, name string, ms int64) store.APIKey {
		return store.APIKey{ID: store.NewID("k"), AdminID: admin, Name: name, Hash: []byte("secret-" + name), CreatedAt: at(ms)}
	}
	k1 := newKey(a.ID, "backup", 200)
	k2 := newKey(a.ID, "monitoring", 100)
	k3 := newKey(b.ID, "deploy", 150)
	for _, k := range []store.APIKey{k1, k2, k3} {
		must(t, s.PutAPIKey(ctx, k))
	}
	same := func(x, y store.APIKey) bool {
		return x.ID == y.ID && x.AdminID == y.AdminID && x.Name == y.Name && bytes.Equal(x.Hash, y.Hash) &&
			x.CreatedAt.Equal(y.CreatedAt)
	}
	list := func(admin string, want ...store.APIKey) {
		t.Helper()
		got, err := s.APIKeys(ctx, admin)
		must(t, err)
		if !slices.EqualFunc(got, want, same) {
			t.Fatalf("APIKeys(%s) = %+v, want %+v", admin, got, want)
		}
	}
	got, err := s.APIKey(ctx, k1.ID)
	must(t, err)
	if !same(got, k1) {
		t.Fatalf("APIKey = %+v, want %+v", got, k1)
	}
	_, err = s.APIKey(ctx, store.NewID("k"))
	wantErr(t, err, store.ErrNotFound, "an unknown key")
	list(a.ID, k2, k1) // oldest first
	list(b.ID, k3)
	list(store.NewID("a"))

	must(t, s.DeleteAPIKey(ctx, k1.ID))
	must(t, s.DeleteAPIKey(ctx, k1.ID)) // again: fine
	must(t, s.DeleteAPIKey(ctx, store.NewID("k")))
	_, err = s.APIKey(ctx, k1.ID)
	wantErr(t, err, store.ErrNotFound, "a deleted key")
	list(a.ID, k2)
	list(b.ID, k3)
}

func auditIDs(es []store.AuditEntry) []string {
	out := make([]string, len(es))
	for i, e := range es {
		out[i] = e.ID
	}
	return out
}

func testAudit(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.Audit(ctx, "", 10); err != nil || len(got) != 0 {
		t.Fatalf("Audit of an empty log: %+v, %v", got, err)
	}
	const n = 120
	entries := make([]store.AuditEntry, n)
	for i := range entries {
		entries[i] = store.AuditEntry{ID: store.NewID("e"), TS: ts(int64(i)), Actor: "root", Action: "ban",
			Target: fmt.Sprint("u", i), Detail: "spam", IP: "192.0.2.1"}
		if i%40 == 0 {
			time.Sleep(2 * time.Millisecond) // ids across several milliseconds too
		}
	}
	// Appended out of id order: the log's order is its ids'.
	for i := range entries {
		must(t, s.AppendAudit(ctx, entries[(i*7)%n]))
	}
	wantErr(t, s.AppendAudit(ctx, entries[3]), store.ErrConflict, "an audit id used twice")
	slices.SortFunc(entries, func(a, b store.AuditEntry) int { return strings.Compare(b.ID, a.ID) })
	want := auditIDs(entries)

	got, err := s.Audit(ctx, "", 10)
	must(t, err)
	if !slices.Equal(auditIDs(got), want[:10]) {
		t.Fatalf("Audit(\"\", 10) = %v, want %v", auditIDs(got), want[:10])
	}
	if got[0] != entries[0] {
		t.Fatalf("newest entry read back as %+v, want %+v", got[0], entries[0])
	}
	var all []string
	before := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging does not end")
		}
		page, err := s.Audit(ctx, before, 25)
		must(t, err)
		if len(page) == 0 {
			break
		}
		if len(page) > 25 {
			t.Fatalf("a page of %d entries, limit 25", len(page))
		}
		all = append(all, auditIDs(page)...)
		before = page[len(page)-1].ID
	}
	if !slices.Equal(all, want) {
		t.Fatalf("paging read %d entries, want all %d newest first", len(all), len(want))
	}
	// before need not be an entry's id.
	mid := want[50]
	got, err = s.Audit(ctx, mid+"~", 3)
	must(t, err)
	if !slices.Equal(auditIDs(got), want[50:53]) {
		t.Fatalf("Audit(after entry 50, 3) = %v, want %v", auditIDs(got), want[50:53])
	}
}

func testBans(t *testing.T, newStore func(t *testing.T) store.Store) {
	s, ctx := newStore(t), t.Context()
	alice := newUser(t, s, "+15550000001")
	bob := newUser(t, s, "+15550000002")
	carol := newUser(t, s, "+15550000003")
	ban := func(user, reason string, ms int64) store.Ban {
		b := store.Ban{UserID: user, Reason: reason, By: "root", TS: ts(ms)}
		must(t, s.SetBan(ctx, b))
		return b
	}
	banned := func(limit int, want ...store.Ban) {
		t.Helper()
		got, err := s.Banned(ctx, limit)
		must(t, err)
		if !slices.Equal(got, want) {
			t.Fatalf("Banned(%d) = %+v, want %+v", limit, got, want)
		}
	}
	wantErr(t, s.SetBan(ctx, store.Ban{UserID: store.NewID(store.PrefixUser), By: "root", TS: 1}), store.ErrNotFound,
		"banning an unknown user")
	_, err := s.BanOf(ctx, alice)
	wantErr(t, err, store.ErrNotFound, "the ban of a user never banned")
	banned(0)

	ba := ban(alice, "spam", 100)
	bb := ban(bob, "abuse", 300)
	bc := ban(carol, "", 200)
	got, err := s.BanOf(ctx, alice)
	must(t, err)
	if got != ba {
		t.Fatalf("BanOf(alice) = %+v, want %+v", got, ba)
	}
	banned(0, bb, bc, ba)
	banned(2, bb, bc)

	// A second ban replaces the first, in the list too.
	ba = ban(alice, "spam again", 400)
	if got, err := s.BanOf(ctx, alice); err != nil || got != ba {
		t.Fatalf("BanOf(alice) after a second ban = %+v, %v; want %+v", got, err, ba)
	}
	banned(0, ba, bb, bc)

	must(t, s.Unban(ctx, bob))
	must(t, s.Unban(ctx, bob)) // again: no ban is fine
	_, err = s.BanOf(ctx, bob)
	wantErr(t, err, store.ErrNotFound, "the ban of an unbanned user")
	banned(0, ba, bc)
	must(t, s.Unban(ctx, store.NewID(store.PrefixUser)))
}

func testUserSearch(t *testing.T, newStore func(t *testing.T) store.Store) {
	s, ctx := newStore(t), t.Context()
	user := func(phone, name string) string {
		t.Helper()
		id := newUser(t, s, phone)
		_, err := s.UpdateProfile(ctx, id, store.ProfilePatch{Name: &name})
		must(t, err)
		return id
	}
	alice := user("+15550000001", "Alice Smith")
	bob := user("+15550000002", "Bob 105")
	carol := user("+442000000003", "Carol ALICEson")
	dave := user("+15551230000", "Dave (ops) 1.5")
	nameless := newUser(t, s, "+4930000000")

	search := func(query string, limit int, want ...string) {
		t.Helper()
		got, err := s.SearchUsers(ctx, query, limit)
		must(t, err)
		ids := make([]string, len(got))
		for i, u := range got {
			ids[i] = u.ID
		}
		want = sorted(want)
		if len(want) > limit {
			want = want[:limit]
		}
		if !slices.Equal(ids, want) {
			t.Fatalf("SearchUsers(%q, %d) = %v, want %v", query, limit, ids, want)
		}
	}
	// A phone's start, with or without its +.
	search("+1555", 10, alice, bob, dave)
	search("1555", 10, alice, bob, dave)
	search("+49", 10, nameless)
	search("+1555123", 10, dave)
	search("0000001", 10) // inside a phone, not at its start
	search("555", 10)
	// A part of a name, in any case.
	search("alice", 10, alice, carol)
	search("ALICE", 10, alice, carol)
	search("ice s", 10, alice)
	search("bob", 10, bob)
	// The query is text, not a pattern.
	search("(ops)", 10, dave)
	search("1.5", 10, dave) // not bob's "105"
	search(".*", 10)
	search("+", 10)
	search("[", 10)
	// limit, in id order.
	search("+1555", 2, alice, bob, dave)
	search("+1555", 1, alice, bob, dave)
	search("", 10)

	got, err := s.SearchUsers(ctx, "Smith", 10)
	must(t, err)
	if len(got) != 1 || got[0].Phone != "+15550000001" || got[0].Name != "Alice Smith" {
		t.Fatalf("SearchUsers(Smith) = %+v, want alice whole", got)
	}
}
