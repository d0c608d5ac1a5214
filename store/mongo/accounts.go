package mongo

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// This file holds the small records: users, devices, codes and secrets.
// Each is one document, and every read-modify-write on one is a single
// atomic MongoDB operation (an upsert, $inc, a filtered update or delete),
// so none needs a lock or a transaction.

type userDoc struct {
	ID       string `bson:"_id"`
	Phone    string `bson:"phone"`
	Name     string `bson:"name,omitempty"`
	About    string `bson:"about,omitempty"`
	HideRead bool   `bson:"hide_read,omitempty"`
	// Privacy: who sees last seen and online, who may add to groups.
	LastSeen  string    `bson:"p_seen,omitempty"`
	Online    string    `bson:"p_online,omitempty"`
	GroupsAdd string    `bson:"p_groups,omitempty"`
	Email     string    `bson:"email,omitempty"`
	Created   time.Time `bson:"created"`
}

func (d *userDoc) user() store.User {
	return store.User{ID: d.ID, Phone: d.Phone, Name: d.Name, About: d.About, HideReadReceipts: d.HideRead,
		Privacy: store.Privacy{LastSeen: d.LastSeen, Online: d.Online, GroupsAdd: d.GroupsAdd}, Email: d.Email, CreatedAt: d.Created}
}

// EnsureUser implements store.Users. The unique index on phone makes the
// insert the arbiter: of concurrent calls for one phone, one inserts and the
// others get a duplicate key and read the winner.
func (s *Store) EnsureUser(ctx context.Context, phone, newID string, now time.Time) (store.User, bool, error) {
	if phone == "" {
		return store.User{}, false, errInvalid("phone")
	}
	// Most calls are sign-ins of existing users: one read answers them.
	u, err := s.UserByPhone(ctx, phone)
	if err == nil || !errors.Is(err, store.ErrNotFound) {
		return u, false, err
	}
	if !validID(newID) {
		return store.User{}, false, errInvalid("user id")
	}
	d := userDoc{ID: newID, Phone: phone, Created: now.UTC().Truncate(time.Millisecond)}
	_, err = s.users.InsertOne(ctx, d)
	if err == nil {
		return d.user(), true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return store.User{}, false, fmt.Errorf("ensure user: %w", err)
	}
	u, err = s.UserByPhone(ctx, phone)
	if errors.Is(err, store.ErrNotFound) {
		// The duplicate was the id, not the phone.
		return store.User{}, false, fmt.Errorf("ensure user: id %s is taken: %w", newID, store.ErrConflict)
	}
	return u, false, err
}

// User implements store.Users.
func (s *Store) User(ctx context.Context, id string) (store.User, error) {
	var d userDoc
	if err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.User{}, fmt.Errorf("user %s: %w", id, notFound(err))
	}
	return d.user(), nil
}

// UserByPhone implements store.Users.
func (s *Store) UserByPhone(ctx context.Context, phone string) (store.User, error) {
	var d userDoc
	if err := s.users.FindOne(ctx, bson.D{{Key: "phone", Value: phone}}).Decode(&d); err != nil {
		return store.User{}, fmt.Errorf("user by phone: %w", notFound(err))
	}
	return d.user(), nil
}

// UsersByPhones implements store.Users. Users come in the order of phones,
// each once.
func (s *Store) UsersByPhones(ctx context.Context, phones []string) ([]store.User, error) {
	if len(phones) == 0 {
		return nil, nil
	}
	var docs []userDoc
	cur, err := s.users.Find(ctx, bson.D{{Key: "phone", Value: bson.D{{Key: "$in", Value: phones}}}})
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("users by phones: %w", err)
	}
	byPhone := make(map[string]*userDoc, len(docs))
	for i := range docs {
		byPhone[docs[i].Phone] = &docs[i]
	}
	out := make([]store.User, 0, len(docs))
	for _, p := range phones {
		if d := byPhone[p]; d != nil {
			out = append(out, d.user())
			delete(byPhone, p)
		}
	}
	return out, nil
}

