package mongo

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"testing"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/tern-im/tern/store"
)

// actionReq is the entry of act from one user to another in their direct
// chat.
func actionReq(from, fromDevice, to, clientID string, act *store.Action, devices ...string) store.SendRequest {
	req := directReq(from, fromDevice, to, clientID, devices...)
	req.Message.Kind = store.KindAction
	req.Message.Body = json.RawMessage(fmt.Sprintf(`{%q:{"msg_id":%q}}`, act.Kind, act.Target))
	req.Action = act
	return req
}

func mustSend(t *testing.T, s *Store, req store.SendRequest) store.SendResult {
	t.Helper()
	r, err := s.Send(t.Context(), req)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

// rawEntry is the log entry at seq of chatID as stored.
func rawEntry(t *testing.T, s *Store, chatID string, seq int64) bson.M {
	t.Helper()
	var d bson.M
	if err := s.messages.FindOne(t.Context(), bson.D{{Key: "_id", Value: numKey(chatID, seq)}}).Decode(&d); err != nil {
		t.Fatal(err)
	}
	return d
}

// orphan leaves entry m (its Seq set) with action act in the log above
// the chat's seq, and the chat's lock marked dead: a node that died right
// after the insert.
func orphan(t *testing.T, s *Store, m store.Message, act *store.Action) {
	t.Helper()
	ctx := t.Context()
	doc := msgDoc{ID: numKey(m.ChatID, m.Seq), Msg: *msgOf(&m), Key: "m:" + m.ID, Action: actionDocOf(act), Due: m.ExpiresTS}
	if _, err := s.messages.InsertOne(ctx, &doc); err != nil {
		t.Fatal(err)
	}
	if _, err := s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: m.ChatID}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lock", Value: lockDoc{T: "dead-node", Dead: true}}}}}); err != nil {
		t.Fatal(err)
	}
}

// TestActionRollForward: an action entry a dead node left in the log has
// its effect applied by the next holder of the lock, once, and so has a
// change of the disappearing timer.
func TestActionRollForward(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	msg := mustSend(t, s, directReq(c.alice, c.a1, c.bob, "m", c.b1)).Message
	chatID := msg.ChatID

	edit := &store.Action{Kind: store.ActionEdit, Target: msg.ID, Body: json.RawMessage(`{"text":"edited"}`)}
	e := actionReq(c.alice, c.a1, c.bob, "e", edit).Message
	e.Seq = 2
	orphan(t, s, e, edit)
	r := mustSend(t, s, directReq(c.bob, c.b1, c.alice, "after-edit", c.a1))
	if r.Message.Seq != 3 {
		t.Fatalf("send after the dead edit got seq %d, want 3", r.Message.Seq)
	}
	got, err := s.Message(ctx, chatID, msg.ID)
	if err != nil {
		t.Fatal(err)
	}
	if string(got.Body) != `{"text":"edited"}` || got.EditedTS != e.TS || !slices.Equal(got.EditSeqs, []int64{2}) {
		t.Fatalf("target after the completed edit: body %s edited %d edit seqs %v", got.Body, got.EditedTS, got.EditSeqs)
	}

	// A delete applied by its node, which died before the commit: applied
	// again, it erases nothing more and changes nothing.
	del := &store.Action{Kind: store.ActionDelete, Target: msg.ID}
	d := actionReq(c.alice, c.a1, c.bob, "d", del).Message
	d.Seq = 4
	eff, err := s.actOn(ctx, &chatLock{chatID: chatID, seq: 3}, &d, del)
	if err != nil {
		t.Fatal(err)
	}
	orphan(t, s, d, del)
	if err := s.applyEffect(ctx, &d, del.Kind, eff); err != nil {
		t.Fatal(err)
	}
	mustSend(t, s, directReq(c.bob, c.b1, c.alice, "after-delete", c.a1))
	got, _ = s.Message(ctx, chatID, msg.ID)
	if !got.Deleted || string(got.Body) != string(store.DeletedBody) || got.EditedTS != 0 || len(got.EditSeqs) != 0 {
		t.Fatalf("target after the completed delete: %+v", got)
	}
	ed, _ := s.Message(ctx, chatID, e.ID)
	if string(ed.Body) != string(store.ErasedEditBody(msg.ID)) {
		t.Fatalf("edit entry after the delete: %s", ed.Body)
	}
	if _, ok := rawEntry(t, s, chatID, 2)[fieldAction]; ok {
		t.Fatal("an erased edit entry keeps its action, which holds the text")
	}

	// The timer: set by the completed entry, and used by the taker's own.
	timer := &store.Action{Kind: store.ActionDisappearing, Seconds: 30}
	tm := actionReq(c.bob, c.b1, c.alice, "t", timer).Message
	tm.Seq = 6
	orphan(t, s, tm, timer)
	r = mustSend(t, s, directReq(c.alice, c.a1, c.bob, "after-timer", c.b1))
	if r.Message.ExpiresTS != r.Message.TS+30_000 {
		t.Fatalf("message after the completed timer change: ExpiresTS %d, want %d", r.Message.ExpiresTS, r.Message.TS+30_000)
	}
	if n, err := s.Disappearing(ctx, chatID); err != nil || n != 30 {
		t.Fatalf("Disappearing = %d, %v; want 30", n, err)
	}
}

