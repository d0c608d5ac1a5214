package mongo

import (
	"context"
	"fmt"
	"regexp"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// The admin dashboard's collections. Each record is one document, so
// every write is a single atomic operation; uniqueness of usernames is the
// unique {username} index's, which makes it hold across nodes.
const (
	collAdmins        = "admins"
	collAdminSessions = "admin_sessions"
	collAPIKeys       = "api_keys"
	collAudit         = "audit"
	collBans          = "bans"
)

type adminDoc struct {
	ID       string    `bson:"_id"`
	Username string    `bson:"username"`
	Hash     []byte    `bson:"hash,omitempty"`
	TOTP     []byte    `bson:"totp,omitempty"`
	Disabled bool      `bson:"disabled,omitempty"`
	Created  time.Time `bson:"created"`
}

func (d *adminDoc) admin() store.Admin {
	return store.Admin{ID: d.ID, Username: d.Username, PasswordHash: d.Hash, TOTPSecret: d.TOTP,
		Disabled: d.Disabled, CreatedAt: d.Created}
}

// CreateAdmin implements store.Admins: the insert is the check, against
// the unique indexes on _id and username.
func (s *Store) CreateAdmin(ctx context.Context, a store.Admin) error {
	if a.ID == "" || a.Username == "" {
		return fmt.Errorf("create admin: %w", errInvalid("admin id or username"))
	}
	d := adminDoc{ID: a.ID, Username: a.Username, Hash: a.PasswordHash, TOTP: a.TOTPSecret, Disabled: a.Disabled,
		Created: a.CreatedAt.UTC()}
	_, err := s.admins.InsertOne(ctx, d)
	if mongo.IsDuplicateKeyError(err) {
		err = store.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create admin %s: %w", a.ID, err)
	}
	return nil
}

// Admin implements store.Admins.
func (s *Store) Admin(ctx context.Context, id string) (store.Admin, error) {
	var d adminDoc
	if err := s.admins.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.Admin{}, fmt.Errorf("admin %s: %w", id, notFound(err))
	}
	return d.admin(), nil
}

// AdminByUsername implements store.Admins.
func (s *Store) AdminByUsername(ctx context.Context, username string) (store.Admin, error) {
	var d adminDoc
	if err := s.admins.FindOne(ctx, bson.D{{Key: "username", Value: username}}).Decode(&d); err != nil {
		return store.Admin{}, fmt.Errorf("admin by username: %w", notFound(err))
	}
	return d.admin(), nil
}

// UpdateAdmin implements store.Admins: one update that sets every field
// but the username.
func (s *Store) UpdateAdmin(ctx context.Context, a store.Admin) error {
	set := bson.D{
		{Key: "hash", Value: a.PasswordHash},
		{Key: "disabled", Value: a.Disabled},
		{Key: "created", Value: a.CreatedAt.UTC()},
	}
	update := bson.D{{Key: "$set", Value: set}}
	if a.TOTPSecret != nil {
		update[0].Value = append(set, bson.E{Key: "totp", Value: a.TOTPSecret})
	} else {
		update = append(update, bson.E{Key: "$unset", Value: bson.D{{Key: "totp", Value: ""}}})
	}
	res, err := s.admins.UpdateOne(ctx, bson.D{{Key: "_id", Value: a.ID}}, update)
	if err == nil && res.MatchedCount == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("update admin %s: %w", a.ID, err)
	}
	return nil
}

// Admins implements store.Admins. There are a handful: no index.
func (s *Store) Admins(ctx context.Context) ([]store.Admin, error) {
	cur, err := s.admins.Find(ctx, bson.D{},
		options.Find().SetSort(bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}))
	var docs []adminDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("admins: %w", err)
	}
	out := make([]store.Admin, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].admin())
	}
	return out, nil
}

type adminSessionDoc struct {
	ID      string    `bson:"_id"`
	Admin   string    `bson:"admin"`
	CSRF    string    `bson:"csrf"`
	IP      string    `bson:"ip,omitempty"`
	Created time.Time `bson:"created"`
	Expires time.Time `bson:"expires"`
}

