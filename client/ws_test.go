package client

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/tern-im/tern/wire"
	"go.uber.org/goleak"
)

func TestMain(m *testing.M) {
	goleak.VerifyTestMain(m)
}

func TestAutoAckIsCumulativeAndCoalesced(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{EventBuffer: 1000})
	fc := connect(t, fs, c)

	// Hold the socket's writer so that acks pile up the way they do under
	// load, when the previous ack is still being written.
	c.writeMu.Lock()
	for i := int64(1); i <= 200; i++ {
		fc.mustSend(t, message(i, fmt.Sprint("m", i)))
	}
	for i := int64(1); i <= 200; i++ {
		if f := nextEvent(t, c); f.Cursor != i {
			t.Fatalf("event %d has cursor %d", i, f.Cursor)
		}
	}
	eventually(t, func() bool { return c.ack.want() == 200 }, "all 200 handed out")
	c.writeMu.Unlock()

	fc.waitAck(t, 200)
	acks := fc.ackList()
	if len(acks) > 2 {
		t.Errorf("200 events under load took %d acks %v, want them coalesced into at most 2", len(acks), acks)
	}
	for i := 1; i < len(acks); i++ {
		if acks[i] <= acks[i-1] {
			t.Errorf("acks not increasing: %v", acks)
		}
	}

	// Idle: one event, one ack, right away.
	fc.mustSend(t, message(201, "m201"))
	nextEvent(t, c)
	fc.waitAck(t, 201)

	// Receipts and group events are inbox events too.
	fc.mustSend(t, wire.Receipt{Type: wire.TypeReceipt, Cursor: 202, ChatID: "chat1", MsgIDs: []string{"x"}, Status: wire.StatusRead, By: "u2"})
	if f := nextEvent(t, c); f.Type != wire.TypeReceipt || f.Status != wire.StatusRead {
		t.Fatalf("got %+v", f)
	}
	fc.waitAck(t, 202)
	fc.mustSend(t, map[string]any{"type": wire.TypeGroup, "cursor": 203, "chat_id": "g1", "change": "renamed"})
	if f := nextEvent(t, c); f.Type != wire.TypeGroup || f.Change != "renamed" {
		t.Fatalf("got %+v", f)
	}
	fc.waitAck(t, 203)

	// Frames without a cursor are handed out and not acked.
	fc.mustSend(t, wire.Typing{Type: wire.TypeTyping, ChatID: "chat1", From: "u2", State: wire.TypingStarted})
	if f := nextEvent(t, c); f.Type != wire.TypeTyping {
		t.Fatalf("got %+v", f)
	}
	eventually(t, func() bool { return c.Stats().Acks == int64(len(fc.ackList())) },
		"stats to count the %d acks the server saw", len(fc.ackList()))
}

func TestManualAck(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{ManualAck: true})
	fc := connect(t, fs, c)

	for i := int64(1); i <= 3; i++ {
		fc.mustSend(t, message(i, fmt.Sprint("m", i)))
		nextEvent(t, c)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	time.Sleep(20 * time.Millisecond)
	if acks := fc.ackList(); len(acks) != 0 {
		t.Fatalf("manual mode acked by itself: %v", acks)
	}
	if err := c.Ack(2); err != nil {
		t.Fatal(err)
	}
	fc.waitAck(t, 2)

	// A duplicate (cursor 4) arrives while event 3 is not acked yet: acking
	// 4 would ack 3 too, so it waits for the application's ack of 3.
	fc.mustSend(t, message(4, "m1"))
	noEvent(t, c, 30*time.Millisecond)
	if got := fc.lastAck(); got != 2 {
		t.Fatalf("duplicate acked past an unacked event: last ack %d", got)
	}
	if err := c.Ack(3); err != nil {
		t.Fatal(err)
	}
	fc.waitAck(t, 4)

	// Everything handed out is acked now, so a new duplicate goes at once.
	fc.mustSend(t, message(5, "m2"))
	fc.waitAck(t, 5)
}