// TestActionLosesToSweeper: the expiry sweep takes no lock, so an action
// may have read its target before the sweep expired it. Its write then
// must not bring the target back, and an edit's text goes too.
func TestActionLosesToSweeper(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	mustSend(t, s, actionReq(c.alice, c.a1, c.bob, "t", &store.Action{Kind: store.ActionDisappearing, Seconds: 60}))
	msg := mustSend(t, s, directReq(c.alice, c.a1, c.bob, "m", c.b1)).Message
	chatID := msg.ChatID
	if msg.ExpiresTS == 0 {
		t.Fatal("no expiry under a timer")
	}

	// The edit reads the target, then the sweep runs, then the edit
	// writes.
	edit := &store.Action{Kind: store.ActionEdit, Target: msg.ID, Body: json.RawMessage(`{"text":"late"}`)}
	req := actionReq(c.alice, c.a1, c.bob, "e", edit)
	e := req.Message
	e.Seq = msg.Seq + 1
	eff, err := s.actOn(ctx, &chatLock{chatID: chatID, seq: msg.Seq}, &e, edit)
	if err != nil {
		t.Fatal(err)
	}
	orphan(t, s, e, edit)
	if n, err := s.ExpireDue(ctx, msg.ExpiresTS, 10); err != nil || n != 1 {
		t.Fatalf("ExpireDue = %d, %v; want 1", n, err)
	}
	if err := s.applyEffect(ctx, &e, edit.Kind, eff); err != nil {
		t.Fatal(err)
	}
	raw := rawEntry(t, s, chatID, msg.Seq)
	if b, _ := raw[fieldBody].(bson.Binary); string(b.Data) != string(store.ExpiredBody) {
		t.Fatalf("expired target after a late edit: body %v", raw[fieldBody])
	}
	for _, f := range []string{fieldEdited, fieldEditSeqs, fieldDue} {
		if _, ok := raw[f]; ok {
			t.Fatalf("expired target after a late edit has %s: %v", f, raw)
		}
	}
	own := rawEntry(t, s, chatID, e.Seq)
	if b, _ := own[fieldBody].(bson.Binary); string(b.Data) != string(store.ErasedEditBody(msg.ID)) {
		t.Fatalf("the late edit's own entry: body %v", own[fieldBody])
	}
	// The next holder completes the entry, applying nothing to the
	// expired target.
	mustSend(t, s, directReq(c.bob, c.b1, c.alice, "next", c.a1))
	got, err := s.Message(ctx, chatID, msg.ID)
	if err != nil || string(got.Body) != string(store.ExpiredBody) || got.ExpiresTS != msg.ExpiresTS {
		t.Fatalf("target after the completion: %+v, %v", got, err)
	}
}

