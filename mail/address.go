package mail

import (
	"fmt"
	netmail "net/mail"
	"strings"
)

// Length limits of RFC 5321 (4.5.3.1): a path is at most 256 octets with
// its angle brackets, so an address at most 254; a local part at most 64.
const (
	MaxAddress   = 254
	maxLocalPart = 64
	maxLabel     = 63
)

// ParseAddress checks an address a user typed and returns it in the form
// Tern stores and writes to: the bare addr-spec, with the domain in lower
// case (domains are case-insensitive, local parts are not, by RFC 5321).
// Spaces around it are dropped.
//
// It refuses, with an error matching ErrInvalidAddress: a display name or
// angle brackets ("Ann <ann@example.com>"), comments, quoted local parts,
// more than one address, control characters (CR and LF among them), more
// than MaxAddress bytes, a local part over 64 bytes, non-ASCII characters,
// and a domain that is not a host name of at least two labels (so no
// "user@localhost" and no address literal "user@[192.0.2.1]").
//
// Non-ASCII addresses (RFC 6531) are refused rather than passed on because
// a relay without SMTPUTF8 would bounce them later, where the user never
// sees why; an internationalised domain can still be typed in its ASCII
// (xn--) form. Quoted local parts are refused because net/mail unquotes
// them, and an unquoted "a b"@example.com is not safe to put on an SMTP
// command line or in a header.
func ParseAddress(s string) (string, error) {
	s = strings.Trim(s, " ")
	switch {
	case s == "":
		return "", fmt.Errorf("%w: empty", ErrInvalidAddress)
	case len(s) > MaxAddress:
		return "", fmt.Errorf("%w: longer than %d bytes", ErrInvalidAddress, MaxAddress)
	case hasControl(s, ""):
		return "", fmt.Errorf("%w: control character", ErrInvalidAddress)
	}
	for i := 0; i < len(s); i++ {
		if s[i] >= 0x80 {
			return "", fmt.Errorf("%w: non-ASCII character", ErrInvalidAddress)
		}
	}
	a, err := netmail.ParseAddress(s)
	if err != nil {
		return "", fmt.Errorf("%w: %w", ErrInvalidAddress, err)
	}
	if a.Name != "" {
		return "", fmt.Errorf("%w: display names are not accepted", ErrInvalidAddress)
	}
	// net/mail accepts "<a@b>", "a@b (comment)" and quoted local parts,
	// and hands back a cleaned-up Address for them; demanding that it be
	// the input itself leaves exactly the plain dot-atom form.
	if a.Address != s {
		return "", fmt.Errorf("%w: only a bare address is accepted", ErrInvalidAddress)
	}
	at := strings.LastIndexByte(s, '@')
	local, domain := s[:at], strings.ToLower(s[at+1:])
	if len(local) > maxLocalPart {
		return "", fmt.Errorf("%w: local part longer than %d bytes", ErrInvalidAddress, maxLocalPart)
	}
	if err := checkDomain(domain); err != nil {
		return "", err
	}
	return local + "@" + domain, nil
}

// checkDomain accepts a lower-case host name of two or more labels of
// letters, digits and inner hyphens.
func checkDomain(d string) error {
	labels := strings.Split(d, ".")
	if len(labels) < 2 {
		return fmt.Errorf("%w: domain %q has no dot", ErrInvalidAddress, d)
	}
	for _, l := range labels {
		if l == "" || len(l) > maxLabel || l[0] == '-' || l[len(l)-1] == '-' {
			return fmt.Errorf("%w: domain %q is not a host name", ErrInvalidAddress, d)
		}
		for i := 0; i < len(l); i++ {
			c := l[i]
			if !('a' <= c && c <= 'z' || '0' <= c && c <= '9' || c == '-') {
				return fmt.Errorf("%w: domain %q is not a host name", ErrInvalidAddress, d)
			}
		}
	}
	// No top-level domain is all digits; refusing one keeps a dotted IPv4
	// address ("user@192.0.2.1") out, which no relay would deliver to.
	if strings.Trim(labels[len(labels)-1], "0123456789") == "" {
		return fmt.Errorf("%w: domain %q is not a host name", ErrInvalidAddress, d)
	}
	return nil
}
