package log

import (
	"context"
	"log/slog"

	"github.com/tern-im/tern/push"
)

// Notifier logs wake-ups at debug level.
type Notifier struct{ Log *slog.Logger }

// Notify implements push.Notifier.
func (n Notifier) Notify(ctx context.Context, p push.Notification) error {
	n.Log.DebugContext(ctx, "push", "device", p.DeviceID, "kind", p.Kind, "chat", p.ChatID, "has_token", p.Token != "")
	return nil
}
