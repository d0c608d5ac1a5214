package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// The business API's records: store.Businesses.

func testBusinesses(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Records", func(t *testing.T) { testBusinessRecords(t, newStore(t)) })
	t.Run("ConcurrentCreate", func(t *testing.T) { testBusinessConcurrentCreate(t, newStore(t)) })
	t.Run("List", func(t *testing.T) { testBusinessList(t, newStore(t)) })
	t.Run("Tokens", func(t *testing.T) { testBusinessTokens(t, newStore(t)) })
	t.Run("Windows", func(t *testing.T) { testBusinessWindows(t, newStore(t)) })
	t.Run("Templates", func(t *testing.T) { testTemplates(t, newStore(t)) })
	t.Run("CallbackData", func(t *testing.T) { testCallbackData(t, newStore(t)) })
	t.Run("CallbackDataPrune", func(t *testing.T) { testCallbackDataPrune(t, newStore(t)) })
}

// newBusiness returns the record of business n (not stored): a fresh user
// and device, and numeric phone number and WABA ids made from n, as
// Meta's are.
func newBusiness(n int, ms int64) store.Business {
	return store.Business{
		UserID:            store.NewID(store.PrefixUser),
		DeviceID:          store.NewID(store.PrefixDevice),
		PhoneNumberID:     fmt.Sprint(106540352242000 + n),
		WABAID:            fmt.Sprint(102290129340000 + n),
		Name:              fmt.Sprint("Business ", n),
		AppSecret:         []byte(fmt.Sprint("sealed-secret-", n)),
		WebhookURL:        fmt.Sprintf("https://hooks.example.com/%d", n),
		VerifyToken:       fmt.Sprint("verify-", n),
		WebhookVerifiedAt: at(ms + 1),
		WindowRule:        true,
		RatePerSecond:     80,
		CreatedAt:         at(ms),
	}
}

func sameBusiness(x, y store.Business) bool {
	return x.UserID == y.UserID && x.DeviceID == y.DeviceID && x.PhoneNumberID == y.PhoneNumberID &&
		x.WABAID == y.WABAID && x.Name == y.Name && bytes.Equal(x.AppSecret, y.AppSecret) &&
		x.WebhookURL == y.WebhookURL && x.VerifyToken == y.VerifyToken &&
		x.WebhookVerifiedAt.Equal(y.WebhookVerifiedAt) && x.WindowRule == y.WindowRule &&
		x.RatePerSecond == y.RatePerSecond && x.CreatedAt.Equal(y.CreatedAt)
}

// checkBusinessLookups checks that b is found by each of its keys.
func checkBusinessLookups(t testing.TB, s store.Store, what string, b store.Business) {
	t.Helper()
	ctx := t.Context()
	for _, l := range []struct {
		by   string
		find func() (store.Business, error)
	}{
		{"Business", func() (store.Business, error) { return s.Business(ctx, b.UserID) }},
		{"BusinessByPhoneNumberID", func() (store.Business, error) { return s.BusinessByPhoneNumberID(ctx, b.PhoneNumberID) }},
		{"BusinessByWABA", func() (store.Business, error) { return s.BusinessByWABA(ctx, b.WABAID) }},
	} {
		got, err := l.find()
		if err != nil {
			t.Fatalf("%s: %s: %v", what, l.by, err)
		}
		if !sameBusiness(got, b) {
			t.Fatalf("%s: %s = %+v, want %+v", what, l.by, got, b)
		}
	}
}

// checkNoBusiness checks that no business has any of b's keys.
func checkNoBusiness(t testing.TB, s store.Store, what string, b store.Business) {
	t.Helper()
	ctx := t.Context()
	_, err := s.Business(ctx, b.UserID)
	wantErr(t, err, store.ErrNotFound, what+": Business")
	_, err = s.BusinessByPhoneNumberID(ctx, b.PhoneNumberID)
	wantErr(t, err, store.ErrNotFound, what+": BusinessByPhoneNumberID")
	_, err = s.BusinessByWABA(ctx, b.WABAID)
	wantErr(t, err, store.ErrNotFound, what+": BusinessByWABA")
}

