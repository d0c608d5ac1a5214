package server_test

import (
	"bytes"
	"errors"
	"fmt"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// dialWS opens a raw WebSocket to the node with the given headers.
func dialWS(t *testing.T, n *servertest.Node, hdr http.Header) (*websocket.Conn, *http.Response, error) {
	t.Helper()
	c, resp, err := websocket.DefaultDialer.Dial("ws"+strings.TrimPrefix(n.URL, "http")+"/v1/ws", hdr)
	if c != nil {
		t.Cleanup(func() { _ = c.Close() })
	}
	return c, resp, err
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// closeCode reads from c until it fails and returns the close code.
func closeCode(t *testing.T, c *websocket.Conn) int {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for {
		if _, _, err := c.ReadMessage(); err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				return ce.Code
			}
			t.Fatalf("socket ended without a close frame: %v", err)
		}
	}
}

// TestFramesAreCheckedBeforeDecoding: encoding/json would take a key in
// any case and turn invalid UTF-8 and lone surrogates into U+FFFD. The
// server refuses all three instead of storing something else than what
// was sent: an error frame for the key and the surrogate, close 1007 for
// bytes that are not UTF-8 (RFC 6455).
func TestFramesAreCheckedBeforeDecoding(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550501", "a")
	bob := n.Login(t, "+14155550502", "b")
	to := bob.Session().UserID
	for _, tc := range []struct{ name, frame, id, msg string }{
		{"key in another case", `{"TYPE":"send","id":"k1","to":"` + to + `","body":{"text":"hi"}}`, "k1", "case-sensitive"},
		{"nested key in another case", `{"type":"send","id":"k2","to":"` + to + `","body":{"Text":"hi"}}`, "k2", "case-sensitive"},
		{"lone high surrogate", `{"type":"send","id":"k3","to":"` + to + `","body":{"text":"a\ud800b"}}`, "k3", "surrogate"},
		{"lone low surrogate", `{"type":"send","id":"k4","to":"` + to + `","body":{"text":"\udc00"}}`, "k4", "surrogate"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if err := alice.WriteRaw(ctx, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			f := servertest.Next(t, alice, wire.TypeError, wait)
			if f.Code != wire.CodeBadRequest || f.ID != tc.id || !strings.Contains(f.Message, tc.msg) {
				t.Fatalf("got %s id %q: %s; want bad_request for %q mentioning %q", f.Code, f.ID, f.Message, tc.id, tc.msg)
			}
		})
	}
	// A pair is a character, and unknown keys are left alone.
	sent, err := alice.Send(ctx, to, wire.Body{Text: "ok \U0001F600"})
	if err != nil {
		t.Fatal(err)
	}
	if m := servertest.Next(t, bob, wire.TypeMessage, wait); m.MsgID != sent.MsgID || m.Body.Text != "ok \U0001F600" || m.Seq != 1 {
		t.Fatalf("bob got %+v, want the only stored message", m)
	}

	c, _, err := dialWS(t, n, bearer(alice.Session().AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if err := c.WriteMessage(websocket.TextMessage, []byte("{\"type\":\"ping\",\"id\":\"\xff\xfe\"}")); err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, c); code != websocket.CloseInvalidFramePayloadData {
		t.Fatalf("invalid UTF-8 closed the socket with %d, want 1007", code)
	}
}

func TestRESTBodiesAndMethods(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	alice := n.Login(t, "+14155550511", "a")
	for _, tc := range []struct {
		method, path, body string
		status             int
		code, msg, allow   string
	}{
		{"PATCH", "/v1/me", `{"NAME":"x"}`, 400, wire.CodeBadRequest, "case-sensitive", ""},
		{"PATCH", "/v1/me", "{\"name\":\"\xff\"}", 400, wire.CodeBadRequest, "UTF-8", ""},
		{"PATCH", "/v1/me", `{"name":"\udfff"}`, 400, wire.CodeBadRequest, "surrogate", ""},
		{"PATCH", "/v1/me", `{"name":5}`, 400, wire.CodeBadRequest, `"name" must be a string`, ""},
		{"POST", "/v1/contacts/lookup", `{"phones":"+14155550100"}`, 400, wire.CodeBadRequest, `"phones" must be an array`, ""},
		{"DELETE", "/v1/me", ``, 405, wire.CodeMethodNotAllowed, "DELETE", "PATCH"},
		{"GET", "/v1/auth/code", ``, 405, wire.CodeMethodNotAllowed, "GET", "POST"},
		{"GET", "/v1/nothing-here", ``, 404, wire.CodeNotFound, "no such endpoint", ""},
		{"GET", "/nothing-here", ``, 404, wire.CodeNotFound, "no such endpoint", ""},
	} {
		req, _ := http.NewRequest(tc.method, n.URL+tc.path, bytes.NewBufferString(tc.body))
		req.Header.Set("Authorization", "Bearer "+alice.Session().AccessToken)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body wire.ErrorBody
		_ = decodeJSON(resp, &body)
		if resp.StatusCode != tc.status || body.Error == nil || body.Error.Code != tc.code || !strings.Contains(body.Error.Message, tc.msg) {
			t.Errorf("%s %s %s: %d %+v; want %d %s mentioning %q", tc.method, tc.path, tc.body, resp.StatusCode, body.Error, tc.status, tc.code, tc.msg)
		}
		if allow := resp.Header.Get("Allow"); !strings.Contains(allow, tc.allow) {
			t.Errorf("%s %s: Allow %q, want it to list %s", tc.method, tc.path, allow, tc.allow)
		}
	}
	me, err := alice.Me(ctxT(t))
	if err != nil || me.Name != "" {
		t.Fatalf("profile after refused patches: %+v, %v; want it untouched", me, err)
	}
}

func TestUpgradeChecks(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{AllowedOrigins: []string{"https://chat.example.com"}}})
	alice := n.Login(t, "+14155550521", "a")
	token := alice.Session().AccessToken

	_, resp, err := dialWS(t, n, nil)
	if err == nil || resp == nil || resp.StatusCode != 401 {
		t.Fatalf("upgrade without a token: %v %v, want 401", resp, err)
	}
	var body wire.ErrorBody
	_ = decodeJSON(resp, &body)
	if body.Error == nil || !strings.Contains(body.Error.Message, "missing access token") {
		t.Fatalf("upgrade without a token says %+v; want it to say the token is missing", body.Error)
	}

	for _, tc := range []struct {
		origin string
		ok     bool
	}{
		{"", true}, // not a browser
		{"https://chat.example.com", true},
		{"http://" + strings.TrimPrefix(n.URL, "http://"), true}, // same origin
		{"https://evil.example.net", false},
		{"null", false},
	} {
		hdr := bearer(token)
		if tc.origin != "" {
			hdr.Set("Origin", tc.origin)
		}
		c, resp, err := dialWS(t, n, hdr)
		if tc.ok && err != nil {
			t.Errorf("origin %q refused: %v", tc.origin, err)
		}
		if !tc.ok && (err == nil || resp == nil || resp.StatusCode != 403) {
			t.Errorf("origin %q: %v %v, want 403", tc.origin, resp, err)
		}
		if c != nil {
			_ = c.Close()
		}
	}
}

