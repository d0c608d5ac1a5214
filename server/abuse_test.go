package server_test

import (
	"bytes"
	"context"
	"errors"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

func TestBadFramesGetClearErrorsAndLoseNothing(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550201", "a")
	bob := n.Login(t, "+14155550202", "b")
	carol := n.Login(t, "+14155550203", "c")
	bobCarol := directChat(t, bob, carol) // a chat alice is not in
	aliceBob := directChat(t, alice, bob)

	cases := []struct {
		name, frame, code, id string
	}{
		{"not json", `this is not json`, wire.CodeBadRequest, ""},
		{"truncated json", `{"type":"send","id":"t1",`, wire.CodeBadRequest, ""},
		{"wrong field type", `{"type":"ack","cursor":"12"}`, wire.CodeBadRequest, ""},
		{"json array", `[1,2,3]`, wire.CodeBadRequest, ""},
		{"no type", `{"id":"x1"}`, wire.CodeBadRequest, "x1"},
		{"unknown type", `{"type":"teleport","id":"x2"}`, wire.CodeUnknownType, "x2"},
		{"send without to", `{"type":"send","id":"x3","body":{"text":"hi"}}`, wire.CodeBadRequest, "x3"},
		{"send without body", `{"type":"send","id":"x4","to":"` + bob.Session().UserID + `"}`, wire.CodeBadRequest, "x4"},
		{"send without id", `{"type":"send","to":"` + bob.Session().UserID + `","body":{"text":"hi"}}`, wire.CodeBadRequest, ""},
		{"empty body", `{"type":"send","id":"x5","to":"` + bob.Session().UserID + `","body":{}}`, wire.CodeBadRequest, "x5"},
		{"unknown user", `{"type":"send","id":"x6","to":"u0000000000000000000000000","body":{"text":"hi"}}`, wire.CodeNotFound, "x6"},
		{"unknown group", `{"type":"send","id":"x7","to":"g0000000000000000000000000","body":{"text":"hi"}}`, wire.CodeNotFound, "x7"},
		{"read other's chat", `{"type":"read","id":"x8","chat_id":"` + bobCarol + `","seq":1}`, wire.CodeForbidden, "x8"},
		{"typing in other's chat", `{"type":"typing","id":"x9","chat_id":"` + bobCarol + `","state":"typing"}`, wire.CodeForbidden, "x9"},
		{"bad typing state", `{"type":"typing","id":"x10","chat_id":"` + aliceBob + `","state":"dancing"}`, wire.CodeBadRequest, "x10"},
		{"ack beyond sent", `{"type":"ack","id":"x11","cursor":999999}`, wire.CodeBadRequest, "x11"},
		{"ack zero", `{"type":"ack","id":"x12","cursor":0}`, wire.CodeBadRequest, "x12"},
		{"read unknown chat", `{"type":"read","id":"x13","chat_id":"nochat","seq":1}`, wire.CodeNotFound, "x13"},
		{"oversized frame", `{"type":"send","id":"big","to":"` + bob.Session().UserID + `","body":{"text":"` +
			strings.Repeat("x", 70<<10) + `"}}`, wire.CodeTooLarge, "big"},
		{"oversized frame without id", `{"type":"ping","pad":"` + strings.Repeat("x", 70<<10) + `"}`, wire.CodeTooLarge, ""},
		{"text over limit", `{"type":"send","id":"x14","to":"` + bob.Session().UserID + `","body":{"text":"` +
			strings.Repeat("y", 17<<10) + `"}}`, wire.CodeTooLarge, "x14"},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if err := alice.WriteRaw(ctx, []byte(tc.frame)); err != nil {
				t.Fatal(err)
			}
			f := servertest.Next(t, alice, wire.TypeError, wait)
			if f.Code != tc.code || f.ID != tc.id || f.Message == "" {
				t.Fatalf("got error %q id %q (%s), want %q id %q", f.Code, f.ID, f.Message, tc.code, tc.id)
			}
			// The connection survives every bad frame.
			if err := alice.Ping(ctx); err != nil {
				t.Fatalf("connection broken after %s: %v", tc.name, err)
			}
		})
	}

	// Nothing was stored by the bad frames, and real traffic still flows.
	sent, err := alice.Send(ctx, bob.Session().UserID, text("still here"))
	if err != nil {
		t.Fatal(err)
	}
	if sent.Seq != 2 {
		t.Fatalf("seq %d after bad frames, want 2 (nothing stored)", sent.Seq)
	}
	if m := servertest.Next(t, bob, wire.TypeMessage, wait); m.MsgID != sent.MsgID {
		t.Fatalf("bob got %+v", m)
	}
}

