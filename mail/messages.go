package mail

import (
	"fmt"
	"strings"
	"time"
	"unicode/utf8"
)

// DefaultProduct names the service in a message when the caller gives no
// name.
const DefaultProduct = "Tern"

// Longest a value may be in a message, in characters. A device name or
// platform is a label, not a paragraph; the caps keep a hostile one from
// pushing the advice below it off the screen, and every line under 120
// characters. An IPv6 address with a zone fits in maxField.
const (
	maxProduct  = 32
	maxField    = 64
	maxPlatform = 32
)

// VerificationMessage is the email that carries the code confirming that
// the user owns the address to, for the product named product (empty means
// DefaultProduct). The code leads the subject so that a notification
// preview shows it, as an SMS code does.
func VerificationMessage(to, code, product string) Message {
	product = oneLine(product, maxProduct)
	if product == "" {
		product = DefaultProduct
	}
	code = oneLine(code, maxField)
	return Message{
		To:      to,
		Subject: fmt.Sprintf("%s is your %s verification code", code, product),
		Text: fmt.Sprintf(`Your %[1]s verification code is:

    %[2]s

Enter it in %[1]s to confirm that this email address is yours.

If you did not ask for this code, someone may have typed your address by
mistake. You can ignore this email: the address is not added to any
account without the code.
`, product, code),
	}
}

// NewDevice describes a sign-in for NewDeviceMessage. Every field is
// optional; a zero At leaves the time out. Name and Platform are what the
// device reported about itself, so they are treated as hostile.
type NewDevice struct {
	Name, Platform, IP string
	At                 time.Time
	// Product names the service; empty means DefaultProduct.
	Product string
}

// NewDeviceMessage is the notice, sent to the account's address to, that a
// device signed in to the account, and what to do if it was not the owner.
func NewDeviceMessage(to string, d NewDevice) Message {
	product := oneLine(d.Product, maxProduct)
	if product == "" {
		product = DefaultProduct
	}
	device := oneLine(d.Name, maxField)
	if platform := oneLine(d.Platform, maxPlatform); platform != "" {
		if device == "" {
			device = platform
		} else {
			device += " (" + platform + ")"
		}
	}
	if device == "" {
		device = "an unnamed device"
	}
	var b strings.Builder
	fmt.Fprintf(&b, "A new device signed in to your %s account.\n\n", product)
	fmt.Fprintf(&b, "Device:      %s\n", device)
	if !d.At.IsZero() {
		// UTC, spelt out: the server does not know the reader's zone, and
		// a bare offset is easy to misread.
		fmt.Fprintf(&b, "Time:        %s\n", d.At.UTC().Format("Mon, 2 Jan 2006 15:04 MST"))
	}
	if ip := oneLine(d.IP, maxField); ip != "" {
		fmt.Fprintf(&b, "IP address:  %s\n", ip)
	}
	fmt.Fprintf(&b, `
If this was you, there is nothing to do.

If it wasn't you, open %[1]s on a device you trust, go to Devices and
revoke this one: it is signed out at once and cannot sign back in without
a new code. Never share the codes %[1]s sends you.
`, product)
	return Message{
		To:      to,
		Subject: fmt.Sprintf("New sign-in to your %s account", product),
		Text:    b.String(),
	}
}

// oneLine makes a user-controlled value safe to put in a subject or on a
// line of its own: invalid UTF-8 becomes U+FFFD, control characters,
// Unicode line and paragraph separators and bidirectional controls become
// spaces (a right-to-left override could make "revoke" read otherwise),
// runs of spaces collapse, and the result is cut to limit characters.
func oneLine(s string, limit int) string {
	s = strings.ToValidUTF8(s, "\uFFFD")
	s = strings.Map(func(r rune) rune {
		switch {
		case isControl(r), r == '\u2028', r == '\u2029',
			r >= '\u202a' && r <= '\u202e', r >= '\u2066' && r <= '\u2069',
			r == '\u200e', r == '\u200f', r == '\u061c':
			return ' '
		}
		return r
	}, s)
	s = strings.Join(strings.Fields(s), " ")
	if utf8.RuneCountInString(s) <= limit {
		return s
	}
	n := 0
	for i := range s {
		if n == limit-1 {
			return strings.TrimRight(s[:i], " ") + "…"
		}
		n++
	}
	return s
}
