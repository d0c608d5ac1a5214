package auth

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
	"github.com/tern-im/tern/wire"
)

var ctx = context.Background()

func TestSignInCreatesUserThenAnotherDevice(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	const phone = "+1 (202) 555-0143"
	const e164 = "+12025550143"

	res, err := h.svc.RequestCode(ctx, phone, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if res.ExpiresIn != 300 || res.RetryAfter != 60 {
		t.Errorf("CodeResponse = %+v, want expires_in 300, retry_after 60", res)
	}
	if n := h.sms.count(); n != 1 {
		t.Fatalf("%d SMS sent, want 1", n)
	}
	if want := "Your Tern code is " + h.sms.lastCode(t, e164) + ". It expires in 5 minutes."; h.sms.msgs[0].text != want {
		t.Errorf("SMS text = %q, want %q", h.sms.msgs[0].text, want)
	}
	rec, err := h.st.Code(ctx, e164)
	if err != nil {
		t.Fatalf("stored code: %v", err)
	}
	code := h.sms.lastCode(t, e164)
	if strings.Contains(string(rec.Hash), code) || len(rec.Hash) != 4+32 {
		t.Errorf("stored code hash %x looks like it holds the code", rec.Hash)
	}

	s1, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: code, DeviceName: "Pixel", Platform: "Android"}, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if !strings.HasPrefix(s1.UserID, store.PrefixUser) || !strings.HasPrefix(s1.DeviceID, store.PrefixDevice) {
		t.Errorf("ids %q %q lack their prefixes", s1.UserID, s1.DeviceID)
	}
	if s1.AccessToken == "" || s1.RefreshToken == "" || s1.ExpiresIn != 900 {
		t.Errorf("session = %+v", s1)
	}
	u, err := h.st.UserByPhone(ctx, e164)
	if err != nil || u.ID != s1.UserID {
		t.Fatalf("user by phone = %+v, %v; want id %s", u, err, s1.UserID)
	}
	d, err := h.st.Device(ctx, s1.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if d.UserID != s1.UserID || d.Name != "Pixel" || d.Platform != PlatformAndroid {
		t.Errorf("device = %+v", d)
	}
	if _, err := h.st.Code(ctx, e164); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("code still stored after verify: %v", err)
	}
	c, err := h.svc.Authenticate(ctx, s1.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	if c.UserID != s1.UserID || c.DeviceID != s1.DeviceID || !c.Expires.Equal(h.clock.Now().Add(15*time.Minute)) {
		t.Errorf("claims = %+v", c)
	}

	// The same code again: single-use.
	_, err = h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: code}, "192.0.2.1")
	wantCode(t, err, wire.CodeInvalidCode)

	s2 := h.signIn(t, e164)
	if s2.UserID != s1.UserID {
		t.Errorf("second sign-in made user %s, want the same user %s", s2.UserID, s1.UserID)
	}
	if s2.DeviceID == s1.DeviceID {
		t.Errorf("second sign-in reused device %s", s1.DeviceID)
	}
	devs, err := h.st.UserDevices(ctx, s1.UserID)
	if err != nil || len(devs) != 2 {
		t.Fatalf("user has %d devices (%v), want 2", len(devs), err)
	}
	for _, s := range []wire.Session{s1, s2} {
		if _, err := h.svc.Authenticate(ctx, s.AccessToken); err != nil {
			t.Errorf("device %s: %v", s.DeviceID, err)
		}
	}
}

