// Package wire holds Tern's wire contract v1: the JSON frames exchanged on the
// WebSocket, the REST request and response bodies, and the stable error codes.
//
// The server and the Go client SDK both import it, so a change here is a
// change of the public protocol and must be reflected in docs/protocol.md.
//
// Guarantees:
//   - DecodeClientFrame never panics and returns a *Error with code
//     bad_request, unknown_type or too_large for anything it rejects; a frame
//     it accepts has every field its type requires.
//   - Unknown JSON fields are ignored, so older servers accept frames from
//     newer clients that add optional fields.
package wire
