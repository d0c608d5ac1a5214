package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/admin"
	"github.com/tern-im/tern/internal/node"
	"github.com/tern-im/tern/internal/seal"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// adminClient is a browser on the dashboard: a cookie jar and the CSRF
// token its sign-in gave.
type adminClient struct {
	t    *testing.T
	base string
	hc   *http.Client
	csrf string
	key  string // an API key instead of the cookie
}

func newAdminClient(t *testing.T, base string) *adminClient {
	jar, _ := cookiejar.New(nil)
	return &adminClient{t: t, base: base, hc: &http.Client{Jar: jar}}
}

func (a *adminClient) do(method, path string, body any, csrf bool) (int, map[string]any, *http.Response) {
	a.t.Helper()
	var r io.Reader
	if body != nil {
		b, _ := json.Marshal(body)
		r = bytes.NewReader(b)
	}
	req, _ := http.NewRequestWithContext(context.Background(), method, a.base+path, r)
	req.Header.Set("Content-Type", "application/json")
	if csrf {
		req.Header.Set("X-CSRF-Token", a.csrf)
	}
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	res, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m, res
}

// TestAdminAPI: an admin account signs in (wrong passwords are throttled,
// and say nothing of which part was wrong), gets an HttpOnly SameSite=Strict
// cookie and a CSRF token; a ban without the token is refused, with it the
// user's socket closes; an API key does the same without cookie or CSRF;
// everything is in the audit log; sign-out ends the session.
func TestAdminAPI(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	if _, err := n.Srv.CreateAdmin(ctx, "Ops", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	a := newAdminClient(t, n.URL)

	if code, _, _ := a.do(http.MethodGet, "/v1/admin/me", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("me before sign-in: %d", code)
	}
	for i := range 5 {
		code, body, _ := a.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "ops", "password": "wrong password " + string(rune('a'+i))}, false)
		if code != http.StatusUnauthorized || !strings.Contains(body["error"].(map[string]any)["message"].(string), "wrong username, password or code") {
			t.Fatalf("wrong password %d: %d %v", i, code, body)
		}
	}
	if code, body, _ := a.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "ops", "password": "a long enough password"}, false); code != http.StatusTooManyRequests {
		t.Fatalf("sign-in after 5 failures: %d %v, want 429", code, body)
	}
	// The rest on a fresh node (the throttle is in memory, per node), one
	// with a master key: second factors are sealed under it.
	n2 := servertest.Start(t, servertest.Options{Engines: node.Config{MasterKey: bytes.Repeat([]byte{7}, 32)}})
	if _, err := n2.Srv.CreateAdmin(ctx, "ops", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	if _, err := n2.Srv.CreateAdmin(ctx, "OPS", "another long password"); errCode(err) != wire.CodeConflict {
		t.Fatalf("a second ops: %v", err)
	}
	mallory := n2.LoginOnly(t, "+14155550901", "phone")
	uid := mallory.Session().UserID
	a = newAdminClient(t, n2.URL)
	// A cross-site form posts text/plain: refused before anything is counted.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n2.URL+"/v1/admin/login", strings.NewReader(`{"username":"ops","password":"a long enough password"}`))
	req.Header.Set("Content-Type", "text/plain")
	if res, err := http.DefaultClient.Do(req); err != nil || res.StatusCode != http.StatusForbidden {
		t.Fatalf("login as text/plain: %v %v", res, err)
	} else {
		res.Body.Close()
	}
	if code, _, _ := a.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "nobody", "password": "a long enough password"}, false); code != http.StatusUnauthorized {
		t.Fatalf("unknown admin: %d", code)
	}
	code, me, res := a.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "OPS", "password": "a long enough password"}, false)
	if code != http.StatusOK || me["username"] != "ops" || me["csrf_token"] == "" {
		t.Fatalf("login: %d %v", code, me)
	}
	ck := cookieNamed(res, "tern_admin")
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/" {
		t.Fatalf("admin cookie: %+v", ck)
	}
	a.csrf = me["csrf_token"].(string)

	if code, body, _ := a.do(http.MethodGet, "/v1/admin/users?q=%2B1415555090", nil, false); code != 200 || len(body["users"].([]any)) != 1 {
		t.Fatalf("search: %d %v", code, body)
	}
	sock, _, err := dialWS(t, n2, bearer(mallory.Session().AccessToken))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := a.do(http.MethodPut, "/v1/admin/users/"+uid+"/ban", map[string]string{"reason": "spam"}, false); code != http.StatusForbidden {
		t.Fatalf("ban without the CSRF token: %d, want 403", code)
	}
	if code, body, _ := a.do(http.MethodPut, "/v1/admin/users/"+uid+"/ban", map[string]string{"reason": "spam"}, true); code != http.StatusNoContent {
		t.Fatalf("ban: %d %v", code, body)
	}
	if code := closeCode(t, sock); code != wire.CloseUnauthorized {
		t.Fatalf("the banned user's socket closed with %d", code)
	}
	if code, body, _ := a.do(http.MethodGet, "/v1/admin/users/"+uid, nil, false); code != 200 || body["ban"].(map[string]any)["reason"] != "spam" {
		t.Fatalf("user after the ban: %d %v", code, body)
	}

	// An API key: no cookie, no CSRF token.
	code, key, _ := a.do(http.MethodPost, "/v1/admin/keys", map[string]string{"name": "moderation bot"}, true)
	if code != http.StatusCreated || !strings.HasPrefix(key["key"].(string), "tak_") {
		t.Fatalf("new key: %d %v", code, key)
	}
	bot := &adminClient{t: t, base: n2.URL, hc: &http.Client{}, key: key["key"].(string)}
	if code, body, _ := bot.do(http.MethodDelete, "/v1/admin/users/"+uid+"/ban", nil, false); code != http.StatusNoContent {
		t.Fatalf("unban with the key: %d %v", code, body)
	}
	if code, _, _ := bot.do(http.MethodPost, "/v1/admin/keys", map[string]string{"name": "another"}, false); code != http.StatusForbidden {
		t.Fatalf("a key making a key: %d, want 403", code)
	}
	bad := &adminClient{t: t, base: n2.URL, hc: &http.Client{}, key: key["key"].(string) + "x"}
	if code, _, _ := bad.do(http.MethodGet, "/v1/admin/audit", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("a wrong key: %d", code)
	}

	code, audit, _ := a.do(http.MethodGet, "/v1/admin/audit", nil, false)
	if code != 200 {
		t.Fatalf("audit: %d", code)
	}
	var actions []string
	for _, e := range audit["entries"].([]any) {
		actions = append(actions, e.(map[string]any)["action"].(string))
	}
	if got := strings.Join(actions, ","); got != "unban,create_api_key,view_user,ban,login,login_failed,create_admin" {
		t.Errorf("audit log, newest first: %s", got)
	}

	// A second factor: a fresh secret, proven with a code, then asked for
	// at every sign-in; a code is good once.
	code, totp, _ := a.do(http.MethodPost, "/v1/admin/me/totp", nil, true)
	if code != 200 || !strings.HasPrefix(totp["uri"].(string), "otpauth://totp/Tern:ops?") {
		t.Fatalf("new totp: %d %v", code, totp)
	}
	secret, err := admin.ParseTOTPSecret(totp["secret"].(string))
	if err != nil {
		t.Fatal(err)
	}
	if code, _, _ := a.do(http.MethodPut, "/v1/admin/me/totp", map[string]string{"secret": totp["secret"].(string), "code": "000000", "password": "a long enough password"}, true); code != http.StatusBadRequest {
		t.Fatalf("totp with a wrong code: %d", code)
	}
	if code, _, _ := bot.do(http.MethodPut, "/v1/admin/me/totp", map[string]string{"secret": totp["secret"].(string), "code": admin.TOTPCode(secret, time.Now())}, false); code != http.StatusForbidden {
		t.Fatalf("totp set with an API key: %d, want 403", code)
	}
	if code, _, _ := a.do(http.MethodPut, "/v1/admin/me/totp", map[string]string{"secret": totp["secret"].(string), "code": admin.TOTPCode(secret, time.Now()), "password": "not the password"}, true); code != http.StatusForbidden {
		t.Fatalf("totp without the password: %d, want 403", code)
	}
	if code, body, _ := a.do(http.MethodPut, "/v1/admin/me/totp", map[string]string{"secret": totp["secret"].(string), "code": admin.TOTPCode(secret, time.Now()), "password": "a long enough password"}, true); code != http.StatusNoContent {
		t.Fatalf("totp: %d %v", code, body)
	}
	if stored, err := n2.Store.AdminByUsername(ctx, "ops"); err != nil || !seal.IsSealed(stored.TOTPSecret) || bytes.Contains(stored.TOTPSecret, secret) {
		t.Fatalf("the stored second factor is not sealed: %x, %v", stored.TOTPSecret, err)
	}
	// One stored in the clear (before the node had a master key) still
	// works, and is sealed at its first use.
	legacy, err := n2.Srv.CreateAdmin(ctx, "legacy", "a long enough password")
	if err != nil {
		t.Fatal(err)
	}
	legacy.TOTPSecret = secret
	if err := n2.Store.UpdateAdmin(ctx, legacy); err != nil {
		t.Fatal(err)
	}
	if code, body, _ := newAdminClient(t, n2.URL).do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "legacy", "password": "a long enough password",
		"totp": admin.TOTPCode(secret, time.Now())}, false); code != http.StatusOK {
		t.Fatalf("sign-in with a second factor stored in the clear: %d %v", code, body)
	}
	if stored, err := n2.Store.AdminByUsername(ctx, "legacy"); err != nil || !seal.IsSealed(stored.TOTPSecret) {
		t.Fatalf("a clear second factor after its use: %x, %v", stored.TOTPSecret, err)
	}
	second := newAdminClient(t, n2.URL)
	if code, _, _ := second.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "ops", "password": "a long enough password"}, false); code != http.StatusUnauthorized {
		t.Fatalf("sign-in without the code: %d", code)
	}
	// The code the set-up used is spent: the next step's code signs in.
	next := admin.TOTPCode(secret, time.Now().Add(30*time.Second))
	if code, body, _ := second.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "ops", "password": "a long enough password", "totp": next}, false); code != http.StatusOK {
		t.Fatalf("sign-in with the next code: %d %v", code, body)
	}
	third := newAdminClient(t, n2.URL)
	if code, _, _ := third.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "ops", "password": "a long enough password", "totp": next}, false); code != http.StatusUnauthorized {
		t.Fatalf("the same code again: %d, want 401", code)
	}

	if code, _, _ := a.do(http.MethodPost, "/v1/admin/logout", nil, false); code != http.StatusForbidden {
		t.Fatalf("logout without CSRF: %d", code)
	}
	if code, _, _ := a.do(http.MethodPost, "/v1/admin/logout", nil, true); code != http.StatusNoContent {
		t.Fatalf("logout: %d", code)
	}
	if code, _, _ := a.do(http.MethodGet, "/v1/admin/me", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("me after logout: %d", code)
	}
	testAdminAccounts(t, n2)
}

