package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tern-im/tern/store"
)

// actionReq is the entry of act in the direct chat of from and to, at ms.
func actionReq(from, fromDevice, to, clientID string, ms int64, act *store.Action, devices ...string) store.SendRequest {
	req := direct(from, fromDevice, to, clientID, ms, "", devices...)
	req.Message.Kind = store.KindAction
	req.Message.Body = []byte(fmt.Sprintf(`{%q:{"msg_id":%q}}`, act.Kind, act.Target))
	if act.Kind == store.ActionDisappearing {
		req.Message.Body = []byte(fmt.Sprintf(`{"disappearing":%d}`, act.Seconds))
	}
	req.Action = act
	return req
}

// stored returns message id of chatID as History has it.
func stored(t testing.TB, s store.Store, chatID, id string) store.Message {
	t.Helper()
	hist, err := s.History(t.Context(), chatID, 0, 1000)
	must(t, err)
	for _, m := range hist {
		if m.ID == id {
			return m
		}
	}
	t.Fatalf("History of %s lacks %s", chatID, id)
	return store.Message{}
}

// inboxMessage returns the message event of message id in device's inbox.
func inboxMessage(t testing.TB, s store.Store, device, id string) store.Message {
	t.Helper()
	evs, _ := inbox(t, s, device)
	for _, e := range evs {
		if e.Message != nil && e.Message.ID == id {
			return *e.Message
		}
	}
	t.Fatalf("inbox of %s lacks %s", device, id)
	return store.Message{}
}

func lastSeq(t testing.TB, s store.Store, chatID string) int64 {
	t.Helper()
	c, err := s.Chat(t.Context(), chatID)
	must(t, err)
	return c.LastSeq
}

