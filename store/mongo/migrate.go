package mongo

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
)

// migrationFeeds names the secrets document that says a database's
// per-device inboxes were moved to feeds.
const migrationFeeds = "migration:feeds"

// migrateInboxes moves a database written before feeds to them, once:
//
//  1. every user whose devices had cursors gets a feed that starts above
//     all of them (a device resumes after the cursor it holds, so nothing
//     may be placed at or below it);
//  2. every event still in a per-device inbox becomes an entry of its
//     user's feed for that one device, in cursor order, and is deleted
//     from the inbox once placed;
//  3. a secrets document records that it is done.
//
// One node does it, under a lease (a secrets document naming it, renewed
// after every page) that the others wait on; a lease not renewed for
// migrationLease is taken over. Each step may be repeated: a node dying
// halfway leaves the rest to the next one, and an event placed but not
// yet deleted is placed again (shown twice; clients deduplicate by
// msg_id). Nodes of the previous version must all be stopped first: they
// would keep writing per-device inboxes that nothing reads any more.
func (s *Store) migrateInboxes(ctx context.Context) error {
	token := newToken()
	for {
		err := s.secrets.FindOne(ctx, bson.D{{Key: "_id", Value: migrationFeeds}}).Err()
		if err == nil {
			return nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			return err
		}
		held, err := s.takeMigrationLease(ctx, token)
		if err != nil {
			return err
		}
		if held {
			break
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("waiting for another node to move the inboxes: %w", ctx.Err())
		case <-time.After(500 * time.Millisecond):
		}
	}
	defer func() {
		dctx, cancel := s.detached(ctx)
		defer cancel()
		_, _ = s.secrets.DeleteOne(dctx, bson.D{{Key: "_id", Value: migrationLock}, {Key: "value", Value: []byte(token)}})
	}()
	if err := s.startFeeds(ctx); err != nil {
		return fmt.Errorf("start feeds: %w", err)
	}
	moved := 0
	for {
		if err := s.renewMigrationLease(ctx, token); err != nil {
			return err
		}
		n, err := s.moveInboxPage(ctx, 1000)
		if err != nil {
			return fmt.Errorf("move inbox events: %w", err)
		}
		if n == 0 {
			break
		}
		moved += n
	}
	if moved > 0 {
		s.log.Info("store/mongo: moved per-device inbox events to feeds", "events", moved)
	}
	return s.insertIgnoringDuplicates(ctx, s.secrets, []any{bson.D{{Key: "_id", Value: migrationFeeds}, {Key: "value", Value: []byte("done")}}})
}

// migrationLock names the secrets document of the migration's lease.
const migrationLock = "migration:feeds:lock"

// migrationLease is how long a migrating node's lease lasts unrenewed.
const migrationLease = time.Minute

// leaseDoc is the migration's lease: value names its holder.
type leaseDoc struct {
	Name  string    `bson:"_id"`
	Value []byte    `bson:"value"`
	At    time.Time `bson:"at"`
}

// takeMigrationLease takes the lease for token, or takes over one not
// renewed for migrationLease; false if another node holds it.
func (s *Store) takeMigrationLease(ctx context.Context, token string) (bool, error) {
	now := time.Now()
	_, err := s.secrets.InsertOne(ctx, leaseDoc{Name: migrationLock, Value: []byte(token), At: now})
	if err == nil {
		return true, nil
	}
	if !mongo.IsDuplicateKeyError(err) {
		return false, err
	}
	var l leaseDoc
	if err := s.secrets.FindOne(ctx, bson.D{{Key: "_id", Value: migrationLock}}).Decode(&l); err != nil {
		if errors.Is(err, mongo.ErrNoDocuments) {
			return false, nil // released meanwhile: try again
		}
		return false, err
	}
	if now.Sub(l.At) < migrationLease {
		return false, nil
	}
	// Taken over by a compare-and-set on the old holder.
	res, err := s.secrets.UpdateOne(ctx, bson.D{{Key: "_id", Value: migrationLock}, {Key: "value", Value: l.Value}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "value", Value: []byte(token)}, {Key: "at", Value: now}}}})
	if err != nil {
		return false, err
	}
	if res.MatchedCount == 1 {
		s.log.Warn("store/mongo: took over moving the inboxes from a node that stopped", "holder", string(l.Value))
	}
	return res.MatchedCount == 1, nil
}

