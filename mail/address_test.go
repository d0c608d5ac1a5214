package mail

import (
	"errors"
	"strings"
	"testing"
)

func TestParseAddressAccepts(t *testing.T) {
	for in, want := range map[string]string{
		"ann@example.com":             "ann@example.com",
		"Ann.Lee@Example.COM":         "Ann.Lee@example.com", // the local part keeps its case
		"  ann@example.com ":          "ann@example.com",
		"ann+tern@mail.example.co.uk": "ann+tern@mail.example.co.uk",
		"o'brien@example.com":         "o'brien@example.com",
		"a@xn--bcher-kva.example":     "a@xn--bcher-kva.example",
		"a@1example.com":              "a@1example.com",
	} {
		got, err := ParseAddress(in)
		if err != nil || got != want {
			t.Errorf("ParseAddress(%q) = %q, %v; want %q", in, got, err, want)
		}
	}
	// Exactly the limit.
	long := strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 61)
	if len(long) != MaxAddress {
		t.Fatalf("test address is %d bytes", len(long))
	}
	if _, err := ParseAddress(long); err != nil {
		t.Errorf("ParseAddress(%d bytes): %v", len(long), err)
	}
}

func TestParseAddressRefuses(t *testing.T) {
	for _, in := range []string{
		"",
		" ",
		"ann",
		"ann@",
		"@example.com",
		"Ann <ann@example.com>",   // display name
		"<ann@example.com>",       // angle brackets
		`"Ann" <ann@example.com>`, // quoted display name
		"ann@example.com (Ann)",   // comment
		`"ann lee"@example.com`,   // quoted local part, unsafe once unquoted
		`"ann"@example.com`,       // quoted, even when harmless
		"ann@example.com, bob@example.com",
		"ann@example.com,bob@example.com",
		"ann@example.com bob@example.com",
		"ann@example.com\r\nBcc: eve@example.com", // header injection
		"ann@example.com\n",
		"ann\r@example.com",
		"ann@exa\x00mple.com",
		"ann@example.com\t",
		"ann@localhost",   // one label
		"ann@[192.0.2.1]", // address literal
		"ann@192.0.2.1",   // numeric top-level label
		"ann@-example.com",
		"ann@example-.com",
		"ann@example..com",
		"ann@example.com.",
		"ann@exa_mple.com",
		"ann.@example.com",
		"ann..lee@example.com",
		"ännä@example.com", // non-ASCII local part
		"ann@exämple.com",  // non-ASCII domain
		strings.Repeat("a", 65) + "@example.com",
		"a@" + strings.Repeat("b", 64) + ".com",
		strings.Repeat("a", 64) + "@" + strings.Repeat("b", 63) + "." + strings.Repeat("c", 63) + "." + strings.Repeat("d", 62), // 255
	} {
		got, err := ParseAddress(in)
		if !errors.Is(err, ErrInvalidAddress) {
			t.Errorf("ParseAddress(%q) = %q, %v; want ErrInvalidAddress", in, got, err)
		}
	}
}

func FuzzParseAddress(f *testing.F) {
	for _, s := range []string{"ann@example.com", "Ann <ann@example.com>", "a@b.c\r\nX: y", `"a b"@c.d`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		a, err := ParseAddress(s)
		if err != nil {
			return
		}
		// Whatever it accepts is safe on an SMTP command line and in a
		// header, stable, and within the limit.
		if strings.ContainsAny(a, " \t\r\n\x00<>\",;()[]\\") || len(a) > MaxAddress {
			t.Fatalf("ParseAddress(%q) = %q", s, a)
		}
		if again, err := ParseAddress(a); err != nil || again != a {
			t.Fatalf("ParseAddress(%q) = %q, but again %q, %v", s, a, again, err)
		}
	})
}
