package business

import (
	"strings"
	"testing"
)

func TestNumericID(t *testing.T) {
	seen := map[string]bool{}
	for range 200 {
		id := NewNumericID()
		if len(id) != 15 || id[0] == '0' || strings.Trim(id, "0123456789") != "" {
			t.Fatalf("id %q: want 15 digits without a leading zero", id)
		}
		if seen[id] {
			t.Fatalf("id %q twice", id)
		}
		seen[id] = true
	}
}

func TestTokens(t *testing.T) {
	tok, id, digest := NewToken()
	gotID, secret, err := ParseToken(tok)
	if err != nil || gotID != id || !CheckToken(digest, secret) {
		t.Fatalf("ParseToken(%q) = %q, %q, %v", tok, gotID, secret, err)
	}
	if CheckToken(digest, secret+"x") {
		t.Fatal("a changed secret checks")
	}
	for _, bad := range []string{"", "tbt_", "tbt_abc", "tbt_.s", "tbt_abc.", "tak_abc.def", strings.Repeat("x", 20)} {
		if _, _, err := ParseToken(bad); err == nil {
			t.Errorf("ParseToken(%q) took it", bad)
		}
	}
}

func TestMessageID(t *testing.T) {
	id := MessageID("du1.u2", "m0abc")
	if !strings.HasPrefix(id, "wamid.") || strings.ContainsAny(id[6:], "=+/.") {
		t.Fatalf("id %q", id)
	}
	if c, m, ok := ParseMessageID(id); !ok || c != "du1.u2" || m != "m0abc" {
		t.Fatalf("ParseMessageID(%q) = %q %q %v", id, c, m, ok)
	}
	for _, bad := range []string{"", "wamid.", "wamid.!!", "m0abc", "wamid." + "ZHUxLnUy"} {
		if _, _, ok := ParseMessageID(bad); ok {
			t.Errorf("ParseMessageID(%q) took it", bad)
		}
	}
}
