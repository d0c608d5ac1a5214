package storetest

import (
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tern-im/tern/store"
)

// GroupList: store.GroupList, the dashboard's list of groups.

func testGroupList(t *testing.T, newStore func(t *testing.T) store.Store) {
	s, ctx := newStore(t), t.Context()
	w := newGWorld(t, s)
	// A direct chat is not a group.
	send(t, s, direct(w.alice, w.a1, w.bob, "x", 1, "hi", w.b1))

	names := []string{"Trip to Rome", "ROME fans", "Work", "a.*b", "Cooking (weekly)", "x1y", "Rom"}
	ids := make([]string, len(names))
	for i := range ids {
		ids[i] = store.NewID(store.PrefixGroup)
	}
	slices.Sort(ids)
	// Created in another order than their ids'.
	byName := map[string]string{}
	for i, j := range []int{3, 0, 6, 2, 5, 1, 4} {
		name, id := names[i], ids[j]
		byName[name] = id
		cw := createWrite(id, w.alice, w.a1, int64(10+i),
			gmember(w.alice, store.RoleAdmin, int64(10+i)), gmember(w.bob, store.RoleMember, int64(10+i)))
		cw.Create.Name = name
		if _, err := s.WriteGroup(ctx, cw); err != nil {
			t.Fatalf("create group %q: %v", name, err)
		}
	}
	nameOf := map[string]string{}
	for n, id := range byName {
		nameOf[id] = n
	}
	list := func(query, after string, limit int, want ...string) {
		t.Helper()
		got, err := s.ListGroups(ctx, query, after, limit)
		must(t, err)
		gotNames := make([]string, len(got))
		for i, g := range got {
			gotNames[i] = g.Name
			if byName[g.Name] != g.ChatID {
				t.Fatalf("ListGroups(%q, %q, %d): group %s is named %q", query, after, limit, g.ChatID, g.Name)
			}
		}
		wantIDs := make([]string, len(want))
		for i, n := range want {
			wantIDs[i] = byName[n]
		}
		slices.Sort(wantIDs)
		wantNames := make([]string, len(wantIDs))
		for i, id := range wantIDs {
			wantNames[i] = nameOf[id]
		}
		if !slices.Equal(gotNames, wantNames) {
			t.Fatalf("ListGroups(%q, %q, %d) = %q, want %q (by id)", query, after, limit, gotNames, wantNames)
		}
	}
	// Every group, in id order; a limit below 1 is the default (50).
	list("", "", 0, names...)
	list("", "", -3, names...)
	list("", "", 100, names...)
	// A part of the name, in any case.
	list("rome", "", 10, "Trip to Rome", "ROME fans")
	list("ROME", "", 10, "Trip to Rome", "ROME fans")
	list("rom", "", 10, "Trip to Rome", "ROME fans", "Rom")
	list("o r", "", 10, "Trip to Rome")
	list("nothing", "", 10)
	// The query is text, not a pattern.
	list(".*", "", 10, "a.*b")
	list("a.*B", "", 10, "a.*b")
	list("(weekly)", "", 10, "Cooking (weekly)")
	list("x.y", "", 10)
	list("[", "", 10)
	list("^", "", 10)
	list("$", "", 10)
	list("\\", "", 10)
	// Pages after an id (not included).
	list("", "", 3, nameOf[ids[0]], nameOf[ids[1]], nameOf[ids[2]])
	list("", ids[2], 3, nameOf[ids[3]], nameOf[ids[4]], nameOf[ids[5]])
	list("", ids[5], 3, nameOf[ids[6]])
	list("", ids[6], 3)
	rome := sortedIDs(byName["Trip to Rome"], byName["ROME fans"], byName["Rom"])
	list("ROM", "", 1, nameOf[rome[0]])
	list("ROM", rome[0], 1, nameOf[rome[1]])
	list("ROM", rome[1], 1, nameOf[rome[2]])
	list("ROM", rome[2], 1)
	// after need not be a group's id: it is compared.
	list("", ids[3]+"0", 2, nameOf[ids[4]], nameOf[ids[5]])
	list("", store.PrefixDirect, 1, nameOf[ids[0]])
	list("", strings.Repeat("z", 30), 10)

	// A group is found by its name as it is now, whole.
	rename := changeWrite(byName["Work"], w.alice, w.a1, 100, "info", func(g *store.Group) error {
		g.Name = "Office"
		return nil
	})
	if _, err := s.WriteGroup(ctx, rename); err != nil {
		t.Fatalf("rename: %v", err)
	}
	list("work", "", 10)
	got, err := s.ListGroups(ctx, "OFFICE", "", 10)
	must(t, err)
	if len(got) != 1 {
		t.Fatalf("ListGroups(OFFICE) = %+v, want the renamed group", got)
	}
	g := got[0]
	if g.ChatID != byName["Work"] || g.Name != "Office" || g.Description != "who brings what" || g.CreatedBy != w.alice ||
		g.Settings != (store.GroupSettings{EditInfo: store.AllowAdmins, Send: store.AllowAll}) ||
		len(g.Members) != 2 || g.Members[0].UserID != w.alice || g.Members[0].Role != store.RoleAdmin ||
		g.Members[1].UserID != w.bob || g.Members[1].Role != store.RoleMember {
		t.Fatalf("listed group: %+v", g)
	}
	want, err := s.Group(ctx, g.ChatID)
	must(t, err)
	if fmt.Sprint(g) != fmt.Sprint(want) {
		t.Fatalf("listed group %+v, Group reads %+v", g, want)
	}
}

func sortedIDs(ids ...string) []string {
	slices.Sort(ids)
	return ids
}
