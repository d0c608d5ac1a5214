// Package log is the development mail adapter: instead of sending a message
// it writes it, verification codes included, to the log at INFO, so that
// `tern serve` without a mail relay shows them in its output. Never use it
// where the log is readable by anyone who should not confirm every user's
// address.
//
// It checks each message as mail/smtp does (mail.Message.Validate), so a
// message that a relay would never get fails in development too.
package log

import (
	"context"
	"fmt"
	"log/slog"

	"github.com/tern-im/tern/mail"
)

// Sender logs each message. A nil Log means slog.Default().
type Sender struct{ Log *slog.Logger }

// Send implements mail.Sender.
func (s Sender) Send(ctx context.Context, m mail.Message) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("mail log: %w", err)
	}
	to, _ := mail.ParseAddress(m.To) // Validate has accepted it
	l := s.Log
	if l == nil {
		l = slog.Default()
	}
	l.InfoContext(ctx, "mail", "to", to, "subject", m.Subject, "text", m.Text)
	return nil
}