func TestDedupeOfReplayedMessages(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)

	fc.mustSend(t, message(1, "m1"))
	fc.mustSend(t, message(2, "m2"))
	nextEvent(t, c)
	nextEvent(t, c)
	fc.closeWith(wire.CloseGoingAway, "draining")

	// The acks were lost with the node: the next one replays everything.
	fc2 := fs.accept(t)
	fc2.mustSend(t, message(1, "m1"))
	fc2.mustSend(t, message(2, "m2"))
	fc2.mustSend(t, message(3, "m3"))
	if f := nextEvent(t, c); f.MsgID != "m3" {
		t.Fatalf("after replay got %q, want m3 (m1, m2 are duplicates)", f.MsgID)
	}
	fc2.waitAck(t, 3)
	if d := c.Stats().Duplicates; d != 2 {
		t.Errorf("duplicates = %d, want 2", d)
	}

	// The same msg_id under a new cursor on the same socket is dropped too,
	// and still acked.
	fc2.mustSend(t, message(4, "m3"))
	fc2.waitAck(t, 4)
	noEvent(t, c, 20*time.Millisecond)
}

func TestDedupeWindowIsBounded(t *testing.T) {
	d := newDedupe(3)
	for _, id := range []string{"a", "b", "c", "d"} {
		if d.seen(id) {
			t.Fatalf("%s seen before", id)
		}
	}
	if d.seen("a") {
		t.Error("a should have left the window of 3")
	}
	if !d.seen("d") || !d.seen("c") {
		t.Error("recent ids forgotten")
	}
	if len(d.set) != 3 || len(d.ring) != 3 {
		t.Errorf("window holds %d/%d ids, want 3", len(d.set), len(d.ring))
	}
}

func TestDedupeOff(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{DedupeWindow: -1})
	fc := connect(t, fs, c)
	fc.mustSend(t, message(1, "m1"))
	fc.mustSend(t, message(2, "m1"))
	nextEvent(t, c)
	if f := nextEvent(t, c); f.Cursor != 2 {
		t.Fatalf("got %+v", f)
	}
}

func TestSendResolvedBySent(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)

	ch := make(chan sendResult, 1)
	go func() {
		s, err := c.Send(context.Background(), "u2", wire.Body{Text: "hello"})
		ch <- sendResult{s, err}
	}()
	f := fc.next(t)
	if f.Type != wire.TypeSend || f.To != "u2" || f.Body == nil || f.Body.Text != "hello" || f.ID == "" {
		t.Fatalf("server got %+v", f)
	}
	// An answer for some other id resolves nothing.
	fc.mustSend(t, wire.Sent{Type: wire.TypeSent, ID: "other", MsgID: "x"})
	fc.mustSend(t, sentFor(f, 7))
	r := result(t, ch)
	if r.err != nil || r.sent.ID != f.ID || r.sent.Seq != 7 || r.sent.MsgID != "m-"+f.ID || r.sent.ChatID != "chat1" {
		t.Fatalf("send returned %+v, %v", r.sent, r.err)
	}
	noEvent(t, c, 20*time.Millisecond) // sent frames are not events

	// Ids are unique per send.
	ch2 := sendAsync(c, c.NewID(), "again")
	f2 := fc.next(t)
	if f2.ID == f.ID {
		t.Fatal("two sends with one id")
	}
	fc.mustSend(t, sentFor(f2, 8))
	result(t, ch2)
}

func TestSendResolvedByErrorFrame(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)

	ch := sendAsync(c, "s1", "spam")
	f := fc.next(t)
	fc.mustSend(t, wire.ErrorFrame{Type: wire.TypeError, ID: f.ID, Code: wire.CodeRateLimited, Message: "slow down", RetryAfter: 3})
	r := result(t, ch)
	var werr *wire.Error
	if !errors.As(r.err, &werr) || werr.Code != wire.CodeRateLimited || werr.RetryAfter != 3 {
		t.Fatalf("send error = %v, want rate_limited with retry_after 3", r.err)
	}

	// Errors that answer no request go to Events.
	fc.mustSend(t, wire.ErrorFrame{Type: wire.TypeError, Code: wire.CodeTooLarge, Message: "frame too large"})
	fc.mustSend(t, wire.ErrorFrame{Type: wire.TypeError, ID: "nobody", Code: wire.CodeBadRequest, Message: "?"})
	if e := nextEvent(t, c); e.Type != wire.TypeError || e.Code != wire.CodeTooLarge {
		t.Fatalf("got %+v", e)
	}
	if e := nextEvent(t, c); e.Type != wire.TypeError || e.ID != "nobody" {
		t.Fatalf("got %+v", e)
	}
}