// UpdateProfile implements store.Users: one findOneAndUpdate that sets only
// the fields p has, so that changes of different fields never undo each
// other.
func (s *Store) UpdateProfile(ctx context.Context, id string, p store.ProfilePatch) (store.User, error) {
	var set bson.D
	for _, f := range []struct {
		key string
		v   *string
	}{{"name", p.Name}, {"about", p.About}, {"p_seen", p.LastSeen}, {"p_online", p.Online}, {"p_groups", p.GroupsAdd}, {"email", p.Email}} {
		if f.v != nil {
			set = append(set, bson.E{Key: f.key, Value: *f.v})
		}
	}
	if p.HideReadReceipts != nil {
		set = append(set, bson.E{Key: "hide_read", Value: *p.HideReadReceipts})
	}
	var d userDoc
	var err error
	if len(set) == 0 {
		err = s.users.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d)
	} else {
		err = s.users.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: id}}, bson.D{{Key: "$set", Value: set}},
			options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	}
	if errors.Is(err, mongo.ErrNoDocuments) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.User{}, fmt.Errorf("update profile %s: %w", id, err)
	}
	return d.user(), nil
}

// deviceDoc is a device and the two numbers of its inbox (see inbox.go).
type deviceDoc struct {
	ID           string    `bson:"_id"`
	User         string    `bson:"user"`
	Name         string    `bson:"name"`
	Platform     string    `bson:"platform"`
	Created      time.Time `bson:"created"`
	LastSeen     time.Time `bson:"last_seen"`
	RefreshHash  []byte    `bson:"refresh_hash"`
	PrevRefresh  []byte    `bson:"prev_refresh_hash,omitempty"`
	RefreshUntil time.Time `bson:"refresh_expires"`
	PushProvider string    `bson:"push_provider,omitempty"`
	PushToken    string    `bson:"push_token,omitempty"`
	Hint         int64     `bson:"hint"`
	Floor        int64     `bson:"floor"`
}

// deviceProjection leaves out the ack journal, which can hold hundreds of
// entries, from reads of the device itself.
var deviceProjection = bson.D{{Key: fieldJournal, Value: 0}}

func (d *deviceDoc) device() store.Device {
	return store.Device{
		ID: d.ID, UserID: d.User, Name: d.Name, Platform: d.Platform,
		CreatedAt: d.Created, LastSeen: d.LastSeen,
		RefreshHash: d.RefreshHash, PrevRefreshHash: d.PrevRefresh, RefreshExpires: d.RefreshUntil,
		PushProvider: d.PushProvider, PushToken: d.PushToken,
	}
}

// CreateDevice implements store.Devices. The user must exist (ErrNotFound)
// and the id must be new (ErrConflict).
func (s *Store) CreateDevice(ctx context.Context, d store.Device) error {
	if !validID(d.ID) || !validID(d.UserID) {
		return errInvalid("device or user id")
	}
	// A new device starts at the end of its user's feed: what is there
	// was for the other devices.
	var fh feedHead
	err := parallel(
		func() error {
			return s.users.FindOne(ctx, bson.D{{Key: "_id", Value: d.UserID}},
				options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		},
		func() error {
			err := s.feeds.FindOne(ctx, bson.D{{Key: "_id", Value: d.UserID}}).Decode(&fh)
			if errors.Is(err, mongo.ErrNoDocuments) {
				return nil
			}
			return err
		})
	if err != nil {
		return fmt.Errorf("create device %s: user %s: %w", d.ID, d.UserID, notFound(err))
	}
	doc := deviceDoc{
		ID: d.ID, User: d.UserID, Name: d.Name, Platform: d.Platform,
		Created: d.CreatedAt, LastSeen: d.LastSeen,
		RefreshHash: bytes.Clone(d.RefreshHash), PrevRefresh: bytes.Clone(d.PrevRefreshHash), RefreshUntil: d.RefreshExpires,
		PushProvider: d.PushProvider, PushToken: d.PushToken, Floor: max(fh.Hint, fh.Trim),
	}
	if _, err := s.devices.InsertOne(ctx, doc); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			err = store.ErrConflict
		}
		return fmt.Errorf("create device %s: %w", d.ID, err)
	}
	return nil
}

// Device implements store.Devices.
func (s *Store) Device(ctx context.Context, id string) (store.Device, error) {
	var d deviceDoc
	if err := s.devices.FindOne(ctx, bson.D{{Key: "_id", Value: id}}, options.FindOne().SetProjection(deviceProjection)).Decode(&d); err != nil {
		return store.Device{}, fmt.Errorf("device %s: %w", id, notFound(err))
	}
	return d.device(), nil
}

