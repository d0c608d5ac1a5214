// Package log is the development SMS adapter: instead of sending a message it
// writes it, code included, to the log at INFO, so that `tern serve
// --sms-provider log` shows sign-in codes in its output. Never use it where
// the log is readable by anyone who should not sign in as every user.
package log

import (
	"context"
	"log/slog"
)

// Sender logs each SMS. A nil Log means slog.Default().
type Sender struct{ Log *slog.Logger }

// Send implements auth.Sender.
func (s Sender) Send(ctx context.Context, to, text string) error {
	l := s.Log
	if l == nil {
		l = slog.Default()
	}
	l.InfoContext(ctx, "sms", "to", to, "text", text)
	return nil
}
