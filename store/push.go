package store

import (
	"context"
	"time"
)

// PushJob is a wake-up waiting to go to one device that no node holds.
// There is at most one per device: a burst of events wakes a device once.
type PushJob struct {
	DeviceID string
	UserID   string
	// Kind is the inbox event that asked for it: EventMessage (or another
	// kind: a push for anything else is sent at normal priority).
	Kind   string
	ChatID string
	MsgID  string
	From   string // the message's author
	// Text is the message's text, only when previews are on: stored, it
	// would otherwise outlive the message in a second place.
	Text string
	// Due is when it may be sent: a device that connects before then
	// cancels it (CancelPush).
	Due time.Time
	// Attempts counts the sends that failed for a time (RetryPush).
	Attempts int
	// Lease is set by ClaimPushes: the claim's token, which DonePush and
	// RetryPush must name.
	Lease string
}

// Pushes is the durable queue of wake-ups, shared by every node: a node
// that dies between queueing a push and sending it, or while sending it,
// leaves it to the others.
type Pushes interface {
	// QueuePush queues a wake-up of j.DeviceID due at j.Due. If one is
	// queued for the device already (claimed or not), it stays as it is,
	// except that a message's push replaces one for another kind (keeping
	// the earlier due time). A device pushed less than cooldown ago (see
	// DonePush) gets its push due no earlier than that push's time plus
	// cooldown.
	//
	// A push starts unclaimed with no attempts (j.Lease and j.Attempts are
	// ignored), and so does a message's push that replaces a claimed one:
	// that claimer was sending the other kind's push, and its DonePush
	// must not drop the message's unsent, so it finds its lease gone
	// (ErrConflict). Adapters keep times to the millisecond.
	QueuePush(ctx context.Context, j PushJob, cooldown time.Duration) error
	// CancelPush drops the device's queued push, claimed or not, and
	// forgets when it was last pushed: it connected, so it needs no wake,
	// and its next missed event is news. A device with none is not an
	// error.
	CancelPush(ctx context.Context, deviceID string) error
	// ClaimPushes claims up to limit pushes due at or before now whose
	// lease, if any, ended by now, leases them until until (a new Lease
	// each), and returns them, earliest due first. Two claims never get
	// the same push while its lease runs. A limit below 1 claims none.
	ClaimPushes(ctx context.Context, now, until time.Time, limit int) ([]PushJob, error)
	// DonePush ends a claimed push: it was sent (or cannot ever be), at
	// sentAt, which starts the device's cooldown. ErrConflict if the lease
	// is not the push's any more (it ran out and another node claimed it,
	// or the device connected): nothing changes then.
	DonePush(ctx context.Context, deviceID, lease string, sentAt time.Time) error
	// RetryPush puts a claimed push back, due at due, with Attempts one
	// higher. ErrConflict as for DonePush.
	RetryPush(ctx context.Context, deviceID, lease string, due time.Time) error
	// PendingPushes counts the pushes queued and not yet done.
	PendingPushes(ctx context.Context) (int, error)
}
