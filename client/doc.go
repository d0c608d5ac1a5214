// Package client is the Go SDK for Tern's wire contract v1: the REST API
// under /v1 and the WebSocket at /v1/ws. Tests, the load generator
// (tern bench) and the command line client (tern chat) use it, so it is built to run
// thousands of instances in one process.
//
// A Client holds one device session. REST calls are plain methods that take
// a context first; a server error comes back as an error that unwraps to a
// *wire.Error (and to an *HTTPError that also carries the HTTP status), so
// callers switch on errors.As(err, &werr) and werr.Code.
//
// Connect opens the WebSocket and keeps it open until Close or a fatal stop.
// The guarantees:
//
//   - Delivery. Every inbox event (a frame with a cursor: message, receipt,
//     group) the server sends reaches Events at least once, in the order the
//     server sent it. Messages are deduplicated by msg_id over a bounded
//     window, so a message replayed after a reconnect is shown once.
//     Receipts and group events are not deduplicated: they are idempotent
//     state changes and may repeat after a reconnect.
//   - Acknowledgement. By default an event is acked only after it has been
//     put on the Events channel, so an event the application never received
//     is never acked. Acks are cumulative and coalesced: one ack covers every
//     event handed out before it. With Options.ManualAck the application
//     acks instead; duplicates the SDK drops are acked by the SDK, but never
//     past an event the application has not acked yet.
//   - Sending. Send waits until the server answers sent (the message is
//     durable) or an error frame naming the send. If the socket drops first,
//     the send is written again, with the same id, on the next connection;
//     the server treats the id as an idempotency key, so a message is
//     stored once however often it is written. Sends pending across a
//     reconnect are written again in the order they were first issued.
//   - Reconnecting. After a network failure, a server restart or close code
//     1001 the client reconnects with exponential backoff and jitter, and
//     the server replays what was not acked. On 401 or close code 4401 it
//     refreshes the access token once; if that fails the device was signed
//     out and the client stops. On close code 4409 (the device connected
//     elsewhere) it stops without reconnecting. Err tells why it stopped;
//     the Events channel is closed in every case.
//   - Read Events on a goroutine of its own. The reader hands events to
//     the channel and waits while it is full; a Send issued from the
//     goroutine that reads Events can therefore wait for a sent answer
//     that the blocked reader never gets to (`tern chat` sends from
//     another goroutine for this reason).
//   - Token expiry. The server closes a socket with 4401 when the access
//     token it was opened with expires; the client refreshes and
//     reconnects, as above. Each refresh replaces the refresh token: an
//     application that keeps the session on disk saves Session() again
//     after it (the old refresh token presented later signs the device
//     out).
//   - Resources. A connected client runs two goroutines (a reader, and a
//     loop that writes acks and keepalives and reconnects); one while it
//     reconnects; none before Connect or after Close. Memory grows with the dedupe
//     window only as messages arrive.
package client
