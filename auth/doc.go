// Package auth signs users in by phone number and keeps their device
// sessions: it sends one-time codes by SMS, trades a correct code for a new
// device with an access token and a refresh token, authenticates requests,
// rotates refresh tokens and revokes devices.
//
// Guarantees:
//   - Phone numbers are stored and compared in E.164 form ("+15551234567");
//     NormalizePhone is the only way in, so one person is one account.
//   - A code is 6 digits from crypto/rand and is stored only as an
//     HMAC-SHA256 of phone and code under a server-wide key (named by its id
//     in the stored hash), so a copy of the store does not reveal pending
//     codes. It expires after Config.CodeTTL, is checked in constant time,
//     and is single-use: of two concurrent verifications of one code exactly
//     one gets a session.
//   - Every limit on codes is counted per phone in the store, which bounds
//     guessing across the cluster (Config.MaxAttemptsTotal tries per code,
//     Config.CodesPerPhonePerHour and Config.CodesPerPhonePerDay codes per
//     phone), and per phone and client address in memory on each node, with
//     shares well below those totals (Config.MaxAttempts tries,
//     Config.CodesPerPhonePerIPPerHour codes), so that locking an owner out
//     takes several addresses. Config documents what an attacker with one
//     address, and with many, can still do. Another code for a phone is sent
//     only Config.ResendAfter after the last unused one. The per-phone
//     counts hold across a cluster up to the race of two nodes serving the
//     same phone in the same instant. Codes and verifications per client IP
//     are limited in memory, per node, with bounded memory. Every
//     rate_limited error carries RetryAfter > 0.
//   - Access tokens are short-lived (Config.AccessTTL), signed with
//     HMAC-SHA256 under the newest key of a key ring shared through the
//     store, name that key, and are honoured only while their device exists:
//     revoking a device invalidates its access token at the next
//     Authenticate, not only when it expires. RotateKeys adds a key; tokens
//     and codes of older keys stay valid until they expire, and v1 tokens
//     from before the ring until theirs.
//   - With Options.MasterKey the keys are stored sealed (AES-256-GCM);
//     without it they are stored in the clear, and a copy of the store or of
//     a backup of it can sign access tokens.
//   - Refresh tokens are opaque, stored only as SHA-256, expire after
//     Config.RefreshTTL and rotate on every use. The token a rotation
//     replaced, presented again within Config.RefreshGrace, gets the same
//     answer as the first time (a retry, or concurrent refreshes); presented
//     later, or a token older than that, it means it was copied, and the
//     device is revoked.
//   - Every error meant for a client is a *wire.Error with a stable code;
//     any other error is an internal failure that wraps its cause.
//   - Codes, code hashes and tokens are never logged.
package auth
