// Package server is Tern's composition root on one node: the REST API, the
// WebSocket edge and the device sessions, wired to a store, a router, a push
// notifier and the auth service chosen by cmd/tern.
//
// The message path (DESIGN.md section 2) lives here: a send is answered with
// sent only after the store made the message and its inbox events durable;
// the events are then published through the router, and devices nobody holds
// are woken by push. A session streams its device's inbox in cursor order
// with at most Config.Window unacked events in flight, using routed events as
// a fast path: an event beyond a gap is held until the gap closes, and the
// inbox is read again when it does not close (Config.GapWait), so a lost,
// duplicated or reordered routing message never loses, repeats or reorders
// an event.
package server
