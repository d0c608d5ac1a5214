package store

import (
	"context"
	"time"
)

// The admin dashboard's state: operator accounts (not chat users), their
// browser sessions and API keys, the audit log of what they did, and bans
// of chat users. Package admin owns the rules (password hashing, TOTP,
// CSRF, throttling); the store keeps records and answers lookups.

// Admin is an operator account.
type Admin struct {
	ID string
	// Username is unique, compared as stored: package admin lower-cases it
	// before it gets here.
	Username string
	// PasswordHash is package admin's encoding of an Argon2id hash.
	PasswordHash []byte
	// TOTPSecret is the second factor's secret, sealed by package server
	// (internal/seal) when the node has a master key; nil: no second
	// factor.
	TOTPSecret []byte
	Disabled   bool
	CreatedAt  time.Time
}

// AdminSession is a signed-in dashboard browser. ID is a digest of the
// cookie's token, never the token itself: a copy of the store does not
// sign anyone in.
type AdminSession struct {
	ID        string
	AdminID   string
	CSRF      string // the token every state change must carry
	IP        string
	CreatedAt time.Time
	ExpiresAt time.Time
}

// APIKey lets scripts use /v1/admin with a bearer key. ID is the key's
// public part; Hash a digest of its secret part.
type APIKey struct {
	ID        string
	AdminID   string
	Name      string
	Hash      []byte
	CreatedAt time.Time
}

// AuditEntry is one admin action: who, what, when, from where.
type AuditEntry struct {
	// ID orders entries: NewID's ids sort by creation time.
	ID     string
	TS     int64  // unix ms
	Actor  string // the admin's username, or "key:<id>" for an API key
	Action string // "ban", "unban", "revoke_device", "delete_group", ...
	Target string // what it was done to: a user, group or report id
	Detail string
	IP     string
}

// Ban is a chat user's ban. A banned user cannot sign in, and its devices
// are revoked when the ban is made.
type Ban struct {
	UserID string
	Reason string
	By     string // the admin's username
	TS     int64  // unix ms
}

// Admins keeps the dashboard's accounts, sessions, keys and audit log.
type Admins interface {
	// CreateAdmin stores a; a taken username (or id) is ErrConflict, also
	// between concurrent calls.
	CreateAdmin(ctx context.Context, a Admin) error
	Admin(ctx context.Context, id string) (Admin, error)
	AdminByUsername(ctx context.Context, username string) (Admin, error)
	// UpdateAdmin replaces the account a.ID (ErrNotFound if there is none);
	// the username cannot change.
	UpdateAdmin(ctx context.Context, a Admin) error
	// Admins lists every account, oldest first.
	Admins(ctx context.Context) ([]Admin, error)

	// PutAdminSession stores s (replacing a session of the same id). An
	// adapter may delete, meanwhile, the admin's sessions that had expired
	// by s.CreatedAt: stores without expiry of their own keep them few so.
	PutAdminSession(ctx context.Context, s AdminSession) error
	// AdminSession returns the session id; ErrNotFound if there is none or
	// it has expired (its ExpiresAt is not after now).
	AdminSession(ctx context.Context, id string, now time.Time) (AdminSession, error)
	// DeleteAdminSession signs one browser out; no session is not an
	// error.
	DeleteAdminSession(ctx context.Context, id string) error
	// DeleteAdminSessions signs an admin out everywhere (a password change,
	// a disabled account).
	DeleteAdminSessions(ctx context.Context, adminID string) error

	// PutAPIKey stores k, replacing a key of the same id.
	PutAPIKey(ctx context.Context, k APIKey) error
	APIKey(ctx context.Context, id string) (APIKey, error)
	// APIKeys lists an admin's keys, oldest first.
	APIKeys(ctx context.Context, adminID string) ([]APIKey, error)
	// DeleteAPIKey revokes a key; no key is not an error.
	DeleteAPIKey(ctx context.Context, id string) error

	// AppendAudit stores e; its ID must be new (ErrConflict).
	AppendAudit(ctx context.Context, e AuditEntry) error
	// Audit lists up to limit entries with IDs below before ("" for the
	// newest), newest first (limit below 1: all of them).
	Audit(ctx context.Context, before string, limit int) ([]AuditEntry, error)
}

// Bans keeps bans of chat users.
type Bans interface {
	// SetBan bans b.UserID (a second ban replaces the first); ErrNotFound
	// for an unknown user.
	SetBan(ctx context.Context, b Ban) error
	// Unban lifts a ban; no ban is not an error.
	Unban(ctx context.Context, userID string) error
	// BanOf returns userID's ban, ErrNotFound for none.
	BanOf(ctx context.Context, userID string) (Ban, error)
	// Banned lists up to limit bans, newest first (by TS; limit below 1:
	// all of them).
	Banned(ctx context.Context, limit int) ([]Ban, error)
}

// UserSearch finds users for the dashboard.
type UserSearch interface {
	// SearchUsers returns up to limit users whose phone starts with query
	// (with or without its +) or whose name contains it, case-insensitive,
	// ordered by id. The query is text, not a pattern; an empty one, or a
	// limit below 1, finds nobody. An adapter may search only part of a
	// very large user base (its docs say so).
	SearchUsers(ctx context.Context, query string, limit int) ([]User, error)
}

// GroupList lists groups for the dashboard.
type GroupList interface {
	// ListGroups returns up to limit groups (limit below 1: 50) with chat
	// ids above after ("" for the first), ordered by chat id, whose name
	// contains query case-insensitively (query "": every group), members
	// included. The query is text, not a pattern. An adapter may read
	// every group to answer (its docs say so): the dashboard lists rarely.
	ListGroups(ctx context.Context, query, after string, limit int) ([]Group, error)
}