func testBusinessRecords(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newBusiness(1, 100), newBusiness(2, 200)
	// A business is a Tern user.
	a.UserID = newUser(t, s, "+15550000001")
	b.UserID = newUser(t, s, "+15550000002")
	plain := newUser(t, s, "+15550000003")
	must(t, s.CreateBusiness(ctx, a))
	must(t, s.CreateBusiness(ctx, b))
	checkBusinessLookups(t, s, "business a", a)
	checkBusinessLookups(t, s, "business b", b)

	_, err := s.Business(ctx, plain)
	wantErr(t, err, store.ErrNotFound, "a user that is no business")
	checkNoBusiness(t, s, "unknown ids", newBusiness(3, 300))
	// Each lookup is by its own key only.
	_, err = s.BusinessByPhoneNumberID(ctx, a.WABAID)
	wantErr(t, err, store.ErrNotFound, "a WABA id looked up as a phone number id")
	_, err = s.BusinessByWABA(ctx, a.PhoneNumberID)
	wantErr(t, err, store.ErrNotFound, "a phone number id looked up as a WABA id")
	_, err = s.BusinessByPhoneNumberID(ctx, a.UserID)
	wantErr(t, err, store.ErrNotFound, "a user id looked up as a phone number id")

	// Each unique key refuses a second business, which leaves nothing
	// behind under its other keys.
	for _, c := range []struct {
		what string
		take func(x *store.Business)
	}{
		{"a taken user id", func(x *store.Business) { x.UserID = a.UserID }},
		{"a taken phone number id", func(x *store.Business) { x.PhoneNumberID = a.PhoneNumberID }},
		{"a taken WABA id", func(x *store.Business) { x.WABAID = a.WABAID }},
	} {
		x := newBusiness(4, 400)
		x.UserID = plain
		fresh := x
		c.take(&x)
		wantErr(t, s.CreateBusiness(ctx, x), store.ErrConflict, c.what)
		// The refused record's own keys find nothing; its taken one
		// still finds a.
		if x.UserID != a.UserID {
			_, err := s.Business(ctx, x.UserID)
			wantErr(t, err, store.ErrNotFound, c.what+": the refused user")
		}
		if x.PhoneNumberID != a.PhoneNumberID {
			_, err := s.BusinessByPhoneNumberID(ctx, fresh.PhoneNumberID)
			wantErr(t, err, store.ErrNotFound, c.what+": the refused phone number id")
		}
		if x.WABAID != a.WABAID {
			_, err := s.BusinessByWABA(ctx, fresh.WABAID)
			wantErr(t, err, store.ErrNotFound, c.what+": the refused WABA id")
		}
		checkBusinessLookups(t, s, c.what+": business a after the refusal", a)
	}
	for _, c := range []struct {
		what  string
		blank func(x *store.Business)
	}{
		{"no user id", func(x *store.Business) { x.UserID = "" }},
		{"no device id", func(x *store.Business) { x.DeviceID = "" }},
		{"no phone number id", func(x *store.Business) { x.PhoneNumberID = "" }},
		{"no WABA id", func(x *store.Business) { x.WABAID = "" }},
	} {
		x := newBusiness(5, 500)
		c.blank(&x)
		wantErr(t, s.CreateBusiness(ctx, x), store.ErrInvalid, "a business with "+c.what)
	}
	if list, err := s.ListBusinesses(ctx, "", 0); err != nil || len(list) != 2 {
		t.Fatalf("ListBusinesses after the refusals: %d, %v; want a and b", len(list), err)
	}

	// An update replaces everything but the ids and the creation time,
	// even when it names another business's ids.
	up := a
	up.DeviceID = store.NewID(store.PrefixDevice)
	up.PhoneNumberID = b.PhoneNumberID
	up.WABAID = "999"
	up.CreatedAt = at(900)
	up.Name = "Renamed"
	up.AppSecret = []byte("another-secret")
	up.WebhookURL = "https://other.example.com/hook"
	up.VerifyToken = "verify-again"
	up.WebhookVerifiedAt = at(950)
	up.WindowRule = false
	up.RatePerSecond = 1000
	must(t, s.UpdateBusiness(ctx, up))
	want := up
	want.DeviceID, want.PhoneNumberID, want.WABAID, want.CreatedAt = a.DeviceID, a.PhoneNumberID, a.WABAID, a.CreatedAt
	checkBusinessLookups(t, s, "after UpdateBusiness", want)
	checkBusinessLookups(t, s, "business b after a's update", b)
	_, err = s.BusinessByWABA(ctx, "999")
	wantErr(t, err, store.ErrNotFound, "the WABA id an update tried to set")

	// Optional fields clear.
	up = want
	up.Name, up.AppSecret, up.WebhookURL, up.VerifyToken = "", nil, "", ""
	up.WebhookVerifiedAt, up.WindowRule, up.RatePerSecond = time.Time{}, false, 0
	must(t, s.UpdateBusiness(ctx, up))
	got, err := s.Business(ctx, a.UserID)
	must(t, err)
	if !sameBusiness(got, up) || len(got.AppSecret) != 0 || !got.WebhookVerifiedAt.IsZero() {
		t.Fatalf("after an update that clears: %+v, want %+v", got, up)
	}
	// And sets them again.
	must(t, s.UpdateBusiness(ctx, want))
	checkBusinessLookups(t, s, "after a second UpdateBusiness", want)

	ghost := newBusiness(6, 600)
	wantErr(t, s.UpdateBusiness(ctx, ghost), store.ErrNotFound, "updating an unknown business")
	checkNoBusiness(t, s, "after updating an unknown business", ghost)
	ghost.UserID = plain
	wantErr(t, s.UpdateBusiness(ctx, ghost), store.ErrNotFound, "updating a user that is no business")
	checkNoBusiness(t, s, "after updating a user that is no business", ghost)
}