// TestSocketClosesWhenTokenExpires: a socket does not outlive the access
// token that opened it; the client is told 4401 and reconnects with a
// refreshed one.
func TestSocketClosesWhenTokenExpires(t *testing.T) {
	ac := auth.DefaultConfig()
	ac.AccessTTL = 2 * time.Second
	n := servertest.Start(t, servertest.Options{Auth: ac})
	alice := n.LoginOnly(t, "+14155550531", "a")
	c, _, err := dialWS(t, n, bearer(alice.Session().AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if code := closeCode(t, c); code != wire.CloseUnauthorized {
		t.Fatalf("socket closed with %d when its token expired, want %d", code, wire.CloseUnauthorized)
	}
}

// TestTextOthersSeeIsText: profile names and message texts with control
// characters, overrides or nothing visible are refused; ordinary names in
// any script are kept.
func TestTextOthersSeeIsText(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550541", "a")
	bob := n.Login(t, "+14155550542", "b")
	for _, bad := range []string{"a\x00b", "\x1b[2Jboss", "two\nlines", "admin\u202etxt.exe", "\u200b\u200d", "\u3164"} {
		if _, err := alice.UpdateMe(ctx, wire.MePatch{Name: &bad}); errCode(err) != wire.CodeBadRequest {
			t.Errorf("name %q: %v, want bad_request", bad, err)
		}
		if _, err := alice.UpdateMe(ctx, wire.MePatch{About: &bad}); errCode(err) != wire.CodeBadRequest {
			t.Errorf("about %q: %v, want bad_request", bad, err)
		}
	}
	for _, bad := range []string{"a\x00b", "\x1b[2J", "\u200b", " \n "} {
		if _, err := alice.Send(ctx, bob.Session().UserID, wire.Body{Text: bad}); errCode(err) != wire.CodeBadRequest {
			t.Errorf("message %q: %v, want bad_request", bad, err)
		}
	}
	for _, good := range []string{"Zoë", "李小龍", "مريم\u200f", "🌍 traveller"} {
		me, err := alice.UpdateMe(ctx, wire.MePatch{Name: &good})
		if err != nil || me.Name != good {
			t.Errorf("name %q: %+v %v", good, me, err)
		}
	}
	s, err := alice.Send(ctx, bob.Session().UserID, wire.Body{Text: "line one\nline two\tand a tab"})
	if err != nil || s.Seq != 1 {
		t.Fatalf("multi-line message: %+v %v (seq 1: nothing refused was stored)", s, err)
	}
}

// TestSendBudgetSurvivesReconnects: the send budget belongs to the device.
// Before, each socket had a fresh one, and five reconnects sent five
// bursts.
func TestSendBudgetSurvivesReconnects(t *testing.T) {
	const burst = 5
	n := servertest.Start(t, servertest.Options{Server: server.Config{SendsPerSecond: 0.2, SendBurst: burst}})
	ctx := ctxT(t)
	bob := n.Login(t, "+14155550552", "b")
	alice := n.Login(t, "+14155550551", "a")
	sess := alice.Session()
	sent := 0
	for round := range 4 {
		for range burst {
			if _, err := alice.Send(ctx, bob.Session().UserID, text("x")); err == nil {
				sent++
			} else if errCode(err) != wire.CodeRateLimited {
				t.Fatal(err)
			}
		}
		// Reconnect: the same device on a new socket.
		_ = alice.Close()
		alice = n.Client(t, client.Options{})
		alice.SetSession(sess)
		if err := alice.Connect(ctx); err != nil {
			t.Fatalf("reconnect %d: %v", round, err)
		}
	}
	// One burst, plus what 0.2/s earns during the test (a second or two on
	// a quiet machine; the bound allows for a slow one).
	if sent > burst+4 {
		t.Fatalf("%d sends went through over 4 sockets; the device's budget is %d plus 0.2/s", sent, burst)
	}
}

// TestFrameBudgets: typing, read, ping and bad frames have budgets too,
// and typing goes only into chats that exist.
func TestFrameBudgets(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{
		TypingRate: server.Rate{PerSecond: 0.1, Burst: 3}, OtherFrameRate: server.Rate{PerSecond: 0.1, Burst: 5}}})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550561", "a")
	bob := n.Login(t, "+14155550562", "b")
	stranger := n.Login(t, "+14155550563", "s")
	chat := directChat(t, alice, bob)

	// A direct chat id names its members, but nobody typed to a stranger
	// before its first message.
	noChat := store.DirectChatID(stranger.Session().UserID, bob.Session().UserID)
	if err := stranger.WriteRaw(ctx, []byte(`{"type":"typing","id":"t0","chat_id":"`+noChat+`","state":"typing"}`)); err != nil {
		t.Fatal(err)
	}
	if f := servertest.Next(t, stranger, wire.TypeError, wait); f.Code != wire.CodeNotFound || f.ID != "t0" {
		t.Fatalf("typing into a chat that does not exist: %+v, want not_found", f)
	}

	limited := 0
	for i := range 50 {
		if err := alice.WriteRaw(ctx, []byte(fmt.Sprintf(`{"type":"typing","id":"t%d","chat_id":"%s","state":"typing"}`, i+1, chat))); err != nil {
			t.Fatal(err)
		}
	}
	for range 50 - 3 - 1 { // at most burst (+ one earned) get through
		if f := servertest.Next(t, alice, wire.TypeError, wait); f.Code == wire.CodeRateLimited && f.RetryAfter > 0 {
			limited++
		}
	}
	typing := 0
	for _, f := range servertest.Drain(bob, 300*time.Millisecond) {
		if f.Type == wire.TypeTyping {
			typing++
		}
	}
	if limited < 46 || typing > 4 {
		t.Fatalf("50 typing frames: %d refused, %d reached bob; want all but the burst refused", limited, typing)
	}
	// Pings and frames that fail to decode share a budget.
	for range 10 {
		_ = alice.WriteRaw(ctx, []byte(`{"type":"ping"}`))
	}
	if f := servertest.Next(t, alice, wire.TypeError, wait); f.Code != wire.CodeRateLimited {
		t.Fatalf("ping flood: %+v, want rate_limited", f)
	}
}

