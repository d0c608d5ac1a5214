// Package servertest starts real Tern nodes for tests: the embedded store on
// a temporary directory, the in-process router, and an SMS gateway sink that
// captures verification codes, served on a loopback port. Clients talk to
// it through real sockets with the Go SDK.
package servertest