func testBusinessConcurrentCreate(t *testing.T, s store.Store) {
	ctx := t.Context()
	const n = 8
	for round, c := range []struct {
		key   string
		share func(x *store.Business, first store.Business)
	}{
		{"phone number id", func(x *store.Business, first store.Business) { x.PhoneNumberID = first.PhoneNumberID }},
		{"WABA id", func(x *store.Business, first store.Business) { x.WABAID = first.WABAID }},
		{"user id", func(x *store.Business, first store.Business) { x.UserID = first.UserID }},
	} {
		bs := make([]store.Business, n)
		for i := range bs {
			bs[i] = newBusiness(100*(round+1)+i, int64(i))
			c.share(&bs[i], bs[0])
		}
		errs := make([]error, n)
		race(n, func(i int) { errs[i] = s.CreateBusiness(ctx, bs[i]) })
		winner := -1
		for i, err := range errs {
			switch {
			case err == nil && winner >= 0:
				t.Fatalf("two creates of one %s succeeded: %d and %d", c.key, winner, i)
			case err == nil:
				winner = i
			case !errors.Is(err, store.ErrConflict):
				t.Fatalf("create %d of one %s: %v, want nil or ErrConflict", i, c.key, err)
			}
		}
		if winner < 0 {
			t.Fatalf("no create of one %s succeeded", c.key)
		}
		checkBusinessLookups(t, s, "the winner of one "+c.key, bs[winner])
		for i, b := range bs {
			if i == winner {
				continue
			}
			// The losers' own keys find nothing (or the winner, for the
			// shared one).
			if b.UserID != bs[winner].UserID {
				_, err := s.Business(ctx, b.UserID)
				wantErr(t, err, store.ErrNotFound, fmt.Sprintf("loser %d of one %s by user", i, c.key))
			}
			if b.PhoneNumberID != bs[winner].PhoneNumberID {
				_, err := s.BusinessByPhoneNumberID(ctx, b.PhoneNumberID)
				wantErr(t, err, store.ErrNotFound, fmt.Sprintf("loser %d of one %s by phone number id", i, c.key))
			}
			if b.WABAID != bs[winner].WABAID {
				_, err := s.BusinessByWABA(ctx, b.WABAID)
				wantErr(t, err, store.ErrNotFound, fmt.Sprintf("loser %d of one %s by WABA id", i, c.key))
			}
		}
		if list, err := s.ListBusinesses(ctx, "", 0); err != nil || len(list) != round+1 {
			t.Fatalf("ListBusinesses after %d rounds: %d, %v; want one winner a round", round+1, len(list), err)
		}
	}
}

func businessIDs(bs []store.Business) []string {
	out := make([]string, len(bs))
	for i, b := range bs {
		out[i] = b.UserID
	}
	return out
}