func TestRESTRejectsOthersChatsAndBadRequests(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550211", "a")
	bob := n.Login(t, "+14155550212", "b")
	carol := n.Login(t, "+14155550213", "c")
	bobCarol := directChat(t, bob, carol)

	if _, err := alice.History(ctx, bobCarol, 0, 10); errCode(err) != wire.CodeForbidden {
		t.Fatalf("history of others' chat: %v, want forbidden", err)
	}
	if _, err := alice.History(ctx, "gnosuchgroup", 0, 10); errCode(err) != wire.CodeNotFound {
		t.Fatalf("history of unknown chat: %v, want not_found", err)
	}
	if err := alice.DeleteDevice(ctx, bob.Session().DeviceID); errCode(err) != wire.CodeNotFound {
		t.Fatalf("deleting another user's device: %v, want not_found", err)
	}
	if _, err := alice.User(ctx, "u-nobody"); errCode(err) != wire.CodeNotFound {
		t.Fatalf("unknown user: %v, want not_found", err)
	}
	long := strings.Repeat("n", 65)
	if _, err := alice.UpdateMe(ctx, wire.MePatch{Name: &long}); errCode(err) != wire.CodeTooLarge {
		t.Fatalf("long name: %v, want too_large", err)
	}

	raw := []struct {
		method, path, body string
		auth               bool
		status             int
		code               string
	}{
		{"POST", "/v1/auth/code", `{"phone":`, false, 400, wire.CodeBadRequest},
		{"POST", "/v1/auth/code", ``, false, 400, wire.CodeBadRequest},
		{"POST", "/v1/auth/code", `{"phone":"12"}`, false, 400, wire.CodeInvalidPhone},
		{"POST", "/v1/auth/code", `{"phone":"` + strings.Repeat("1", 2<<20) + `"}`, false, 413, wire.CodeTooLarge},
		{"GET", "/v1/me", ``, false, 401, wire.CodeUnauthorized},
		{"GET", "/v1/chats", ``, false, 401, wire.CodeUnauthorized},
		{"GET", "/v1/ws", ``, false, 401, wire.CodeUnauthorized},
		{"GET", "/v1/chats/" + bobCarol + "/messages?before=-1", ``, true, 403, wire.CodeForbidden},
		{"GET", "/v1/nothing-here", ``, true, 404, wire.CodeNotFound},
		{"PUT", "/v1/devices/current/push", `{"provider":"pigeon","token":"x"}`, true, 400, wire.CodeBadRequest},
	}
	for _, tc := range raw {
		req, _ := http.NewRequestWithContext(ctx, tc.method, n.URL+tc.path, bytes.NewBufferString(tc.body))
		if tc.auth {
			req.Header.Set("Authorization", "Bearer "+alice.Session().AccessToken)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		var body wire.ErrorBody
		_ = decodeJSON(resp, &body)
		if resp.StatusCode != tc.status || body.Error == nil || body.Error.Code != tc.code {
			t.Errorf("%s %s: %d %+v, want %d %s", tc.method, tc.path, resp.StatusCode, body.Error, tc.status, tc.code)
		}
	}
}

func TestAuthAbuse(t *testing.T) {
	ac := auth.DefaultConfig()
	ac.CodesPerIPPerHour = 6
	ac.ResendAfter = time.Minute
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	n := servertest.Start(t, servertest.Options{Auth: ac, Now: clock})
	ctx := ctxT(t)
	c := n.Client(t, client.Options{})

	const phone = "+14155550221"
	if _, err := c.RequestCode(ctx, phone); err != nil {
		t.Fatal(err)
	}
	code, err := n.SMS.Code(ctx, phone)
	if err != nil {
		t.Fatal(err)
	}
	// Asking again at once is throttled, with a retry_after.
	_, err = c.RequestCode(ctx, phone)
	if we := asWire(err); we == nil || we.Code != wire.CodeRateLimited || we.RetryAfter <= 0 {
		t.Fatalf("resend: %v, want rate_limited with retry_after", err)
	}
	// Wrong codes are refused.
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if _, err := c.Verify(ctx, phone, wrong, "d", "ios"); errCode(err) != wire.CodeInvalidCode {
		t.Fatalf("wrong code: %v, want invalid_code", err)
	}
	// The code expires: move the server's clock past its lifetime.
	mu.Lock()
	now = now.Add(ac.CodeTTL + time.Second)
	mu.Unlock()
	if _, err := c.Verify(ctx, phone, code, "d", "ios"); errCode(err) != wire.CodeCodeExpired {
		t.Fatalf("expired code: %v, want code_expired", err)
	}

	// Per-IP limit: this node allows 6 codes per hour from one address;
	// one was used above.
	var limited *wire.Error
	for i := 0; i < 8 && limited == nil; i++ {
		_, err := c.RequestCode(ctx, "+1415555030"+string(rune('0'+i)))
		limited = asWire(err)
	}
	if limited == nil || limited.Code != wire.CodeRateLimited || limited.RetryAfter <= 0 {
		t.Fatalf("per-IP limit never answered rate_limited: %+v", limited)
	}
}

func TestStolenRefreshTokenRevokesDevice(t *testing.T) {
	var mu sync.Mutex
	now := time.Now()
	clock := func() time.Time { mu.Lock(); defer mu.Unlock(); return now }
	n := servertest.Start(t, servertest.Options{Now: clock})
	ctx := ctxT(t)
	victim := n.Login(t, "+14155550231", "phone")
	old := victim.Session()
	if _, err := victim.Refresh(ctx); err != nil {
		t.Fatal(err)
	}
	fresh := victim.Session()
	if fresh.RefreshToken == old.RefreshToken || fresh.AccessToken == "" {
		t.Fatal("refresh did not rotate the token")
	}
	// An attacker replays the old refresh token, after the grace in which
	// a client's retry of a lost answer gets the same new pair.
	mu.Lock()
	now = now.Add(auth.DefaultConfig().RefreshGrace + time.Second)
	mu.Unlock()
	thief := n.Client(t, client.Options{})
	thief.SetSession(old)
	if _, err := thief.Refresh(ctx); errCode(err) != wire.CodeUnauthorized {
		t.Fatalf("replayed refresh token: %v, want unauthorized", err)
	}
	// The device is revoked: its socket is closed and its tokens are dead.
	waitStopped(t, victim)
	if _, err := victim.Me(ctx); errCode(err) != wire.CodeUnauthorized {
		t.Fatalf("revoked device's access token: %v, want unauthorized", err)
	}
	if _, err := victim.Refresh(ctx); errCode(err) != wire.CodeUnauthorized {
		t.Fatalf("revoked device's new refresh token: %v, want unauthorized", err)
	}
}

func TestRevokedDeviceIsDisconnected(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	phone := n.Login(t, "+14155550241", "phone")
	laptop := n.Login(t, "+14155550241", "laptop")
	if err := phone.DeleteDevice(ctx, laptop.Session().DeviceID); err != nil {
		t.Fatal(err)
	}
	waitStopped(t, laptop)
	if _, err := laptop.Me(ctx); errCode(err) != wire.CodeUnauthorized {
		t.Fatalf("revoked device: %v, want unauthorized", err)
	}
	devs, err := phone.Devices(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if len(devs.Devices) != 1 || !devs.Devices[0].Current {
		t.Fatalf("devices after revoke: %+v", devs.Devices)
	}
	// Logging out revokes the current device itself.
	if err := phone.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := phone.Me(ctx); errCode(err) != wire.CodeUnauthorized {
		t.Fatalf("after logout: %v, want unauthorized", err)
	}
}

// waitStopped waits until the client's connection loop gave up (a revoked
// device must not reconnect).
func waitStopped(t *testing.T, c *client.Client) {
	t.Helper()
	deadline := time.After(wait)
	for {
		select {
		case _, ok := <-c.Events():
			if !ok {
				if c.Err() == nil {
					t.Fatal("client stopped without an error")
				}
				return
			}
		case <-deadline:
			t.Fatal("revoked device's socket was not closed")
		}
	}
}

func asWire(err error) *wire.Error {
	var we *wire.Error
	if errors.As(err, &we) {
		return we
	}
	return nil
}

// slowAttach holds every Attach until release is closed, so that a test can
// act between a socket's token check and its routing attach.
type slowAttach struct {
	routing.Router
	attaching chan struct{} // gets a value when an Attach starts waiting
	release   chan struct{}
}

func (r *slowAttach) Attach(ctx context.Context, deviceID string, h routing.Handler) (func(), error) {
	r.attaching <- struct{}{}
	<-r.release
	return r.Router.Attach(ctx, deviceID, h)
}

// TestRevokedWhileConnecting revokes a device after its socket passed the
// token check but before the node attached it to routing: the revoke finds
// no route, and the session must still close (it re-reads the device once
// attached).
func TestRevokedWhileConnecting(t *testing.T) {
	slow := &slowAttach{attaching: make(chan struct{}, 8), release: make(chan struct{})}
	n := servertest.Start(t, servertest.Options{Router: func(r routing.Router) routing.Router {
		slow.Router = r
		return slow
	}})
	ctx := ctxT(t)
	phone := n.LoginOnly(t, "+14155550243", "phone")
	laptop := n.LoginOnly(t, "+14155550243", "laptop")
	connected := make(chan error, 1)
	go func() { connected <- laptop.Connect(ctx) }()
	select {
	case <-slow.attaching:
	case <-time.After(wait):
		t.Fatal("the laptop's socket never reached the routing attach")
	}
	if err := phone.DeleteDevice(ctx, laptop.Session().DeviceID); err != nil {
		t.Fatal(err)
	}
	close(slow.release)
	if err := <-connected; err != nil {
		return // refused outright: fine too
	}
	waitStopped(t, laptop)
	if !errors.Is(laptop.Err(), client.ErrSignedOut) {
		t.Fatalf("client stopped with %v, want ErrSignedOut", laptop.Err())
	}
}