func testActions(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("ReactEditDelete", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		all := []string{w.a2, w.b1, w.b2}
		msg := send(t, s, direct(w.alice, w.a1, w.bob, "m", 1, "helo", all...)).Message

		// Bob reacts, changes his mind, alice reacts too.
		var checked *store.Message
		react := &store.Action{Kind: store.ActionReaction, Target: msg.ID, Emoji: "👍",
			Check: func(target *store.Message, g *store.Group) error {
				if g != nil {
					return errors.New("a group in a direct chat")
				}
				c := *target
				checked = &c
				return nil
			}}
		r := send(t, s, actionReq(w.bob, w.b1, w.alice, "r1", 2, react, w.a1, w.a2, w.b2))
		if checked == nil || checked.ID != msg.ID || string(checked.Body) != string(msg.Body) {
			t.Fatalf("Check saw %+v, want the target %+v", checked, msg)
		}
		if r.Message.Seq != 2 || r.Message.Kind != store.KindAction {
			t.Fatalf("reaction entry: seq %d kind %q, want 2 %q", r.Message.Seq, r.Message.Kind, store.KindAction)
		}
		for _, d := range r.Deliveries {
			if d.Event.Kind != store.EventMessage || d.Event.Message.Kind != store.KindAction {
				t.Fatalf("reaction delivered as %s/%q, want a message event of kind %q", d.Event.Kind, d.Event.Message.Kind, store.KindAction)
			}
		}
		if got := sorted(slices.Collect(func(yield func(string) bool) {
			for _, d := range r.Deliveries {
				if !yield(d.DeviceID) {
					return
				}
			}
		})); !slices.Equal(got, sorted([]string{w.a1, w.a2, w.b2})) {
			t.Fatalf("reaction delivered to %v", got)
		}
		send(t, s, actionReq(w.bob, w.b1, w.alice, "r2", 3, &store.Action{Kind: store.ActionReaction, Target: msg.ID, Emoji: "❤️"}))
		send(t, s, actionReq(w.alice, w.a1, w.bob, "r3", 4, &store.Action{Kind: store.ActionReaction, Target: msg.ID, Emoji: "😂"}))
		got := stored(t, s, w.chatAB, msg.ID)
		want := []store.Reaction{{UserID: w.bob, Emoji: "❤️"}, {UserID: w.alice, Emoji: "😂"}}
		if !slices.Equal(got.Reactions, want) {
			t.Fatalf("reactions %+v, want %+v", got.Reactions, want)
		}
		send(t, s, actionReq(w.bob, w.b1, w.alice, "r4", 5, &store.Action{Kind: store.ActionReaction, Target: msg.ID}))
		if got := stored(t, s, w.chatAB, msg.ID); !slices.Equal(got.Reactions, want[1:]) {
			t.Fatalf("after bob took his back: %+v, want %+v", got.Reactions, want[1:])
		}
		// A resend of a reaction is its first answer, applied once.
		dup := send(t, s, actionReq(w.bob, w.b1, w.alice, "r1", 6, react))
		if !dup.Duplicate || dup.Message.Seq != 2 {
			t.Fatalf("resent reaction: duplicate %v seq %d", dup.Duplicate, dup.Message.Seq)
		}
		if got := stored(t, s, w.chatAB, msg.ID); !slices.Equal(got.Reactions, want[1:]) {
			t.Fatalf("a resend changed the reactions: %+v", got.Reactions)
		}

		// Alice edits: the log and bob's undelivered inbox have the new text.
		edit := &store.Action{Kind: store.ActionEdit, Target: msg.ID, Body: body("hello")}
		e := send(t, s, actionReq(w.alice, w.a1, w.bob, "e1", 7, edit, all...)).Message
		got = stored(t, s, w.chatAB, msg.ID)
		if !jsonEqual(got.Body, body("hello")) || got.EditedTS != ts(7) || got.Deleted {
			t.Fatalf("edited: body %s edited %d deleted %v", got.Body, got.EditedTS, got.Deleted)
		}
		if in := inboxMessage(t, s, w.b1, msg.ID); !jsonEqual(in.Body, body("hello")) || in.EditedTS != ts(7) {
			t.Fatalf("undelivered copy: body %s edited %d", in.Body, in.EditedTS)
		}
		// Reactions and edits are not messages: no receipts, not unread.
		_, head := inbox(t, s, w.b1)
		for _, d := range ack(t, s, w.b1, head) {
			if d.Event.Receipt != nil && slices.ContainsFunc(d.Event.Receipt.MsgIDs, func(id string) bool { return id != msg.ID }) {
				t.Fatalf("ack receipted an action entry: %+v", d.Event.Receipt)
			}
		}
		for _, c := range mustChats(t, s, w.bob) {
			if c.Chat.ID == w.chatAB && c.Unread != 1 {
				t.Fatalf("bob's unread = %d, want 1 (actions are not messages)", c.Unread)
			}
		}

		// Delete for everyone: body, reactions and the edit's text go.
		_ = send(t, s, actionReq(w.bob, w.b1, w.alice, "r5", 8, &store.Action{Kind: store.ActionReaction, Target: msg.ID, Emoji: "👍"}))
		del := &store.Action{Kind: store.ActionDelete, Target: msg.ID}
		send(t, s, actionReq(w.alice, w.a1, w.bob, "d1", 9, del, all...))
		got = stored(t, s, w.chatAB, msg.ID)
		if !jsonEqual(got.Body, store.DeletedBody) || !got.Deleted || len(got.Reactions) != 0 || got.EditedTS != 0 {
			t.Fatalf("deleted: %+v", got)
		}
		if ed := stored(t, s, w.chatAB, e.ID); !jsonEqual(ed.Body, store.ErasedEditBody(msg.ID)) {
			t.Fatalf("edit entry after the delete: %s, want %s", ed.Body, store.ErasedEditBody(msg.ID))
		}
		// b2 never acked: its inbox has no old text either.
		if in := inboxMessage(t, s, w.b2, msg.ID); !jsonEqual(in.Body, store.DeletedBody) {
			t.Fatalf("undelivered copy after the delete: %s", in.Body)
		}
		if in := inboxMessage(t, s, w.b2, e.ID); !jsonEqual(in.Body, store.ErasedEditBody(msg.ID)) {
			t.Fatalf("undelivered edit after the delete: %s", in.Body)
		}
		// A deleted message takes no edits or reactions; deleting again is fine.
		before := lastSeq(t, s, w.chatAB)
		_, err := s.Send(ctx, actionReq(w.alice, w.a1, w.bob, "e2", 10, &store.Action{Kind: store.ActionEdit, Target: msg.ID, Body: body("x")}))
		wantErr(t, err, store.ErrConflict, "editing a deleted message")
		_, err = s.Send(ctx, actionReq(w.bob, w.b1, w.alice, "r6", 10, &store.Action{Kind: store.ActionReaction, Target: msg.ID, Emoji: "👍"}))
		wantErr(t, err, store.ErrConflict, "reacting to a deleted message")
		if n := lastSeq(t, s, w.chatAB); n != before {
			t.Fatalf("refused actions stored entries: seq %d, was %d", n, before)
		}
		send(t, s, actionReq(w.alice, w.a1, w.bob, "d2", 11, del))
	})

	t.Run("Refused", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		msg := send(t, s, direct(w.alice, w.a1, w.bob, "m", 1, "hi", w.b1)).Message
		other := send(t, s, direct(w.alice, w.a1, w.carol, "o", 2, "elsewhere", w.c1)).Message
		mine := errors.New("not yours")
		cases := []struct {
			name   string
			req    store.SendRequest
			target error
		}{
			{"check", actionReq(w.bob, w.b1, w.alice, "1", 3, &store.Action{Kind: store.ActionEdit, Target: msg.ID, Body: body("x"),
				Check: func(*store.Message, *store.Group) error { return mine }}), mine},
			{"unknown target", actionReq(w.bob, w.b1, w.alice, "2", 3, &store.Action{Kind: store.ActionReaction, Target: store.NewID(store.PrefixMessage), Emoji: "x"}), store.ErrNotFound},
			{"other chat's message", actionReq(w.bob, w.b1, w.alice, "3", 3, &store.Action{Kind: store.ActionReaction, Target: other.ID, Emoji: "x"}), store.ErrNotFound},
			{"unknown kind", actionReq(w.bob, w.b1, w.alice, "4", 3, &store.Action{Kind: "poke", Target: msg.ID}), store.ErrInvalid},
			{"long emoji", actionReq(w.bob, w.b1, w.alice, "5", 3, &store.Action{Kind: store.ActionReaction, Target: msg.ID, Emoji: string(make([]byte, 10000))}), store.ErrInvalid},
			{"edit not an object", actionReq(w.bob, w.b1, w.alice, "6", 3, &store.Action{Kind: store.ActionEdit, Target: msg.ID, Body: []byte(`"x"`)}), store.ErrInvalid},
			{"no target", actionReq(w.bob, w.b1, w.alice, "7", 3, &store.Action{Kind: store.ActionDelete}), store.ErrInvalid},
		}
		noKind := actionReq(w.bob, w.b1, w.alice, "8", 3, &store.Action{Kind: store.ActionDelete, Target: msg.ID})
		noKind.Message.Kind = ""
		cases = append(cases, struct {
			name   string
			req    store.SendRequest
			target error
		}{"entry without its kind", noKind, store.ErrInvalid})
		for _, c := range cases {
			_, err := s.Send(ctx, c.req)
			if c.target == mine {
				if err != mine {
					t.Fatalf("%s: got %v, want the Check's own error", c.name, err)
				}
				continue
			}
			wantErr(t, err, c.target, c.name)
		}
		if n := lastSeq(t, s, w.chatAB); n != 1 {
			t.Fatalf("refused actions stored entries: seq %d", n)
		}
		if got := stored(t, s, w.chatAB, msg.ID); len(got.Reactions) != 0 || got.EditedTS != 0 || !jsonEqual(got.Body, body("hi")) {
			t.Fatalf("refused actions changed the message: %+v", got)
		}
	})

	t.Run("Group", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		bob, b1, carol, c1 := w.bob, w.b1, w.carol, w.c1
		g, _ := w.newGroup(t, bob)
		msg := send(t, s, groupSend(g.ChatID, w.alice, w.a1, "m", 2, "hi all")).Message
		var sawGroup *store.Group
		req := groupSend(g.ChatID, bob, b1, "r", 3, "")
		req.Message.Kind, req.Message.Body = store.KindAction, []byte(`{"reaction":{"msg_id":"x","emoji":"🎉"}}`)
		req.Action = &store.Action{Kind: store.ActionReaction, Target: msg.ID, Emoji: "🎉",
			Check: func(_ *store.Message, g *store.Group) error { sawGroup = g; return nil }}
		r := send(t, s, req)
		if sawGroup == nil || sawGroup.ChatID != g.ChatID {
			t.Fatalf("Check saw group %+v", sawGroup)
		}
		w.checkFanout(t, "reaction", r.Deliveries, store.EventMessage, r.Message, w.a1, w.a2, w.b2)
		if got := stored(t, s, g.ChatID, msg.ID); !slices.Equal(got.Reactions, []store.Reaction{{UserID: bob, Emoji: "🎉"}}) {
			t.Fatalf("group reactions %+v", got.Reactions)
		}
		// Not a member: not its to react to.
		req = groupSend(g.ChatID, carol, c1, "x", 4, "")
		req.Message.Kind = store.KindAction
		req.Action = &store.Action{Kind: store.ActionReaction, Target: msg.ID, Emoji: "x"}
		_, err := s.Send(ctx, req)
		wantErrOneOf(t, err, "a non-member's reaction", store.ErrNotMember, store.ErrNotFound)
	})

	t.Run("Hidden", func(t *testing.T) {
		// An entry hidden from bob (he blocks its author) changes nothing
		// bob sees; on a message hidden from him too, it applies.
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		seen := send(t, s, direct(w.bob, w.b1, w.alice, "m", 1, "bob's", w.a1)).Message
		req := direct(w.alice, w.a1, w.bob, "h", 2, "hidden", w.a2)
		req.Message.HiddenFrom = w.bob
		hidden := send(t, s, req).Message
		react := actionReq(w.alice, w.a1, w.bob, "r1", 3, &store.Action{Kind: store.ActionReaction, Target: seen.ID, Emoji: "👎"}, w.a2)
		react.Message.HiddenFrom = w.bob
		if r := send(t, s, react); r.Message.Seq != 3 || r.Message.HiddenFrom != w.bob {
			t.Fatalf("hidden reaction entry: seq %d hidden from %q", r.Message.Seq, r.Message.HiddenFrom)
		}
		if got := stored(t, s, w.chatAB, seen.ID); len(got.Reactions) != 0 {
			t.Fatalf("a reaction hidden from bob changed bob's message: %+v", got.Reactions)
		}
		edit := actionReq(w.alice, w.a1, w.bob, "e1", 4, &store.Action{Kind: store.ActionEdit, Target: hidden.ID, Body: body("still hidden")}, w.a2)
		edit.Message.HiddenFrom = w.bob
		send(t, s, edit)
		if got := stored(t, s, w.chatAB, hidden.ID); !jsonEqual(got.Body, body("still hidden")) {
			t.Fatalf("an edit of a message hidden from bob alike did not apply: %s", got.Body)
		}
		timer := actionReq(w.alice, w.a1, w.bob, "t", 5, &store.Action{Kind: store.ActionDisappearing, Seconds: 86400}, w.a2)
		timer.Message.HiddenFrom = w.bob
		send(t, s, timer)
		if n, err := s.Disappearing(ctx, w.chatAB); err != nil || n != 0 {
			t.Fatalf("a timer change hidden from bob set the timer: %d, %v", n, err)
		}
		// Bob cannot act on what is hidden from him.
		_, err := s.Send(ctx, actionReq(w.bob, w.b1, w.alice, "x", 6, &store.Action{Kind: store.ActionReaction, Target: hidden.ID, Emoji: "x"}))
		wantErr(t, err, store.ErrNotFound, "bob reacting to a message hidden from him")
	})

	t.Run("GroupJoinedLater", func(t *testing.T) {
		// An action on a message from before a member joined does not
		// reach that member; a group change keeps the chat's timer.
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		g, _ := w.newGroup(t, w.bob)
		timer := groupSend(g.ChatID, w.alice, w.a1, "t", 2, "")
		timer.Message.Kind, timer.Message.Body = store.KindAction, []byte(`{"disappearing":86400}`)
		timer.Action = &store.Action{Kind: store.ActionDisappearing, Seconds: 86400}
		send(t, s, timer)
		old := send(t, s, groupSend(g.ChatID, w.alice, w.a1, "m", 3, "before carol")).Message
		writeGroup(t, s, changeWrite(g.ChatID, w.alice, w.a1, 4, "members_added", addMembers(gmember(w.carol, store.RoleMember, 4)), w.carol))
		if n, err := s.Disappearing(ctx, g.ChatID); err != nil || n != 86400 {
			t.Fatalf("timer after a group change: %d, %v", n, err)
		}
		if m := send(t, s, groupSend(g.ChatID, w.alice, w.a1, "m2", 5, "after")).Message; m.ExpiresTS != ts(5)+86400_000 {
			t.Fatalf("a message after a group change: ExpiresTS %d", m.ExpiresTS)
		}
		req := groupSend(g.ChatID, w.alice, w.a1, "e", 6, "")
		req.Message.Kind, req.Message.Body = store.KindAction, []byte(`{"edit":{"msg_id":"x","text":"secret"}}`)
		req.Action = &store.Action{Kind: store.ActionEdit, Target: old.ID, Body: body("secret")}
		r := send(t, s, req)
		w.checkFanout(t, "edit of a message from before carol joined", r.Deliveries, store.EventMessage, r.Message, w.a2, w.b1, w.b2)
	})

	t.Run("ExpiryErasesEdits", func(t *testing.T) {
		// A message's edit made after the timer was turned off does not
		// expire itself, and its text goes with the message.
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		send(t, s, actionReq(w.alice, w.a1, w.bob, "on", 1, &store.Action{Kind: store.ActionDisappearing, Seconds: 60}))
		m := send(t, s, direct(w.alice, w.a1, w.bob, "m", 2, "brief")).Message
		send(t, s, actionReq(w.alice, w.a1, w.bob, "off", 3, &store.Action{Kind: store.ActionDisappearing}))
		e := send(t, s, actionReq(w.alice, w.a1, w.bob, "e", 4, &store.Action{Kind: store.ActionEdit, Target: m.ID, Body: body("edited")})).Message
		if e.ExpiresTS != 0 {
			t.Fatalf("the edit expires at %d with the timer off", e.ExpiresTS)
		}
		if n, err := s.ExpireDue(ctx, ts(100_000), 10); err != nil || n != 1 {
			t.Fatalf("ExpireDue: %d, %v", n, err)
		}
		if got := stored(t, s, w.chatAB, e.ID); !jsonEqual(got.Body, store.ErasedEditBody(m.ID)) {
			t.Fatalf("the edit of an expired message: %s", got.Body)
		}
	})

	t.Run("Disappearing", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		before := send(t, s, direct(w.alice, w.a1, w.bob, "0", 1, "stays", w.b1)).Message
		if n, err := s.Disappearing(ctx, w.chatAB); err != nil || n != 0 {
			t.Fatalf("Disappearing before a change: %d, %v", n, err)
		}
		if n, err := s.Disappearing(ctx, w.chatBC); err != nil || n != 0 {
			t.Fatalf("Disappearing of a chat not created: %d, %v", n, err)
		}
		ch := send(t, s, actionReq(w.bob, w.b1, w.alice, "d", 2, &store.Action{Kind: store.ActionDisappearing, Seconds: 60}, w.a1)).Message
		if ch.ExpiresTS != 0 {
			t.Fatalf("the timer change expires at %d; it must stay", ch.ExpiresTS)
		}
		if n, err := s.Disappearing(ctx, w.chatAB); err != nil || n != 60 {
			t.Fatalf("Disappearing after the change: %d, %v", n, err)
		}
		gone := send(t, s, direct(w.alice, w.a1, w.bob, "1", 3, "goes", w.b1)).Message
		if gone.ExpiresTS != ts(3)+60_000 {
			t.Fatalf("ExpiresTS %d, want %d", gone.ExpiresTS, ts(3)+60_000)
		}
		edit := actionReq(w.alice, w.a1, w.bob, "e", 4, &store.Action{Kind: store.ActionEdit, Target: gone.ID, Body: body("goes too")}, w.b1)
		e := send(t, s, edit).Message
		if got := stored(t, s, w.chatAB, gone.ID); got.ExpiresTS != gone.ExpiresTS {
			t.Fatalf("stored ExpiresTS %d, want %d", got.ExpiresTS, gone.ExpiresTS)
		}
		if n, err := s.ExpireDue(ctx, ts(3)+59_999, 100); err != nil || n != 0 {
			t.Fatalf("ExpireDue before the time: %d, %v", n, err)
		}
		n, err := s.ExpireDue(ctx, ts(4)+60_000, 100)
		must(t, err)
		if n != 2 {
			t.Fatalf("ExpireDue expired %d, want 2 (the message and its edit)", n)
		}
		got := stored(t, s, w.chatAB, gone.ID)
		if !jsonEqual(got.Body, store.ExpiredBody) {
			t.Fatalf("expired message's body %s", got.Body)
		}
		if in := inboxMessage(t, s, w.b1, gone.ID); !jsonEqual(in.Body, store.ExpiredBody) {
			t.Fatalf("undelivered copy of an expired message: %s", in.Body)
		}
		if in := inboxMessage(t, s, w.b1, e.ID); !jsonEqual(in.Body, store.ExpiredBody) && !jsonEqual(in.Body, store.ErasedEditBody(gone.ID)) {
			t.Fatalf("undelivered edit of an expired message: %s", in.Body)
		}
		if got := stored(t, s, w.chatAB, before.ID); !jsonEqual(got.Body, before.Body) {
			t.Fatalf("a message from before the timer changed: %s", got.Body)
		}
		if n, err := s.ExpireDue(ctx, ts(1_000_000), 100); err != nil || n != 0 {
			t.Fatalf("ExpireDue again: %d, %v", n, err)
		}
		// Expired is gone: no reactions to it.
		_, err = s.Send(ctx, actionReq(w.bob, w.b1, w.alice, "r", 5, &store.Action{Kind: store.ActionReaction, Target: gone.ID, Emoji: "x"}))
		wantErr(t, err, store.ErrNotFound, "reacting to an expired message")

		// Off again: later messages stay.
		send(t, s, actionReq(w.alice, w.a1, w.bob, "off", 6, &store.Action{Kind: store.ActionDisappearing}))
		if m := send(t, s, direct(w.alice, w.a1, w.bob, "2", 7, "stays again")).Message; m.ExpiresTS != 0 {
			t.Fatalf("after turning it off: ExpiresTS %d", m.ExpiresTS)
		}
		// A limit bounds one call.
		send(t, s, actionReq(w.alice, w.a1, w.bob, "on", 8, &store.Action{Kind: store.ActionDisappearing, Seconds: 1}))
		for i := range 3 {
			send(t, s, direct(w.alice, w.a1, w.bob, fmt.Sprint("x", i), 9, "brief"))
		}
		if n, err := s.ExpireDue(ctx, ts(20_000), 2); err != nil || n != 2 {
			t.Fatalf("ExpireDue with limit 2: %d, %v", n, err)
		}
		if n, err := s.ExpireDue(ctx, ts(20_000), 2); err != nil || n != 1 {
			t.Fatalf("ExpireDue for the rest: %d, %v", n, err)
		}
	})
}

func mustChats(t testing.TB, s store.Store, user string) []store.ChatSummary {
	t.Helper()
	cs, err := s.Chats(t.Context(), user)
	must(t, err)
	return cs
}
