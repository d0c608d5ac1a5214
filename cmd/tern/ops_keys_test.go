package main

import (
	"bytes"
	"context"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/server/servertest"
)

// TestOpsRotateKeysAndMasterKey: a node started with a master key from a
// file signs in as usual; `tern admin rotate-keys` adds a key through the
// admin API; tokens of the old key keep working, new sign-ins get the new
// one; a restart without the master key refuses the sealed keys.
func TestOpsRotateKeysAndMasterKey(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	secrets := t.TempDir()
	keyFile := filepath.Join(secrets, "master")
	if err := os.WriteFile(keyFile, []byte(hex.EncodeToString(bytes.Repeat([]byte{7}, 32))+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	tokenFile := filepath.Join(secrets, "admin")
	const token = "rotate-token-31f"
	if err := os.WriteFile(tokenFile, []byte(token), 0o600); err != nil {
		t.Fatal(err)
	}
	sms := servertest.NewSMSSink(t)
	p := startTern(t, dir, sms.URL, "--admin-addr", "127.0.0.1:0", "--admin-token-file", tokenFile, "--master-key-file", keyFile)
	admin := p.logField(t, "admin listening", "addr")

	before := login(t, ctx, p.url, sms, "+14155550701")
	oldToken := before.Session().AccessToken
	kid := func(tok string) string { parts := strings.SplitN(tok, ".", 3); return parts[0] + "." + parts[1] }

	var so, se bytes.Buffer
	if code := run(ctx, []string{"admin", "rotate-keys", "--admin-addr", admin, "--admin-token-file", tokenFile}, &so, &se); code != 0 {
		t.Fatalf("tern admin rotate-keys: exit %d: %s", code, se.String())
	}
	if !strings.Contains(so.String(), `"key_id":2`) {
		t.Fatalf("rotate-keys printed %q, want key 2", so.String())
	}
	after := login(t, ctx, p.url, sms, "+14155550702")
	if kid(after.Session().AccessToken) == kid(oldToken) {
		t.Fatalf("a sign-in after the rotation got a token of the old key (%s)", kid(oldToken))
	}
	if _, err := before.Me(ctx); err != nil {
		t.Fatalf("a token of the old key after the rotation: %v", err)
	}
	se.Reset()
	if code := run(ctx, []string{"admin", "rotate-keys", "--admin-addr", admin, "--admin-token", "wrong"}, &so, &se); code != 1 || !strings.Contains(se.String(), "401") {
		t.Fatalf("rotate-keys with a wrong token: exit %d %q, want 1 and 401", code, se.String())
	}

	// The keys are sealed: the node does not start without its master key.
	if err := p.cmd.Process.Kill(); err != nil {
		t.Fatal(err)
	}
	<-p.done
	var out bytes.Buffer
	sctx, scancel := context.WithTimeout(ctx, 30*time.Second)
	defer scancel()
	if code := run(sctx, []string{"serve", "--addr", "127.0.0.1:0", "--data-dir", dir, "--sms-provider", "http", "--sms-http-url", sms.URL}, &out, &out); code == 0 {
		t.Fatalf("a node without the master key started on sealed keys: %s", out.String())
	}
}

// TestOpsAdminCreate: `tern admin create` makes a dashboard account through
// a running node's admin listener; it signs in at /v1/admin/login; a taken
// username and a short password are refused with the node's reason.
func TestOpsAdminCreate(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	secrets := t.TempDir()
	tokenFile := filepath.Join(secrets, "admin")
	if err := os.WriteFile(tokenFile, []byte("create-token-8d2"), 0o600); err != nil {
		t.Fatal(err)
	}
	pwFile := filepath.Join(secrets, "pw")
	if err := os.WriteFile(pwFile, []byte("a long enough password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	p := startTern(t, t.TempDir(), servertest.NewSMSSink(t).URL, "--admin-addr", "127.0.0.1:0", "--admin-token-file", tokenFile)
	addr := p.logField(t, "admin listening", "addr")
	create := func(user, pw string) (int, string) {
		var so, se bytes.Buffer
		code := run(ctx, []string{"admin", "create", "--admin-addr", addr, "--admin-token-file", tokenFile, "--username", user, "--password-file", pw}, &so, &se)
		return code, so.String() + se.String()
	}
	if code, out := create("Ops", pwFile); code != 0 || !strings.Contains(out, "admin ops created") {
		t.Fatalf("create: exit %d: %s", code, out)
	}
	if code, out := create("ops", pwFile); code == 0 || !strings.Contains(out, "taken") {
		t.Fatalf("create again: exit %d: %s", code, out)
	}
	short := filepath.Join(secrets, "short")
	if err := os.WriteFile(short, []byte("short"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, out := create("other", short); code == 0 || !strings.Contains(out, "password") {
		t.Fatalf("short password: exit %d: %s", code, out)
	}
	body := strings.NewReader(`{"username":"ops","password":"a long enough password"}`)
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/v1/admin/login", body)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusOK {
		t.Fatalf("login as the new admin: %s", res.Status)
	}

	// Reset: a new password (the old one stops working); an unknown
	// account is refused.
	login := func(pw string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, p.url+"/v1/admin/login",
			strings.NewReader(`{"username":"ops","password":"`+pw+`"}`))
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	newPw := filepath.Join(secrets, "new")
	if err := os.WriteFile(newPw, []byte("another long password\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	reset := func(user string) (int, string) {
		var so, se bytes.Buffer
		code := run(ctx, []string{"admin", "reset", "--admin-addr", addr, "--admin-token-file", tokenFile, "--username", user, "--password-file", newPw}, &so, &se)
		return code, so.String() + se.String()
	}
	if code, out := reset("OPS"); code != 0 || !strings.Contains(out, "admin ops reset") {
		t.Fatalf("reset: exit %d: %s", code, out)
	}
	if code := login("a long enough password"); code != http.StatusUnauthorized {
		t.Fatalf("the old password after a reset: %d", code)
	}
	if code := login("another long password"); code != http.StatusOK {
		t.Fatalf("the new password after a reset: %d", code)
	}
	if code, out := reset("nobody"); code == 0 || !strings.Contains(out, "no admin") {
		t.Fatalf("reset of no account: exit %d: %s", code, out)
	}

	// tern business create prints the four fields scripts need, as JSON.
	var so, se bytes.Buffer
	if code := run(ctx, []string{"business", "create", "--admin-addr", addr, "--admin-token-file", tokenFile,
		"--phone", "+14155550888", "--name", "Acme"}, &so, &se); code != 0 {
		t.Fatalf("business create: exit %d: %s%s", code, so.String(), se.String())
	}
	var created map[string]string
	if err := json.Unmarshal(so.Bytes(), &created); err != nil || len(created) != 4 || created["phone_number_id"] == "" ||
		created["waba_id"] == "" || !strings.HasPrefix(created["access_token"], "tbt_") || created["app_secret"] == "" {
		t.Fatalf("business create printed %q (%v)", so.String(), err)
	}
	so.Reset()
	se.Reset()
	if code := run(ctx, []string{"business", "create", "--admin-addr", addr, "--admin-token-file", tokenFile,
		"--phone", "+14155550888", "--name", "Acme again"}, &so, &se); code == 0 || !strings.Contains(se.String(), "in use") {
		t.Fatalf("business create on a taken number: exit %d: %s%s", code, so.String(), se.String())
	}
}
