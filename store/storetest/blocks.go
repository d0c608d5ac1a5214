package storetest

import (
	"fmt"
	"slices"
	"testing"

	"github.com/tern-im/tern/store"
)

func testBlocks(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("SetAndList", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		blocked := func(user, target string, want bool) {
			t.Helper()
			got, err := s.Blocked(ctx, user, target)
			must(t, err)
			if got != want {
				t.Fatalf("Blocked(%s, %s) = %v, want %v", user, target, got, want)
			}
		}
		blocked(w.alice, w.bob, false)
		must(t, s.SetBlock(ctx, w.alice, w.bob, true, 100))
		must(t, s.SetBlock(ctx, w.alice, w.carol, true, 200))
		blocked(w.alice, w.bob, true)
		blocked(w.bob, w.alice, false) // one way
		// Blocking again keeps the first time; the list is oldest first.
		must(t, s.SetBlock(ctx, w.alice, w.bob, true, 300))
		list, err := s.Blocks(ctx, w.alice)
		must(t, err)
		want := []store.Block{{UserID: w.bob, TS: 100}, {UserID: w.carol, TS: 200}}
		if !slices.Equal(list, want) {
			t.Fatalf("Blocks = %+v, want %+v", list, want)
		}
		// A user id that extends another's is not in its list.
		if list, err := s.Blocks(ctx, w.alice[:len(w.alice)-1]); err != nil || len(list) != 0 {
			t.Fatalf("Blocks of a prefix of alice's id: %+v, %v", list, err)
		}
		must(t, s.SetBlock(ctx, w.alice, w.bob, false, 400))
		must(t, s.SetBlock(ctx, w.alice, w.bob, false, 500)) // unblocking twice is fine
		blocked(w.alice, w.bob, false)
		if list, err := s.Blocks(ctx, w.alice); err != nil || !slices.Equal(list, want[1:]) {
			t.Fatalf("after unblock: %+v, %v", list, err)
		}
		wantErr(t, s.SetBlock(ctx, w.alice, store.NewID(store.PrefixUser), true, 1), store.ErrNotFound, "blocking an unknown user")
		wantErr(t, s.SetBlock(ctx, store.NewID(store.PrefixUser), w.bob, true, 1), store.ErrNotFound, "an unknown user blocking")
	})

	t.Run("HiddenMessage", func(t *testing.T) {
		// A message sent while its addressee blocks the author keeps that
		// in the log (the chat layer leaves it out for the addressee).
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		req := direct(w.alice, w.a1, w.bob, "x", 1, "hidden", w.a2)
		req.Message.HiddenFrom = w.bob
		r := send(t, s, req)
		msgs, err := s.History(ctx, w.chatAB, 0, 10)
		must(t, err)
		if len(msgs) != 1 || msgs[0].HiddenFrom != w.bob || msgs[0].ID != r.Message.ID {
			t.Fatalf("history: %+v", msgs)
		}
		sums, err := s.Chats(ctx, w.alice)
		must(t, err)
		if len(sums) != 1 || sums[0].Last == nil || sums[0].Last.HiddenFrom != w.bob {
			t.Fatalf("alice's chats: %+v", sums)
		}
		// Only the devices named got it: alice's other one, not bob's.
		if evs, _ := inbox(t, s, w.b1); len(evs) != 0 {
			t.Fatalf("bob's inbox: %+v", evs)
		}
		if evs, _ := inbox(t, s, w.a2); len(evs) != 1 || evs[0].Message.HiddenFrom != w.bob {
			t.Fatalf("alice's other device: %+v", evs)
		}
	})
}

func testUserMarks(t *testing.T, newStore func(t *testing.T) store.Store) {
	s, ctx := newStore(t), t.Context()
	w := newWorld(t, s)
	must(t, s.HideMessage(ctx, w.alice, w.chatAB, 2))
	must(t, s.HideMessage(ctx, w.alice, w.chatAB, 2)) // again: no change
	must(t, s.HideMessage(ctx, w.alice, w.chatAB, 10))
	must(t, s.HideMessage(ctx, w.alice, w.chatAC, 3))
	must(t, s.HideMessage(ctx, w.bob, w.chatAB, 3))
	got, err := s.HiddenSeqs(ctx, w.alice, w.chatAB, 1, 5)
	must(t, err)
	if len(got) != 1 || !got[2] {
		t.Fatalf("HiddenSeqs(alice, AB, 1..5) = %v, want {2}", got)
	}
	if got, err := s.HiddenSeqs(ctx, w.alice, w.chatAB, 2, 10); err != nil || len(got) != 2 || !got[10] {
		t.Fatalf("HiddenSeqs(2..10) = %v, %v (both ends count)", got, err)
	}

	star := func(chat string, seq, ts int64, on bool) {
		t.Helper()
		must(t, s.SetStar(ctx, w.alice, store.Star{ChatID: chat, Seq: seq, MsgID: fmt.Sprint("m", seq), TS: ts}, on))
	}
	star(w.chatAB, 1, 100, true)
	star(w.chatAC, 7, 300, true)
	star(w.chatAB, 4, 200, true)
	star(w.chatAB, 1, 999, true) // again: keeps its first time
	stars, err := s.Starred(ctx, w.alice, 0)
	must(t, err)
	want := []store.Star{{ChatID: w.chatAC, Seq: 7, MsgID: "m7", TS: 300}, {ChatID: w.chatAB, Seq: 4, MsgID: "m4", TS: 200},
		{ChatID: w.chatAB, Seq: 1, MsgID: "m1", TS: 100}}
	if !slices.Equal(stars, want) {
		t.Fatalf("Starred = %+v, want %+v", stars, want)
	}
	star(w.chatAC, 7, 0, false)
	if stars, err := s.Starred(ctx, w.alice, 1); err != nil || !slices.Equal(stars, want[1:2]) {
		t.Fatalf("after unstar, limit 1: %+v, %v", stars, err)
	}
	if stars, err := s.Starred(ctx, w.bob, 0); err != nil || len(stars) != 0 {
		t.Fatalf("bob's stars: %+v, %v", stars, err)
	}
}
