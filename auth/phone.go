package auth

import (
	"strings"

	"github.com/nyaruka/phonenumbers"
	"github.com/tern-im/tern/wire"
)

// maxPhoneInput bounds the work the parser does on hostile input; the longest
// E.164 number is 16 characters, so this leaves room for generous spacing.
const maxPhoneInput = 40

// NormalizePhone returns s in E.164 form ("+15551234567"). It requires a
// leading '+' and a number valid for its country; spaces, dashes, dots and
// parentheses between digits are accepted. Letters are refused, although the
// parser would map vanity numbers ("+1 800 FLOWERS") to digits, because a
// typo should not silently become someone else's number. Errors are
// *wire.Error invalid_phone.
func NormalizePhone(s string) (string, error) {
	s = strings.TrimSpace(s)
	if len(s) > maxPhoneInput {
		return "", wire.Errorf(wire.CodeInvalidPhone, "phone number is too long")
	}
	if !strings.HasPrefix(s, "+") {
		return "", wire.Errorf(wire.CodeInvalidPhone, "phone number must start with + and the country code")
	}
	digits := 0
	for _, r := range s[1:] {
		switch {
		case r >= '0' && r <= '9':
			digits++
		case r == ' ', r == '-', r == '.', r == '(', r == ')':
		default:
			return "", wire.Errorf(wire.CodeInvalidPhone, "phone number may contain only digits after the +")
		}
	}
	if digits < 7 || digits > 15 {
		return "", wire.Errorf(wire.CodeInvalidPhone, "phone number has the wrong length")
	}
	n, err := phonenumbers.Parse(s, "")
	if err != nil || !phonenumbers.IsValidNumber(n) {
		return "", wire.Errorf(wire.CodeInvalidPhone, "not a valid phone number")
	}
	out := phonenumbers.Format(n, phonenumbers.E164)
	if !isE164(out) {
		// The library's output is trusted only as far as it is checked: a
		// malformed key here would split one person into two accounts.
		return "", wire.Errorf(wire.CodeInvalidPhone, "not a valid phone number")
	}
	return out, nil
}

func isE164(s string) bool {
	if len(s) < 2 || len(s) > 16 || s[0] != '+' || s[1] == '0' {
		return false
	}
	for i := 1; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// maskPhone keeps logs useful for support without writing whole numbers.
func maskPhone(p string) string {
	if len(p) <= 4 {
		return "****"
	}
	return strings.Repeat("*", len(p)-4) + p[len(p)-4:]
}
