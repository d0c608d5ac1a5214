package wire

import (
	"unicode"
	"unicode/utf8"
)

// What text others see must be text: a name that holds an escape sequence
// can repaint a terminal, one with a right-to-left override shows another
// name than it is, and one made only of zero-width characters looks like
// no name at all (and like everyone else's). CheckName and CheckText are
// the protocol's rules for the text one user shows another.

// CheckName checks a one-line name (a profile name, an about line, a group
// name): valid UTF-8, at most maxRunes characters, no control characters
// (line breaks included), no bidirectional embedding, override or isolate
// controls, and, unless it is empty, at least one visible character.
func CheckName(field, s string, maxRunes int) *Error {
	if !utf8.ValidString(s) {
		return Errorf(CodeBadRequest, "%s is not valid UTF-8", field)
	}
	if utf8.RuneCountInString(s) > maxRunes {
		return Errorf(CodeTooLarge, "%s is longer than %d characters", field, maxRunes)
	}
	visible := false
	for i, r := range s {
		switch {
		case unicode.IsControl(r) || unicode.In(r, unicode.Zl, unicode.Zp):
			return Errorf(CodeBadRequest, "%s has a control character or line break (U+%04X) at byte %d", field, r, i)
		case isBidiControl(r):
			return Errorf(CodeBadRequest, "%s has a bidirectional override (U+%04X) at byte %d", field, r, i)
		case !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r) && !unicode.Is(unicode.Mn, r) && !isBlankLetter(r):
			visible = true
		}
	}
	if s != "" && !visible {
		return Errorf(CodeBadRequest, "%s has no visible character", field)
	}
	return nil
}

// CheckText checks message text (or a caption): valid UTF-8, no control
// characters other than tab and line breaks, and at least one visible
// character. Bidirectional controls are allowed: mixed-direction
// messages need them.
func CheckText(field, s string) *Error {
	if !utf8.ValidString(s) {
		return Errorf(CodeBadRequest, "%s is not valid UTF-8", field)
	}
	visible := false
	for i, r := range s {
		switch {
		case r == '\t' || r == '\n' || r == '\r':
		case unicode.IsControl(r):
			return Errorf(CodeBadRequest, "%s has a control character (U+%04X) at byte %d", field, r, i)
		case !unicode.IsSpace(r) && !unicode.Is(unicode.Cf, r):
			visible = true
		}
	}
	if s != "" && !visible {
		return Errorf(CodeBadRequest, "%s has no visible character", field)
	}
	return nil
}

// isBidiControl reports the explicit embedding, override and isolate
// controls (U+202A–U+202E, U+2066–U+2069). The marks LRM and RLM stay
// allowed: names in right-to-left scripts use them.
func isBidiControl(r rune) bool {
	return (r >= 0x202a && r <= 0x202e) || (r >= 0x2066 && r <= 0x2069)
}

// isBlankLetter reports letters that render as nothing (Hangul fillers,
// the blank Braille pattern), a known way to a name that looks empty.
func isBlankLetter(r rune) bool {
	switch r {
	case '\u115f', '\u1160', '\u3164', '\uffa0', '\u2800':
		return true
	}
	return false
}