func TestDeviceFields(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(1)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	code := h.sms.lastCode(t, phone)
	for _, tc := range []struct{ name, platform string }{
		{strings.Repeat("x", 65), "web"},
		{"tab\tname", "web"},
		{"ok", "windows-phone"},
	} {
		_, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: code, DeviceName: tc.name, Platform: tc.platform}, "192.0.2.1")
		wantCode(t, err, wire.CodeBadRequest)
	}
	for _, req := range []wire.VerifyRequest{{Code: code}, {Phone: phone}} {
		_, err := h.svc.Verify(ctx, req, "192.0.2.1")
		wantCode(t, err, wire.CodeBadRequest)
	}
	// Refused requests did not use up the code's tries.
	s, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: code, DeviceName: strings.Repeat("é", 64)}, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	d, err := h.st.Device(ctx, s.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if d.Name != strings.Repeat("é", 64) || d.Platform != PlatformOther {
		t.Errorf("device = %q %q, want 64 é and platform other", d.Name, d.Platform)
	}

	s = h.signIn(t, phone)
	if err := h.svc.Revoke(ctx, s.UserID, s.DeviceID); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	s, err = h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: h.sms.lastCode(t, phone), Platform: " iOS "}, "192.0.2.1")
	if err != nil {
		t.Fatal(err)
	}
	if d, _ := h.st.Device(ctx, s.DeviceID); d.Name != "device" || d.Platform != PlatformIOS {
		t.Errorf("defaults: device = %q %q, want device / ios", d.Name, d.Platform)
	}
}

func TestWrongCodesBurnTheCode(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(2)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	code := h.sms.lastCode(t, phone)
	for i := 0; i < 5; i++ {
		_, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: wrongCode(code)}, "192.0.2.1")
		wantCode(t, err, wire.CodeInvalidCode)
	}
	_, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: code}, "192.0.2.1")
	wantCode(t, err, wire.CodeInvalidCode)
	if _, err := h.st.UserByPhone(ctx, phone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a user exists after a burnt code: %v", err)
	}

	// A new code (after the resend wait) works again.
	h.clock.Advance(time.Minute)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if _, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: h.sms.lastCode(t, phone)}, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
}

func TestLastAllowedTrySucceeds(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(3)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	code := h.sms.lastCode(t, phone)
	// Malformed codes count as tries too.
	for _, bad := range []string{wrongCode(code), "12345", "abcdef", "1234567"} {
		_, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: bad}, "192.0.2.1")
		wantCode(t, err, wire.CodeInvalidCode)
	}
	if _, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: " " + code + " "}, "192.0.2.1"); err != nil {
		t.Fatalf("fifth try with the right code: %v", err)
	}
}

func TestNoPendingCode(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	_, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: testPhone(4), Code: "123456"}, "192.0.2.1")
	wantCode(t, err, wire.CodeInvalidCode)
}

func TestExpiredCode(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(5)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	code := h.sms.lastCode(t, phone)
	h.clock.Advance(5 * time.Minute)
	_, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: code}, "192.0.2.1")
	wantCode(t, err, wire.CodeCodeExpired)
}

func TestResendWait(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(6)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	_, err := h.svc.RequestCode(ctx, phone, "192.0.2.1")
	if we := wantCode(t, err, wire.CodeRateLimited); we.RetryAfter != 60 {
		t.Errorf("retry_after = %d, want 60", we.RetryAfter)
	}
	h.clock.Advance(30*time.Second + 500*time.Millisecond)
	_, err = h.svc.RequestCode(ctx, phone, "192.0.2.2")
	if we := wantCode(t, err, wire.CodeRateLimited); we.RetryAfter != 30 {
		t.Errorf("retry_after = %d, want 30 (29.5 s rounded up)", we.RetryAfter)
	}
	if n := h.sms.count(); n != 1 {
		t.Fatalf("%d SMS sent, want 1", n)
	}
	first := h.sms.lastCode(t, phone)
	h.clock.Advance(30 * time.Second)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatalf("after the wait: %v", err)
	}
	// The new code replaces the old one.
	second := h.sms.lastCode(t, phone)
	if first != second {
		_, err = h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: first}, "192.0.2.1")
		wantCode(t, err, wire.CodeInvalidCode)
	}
	if _, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: second}, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
}

