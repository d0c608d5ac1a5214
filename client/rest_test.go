package client

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"testing"

	"github.com/tern-im/tern/wire"
)

// restServer adds the REST endpoints the tests use to a fakeServer.
func restServer(t *testing.T) *fakeServer {
	fs := newFakeServer(t)
	authed := func(h http.HandlerFunc) http.HandlerFunc {
		return func(w http.ResponseWriter, r *http.Request) {
			if _, ok := fs.tokenOK(r); !ok {
				writeError(w, wire.CodeUnauthorized, "bad token", 0)
				return
			}
			h(w, r)
		}
	}
	fs.mux.HandleFunc("POST /v1/auth/code", func(w http.ResponseWriter, r *http.Request) {
		var req wire.CodeRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		switch req.Phone {
		case "+15550000001":
			writeJSON(w, http.StatusAccepted, wire.CodeResponse{ExpiresIn: 300, RetryAfter: 60})
		case "+15550000002":
			writeError(w, wire.CodeRateLimited, "too many codes", 42)
		default:
			writeError(w, wire.CodeInvalidPhone, "not a phone number", 0)
		}
	})
	fs.mux.HandleFunc("POST /v1/auth/verify", func(w http.ResponseWriter, r *http.Request) {
		var req wire.VerifyRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		if req.Code != "123456" || req.DeviceName != "laptop" || req.Platform != "cli" {
			writeError(w, wire.CodeInvalidCode, "wrong code", 0)
			return
		}
		fs.allow("acc1")
		writeJSON(w, http.StatusOK, wire.Session{UserID: "u1", DeviceID: "d1", AccessToken: "acc1", RefreshToken: "ref1", ExpiresIn: 900})
	})
	fs.mux.HandleFunc("POST /v1/auth/logout", authed(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	fs.mux.HandleFunc("GET /v1/me", authed(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, wire.Me{UserID: "u1", Phone: "+15550000001", Name: "Ann"})
	}))
	fs.mux.HandleFunc("PATCH /v1/me", authed(func(w http.ResponseWriter, r *http.Request) {
		var p wire.MePatch
		_ = json.NewDecoder(r.Body).Decode(&p)
		if p.Name == nil || p.About != nil {
			writeError(w, wire.CodeBadRequest, "expected only name", 0)
			return
		}
		writeJSON(w, http.StatusOK, wire.Me{UserID: "u1", Name: *p.Name})
	}))
	fs.mux.HandleFunc("GET /v1/users/{id}", authed(func(w http.ResponseWriter, r *http.Request) {
		switch id := r.PathValue("id"); id {
		case "u/2":
			writeJSON(w, http.StatusOK, wire.User{UserID: id, Name: "Bob"})
		case "gateway":
			w.Header().Set("Content-Type", "text/html")
			w.WriteHeader(http.StatusBadGateway)
			_, _ = io.WriteString(w, "<html>502 Bad Gateway</html>")
		default:
			writeError(w, wire.CodeNotFound, "no such user", 0)
		}
	}))
	fs.mux.HandleFunc("POST /v1/contacts/lookup", authed(func(w http.ResponseWriter, r *http.Request) {
		var req wire.LookupRequest
		_ = json.NewDecoder(r.Body).Decode(&req)
		writeJSON(w, http.StatusOK, wire.LookupResponse{Contacts: []wire.Contact{{Phone: req.Phones[0], UserID: "u2"}}})
	}))
	fs.mux.HandleFunc("GET /v1/devices", authed(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, wire.DevicesResponse{Devices: []wire.Device{{DeviceID: "d1", Current: true}}})
	}))
	fs.mux.HandleFunc("DELETE /v1/devices/{id}", authed(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(http.StatusNoContent)
	}))
	fs.mux.HandleFunc("GET /v1/chats", authed(func(w http.ResponseWriter, r *http.Request) {
		writeJSON(w, http.StatusOK, wire.ChatsResponse{Chats: []wire.Chat{{ChatID: "chat1", Kind: wire.KindDirect, UnreadCount: 2}}})
	}))
	fs.mux.HandleFunc("GET /v1/chats/{id}/messages", authed(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.PathValue("id") != "chat1" || q.Get("before") != "10" || q.Get("limit") != "2" {
			writeError(w, wire.CodeBadRequest, "unexpected query "+r.URL.RawQuery, 0)
			return
		}
		writeJSON(w, http.StatusOK, wire.HistoryResponse{Messages: []wire.Message{{MsgID: "m9", Seq: 9}, {MsgID: "m8", Seq: 8}}, NextBefore: 8})
	}))
	return fs
}