// testAdminAccounts: keys are listed without secrets and revoked by any
// admin; a disabled admin's sessions end and its keys stop working; nobody
// disables their own account.
func testAdminAccounts(t *testing.T, n *servertest.Node) {
	login := func(user, pw string) *adminClient {
		t.Helper()
		if _, err := n.Srv.CreateAdmin(t.Context(), user, pw); err != nil {
			t.Fatal(err)
		}
		c := newAdminClient(t, n.URL)
		code, me, _ := c.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": user, "password": pw}, false)
		if code != 200 {
			t.Fatalf("%s login: %d", user, code)
		}
		c.csrf = me["csrf_token"].(string)
		return c
	}
	lead := login("lead", "another long password")
	temp := login("temp", "a third long password")
	code, key, _ := temp.do(http.MethodPost, "/v1/admin/keys", map[string]string{"name": "script"}, true)
	if code != http.StatusCreated {
		t.Fatalf("temp's key: %d", code)
	}
	bot := &adminClient{t: t, base: n.URL, hc: &http.Client{}, key: key["key"].(string)}
	if code, body, _ := temp.do(http.MethodGet, "/v1/admin/keys", nil, false); code != 200 || len(body["keys"].([]any)) != 1 || strings.Contains(jsonString(body), "tak_") {
		t.Fatalf("keys: %d %v", code, body)
	}
	code, list, _ := lead.do(http.MethodGet, "/v1/admin/admins", nil, false)
	if code != 200 {
		t.Fatalf("admins: %d %v", code, list)
	}
	ids := map[string]string{}
	for _, x := range list["admins"].([]any) {
		m := x.(map[string]any)
		ids[m["username"].(string)] = m["admin_id"].(string)
	}
	if code, _, _ := lead.do(http.MethodPut, "/v1/admin/admins/"+ids["lead"]+"/disabled", nil, true); code != http.StatusBadRequest {
		t.Fatalf("disabling oneself: %d", code)
	}
	if code, _, _ := bot.do(http.MethodPut, "/v1/admin/admins/"+ids["lead"]+"/disabled", nil, false); code != http.StatusForbidden {
		t.Fatalf("a key disabling an admin: %d", code)
	}
	if code, _, _ := lead.do(http.MethodPut, "/v1/admin/admins/"+ids["temp"]+"/disabled", nil, true); code != http.StatusNoContent {
		t.Fatalf("disable temp: %d", code)
	}
	if code, _, _ := temp.do(http.MethodGet, "/v1/admin/me", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("a disabled admin's session: %d", code)
	}
	if code, _, _ := bot.do(http.MethodGet, "/v1/admin/audit", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("a disabled admin's key: %d", code)
	}
	if code, _, _ := lead.do(http.MethodDelete, "/v1/admin/keys/"+key["key_id"].(string), nil, true); code != http.StatusNoContent {
		t.Fatalf("revoke temp's key: %d", code)
	}
	if code, _, _ := lead.do(http.MethodDelete, "/v1/admin/admins/"+ids["temp"]+"/disabled", nil, true); code != http.StatusNoContent {
		t.Fatalf("enable temp: %d", code)
	}
	if code, _, _ := bot.do(http.MethodGet, "/v1/admin/audit", nil, false); code != http.StatusUnauthorized {
		t.Fatalf("a revoked key, its admin enabled again: %d", code)
	}
}