func TestVerifyClearsResendWait(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(7)
	h.signIn(t, phone)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatalf("right after a successful verify: %v", err)
	}
}

func TestPhoneHourlyCap(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CodesPerPhonePerHour = 5 // the default before the day limit; refill then hourly
	h := newHarness(t, cfg)
	phone := testPhone(8)
	for i := 0; i < 5; i++ {
		if _, err := h.svc.RequestCode(ctx, phone, fmt.Sprintf("192.0.2.%d", i)); err != nil {
			t.Fatalf("code %d: %v", i+1, err)
		}
		h.clock.Advance(time.Minute)
	}
	// 5 minutes into the window: 55 minutes to go.
	_, err := h.svc.RequestCode(ctx, phone, "198.51.100.1")
	if we := wantCode(t, err, wire.CodeRateLimited); we.RetryAfter != 55*60 {
		t.Errorf("retry_after = %d, want %d", we.RetryAfter, 55*60)
	}
	h.clock.Advance(55*time.Minute - time.Second)
	_, err = h.svc.RequestCode(ctx, phone, "198.51.100.1")
	wantCode(t, err, wire.CodeRateLimited)
	h.clock.Advance(time.Second)
	if _, err := h.svc.RequestCode(ctx, phone, "198.51.100.1"); err != nil {
		t.Fatalf("in the next hour: %v", err)
	}
	// Another phone was never limited.
	if _, err := h.svc.RequestCode(ctx, testPhone(9), "198.51.100.1"); err != nil {
		t.Fatal(err)
	}
}

func TestIPLimits(t *testing.T) {
	cfg := DefaultConfig()
	cfg.CodesPerIPPerHour = 3
	cfg.VerifiesPerIPPerHour = 2
	h := newHarness(t, cfg)
	const ip = "203.0.113.7"
	for i := 0; i < 3; i++ {
		if _, err := h.svc.RequestCode(ctx, testPhone(10+i), ip); err != nil {
			t.Fatal(err)
		}
	}
	h.clock.Advance(10 * time.Minute)
	_, err := h.svc.RequestCode(ctx, testPhone(20), ip)
	if we := wantCode(t, err, wire.CodeRateLimited); we.RetryAfter != 50*60 {
		t.Errorf("retry_after = %d, want %d", we.RetryAfter, 50*60)
	}
	if _, err := h.svc.RequestCode(ctx, testPhone(20), "203.0.113.8"); err != nil {
		t.Fatalf("another address: %v", err)
	}
	// A refusal for the phone does not use up the address.
	_, err = h.svc.RequestCode(ctx, testPhone(20), "203.0.113.9")
	wantCode(t, err, wire.CodeRateLimited)
	for i := 0; i < 3; i++ {
		if _, err := h.svc.RequestCode(ctx, testPhone(30+i), "203.0.113.9"); err != nil {
			t.Fatalf("code %d from .9: %v", i+1, err)
		}
	}

	code := h.sms.lastCode(t, testPhone(20))
	for i := 0; i < 2; i++ {
		_, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: testPhone(20), Code: wrongCode(code)}, ip)
		wantCode(t, err, wire.CodeInvalidCode)
	}
	_, err = h.svc.Verify(ctx, wire.VerifyRequest{Phone: testPhone(20), Code: code}, ip)
	wantCode(t, err, wire.CodeRateLimited)
	if _, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: testPhone(20), Code: code}, "2001:db8::1"); err != nil {
		t.Fatalf("verify from another address: %v", err)
	}

	h.clock.Advance(50 * time.Minute)
	if _, err := h.svc.RequestCode(ctx, testPhone(21), ip); err != nil {
		t.Fatalf("in the next hour: %v", err)
	}
}

func TestUnlimitedIP(t *testing.T) {
	h := newHarness(t, Config{}) // zero per-IP limits: unlimited
	for i := 0; i < 50; i++ {
		if _, err := h.svc.RequestCode(ctx, testPhone(100+i), "192.0.2.1"); err != nil {
			t.Fatalf("code %d: %v", i, err)
		}
	}
}

