package auth

import (
	"crypto/sha256"
	"errors"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// TestConcurrentRefreshesWithOneToken: a client that sends a few refreshes
// with one token at once gets the same new tokens on each, and keeps its
// device.
func TestConcurrentRefreshesWithOneToken(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	for round := 0; round < 10; round++ {
		s0 := h.signIn(t, testPhone(500+round))
		const n = 3
		var wg sync.WaitGroup
		got := make([]wire.Session, n)
		errs := make([]error, n)
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Go(func() {
				<-start
				got[i], errs[i] = h.svc.Refresh(ctx, s0.RefreshToken)
			})
		}
		close(start)
		wg.Wait()
		for i := 0; i < n; i++ {
			if errs[i] != nil {
				t.Fatalf("round %d: refresh %d of %d: %v", round, i+1, n, errs[i])
			}
			if got[i] != got[0] {
				t.Fatalf("round %d: refreshes answered different sessions:\n%+v\n%+v", round, got[0], got[i])
			}
		}
		if got[0].RefreshToken == s0.RefreshToken {
			t.Fatal("refresh did not rotate")
		}
		if _, err := h.svc.Authenticate(ctx, got[0].AccessToken); err != nil {
			t.Fatalf("round %d: new access token: %v", round, err)
		}
		if _, err := h.svc.Refresh(ctx, got[0].RefreshToken); err != nil {
			t.Fatalf("round %d: the new refresh token: %v", round, err)
		}
	}
	if r := h.revoked.list(); len(r) != 0 {
		t.Fatalf("concurrent refreshes revoked %v", r)
	}
}

// TestRefreshRetryWithinGrace: a client whose refresh answer was lost and
// that retries within the grace gets the same new tokens, stored nowhere in
// the clear; after the grace the same retry is taken for theft.
func TestRefreshRetryWithinGrace(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	s0 := h.signIn(t, testPhone(510))
	h.clock.Advance(10 * time.Minute)
	s1, err := h.svc.Refresh(ctx, s0.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(29 * time.Second)
	again, err := h.svc.Refresh(ctx, s0.RefreshToken)
	if err != nil {
		t.Fatalf("retry 29 s later: %v", err)
	}
	if again.RefreshToken != s1.RefreshToken || again.AccessToken != s1.AccessToken {
		t.Errorf("retry got other tokens:\n%+v\nwant\n%+v", again, s1)
	}
	if again.ExpiresIn != 900-29 {
		t.Errorf("retry expires_in = %d, want %d (the first answer's token)", again.ExpiresIn, 900-29)
	}
	d, err := h.st.Device(ctx, s0.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	_, secret, _ := strings.Cut(s1.RefreshToken, ".")
	raw, _ := b64.DecodeString(secret)
	if sum := sha256.Sum256(raw); string(d.RefreshHash) != string(sum[:]) {
		t.Error("the store holds something other than the new secret's hash")
	}
	if _, err := h.svc.Authenticate(ctx, again.AccessToken); err != nil {
		t.Fatal(err)
	}

	// The new token carries on; the old one, past the grace, revokes.
	s2, err := h.svc.Refresh(ctx, s1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(30 * time.Second)
	_, err = h.svc.Refresh(ctx, s1.RefreshToken)
	wantCode(t, err, wire.CodeUnauthorized)
	if _, err := h.st.Device(ctx, s0.DeviceID); !errors.Is(err, store.ErrNotFound) {
		t.Fatalf("device survived a replay after the grace: %v", err)
	}
	_, err = h.svc.Refresh(ctx, s2.RefreshToken)
	wantCode(t, err, wire.CodeUnauthorized)
}

// TestRefreshOlderTokenRevokesInGrace: the token before the previous one is
// a replay, even while the previous one is in its grace.
func TestRefreshOlderTokenRevokesInGrace(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	s0 := h.signIn(t, testPhone(511))
	s1, err := h.svc.Refresh(ctx, s0.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(time.Minute)
	if _, err := h.svc.Refresh(ctx, s1.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.Refresh(ctx, s0.RefreshToken)
	wantCode(t, err, wire.CodeUnauthorized)
	if got := h.revoked.list(); len(got) != 1 || got[0] != s0.UserID+"/"+s0.DeviceID {
		t.Fatalf("revocations = %v, want the device", got)
	}
}

// TestRefreshGraceAcrossNodesAndRotation: the retry may reach another node,
// and a key rotation in between does not change the answer, even on a node
// that has not yet read the rotated ring.
func TestRefreshGraceAcrossNodesAndRotation(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	st := newReplStore(t)
	a := h.newService(t, st, DefaultConfig())
	b := h.newService(t, st, DefaultConfig())
	h.svc = a
	check := func(phase string, s0, s1 wire.Session) {
		t.Helper()
		for name, svc := range map[string]*Service{"a": a, "b": b} {
			again, err := svc.Refresh(ctx, s0.RefreshToken)
			if err != nil {
				t.Fatalf("%s: retry on %s: %v", phase, name, err)
			}
			if again.RefreshToken != s1.RefreshToken {
				t.Errorf("%s: retry on %s got another refresh token", phase, name)
			}
			if _, err := b.Authenticate(ctx, again.AccessToken); err != nil {
				t.Errorf("%s: access token of the retry on %s: %v", phase, name, err)
			}
		}
	}

	// Refreshed with key 1, then the keys rotate.
	s0 := h.signIn(t, testPhone(512))
	s1, err := a.Refresh(ctx, s0.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := a.RotateKeys(ctx); err != nil {
		t.Fatal(err)
	}
	h.clock.Advance(5 * time.Second)
	check("refresh before rotation", s0, s1)

	// Keys rotate on a, a refreshes with the new key, and b, which has
	// not read the ring since, gets the retry.
	h.clock.Advance(time.Minute)
	b.keys(ctx) // b rereads the ring: it knows key 2, and not the next
	if _, err := a.RotateKeys(ctx); err != nil {
		t.Fatal(err)
	}
	s0 = h.signIn(t, testPhone(513))
	if s1, err = a.Refresh(ctx, s0.RefreshToken); err != nil {
		t.Fatal(err)
	}
	if id := b.ring.Load().newest().id; id != 2 {
		t.Fatalf("b knows key %d, want 2 (stale)", id)
	}
	h.clock.Advance(ringRetryEvery) // b's last read of the ring is not just now
	check("refresh with a key b does not know", s0, s1)
	if r := h.revoked.list(); len(r) != 0 {
		t.Fatalf("revoked %v", r)
	}
}

func TestRefreshGraceOff(t *testing.T) {
	cfg := DefaultConfig()
	cfg.RefreshGrace = -1
	h := newHarness(t, cfg)
	s0 := h.signIn(t, testPhone(513))
	if _, err := h.svc.Refresh(ctx, s0.RefreshToken); err != nil {
		t.Fatal(err)
	}
	_, err := h.svc.Refresh(ctx, s0.RefreshToken)
	wantCode(t, err, wire.CodeUnauthorized)
	if len(h.revoked.list()) != 1 {
		t.Fatal("without a grace, an immediate replay did not revoke")
	}
}