// TestContactDiscoveryIsBudgeted: numbers looked up count against a daily
// budget per user and per client IP; before, 20,000 numbers went through
// in half a second.
func TestContactDiscoveryIsBudgeted(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{LookupsPerUserDay: 10, LookupsPerIPDay: 15}})
	ctx := ctxT(t)
	alice := n.LoginOnly(t, "+14155550571", "a")
	bob := n.LoginOnly(t, "+14155550572", "b")
	phones := func(from, k int) []string {
		var ps []string
		for i := range k {
			ps = append(ps, fmt.Sprintf("+1415555%04d", from+i))
		}
		return ps
	}
	if _, err := alice.Lookup(ctx, phones(600, 8)); err != nil {
		t.Fatal(err)
	}
	_, err := alice.Lookup(ctx, phones(610, 8))
	if we := asWire(err); we == nil || we.Code != wire.CodeRateLimited || we.RetryAfter <= 0 {
		t.Fatalf("alice's second lookup over her day's budget: %v, want rate_limited with retry_after", err)
	}
	// bob has a budget of his own, but shares alice's address: 7 left.
	if _, err := bob.Lookup(ctx, phones(620, 7)); err != nil {
		t.Fatal(err)
	}
	if _, err := bob.Lookup(ctx, phones(630, 1)); errCode(err) != wire.CodeRateLimited {
		t.Fatalf("lookup over the address's budget: %v, want rate_limited", err)
	}
}

