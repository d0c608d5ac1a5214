package main

import (
	"bytes"
	"context"
	"encoding/hex"
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