func testBusinessList(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.ListBusinesses(ctx, "", 10); err != nil || len(got) != 0 {
		t.Fatalf("ListBusinesses of a new store = %v, %v; want none", businessIDs(got), err)
	}
	const n = 12
	all := make([]store.Business, n)
	for i := range all {
		all[i] = newBusiness(i, int64(i))
	}
	// Created out of id order: the list's order is the ids'.
	for i := range all {
		must(t, s.CreateBusiness(ctx, all[(i*5)%n]))
	}
	slices.SortFunc(all, func(x, y store.Business) int {
		switch {
		case x.UserID < y.UserID:
			return -1
		case x.UserID > y.UserID:
			return 1
		}
		return 0
	})
	want := businessIDs(all)

	got, err := s.ListBusinesses(ctx, "", 0)
	must(t, err)
	if !slices.Equal(businessIDs(got), want) {
		t.Fatalf("ListBusinesses(\"\", 0) = %v, want all %v by id", businessIDs(got), want)
	}
	for i := range got {
		if !sameBusiness(got[i], all[i]) {
			t.Fatalf("listed business %d = %+v, want %+v", i, got[i], all[i])
		}
	}
	var paged []string
	after := ""
	for pages := 0; ; pages++ {
		if pages > n {
			t.Fatal("paging does not end")
		}
		page, err := s.ListBusinesses(ctx, after, 5)
		must(t, err)
		if len(page) == 0 {
			break
		}
		if len(page) > 5 {
			t.Fatalf("a page of %d businesses, limit 5", len(page))
		}
		paged = append(paged, businessIDs(page)...)
		after = page[len(page)-1].UserID
	}
	if !slices.Equal(paged, want) {
		t.Fatalf("paging by 5 read %v, want %v", paged, want)
	}
	// after need not be a business's id.
	got, err = s.ListBusinesses(ctx, want[3]+"~", 2)
	must(t, err)
	if !slices.Equal(businessIDs(got), want[4:6]) {
		t.Fatalf("ListBusinesses(after business 3, 2) = %v, want %v", businessIDs(got), want[4:6])
	}
	got, err = s.ListBusinesses(ctx, want[n-1], 5)
	if err != nil || len(got) != 0 {
		t.Fatalf("ListBusinesses after the last = %v, %v; want none", businessIDs(got), err)
	}
}

func testBusinessTokens(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := newBusiness(1, 1), newBusiness(2, 2)
	must(t, s.CreateBusiness(ctx, a))
	must(t, s.CreateBusiness(ctx, b))
	newToken := func(business, name string, ms int64) store.BusinessToken {
		return store.BusinessToken{ID: store.NewID("t"), UserID: business, Name: name, Hash: []byte("digest-" + name),
			CreatedAt: at(ms)}
	}
	same := func(x, y store.BusinessToken) bool {
		return x.ID == y.ID && x.UserID == y.UserID && x.Name == y.Name && bytes.Equal(x.Hash, y.Hash) &&
			x.CreatedAt.Equal(y.CreatedAt)
	}
	get := func(want store.BusinessToken) {
		t.Helper()
		got, err := s.BusinessToken(ctx, want.ID)
		must(t, err)
		if !same(got, want) {
			t.Fatalf("BusinessToken(%s) = %+v, want %+v", want.ID, got, want)
		}
	}
	list := func(business string, want ...store.BusinessToken) {
		t.Helper()
		got, err := s.BusinessTokens(ctx, business)
		must(t, err)
		if !slices.EqualFunc(got, want, same) {
			t.Fatalf("BusinessTokens(%s) = %+v, want %+v", business, got, want)
		}
	}
	k1 := newToken(a.UserID, "crm", 200)
	k2 := newToken(a.UserID, "support", 100)
	k3 := newToken(b.UserID, "shop", 150)
	for _, k := range []store.BusinessToken{k1, k2, k3} {
		must(t, s.PutBusinessToken(ctx, k))
	}
	get(k1)
	get(k3)
	_, err := s.BusinessToken(ctx, store.NewID("t"))
	wantErr(t, err, store.ErrNotFound, "an unknown token")
	list(a.UserID, k2, k1) // oldest first
	list(b.UserID, k3)
	list(store.NewID(store.PrefixUser))
	wantErr(t, s.PutBusinessToken(ctx, store.BusinessToken{UserID: a.UserID, Hash: []byte("h")}), store.ErrInvalid,
		"a token without an id")
	wantErr(t, s.PutBusinessToken(ctx, store.BusinessToken{ID: store.NewID("t"), Hash: []byte("h")}), store.ErrInvalid,
		"a token without a business")

	// Put again, a token is replaced.
	k1.Name, k1.Hash = "crm (rotated)", []byte("digest-rotated")
	must(t, s.PutBusinessToken(ctx, k1))
	get(k1)
	list(a.UserID, k2, k1)
	// Put again for another business, it leaves the first one's list.
	k2.UserID = b.UserID
	must(t, s.PutBusinessToken(ctx, k2))
	list(a.UserID, k1)
	list(b.UserID, k2, k3)

	must(t, s.DeleteBusinessToken(ctx, k1.ID))
	must(t, s.DeleteBusinessToken(ctx, k1.ID)) // again: fine
	must(t, s.DeleteBusinessToken(ctx, store.NewID("t")))
	_, err = s.BusinessToken(ctx, k1.ID)
	wantErr(t, err, store.ErrNotFound, "a deleted token")
	list(a.UserID)
	list(b.UserID, k2, k3)
	get(k3)
}