// TestSettingsChangesAreBudgeted: privacy patches, address books and
// blocks share one hourly budget per user (each makes every node
// re-evaluate presence); a malformed request spends none of it.
func TestSettingsChangesAreBudgeted(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{SettingsPerUserHour: 4}})
	ctx := ctxT(t)
	alice := n.LoginOnly(t, "+14155550591", "a")
	bob := n.LoginOnly(t, "+14155550592", "b")
	everyone := store.Everyone
	if _, err := alice.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &everyone}); err != nil {
		t.Fatal(err)
	}
	bad := "sometimes"
	if _, err := alice.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &bad}); errCode(err) != wire.CodeBadRequest {
		t.Fatalf("malformed patch: %v, want bad_request", err)
	}
	if err := alice.SetContacts(ctx, []string{"+14155550592"}); err != nil {
		t.Fatal(err)
	}
	if err := alice.Block(ctx, bob.Session().UserID); err != nil {
		t.Fatal(err)
	}
	if err := alice.Unblock(ctx, bob.Session().UserID); err != nil {
		t.Fatal(err)
	}
	for name, call := range map[string]func() error{
		"patch":    func() error { _, err := alice.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &everyone}); return err },
		"contacts": func() error { return alice.SetContacts(ctx, nil) },
		"block":    func() error { return alice.Block(ctx, bob.Session().UserID) },
		"unblock":  func() error { return alice.Unblock(ctx, bob.Session().UserID) },
	} {
		if we := asWire(call()); we == nil || we.Code != wire.CodeRateLimited || we.RetryAfter <= 0 {
			t.Errorf("%s over the hour's budget: %v, want rate_limited with retry_after", name, we)
		}
	}
	// The budget is alice's: bob has his own.
	if _, err := bob.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &everyone}); err != nil {
		t.Fatalf("bob's first change: %v", err)
	}
}

