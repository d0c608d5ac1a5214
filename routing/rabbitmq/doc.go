// Package rabbitmq routes envelopes between Tern nodes through a RabbitMQ
// broker (AMQP 0-9-1, github.com/rabbitmq/amqp091-go). It implements
// routing.Router and passes routing/routertest.
//
// # Topology
//
// All nodes share one durable direct exchange (Config.Exchange, default
// "tern.devices"). Each node declares its own queue, named
// "tern.node.<NodeID>.<random>", exclusive and auto-delete, and binds it
// with one routing key per device it holds: Attach binds, the last detach
// of a device on the node unbinds. The queue is exclusive to the node's
// connection, so when a node dies its queue and every binding on it vanish
// with the connection: nothing is routed to a dead node, and publishers see
// routing.ErrNoRoute instead, which wakes the device by push. That happens
// at once when the node's process dies (the kernel closes its socket), and
// within about two Config.Heartbeat intervals when its host or network does.
// The queue is declared classic explicitly: a vhost whose default queue
// type is quorum must not turn it into one that outlives the node. Nothing is
// durable on purpose: routing is a fast path, the inbox in the store is the
// truth.
//
// # Publishing
//
// Publish sends a mandatory message with publisher confirms on and waits
// for the broker's answer: a basic.return before the ack (AMQP orders them
// so) means no queue was bound to the device, reported as routing.ErrNoRoute;
// a plain ack means at least one node's queue took it, reported as nil. The
// broker's delivery tag travels as the message id, which is how a return is
// matched to its publish. At most Config.MaxInFlight publishes await their
// confirm at once; further ones wait, honouring their context. A publish is
// abandoned after Config.PublishTimeout. PublishBatch (routing.Batcher)
// sends a whole fan-out before waiting for the first confirm, so that a
// message to many devices costs one confirm wait rather than one each.
//
// The body is compact: the kind byte, the cursor as a signed varint, then
// the frame bytes.
//
// # Guarantees
//
//   - Attach returns once the binding exists on the broker (when connected),
//     so a publish from any node after it routes to the device; after the
//     last detach of a device returns, publishes to it return ErrNoRoute.
//   - Envelopes from one publisher to one device arrive in publish order
//     (one queue per node, one consumer per queue).
//   - A handler's Deliver and Resync are never called concurrently, and
//     never after its detach has returned (no grace needed). Deliver must
//     therefore neither block nor call the handler's own detach.
//   - While the node is not connected to the broker, Publish fails at once
//     with ErrNotConnected (never ErrNoRoute: the device may well be online)
//     and Attach records the device, to be bound once connected.
//   - This package never duplicates an envelope, but loses those in the
//     node's queue or in flight when the link fails. Whenever the link
//     fails, every attached handler's Resync is called at once, then every
//     Config.OutageResync while the link is down, and once more after the
//     node has reconnected, re-declared its queue and rebound every attached
//     device. While the broker blocks publishing (a memory or disk alarm:
//     connection.blocked), Publish fails at once with ErrBlocked and the
//     handlers are resynced the same way: at once, every
//     Config.OutageResync, and when the block lifts. Resync is never called
//     while nothing fails.
//   - Close stops every goroutine the router started, deletes the node's
//     queue (so its devices are unroutable when Close returns) and closes
//     the connection; Publish and Attach then return ErrClosed.
//
// Reconnection uses exponential backoff with jitter between
// Config.ReconnectMin and Config.ReconnectMax. The library's own
// (experimental) automatic recovery is not used: after a reconnect the
// queue must be a new one and every device rebound, which this package
// does itself.
package rabbitmq
