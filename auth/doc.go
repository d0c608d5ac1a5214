// Package auth signs users in by phone number and keeps their device
// sessions: it sends one-time codes by SMS, trades a correct code for a new
// device with an access token and a refresh token, authenticates requests,
// rotates refresh tokens and revokes devices.
//
// Guarantees:
//   - Phone numbers are stored and compared in E.164 form ("+15551234567");
//     NormalizePhone is the only way in, so one person is one account.
//   - A code is 6 digits from crypto/rand and is stored only as an
//     HMAC-SHA256 of phone and code under a server-wide secret, so a copy of
//     the store does not reveal pending codes. It expires after
//     Config.CodeTTL, is checked in constant time, survives at most
//     Config.MaxAttempts tries (then it is burnt and a new one must be
//     requested) and is single-use: of two concurrent verifications of one
//     code exactly one gets a session.
//   - Another code for a phone is sent only Config.ResendAfter after the last
//     unused one, and at most Config.CodesPerPhonePerHour per phone; both
//     limits live in the store, so they hold across a cluster (up to the race
//     of two nodes serving the same phone in the same instant). Codes and
//     verifications per client IP are limited in memory, per node, with
//     bounded memory. Every rate_limited error carries RetryAfter > 0.
//   - Access tokens are short-lived (Config.AccessTTL), signed with
//     HMAC-SHA256 under a key shared through the store, and honoured only while
//     their device exists: revoking a device invalidates its access token at
//     the next Authenticate, not only when it expires.
//   - Refresh tokens are opaque, stored only as SHA-256, expire after
//     Config.RefreshTTL and rotate on every use. Presenting the token a
//     rotation replaced means it was copied; the device is then revoked.
//   - Every error meant for a client is a *wire.Error with a stable code;
//     any other error is an internal failure that wraps its cause.
//   - Codes, code hashes and tokens are never logged.
package auth
