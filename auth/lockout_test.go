package auth

import (
	"fmt"
	"testing"
	"time"

	"github.com/tern-im/tern/wire"
)

const (
	ownerIP    = "192.0.2.10"
	attackerIP = "198.51.100.66"
)

// TestOneAddressCannotUseUpPhoneCodes: an attacker asking for codes for
// someone else's phone from one address, as fast as the resend wait allows
// for a whole hour, leaves the owner able to get a code and sign in.
func TestOneAddressCannotUseUpPhoneCodes(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(300)
	sent := 0
	for i := 0; i < 59; i++ {
		if _, err := h.svc.RequestCode(ctx, phone, attackerIP); err == nil {
			sent++
		} else {
			wantCode(t, err, wire.CodeRateLimited)
		}
		h.clock.Advance(time.Minute)
	}
	if sent > 3 {
		t.Errorf("one address got %d codes for a phone in an hour, want at most 3", sent)
	}
	if _, err := h.svc.RequestCode(ctx, phone, ownerIP); err != nil {
		t.Fatalf("the owner, after an hour of requests from one other address: %v", err)
	}
	if _, err := h.svc.Verify(ctx, verifyRequest(phone, h.sms.lastCode(t, phone), "phone", "ios"), ownerIP); err != nil {
		t.Fatalf("the owner's code: %v", err)
	}
}

// TestOneAddressCannotBurnOwnersCode: wrong guesses from one address do not
// use up the tries of the owner's code.
func TestOneAddressCannotBurnOwnersCode(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(301)
	if _, err := h.svc.RequestCode(ctx, phone, ownerIP); err != nil {
		t.Fatal(err)
	}
	code := h.sms.lastCode(t, phone)
	for i := 0; i < 30; i++ {
		_, err := h.svc.Verify(ctx, verifyRequest(phone, wrongCode(code), "", ""), attackerIP)
		wantCode(t, err, wire.CodeInvalidCode)
	}
	// The attacker's tries past its share were refused before the store
	// counted them.
	if rec, err := h.st.Code(ctx, phone); err != nil || rec.Attempts != 5 {
		t.Errorf("stored attempts = %d (%v), want 5: one address's share", rec.Attempts, err)
	}
	// And its own right guess is refused now too.
	_, err := h.svc.Verify(ctx, verifyRequest(phone, code, "", ""), attackerIP)
	wantCode(t, err, wire.CodeInvalidCode)
	if _, err := h.svc.Verify(ctx, verifyRequest(phone, code, "phone", "ios"), ownerIP); err != nil {
		t.Fatalf("the owner's code after 30 wrong guesses from another address: %v", err)
	}
}

// TestManyAddressesStayWithinTotals: however many addresses guess, a code
// survives MaxAttemptsTotal tries, so guessing stays bounded.
func TestManyAddressesStayWithinTotals(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(302)
	if _, err := h.svc.RequestCode(ctx, phone, ownerIP); err != nil {
		t.Fatal(err)
	}
	code := h.sms.lastCode(t, phone)
	for ip := 0; ip < 10; ip++ {
		for i := 0; i < 5; i++ {
			_, err := h.svc.Verify(ctx, verifyRequest(phone, wrongCode(code), "", ""), fmt.Sprintf("203.0.113.%d", ip))
			wantCode(t, err, wire.CodeInvalidCode)
		}
	}
	if rec, err := h.st.Code(ctx, phone); err != nil || rec.Attempts != 20 {
		t.Errorf("stored attempts = %d (%v), want the total of 20", rec.Attempts, err)
	}
	// The code is burnt, for the owner too: that is what many addresses
	// can still do.
	_, err := h.svc.Verify(ctx, verifyRequest(phone, code, "", ""), ownerIP)
	wantCode(t, err, wire.CodeInvalidCode)
}

// TestTriesTotalHoldsAcrossNodes: the per-address share is counted per
// node, so one address spread over nodes gets more than its share, but the
// code's total in the store holds across them.
func TestTriesTotalHoldsAcrossNodes(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	nodes := []*Service{h.svc}
	for i := 0; i < 5; i++ {
		nodes = append(nodes, h.newService(t, h.st, DefaultConfig()))
	}
	phone := testPhone(303)
	if _, err := h.svc.RequestCode(ctx, phone, ownerIP); err != nil {
		t.Fatal(err)
	}
	code := h.sms.lastCode(t, phone)
	for i := 0; i < 5*len(nodes); i++ {
		_, err := nodes[i%len(nodes)].Verify(ctx, verifyRequest(phone, wrongCode(code), "", ""), attackerIP)
		wantCode(t, err, wire.CodeInvalidCode)
	}
	if rec, err := h.st.Code(ctx, phone); err != nil || rec.Attempts != 20 {
		t.Errorf("stored attempts = %d (%v), want the total of 20", rec.Attempts, err)
	}
}

