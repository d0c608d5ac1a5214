package routing

import (
	"context"
	"errors"
)

// ErrNoRoute means no node holds the device: it is offline.
var ErrNoRoute = errors.New("routing: no node holds the device")

// Envelope kinds.
const (
	// KindEvent carries an inbox event (Cursor > 0) rendered as a frame.
	KindEvent = 1
	// KindFrame carries an ephemeral frame (typing, presence): not stored.
	KindFrame = 2
	// KindRevoke tells the holder to close the device's socket: the device
	// was signed out or revoked.
	KindRevoke = 3
	// KindReplace tells every other holder of the device that it connected
	// again (through another node, or this one): they close with "replaced".
	// Frame carries the new session's id, so the new session ignores it.
	KindReplace = 4
	// KindProbe asks whether any node holds the device (Publish returns
	// nil) or none (ErrNoRoute); holders ignore it.
	KindProbe = 5
	// KindPoke tells the holder to re-read the device's inbox: an event was
	// stored but its own envelope may never have been published.
	KindPoke = 6
	// KindUsers carries an ephemeral frame (typing, presence) for every
	// device of Users. It is broadcast (Broadcaster): one publish reaches
	// every node, which hands Frame to its own devices of those users.
	KindUsers = 7
	// KindPokeUsers is KindPoke for every device of Users, broadcast: each
	// node makes its sessions of those users re-read their inboxes.
	KindPokeUsers = 8
	// KindPresence carries a message between nodes' presence trackers
	// (package presence) in Frame, broadcast: who went online or offline,
	// heartbeats, snapshots.
	KindPresence = 9
)

// HasUsers reports whether envelopes of kind carry Users.
func HasUsers(kind uint8) bool { return kind == KindUsers || kind == KindPokeUsers }

// Envelope is what travels between nodes for one device.
type Envelope struct {
	Kind   uint8
	Cursor int64
	Frame  []byte   // a complete server frame, ready to write to the socket
	Users  []string // KindUsers: whose devices get Frame
}

// Handler receives what is published to a device this node holds.
// Deliver must not block: it queues and returns.
type Handler interface {
	Deliver(env Envelope)
	// Resync is called when envelopes may have been lost (the broker link was
	// down); the holder re-reads the device's inbox.
	Resync()
}

// Router is the routing engine of one node.
type Router interface {
	// Attach announces that this node holds deviceID; envelopes published
	// to it go to h until detach is called. Attaching the same device again
	// replaces the previous handler on this node.
	Attach(ctx context.Context, deviceID string, h Handler) (detach func(), err error)
	// Publish sends env to every node that holds deviceID, or returns
	// ErrNoRoute when none does.
	Publish(ctx context.Context, deviceID string, env Envelope) error
	// Close releases the router; it is safe to call once.
	Close() error
}

// Broadcaster is a Router that reaches every node of the cluster with one
// publish. A frame for many users (a group's typing) then costs one publish
// in all instead of one per device, and no lookup of anyone's devices.
type Broadcaster interface {
	// Broadcast hands env to the broadcast handler of every node, this one
	// included. It is best effort, like any ephemeral frame: a node that is
	// unreachable just misses it.
	Broadcast(ctx context.Context, env Envelope) error
	// OnBroadcast sets the function broadcasts are handed to at this node;
	// it must not block. Set it before anything is broadcast: until then
	// broadcasts that arrive are dropped.
	OnBroadcast(fn func(env Envelope))
}

// Target is one envelope for one device.
type Target struct {
	DeviceID string
	Env      Envelope
}

// Batcher is a Router whose Publish waits on the network. PublishBatch
// publishes every target and then waits for all their answers together, so
// that a fan-out costs one wait instead of one per device. errs (as long as
// targets) gets what Publish would have returned for each target.
// Envelopes to one device keep the order they have in targets.
type Batcher interface {
	PublishBatch(ctx context.Context, targets []Target, errs []error)
}

// PublishAll publishes targets through r, as one batch when r is a Batcher
// and one after the other otherwise, and returns an error per target.
func PublishAll(ctx context.Context, r Router, targets []Target) []error {
	errs := make([]error, len(targets))
	if b, ok := r.(Batcher); ok && len(targets) > 1 {
		b.PublishBatch(ctx, targets, errs)
		return errs
	}
	for i, t := range targets {
		errs[i] = r.Publish(ctx, t.DeviceID, t.Env)
	}
	return errs
}

// Linked is a Router whose routing goes through a link (to a broker) that
// can fail on its own; the server exports its state as metrics.
type Linked interface {
	// Connected reports whether the link is up.
	Connected() bool
	// Blocked reports whether the far end refuses publishes for now (a
	// broker's flow control), the link being up.
	Blocked() bool
}
