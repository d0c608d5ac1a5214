package store

import (
	"context"
	"time"
)

// Leases let one node at a time do a job that must not run twice at once
// (deliver a business's webhooks in order): the holder renews its lease
// before it ends; when a holder dies, its lease ends and another node
// takes the job over. Times are the nodes' clocks: keep them in step
// (NTP), and leases much longer than the clocks' drift.
type Leases interface {
	// TakeLease gives name to holder until until if nobody else holds it
	// at now (there is none, it ended by now, or holder has it: a
	// renewal), and reports whether it did. Of concurrent takes of a free
	// lease exactly one succeeds.
	TakeLease(ctx context.Context, name, holder string, now, until time.Time) (bool, error)
	// ReleaseLease ends holder's lease on name, so that another node need
	// not wait for it to run out; someone else's lease is left alone.
	ReleaseLease(ctx context.Context, name, holder string) error
}
