package mail

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"unicode/utf8"
)

// Message is one plain-text email to one recipient. The sender's address is
// the adapter's configuration, not the message's: Tern always writes as
// itself.
type Message struct {
	To      string // a bare address, as ParseAddress returns it
	Subject string // one line of UTF-8; adapters encode it as needed
	Text    string // UTF-8; lines end in "\n" (adapters convert to CRLF)
}

// Sender sends one message. Adapters: mail/log, mail/smtp. See the package
// documentation for what its errors mean.
type Sender interface {
	Send(ctx context.Context, m Message) error
}

// Limits of a message. MaxSubject keeps the encoded Subject header (up to
// three bytes per byte plus the encoded-word overhead) well under the 998
// bytes RFC 5322 allows a line; MaxText is far more than either of Tern's
// messages needs and stops a runaway caller from mailing megabytes.
const (
	MaxSubject = 200
	MaxText    = 64 << 10
)

// Errors.
var (
	// ErrInvalidAddress: not an address Tern writes to (see ParseAddress).
	ErrInvalidAddress = errors.New("mail: invalid address")
	// ErrInvalidMessage: the message breaks a rule of Validate; it was not
	// sent.
	ErrInvalidMessage = errors.New("mail: invalid message")
	// ErrTemporary: the relay could not take the message now; the caller
	// may try again later.
	ErrTemporary = errors.New("mail: temporary failure")
)

// Validate reports whether m may be sent: To passes ParseAddress, Subject
// is non-empty, valid UTF-8 of at most MaxSubject bytes without control
// characters, and Text is valid UTF-8 of at most MaxText bytes whose only
// control characters are line breaks and tabs. Its errors match
// ErrInvalidMessage (and ErrInvalidAddress for a bad To).
func (m Message) Validate() error {
	if _, err := ParseAddress(m.To); err != nil {
		return fmt.Errorf("%w: recipient: %w", ErrInvalidMessage, err)
	}
	switch {
	case m.Subject == "":
		return fmt.Errorf("%w: empty subject", ErrInvalidMessage)
	case len(m.Subject) > MaxSubject:
		return fmt.Errorf("%w: subject longer than %d bytes", ErrInvalidMessage, MaxSubject)
	case !utf8.ValidString(m.Subject):
		return fmt.Errorf("%w: subject is not UTF-8", ErrInvalidMessage)
	case hasControl(m.Subject, ""):
		// The one rule that makes header injection through the subject
		// impossible, whatever the adapter does with it.
		return fmt.Errorf("%w: control character in subject", ErrInvalidMessage)
	case len(m.Text) > MaxText:
		return fmt.Errorf("%w: text longer than %d bytes", ErrInvalidMessage, MaxText)
	case !utf8.ValidString(m.Text):
		return fmt.Errorf("%w: text is not UTF-8", ErrInvalidMessage)
	case hasControl(m.Text, "\r\n\t"):
		return fmt.Errorf("%w: control character in text", ErrInvalidMessage)
	}
	return nil
}

// hasControl reports whether s holds a C0 or C1 control character or DEL
// other than those in allowed.
func hasControl(s, allowed string) bool {
	for _, r := range s {
		if isControl(r) && !strings.ContainsRune(allowed, r) {
			return true
		}
	}
	return false
}

func isControl(r rune) bool { return r < 0x20 || (r >= 0x7f && r < 0xa0) }
