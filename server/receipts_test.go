package server_test

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// receiptLog remembers the receipts one client got, so that waiting for
// one never loses another that arrived first.
type receiptLog struct {
	c    *client.Client
	seen map[[3]string]int64 // status, by, msg id -> ts
}

func newReceiptLog(c *client.Client) *receiptLog {
	return &receiptLog{c: c, seen: map[[3]string]int64{}}
}

// wait returns the time of the receipt of status by user for msgID,
// reading frames until it comes.
func (l *receiptLog) wait(t *testing.T, status, by, msgID string) int64 {
	t.Helper()
	deadline := time.Now().Add(3 * wait)
	for {
		if ts, ok := l.seen[[3]string{status, by, msgID}]; ok {
			return ts
		}
		left := time.Until(deadline)
		if left <= 0 {
			t.Fatalf("no %s receipt by %s for %s", status, by, msgID)
		}
		f := servertest.Next(t, l.c, wire.TypeReceipt, left)
		for _, id := range f.MsgIDs {
			k := [3]string{f.Status, f.By, id}
			if _, dup := l.seen[k]; !dup {
				l.seen[k] = f.TS
			}
		}
	}
}

// info is the message info of msgID as c sees it.
func info(ctx context.Context, t *testing.T, c *client.Client, chatID, msgID string) []wire.MessageReceipt {
	t.Helper()
	r, err := c.MessageReceipts(ctx, chatID, msgID)
	if err != nil {
		t.Fatalf("receipts of %s: %v", msgID, err)
	}
	if r.Receipts == nil {
		t.Fatalf("receipts of %s: null, want a list", msgID)
	}
	return r.Receipts
}

// rcpt is a wanted entry of message info; 0 is null.
type rcpt struct {
	user            string
	delivered, read int64
}

func checkInfo(t *testing.T, what string, got []wire.MessageReceipt, want ...rcpt) {
	t.Helper()
	show := func(p *int64) string {
		if p == nil {
			return "null"
		}
		return fmt.Sprint(*p)
	}
	same := func(p *int64, v int64) bool { return (p == nil && v == 0) || (p != nil && *p == v && v != 0) }
	ok := len(got) == len(want)
	for i := 0; ok && i < len(want); i++ {
		ok = got[i].UserID == want[i].user && same(got[i].DeliveredTS, want[i].delivered) && same(got[i].ReadTS, want[i].read)
	}
	if !ok {
		s := ""
		for _, r := range got {
			s += fmt.Sprintf(" {%s delivered %s read %s}", r.UserID, show(r.DeliveredTS), show(r.ReadTS))
		}
		t.Fatalf("%s: receipts%s; want %+v", what, s, want)
	}
}