func TestSendWaitsForContext(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Millisecond)
	defer cancel()
	_, err := c.SendWithID(ctx, "s1", "u2", wire.Body{Text: "x"}, "")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("err = %v", err)
	}
	fc.next(t)
	// The id is free again: a retry with the same id is allowed.
	ch := sendAsync(c, "s1", "x")
	f := fc.next(t)
	fc.mustSend(t, sentFor(f, 1))
	if r := result(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestResendAfterDropKeepsIDsAndOrder(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)

	a := sendAsync(c, "A", "first")
	if f := fc.next(t); f.ID != "A" {
		t.Fatalf("got %+v", f)
	}
	b := sendAsync(c, "B", "second")
	if f := fc.next(t); f.ID != "B" {
		t.Fatalf("got %+v", f)
	}
	fc.drop()

	fc2 := fs.accept(t)
	fa, fb := fc2.next(t), fc2.next(t)
	if fa.ID != "A" || fb.ID != "B" || fa.Body.Text != "first" {
		t.Fatalf("resent %q then %q, want A then B", fa.ID, fb.ID)
	}
	fc2.mustSend(t, sentFor(fb, 2))
	fc2.mustSend(t, sentFor(fa, 1))
	if r := result(t, a); r.err != nil || r.sent.Seq != 1 {
		t.Fatalf("A: %+v %v", r.sent, r.err)
	}
	if r := result(t, b); r.err != nil || r.sent.Seq != 2 {
		t.Fatalf("B: %+v %v", r.sent, r.err)
	}
	eventually(t, func() bool { st := c.Stats(); return st.Resends == 2 && st.Reconnects == 1 }, "stats %+v", c.Stats())
}

func TestSendWhileDisconnectedGoesOutOnReconnect(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	c.opts.Backoff.Min, c.opts.Backoff.Max = 100*time.Millisecond, 100*time.Millisecond
	fc := connect(t, fs, c)
	fc.drop()
	eventually(t, func() bool { return !c.Connected() }, "disconnect")
	ch := sendAsync(c, "late", "x")
	fc2 := fs.accept(t)
	f := fc2.next(t)
	if f.ID != "late" {
		t.Fatalf("got %+v", f)
	}
	fc2.mustSend(t, sentFor(f, 1))
	if r := result(t, ch); r.err != nil {
		t.Fatal(r.err)
	}
}

func TestReconnectWithBackoffAfterGoingAway(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	c.opts.Backoff.Min, c.opts.Backoff.Max = 200*time.Millisecond, 400*time.Millisecond
	fc := connect(t, fs, c)

	start := time.Now()
	fc.closeWith(wire.CloseGoingAway, "draining")
	fc2 := fs.accept(t)
	if d := time.Since(start); d < 100*time.Millisecond {
		t.Errorf("reconnected after %v, want at least half of Backoff.Min", d)
	}
	fc2.mustSend(t, message(1, "m1"))
	if f := nextEvent(t, c); f.MsgID != "m1" {
		t.Fatalf("got %+v", f)
	}
	if st := c.Stats(); st.Reconnects != 1 || st.Connects != 2 {
		t.Errorf("stats %+v", st)
	}
	if c.Err() != nil {
		t.Errorf("Err = %v while running", c.Err())
	}
}

func TestBackoffGrowsWithJitter(t *testing.T) {
	c := New("http://x", Options{})
	c.opts.Backoff.Min, c.opts.Backoff.Max = 100*time.Millisecond, time.Second
	attempt := 0
	for i, want := range []time.Duration{100, 200, 400, 800, 1000, 1000} {
		want *= time.Millisecond
		d := c.backoff(&attempt)
		if d < want/2 || d > want {
			t.Errorf("attempt %d: %v, want in [%v, %v]", i, d, want/2, want)
		}
	}
	attempt = 1000
	if d := c.backoff(&attempt); d > time.Second {
		t.Errorf("overflowed: %v", d)
	}
}

