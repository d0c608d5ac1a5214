package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// The push queue is one collection (see the package docs, "Pushes"): a
// document per device, _id the device id, holding its queued push (due
// and the fields beside it) and the time of its last push (sent), which
// outlives the push for the cooldown. Every operation is one conditional
// write of that document; the sparse {due} index holds the documents with
// a push, so that claims and PendingPushes never read a cooldown.
const (
	collPushes = "pushes"

	pushDue   = "due"
	pushLease = "lease"
	pushUntil = "until" // the lease's end
	pushSent  = "sent"
	// pushTag is rewritten with a random value by every write, so that
	// QueuePush, which decides from what it read, can write only if
	// nothing changed since: a counter could come back to the value read
	// after a CancelPush deleted the document and another push created it.
	pushTag = "v"
)

// pushFields are the fields of a queued push besides due, which DonePush
// removes with it.
var pushFields = []string{"user", "kind", "chat", "msg", "from", "text", pushDue, "att", pushLease, pushUntil}

type pushDoc struct {
	ID       string     `bson:"_id"`
	User     string     `bson:"user,omitempty"`
	Kind     string     `bson:"kind,omitempty"`
	Chat     string     `bson:"chat,omitempty"`
	Msg      string     `bson:"msg,omitempty"`
	From     string     `bson:"from,omitempty"`
	Text     string     `bson:"text,omitempty"`
	Due      *time.Time `bson:"due,omitempty"`
	Attempts int        `bson:"att,omitempty"`
	Lease    string     `bson:"lease,omitempty"`
	Until    *time.Time `bson:"until,omitempty"`
	Sent     *time.Time `bson:"sent,omitempty"`
	Tag      string     `bson:"v"`
}

func (d *pushDoc) job() store.PushJob {
	j := store.PushJob{DeviceID: d.ID, UserID: d.User, Kind: d.Kind, ChatID: d.Chat, MsgID: d.Msg, From: d.From,
		Text: d.Text, Attempts: d.Attempts, Lease: d.Lease}
	if d.Due != nil {
		j.Due = d.Due.UTC()
	}
	return j
}

// millis is t as the server keeps it, in whole milliseconds: computed
// times must compare as the stored ones will.
func millis(t time.Time) time.Time { return time.UnixMilli(t.UnixMilli()).UTC() }

// setPush is the update that makes the document's push j, due at due,
// unclaimed and never tried. Empty fields are unset rather than stored
// empty, as everywhere in the store.
func setPush(j *store.PushJob, due time.Time) bson.D {
	set := bson.D{{Key: pushDue, Value: due}, {Key: pushTag, Value: newToken()}}
	unset := bson.D{{Key: "att", Value: ""}, {Key: pushLease, Value: ""}, {Key: pushUntil, Value: ""}}
	for _, f := range []struct{ k, v string }{
		{"user", j.UserID}, {"kind", j.Kind}, {"chat", j.ChatID}, {"msg", j.MsgID}, {"from", j.From}, {"text", j.Text},
	} {
		if f.v != "" {
			set = append(set, bson.E{Key: f.k, Value: f.v})
		} else {
			unset = append(unset, bson.E{Key: f.k, Value: ""})
		}
	}
	return bson.D{{Key: "$set", Value: set}, {Key: "$unset", Value: unset}}
}

// QueuePush implements store.Pushes. The new due time depends on the
// document (the last push's time, the queued push's due), which an update
// cannot read without a pipeline: so it reads the document, decides, and
// writes on the condition that its tag is still the one read, or inserts
// if there was none; losing a race to another write starts over.
func (s *Store) QueuePush(ctx context.Context, j store.PushJob, cooldown time.Duration) error {
	if !validID(j.DeviceID) {
		return fmt.Errorf("queue push: %w", errInvalid("device id"))
	}
	id := bson.D{{Key: "_id", Value: j.DeviceID}}
	for {
		var d pushDoc
		err := s.pushes.FindOne(ctx, id).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			due := millis(j.Due)
			doc := pushDoc{ID: j.DeviceID, User: j.UserID, Kind: j.Kind, Chat: j.ChatID, Msg: j.MsgID, From: j.From,
				Text: j.Text, Due: &due, Tag: newToken()}
			_, err = s.pushes.InsertOne(ctx, doc)
			if mongo.IsDuplicateKeyError(err) {
				continue // queued meanwhile: decide again on that
			}
			if err != nil {
				return fmt.Errorf("queue push to %s: %w", j.DeviceID, err)
			}
			return nil
		}
		if err != nil {
			return fmt.Errorf("queue push to %s: %w", j.DeviceID, err)
		}
		due := millis(j.Due)
		if d.Sent != nil && cooldown > 0 {
			due = maxTime(due, millis(d.Sent.Add(cooldown)))
		}
		if d.Due != nil {
			if j.Kind != store.EventMessage || d.Kind == store.EventMessage {
				return nil // the burst's first push names it
			}
			due = minTime(due, *d.Due)
		}
		res, err := s.pushes.UpdateOne(ctx, append(id, bson.E{Key: pushTag, Value: d.Tag}), setPush(&j, due))
		if err != nil {
			return fmt.Errorf("queue push to %s: %w", j.DeviceID, err)
		}
		if res.MatchedCount == 1 {
			return nil
		}
	}
}

