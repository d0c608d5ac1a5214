package server_test

import (
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

func historyIDs(t *testing.T, c *client.Client, chatID string) []string {
	t.Helper()
	h, err := c.History(ctxT(t), chatID, 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, m := range h.Messages {
		ids = append(ids, m.MsgID)
	}
	return ids
}

// TestBlocks: a blocked user's messages are answered sent and reach only
// its own other devices, never the blocker (socket, history, chat list);
// typing and presence stop both ways; it cannot add the blocker to a group;
// unblocking lets new messages through; reports copy the messages they
// name and can block in the same call.
func TestBlocks(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			nodes := d.start(t, server.Config{})
			ctx := ctxT(t)
			at := func(i int) *servertest.Node { return nodes[i%len(nodes)] }
			alice := at(0).Login(t, "+14155550801", "a")
			bob := at(1).Login(t, "+14155550802", "b")
			bob2 := at(2).Login(t, "+14155550802", "b2")
			aID, bID := alice.Session().UserID, bob.Session().UserID
			chatID := store.DirectChatID(aID, bID)

			// A first message both see, before the block.
			before, err := bob.Send(ctx, aID, text("hi"))
			if err != nil {
				t.Fatal(err)
			}
			servertest.Next(t, alice, wire.TypeMessage, wait)
			servertest.Next(t, bob2, wire.TypeMessage, wait)

			wantErrCode(t, "block yourself", alice.Block(ctx, aID), wire.CodeBadRequest)
			wantErrCode(t, "block nobody", alice.Block(ctx, "u-nobody"), wire.CodeNotFound)
			if err := alice.Block(ctx, bID); err != nil {
				t.Fatal(err)
			}
			if list, err := alice.Blocks(ctx); err != nil || len(list) != 1 || list[0].UserID != bID || list[0].TS == 0 {
				t.Fatalf("blocks: %+v, %v", list, err)
			}
			if list, err := bob.Blocks(ctx); err != nil || len(list) != 0 {
				t.Fatalf("bob's blocks: %+v, %v", list, err)
			}

			// bob's message is sent, for all he can tell, and reaches his
			// other device; alice never sees it.
			hidden, err := bob.Send(ctx, aID, text("are you there?"))
			if err != nil {
				t.Fatalf("a blocked user's send: %v", err)
			}
			if f := servertest.Next(t, bob2, wire.TypeMessage, wait); f.MsgID != hidden.MsgID {
				t.Fatalf("bob's other device got %+v", f)
			}
			if err := bob.Typing(ctx, chatID, "typing"); err != nil {
				t.Fatal(err)
			}
			servertest.None(t, alice, wire.TypeMessage, 500*time.Millisecond)
			servertest.None(t, alice, wire.TypeTyping, 100*time.Millisecond)
			if ids := historyIDs(t, alice, chatID); !slices.Equal(ids, []string{before.MsgID}) {
				t.Fatalf("alice's history: %v, want only %s", ids, before.MsgID)
			}
			if ids := historyIDs(t, bob, chatID); !slices.Equal(ids, []string{hidden.MsgID, before.MsgID}) {
				t.Fatalf("bob's history: %v", ids)
			}
			chats, err := alice.Chats(ctx)
			if err != nil || len(chats.Chats) != 1 || chats.Chats[0].LastMessage == nil ||
				chats.Chats[0].LastMessage.MsgID != before.MsgID || chats.Chats[0].UnreadCount != 1 ||
				chats.Chats[0].LastSeq != before.Seq {
				t.Fatalf("alice's chat list: %+v, %v", chats, err)
			}
			// The blocker may not write to the user it blocks.
			if _, err := alice.Send(ctx, bID, text("x")); errCode(err) != wire.CodeForbidden {
				t.Fatalf("sending to a user you block: %v", err)
			}

			// Presence stops both ways.
			for _, p := range []struct {
				viewer *client.Client
				target string
			}{{alice, bID}, {bob, aID}} {
				if err := p.viewer.PresenceSub(ctx, []string{p.target}); err != nil {
					t.Fatal(err)
				}
				wantPresence(t, "across a block", nextPresence(t, p.viewer, p.target), false, false)
			}

			// bob cannot add alice to a group.
			g, err := bob.CreateGroup(ctx, "x", "", []string{aID})
			if err != nil || !slices.Equal(g.NotAdded, []string{aID}) {
				t.Fatalf("group by the blocked user: %+v, %v", g, err)
			}

			// Reports: the messages named are copied; block in the same
			// call works on a user already blocked.
			if _, err := alice.Report(ctx, wire.ReportRequest{UserID: bID, ChatID: chatID, MsgIDs: []string{hidden.MsgID}, Reason: "spam"}); errCode(err) != wire.CodeNotFound {
				t.Fatalf("reporting a message you never saw: %v", err)
			}
			if _, err := alice.Report(ctx, wire.ReportRequest{UserID: bID, Reason: " "}); errCode(err) != wire.CodeBadRequest {
				t.Fatalf("a report without a reason: %v", err)
			}
			if _, err := alice.Report(ctx, wire.ReportRequest{UserID: bID, ChatID: chatID, MsgIDs: []string{"1", "2", "3", "4", "5", "6"}, Reason: "x"}); errCode(err) != wire.CodeTooLarge {
				t.Fatalf("a report of 6 messages: %v", err)
			}
			carol := at(0).Login(t, "+14155550803", "c")
			if _, err := carol.Report(ctx, wire.ReportRequest{UserID: bID, ChatID: chatID, Reason: "x"}); errCode(err) != wire.CodeForbidden {
				t.Fatalf("a report about someone else's chat: %v", err)
			}
			id, err := alice.Report(ctx, wire.ReportRequest{UserID: bID, ChatID: chatID, MsgIDs: []string{before.MsgID}, Reason: "spam", Block: true})
			if err != nil || id == "" {
				t.Fatalf("report: %q, %v", id, err)
			}
			reports, err := at(0).Store.Reports(ctx, false, "", 10)
			if err != nil || len(reports) != 1 || reports[0].ID != id || reports[0].By != aID || reports[0].UserID != bID ||
				len(reports[0].Messages) != 1 || reports[0].Messages[0].ID != before.MsgID {
				t.Fatalf("stored reports: %+v, %v", reports, err)
			}

			// Unblocked: new messages go through; what was sent during the
			// block stays unseen.
			if err := alice.Unblock(ctx, bID); err != nil {
				t.Fatal(err)
			}
			after, err := bob.Send(ctx, aID, text("hello again"))
			if err != nil {
				t.Fatal(err)
			}
			if f := servertest.Next(t, alice, wire.TypeMessage, wait); f.MsgID != after.MsgID {
				t.Fatalf("after unblock alice got %+v, want %s", f, after.MsgID)
			}
			if ids := historyIDs(t, alice, chatID); !slices.Equal(ids, []string{after.MsgID, before.MsgID}) {
				t.Fatalf("alice's history after unblock: %v", ids)
			}
			// Unread counts what alice can see; reading everything sends
			// bob read receipts for those only.
			chats, err = alice.Chats(ctx)
			if err != nil || len(chats.Chats) != 1 || chats.Chats[0].UnreadCount != 2 {
				t.Fatalf("alice's chat list after unblock: %+v, %v", chats, err)
			}
			if err := alice.Read(ctx, chatID, after.Seq); err != nil {
				t.Fatal(err)
			}
			var read []string
			for len(read) < 2 {
				f := servertest.Next(t, bob, wire.TypeReceipt, wait)
				if f.Status == wire.StatusRead {
					read = append(read, f.MsgIDs...)
				}
			}
			slices.Sort(read)
			want := []string{before.MsgID, after.MsgID}
			slices.Sort(want)
			if !slices.Equal(read, want) {
				t.Fatalf("read receipts for %v, want %v (none for the hidden %s)", read, want, hidden.MsgID)
			}
		})
	}
}