func TestStopOnReplaced(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)
	pending := sendAsync(c, "s1", "x")
	fc.next(t)

	fc.closeWith(wire.CloseReplaced, "device connected again")
	waitEventsClosed(t, c)
	if !errors.Is(c.Err(), ErrReplaced) {
		t.Fatalf("Err = %v, want ErrReplaced", c.Err())
	}
	if r := result(t, pending); !errors.Is(r.err, ErrReplaced) {
		t.Errorf("pending send: %v", r.err)
	}
	time.Sleep(50 * time.Millisecond) // several backoff periods
	if n := fs.dials.Load(); n != 1 {
		t.Errorf("%d dials, want no reconnect after 4409", n)
	}
	if _, err := c.Send(context.Background(), "u2", wire.Body{Text: "x"}); !errors.Is(err, ErrReplaced) {
		t.Errorf("send after stop: %v", err)
	}
	if err := c.Ping(context.Background()); !errors.Is(err, ErrReplaced) {
		t.Errorf("ping after stop: %v", err)
	}
	if err := c.Connect(context.Background()); !errors.Is(err, ErrClosed) {
		t.Errorf("connect after stop: %v", err)
	}
	_ = c.Close()
	if !errors.Is(c.Err(), ErrReplaced) {
		t.Errorf("Close hid why the loop stopped: %v", c.Err())
	}
}

func TestRefreshOnUnauthorized(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	// The stored access token has expired: the first dial gets 401.
	fs.revoke("tok")
	fs.onRefresh("ref", wire.Session{AccessToken: "tok2", RefreshToken: "ref2", ExpiresIn: 60})
	fc := connect(t, fs, c)
	if fc.token != "tok2" {
		t.Fatalf("connected with %q", fc.token)
	}
	if s := c.Session(); s.AccessToken != "tok2" || s.RefreshToken != "ref2" || s.UserID != "u1" || s.DeviceID != "d1" {
		t.Fatalf("session after refresh: %+v", s)
	}

	// The server ends the token's validity with 4401: refresh, reconnect.
	fs.revoke("tok2")
	fs.onRefresh("ref2", wire.Session{AccessToken: "tok3", RefreshToken: "ref3"})
	fc.closeWith(wire.CloseUnauthorized, "token expired")
	fc2 := fs.accept(t)
	if fc2.token != "tok3" {
		t.Fatalf("reconnected with %q", fc2.token)
	}

	// A revoked device: 4401 and the refresh is refused. The client stops.
	fs.revoke("tok3")
	fc2.closeWith(wire.CloseUnauthorized, "device signed out")
	waitEventsClosed(t, c)
	err := c.Err()
	var werr *wire.Error
	if !errors.Is(err, ErrSignedOut) || !errors.As(err, &werr) || werr.Code != wire.CodeUnauthorized {
		t.Fatalf("Err = %v, want ErrSignedOut with an unauthorized *wire.Error", err)
	}
	if st := c.Stats(); st.Refreshes != 2 {
		t.Errorf("refreshes = %d", st.Refreshes)
	}
}

func TestRefreshOnUnauthorizedRedial(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)
	// The node dies; by the time the client is back its token has expired.
	fs.revoke("tok")
	fs.onRefresh("ref", wire.Session{AccessToken: "tok2", RefreshToken: "ref2"})
	fc.drop()
	if fc2 := fs.accept(t); fc2.token != "tok2" {
		t.Fatalf("reconnected with %q", fc2.token)
	}
}

func TestStopWhenDialRefusedAfterRefresh(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)
	// A refresh that answers a token the WebSocket will not take.
	fs.revoke("tok")
	fs.refreshUseless.Store(true)
	fs.onRefresh("ref", wire.Session{AccessToken: "tok2", RefreshToken: "ref2"})
	fc.drop()
	waitEventsClosed(t, c)
	var herr *HTTPError
	if err := c.Err(); !errors.Is(err, ErrSignedOut) || !errors.As(err, &herr) || herr.Status != 401 {
		t.Fatalf("Err = %v", err)
	}
	// 1 good dial, 1 refused, 1 refused after the refresh.
	if n := fs.dials.Load(); n != 3 {
		t.Errorf("%d dials", n)
	}
}

