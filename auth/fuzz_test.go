package auth

import (
	"strings"
	"testing"
	"time"
)

func FuzzNormalizePhone(f *testing.F) {
	for _, s := range []string{
		"+12025550143", "+1 (202) 555-0143", "+44 (0)7911 123456", "+1 800 FLOWERS",
		"+", "", "12025550143", "+00", "+999999999999999", "+1-202-555-0143 ext 5", "+٣٣٦١٢٣٤٥٦٧٨",
	} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got, err := NormalizePhone(s)
		if err != nil {
			if got != "" {
				t.Fatalf("NormalizePhone(%q) = %q with error %v", s, got, err)
			}
			return
		}
		if !isE164(got) {
			t.Fatalf("NormalizePhone(%q) = %q, not + and digits", s, got)
		}
		again, err := NormalizePhone(got)
		if err != nil || again != got {
			t.Fatalf("NormalizePhone(%q) = %q, but normalizing that gives %q, %v", s, got, again, err)
		}
	})
}

func FuzzParseAccessToken(f *testing.F) {
	// A ring of a legacy key (v1 tokens) and a newer one (v2 tokens).
	r := fixedRing(f, true, 2)
	claims := Claims{UserID: "u1", DeviceID: "d1", Expires: time.Unix(1_800_000_000, 0)}
	v1 := signAccessTokenV1(r.keys[0], claims)
	v2 := signAccessToken(r.newest(), claims)
	old := signAccessToken(r.keys[0], claims)
	for _, s := range []string{v1, v2, old, "", "v1.", "v1..", "v1.e30.", "v2.1.e30." + strings.Repeat("A", 43),
		"v2.01.e30." + strings.Repeat("A", 43), v2 + "=", v2[:len(v2)-1], v1 + "=", "v2.4294967296.e30.x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		c, err := parseAccessToken(r, tok)
		if err != nil {
			return
		}
		// Anything accepted must be exactly what signing those claims
		// with the key it names gives: no second spelling of a token
		// verifies.
		if c.UserID == "" || c.DeviceID == "" || c.Expires.Unix() <= 0 {
			t.Fatalf("accepted %q with empty claims %+v", tok, c)
		}
		p, err := splitAccessToken(tok)
		if err != nil {
			t.Fatalf("accepted %q that does not split: %v", tok, err)
		}
		var re string
		if p.v1 {
			re = signAccessTokenV1(r.keys[0], c)
		} else {
			re = signAccessToken(r.byID(p.keyID), c)
		}
		if re != tok {
			t.Fatalf("accepted %q, which is not the canonical %q", tok, re)
		}
	})
}

func FuzzParseRefreshToken(f *testing.F) {
	for _, s := range []string{"d123." + strings.Repeat("A", 43), ".", "", "d.x", "a.b.c" + strings.Repeat("A", 43)} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, tok string) {
		r, err := parseRefreshToken(tok)
		if err != nil {
			return
		}
		if r.deviceID == "" || len(r.secret) != refreshSecretSz || r.String() != tok {
			t.Fatalf("parseRefreshToken(%q) = %q %x, which does not print back", tok, r.deviceID, r.secret)
		}
	})
}

func FuzzValidCodeFormat(f *testing.F) {
	for _, s := range []string{"123456", "12345", "1234567", "12345a", "１２３４５６", "", "000000"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		ok := validCodeFormat(s)
		want := len(s) == 6 && strings.Trim(s, "0123456789") == ""
		if ok != want {
			t.Fatalf("validCodeFormat(%q) = %v, want %v", s, ok, want)
		}
	})
}

// FuzzVerifyInput drives Verify with arbitrary request fields against a real
// store: it must never panic and must answer only client error codes.
func FuzzVerifyInput(f *testing.F) {
	f.Add("+12025550143", "123456", "phone", "ios")
	f.Add("+447911123456", "", "", "")
	f.Add("nope", "12 34 56", "\x00", "ANDROID")
	h := newHarness(f, Config{})
	if _, err := h.svc.RequestCode(ctx, "+12025550143", "192.0.2.1"); err != nil {
		f.Fatal(err)
	}
	f.Fuzz(func(t *testing.T, phone, code, name, platform string) {
		_, err := h.svc.Verify(ctx, verifyRequest(phone, code, name, platform), "192.0.2.1")
		if err == nil {
			return // the fuzzer guessed the code
		}
		switch wireCode(err) {
		case "bad_request", "invalid_phone", "invalid_code", "code_expired":
		default:
			t.Fatalf("Verify(%q, %q, %q, %q) = %v", phone, code, name, platform, err)
		}
	})
}
