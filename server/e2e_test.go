package server_test

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

const wait = 5 * time.Second

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func text(s string) wire.Body { return wire.Body{Text: s} }

func TestChatBothWaysWithTicks(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550101", "alice-phone")
	bob := n.Login(t, "+14155550102", "bob-phone")
	aID, bID := alice.Session().UserID, bob.Session().UserID

	sent, err := alice.Send(ctx, bID, text("hi bob"))
	if err != nil {
		t.Fatal(err)
	}
	if sent.Seq != 1 || sent.MsgID == "" || sent.ChatID == "" || sent.TS == 0 {
		t.Fatalf("sent = %+v", sent)
	}
	m := servertest.Next(t, bob, wire.TypeMessage, wait)
	if m.MsgID != sent.MsgID || m.Body == nil || m.Body.Text != "hi bob" || m.From != aID ||
		m.FromDevice != alice.Session().DeviceID || m.Seq != 1 || m.ChatID != sent.ChatID || m.Cursor < 1 {
		t.Fatalf("bob got %+v", m)
	}
	// Bob's SDK auto-acks: alice sees delivered.
	r := servertest.Next(t, alice, wire.TypeReceipt, wait)
	if r.Status != wire.StatusDelivered || r.By != bID || len(r.MsgIDs) != 1 || r.MsgIDs[0] != sent.MsgID {
		t.Fatalf("delivered receipt = %+v", r)
	}
	if err := bob.Read(ctx, sent.ChatID, sent.Seq); err != nil {
		t.Fatal(err)
	}
	r = servertest.Next(t, alice, wire.TypeReceipt, wait)
	if r.Status != wire.StatusRead || r.By != bID || r.MsgIDs[0] != sent.MsgID || r.ChatID != sent.ChatID {
		t.Fatalf("read receipt = %+v", r)
	}

	// The other way round, in the same chat.
	back, err := bob.Send(ctx, aID, text("hi alice"))
	if err != nil {
		t.Fatal(err)
	}
	if back.ChatID != sent.ChatID || back.Seq != 2 {
		t.Fatalf("reply sent = %+v, want same chat, seq 2", back)
	}
	m = servertest.Next(t, alice, wire.TypeMessage, wait)
	if m.MsgID != back.MsgID || m.Body.Text != "hi alice" || m.From != bID {
		t.Fatalf("alice got %+v", m)
	}
	r = servertest.Next(t, bob, wire.TypeReceipt, wait)
	if r.Status != wire.StatusDelivered || r.MsgIDs[0] != back.MsgID || r.By != aID {
		t.Fatalf("bob's delivered receipt = %+v", r)
	}

	// Chat list and history agree with what happened.
	chats, err := alice.Chats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(chats.Chats) != 1 || chats.Chats[0].ChatID != sent.ChatID || chats.Chats[0].UnreadCount != 1 ||
		chats.Chats[0].LastMessage == nil || chats.Chats[0].LastMessage.MsgID != back.MsgID {
		t.Fatalf("alice chats = %+v", chats)
	}
	h, err := bob.History(ctx, sent.ChatID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 2 || h.Messages[0].Seq != 2 || h.Messages[1].Seq != 1 || h.Messages[1].Body.Text != "hi bob" {
		t.Fatalf("history = %+v", h)
	}
}

func TestTypingReachesPeer(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550111", "a")
	bob := n.Login(t, "+14155550112", "b")
	chat := directChat(t, alice, bob)
	if err := alice.Typing(ctx, chat, wire.TypingStarted); err != nil {
		t.Fatal(err)
	}
	f := servertest.Next(t, bob, wire.TypeTyping, wait)
	if f.ChatID != chat || f.From != alice.Session().UserID || f.State != wire.TypingStarted {
		t.Fatalf("typing = %+v", f)
	}
}

// directChat sends one message a -> b and returns its chat id, draining it.
func directChat(t *testing.T, a, b *client.Client) string {
	t.Helper()
	sent, err := a.Send(ctxT(t), b.Session().UserID, text("hello"))
	if err != nil {
		t.Fatal(err)
	}
	servertest.Next(t, b, wire.TypeMessage, wait)
	return sent.ChatID
}

func TestOfflineRecipientGetsMessagesInOrderAndSenderGetsReceiptsLater(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550121", "alice")
	bob := n.LoginOnly(t, "+14155550122", "bob") // signed in, not connected
	bID := bob.Session().UserID

	const count = 25
	var ids []string
	for i := 0; i < count; i++ {
		s, err := alice.Send(ctx, bID, text(fmt.Sprintf("m%d", i)))
		if err != nil {
			t.Fatal(err)
		}
		if s.Seq != int64(i+1) {
			t.Fatalf("send %d got seq %d", i, s.Seq)
		}
		ids = append(ids, s.MsgID)
	}
	// Alice goes offline before bob comes online.
	aliceSession := alice.Session()
	if err := alice.Close(); err != nil {
		t.Fatal(err)
	}
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	for i := 0; i < count; i++ {
		m := servertest.Next(t, bob, wire.TypeMessage, wait)
		if m.Seq != int64(i+1) || m.MsgID != ids[i] || m.Body.Text != fmt.Sprintf("m%d", i) {
			t.Fatalf("message %d: got seq %d %q", i, m.Seq, m.Body.Text)
		}
	}
	// Flush bob's acks: after a ping round trip his acks are processed.
	if err := bob.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	// Alice returns with the same device and receives the delivered receipts.
	alice2 := n.Client(t, client.Options{})
	alice2.SetSession(aliceSession)
	if err := alice2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	got := map[string]bool{}
	for len(got) < count {
		r := servertest.Next(t, alice2, wire.TypeReceipt, wait)
		if r.Status != wire.StatusDelivered || r.By != bID {
			t.Fatalf("receipt = %+v", r)
		}
		for _, id := range r.MsgIDs {
			if got[id] {
				t.Fatalf("msg %s reported delivered twice", id)
			}
			got[id] = true
		}
	}
	for _, id := range ids {
		if !got[id] {
			t.Fatalf("no delivered receipt for %s", id)
		}
	}
}

func TestMultiDevice(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alicePhone := n.Login(t, "+14155550131", "alice-phone")
	aliceWeb := n.Login(t, "+14155550131", "alice-web")
	bobPhone := n.Login(t, "+14155550132", "bob-phone")
	bobWeb := n.Login(t, "+14155550132", "bob-web")
	if alicePhone.Session().UserID != aliceWeb.Session().UserID ||
		alicePhone.Session().DeviceID == aliceWeb.Session().DeviceID {
		t.Fatal("second login must be a new device of the same user")
	}
	devs, err := bobWeb.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs.Devices) != 2 {
		t.Fatalf("bob has %d devices, want 2", len(devs.Devices))
	}

	for i := 0; i < 3; i++ {
		sent, err := alicePhone.Send(ctx, bobPhone.Session().UserID, text(fmt.Sprintf("multi %d", i)))
		if err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client.Client{bobPhone, bobWeb, aliceWeb} {
			m := servertest.Next(t, c, wire.TypeMessage, wait)
			if m.MsgID != sent.MsgID || m.FromDevice != alicePhone.Session().DeviceID {
				t.Fatalf("device got %+v, want %s", m, sent.MsgID)
			}
		}
	}
	// Delivered is reported once per message even though two of bob's
	// devices acked each one, and the sending device never gets its own
	// message back.
	seen := map[string]int{}
	check := func(f wire.ServerFrame) {
		switch f.Type {
		case wire.TypeMessage:
			t.Fatalf("sender got its own message back: %+v", f)
		case wire.TypeReceipt:
			if f.Status == wire.StatusDelivered {
				for _, id := range f.MsgIDs {
					seen[id]++
				}
			}
		}
	}
	deadline := time.Now().Add(wait)
	for len(seen) < 3 && time.Now().Before(deadline) {
		for _, f := range servertest.Drain(alicePhone, 100*time.Millisecond) {
			check(f)
		}
	}
	for _, f := range servertest.Drain(alicePhone, 300*time.Millisecond) {
		check(f)
	}
	for id, c := range seen {
		if c != 1 {
			t.Fatalf("message %s: %d delivered receipts", id, c)
		}
	}
	if len(seen) != 3 {
		t.Fatalf("delivered receipts for %d messages, want 3", len(seen))
	}
}