// TestSweepCatchesLateEdit: an edit stored between the sweep's read of a
// message and its expiry has its text erased too.
func TestSweepCatchesLateEdit(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	mustSend(t, s, actionReq(c.alice, c.a1, c.bob, "t", &store.Action{Kind: store.ActionDisappearing, Seconds: 60}))
	msg := mustSend(t, s, directReq(c.alice, c.a1, c.bob, "m")).Message
	// What the sweep read: no edits yet.
	var stale dueEntry
	if err := s.messages.FindOne(ctx, bson.D{{Key: "_id", Value: numKey(msg.ChatID, msg.Seq)}}).Decode(&stale); err != nil {
		t.Fatal(err)
	}
	// Then the edit (off the timer, so that it would never expire itself).
	mustSend(t, s, actionReq(c.alice, c.a1, c.bob, "off", &store.Action{Kind: store.ActionDisappearing}))
	e := mustSend(t, s, actionReq(c.alice, c.a1, c.bob, "e",
		&store.Action{Kind: store.ActionEdit, Target: msg.ID, Body: json.RawMessage(`{"text":"secret"}`)})).Message
	if e.ExpiresTS != 0 {
		t.Fatalf("edit after the timer went off expires at %d", e.ExpiresTS)
	}
	ok, err := s.expire(ctx, &stale, msg.ExpiresTS)
	if err != nil || !ok {
		t.Fatalf("expire = %v, %v", ok, err)
	}
	got, _ := s.Message(ctx, msg.ChatID, e.ID)
	if string(got.Body) != string(store.ErasedEditBody(msg.ID)) {
		t.Fatalf("edit stored during the sweep: %s", got.Body)
	}
	if ok, err := s.expire(ctx, &stale, msg.ExpiresTS); err != nil || ok {
		t.Fatalf("expire again = %v, %v; want false", ok, err)
	}
}

// TestPlainDocumentsStaySmall: the fields of actions and expiry are absent
// from a message, and from a chat, that have none of them.
func TestPlainDocumentsStaySmall(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	msg := mustSend(t, s, directReq(c.alice, c.a1, c.bob, "m", c.b1)).Message
	raw := rawEntry(t, s, msg.ChatID, msg.Seq)
	for _, f := range []string{fieldEdited, fieldDeleted, fieldReactions, fieldEditSeqs, fieldExpires, fieldDue, fieldAction} {
		if _, ok := raw[f]; ok {
			t.Errorf("a plain message has %s: %v", f, raw)
		}
	}
	var chat bson.M
	if err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: msg.ChatID}}).Decode(&chat); err != nil {
		t.Fatal(err)
	}
	if _, ok := chat[fieldTimer]; ok {
		t.Errorf("a chat without a timer has %s: %v", fieldTimer, chat)
	}
	// A reaction sets the target's reactions and nothing else.
	mustSend(t, s, actionReq(c.bob, c.b1, c.alice, "r", &store.Action{Kind: store.ActionReaction, Target: msg.ID, Emoji: "x"}))
	raw = rawEntry(t, s, msg.ChatID, msg.Seq)
	for _, f := range []string{fieldEdited, fieldDeleted, fieldEditSeqs, fieldExpires, fieldDue} {
		if _, ok := raw[f]; ok {
			t.Errorf("a message with a reaction has %s: %v", f, raw)
		}
	}
}

