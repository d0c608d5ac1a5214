package admin_test

import (
	"bytes"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/admin"
)

func TestPassword(t *testing.T) {
	h, err := admin.HashPassword("correct horse battery")
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(h, []byte("$argon2id$v=19$m=65536,t=3,p=2$")) {
		t.Fatalf("hash %q is not PHC argon2id with the chosen parameters", h)
	}
	if ok, err := admin.CheckPassword(h, "correct horse battery"); !ok || err != nil {
		t.Fatalf("right password: %v %v", ok, err)
	}
	if ok, err := admin.CheckPassword(h, "correct horse batterY"); ok || err != nil {
		t.Fatalf("wrong password: %v %v", ok, err)
	}
	again, _ := admin.HashPassword("correct horse battery")
	if bytes.Equal(again, h) {
		t.Error("two hashes of one password are equal: no salt")
	}
	for _, pw := range []string{"", "short", strings.Repeat("x", admin.MaxPasswordLen+1)} {
		if _, err := admin.HashPassword(pw); err == nil {
			t.Errorf("HashPassword accepted a %d-byte password", len(pw))
		}
	}
	// A tampered store: malformed, or parameters that would make a check
	// allocate gigabytes or run for minutes.
	parts := strings.Split(string(h), "$")
	for name, bad := range map[string]string{
		"empty":      "",
		"bcrypt":     "$2a$10$abcdefghijklmnopqrstuu",
		"argon2i":    strings.Replace(string(h), "argon2id", "argon2i", 1),
		"huge m":     strings.Replace(string(h), "m=65536", "m=16777216", 1),
		"huge t":     strings.Replace(string(h), "t=3", "t=1000", 1),
		"no salt":    "$" + strings.Join([]string{parts[1], parts[2], parts[3], "", parts[5]}, "$"),
		"bad base64": "$" + strings.Join([]string{parts[1], parts[2], parts[3], parts[4], "!!!"}, "$"),
	} {
		if ok, err := admin.CheckPassword([]byte(bad), "correct horse battery"); ok || err == nil {
			t.Errorf("%s: %v %v, want an error", name, ok, err)
		}
	}
}

// TestTOTP uses RFC 6238's SHA-1 test vectors (appendix B), cut to the six
// digits authenticator apps show.
func TestTOTP(t *testing.T) {
	secret := []byte("12345678901234567890")
	for _, v := range []struct {
		unix int64
		code string
	}{{59, "287082"}, {1111111109, "081804"}, {1111111111, "050471"}, {1234567890, "005924"}, {2000000000, "279037"}, {20000000000, "353130"}} {
		step, ok := admin.CheckTOTP(secret, v.code, time.Unix(v.unix, 0))
		if !ok || step != v.unix/30 {
			t.Errorf("at %d, %s: ok %v step %d", v.unix, v.code, ok, step)
		}
	}
	now := time.Unix(1111111109, 0)
	if _, ok := admin.CheckTOTP(secret, "081804", now.Add(30*time.Second)); !ok {
		t.Error("the previous step's code is refused")
	}
	if _, ok := admin.CheckTOTP(secret, "081804", now.Add(95*time.Second)); ok {
		t.Error("a code three steps old is accepted")
	}
	for _, bad := range []string{"", "08180", "0818040", "abcdef"} {
		if _, ok := admin.CheckTOTP(secret, bad, now); ok {
			t.Errorf("code %q accepted", bad)
		}
	}
	s, err := admin.NewTOTPSecret()
	if err != nil || len(s) != 20 {
		t.Fatalf("secret: %d bytes, %v", len(s), err)
	}
	uri := admin.TOTPURI(s, "Tern", "ops@example")
	if !strings.HasPrefix(uri, "otpauth://totp/Tern:ops@example?") || !strings.Contains(uri, "secret="+admin.TOTPSecretText(s)) {
		t.Errorf("uri %q", uri)
	}
}

func TestTokens(t *testing.T) {
	a, err := admin.NewToken()
	if err != nil {
		t.Fatal(err)
	}
	b, _ := admin.NewToken()
	if a == b || len(a) != 43 {
		t.Fatalf("tokens %q %q", a, b)
	}
	if d := admin.Digest(a); d == a || len(d) != 64 || d != admin.Digest(strings.Clone(a)) || d == admin.Digest(b) {
		t.Error("digest is not a function of the token alone")
	}
}