// TestIdempotencyKeyIsTheMessage: a send id answers its first message only
// when it is that message again; and a reply quotes a message of its chat.
func TestIdempotencyKeyIsTheMessage(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550581", "a")
	bob := n.Login(t, "+14155550582", "b")
	carol := n.Login(t, "+14155550583", "c")
	to := bob.Session().UserID
	first, err := alice.SendWithID(ctx, "k1", to, wire.Body{Text: "hello"}, "")
	if err != nil {
		t.Fatal(err)
	}
	again, err := alice.SendWithID(ctx, "k1", to, wire.Body{Text: "hello"}, "")
	if err != nil || again.MsgID != first.MsgID || again.Seq != first.Seq {
		t.Fatalf("the same send again: %+v %v, want the first answer %+v", again, err, first)
	}
	for _, tc := range []struct {
		name, to, text, reply string
	}{
		{"other body", to, "hello!", ""},
		{"other recipient", carol.Session().UserID, "hello", ""},
		{"other reply", to, "hello", first.MsgID},
	} {
		if _, err := alice.SendWithID(ctx, "k1", tc.to, wire.Body{Text: tc.text}, tc.reply); errCode(err) != wire.CodeConflict {
			t.Errorf("%s under a used id: %v, want conflict", tc.name, err)
		}
	}

	// A media_id that names no file references nothing.
	if _, err := alice.Send(ctx, to, wire.Body{MediaID: "fnosuchmedia", Caption: "look"}); errCode(err) != wire.CodeNotFound {
		t.Errorf("send with an unknown media_id: %v, want not_found", err)
	}
	elsewhere, err := bob.Send(ctx, carol.Session().UserID, wire.Body{Text: "not for alice"})
	if err != nil {
		t.Fatal(err)
	}
	for _, reply := range []string{elsewhere.MsgID, "m0000000000000000000000000"} {
		if _, err := alice.SendWithID(ctx, "r-"+reply, to, wire.Body{Text: "re"}, reply); errCode(err) != wire.CodeNotFound {
			t.Errorf("reply to %s, not a message of the chat: %v, want not_found", reply, err)
		}
	}
	r, err := alice.SendWithID(ctx, "r-ok", to, wire.Body{Text: "re"}, first.MsgID)
	if err != nil || r.Seq != 2 {
		t.Fatalf("reply in the chat: %+v %v, want seq 2 (nothing refused was stored)", r, err)
	}
	for {
		m := servertest.Next(t, bob, wire.TypeMessage, wait)
		if m.MsgID == r.MsgID {
			if m.ReplyTo != first.MsgID {
				t.Fatalf("reply delivered with reply_to %q, want %s", m.ReplyTo, first.MsgID)
			}
			break
		}
	}
}

// TestSDKRidesThroughTokenExpiry: the Go SDK answers the 4401 of an
// expired token by refreshing and reconnecting; nothing is lost.
func TestSDKRidesThroughTokenExpiry(t *testing.T) {
	ac := auth.DefaultConfig()
	ac.AccessTTL = 2 * time.Second
	n := servertest.Start(t, servertest.Options{Auth: ac})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550591", "a")
	bob := n.Login(t, "+14155550592", "b")
	deadline := time.Now().Add(30 * time.Second)
	for bob.Stats().Reconnects == 0 {
		if time.Now().After(deadline) {
			t.Fatal("bob's socket outlived its access token")
		}
		time.Sleep(20 * time.Millisecond)
	}
	sent, err := alice.Send(ctx, bob.Session().UserID, text("after the refresh"))
	if err != nil {
		t.Fatal(err)
	}
	if m := servertest.Next(t, bob, wire.TypeMessage, wait); m.MsgID != sent.MsgID {
		t.Fatalf("bob got %+v, want %s", m, sent.MsgID)
	}
	if err := bob.Err(); err != nil {
		t.Fatalf("bob's SDK stopped: %v", err)
	}
}

// TestAcksAreNeverRefused: a refused ack is never sent again by a client
// (it acked already), so with a full window the device would wait for
// ever. Acks spend no budget, however many come.
func TestAcksAreNeverRefused(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{Window: 3,
		OtherFrameRate: server.Rate{PerSecond: 0.01, Burst: 2}}})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550601", "a")
	bob := n.LoginOnly(t, "+14155550602", "b")
	const count = 8
	for i := range count {
		if _, err := alice.Send(ctx, bob.Session().UserID, text(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	c, _, err := dialWS(t, n, bearer(bob.Session().AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	_ = c.SetReadDeadline(time.Now().Add(30 * time.Second))
	for got := 0; got < count; {
		var f wire.ServerFrame
		if err := c.ReadJSON(&f); err != nil {
			t.Fatalf("after %d of %d messages: %v", got, count, err)
		}
		switch f.Type {
		case wire.TypeError:
			t.Fatalf("error frame %s: %s", f.Code, f.Message)
		case wire.TypeMessage:
			got++
			for range 5 { // a client that acks eagerly, more than any budget
				if err := c.WriteMessage(websocket.TextMessage, []byte(fmt.Sprintf(`{"type":"ack","cursor":%d}`, f.Cursor))); err != nil {
					t.Fatal(err)
				}
			}
		}
	}
}