// TestForMe: forwarded messages are marked; delete for me hides a message
// from your history and chat list only; stars are listed while the message
// can be seen.
// TestBlockerMayTakeBack: blocking someone does not keep in their chat
// what the blocker regrets: deleting for everyone and taking a reaction
// back still reach them; a new reaction or an edit does not.
func TestBlockerMayTakeBack(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			nodes := d.start(t, server.Config{})
			ctx := ctxT(t)
			alice := nodes[0].Login(t, "+14155550811", "a")
			bob := nodes[len(nodes)-1].Login(t, "+14155550812", "b")
			aID, bID := alice.Session().UserID, bob.Session().UserID

			hi, err := bob.Send(ctx, aID, text("hi"))
			if err != nil {
				t.Fatal(err)
			}
			servertest.Next(t, alice, wire.TypeMessage, wait)
			if _, err := alice.React(ctx, bID, hi.MsgID, "❤"); err != nil {
				t.Fatal(err)
			}
			oops, err := alice.Send(ctx, bID, text("oops"))
			if err != nil {
				t.Fatal(err)
			}
			for range 2 {
				servertest.Next(t, bob, wire.TypeMessage, wait)
			}
			if err := alice.Block(ctx, bID); err != nil {
				t.Fatal(err)
			}

			if _, err := alice.React(ctx, bID, hi.MsgID, "👍"); errCode(err) != wire.CodeForbidden {
				t.Fatalf("a new reaction to a user you block: %v, want forbidden", err)
			}
			if _, err := alice.Edit(ctx, bID, oops.MsgID, "fine"); errCode(err) != wire.CodeForbidden {
				t.Fatalf("an edit to a user you block: %v, want forbidden", err)
			}
			unreact, err := alice.React(ctx, bID, hi.MsgID, "")
			if err != nil {
				t.Fatalf("taking a reaction back from a user you block: %v", err)
			}
			del, err := alice.DeleteForEveryone(ctx, bID, oops.MsgID)
			if err != nil {
				t.Fatalf("deleting for everyone in the chat of a user you block: %v", err)
			}
			for _, want := range []string{unreact.MsgID, del.MsgID} {
				if f := servertest.Next(t, bob, wire.TypeMessage, wait); f.MsgID != want {
					t.Fatalf("bob got %+v, want the action %s", f, want)
				}
			}
			page, err := bob.History(ctx, store.DirectChatID(aID, bID), 0, 10)
			if err != nil {
				t.Fatal(err)
			}
			for _, m := range page.Messages {
				switch m.MsgID {
				case oops.MsgID:
					if !m.Body.Deleted {
						t.Errorf("bob's history still shows the deleted message: %+v", m)
					}
				case hi.MsgID:
					if len(m.Reactions) != 0 {
						t.Errorf("bob's history still shows the reaction: %+v", m.Reactions)
					}
				}
			}
		})
	}
}