func jsonString(v any) string {
	b, _ := json.Marshal(v)
	return string(b)
}

// getJSON GETs path and decodes its 200 answer into v.
func (a *adminClient) getJSON(path string, v any) {
	a.t.Helper()
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, a.base+path, nil)
	if a.key != "" {
		req.Header.Set("Authorization", "Bearer "+a.key)
	}
	res, err := a.hc.Do(req)
	if err != nil {
		a.t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusOK {
		b, _ := io.ReadAll(res.Body)
		a.t.Fatalf("GET %s: %d %s", path, res.StatusCode, b)
	}
	if err := json.NewDecoder(res.Body).Decode(v); err != nil {
		a.t.Fatalf("GET %s: %v", path, err)
	}
}

// signedInAdmin makes the admin "ops" on n and returns a dashboard session
// of it, CSRF token included.
func signedInAdmin(t *testing.T, n *servertest.Node) *adminClient {
	t.Helper()
	if _, err := n.Srv.CreateAdmin(ctxT(t), "ops", "a long enough password"); err != nil {
		t.Fatal(err)
	}
	a := newAdminClient(t, n.URL)
	code, me, _ := a.do(http.MethodPost, "/v1/admin/login", map[string]string{"username": "ops", "password": "a long enough password"}, false)
	if code != http.StatusOK {
		t.Fatalf("admin sign-in: %d %v", code, me)
	}
	a.csrf = me["csrf_token"].(string)
	return a
}