func TestSendFailureDoesNotCount(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(40)
	h.sms.setFail(errors.New("gateway down"))
	for i := 0; i < 7; i++ {
		_, err := h.svc.RequestCode(ctx, phone, "192.0.2.1")
		wantCode(t, err, wire.CodeUnavailable)
	}
	if _, err := h.st.Code(ctx, phone); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("a code is stored although none was sent: %v", err)
	}
	h.sms.setFail(nil)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatalf("after the gateway recovered: %v", err)
	}
	rec, err := h.st.Code(ctx, phone)
	if err != nil || rec.WindowCount != 1 {
		t.Errorf("window count = %d (%v), want 1", rec.WindowCount, err)
	}

	// A failure after a sent code leaves that code in force.
	code := h.sms.lastCode(t, phone)
	h.clock.Advance(time.Minute)
	h.sms.setFail(errors.New("gateway down"))
	_, err = h.svc.RequestCode(ctx, phone, "192.0.2.1")
	wantCode(t, err, wire.CodeUnavailable)
	h.sms.setFail(nil)
	if _, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: code}, "192.0.2.1"); err != nil {
		t.Fatalf("the earlier code after a failed resend: %v", err)
	}
}

func TestInvalidPhones(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	for _, p := range []string{
		"+1202555FLOW", "+1 800 FLOWERS", "phone", "+44 7911 12345a",
		"+1", "+12", "+1202", "+",
		"12025550143", "0044 7911 123456", "(202) 555-0143",
		"+999 1234567", "+1 202 555 0143 0143 0143", "++12025550143", "+1+2025550143",
		"+1202\n5550143", strings.Repeat("1", 100), "+" + strings.Repeat("1", 60),
	} {
		_, err := h.svc.RequestCode(ctx, p, "192.0.2.1")
		wantCode(t, err, wire.CodeInvalidPhone)
		_, err = h.svc.Verify(ctx, wire.VerifyRequest{Phone: p, Code: "123456"}, "192.0.2.1")
		wantCode(t, err, wire.CodeInvalidPhone)
	}
	_, err := h.svc.RequestCode(ctx, " ", "192.0.2.1")
	wantCode(t, err, wire.CodeBadRequest)
}

