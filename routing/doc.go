// Package routing hands an event to the node(s) that hold a device's socket,
// and says when no node does so that push can take over.
//
// Routing is a fast path, not the truth: every event with a cursor is already
// in the device's durable inbox before it is published, so a lost or
// duplicated routing message costs latency, never data. Handlers deduplicate
// by cursor and re-read the inbox on a gap or when Resync is called.
//
// Adapters: routing/inproc (one node, the default) and routing/rabbitmq.
// routing/routertest is the conformance suite both pass.
package routing