// TestPhoneCodesPerHourAndDay: requests from ever new addresses, every
// minute for two days, get at most CodesPerPhonePerHour codes in any hour
// and CodesPerPhonePerDay in any 24 hours, and still one now and then.
func TestPhoneCodesPerHourAndDay(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(304)
	start := h.clock.Now()
	var sent []time.Time
	for i := 0; i < 48*60; i++ {
		_, err := h.svc.RequestCode(ctx, phone, fmt.Sprintf("10.0.%d.%d", i/250, i%250))
		if err == nil {
			sent = append(sent, h.clock.Now())
		} else {
			wantCode(t, err, wire.CodeRateLimited)
		}
		h.clock.Advance(time.Minute)
	}
	most := func(window time.Duration) int {
		n := 0
		for i := range sent {
			j := i
			for j < len(sent) && sent[j].Sub(sent[i]) < window {
				j++
			}
			n = max(n, j-i)
		}
		return n
	}
	if n := most(time.Hour); n != 10 {
		t.Errorf("at most %d codes in an hour, want 10", n)
	}
	if n := most(24 * time.Hour); n > 30 || n < 28 {
		t.Errorf("at most %d codes in 24 hours, want 28..30", n)
	}
	if last := sent[len(sent)-1]; h.clock.Now().Sub(last) > 73*time.Minute {
		t.Errorf("last code at %v of 48h: the phone stopped getting codes", last.Sub(start))
	}
}

// TestSignInClearsAddressShare: an owner who signs in several devices from
// one address is not held to the per-address share of codes.
func TestSignInClearsAddressShare(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ResendAfter = time.Second
	h := newHarness(t, cfg)
	phone := testPhone(305)
	for i := 0; i < 8; i++ {
		if _, err := h.svc.RequestCode(ctx, phone, ownerIP); err != nil {
			t.Fatalf("sign-in %d: %v", i+1, err)
		}
		if _, err := h.svc.Verify(ctx, verifyRequest(phone, h.sms.lastCode(t, phone), "", ""), ownerIP); err != nil {
			t.Fatalf("sign-in %d: %v", i+1, err)
		}
		h.clock.Advance(time.Second)
	}
}

// TestRefusedByAddressSpendsNothing: a request refused for the address's
// share leaves the phone's own count and the address's total alone.
func TestRefusedByAddressSpendsNothing(t *testing.T) {
	cfg := DefaultConfig()
	cfg.ResendAfter = time.Second
	h := newHarness(t, cfg)
	phone := testPhone(306)
	for i := 0; i < 3; i++ {
		if _, err := h.svc.RequestCode(ctx, phone, attackerIP); err != nil {
			t.Fatal(err)
		}
		h.clock.Advance(time.Second)
	}
	for i := 0; i < 10; i++ {
		_, err := h.svc.RequestCode(ctx, phone, attackerIP)
		if we := wantCode(t, err, wire.CodeRateLimited); we.RetryAfter < 3580 {
			t.Fatalf("retry_after = %d, want the rest of the hour", we.RetryAfter)
		}
		h.clock.Advance(time.Second)
	}
	if rec, err := h.st.Code(ctx, phone); err != nil || rec.WindowCount != 3 {
		t.Errorf("phone count = %d (%v), want 3", rec.WindowCount, err)
	}
	// The address's total over all phones (30) has 27 left.
	for i := 0; i < 27; i++ {
		if _, err := h.svc.RequestCode(ctx, testPhone(400+i), attackerIP); err != nil {
			t.Fatalf("other phone %d: %v", i, err)
		}
	}
}

func TestLimitConfig(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	svc := h.newService(t, h.st, Config{MaxAttempts: 30, CodesPerPhonePerHour: 50})
	if svc.cfg.MaxAttemptsTotal != 30 || svc.cfg.CodesPerPhonePerDay != 100 || svc.cfg.CodesPerPhonePerIPPerHour != 3 {
		t.Errorf("defaults from older fields: %+v", svc.cfg)
	}
	if d := svc.cfg.codeRefill(); d != time.Hour {
		t.Errorf("refill = %v, want 1h (never more than one extra code an hour)", d)
	}
	if d := DefaultConfig().codeRefill(); d != 72*time.Minute {
		t.Errorf("default refill = %v, want 72m", d)
	}
	for _, cfg := range []Config{
		{CodesPerPhonePerHour: 10, CodesPerPhonePerDay: 10},
		{CodesPerPhonePerDay: -1},
		{CodesPerPhonePerIPPerHour: -1},
	} {
		if _, err := New(ctx, h.st, h.sms, cfg, Options{}); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
}