func TestNormalizePhone(t *testing.T) {
	for in, want := range map[string]string{
		"+12025550143":        "+12025550143",
		" +1 (202) 555-0143 ": "+12025550143",
		"+44 7911 123456":     "+447911123456",
		"+44 (0)7911 123456":  "+447911123456",
		"+49 151 1234 5678":   "+4915112345678",
		"+33.6.12.34.56.78":   "+33612345678",
	} {
		got, err := NormalizePhone(in)
		if err != nil || got != want {
			t.Errorf("NormalizePhone(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	for i := 0; i < 1000; i += 97 {
		if got, err := NormalizePhone(testPhone(i)); err != nil || got != testPhone(i) {
			t.Fatalf("test phone %s: %q %v", testPhone(i), got, err)
		}
	}
}

func TestAccessTokens(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	s := h.signIn(t, testPhone(50))
	other := h.signIn(t, testPhone(51))

	tok := s.AccessToken
	parts := strings.Split(tok, ".")
	if len(parts) != 4 || parts[0] != "v2" || parts[1] != "1" {
		t.Fatalf("token %q is not v2.1.payload.mac", tok)
	}
	flip := func(s string, i int) string {
		b := []byte(s)
		if b[i] == 'A' {
			b[i] = 'B'
		} else {
			b[i] = 'A'
		}
		return string(b)
	}
	otherParts := strings.Split(other.AccessToken, ".")
	otherServer := &ringKey{id: 1, access: []byte("another server's key, 32 bytes..")}
	otherKey := signAccessToken(otherServer, Claims{UserID: s.UserID, DeviceID: s.DeviceID, Expires: h.clock.Now().Add(time.Hour)})
	forged := signAccessToken(h.svc.keys(ctx).newest(), Claims{UserID: other.UserID, DeviceID: s.DeviceID, Expires: h.clock.Now().Add(time.Hour)})
	for name, bad := range map[string]string{
		"empty":                "",
		"payload bit":          flip(tok, len("v2.1.")+3),
		"mac bit":              flip(tok, len(tok)-3),
		"no version":           strings.TrimPrefix(tok, "v2."),
		"v1 spelling":          "v1." + parts[2] + "." + parts[3],
		"v3":                   "v3." + parts[1] + "." + parts[2] + "." + parts[3],
		"key id 01":            "v2.01." + parts[2] + "." + parts[3],
		"key id 2":             "v2.2." + parts[2] + "." + parts[3],
		"key id 0":             "v2.0." + parts[2] + "." + parts[3],
		"key id huge":          "v2.99999999999." + parts[2] + "." + parts[3],
		"no key id":            "v2.." + parts[2] + "." + parts[3],
		"spliced payload":      "v2.1." + otherParts[2] + "." + parts[3],
		"extra part":           tok + ".x",
		"short mac":            "v2.1." + parts[2] + "." + parts[3][:20],
		"padded mac":           tok + "=",
		"other key":            otherKey,
		"device of other user": forged,
		"refresh token":        s.RefreshToken,
	} {
		_, err := h.svc.Authenticate(ctx, bad)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeUnauthorized {
			t.Errorf("%s: Authenticate = %v, want unauthorized", name, err)
		}
	}

	h.clock.Advance(15*time.Minute - time.Second)
	if _, err := h.svc.Authenticate(ctx, tok); err != nil {
		t.Fatalf("a second before expiry: %v", err)
	}
	h.clock.Advance(time.Second)
	_, err := h.svc.Authenticate(ctx, tok)
	wantCode(t, err, wire.CodeUnauthorized)
}

func TestKeysSurviveRestart(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	phone := testPhone(52)
	s := h.signIn(t, phone)
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	// A second Service on the same store is another node, or a restart.
	svc2 := h.newService(t, h.st, DefaultConfig())
	if _, err := svc2.Authenticate(ctx, s.AccessToken); err != nil {
		t.Fatalf("token from the first service: %v", err)
	}
	if _, err := svc2.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: h.sms.lastCode(t, phone)}, "192.0.2.1"); err != nil {
		t.Fatalf("code from the first service: %v", err)
	}
}

func TestRevoke(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	a := h.signIn(t, testPhone(60))
	b := h.signIn(t, testPhone(61))

	wantCode(t, h.svc.Revoke(ctx, a.UserID, b.DeviceID), wire.CodeNotFound)
	wantCode(t, h.svc.Revoke(ctx, a.UserID, "dnosuchdevice"), wire.CodeNotFound)
	if _, err := h.svc.Authenticate(ctx, b.AccessToken); err != nil {
		t.Fatalf("b after a failed revoke by a: %v", err)
	}
	if len(h.revoked.list()) != 0 {
		t.Fatalf("OnRevoke called for refused revokes: %v", h.revoked.list())
	}

	if err := h.svc.Revoke(ctx, a.UserID, a.DeviceID); err != nil {
		t.Fatal(err)
	}
	if got := h.revoked.list(); len(got) != 1 || got[0] != a.UserID+"/"+a.DeviceID {
		t.Errorf("OnRevoke calls = %v", got)
	}
	_, err := h.svc.Authenticate(ctx, a.AccessToken)
	wantCode(t, err, wire.CodeUnauthorized)
	_, err = h.svc.Refresh(ctx, a.RefreshToken)
	wantCode(t, err, wire.CodeUnauthorized)
	wantCode(t, h.svc.Revoke(ctx, a.UserID, a.DeviceID), wire.CodeNotFound)
	if len(h.revoked.list()) != 1 {
		t.Errorf("OnRevoke called again: %v", h.revoked.list())
	}
}