// UserDevices implements store.Devices; devices come in id order, which is
// creation order.
func (s *Store) UserDevices(ctx context.Context, userID string) ([]store.Device, error) {
	var docs []deviceDoc
	cur, err := s.devices.Find(ctx, bson.D{{Key: "user", Value: userID}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(deviceProjection))
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("devices of %s: %w", userID, err)
	}
	out := make([]store.Device, len(docs))
	for i := range docs {
		out[i] = docs[i].device()
	}
	return out, nil
}

// updateDevice applies update to device id; ErrNotFound if there is none.
func (s *Store) updateDevice(ctx context.Context, id string, update bson.D) error {
	res, err := s.devices.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}}, update)
	if err == nil && res.MatchedCount == 0 {
		err = store.ErrNotFound
	}
	return err
}

// RotateRefresh implements store.Devices: a compare-and-swap, the current
// hash being the filter, so that of concurrent rotations of one hash
// exactly one matches.
func (s *Store) RotateRefresh(ctx context.Context, deviceID string, oldHash, newHash []byte, expires time.Time) error {
	res, err := s.devices.UpdateOne(ctx,
		bson.D{{Key: "_id", Value: deviceID}, {Key: "refresh_hash", Value: oldHash}},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "refresh_hash", Value: newHash},
			{Key: "prev_refresh_hash", Value: oldHash},
			{Key: "refresh_expires", Value: expires},
		}}})
	if err == nil && res.MatchedCount == 0 {
		// Tell a missing device from a stale hash.
		err = s.devices.FindOne(ctx, bson.D{{Key: "_id", Value: deviceID}},
			options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
		if err == nil {
			err = store.ErrConflict
		}
		err = notFound(err)
	}
	if err != nil {
		return fmt.Errorf("rotate refresh of %s: %w", deviceID, err)
	}
	return nil
}

// TouchDevice implements store.Devices.
func (s *Store) TouchDevice(ctx context.Context, id string, lastSeen time.Time) error {
	if err := s.updateDevice(ctx, id, bson.D{{Key: "$set", Value: bson.D{{Key: "last_seen", Value: lastSeen}}}}); err != nil {
		return fmt.Errorf("touch device %s: %w", id, err)
	}
	return nil
}

// SetPush implements store.Devices.
func (s *Store) SetPush(ctx context.Context, id, provider, token string) error {
	err := s.updateDevice(ctx, id, bson.D{{Key: "$set", Value: bson.D{
		{Key: "push_provider", Value: provider}, {Key: "push_token", Value: token},
	}}})
	if err != nil {
		return fmt.Errorf("set push of %s: %w", id, err)
	}
	return nil
}

// DeleteDevice implements store.Devices. The device goes first: from then
// on sends skip it and acks fail. Its idempotency keys stay, inside its
// messages; device ids are never reused, so they can never match again.
func (s *Store) DeleteDevice(ctx context.Context, id string) error {
	var dev devHead
	err := s.devices.FindOneAndDelete(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&dev)
	if err == nil && validID(id) {
		// A per-device inbox from before feeds, if it is still there.
		_, err = s.inbox.DeleteMany(ctx, idRange(id))
	}
	if err != nil {
		return fmt.Errorf("delete device %s: %w", id, notFound(err))
	}
	// The device may have been the slowest of its user's: the trim point
	// moves up to the next one (all the way, if it was the last). The
	// device is gone whether or not this works; a failed trim is left to
	// the next ack of another device that trims.
	if err := s.trimAfterDevice(ctx, dev.User); err != nil {
		s.log.Warn("store/mongo: trimming a feed after deleting a device failed", "device", id, "user", dev.User, "err", err)
	}
	return nil
}

// trimAfterDevice trims user's feed up to its slowest device's floor, or
// wholly when no device is left.
func (s *Store) trimAfterDevice(ctx context.Context, user string) error {
	fh, floors, err := s.trimState(ctx, user)
	if err != nil || fh.User == "" {
		return err
	}
	to := fh.Hint
	for _, f := range floors {
		to = min(to, f.Floor)
	}
	return s.trimFeed(ctx, user, fh.Trim, to, nil, 0)
}

type codeDoc struct {
	Phone       string    `bson:"_id"`
	Hash        []byte    `bson:"hash"`
	Expires     time.Time `bson:"expires"`
	Attempts    int       `bson:"attempts"`
	Sent        time.Time `bson:"sent"`
	WindowStart time.Time `bson:"window_start"`
	WindowCount int       `bson:"window_count"`
}