func TestReceiptsGroup(t *testing.T) {
	eachDeployment(t, server.Config{}, func(t *testing.T, g *groupCast) {
		ctx := ctxT(t)
		// erin joins but never connects: nothing of hers acks.
		erin := g.node(5).LoginOnly(t, "+14155550205", "erin-phone")
		eID := erin.Session().UserID
		// frank's device reads but never acks.
		frank := loginManualAck(t, g.node(6), "+14155550206", "frank-phone")
		fID := frank.Session().UserID
		if _, err := g.alice.AddMembers(ctx, g.chatID, []string{eID, fID}); err != nil {
			t.Fatal(err)
		}
		rl := newReceiptLog(g.alice)
		sent, err := g.alice.Send(ctx, g.chatID, text("who got this?"))
		if err != nil {
			t.Fatal(err)
		}
		// bob's and carol's SDKs ack it as it arrives.
		delivered := map[string]int64{}
		for _, who := range []string{g.bID, g.cID} {
			delivered[who] = rl.wait(t, wire.StatusDelivered, who, sent.MsgID)
		}
		checkInfo(t, "delivered", info(ctx, t, g.alice, g.chatID, sent.MsgID),
			rcpt{g.bID, delivered[g.bID], 0}, rcpt{g.cID, delivered[g.cID], 0}, rcpt{eID, 0, 0}, rcpt{fID, 0, 0})
		// Read without an ack: delivered by the time it was read.
		if err := frank.Read(ctx, g.chatID, sent.Seq); err != nil {
			t.Fatal(err)
		}
		fRead := rl.wait(t, wire.StatusRead, fID, sent.MsgID)
		checkInfo(t, "read by frank", info(ctx, t, g.alice, g.chatID, sent.MsgID),
			rcpt{g.bID, delivered[g.bID], 0}, rcpt{g.cID, delivered[g.cID], 0}, rcpt{eID, 0, 0}, rcpt{fID, fRead, fRead})

		if err := g.carol.Read(ctx, g.chatID, sent.Seq); err != nil {
			t.Fatal(err)
		}
		read := rl.wait(t, wire.StatusRead, g.cID, sent.MsgID)
		checkInfo(t, "read by carol", info(ctx, t, g.alice, g.chatID, sent.MsgID),
			rcpt{g.bID, delivered[g.bID], 0}, rcpt{g.cID, delivered[g.cID], read}, rcpt{eID, 0, 0}, rcpt{fID, fRead, fRead})
		// The author's other device asks the same.
		checkInfo(t, "from alice's laptop", info(ctx, t, g.alice2, g.chatID, sent.MsgID),
			rcpt{g.bID, delivered[g.bID], 0}, rcpt{g.cID, delivered[g.cID], read}, rcpt{eID, 0, 0}, rcpt{fID, fRead, fRead})

		// Members who join later never got it: not listed.
		if _, err := g.alice.AddMembers(ctx, g.chatID, []string{g.dID}); err != nil {
			t.Fatal(err)
		}
		checkInfo(t, "after dave joined", info(ctx, t, g.alice, g.chatID, sent.MsgID),
			rcpt{g.bID, delivered[g.bID], 0}, rcpt{g.cID, delivered[g.cID], read}, rcpt{eID, 0, 0}, rcpt{fID, fRead, fRead})

		// Only the author may ask.
		_, err = g.bob.MessageReceipts(ctx, g.chatID, sent.MsgID)
		wantErrCode(t, "a member who is not the author", err, wire.CodeForbidden)
		if err := g.alice.RemoveMember(ctx, g.chatID, g.dID); err != nil {
			t.Fatal(err)
		}
		_, err = g.dave.MessageReceipts(ctx, g.chatID, sent.MsgID)
		wantErrCode(t, "a non-member", err, wire.CodeForbidden)
		_, err = g.alice.MessageReceipts(ctx, g.chatID, "m0000000000000000000000000")
		wantErrCode(t, "an unknown message", err, wire.CodeNotFound)
		_, err = g.alice.MessageReceipts(ctx, "g0000000000000000000000000", sent.MsgID)
		wantErrCode(t, "an unknown group", err, wire.CodeNotFound)
		// A group change is no message: it has no receipts.
		h, err := g.alice.History(ctx, g.chatID, 0, 50)
		if err != nil {
			t.Fatal(err)
		}
		created := h.Messages[len(h.Messages)-1]
		if created.Body.Group == nil || created.Body.Group.Change != wire.ChangeCreated {
			t.Fatalf("oldest entry = %+v, want the creation", created)
		}
		_, err = g.alice.MessageReceipts(ctx, g.chatID, created.MsgID)
		wantErrCode(t, "a group change", err, wire.CodeNotFound)
	})
}