func TestRefreshRotationAndReuse(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	s0 := h.signIn(t, testPhone(70))
	bystander := h.signIn(t, testPhone(70))

	h.clock.Advance(20 * time.Minute) // the access token has expired
	_, err := h.svc.Authenticate(ctx, s0.AccessToken)
	wantCode(t, err, wire.CodeUnauthorized)

	s1, err := h.svc.Refresh(ctx, s0.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}
	if s1.UserID != s0.UserID || s1.DeviceID != s0.DeviceID || s1.ExpiresIn != 900 {
		t.Errorf("refreshed session = %+v", s1)
	}
	if s1.RefreshToken == s0.RefreshToken || s1.AccessToken == s0.AccessToken {
		t.Fatal("refresh did not issue new tokens")
	}
	d, err := h.st.Device(ctx, s0.DeviceID)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Contains(string(d.RefreshHash), strings.SplitN(s1.RefreshToken, ".", 2)[1]) {
		t.Error("refresh secret stored in clear")
	}
	if _, err := h.svc.Authenticate(ctx, s1.AccessToken); err != nil {
		t.Fatal(err)
	}
	s2, err := h.svc.Refresh(ctx, s1.RefreshToken)
	if err != nil {
		t.Fatal(err)
	}

	// s1's refresh token is now the previous one: presenting it again,
	// after the grace for retries, is reuse, and the device goes.
	h.clock.Advance(30 * time.Second)
	_, err = h.svc.Refresh(ctx, s1.RefreshToken)
	wantCode(t, err, wire.CodeUnauthorized)
	if _, err := h.st.Device(ctx, s0.DeviceID); !errors.Is(err, store.ErrNotFound) {
		t.Errorf("device survived refresh token reuse: %v", err)
	}
	if got := h.revoked.list(); len(got) != 1 || got[0] != s0.UserID+"/"+s0.DeviceID {
		t.Errorf("OnRevoke calls = %v", got)
	}
	_, err = h.svc.Authenticate(ctx, s2.AccessToken)
	wantCode(t, err, wire.CodeUnauthorized)
	_, err = h.svc.Refresh(ctx, s2.RefreshToken)
	wantCode(t, err, wire.CodeUnauthorized)
	// Only that device.
	if _, err := h.svc.Refresh(ctx, bystander.RefreshToken); err != nil {
		t.Errorf("the user's other device: %v", err)
	}
}

func TestRefreshRejects(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	s := h.signIn(t, testPhone(80))
	dev, secret, _ := strings.Cut(s.RefreshToken, ".")
	for name, bad := range map[string]string{
		"unknown device": "dzzzzzzzzzzzzzzzzzzzzzzzzzz." + secret,
		"unknown secret": dev + "." + strings.Repeat("A", len(secret)),
		"short secret":   dev + "." + secret[:10],
		"no device":      "." + secret,
		"no dot":         dev + secret,
		"access token":   s.AccessToken,
		"garbage":        "\x00\xff..",
	} {
		_, err := h.svc.Refresh(ctx, bad)
		var we *wire.Error
		if !errors.As(err, &we) || we.Code != wire.CodeUnauthorized {
			t.Errorf("%s: Refresh = %v, want unauthorized", name, err)
		}
	}
	_, err := h.svc.Refresh(ctx, "")
	wantCode(t, err, wire.CodeBadRequest)
	if len(h.revoked.list()) != 0 {
		t.Fatalf("a wrong token revoked a device: %v", h.revoked.list())
	}

	h.clock.Advance(60 * 24 * time.Hour)
	_, err = h.svc.Refresh(ctx, s.RefreshToken)
	wantCode(t, err, wire.CodeUnauthorized)
}

