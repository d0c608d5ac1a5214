// Package node is Tern's composition root: it opens the configured store,
// connects the configured router, and builds the auth service and the
// server on them, the same way for `tern serve` and for the in-process
// nodes of the tests (server/servertest), so that every end-to-end test can
// run on every store and router adapter.
//
// Engines are picked with a plain switch on their names; no registries.
package node