// TestBlockedFloodKeepsTheChat: a blocked user who writes more than a
// page of messages (all hidden from the blocker) does not push the chat
// out of the blocker's list, nor into it when the chat began after the
// block.
func TestBlockedFloodKeepsTheChat(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{SendsPerSecond: 10000, SendBurst: 10000}})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550821", "a")
	bob := n.Login(t, "+14155550822", "b")
	carol := n.Login(t, "+14155550823", "c")
	aID := alice.Session().UserID
	before, err := bob.Send(ctx, aID, text("before"))
	if err != nil {
		t.Fatal(err)
	}
	if err := alice.Block(ctx, bob.Session().UserID); err != nil {
		t.Fatal(err)
	}
	if err := alice.Block(ctx, carol.Session().UserID); err != nil {
		t.Fatal(err)
	}
	for i := range 150 {
		for _, c := range []*client.Client{bob, carol} {
			if _, err := c.Send(ctx, aID, text(fmt.Sprint("hidden ", i))); err != nil {
				t.Fatal(err)
			}
		}
	}
	chats, err := alice.Chats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chats.Chats) != 1 || chats.Chats[0].LastMessage == nil || chats.Chats[0].LastMessage.MsgID != before.MsgID ||
		chats.Chats[0].LastSeq != before.Seq {
		t.Fatalf("alice's chats: %+v, want only bob's, its last message the one before the block", chats.Chats)
	}
}