func TestConcurrentVerifyYieldsOneSession(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	for round := 0; round < 20; round++ {
		phone := testPhone(200 + round)
		if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
			t.Fatal(err)
		}
		code := h.sms.lastCode(t, phone)
		const n = 4
		var wg sync.WaitGroup
		errs := make([]error, n)
		sessions := make([]wire.Session, n)
		start := make(chan struct{})
		for i := 0; i < n; i++ {
			wg.Go(func() {
				<-start
				sessions[i], errs[i] = h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: code}, "192.0.2.1")
			})
		}
		close(start)
		wg.Wait()
		ok := 0
		for i, err := range errs {
			if err == nil {
				ok++
				continue
			}
			wantCode(t, err, wire.CodeInvalidCode)
			_ = sessions[i]
		}
		if ok != 1 {
			t.Fatalf("round %d: %d concurrent verifies of one code succeeded, want 1", round, ok)
		}
		u, err := h.st.UserByPhone(ctx, phone)
		if err != nil {
			t.Fatal(err)
		}
		if devs, err := h.st.UserDevices(ctx, u.ID); err != nil || len(devs) != 1 {
			t.Fatalf("round %d: %d devices (%v), want 1", round, len(devs), err)
		}
	}
}

// failing wraps the real store and fails chosen calls, to check that
// internal errors keep their cause and are not dressed up as client errors.
type failing struct {
	*embedded.Store
	err error
}

func (f failing) Code(ctx context.Context, phone string) (store.Code, error) {
	return store.Code{}, f.err
}

func (f failing) Device(ctx context.Context, id string) (store.Device, error) {
	return store.Device{}, f.err
}

func TestStoreErrorsAreWrapped(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	s := h.signIn(t, testPhone(90))
	boom := errors.New("disk on fire")
	svc := h.newService(t, failing{h.st, boom}, DefaultConfig())
	_, err := svc.RequestCode(ctx, testPhone(91), "192.0.2.1")
	if !errors.Is(err, boom) || errors.As(err, new(*wire.Error)) {
		t.Errorf("RequestCode = %v, want the store error wrapped", err)
	}
	_, err = svc.Verify(ctx, wire.VerifyRequest{Phone: testPhone(91), Code: "123456"}, "192.0.2.1")
	if !errors.Is(err, boom) {
		t.Errorf("Verify = %v, want the store error wrapped", err)
	}
	_, err = svc.Authenticate(ctx, s.AccessToken)
	if !errors.Is(err, boom) {
		t.Errorf("Authenticate = %v, want the store error wrapped", err)
	}
	_, err = svc.Refresh(ctx, s.RefreshToken)
	if !errors.Is(err, boom) {
		t.Errorf("Refresh = %v, want the store error wrapped", err)
	}
}

func TestConfig(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	for _, cfg := range []Config{{CodeTTL: -time.Second}, {MaxAttempts: -1}, {CodesPerIPPerHour: -1}, {ResendAfter: -1}} {
		if _, err := New(ctx, h.st, h.sms, cfg, Options{}); err == nil {
			t.Errorf("New accepted %+v", cfg)
		}
	}
	cfg := DefaultConfig()
	cfg.CodeTTL = 90 * time.Second
	svc := h.newService(t, h.st, cfg)
	if _, err := svc.RequestCode(ctx, testPhone(95), "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	if text := h.sms.msgs[len(h.sms.msgs)-1].text; !strings.HasSuffix(text, "It expires in 2 minutes.") {
		t.Errorf("SMS text %q", text)
	}
}

func TestNewCode(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 2000; i++ {
		c := newCode()
		if !validCodeFormat(c) {
			t.Fatalf("newCode() = %q", c)
		}
		seen[c] = true
	}
	// 2000 draws from 10^6 collide a few times at most; many repeats would
	// mean a broken source.
	if len(seen) < 1990 {
		t.Errorf("only %d distinct codes in 2000 draws", len(seen))
	}
}