func TestLoginAndRESTCalls(t *testing.T) {
	fs := restServer(t)
	c := New(fs.srv.URL+"/", Options{HTTPClient: fs.srv.Client()})
	ctx := context.Background()

	var asked string
	s, err := c.Login(ctx, "+15550000001", "laptop", "cli", func(_ context.Context, phone string) (string, error) {
		asked = phone
		return "123456", nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if asked != "+15550000001" || s.AccessToken != "acc1" || c.Session() != s {
		t.Fatalf("login: asked %q, session %+v, stored %+v", asked, s, c.Session())
	}

	if me, err := c.Me(ctx); err != nil || me.Name != "Ann" {
		t.Fatalf("Me = %+v, %v", me, err)
	}
	name := "Anna"
	if me, err := c.UpdateMe(ctx, wire.MePatch{Name: &name}); err != nil || me.Name != "Anna" {
		t.Fatalf("UpdateMe = %+v, %v", me, err)
	}
	if u, err := c.User(ctx, "u/2"); err != nil || u.Name != "Bob" {
		t.Fatalf("User = %+v, %v", u, err)
	}
	if l, err := c.Lookup(ctx, []string{"+15550000009"}); err != nil || len(l.Contacts) != 1 || l.Contacts[0].Phone != "+15550000009" {
		t.Fatalf("Lookup = %+v, %v", l, err)
	}
	if d, err := c.Devices(ctx); err != nil || len(d.Devices) != 1 || !d.Devices[0].Current {
		t.Fatalf("Devices = %+v, %v", d, err)
	}
	if err := c.DeleteDevice(ctx, "d2"); err != nil {
		t.Fatal(err)
	}
	if ch, err := c.Chats(ctx); err != nil || len(ch.Chats) != 1 || ch.Chats[0].UnreadCount != 2 {
		t.Fatalf("Chats = %+v, %v", ch, err)
	}
	if h, err := c.History(ctx, "chat1", 10, 2); err != nil || len(h.Messages) != 2 || h.NextBefore != 8 {
		t.Fatalf("History = %+v, %v", h, err)
	}
	var raw map[string]any
	if err := c.Do(ctx, http.MethodGet, "/v1/me", nil, &raw); err != nil || raw["name"] != "Ann" {
		t.Fatalf("Do = %v, %v", raw, err)
	}
	if err := c.Logout(ctx); err != nil {
		t.Fatal(err)
	}
	if s := c.Session(); s.AccessToken != "" || s.RefreshToken != "" || s.UserID != "u1" {
		t.Fatalf("session after logout: %+v", s)
	}
}

func TestRESTErrorsAreWireErrors(t *testing.T) {
	fs := restServer(t)
	c := New(fs.srv.URL, Options{HTTPClient: fs.srv.Client()})
	ctx := context.Background()

	_, err := c.RequestCode(ctx, "+15550000002")
	var werr *wire.Error
	var herr *HTTPError
	if !errors.As(err, &werr) || werr.Code != wire.CodeRateLimited || werr.RetryAfter != 42 {
		t.Fatalf("RequestCode = %v, want rate_limited retry_after 42", err)
	}
	if !errors.As(err, &herr) || herr.Status != http.StatusTooManyRequests || herr.Path != "/v1/auth/code" {
		t.Fatalf("status: %v", err)
	}

	if _, err := c.Verify(ctx, "+15550000001", "000000", "laptop", "cli"); !errors.As(err, &werr) || werr.Code != wire.CodeInvalidCode {
		t.Fatalf("Verify = %v", err)
	}
	if c.Session().AccessToken != "" {
		t.Fatal("a failed verify stored a session")
	}

	// Without a token: unauthorized, and no refresh to try.
	if _, err := c.Me(ctx); !errors.As(err, &werr) || werr.Code != wire.CodeUnauthorized {
		t.Fatalf("Me = %v", err)
	}

	fs.allow("a")
	c.SetSession(wire.Session{AccessToken: "a"})
	if _, err := c.User(ctx, "nobody"); !errors.As(err, &werr) || werr.Code != wire.CodeNotFound {
		t.Fatalf("User = %v", err)
	}
	// A proxy's own error page still gives a *wire.Error.
	_, err = c.User(ctx, "gateway")
	if !errors.As(err, &werr) || werr.Code != wire.CodeUnavailable || !errors.As(err, &herr) || herr.Status != http.StatusBadGateway {
		t.Fatalf("User(gateway) = %v", err)
	}
	// Raw bodies reach the server as they are.
	err = c.Do(ctx, http.MethodPost, "/v1/auth/code", []byte(`{"phone":`), nil)
	if !errors.As(err, &werr) || werr.Code != wire.CodeInvalidPhone {
		t.Fatalf("Do raw = %v", err)
	}
}

func TestRESTRefreshesOn401(t *testing.T) {
	fs := restServer(t)
	c := New(fs.srv.URL, Options{HTTPClient: fs.srv.Client()})
	ctx := context.Background()
	c.SetSession(wire.Session{UserID: "u1", AccessToken: "expired", RefreshToken: "r1"})
	fs.onRefresh("r1", wire.Session{AccessToken: "fresh", RefreshToken: "r2"})
	if me, err := c.Me(ctx); err != nil || me.UserID != "u1" {
		t.Fatalf("Me = %+v, %v", me, err)
	}
	if s := c.Session(); s.AccessToken != "fresh" || s.RefreshToken != "r2" || s.UserID != "u1" {
		t.Fatalf("session %+v", s)
	}

	// A refused refresh: the caller gets the 401 of its own call.
	fs.revoke("fresh")
	_, err := c.Me(ctx)
	var herr *HTTPError
	if !errors.As(err, &herr) || herr.Status != 401 || herr.Path != "/v1/me" {
		t.Fatalf("Me = %v", err)
	}

	// NoRefresh leaves the refresh token alone.
	c2 := New(fs.srv.URL, Options{HTTPClient: fs.srv.Client(), NoRefresh: true})
	fs.onRefresh("r9", wire.Session{AccessToken: "x", RefreshToken: "r10"})
	c2.SetSession(wire.Session{AccessToken: "expired", RefreshToken: "r9"})
	if _, err := c2.Me(ctx); !isUnauthorized(err) {
		t.Fatalf("Me = %v", err)
	}
	if c2.Session().RefreshToken != "r9" {
		t.Fatal("refreshed despite NoRefresh")
	}

	// Refresh on its own.
	if s, err := c2.Refresh(ctx); err != nil || s.AccessToken != "x" || c2.Session().RefreshToken != "r10" {
		t.Fatalf("Refresh = %+v, %v", s, err)
	}
}

func TestConcurrentRefreshRotatesOnce(t *testing.T) {
	fs := restServer(t)
	c := New(fs.srv.URL, Options{HTTPClient: fs.srv.Client()})
	c.SetSession(wire.Session{AccessToken: "expired", RefreshToken: "r1"})
	// Only one rotation is possible: r1 is single use.
	fs.onRefresh("r1", wire.Session{AccessToken: "fresh", RefreshToken: "r2"})
	errs := make(chan error, 8)
	for range 8 {
		go func() {
			_, err := c.Me(context.Background())
			errs <- err
		}()
	}
	for range 8 {
		if err := <-errs; err != nil {
			t.Error(err)
		}
	}
	if c.Stats().Refreshes != 1 {
		t.Errorf("refreshes = %d", c.Stats().Refreshes)
	}
}
