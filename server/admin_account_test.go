package server_test

import (
	"net/http"
	"testing"
	"time"

	"github.com/tern-im/tern/admin"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
)

// TestAdminOwnAccount: an admin changes its password (with the old one;
// its other sessions end, this one goes on) and turns its second factor
// off (with the password); an API key can do neither.
func TestAdminOwnAccount(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	if _, err := n.Srv.CreateAdmin(ctx, "ops", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	signIn := func(pw, totp string) (*adminClient, int) {
		c := newAdminClient(t, n.URL)
		code, me, _ := c.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "ops", "password": pw, "totp": totp}, false)
		if code == http.StatusOK {
			c.csrf = me["csrf_token"].(string)
		}
		return c, code
	}
	a, code := signIn("a long enough password", "")
	if code != http.StatusOK {
		t.Fatalf("sign-in: %d", code)
	}
	other, _ := signIn("a long enough password", "")
	_, key, _ := a.do(http.MethodPost, "/v1/admin/keys", map[string]string{"name": "script"}, true)
	bot := &adminClient{t: t, base: n.URL, hc: &http.Client{}, key: key["key"].(string)}

	change := func(c *adminClient, old, next string) int {
		code, _, _ := c.do(http.MethodPut, "/v1/admin/me/password", map[string]string{"password": old, "new_password": next}, true)
		return code
	}
	if code := change(bot, "a long enough password", "a new long password"); code != http.StatusForbidden {
		t.Fatalf("a password change by an API key: %d", code)
	}
	if code := change(a, "not the password", "a new long password"); code != http.StatusForbidden {
		t.Fatalf("a password change without the old one: %d", code)
	}
	if code := change(a, "a long enough password", "short"); code != http.StatusBadRequest {
		t.Fatalf("a weak new password: %d", code)
	}
	if code, _, _ := a.do(http.MethodPut, "/v1/admin/me/password", map[string]string{"password": "a long enough password", "new_password": "a new long password"}, false); code != http.StatusForbidden {
		t.Fatalf("a password change without the CSRF token: %d", code)
	}
	if code := change(a, "a long enough password", "a new long password"); code != http.StatusNoContent {
		t.Fatalf("a password change: %d", code)
	}
	if code, _, _ := other.do(http.MethodGet, "/v1/admin/me", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("the other session after a password change: %d", code)
	}
	if code, _, _ := a.do(http.MethodGet, "/v1/admin/me", nil, false); code != http.StatusOK {
		t.Fatalf("the changing session after a password change: %d", code)
	}
	if _, code := signIn("a long enough password", ""); code != http.StatusUnauthorized {
		t.Fatalf("the old password: %d", code)
	}

	// A second factor, then off again.
	_, totp, _ := a.do(http.MethodPost, "/v1/admin/me/totp", nil, true)
	secret, err := admin.ParseTOTPSecret(totp["secret"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := a.do(http.MethodPut, "/v1/admin/me/totp", map[string]string{"secret": totp["secret"].(string),
		"code": admin.TOTPCode(secret, time.Now()), "password": "a new long password"}, true); code != http.StatusNoContent {
		t.Fatalf("totp on: %d %v", code, body)
	}
	if _, code := signIn("a new long password", ""); code != http.StatusUnauthorized {
		t.Fatalf("sign-in without the code: %d", code)
	}
	off := func(c *adminClient, pw string) int {
		code, _, _ := c.do(http.MethodDelete, "/v1/admin/me/totp", map[string]string{"password": pw}, true)
		return code
	}
	if code := off(bot, "a new long password"); code != http.StatusForbidden {
		t.Fatalf("totp off by an API key: %d", code)
	}
	if code := off(a, "a long enough password"); code != http.StatusForbidden {
		t.Fatalf("totp off with the old password: %d", code)
	}
	if code := off(a, "a new long password"); code != http.StatusNoContent {
		t.Fatalf("totp off: %d", code)
	}
	var me struct{ TOTP bool }
	a.getJSON("/v1/admin/me", &me)
	if me.TOTP {
		t.Fatal("me says the second factor is still on")
	}
	if _, code := signIn("a new long password", ""); code != http.StatusOK {
		t.Fatalf("sign-in without a code once the factor is off: %d", code)
	}
}

// TestAdminHost: with AdminHost set, the dashboard and the admin API
// answer on that host only, and its / leads to the dashboard.
func TestAdminHost(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{AdminHost: "admin.tern.test"}})
	get := func(host, path string) *http.Response {
		req, _ := http.NewRequestWithContext(ctxT(t), http.MethodGet, n.URL+path, nil)
		req.Host = host
		res, err := (&http.Client{CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse }}).Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res
	}
	for _, c := range []struct {
		host, path string
		want       int
	}{
		{n.Addr, "/v1/admin/me", http.StatusNotFound},
		{n.Addr, "/admin", http.StatusNotFound},
		{"chat.tern.test", "/v1/admin/overview", http.StatusNotFound},
		{n.Addr, "/", http.StatusOK},
		{"admin.tern.test", "/v1/admin/me", http.StatusUnauthorized},
		{"ADMIN.tern.test:8443", "/admin", http.StatusOK},
		{"admin.tern.test", "/", http.StatusFound},
	} {
		if res := get(c.host, c.path); res.StatusCode != c.want {
			t.Errorf("GET %s on %s: %d, want %d", c.path, c.host, res.StatusCode, c.want)
		}
	}
	if res := get("admin.tern.test", "/"); res.Header.Get("Location") != "/admin" {
		t.Errorf("/ on the admin host leads to %q", res.Header.Get("Location"))
	}
}
