package server_test

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/wire"
)

func strp(s string) *string { return &s }
func boolp(b bool) *bool    { return &b }

// TestPrivacySettings: defaults, a change of every setting (read_receipts
// is the profile's flag too), and values outside the contract refused with
// nothing changed.
func TestPrivacySettings(t *testing.T) {
	eachDeployment(t, server.Config{}, func(t *testing.T, g *groupCast) {
		ctx := ctxT(t)
		p, err := g.bob.Privacy(ctx)
		if err != nil || p != (wire.Privacy{LastSeen: "everyone", Online: "everyone", ReadReceipts: true, GroupsAdd: "everyone"}) {
			t.Fatalf("defaults: %+v, %v", p, err)
		}
		want := wire.Privacy{LastSeen: "contacts", Online: "same_as_last_seen", ReadReceipts: false, GroupsAdd: "contacts"}
		p, err = g.bob.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: strp("contacts"), Online: strp("same_as_last_seen"),
			ReadReceipts: boolp(false), GroupsAdd: strp("contacts")})
		if err != nil || p != want {
			t.Fatalf("after PATCH: %+v, %v; want %+v", p, err, want)
		}
		if me, err := g.bob.Me(ctx); err != nil || me.ReadReceipts {
			t.Fatalf("/v1/me after read_receipts off: %+v, %v", me, err)
		}
		// Only what is sent changes.
		want.LastSeen = "nobody"
		if p, err = g.bob.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: strp("nobody")}); err != nil || p != want {
			t.Fatalf("after a PATCH of last_seen: %+v, %v; want %+v", p, err, want)
		}
		for _, bad := range []wire.PrivacyPatch{
			{LastSeen: strp("friends")},
			{Online: strp("contacts")}, // online has no contacts setting
			{GroupsAdd: strp("nobody")},
			{LastSeen: strp("")},
		} {
			_, err := g.bob.UpdatePrivacy(ctx, bad)
			wantErrCode(t, fmt.Sprintf("PATCH %+v", bad), err, wire.CodeBadRequest)
		}
		if p, err := g.bob.Privacy(ctx); err != nil || p != want {
			t.Fatalf("refused PATCHes changed the settings: %+v, %v", p, err)
		}
		// Address books: an empty one clears; too many is too large.
		if err := g.bob.SetContacts(ctx, nil); err != nil {
			t.Fatalf("an empty address book: %v", err)
		}
		many := make([]string, 10_001)
		for i := range many {
			many[i] = fmt.Sprintf("+1415%07d", i)
		}
		wantErrCode(t, "10,001 contacts", g.bob.SetContacts(ctx, many), wire.CodeTooLarge)
	})
}

// TestGroupsAddPrivacy: a user who lets only contacts add it to groups is
// left out of a group made by someone not in its address book, and listed
// in not_added; once the adder is a contact, it can be added. Address books
// are one-way and hold numbers in any form.
func TestGroupsAddPrivacy(t *testing.T) {
	eachDeployment(t, server.Config{}, func(t *testing.T, g *groupCast) {
		ctx := ctxT(t)
		if _, err := g.dave.UpdatePrivacy(ctx, wire.PrivacyPatch{GroupsAdd: strp("contacts")}); err != nil {
			t.Fatal(err)
		}
		// Dave's book has carol (and junk), not alice; alice has dave.
		if err := g.dave.SetContacts(ctx, []string{"+14155550203", "555-1234", "+1 (415) 555-0299"}); err != nil {
			t.Fatal(err)
		}
		if err := g.alice.SetContacts(ctx, []string{"+14155550204"}); err != nil {
			t.Fatal(err)
		}
		grp, err := g.alice.CreateGroup(ctx, "Climbing", "", []string{g.bID, g.dID})
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Equal(grp.NotAdded, []string{g.dID}) || len(grp.Members) != 2 {
			t.Fatalf("create: members %+v, not_added %v; want alice and bob, and dave not added", grp.Members, grp.NotAdded)
		}
		got, err := g.alice.AddMembers(ctx, grp.ChatID, []string{g.dID})
		if err != nil || !slices.Equal(got.NotAdded, []string{g.dID}) || len(got.Members) != 2 {
			t.Fatalf("add: %+v, %v; want dave not added", got, err)
		}
		// Some added, some not: both in the answer.
		got, err = g.alice.AddMembers(ctx, grp.ChatID, []string{g.cID, g.dID})
		if err != nil || !slices.Equal(got.NotAdded, []string{g.dID}) || len(got.Members) != 3 {
			t.Fatalf("add carol and dave: %+v, %v; want carol added, dave not", got, err)
		}
		// Carol, in dave's book, makes a group with him.
		grp2, err := g.carol.CreateGroup(ctx, "Books", "", []string{g.dID})
		if err != nil || len(grp2.NotAdded) != 0 || len(grp2.Members) != 2 {
			t.Fatalf("carol's group: %+v, %v; want dave in it", grp2, err)
		}
		// Dave saves alice: now she can add him.
		if err := g.dave.SetContacts(ctx, []string{"+14155550201"}); err != nil {
			t.Fatal(err)
		}
		got, err = g.alice.AddMembers(ctx, grp.ChatID, []string{g.dID})
		if err != nil || len(got.NotAdded) != 0 || got.Members[len(got.Members)-1].UserID != g.dID {
			t.Fatalf("add after dave saved alice: %+v, %v", got, err)
		}
	})
}