func (d *codeDoc) code() store.Code {
	return store.Code{Phone: d.Phone, Hash: d.Hash, ExpiresAt: d.Expires, Attempts: d.Attempts,
		SentAt: d.Sent, WindowStart: d.WindowStart, WindowCount: d.WindowCount}
}

// PutCode implements store.Codes. Expiry is the caller's to check against
// ExpiresAt: the store keeps codes until they are replaced or deleted (no
// TTL index, which FerretDB lacks and which would not be exact anyway).
func (s *Store) PutCode(ctx context.Context, c store.Code) error {
	if c.Phone == "" {
		return errInvalid("phone")
	}
	d := codeDoc{Phone: c.Phone, Hash: c.Hash, Expires: c.ExpiresAt, Attempts: c.Attempts,
		Sent: c.SentAt, WindowStart: c.WindowStart, WindowCount: c.WindowCount}
	_, err := s.codes.ReplaceOne(ctx, bson.D{{Key: "_id", Value: c.Phone}}, d, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("put code: %w", err)
	}
	return nil
}

// Code implements store.Codes.
func (s *Store) Code(ctx context.Context, phone string) (store.Code, error) {
	var d codeDoc
	if err := s.codes.FindOne(ctx, bson.D{{Key: "_id", Value: phone}}).Decode(&d); err != nil {
		return store.Code{}, fmt.Errorf("code: %w", notFound(err))
	}
	return d.code(), nil
}

// CountAttempt implements store.Codes: one $inc, returning the document
// after it.
func (s *Store) CountAttempt(ctx context.Context, phone string) (store.Code, error) {
	var d codeDoc
	err := s.codes.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: phone}},
		bson.D{{Key: "$inc", Value: bson.D{{Key: "attempts", Value: 1}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.After)).Decode(&d)
	if err != nil {
		return store.Code{}, fmt.Errorf("count attempt: %w", notFound(err))
	}
	return d.code(), nil
}

// DeleteCode implements store.Codes: of concurrent deletes, exactly one
// deletes a document, and only that one succeeds.
func (s *Store) DeleteCode(ctx context.Context, phone string) error {
	res, err := s.codes.DeleteOne(ctx, bson.D{{Key: "_id", Value: phone}})
	if err == nil && res.DeletedCount == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("delete code: %w", err)
	}
	return nil
}

type secretDoc struct {
	Name  string `bson:"_id"`
	Value []byte `bson:"value"`
}

// Secret implements store.Secrets: read, and if absent insert; a
// duplicate key means another node inserted first, and its value wins.
func (s *Store) Secret(ctx context.Context, name string, fresh []byte) ([]byte, error) {
	if name == "" || len(fresh) == 0 {
		return nil, errInvalid("secret")
	}
	for range 3 {
		var d secretDoc
		err := s.secrets.FindOne(ctx, bson.D{{Key: "_id", Value: name}}).Decode(&d)
		if err == nil {
			return d.Value, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
		_, err = s.secrets.InsertOne(ctx, secretDoc{Name: name, Value: bytes.Clone(fresh)})
		if err == nil {
			return bytes.Clone(fresh), nil
		}
		if !mongo.IsDuplicateKeyError(err) {
			return nil, fmt.Errorf("secret %s: %w", name, err)
		}
	}
	return nil, fmt.Errorf("secret %s: inserted and gone again: %w", name, store.ErrConflict)
}

// ReplaceSecret implements store.Secrets: one updateOne filtered on the
// current value, so of concurrent replacements one matches.
func (s *Store) ReplaceSecret(ctx context.Context, name string, old, next []byte) error {
	if name == "" || len(next) == 0 {
		return errInvalid("secret")
	}
	res, err := s.secrets.UpdateOne(ctx, bson.D{{Key: "_id", Value: name}, {Key: "value", Value: old}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: bytes.Clone(next)}}}})
	if err != nil {
		return fmt.Errorf("replace secret %s: %w", name, err)
	}
	if res.MatchedCount == 1 {
		return nil
	}
	n, err := s.secrets.CountDocuments(ctx, bson.D{{Key: "_id", Value: name}})
	switch {
	case err != nil:
		return fmt.Errorf("replace secret %s: %w", name, err)
	case n == 0:
		return fmt.Errorf("replace secret %s: %w", name, store.ErrNotFound)
	}
	return fmt.Errorf("replace secret %s: %w", name, store.ErrConflict)
}