// renewMigrationLease renews token's lease, and fails if it was taken over.
func (s *Store) renewMigrationLease(ctx context.Context, token string) error {
	res, err := s.secrets.UpdateOne(ctx, bson.D{{Key: "_id", Value: migrationLock}, {Key: "value", Value: []byte(token)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "at", Value: time.Now()}}}})
	if err == nil && res.MatchedCount == 0 {
		err = errors.New("the lease on moving the inboxes was taken over")
	}
	return err
}

// startFeeds creates (or raises) the feed heads of users whose devices
// hold cursors of per-device inboxes.
func (s *Store) startFeeds(ctx context.Context) error {
	cur, err := s.devices.Find(ctx, bson.D{{Key: "$or", Value: bson.A{
		bson.D{{Key: "hint", Value: bson.D{{Key: "$gt", Value: 0}}}},
		bson.D{{Key: "floor", Value: bson.D{{Key: "$gt", Value: 0}}}},
	}}}, options.Find().SetProjection(bson.D{{Key: "user", Value: 1}, {Key: "hint", Value: 1}, {Key: "floor", Value: 1},
		{Key: fieldJournal + ".cur", Value: 1}, {Key: fieldJournal + ".done", Value: 1}}))
	if err != nil {
		return err
	}
	start := map[string]int64{}
	for cur.Next(ctx) {
		var h struct {
			User    string      `bson:"user"`
			Hint    int64       `bson:"hint"`
			Floor   int64       `bson:"floor"`
			Journal *ackJournal `bson:"j"`
		}
		if err := cur.Decode(&h); err != nil {
			return err
		}
		start[h.User] = max(start[h.User], h.Hint, h.Floor)
		if j := h.Journal; j != nil && !j.Done {
			// An ack that stopped will raise the floor to its cursor,
			// which may be above the hint (the device acked an event
			// whose writer had not raised it yet).
			start[h.User] = max(start[h.User], j.Cursor)
		}
	}
	if err := cur.Err(); err != nil {
		return err
	}
	models := make([]mongo.WriteModel, 0, len(start))
	for u, c := range start {
		models = append(models, mongo.NewUpdateOneModel().SetUpsert(true).
			SetFilter(bson.D{{Key: "_id", Value: u}}).
			SetUpdate(bson.D{
				{Key: "$max", Value: bson.D{{Key: "h", Value: c}}},
				{Key: "$setOnInsert", Value: bson.D{{Key: "t", Value: c}}},
			}))
	}
	_, err = s.bulkUpdate(ctx, s.feeds, models, nil)
	return err
}

// moveInboxPage moves up to n per-device inbox events to feeds and
// returns how many it found.
func (s *Store) moveInboxPage(ctx context.Context, n int) (int, error) {
	var evs []eventDoc
	cur, err := s.inbox.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(n)))
	if err == nil {
		err = cur.All(ctx, &evs)
	}
	if err != nil || len(evs) == 0 {
		return 0, err
	}
	var devIDs []string
	for _, e := range evs {
		if d, _, ok := strings.Cut(e.ID, string(keySep)); ok && (len(devIDs) == 0 || devIDs[len(devIDs)-1] != d) {
			devIDs = append(devIDs, d)
		}
	}
	hs, err := s.heads(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: devIDs}}}})
	if err != nil {
		return 0, err
	}
	byID := make(map[string]head, len(hs))
	for _, h := range hs {
		byID[h.ID] = h
	}
	var outs []*feedOut
	for i := range evs {
		e := &evs[i]
		d, k, _ := strings.Cut(e.ID, string(keySep))
		h, ok := byID[d]
		if !ok {
			continue // the device is gone: so is its inbox
		}
		if n, _ := strconv.ParseInt(k, 10, 64); n <= h.Floor {
			continue // acked: its ack stopped before deleting it
		}
		o := &feedOut{user: h.User, devices: []string{d}, doc: feedDoc{Only: d}}
		switch {
		case e.Receipt != nil:
			o.doc.Receipt = e.Receipt
		case e.Message != nil && e.Message.Ref:
			o.doc.refTo(e.Message.ChatID, e.Message.Seq)
		case e.Message != nil:
			o.doc.Kind, o.doc.Msg = e.Kind, e.Message
		default:
			continue // malformed: nothing a device could be shown
		}
		outs = append(outs, o)
	}
	if _, err := s.appendFeed(ctx, hs, outs); err != nil {
		return 0, err
	}
	or := make(bson.A, len(evs))
	for i, e := range evs {
		or[i] = bson.D{{Key: "_id", Value: e.ID}, {Key: "n", Value: e.N}}
	}
	if _, err := s.inbox.DeleteMany(ctx, bson.D{{Key: "$or", Value: or}}); err != nil {
		return 0, err
	}
	return len(evs), nil
}
