package server_test

import (
	"encoding/json"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// testClock is the chat rules' clock in a test: real time plus what the
// test skipped ahead.
type testClock struct {
	mu   sync.Mutex
	skip time.Duration
}

func (c *testClock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return time.Now().Add(c.skip)
}

func (c *testClock) Advance(d time.Duration) {
	c.mu.Lock()
	c.skip += d
	c.mu.Unlock()
}

// startClocked starts the deployment called name with the chat clock.
func startClocked(t *testing.T, name string, clock *testClock) []*servertest.Node {
	o := servertest.Options{Server: server.Config{SweepInterval: 20 * time.Millisecond}, ChatNow: clock.Now}
	if name == "cluster" {
		return servertest.StartCluster(t, 3, o)
	}
	return []*servertest.Node{servertest.Start(t, o)}
}

// nextWhere returns the next message frame c gets for which ok holds,
// skipping others.
func nextWhere(t *testing.T, c *client.Client, what string, ok func(f wire.ServerFrame) bool) wire.ServerFrame {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		f, err := servertest.NextFrame(c, wire.TypeMessage, time.Until(deadline))
		if err != nil {
			t.Fatalf("%s: %v", what, err)
		}
		if ok(f) {
			return f
		}
	}
}

func historyOf(t *testing.T, c *client.Client, chatID string) []wire.Message {
	t.Helper()
	h, err := c.History(ctxT(t), chatID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	return h.Messages
}

func findMsg(t *testing.T, msgs []wire.Message, id string) wire.Message {
	t.Helper()
	for _, m := range msgs {
		if m.MsgID == id {
			return m
		}
	}
	t.Fatalf("no message %s in %d", id, len(msgs))
	return wire.Message{}
}

// TestMessageActions: reactions, edits and deletes for everyone converge on
// every device, online, on another node, and offline until later; the
// rules and windows hold (on an injected clock); and no trace of a deleted
// text is left in history or in an undelivered inbox.
func TestMessageActions(t *testing.T) {
	for _, name := range []string{"embedded", "cluster"} {
		t.Run(name, func(t *testing.T) {
			clock := &testClock{}
			nodes := startClocked(t, name, clock)
			at := func(i int) *servertest.Node { return nodes[i%len(nodes)] }
			ctx := ctxT(t)
			alice := at(0).Login(t, "+14155551101", "a")
			alice2 := at(1).Login(t, "+14155551101", "a2")
			bob := at(2).Login(t, "+14155551102", "b")
			bobOff := at(0).LoginOnly(t, "+14155551102", "b-offline")
			carol := at(1).Login(t, "+14155551103", "c")
			aID, bID := alice.Session().UserID, bob.Session().UserID
			chatAB := store.DirectChatID(aID, bID)

			m1, err := alice.SendWithID(ctx, "first", bID, text("helo wrold"), "")
			if err != nil {
				t.Fatal(err)
			}
			nextWhere(t, bob, "bob gets m1", func(f wire.ServerFrame) bool { return f.MsgID == m1.MsgID })

			// Reactions: one per user, replaced, reaching both of alice's devices.
			if _, err := bob.React(ctx, aID, m1.MsgID, "👍"); err != nil {
				t.Fatal(err)
			}
			for _, c := range []*client.Client{alice, alice2} {
				f := nextWhere(t, c, "reaction", func(f wire.ServerFrame) bool { return f.Body != nil && f.Body.Reaction != nil })
				if f.Body.Reaction.MsgID != m1.MsgID || f.Body.Reaction.Emoji != "👍" || f.From != bID {
					t.Fatalf("reaction frame %+v", f)
				}
			}
			if _, err := bob.React(ctx, aID, m1.MsgID, "😮"); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.React(ctx, bID, m1.MsgID, "😮"); err != nil {
				t.Fatal(err)
			}
			got := findMsg(t, historyOf(t, bob, chatAB), m1.MsgID)
			if len(got.Reactions) != 1 || got.Reactions[0].Emoji != "😮" || len(got.Reactions[0].UserIDs) != 2 {
				t.Fatalf("reactions in history: %+v", got.Reactions)
			}
			// Not in the chat: carol's "chat with alice" has no such message.
			_, err = carol.React(ctx, aID, m1.MsgID, "👍")
			wantErrCode(t, "reaction from outside the chat", err, wire.CodeNotFound)
			_, err = bob.React(ctx, aID, m1.MsgID, strings.Repeat("😀", 2500))
			wantErrCode(t, "a 10 KB emoji", err, wire.CodeBadRequest)

			// Edits: the author only, within the window.
			_, err = bob.Edit(ctx, aID, m1.MsgID, "mine now")
			wantErrCode(t, "editing another's message", err, wire.CodeForbidden)
			editBody := wire.Body{Edit: &wire.EditAction{MsgID: m1.MsgID, Text: "hello world"}}
			ed, err := alice.SendWithID(ctx, "edit", bID, editBody, "")
			if err != nil {
				t.Fatal(err)
			}
			f := nextWhere(t, bob, "edit", func(f wire.ServerFrame) bool { return f.Body != nil && f.Body.Edit != nil })
			if f.Body.Edit.MsgID != m1.MsgID || f.Body.Edit.Text != "hello world" {
				t.Fatalf("edit frame %+v", f.Body.Edit)
			}
			got = findMsg(t, historyOf(t, bob, chatAB), m1.MsgID)
			if got.Body.Text != "hello world" || got.EditedTS == 0 {
				t.Fatalf("edited message in history: %+v", got)
			}
			clock.Advance(16 * time.Minute)
			_, err = alice.Edit(ctx, bID, m1.MsgID, "too late")
			wantErrCode(t, "an edit after 15 minutes", err, wire.CodeConflict)
			// A resend is its first answer, window or not.
			if again, err := alice.SendWithID(ctx, "edit", bID, editBody, ""); err != nil || again.MsgID != ed.MsgID {
				t.Fatalf("resent edit after the window: %+v, %v (first %s)", again, err, ed.MsgID)
			}

			// Delete for everyone: the author only; the text is gone
			// everywhere, the edit's too; the tombstone stays.
			_, err = bob.DeleteForEveryone(ctx, aID, m1.MsgID)
			wantErrCode(t, "deleting another's message", err, wire.CodeForbidden)
			del, err := alice.DeleteForEveryone(ctx, bID, m1.MsgID)
			if err != nil {
				t.Fatal(err)
			}
			nextWhere(t, bob, "delete", func(f wire.ServerFrame) bool { return f.MsgID == del.MsgID && f.Body != nil && f.Body.Delete != nil })
			hist := historyOf(t, bob, chatAB)
			got = findMsg(t, hist, m1.MsgID)
			if !got.Body.Deleted || got.Body.Text != "" || len(got.Reactions) != 0 || got.EditedTS != 0 {
				t.Fatalf("deleted message in history: %+v", got)
			}
			raw, _ := json.Marshal(hist)
			for _, s := range []string{"helo", "hello"} {
				if strings.Contains(string(raw), s) {
					t.Fatalf("history still has %q: %s", s, raw)
				}
			}
			_, err = bob.React(ctx, aID, m1.MsgID, "👍")
			wantErrCode(t, "reacting to a deleted message", err, wire.CodeConflict)
			if again, err := alice.SendWithID(ctx, "first", bID, text("helo wrold"), ""); err != nil || again.MsgID != m1.MsgID {
				t.Fatalf("resent message after its delete: %+v, %v", again, err)
			}

			// A blocked user's reaction is answered sent and changes
			// nothing the blocker sees.
			mb, err := bob.Send(ctx, aID, text("bob's"))
			if err != nil {
				t.Fatal(err)
			}
			if err := bob.Block(ctx, aID); err != nil {
				t.Fatal(err)
			}
			if _, err := alice.React(ctx, bID, mb.MsgID, "👎"); err != nil {
				t.Fatalf("a blocked user's reaction: %v", err)
			}
			if got := findMsg(t, historyOf(t, bob, chatAB), mb.MsgID); len(got.Reactions) != 0 {
				t.Fatalf("the blocker sees the reaction: %+v", got.Reactions)
			}
			if err := bob.Unblock(ctx, aID); err != nil {
				t.Fatal(err)
			}

			m2, err := alice.Send(ctx, bID, text("old news"))
			if err != nil {
				t.Fatal(err)
			}
			clock.Advance(49 * time.Hour)
			_, err = alice.DeleteForEveryone(ctx, bID, m2.MsgID)
			wantErrCode(t, "a delete after 48 hours", err, wire.CodeConflict)

			// The device that was offline throughout converges: its inbox
			// has the message as it is now, then every action, in order.
			connect(t, bobOff)
			var frames []wire.ServerFrame
			nextWhere(t, bobOff, "the offline device catches up", func(f wire.ServerFrame) bool {
				frames = append(frames, f)
				return f.MsgID == m2.MsgID
			})
			raw, _ = json.Marshal(frames)
			for _, s := range []string{"helo", "hello"} {
				if strings.Contains(string(raw), s) {
					t.Fatalf("the undelivered inbox still had %q: %s", s, raw)
				}
			}
			if frames[0].MsgID != m1.MsgID || frames[0].Body == nil || !frames[0].Body.Deleted {
				t.Fatalf("offline device's first frame: %+v", frames[0])
			}
			var seqs []int64
			for _, f := range frames {
				seqs = append(seqs, f.Seq)
			}
			for i := 1; i < len(seqs); i++ {
				if seqs[i] <= seqs[i-1] {
					t.Fatalf("offline device's frames out of order: %v", seqs)
				}
			}
		})
	}
}

func connect(t *testing.T, c *client.Client) {
	t.Helper()
	ctx := ctxT(t)
	if err := c.Connect(ctx); err != nil {
		t.Fatal(err)
	}
}

// TestGroupActionsAndDisappearing: group admins delete others' messages,
// members do not; a group's timer follows edit_info; disappearing messages
// leave history at their time and are erased from the store and from an
// undelivered inbox by the sweeper.
func TestGroupActionsAndDisappearing(t *testing.T) {
	for _, name := range []string{"embedded", "cluster"} {
		t.Run(name, func(t *testing.T) {
			clock := &testClock{}
			nodes := startClocked(t, name, clock)
			at := func(i int) *servertest.Node { return nodes[i%len(nodes)] }
			ctx := ctxT(t)
			alice := at(0).Login(t, "+14155551201", "a")
			bob := at(1).Login(t, "+14155551202", "b")
			carol := at(2).Login(t, "+14155551203", "c")
			bID, cID := bob.Session().UserID, carol.Session().UserID
			g, err := alice.CreateGroup(ctx, "actions", "", []string{bID, cID})
			if err != nil {
				t.Fatal(err)
			}
			mc, err := carol.Send(ctx, g.ChatID, text("from carol"))
			if err != nil {
				t.Fatal(err)
			}
			// Edits of messages from before a member joined do not reach it.
			early, err := alice.Send(ctx, g.ChatID, text("before dave"))
			if err != nil {
				t.Fatal(err)
			}
			dave := at(3).Login(t, "+14155551204", "d")
			if _, err := alice.AddMembers(ctx, g.ChatID, []string{dave.Session().UserID}); err != nil {
				t.Fatal(err)
			}
			edEarly, err := alice.Edit(ctx, g.ChatID, early.MsgID, "before dave, edited")
			if err != nil {
				t.Fatal(err)
			}
			nextWhere(t, bob, "the edit", func(f wire.ServerFrame) bool { return f.MsgID == edEarly.MsgID })
			for _, m := range historyOf(t, dave, g.ChatID) {
				if m.MsgID == edEarly.MsgID || strings.Contains(m.Body.Text, "before dave") {
					t.Fatalf("a late joiner sees %+v", m)
				}
			}
			if _, err := bob.React(ctx, g.ChatID, mc.MsgID, "🎉"); err != nil {
				t.Fatal(err)
			}
			f := nextWhere(t, carol, "group reaction", func(f wire.ServerFrame) bool { return f.Body != nil && f.Body.Reaction != nil })
			if f.ChatID != g.ChatID || f.From != bID {
				t.Fatalf("group reaction frame %+v", f)
			}
			_, err = bob.DeleteForEveryone(ctx, g.ChatID, mc.MsgID)
			wantErrCode(t, "a member deleting another's message", err, wire.CodeForbidden)
			if _, err := alice.DeleteForEveryone(ctx, g.ChatID, mc.MsgID); err != nil {
				t.Fatalf("an admin deleting a member's message: %v", err)
			}
			if got := findMsg(t, historyOf(t, carol, g.ChatID), mc.MsgID); !got.Body.Deleted {
				t.Fatalf("after the admin's delete: %+v", got)
			}

			// Timers: only the allowed values; in this group only admins.
			admins := store.AllowAdmins
			if _, err := alice.UpdateGroup(ctx, g.ChatID, wire.GroupPatch{Settings: &wire.GroupSettingsPatch{EditInfo: &admins}}); err != nil {
				t.Fatal(err)
			}
			_, err = bob.SetDisappearing(ctx, g.ChatID, 86400)
			wantErrCode(t, "a member setting the timer", err, wire.CodeForbidden)
			_, err = alice.SetDisappearing(ctx, g.ChatID, 3600)
			wantErrCode(t, "a timer of an hour", err, wire.CodeBadRequest)
			set, err := alice.SetDisappearing(ctx, g.ChatID, 86400)
			if err != nil || set.DisappearingSeconds != 86400 || set.MsgID == "" {
				t.Fatalf("set the timer: %+v, %v", set, err)
			}
			f = nextWhere(t, bob, "timer change", func(f wire.ServerFrame) bool { return f.Body != nil && f.Body.Disappearing != nil })
			if *f.Body.Disappearing != 86400 || f.MsgID != set.MsgID {
				t.Fatalf("timer change frame %+v", f)
			}
			if s, err := carol.ChatSettings(ctx, g.ChatID); err != nil || s.DisappearingSeconds != 86400 {
				t.Fatalf("chat settings: %+v, %v", s, err)
			}

			// A device that stays offline until after the message is due.
			carolOff := at(1).LoginOnly(t, "+14155551203", "c-offline")
			secret, err := alice.Send(ctx, g.ChatID, text("self-destructing"))
			if err != nil {
				t.Fatal(err)
			}
			f = nextWhere(t, bob, "disappearing message", func(f wire.ServerFrame) bool { return f.MsgID == secret.MsgID })
			if f.ExpiresTS != secret.TS+86400_000 {
				t.Fatalf("expires_ts %d, want %d", f.ExpiresTS, secret.TS+86400_000)
			}
			clock.Advance(24*time.Hour + time.Minute)
			for _, m := range historyOf(t, bob, g.ChatID) {
				if m.MsgID == secret.MsgID {
					t.Fatalf("an expired message in history: %+v", m)
				}
			}
			chats, err := bob.Chats(ctx)
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range chats.Chats {
				if c.ChatID == g.ChatID && (c.LastMessage == nil || c.LastMessage.MsgID == secret.MsgID) {
					t.Fatalf("chat list after the message disappeared: last %+v", c.LastMessage)
				}
			}
			// The sweeper erases it from the store.
			st := at(0).Store
			deadline := time.Now().Add(wait)
			for {
				m, err := st.Message(ctx, g.ChatID, secret.MsgID)
				if err != nil {
					t.Fatal(err)
				}
				if string(m.Body) == string(store.ExpiredBody) {
					break
				}
				if time.Now().After(deadline) {
					t.Fatalf("not erased within %v: %s", wait, m.Body)
				}
				time.Sleep(20 * time.Millisecond)
			}
			connect(t, carolOff)
			f = nextWhere(t, carolOff, "the undelivered copy", func(f wire.ServerFrame) bool { return f.MsgID == secret.MsgID })
			if f.Body == nil || !f.Body.Expired || f.Body.Text != "" {
				t.Fatalf("undelivered copy of an expired message: %+v", f.Body)
			}
			// Off again.
			if _, err := alice.SetDisappearing(ctx, g.ChatID, 0); err != nil {
				t.Fatal(err)
			}
			stays, err := alice.Send(ctx, g.ChatID, text("stays"))
			if err != nil {
				t.Fatal(err)
			}
			if got := findMsg(t, historyOf(t, bob, g.ChatID), stays.MsgID); got.ExpiresTS != 0 {
				t.Fatalf("after turning it off: expires_ts %d", got.ExpiresTS)
			}
		})
	}
}