// PutAdminSession implements store.Admins. The store uses no TTL index
// (FerretDB has none), so each new session also deletes its admin's
// sessions that had expired by the time it was made (its CreatedAt): an
// admin's sessions stay as few as the browsers it signs in from.
func (s *Store) PutAdminSession(ctx context.Context, as store.AdminSession) error {
	if as.ID == "" || as.AdminID == "" {
		return fmt.Errorf("put admin session: %w", errInvalid("session or admin id"))
	}
	d := adminSessionDoc{ID: as.ID, Admin: as.AdminID, CSRF: as.CSRF, IP: as.IP,
		Created: as.CreatedAt.UTC(), Expires: as.ExpiresAt.UTC()}
	_, err := s.adminSessions.DeleteMany(ctx, bson.D{
		{Key: "admin", Value: as.AdminID},
		{Key: "expires", Value: bson.D{{Key: "$lte", Value: d.Created}}},
	})
	if err == nil {
		_, err = s.adminSessions.ReplaceOne(ctx, bson.D{{Key: "_id", Value: as.ID}}, d, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("put admin session of %s: %w", as.AdminID, err)
	}
	return nil
}

// AdminSession implements store.Admins.
func (s *Store) AdminSession(ctx context.Context, id string, now time.Time) (store.AdminSession, error) {
	var d adminSessionDoc
	err := s.adminSessions.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	if err == nil && !now.Before(d.Expires) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.AdminSession{}, fmt.Errorf("admin session: %w", notFound(err))
	}
	return store.AdminSession{ID: d.ID, AdminID: d.Admin, CSRF: d.CSRF, IP: d.IP,
		CreatedAt: d.Created, ExpiresAt: d.Expires}, nil
}

// DeleteAdminSession implements store.Admins.
func (s *Store) DeleteAdminSession(ctx context.Context, id string) error {
	if _, err := s.adminSessions.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete admin session: %w", err)
	}
	return nil
}

// DeleteAdminSessions implements store.Admins (the {admin} index).
func (s *Store) DeleteAdminSessions(ctx context.Context, adminID string) error {
	if _, err := s.adminSessions.DeleteMany(ctx, bson.D{{Key: "admin", Value: adminID}}); err != nil {
		return fmt.Errorf("delete admin sessions of %s: %w", adminID, err)
	}
	return nil
}

type apiKeyDoc struct {
	ID      string    `bson:"_id"`
	Admin   string    `bson:"admin"`
	Name    string    `bson:"name,omitempty"`
	Hash    []byte    `bson:"hash"`
	Created time.Time `bson:"created"`
}

func (d *apiKeyDoc) key() store.APIKey {
	return store.APIKey{ID: d.ID, AdminID: d.Admin, Name: d.Name, Hash: d.Hash, CreatedAt: d.Created}
}

// PutAPIKey implements store.Admins.
func (s *Store) PutAPIKey(ctx context.Context, k store.APIKey) error {
	if k.ID == "" || k.AdminID == "" {
		return fmt.Errorf("put api key: %w", errInvalid("key or admin id"))
	}
	d := apiKeyDoc{ID: k.ID, Admin: k.AdminID, Name: k.Name, Hash: k.Hash, Created: k.CreatedAt.UTC()}
	if _, err := s.apiKeys.ReplaceOne(ctx, bson.D{{Key: "_id", Value: k.ID}}, d, options.Replace().SetUpsert(true)); err != nil {
		return fmt.Errorf("put api key %s: %w", k.ID, err)
	}
	return nil
}

// APIKey implements store.Admins.
func (s *Store) APIKey(ctx context.Context, id string) (store.APIKey, error) {
	var d apiKeyDoc
	if err := s.apiKeys.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.APIKey{}, fmt.Errorf("api key %s: %w", id, notFound(err))
	}
	return d.key(), nil
}

// APIKeys implements store.Admins (the {admin} index).
func (s *Store) APIKeys(ctx context.Context, adminID string) ([]store.APIKey, error) {
	cur, err := s.apiKeys.Find(ctx, bson.D{{Key: "admin", Value: adminID}},
		options.Find().SetSort(bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}))
	var docs []apiKeyDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("api keys of %s: %w", adminID, err)
	}
	out := make([]store.APIKey, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].key())
	}
	return out, nil
}

// DeleteAPIKey implements store.Admins.
func (s *Store) DeleteAPIKey(ctx context.Context, id string) error {
	if _, err := s.apiKeys.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete api key %s: %w", id, err)
	}
	return nil
}

// auditDoc is an audit entry; its _id is the entry's id, which sorts by
// time, so the _id index orders the log.
type auditDoc struct {
	ID     string `bson:"_id"`
	TS     int64  `bson:"ts"`
	Actor  string `bson:"actor"`
	Action string `bson:"action"`
	Target string `bson:"target,omitempty"`
	Detail string `bson:"detail,omitempty"`
	IP     string `bson:"ip,omitempty"`
}

