// Package webpush is the push adapter for browsers: Web Push (RFC 8030)
// with the payload encrypted to the subscription (RFC 8291, aes128gcm) and
// the server identified by VAPID (RFC 8292), through
// github.com/SherClockHolmes/webpush-go.
//
// The node makes its VAPID key pair once with GenerateKeys and keeps it
// like its other secrets: every subscription is bound to the public key
// the browser was given (GET /v1/push/vapid), so a new pair orphans them
// all.
//
// The payload is push.Data as a JSON object. Urgency is high for messages
// and normal otherwise, TTL as push.Notification.TTL, and Topic is
// push.CollapseID of the chat id, so that a newer push for a chat
// replaces an undelivered older one.
//
// # Errors and retries
//
// 404 and 410 (the subscription expired or was dropped), a subscription
// that cannot be parsed, and an endpoint the client refuses to dial
// (internal/safehttp.ErrForbiddenAddress: it leads to a loopback or private
// address) become push.ErrUnregistered; 429, 5xx, transport
// failures and the end of ctx become push.ErrTemporary with the response's
// Retry-After. Other answers are permanent errors. Nothing is retried here:
// each attempt costs a fresh encryption and the caller's queue owns the
// schedule.
package webpush
