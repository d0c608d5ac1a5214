package push

import "context"

// Notification asks one device to wake up.
type Notification struct {
	UserID   string
	DeviceID string
	Provider string // as registered with PUT /v1/devices/current/push
	Token    string
	Kind     string // "message" or "receipt"
	ChatID   string
}

// Notifier sends wake-ups.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}