func TestForMe(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			nodes := d.start(t, server.Config{})
			ctx := ctxT(t)
			at := func(i int) *servertest.Node { return nodes[i%len(nodes)] }
			alice := at(0).Login(t, "+14155550901", "a")
			bob := at(1).Login(t, "+14155550902", "b")
			carol := at(2).Login(t, "+14155550903", "c")
			aID, bID := alice.Session().UserID, bob.Session().UserID
			chatID := store.DirectChatID(aID, bID)

			m1, err := alice.Send(ctx, bID, wire.Body{Text: "look at this", Forwarded: true})
			if err != nil {
				t.Fatal(err)
			}
			m2, err := alice.Send(ctx, bID, text("and this"))
			if err != nil {
				t.Fatal(err)
			}
			if f := servertest.Next(t, bob, wire.TypeMessage, wait); f.MsgID != m1.MsgID || f.Body == nil || !f.Body.Forwarded {
				t.Fatalf("forwarded message arrived as %+v", f)
			}
			servertest.Next(t, bob, wire.TypeMessage, wait)

			// Stars.
			if err := bob.Star(ctx, chatID, m1.MsgID, true); err != nil {
				t.Fatal(err)
			}
			wantErrCode(t, "star of no message", bob.Star(ctx, chatID, "m-nothing", true), wire.CodeNotFound)
			wantErrCode(t, "star in someone else's chat", carol.Star(ctx, chatID, m1.MsgID, true), wire.CodeForbidden)
			starred, err := bob.Starred(ctx)
			if err != nil || len(starred) != 1 || starred[0].MsgID != m1.MsgID || !starred[0].Body.Forwarded {
				t.Fatalf("bob's starred: %+v, %v", starred, err)
			}
			if starred, err := alice.Starred(ctx); err != nil || len(starred) != 0 {
				t.Fatalf("alice's starred: %+v, %v", starred, err)
			}

			// Delete for me: gone from bob's history and chat list, not
			// from alice's; a starred message deleted for me is unstarred.
			if err := bob.Star(ctx, chatID, m2.MsgID, true); err != nil {
				t.Fatal(err)
			}
			if err := bob.DeleteForMe(ctx, chatID, m2.MsgID); err != nil {
				t.Fatal(err)
			}
			wantErrCode(t, "delete for me twice", bob.DeleteForMe(ctx, chatID, m2.MsgID), wire.CodeNotFound)
			wantErrCode(t, "delete for me in someone else's chat", carol.DeleteForMe(ctx, chatID, m1.MsgID), wire.CodeForbidden)
			if ids := historyIDs(t, bob, chatID); !slices.Equal(ids, []string{m1.MsgID}) {
				t.Fatalf("bob's history: %v", ids)
			}
			if ids := historyIDs(t, alice, chatID); !slices.Equal(ids, []string{m2.MsgID, m1.MsgID}) {
				t.Fatalf("alice's history: %v", ids)
			}
			chats, err := bob.Chats(ctx)
			if err != nil || len(chats.Chats) != 1 || chats.Chats[0].LastMessage == nil || chats.Chats[0].LastMessage.MsgID != m1.MsgID ||
				chats.Chats[0].UnreadCount != 1 {
				t.Fatalf("bob's chat list: %+v, %v", chats, err)
			}
			if starred, err := bob.Starred(ctx); err != nil || len(starred) != 1 || starred[0].MsgID != m1.MsgID {
				t.Fatalf("bob's starred after delete for me: %+v, %v", starred, err)
			}
			if err := bob.Star(ctx, chatID, m1.MsgID, false); err != nil {
				t.Fatal(err)
			}
			if starred, err := bob.Starred(ctx); err != nil || len(starred) != 0 {
				t.Fatalf("after unstar: %+v, %v", starred, err)
			}
		})
	}
}