func TestConnectUnauthorized(t *testing.T) {
	fs := newFakeServer(t)
	c := New(fs.srv.URL, Options{HTTPClient: fs.srv.Client()})
	defer c.Close()
	c.SetSession(wire.Session{AccessToken: "bogus"})
	err := c.Connect(context.Background())
	var werr *wire.Error
	var herr *HTTPError
	if !errors.As(err, &werr) || werr.Code != wire.CodeUnauthorized || !errors.As(err, &herr) || herr.Status != 401 {
		t.Fatalf("Connect = %v, want a 401 unauthorized", err)
	}
	if _, err := c.Send(context.Background(), "u2", wire.Body{Text: "x"}); !errors.Is(err, ErrNotConnected) {
		t.Errorf("send before connect: %v", err)
	}
	// Connect may be tried again once the token is good.
	fs.allow("bogus")
	if err := c.Connect(context.Background()); err != nil {
		t.Fatal(err)
	}
	fs.accept(t)

	// A refused refresh: Connect reports the 401 and the refresh failure.
	c2 := New(fs.srv.URL, Options{HTTPClient: fs.srv.Client()})
	defer c2.Close()
	c2.SetSession(wire.Session{AccessToken: "old", RefreshToken: "unknown"})
	err = c2.Connect(context.Background())
	if !errors.As(err, &werr) || werr.Code != wire.CodeUnauthorized || !strings.Contains(err.Error(), "refresh") {
		t.Fatalf("Connect = %v", err)
	}
}

func TestPing(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)
	if err := c.Typing(context.Background(), "chat1", wire.TypingStarted); err != nil {
		t.Fatal(err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	// Frames before the ping were handled before the pong.
	select {
	case f := <-fc.in:
		if f.Type != wire.TypeTyping || f.State != wire.TypingStarted {
			t.Fatalf("got %+v", f)
		}
	default:
		t.Fatal("typing frame not seen before the pong")
	}

	// A ping whose socket drops fails, rather than vouching for frames the
	// server may never have handled.
	fs.autoPong.Store(false)
	errc := make(chan error, 1)
	go func() { errc <- c.Ping(context.Background()) }()
	eventually(t, func() bool { return fc.pings.Load() == 2 }, "second ping")
	fc.drop()
	select {
	case err := <-errc:
		if !errors.Is(err, ErrConnectionLost) {
			t.Fatalf("Ping = %v, want ErrConnectionLost", err)
		}
	case <-time.After(waitFor):
		t.Fatal("Ping did not return")
	}
	fs.accept(t)
}

func TestKeepAliveAndReadDeadline(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{KeepAlive: 30 * time.Millisecond})
	fc := connect(t, fs, c)
	// Counted server-wide: on a loaded machine a deadline may trip and the
	// pings go on on a new connection, which is fine.
	eventually(t, func() bool { return fs.pings.Load() >= 3 }, "keepalive pings")
	if len(fc.in) != 0 {
		t.Fatalf("keepalive wrote other frames")
	}
	// A server that stops answering is given up on after 3×KeepAlive.
	fs.autoPong.Store(false)
	dials := fs.dials.Load()
	eventually(t, func() bool { return fs.dials.Load() > dials }, "a reconnect")
	eventually(t, func() bool { return c.Stats().Reconnects >= 1 }, "reconnect counted")
}

func TestKeepAliveOff(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{KeepAlive: -1})
	fc := connect(t, fs, c)
	time.Sleep(50 * time.Millisecond)
	if n := fc.pings.Load(); n != 0 {
		t.Fatalf("%d pings with keepalive off", n)
	}
}

func TestTooLargeFailsTheLargestSend(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)
	small := sendAsync(c, "small", "x")
	fc.next(t)
	big := sendAsync(c, "big", strings.Repeat("x", 100000))
	fc.next(t)
	fc.closeWith(websocket.CloseMessageTooBig, "frame too large")
	r := result(t, big)
	var werr *wire.Error
	if !errors.As(r.err, &werr) || werr.Code != wire.CodeTooLarge {
		t.Fatalf("big send: %v", r.err)
	}
	fc2 := fs.accept(t)
	if f := fc2.next(t); f.ID != "small" {
		t.Fatalf("resent %q, want only small", f.ID)
	}
	fc2.mustSend(t, wire.Sent{Type: wire.TypeSent, ID: "small", MsgID: "m"})
	if r := result(t, small); r.err != nil {
		t.Fatal(r.err)
	}
	if err := c.Ping(context.Background()); err != nil {
		t.Fatal(err)
	}
	if len(fc2.in) != 0 {
		t.Fatal("the big send was written again")
	}
}

