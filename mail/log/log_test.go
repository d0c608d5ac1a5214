package log

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"

	"github.com/tern-im/tern/mail"
)

func TestSendLogsCode(t *testing.T) {
	var buf bytes.Buffer
	s := Sender{Log: slog.New(slog.NewTextHandler(&buf, nil))}
	m := mail.VerificationMessage("Ann@Example.COM", "482913", "")
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"level=INFO", "msg=mail", "to=Ann@example.com", `subject="482913 is your Tern verification code"`, "482913"} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
	// The text handler quotes the multi-line text: one record, one line,
	// so a message cannot forge log lines either.
	if n := strings.Count(out, "\n"); n != 1 {
		t.Errorf("log has %d lines, want 1: %q", n, out)
	}
}

func TestSendRefusesInvalid(t *testing.T) {
	var buf bytes.Buffer
	s := Sender{Log: slog.New(slog.NewTextHandler(&buf, nil))}
	for _, m := range []mail.Message{
		{To: "ann@example.com\r\nBcc: eve@example.com", Subject: "s", Text: "t"},
		{To: "ann@example.com", Subject: "s\r\nBcc: eve@example.com", Text: "t"},
		{To: "Ann <ann@example.com>", Subject: "s", Text: "t"},
	} {
		if err := s.Send(context.Background(), m); !errors.Is(err, mail.ErrInvalidMessage) {
			t.Errorf("Send(%q): %v, want ErrInvalidMessage", m, err)
		}
	}
	if buf.Len() != 0 {
		t.Errorf("logged %q for invalid messages", buf.String())
	}
}