// AppendAudit implements store.Admins.
func (s *Store) AppendAudit(ctx context.Context, e store.AuditEntry) error {
	if e.ID == "" {
		return fmt.Errorf("append audit: %w", errInvalid("entry id"))
	}
	_, err := s.audit.InsertOne(ctx, auditDoc{ID: e.ID, TS: e.TS, Actor: e.Actor, Action: e.Action,
		Target: e.Target, Detail: e.Detail, IP: e.IP})
	if mongo.IsDuplicateKeyError(err) {
		err = store.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("append audit %s: %w", e.ID, err)
	}
	return nil
}

// Audit implements store.Admins: a backward walk of the _id index.
func (s *Store) Audit(ctx context.Context, before string, limit int) ([]store.AuditEntry, error) {
	filter := bson.D{}
	if before != "" {
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$lt", Value: before}}}}
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.audit.Find(ctx, filter, opts)
	var docs []auditDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("audit: %w", err)
	}
	out := make([]store.AuditEntry, 0, len(docs))
	for _, d := range docs {
		out = append(out, store.AuditEntry{ID: d.ID, TS: d.TS, Actor: d.Actor, Action: d.Action,
			Target: d.Target, Detail: d.Detail, IP: d.IP})
	}
	return out, nil
}

// banDoc is a user's ban; _id is the user id, so a user has at most one.
type banDoc struct {
	ID     string `bson:"_id"`
	Reason string `bson:"reason,omitempty"`
	By     string `bson:"by"`
	TS     int64  `bson:"ts"`
}

func (d *banDoc) ban() store.Ban {
	return store.Ban{UserID: d.ID, Reason: d.Reason, By: d.By, TS: d.TS}
}

// SetBan implements store.Bans. Users are never deleted, so checking the
// user first cannot race with its removal.
func (s *Store) SetBan(ctx context.Context, b store.Ban) error {
	if b.UserID == "" {
		return fmt.Errorf("ban: %w", errInvalid("user id"))
	}
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: b.UserID}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if err == nil {
		d := banDoc{ID: b.UserID, Reason: b.Reason, By: b.By, TS: b.TS}
		_, err = s.bans.ReplaceOne(ctx, bson.D{{Key: "_id", Value: b.UserID}}, d, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("ban %s: %w", b.UserID, notFound(err))
	}
	return nil
}

// Unban implements store.Bans.
func (s *Store) Unban(ctx context.Context, userID string) error {
	if _, err := s.bans.DeleteOne(ctx, bson.D{{Key: "_id", Value: userID}}); err != nil {
		return fmt.Errorf("unban %s: %w", userID, err)
	}
	return nil
}

// BanOf implements store.Bans.
func (s *Store) BanOf(ctx context.Context, userID string) (store.Ban, error) {
	var d banDoc
	if err := s.bans.FindOne(ctx, bson.D{{Key: "_id", Value: userID}}).Decode(&d); err != nil {
		return store.Ban{}, fmt.Errorf("ban of %s: %w", userID, notFound(err))
	}
	return d.ban(), nil
}

// Banned implements store.Bans (the {ts} index).
func (s *Store) Banned(ctx context.Context, limit int) ([]store.Ban, error) {
	opts := options.Find().SetSort(bson.D{{Key: "ts", Value: -1}, {Key: "_id", Value: -1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.bans.Find(ctx, bson.D{}, opts)
	var docs []banDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("banned: %w", err)
	}
	out := make([]store.Ban, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].ban())
	}
	return out, nil
}

// SearchUsers implements store.UserSearch: one query, a regex anchored at
// the start of phone or a case-insensitive one anywhere in name, in _id
// order. No index serves the name: a scan of users until the limit is
// found, acceptable for the dashboard's rare searches. The query is
// quoted: it is text to find, not a pattern.
func (s *Store) SearchUsers(ctx context.Context, query string, limit int) ([]store.User, error) {
	if query == "" || limit <= 0 {
		return nil, nil
	}
	or := bson.A{bson.D{{Key: "name", Value: bson.D{
		{Key: "$regex", Value: regexp.QuoteMeta(query)}, {Key: "$options", Value: "i"},
	}}}}
	if digits := strings.TrimPrefix(query, "+"); digits != "" {
		or = append(or, bson.D{{Key: "phone", Value: bson.D{
			{Key: "$regex", Value: `^\+` + regexp.QuoteMeta(digits)},
		}}})
	}
	cur, err := s.users.Find(ctx, bson.D{{Key: "$or", Value: or}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	var docs []userDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("search users: %w", err)
	}
	out := make([]store.User, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].user())
	}
	return out, nil
}