func TestCloseFlushesAcksAndClosesNormally(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)
	pending := sendAsync(c, "s1", "x")
	fc.next(t)
	fc.mustSend(t, message(1, "m1"))
	nextEvent(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if r := result(t, pending); !errors.Is(r.err, ErrClosed) {
		t.Errorf("pending send after Close: %v", r.err)
	}
	<-fc.done
	fc.mu.Lock()
	code := fc.closeCode
	fc.mu.Unlock()
	if code != websocket.CloseNormalClosure {
		t.Errorf("server saw close code %d", code)
	}
	if fc.lastAck() != 1 {
		t.Errorf("acks %v, want 1 flushed before close", fc.ackList())
	}
	waitEventsClosed(t, c)
	if c.Err() != nil {
		t.Errorf("Err after Close = %v", c.Err())
	}
	if err := c.Close(); err != nil {
		t.Errorf("second Close: %v", err)
	}
	if err := c.WriteRaw(context.Background(), []byte("{}")); !errors.Is(err, ErrClosed) {
		t.Errorf("WriteRaw after Close: %v", err)
	}
}

func TestCloseWhileReconnecting(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	c.opts.Backoff.Min, c.opts.Backoff.Max = time.Hour, time.Hour
	fc := connect(t, fs, c)
	fc.drop()
	eventually(t, func() bool { return !c.Connected() }, "disconnect")
	done := make(chan struct{})
	go func() {
		_ = c.Close()
		close(done)
	}()
	select {
	case <-done:
	case <-time.After(waitFor):
		t.Fatal("Close hung during backoff")
	}
	waitEventsClosed(t, c)
}

func TestCloseWithFullEvents(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{EventBuffer: -1})
	fc := connect(t, fs, c)
	fc.mustSend(t, message(1, "m1")) // nobody reads: the reader blocks
	time.Sleep(20 * time.Millisecond)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	waitEventsClosed(t, c)
}

func TestCloseBeforeConnect(t *testing.T) {
	c := New("http://127.0.0.1:1", Options{})
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	if _, ok := <-c.Events(); ok {
		t.Fatal("events open")
	}
	if err := c.Connect(context.Background()); !errors.Is(err, ErrClosed) {
		t.Fatalf("Connect after Close: %v", err)
	}
	if err := c.Ack(1); !errors.Is(err, ErrClosed) {
		t.Fatalf("Ack after Close: %v", err)
	}
}

func TestConcurrentSendsAndEvents(t *testing.T) {
	fs := newFakeServer(t)
	c := fs.client(t, Options{})
	fc := connect(t, fs, c)

	// The server answers every send and pushes an event for it.
	go func() {
		var cursor int64
		for f := range fc.in {
			if f.Type != wire.TypeSend {
				continue
			}
			cursor++
			_ = fc.send(sentFor(f, cursor))
			_ = fc.send(message(cursor, "in-"+f.ID))
		}
	}()
	const n = 200
	var wg sync.WaitGroup
	errs := make(chan error, n)
	for i := range n {
		wg.Add(1)
		go func() {
			defer wg.Done()
			ctx, cancel := context.WithTimeout(context.Background(), waitFor)
			defer cancel()
			if _, err := c.Send(ctx, "u2", wire.Body{Text: fmt.Sprint(i)}); err != nil {
				errs <- err
			}
		}()
	}
	for range n {
		nextEvent(t, c)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	fc.waitAck(t, n)
}

// TestNoGoroutinesAfterClose checks the lifecycle leaves nothing behind,
// through a reconnect and a stop.
func TestNoGoroutinesAfterClose(t *testing.T) {
	fs := newFakeServer(t)
	opts := Options{KeepAlive: 100 * time.Millisecond}
	c := fs.client(t, opts)
	fc := connect(t, fs, c)
	ch := sendAsync(c, "s", "x")
	fc.next(t)
	fc.closeWith(wire.CloseGoingAway, "")
	fc2 := fs.accept(t)
	f := fc2.next(t)
	fc2.mustSend(t, sentFor(f, 1))
	result(t, ch)
	fc2.mustSend(t, message(1, "m1"))
	nextEvent(t, c)
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}

	c2 := fs.client(t, opts)
	fc3 := connect(t, fs, c2)
	fc3.closeWith(wire.CloseReplaced, "")
	waitEventsClosed(t, c2)

	fs.close()
	goleak.VerifyNone(t)
}