func testBusinessWindows(t *testing.T, s store.Store) {
	ctx := t.Context()
	biz, other := store.NewID(store.PrefixUser), store.NewID(store.PrefixUser)
	alice, bob := store.NewID(store.PrefixUser), store.NewID(store.PrefixUser)
	window := func(business, customer string, want int64) {
		t.Helper()
		got, err := s.Window(ctx, business, customer)
		must(t, err)
		if got != want {
			t.Fatalf("Window(%s, %s) = %d, want %d", business, customer, got, want)
		}
	}
	window(biz, alice, 0)
	must(t, s.RaiseWindow(ctx, biz, alice, ts(1000)))
	window(biz, alice, ts(1000))
	// A lower time does not lower it; a higher one raises it.
	must(t, s.RaiseWindow(ctx, biz, alice, ts(500)))
	window(biz, alice, ts(1000))
	must(t, s.RaiseWindow(ctx, biz, alice, ts(1000)))
	window(biz, alice, ts(1000))
	must(t, s.RaiseWindow(ctx, biz, alice, ts(1500)))
	window(biz, alice, ts(1500))
	// Per business and customer.
	window(biz, bob, 0)
	window(other, alice, 0)
	window(alice, biz, 0)
	must(t, s.RaiseWindow(ctx, other, alice, ts(200)))
	window(other, alice, ts(200))
	window(biz, alice, ts(1500))
	wantErr(t, s.RaiseWindow(ctx, biz, bob, 0), store.ErrInvalid, "a window raised to 0")
	wantErr(t, s.RaiseWindow(ctx, biz, "", ts(1)), store.ErrInvalid, "a window of no customer")
	window(biz, bob, 0)

	// Concurrent raises, of a pair with no record yet and of one with a
	// record: the largest time wins whatever order they land in.
	const n = 16
	times := make([]int64, n)
	for i := range times {
		times[i] = ts(int64(10_000 + (i*7)%n))
	}
	race(n, func(i int) {
		if err := s.RaiseWindow(ctx, biz, bob, times[i]); err != nil {
			t.Errorf("raise %d: %v", i, err)
		}
	})
	race(n, func(i int) {
		if err := s.RaiseWindow(ctx, biz, alice, times[i]); err != nil {
			t.Errorf("raise %d: %v", i, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	window(biz, bob, slices.Max(times))
	window(biz, alice, slices.Max(times))
}

func testTemplates(t *testing.T, s store.Store) {
	ctx := t.Context()
	a, b := store.NewID(store.PrefixUser), store.NewID(store.PrefixUser)
	tpl := func(business, name, language, status string, ms int64) store.Template {
		return store.Template{UserID: business, Name: name, Language: language, Category: "UTILITY", Status: status,
			Components: []byte(`[{"type":"BODY","text":"` + name + ` ` + language + ` {{1}}"}]`), CreatedAt: at(ms)}
	}
	same := func(x, y store.Template) bool {
		return x.UserID == y.UserID && x.Name == y.Name && x.Language == y.Language && x.Category == y.Category &&
			x.Status == y.Status && bytes.Equal(x.Components, y.Components) && x.CreatedAt.Equal(y.CreatedAt)
	}
	get := func(want store.Template) {
		t.Helper()
		got, err := s.Template(ctx, want.UserID, want.Name, want.Language)
		must(t, err)
		if !same(got, want) {
			t.Fatalf("Template(%s, %s) = %+v, want %+v", want.Name, want.Language, got, want)
		}
	}
	list := func(business string, want ...store.Template) {
		t.Helper()
		got, err := s.Templates(ctx, business)
		must(t, err)
		if !slices.EqualFunc(got, want, same) {
			names := func(ts []store.Template) []string {
				out := make([]string, len(ts))
				for i, x := range ts {
					out[i] = x.Name + "/" + x.Language + "/" + x.Status
				}
				return out
			}
			t.Fatalf("Templates(%s) = %v, want %v", business, names(got), names(want))
		}
	}
	list(a)
	// Names that are prefixes of others, and languages too: the order is
	// by name, then language.
	orderEN := tpl(a, "order_update", "en", "APPROVED", 1)
	orderDE := tpl(a, "order_update", "de", "PENDING", 2)
	orderUS := tpl(a, "order_update", "en_US", "APPROVED", 3)
	order := tpl(a, "order", "en", "APPROVED", 4)
	hello := tpl(a, "hello_world", "en_US", "APPROVED", 5)
	bHello := tpl(b, "hello_world", "en_US", "REJECTED", 6)
	for _, x := range []store.Template{orderEN, orderDE, orderUS, order, hello, bHello} {
		must(t, s.PutTemplate(ctx, x))
	}
	list(a, hello, order, orderDE, orderEN, orderUS)
	list(b, bHello)
	get(orderDE)
	get(bHello)
	_, err := s.Template(ctx, a, "order_update", "fr")
	wantErr(t, err, store.ErrNotFound, "a language the template lacks")
	_, err = s.Template(ctx, a, "missing", "en")
	wantErr(t, err, store.ErrNotFound, "an unknown template")
	_, err = s.Template(ctx, store.NewID(store.PrefixUser), "hello_world", "en_US")
	wantErr(t, err, store.ErrNotFound, "another business's template")
	wantErr(t, s.PutTemplate(ctx, tpl(a, "", "en", "APPROVED", 7)), store.ErrInvalid, "a template without a name")
	wantErr(t, s.PutTemplate(ctx, tpl(a, "x", "", "APPROVED", 7)), store.ErrInvalid, "a template without a language")
	wantErr(t, s.PutTemplate(ctx, tpl("", "x", "en", "APPROVED", 7)), store.ErrInvalid, "a template without a business")

	// Put again, one language is replaced; the others and the other
	// business's stay.
	orderDE = tpl(a, "order_update", "de", "APPROVED", 8)
	orderDE.Components = []byte(`[{"type":"BODY","text":"Bestellung {{1}}"}]`)
	must(t, s.PutTemplate(ctx, orderDE))
	get(orderDE)
	list(a, hello, order, orderDE, orderEN, orderUS)
	list(b, bHello)

	// Concurrent puts of one new template: one template is left, one of
	// theirs.
	const n = 8
	errs := make([]error, n)
	race(n, func(i int) { errs[i] = s.PutTemplate(ctx, tpl(b, "race", "en", fmt.Sprint("S", i), int64(i))) })
	for i, err := range errs {
		if err != nil {
			t.Fatalf("concurrent put %d: %v", i, err)
		}
	}
	got, err := s.Templates(ctx, b)
	must(t, err)
	if len(got) != 2 || got[0].Name != "hello_world" || got[1].Name != "race" {
		t.Fatalf("Templates after concurrent puts: %+v; want hello_world and one race", got)
	}

	// A delete is of every language of the name, and of nothing else (not
	// the name it is a prefix of, nor the other business's).
	must(t, s.DeleteTemplate(ctx, a, "order_update"))
	list(a, hello, order)
	for _, lang := range []string{"de", "en", "en_US"} {
		_, err := s.Template(ctx, a, "order_update", lang)
		wantErr(t, err, store.ErrNotFound, "a deleted template in "+lang)
	}
	must(t, s.DeleteTemplate(ctx, a, "order_update")) // again: fine
	must(t, s.DeleteTemplate(ctx, a, "missing"))
	must(t, s.DeleteTemplate(ctx, a, "hello_world"))
	list(a, order)
	get(bHello)
	must(t, s.DeleteTemplate(ctx, b, "race"))
	list(b, bHello)
}

// checkCallbackData checks that the business's message has callback data
// want or, has false, none.
func checkCallbackData(t testing.TB, s store.Store, business, msg, want string, has bool) {
	t.Helper()
	got, err := s.CallbackData(t.Context(), business, msg)
	if !has {
		wantErr(t, err, store.ErrNotFound, fmt.Sprintf("callback data of %q of %s", msg, business))
		return
	}
	must(t, err)
	if got != want {
		t.Fatalf("CallbackData(%s, %q) = %q, want %q", business, msg, got, want)
	}
}

func testCallbackData(t *testing.T, s store.Store) {
	ctx := t.Context()
	biz, other := store.NewID(store.PrefixUser), store.NewID(store.PrefixUser)
	m1, m2 := store.NewID(store.PrefixMessage), store.NewID(store.PrefixMessage)
	checkCallbackData(t, s, biz, m1, "", false)

	must(t, s.PutCallbackData(ctx, biz, m1, "order-42", at(100)))
	checkCallbackData(t, s, biz, m1, "order-42", true)
	checkCallbackData(t, s, biz, m2, "", false)
	// Per business: the same message id under another business (or the
	// ids swapped) is another record.
	checkCallbackData(t, s, other, m1, "", false)
	checkCallbackData(t, s, m1, biz, "", false)
	must(t, s.PutCallbackData(ctx, other, m1, "theirs", at(100)))
	checkCallbackData(t, s, other, m1, "theirs", true)
	checkCallbackData(t, s, biz, m1, "order-42", true)

	// A put again replaces the data.
	must(t, s.PutCallbackData(ctx, biz, m1, "order-43", at(200)))
	checkCallbackData(t, s, biz, m1, "order-43", true)
	checkCallbackData(t, s, other, m1, "theirs", true)

	// Any text: non-ASCII, emoji, JSON, and 512 characters that are 2048
	// bytes (the Cloud API counts characters).
	for i, data := range []string{
		"Bestellung für Zoë — 注文 №7 🚚✅👩🏽‍💻",
		`{"order":42,"note":"a \"quoted\" string","tags":["x","y"]}`,
		strings.Repeat("🚚", 512),
		" leading and trailing spaces ",
	} {
		msg := store.NewID(store.PrefixMessage)
		must(t, s.PutCallbackData(ctx, biz, msg, data, at(int64(300+i))))
		checkCallbackData(t, s, biz, msg, data, true)
	}

	// Message ids are any string: a Cloud API id holds '/', '+' and '=',
	// and one may be a prefix of another.
	wamid := "wamid.HBgLMTU1NTAwMDAwMDEVAgARGBI/+ab=="
	must(t, s.PutCallbackData(ctx, biz, wamid, "w", at(400)))
	must(t, s.PutCallbackData(ctx, biz, wamid+"/x", "wx", at(401)))
	must(t, s.PutCallbackData(ctx, biz, "wamid.", "prefix", at(402)))
	checkCallbackData(t, s, biz, wamid, "w", true)
	checkCallbackData(t, s, biz, wamid+"/x", "wx", true)
	checkCallbackData(t, s, biz, "wamid.", "prefix", true)
	checkCallbackData(t, s, biz, "wamid.HBgLMTU1NTAwMDAwMDEVAgARGBI", "", false)
	checkCallbackData(t, s, other, wamid, "", false)

	wantErr(t, s.PutCallbackData(ctx, "", m1, "x", at(1)), store.ErrInvalid, "callback data of no business")
	wantErr(t, s.PutCallbackData(ctx, biz, "", "x", at(1)), store.ErrInvalid, "callback data of no message")
	checkCallbackData(t, s, "", m1, "", false)
	checkCallbackData(t, s, biz, "", "", false)

	// Concurrent puts of one new record: one record is left, with one of
	// their data, and one prune removes it all (no put left a second
	// entry behind for the prune to find).
	const n = 8
	race(n, func(i int) {
		if err := s.PutCallbackData(ctx, biz, m2, fmt.Sprint("race-", i), at(int64(1000+i))); err != nil {
			t.Errorf("concurrent put %d: %v", i, err)
		}
	})
	if t.Failed() {
		t.FailNow()
	}
	got, err := s.CallbackData(ctx, biz, m2)
	must(t, err)
	if !strings.HasPrefix(got, "race-") {
		t.Fatalf("CallbackData after concurrent puts = %q, want one of theirs", got)
	}
	pruned, err := s.PruneCallbackData(ctx, at(2000), 100)
	must(t, err)
	if want := 2 + 4 + 3 + 1; pruned != want {
		t.Fatalf("PruneCallbackData of everything = %d, want %d", pruned, want)
	}
	checkCallbackData(t, s, biz, m2, "", false)
	checkCallbackData(t, s, other, m1, "", false)
}

func testCallbackDataPrune(t *testing.T, s store.Store) {
	ctx := t.Context()
	biz, other := store.NewID(store.PrefixUser), store.NewID(store.PrefixUser)
	type rec struct {
		business, msg, data string
		ms                  int64
	}
	recs := []rec{
		{biz, "m3", "c", 300},
		{biz, "m1", "a", 100},
		{other, "m1", "o1", 150},
		{biz, "m2", "b", 200},
		{other, "m4", "o4", 400},
	}
	for _, r := range recs {
		must(t, s.PutCallbackData(ctx, r.business, r.msg, r.data, at(r.ms)))
	}
	// left checks which of recs are there, by their data.
	left := func(data ...string) {
		t.Helper()
		for _, r := range recs {
			checkCallbackData(t, s, r.business, r.msg, r.data, slices.Contains(data, r.data))
		}
	}
	prune := func(before time.Time, limit, want int) {
		t.Helper()
		n, err := s.PruneCallbackData(ctx, before, limit)
		must(t, err)
		if n != want {
			t.Fatalf("PruneCallbackData(%v, %d) = %d, want %d", before, limit, n, want)
		}
	}
	prune(at(100), 10, 0) // before is not at or after
	left("a", "b", "c", "o1", "o4")
	prune(at(1000), 0, 0)
	left("a", "b", "c", "o1", "o4")
	// Strictly before, every business's.
	prune(at(200), 10, 2)
	left("b", "c", "o4")
	// Up to limit, oldest first.
	prune(at(1000), 2, 2)
	left("o4")
	prune(at(1000), 10, 1)
	left()
	prune(at(1000), 10, 0)

	// A put again moves the record to its new time: not pruned by its old
	// one, and pruned by its new one.
	m := store.NewID(store.PrefixMessage)
	must(t, s.PutCallbackData(ctx, biz, m, "first", at(100)))
	must(t, s.PutCallbackData(ctx, biz, m, "later", at(500)))
	prune(at(300), 10, 0)
	checkCallbackData(t, s, biz, m, "later", true)
	must(t, s.PutCallbackData(ctx, biz, m, "earlier", at(50)))
	prune(at(60), 10, 1)
	checkCallbackData(t, s, biz, m, "", false)
	prune(at(1000), 10, 0)

	// A time before 1970 (a zero time.Time) is the oldest, not the newest.
	must(t, s.PutCallbackData(ctx, biz, "zero", "z", time.Time{}))
	must(t, s.PutCallbackData(ctx, biz, "new", "n", at(10)))
	prune(at(1000), 1, 1)
	checkCallbackData(t, s, biz, "zero", "", false)
	checkCallbackData(t, s, biz, "new", "n", true)

	// Many, over more than one page of an adapter that prunes in pages.
	const many = 120
	for i := range many {
		must(t, s.PutCallbackData(ctx, other, fmt.Sprint("bulk-", i), "x", at(int64(2000+i))))
	}
	prune(at(2000+many/2), many, 1+many/2) // "new" and the older half
	checkCallbackData(t, s, other, fmt.Sprint("bulk-", many/2-1), "", false)
	checkCallbackData(t, s, other, fmt.Sprint("bulk-", many/2), "x", true)
	prune(at(10_000), 1000, many/2)
}