// TestTimerBeforeFirstMessage: a direct chat's first entry may be a timer
// change, which creates the chat; an action on a message of a chat that
// does not exist creates nothing.
func TestTimerBeforeFirstMessage(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	req := actionReq(c.alice, c.a1, c.carol, "x", &store.Action{Kind: store.ActionReaction, Target: store.NewID(store.PrefixMessage), Emoji: "x"}, c.c1)
	chatID := req.Message.ChatID
	if _, err := s.Send(ctx, req); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a reaction in a chat not created: %v, want ErrNotFound", err)
	}
	if _, err := s.Chat(ctx, chatID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("a refused reaction created its chat: %v", err)
	}
	ch := mustSend(t, s, actionReq(c.alice, c.a1, c.carol, "t", &store.Action{Kind: store.ActionDisappearing, Seconds: 5}, c.c1)).Message
	if ch.Seq != 1 || ch.ExpiresTS != 0 {
		t.Fatalf("the timer change: seq %d expires %d, want 1 and never", ch.Seq, ch.ExpiresTS)
	}
	if n, err := s.Disappearing(ctx, chatID); err != nil || n != 5 {
		t.Fatalf("Disappearing = %d, %v; want 5", n, err)
	}
	m := mustSend(t, s, directReq(c.carol, c.c1, c.alice, "m", c.a1)).Message
	if m.ExpiresTS != m.TS+5_000 {
		t.Fatalf("first message under the timer: ExpiresTS %d, want %d", m.ExpiresTS, m.TS+5_000)
	}
	if got, err := s.Message(ctx, chatID, m.ID); err != nil || got.ExpiresTS != m.ExpiresTS {
		t.Fatalf("stored: %+v, %v", got, err)
	}
}

// TestActionRollForwardHidden: completing entries hidden from bob (he
// blocks their author), the next holder of the lock changes nothing bob
// sees: neither his message's reactions nor the chat's timer, while an
// edit of a message hidden from bob alike applies. None of them reaches
// bob's devices, as the send left them out.
func TestActionRollForwardHidden(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	seen := mustSend(t, s, directReq(c.bob, c.b1, c.alice, "m", c.a1, c.a2)).Message
	chatID := seen.ChatID
	hreq := directReq(c.alice, c.a1, c.bob, "h", c.a2)
	hreq.Message.HiddenFrom = c.bob
	hidden := mustSend(t, s, hreq).Message

	left := func(clientID string, seq int64, act *store.Action) store.Message {
		m := actionReq(c.alice, c.a1, c.bob, clientID, act).Message
		m.Seq, m.HiddenFrom = seq, c.bob
		orphan(t, s, m, act)
		return m
	}
	r := left("r", 3, &store.Action{Kind: store.ActionReaction, Target: seen.ID, Emoji: "x"})
	e := left("e", 4, &store.Action{Kind: store.ActionEdit, Target: hidden.ID, Body: json.RawMessage(`{"text":"edited"}`)})
	tm := left("t", 5, &store.Action{Kind: store.ActionDisappearing, Seconds: 30})

	res := mustSend(t, s, directReq(c.alice, c.a2, c.bob, "next", c.a1, c.b1, c.b2))
	if res.Message.Seq != 6 || res.Message.ExpiresTS != 0 {
		t.Fatalf("send after the hidden entries: seq %d expires %d, want 6 and never", res.Message.Seq, res.Message.ExpiresTS)
	}
	for _, m := range []store.Message{r, e, tm} {
		if got := entryDevices(res.Deliveries, m.ID); !slices.Equal(got, []string{c.a2}) {
			t.Errorf("completed entry %d went to %v, want alice's other device only", m.Seq, got)
		}
	}
	if got, err := s.Message(ctx, chatID, seen.ID); err != nil || len(got.Reactions) != 0 {
		t.Fatalf("bob's message after a reaction hidden from him: %+v, %v", got.Reactions, err)
	}
	if got, err := s.Message(ctx, chatID, hidden.ID); err != nil || string(got.Body) != `{"text":"edited"}` ||
		!slices.Equal(got.EditSeqs, []int64{e.Seq}) {
		t.Fatalf("a message hidden from bob after an edit hidden from him: %+v, %v", got, err)
	}
	if n, err := s.Disappearing(ctx, chatID); err != nil || n != 0 {
		t.Fatalf("Disappearing after a timer change hidden from bob = %d, %v; want 0", n, err)
	}
}