func maxTime(a, b time.Time) time.Time {
	if b.After(a) {
		return b
	}
	return a
}

func minTime(a, b time.Time) time.Time {
	if b.Before(a) {
		return b
	}
	return a
}

// CancelPush implements store.Pushes: the document goes, push and
// cooldown.
func (s *Store) CancelPush(ctx context.Context, deviceID string) error {
	if _, err := s.pushes.DeleteOne(ctx, bson.D{{Key: "_id", Value: deviceID}}); err != nil {
		return fmt.Errorf("cancel push to %s: %w", deviceID, err)
	}
	return nil
}

// ClaimPushes implements store.Pushes: one findOneAndUpdate per push,
// each taking the earliest due push whose lease, if any, has ended. The
// filter is checked again by the write itself, so two claimers can never
// both lease one push; a claimer that loses a push to another takes the
// next.
func (s *Store) ClaimPushes(ctx context.Context, now, until time.Time, limit int) ([]store.PushJob, error) {
	now, until = millis(now), millis(until)
	filter := bson.D{
		{Key: pushDue, Value: bson.D{{Key: "$lte", Value: now}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: pushUntil, Value: bson.D{{Key: "$exists", Value: false}}}},
			bson.D{{Key: pushUntil, Value: bson.D{{Key: "$lte", Value: now}}}},
		}},
	}
	// No projection: FerretDB v1 does not take one in findAndModify.
	opts := options.FindOneAndUpdate().SetSort(bson.D{{Key: pushDue, Value: 1}}).SetReturnDocument(options.After)
	var out []store.PushJob
	for len(out) < limit {
		update := bson.D{{Key: "$set", Value: bson.D{
			{Key: pushLease, Value: newToken()}, {Key: pushUntil, Value: until}, {Key: pushTag, Value: newToken()},
		}}}
		var d pushDoc
		err := s.pushes.FindOneAndUpdate(ctx, filter, update, opts).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			break
		}
		if err != nil {
			if len(out) > 0 {
				// These are leased already: dropped, they would wait
				// for their lease to end. The next claim meets the
				// error again if it lasts.
				return out, nil
			}
			return nil, fmt.Errorf("claim pushes: %w", err)
		}
		out = append(out, d.job())
	}
	return out, nil
}

// DonePush implements store.Pushes: the push's fields give way to the
// time of the push, in a write filtered on the lease.
func (s *Store) DonePush(ctx context.Context, deviceID, lease string, sentAt time.Time) error {
	unset := bson.D{}
	for _, f := range pushFields {
		unset = append(unset, bson.E{Key: f, Value: ""})
	}
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: pushSent, Value: millis(sentAt)}, {Key: pushTag, Value: newToken()}}},
		{Key: "$unset", Value: unset},
	}
	if err := s.leasedUpdate(ctx, deviceID, lease, update); err != nil {
		return fmt.Errorf("finish push to %s: %w", deviceID, err)
	}
	return nil
}

// RetryPush implements store.Pushes, in a write filtered on the lease.
func (s *Store) RetryPush(ctx context.Context, deviceID, lease string, due time.Time) error {
	update := bson.D{
		{Key: "$set", Value: bson.D{{Key: pushDue, Value: millis(due)}, {Key: pushTag, Value: newToken()}}},
		{Key: "$inc", Value: bson.D{{Key: "att", Value: 1}}},
		{Key: "$unset", Value: bson.D{{Key: pushLease, Value: ""}, {Key: pushUntil, Value: ""}}},
	}
	if err := s.leasedUpdate(ctx, deviceID, lease, update); err != nil {
		return fmt.Errorf("retry push to %s: %w", deviceID, err)
	}
	return nil
}

// leasedUpdate applies update to deviceID's push if lease is its lease;
// store.ErrConflict if it is not.
func (s *Store) leasedUpdate(ctx context.Context, deviceID, lease string, update bson.D) error {
	if lease == "" {
		return store.ErrConflict // an unclaimed push has no lease to match
	}
	res, err := s.pushes.UpdateOne(ctx, bson.D{{Key: "_id", Value: deviceID}, {Key: pushLease, Value: lease}}, update)
	if err != nil {
		return err
	}
	if res.MatchedCount == 0 {
		return store.ErrConflict
	}
	return nil
}

// PendingPushes implements store.Pushes: the documents with a push, which
// are those the sparse {due} index holds.
func (s *Store) PendingPushes(ctx context.Context) (int, error) {
	n, err := s.pushes.CountDocuments(ctx, bson.D{{Key: pushDue, Value: bson.D{{Key: "$exists", Value: true}}}})
	if err != nil {
		return 0, fmt.Errorf("pending pushes: %w", err)
	}
	return int(n), nil
}