func TestSendIsIdempotent(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550141", "a")
	bob := n.Login(t, "+14155550142", "b")
	first, err := alice.SendWithID(ctx, "client-id-1", bob.Session().UserID, text("once"), "")
	if err != nil {
		t.Fatal(err)
	}
	again, err := alice.SendWithID(ctx, "client-id-1", bob.Session().UserID, text("once"), "")
	if err != nil {
		t.Fatal(err)
	}
	if first != again {
		t.Fatalf("second answer %+v differs from first %+v", again, first)
	}
	servertest.Next(t, bob, wire.TypeMessage, wait)
	servertest.None(t, bob, wire.TypeMessage, 300*time.Millisecond)
	h, err := bob.History(ctx, first.ChatID, 0, 10)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 1 {
		t.Fatalf("history has %d messages, want 1", len(h.Messages))
	}
}

func TestReadReceiptPrivacy(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550151", "a")
	bob := n.Login(t, "+14155550152", "b")
	off := false
	if _, err := bob.UpdateMe(ctx, wire.MePatch{ReadReceipts: &off}); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.Send(ctx, bob.Session().UserID, text("secret"))
	if err != nil {
		t.Fatal(err)
	}
	servertest.Next(t, bob, wire.TypeMessage, wait)
	if r := servertest.Next(t, alice, wire.TypeReceipt, wait); r.Status != wire.StatusDelivered {
		t.Fatalf("want delivered first, got %+v", r)
	}
	if err := bob.Read(ctx, sent.ChatID, sent.Seq); err != nil {
		t.Fatal(err)
	}
	if err := bob.Ping(ctx); err != nil {
		t.Fatal(err)
	}
	servertest.None(t, alice, wire.TypeReceipt, 300*time.Millisecond)
	chats, err := bob.Chats(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if chats.Chats[0].UnreadCount != 0 {
		t.Fatalf("read must still clear bob's unread count, got %d", chats.Chats[0].UnreadCount)
	}
}

func TestGracefulShutdownAsksClientsToReconnect(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	alice := n.Login(t, "+14155550161", "a")
	n.Stop()
	// The SDK keeps trying to reconnect after 1001; Err stays nil (not fatal).
	select {
	case f, ok := <-alice.Events():
		if ok {
			t.Fatalf("unexpected frame %+v", f)
		}
		t.Fatalf("events closed: the SDK treated 1001 as fatal: %v", alice.Err())
	case <-time.After(300 * time.Millisecond):
	}
	if err := alice.Err(); err != nil {
		t.Fatalf("client stopped with %v; 1001 must lead to reconnecting", err)
	}
}

func errCode(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

func TestSameDeviceConnectingAgainReplacesTheOldSocket(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550171", "a")
	bob := n.Login(t, "+14155550172", "b")
	again := n.Client(t, client.Options{})
	again.SetSession(bob.Session())
	if err := again.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, bob)
	if !errors.Is(bob.Err(), client.ErrReplaced) {
		t.Fatalf("old socket stopped with %v, want ErrReplaced", bob.Err())
	}
	sent, err := alice.Send(ctx, bob.Session().UserID, text("to the new socket"))
	if err != nil {
		t.Fatal(err)
	}
	if m := servertest.Next(t, again, wire.TypeMessage, wait); m.MsgID != sent.MsgID {
		t.Fatalf("got %+v", m)
	}
}
