// Package cloudapi is the wire layer of Tern's business API, which copies the
// shape of Meta's WhatsApp Cloud API so that existing Cloud API SDKs work
// against Tern by changing only their base URL and access token.
//
// Because the contract is Meta's, not Tern's, every name, limit, error code
// and byte here follows the public Cloud API reference; where Tern is
// stricter or narrower (only text headers on interactive messages, only
// some template parameter types) the decoder says so with the Graph error an
// SDK already knows how to surface. The package holds no HTTP server and no
// storage: it decodes and validates request bodies, builds response, error
// and webhook bodies, and signs them.
//
// Guarantees:
//   - DecodeMessagesBody never panics. It ignores unknown JSON fields,
//     because SDKs send fields Tern does not model, but rejects malformed
//     JSON. What it accepts is canonical and re-encodes to a body that
//     decodes to the same value.
//   - Every rejection is an *Error whose JSON is the {"error":{...}} body
//     Graph answers with and whose HTTPStatus is the status Graph uses.
//   - MarshalASCII and MarshalMeta output is pure ASCII and decodes to the
//     same value as encoding/json's output.
//   - The package has no mutable package-level state; randomness comes from
//     crypto/rand.
package cloudapi
