// Package chat holds Tern's message rules, apart from any transport: who a
// message goes to, who may send, read, type or change a group, what a body
// may hold, and idempotency. It stores first (package store, whose atomic
// step resolves a group's recipients) and then hands the stored inbox events
// to a Dispatcher, which routes them to the nodes holding their devices.
//
// The WebSocket and REST edges (package server) call it; so will the
// business API. Every method takes the acting user and device (an Actor),
// checks what that actor may do, and answers errors a client caused as
// *wire.Error with a stable code; store errors are mapped to codes in one
// place (Error). Nothing here keeps per-connection state.
package chat
