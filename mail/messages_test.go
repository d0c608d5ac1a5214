package mail

import (
	"strings"
	"testing"
	"time"
	"unicode/utf8"
)

func TestVerificationMessage(t *testing.T) {
	m := VerificationMessage("ann@example.com", "482913", "")
	if m.To != "ann@example.com" {
		t.Errorf("To = %q", m.To)
	}
	if m.Subject != "482913 is your Tern verification code" {
		t.Errorf("Subject = %q", m.Subject)
	}
	if !strings.Contains(m.Text, "\n    482913\n") || !strings.Contains(m.Text, "ignore this email") {
		t.Errorf("Text = %q", m.Text)
	}
	if err := m.Validate(); err != nil {
		t.Error(err)
	}
	if m := VerificationMessage("ann@example.com", "1", "Acme Chat"); m.Subject != "1 is your Acme Chat verification code" ||
		!strings.Contains(m.Text, "Your Acme Chat verification code") {
		t.Errorf("named product: %+v", m)
	}
}

func TestNewDeviceMessage(t *testing.T) {
	at := time.Date(2026, 3, 7, 15, 4, 5, 0, time.FixedZone("CET", 3600))
	m := NewDeviceMessage("ann@example.com", NewDevice{Name: "Pixel 8", Platform: "android", IP: "203.0.113.7", At: at})
	if m.To != "ann@example.com" || m.Subject != "New sign-in to your Tern account" {
		t.Errorf("To, Subject = %q, %q", m.To, m.Subject)
	}
	for _, want := range []string{
		"Device:      Pixel 8 (android)\n",
		"Time:        Sat, 7 Mar 2026 14:04 UTC\n", // converted to UTC
		"IP address:  203.0.113.7\n",
		"If it wasn't you", "go to Devices and\nrevoke this one",
	} {
		if !strings.Contains(m.Text, want) {
			t.Errorf("Text lacks %q:\n%s", want, m.Text)
		}
	}
	if err := m.Validate(); err != nil {
		t.Error(err)
	}

	// Every field is optional.
	m = NewDeviceMessage("ann@example.com", NewDevice{Product: "Acme"})
	if !strings.Contains(m.Text, "Device:      an unnamed device\n") || strings.Contains(m.Text, "Time:") ||
		strings.Contains(m.Text, "IP address:") || m.Subject != "New sign-in to your Acme account" {
		t.Errorf("empty device: %+v", m)
	}
	if m := NewDeviceMessage("a@b.co", NewDevice{Platform: "web"}); !strings.Contains(m.Text, "Device:      web\n") {
		t.Errorf("platform only: %q", m.Text)
	}
}

// TestBuildersNeutraliseInput feeds the builders what a hostile client or
// a careless caller could: line breaks meant to add headers or lines of
// text, bidirectional overrides, invalid UTF-8, and very long names.
func TestBuildersNeutraliseInput(t *testing.T) {
	evil := "Pixel\r\nBcc: eve@example.com\n\nIf this was you, click http://evil.example\u2028\u202egnp.exe\x00\xff"
	msgs := []Message{
		VerificationMessage("ann@example.com", "12\r\n34", evil),
		NewDeviceMessage("ann@example.com", NewDevice{Name: evil, Platform: evil, IP: "1.2.3.4\r\nX: y", Product: evil}),
		NewDeviceMessage("ann@example.com", NewDevice{Name: strings.Repeat("ж", 500)}),
	}
	for _, m := range msgs {
		if err := m.Validate(); err != nil {
			t.Errorf("built message invalid: %v: %+v", err, m)
		}
		if strings.ContainsAny(m.Subject, "\r\n") {
			t.Errorf("Subject holds a line break: %q", m.Subject)
		}
		for _, line := range strings.Split(m.Text, "\n") {
			if strings.HasPrefix(line, "Bcc:") || strings.HasPrefix(line, "X:") || strings.HasPrefix(line, "If this was you, click") {
				t.Errorf("injected line %q in:\n%s", line, m.Text)
			}
			if strings.ContainsAny(line, "\r\u2028\u202e\x00") || !utf8.ValidString(line) {
				t.Errorf("line %q keeps a control, separator or override", line)
			}
			if utf8.RuneCountInString(line) > 120 {
				t.Errorf("line of %d characters: a long name was not cut", utf8.RuneCountInString(line))
			}
		}
	}
	if got := oneLine(strings.Repeat("ж", 500), 10); got != strings.Repeat("ж", 9)+"…" {
		t.Errorf("oneLine cut = %q", got)
	}
	if got := oneLine("  a \t b\r\nc  ", 10); got != "a b c" {
		t.Errorf("oneLine = %q", got)
	}
}
