// Package admin holds the rules of the admin dashboard's accounts: Argon2id
// password hashes, TOTP second factors (RFC 6238), and session and API-key
// tokens (only their digests are stored). The HTTP side (pages, /v1/admin,
// CSRF checks, cookies, and the sign-in limits, counted like the node's
// other per-key quotas) is built on these in package server; the records
// live in store.Admins.
package admin
