// Package admin holds the rules of the admin dashboard's accounts: Argon2id
// password hashes, TOTP second factors (RFC 6238), session and API-key
// tokens (only their digests are stored), and the sign-in throttle per
// account and per client address. The HTTP side (pages, /v1/admin, CSRF
// checks, cookies) is built on these; the records live in store.Admins.
package admin