// TestGroupActionRollForward: an action entry a dead node left in a group
// goes, once completed, only to the devices of the members who can see
// its target (joined at or before it), as the send does; one that lost
// its action, and with it its target, to an expiry goes to no member.
func TestGroupActionRollForward(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	g := store.NewID(store.PrefixGroup)
	if _, err := s.WriteGroup(ctx, createGroupWrite(g, c.alice, c.a1, c.alice, c.bob)); err != nil {
		t.Fatal(err)
	}
	old := mustSend(t, s, groupReq(g, c.alice, c.a1, "old")).Message
	add := store.GroupWrite{
		Apply: func(gr *store.Group) error {
			gr.Members = append(gr.Members, store.Member{UserID: c.carol, Role: store.RoleMember})
			return nil
		},
		Message: groupEntry(g, c.alice, c.a1, "members_added"),
	}
	if _, err := s.WriteGroup(ctx, add); err != nil {
		t.Fatal(err)
	}
	recent := mustSend(t, s, groupReq(g, c.alice, c.a1, "recent")).Message

	left := func(clientID string, seq int64, act *store.Action) store.Message {
		m := groupReq(g, c.bob, c.b1, clientID).Message
		m.Kind, m.Seq = store.KindAction, seq
		m.Body = json.RawMessage(fmt.Sprintf(`{%q:{"msg_id":%q}}`, act.Kind, act.Target))
		if act.Kind == store.ActionEdit {
			m.ExpiresTS = m.TS
		}
		orphan(t, s, m, act)
		return m
	}
	onOld := left("r-old", 5, &store.Action{Kind: store.ActionReaction, Target: old.ID, Emoji: "x"})
	onRecent := left("r-recent", 6, &store.Action{Kind: store.ActionReaction, Target: recent.ID, Emoji: "y"})
	lost := left("e-lost", 7, &store.Action{Kind: store.ActionEdit, Target: recent.ID, Body: json.RawMessage(`{"text":"gone"}`)})
	if n, err := s.ExpireDue(ctx, lost.TS, 10); err != nil || n != 1 {
		t.Fatalf("ExpireDue = %d, %v; want 1", n, err)
	}
	if _, ok := rawEntry(t, s, g, lost.Seq)[fieldAction]; ok {
		t.Fatal("an expired action entry keeps its action")
	}

	r := mustSend(t, s, groupReq(g, c.alice, c.a2, "next"))
	if r.Message.Seq != 8 {
		t.Fatalf("send after the dead actions got seq %d, want 8", r.Message.Seq)
	}
	if got, want := entryDevices(r.Deliveries, onOld.ID), sortedIDs(c.a1, c.a2, c.b2); !slices.Equal(got, want) {
		t.Errorf("reaction to a message from before carol joined went to %v, want %v", got, want)
	}
	if got, want := entryDevices(r.Deliveries, onRecent.ID), sortedIDs(c.a1, c.a2, c.b2, c.c1); !slices.Equal(got, want) {
		t.Errorf("reaction to a message carol saw went to %v, want %v", got, want)
	}
	if got := entryDevices(r.Deliveries, lost.ID); len(got) != 0 {
		t.Errorf("an action entry without its action went to %v, want nobody", got)
	}
	if got, want := entryDevices(r.Deliveries, r.Message.ID), sortedIDs(c.a1, c.b1, c.b2, c.c1); !slices.Equal(got, want) {
		t.Errorf("the taker's own message went to %v, want %v", got, want)
	}
	for _, m := range []struct {
		id, emoji string
	}{{old.ID, "x"}, {recent.ID, "y"}} {
		got, err := s.Message(ctx, g, m.id)
		if err != nil || !slices.Equal(got.Reactions, []store.Reaction{{UserID: c.bob, Emoji: m.emoji}}) {
			t.Fatalf("reactions after completion: %+v, %v", got.Reactions, err)
		}
	}
}