func TestReceiptsDirect(t *testing.T) {
	eachDeployment(t, server.Config{}, func(t *testing.T, g *groupCast) {
		ctx := ctxT(t)
		rl := newReceiptLog(g.alice)
		sent, err := g.alice.Send(ctx, g.bID, text("did you get it?"))
		if err != nil {
			t.Fatal(err)
		}
		delivered := rl.wait(t, wire.StatusDelivered, g.bID, sent.MsgID)
		checkInfo(t, "delivered", info(ctx, t, g.alice, sent.ChatID, sent.MsgID), rcpt{g.bID, delivered, 0})
		if err := g.bob.Read(ctx, sent.ChatID, sent.Seq); err != nil {
			t.Fatal(err)
		}
		read := rl.wait(t, wire.StatusRead, g.bID, sent.MsgID)
		checkInfo(t, "read", info(ctx, t, g.alice, sent.ChatID, sent.MsgID), rcpt{g.bID, delivered, read})

		// bob hides his reads: the next one is delivered, never read.
		off := false
		if _, err := g.bob.UpdateMe(ctx, wire.MePatch{ReadReceipts: &off}); err != nil {
			t.Fatal(err)
		}
		sent2, err := g.alice.Send(ctx, g.bID, text("and this?"))
		if err != nil {
			t.Fatal(err)
		}
		delivered2 := rl.wait(t, wire.StatusDelivered, g.bID, sent2.MsgID)
		if err := g.bob.Read(ctx, sent2.ChatID, sent2.Seq); err != nil {
			t.Fatal(err)
		}
		waitUnread(ctx, t, g.bob, sent2.ChatID, 0)
		checkInfo(t, "read silently", info(ctx, t, g.alice, sent2.ChatID, sent2.MsgID), rcpt{g.bID, delivered2, 0})
		checkInfo(t, "the first message still", info(ctx, t, g.alice, sent.ChatID, sent.MsgID), rcpt{g.bID, delivered, read})

		_, err = g.bob.MessageReceipts(ctx, sent.ChatID, sent.MsgID)
		wantErrCode(t, "the recipient", err, wire.CodeForbidden)
		_, err = g.carol.MessageReceipts(ctx, sent.ChatID, sent.MsgID)
		wantErrCode(t, "a user outside the chat", err, wire.CodeForbidden)
		_, err = g.alice.MessageReceipts(ctx, sent.ChatID, "m0000000000000000000000000")
		wantErrCode(t, "an unknown message", err, wire.CodeNotFound)
		// A message of this chat asked for through another chat of alice's.
		other, err := g.alice.Send(ctx, g.cID, text("hi carol"))
		if err != nil {
			t.Fatal(err)
		}
		_, err = g.alice.MessageReceipts(ctx, other.ChatID, sent.MsgID)
		wantErrCode(t, "a message of another chat", err, wire.CodeNotFound)

		// A note to oneself has nobody to get it: an empty list.
		self, err := g.alice.Send(ctx, g.aID, text("note to self"))
		if err != nil {
			t.Fatal(err)
		}
		checkInfo(t, "note to self", info(ctx, t, g.alice, self.ChatID, self.MsgID))
	})
}

// loginManualAck signs phone in on n with a client that acks only when
// told to, and connects it.
func loginManualAck(t *testing.T, n *servertest.Node, phone, device string) *client.Client {
	t.Helper()
	ctx := ctxT(t)
	c := n.Client(t, client.Options{ManualAck: true})
	if _, err := c.Login(ctx, phone, device, "other", n.SMS.Code); err != nil {
		t.Fatalf("login %s: %v", phone, err)
	}
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect %s: %v", phone, err)
	}
	return c
}

// waitUnread waits until c's chat list shows chatID with unread unread
// messages: a read frame has no answer, this is when it was applied.
func waitUnread(ctx context.Context, t *testing.T, c *client.Client, chatID string, unread int64) {
	t.Helper()
	deadline := time.Now().Add(3 * wait)
	for {
		chats, err := c.Chats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		for _, ch := range chats.Chats {
			if ch.ChatID == chatID && ch.UnreadCount == unread {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("chat %s never showed %d unread: %+v", chatID, unread, chats.Chats)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
