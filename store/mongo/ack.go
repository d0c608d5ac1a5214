package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// An ack is several writes to several documents: receipts into the authors'
// inboxes, the reader's delivered watermarks, the device's floor, the
// deletion of the acked events. Without transactions a node can die between
// any two of them, so an ack first writes down what it is about to do, in
// its device's journal (field j of the device document), and the next ack
// of the device finishes whatever the last one left undone. The package
// docs ("Acks") give the order and why each step may be repeated.

// fieldJournal is the device document's field holding its ack journal.
const fieldJournal = "j"

// ackJournal is what a device's last ack set out to do. It is kept small:
// it is rewritten by every ack (and, in MongoDB, copied to the oplog).
type ackJournal struct {
	// Token identifies the ack that wrote the journal: journal writes are
	// compare-and-set on it, and an ack marks done only its own.
	Token int64 `bson:"tok"`
	// Cursor is where the floor goes.
	Cursor int64 `bson:"cur"`
	// Done: the delivered receipts of the acked entries are stored, and
	// the floor is at Cursor. Until then a later ack sends them again;
	// the entries are still stored (the trim point stays at or below the
	// floor), and say which messages need them.
	Done bool `bson:"done"`
}

// ackHead is what an ack reads of its device.
type ackHead struct {
	User    string      `bson:"user"`
	Floor   int64       `bson:"floor"`
	Journal *ackJournal `bson:"j"`
}

// ackMsg is an acked message of another user, which needs a delivered
// receipt.
type ackMsg struct {
	Chat, ID, From string
	Seq            int64
}

// Steps of an ack after which tests stop it, as a node dying there would.
const (
	ackStepJournal    = "journal"    // the journal is written
	ackStepWatermarks = "watermarks" // delivered watermarks moved, no receipt stored
	ackStepReceipts   = "receipts"   // receipts stored, watermarks moved
	ackStepCommit     = "commit"     // journal done, floor raised
	// A read's receipts are stored, its note not yet dropped.
	readStepReceipts = "read-receipts"
	// sendStepInserted fails a send whose message insert was applied, as
	// a timeout or a connection cut after the server applied it would.
	sendStepInserted = "send-inserted"
)

// errStopped is what an ack stopped by Store.stopAck returns.
var errStopped = errors.New("store/mongo: stopped by test")

// stopAt reports whether a test asked the ack to stop after step.
func (s *Store) stopAt(step string) bool {
	return s.stopAck != nil && s.stopAck(step)
}

// Ack implements store.Messages. The receipts' time is the time of the ack.
func (s *Store) Ack(ctx context.Context, deviceID string, cursor int64) ([]store.Delivery, error) {
	if !validID(deviceID) || cursor <= 0 {
		return nil, nil
	}
	// A concurrent ack of the same device (a socket replaced across nodes)
	// may replace the journal between our read and write: start again.
	for attempt := 0; ; attempt++ {
		out, err := s.ack(ctx, deviceID, cursor)
		if errors.Is(err, errJournalMoved) && attempt < 5 {
			continue
		}
		if err != nil {
			return nil, fmt.Errorf("ack %s up to %d: %w", deviceID, cursor, err)
		}
		return out, nil
	}
}

var errJournalMoved = errors.New("the ack journal changed underneath")

// floorDoc is a device's floor, as the trim reads it.
type floorDoc struct {
	ID    string `bson:"_id"`
	Floor int64  `bson:"floor"`
}

func (s *Store) ack(ctx context.Context, deviceID string, cursor int64) ([]store.Delivery, error) {
	now := nowMillis()
	// The device: floor, user, journal. When this node wrote the journal
	// there by the device's last ack, and finished it, the cache knows
	// them; the compare-and-set on the journal's token below checks that
	// nothing changed since (every change of the floor rewrites the
	// journal), and a miss falls back to reading.
	dev, cached := s.acked.get(deviceID)
	if !cached {
		err := s.devices.FindOne(ctx, bson.D{{Key: "_id", Value: deviceID}},
			options.FindOne().SetProjection(bson.D{{Key: "user", Value: 1}, {Key: "floor", Value: 1}, {Key: fieldJournal, Value: 1}})).Decode(&dev)
		if err != nil {
			return nil, notFound(err)
		}
	}
	last := dev.Journal
	unfinished := last != nil && !last.Done
	if cursor <= dev.Floor && !unfinished {
		return nil, nil // a repeated ack, and nothing left over
	}
	upto := cursor
	if unfinished {
		upto = max(upto, last.Cursor)
	}
	entries, err := s.readFeed(ctx, dev.User, dev.Floor, upto, 0, nil)
	if err != nil {
		return nil, err
	}
	// A device acks only what its feed holds: a cursor past the feed's
	// end would hide from it, and trim for every device, what comes next.
	// Above the floor nothing is trimmed, so the entries read say where
	// the feed ends (at or below upto).
	end := dev.Floor
	for _, e := range entries {
		end = max(end, feedCursor(e.ID))
	}
	cursor = min(cursor, end)
	floor := cursor
	if unfinished {
		floor = max(floor, last.Cursor)
	}
	if floor <= dev.Floor && !unfinished {
		return nil, nil
	}
	msgs, force, err := s.planAck(ctx, deviceID, dev, entries, cursor, last)
	if err != nil {
		return nil, err
	}
	if len(force) > 0 {
		s.log.Info("finishing an ack that stopped halfway", "device", deviceID,
			"cursor", last.Cursor, "receipts", len(force))
	}

	// The journal is written compare-and-set on the last one's token. An
	// ack that needs no receipts raises the floor in the same write.
	j := ackJournal{Token: rand.Int64(), Cursor: floor, Done: len(msgs) == 0}
	filter := bson.D{{Key: "_id", Value: deviceID}, {Key: fieldJournal, Value: bson.D{{Key: "$exists", Value: false}}}}
	if last != nil {
		filter = bson.D{{Key: "_id", Value: deviceID}, {Key: fieldJournal + ".tok", Value: last.Token}}
	}
	update := bson.D{{Key: "$set", Value: bson.D{{Key: fieldJournal, Value: &j}}}}
	if j.Done {
		update = append(update, bson.E{Key: "$max", Value: bson.D{{Key: "floor", Value: floor}}})
	}
	// Whatever happens next, what the cache held is stale or in question.
	s.acked.drop(deviceID)
	res, err := s.devices.UpdateOne(ctx, filter, update)
	if err != nil {
		return nil, fmt.Errorf("write ack journal: %w", err)
	}
	if res.MatchedCount == 0 {
		return nil, errJournalMoved
	}
	if s.stopAt(ackStepJournal) {
		return nil, errStopped
	}
	var out []store.Delivery
	if !j.Done {
		out, err = s.delivered(ctx, dev.User, msgs, force, now)
		if err != nil {
			return nil, err
		}
		if s.stopAt(ackStepReceipts) {
			return nil, errStopped
		}
		// Done and the floor in one write.
		res, err := s.devices.UpdateOne(ctx, bson.D{{Key: "_id", Value: deviceID}, {Key: fieldJournal + ".tok", Value: j.Token}},
			bson.D{{Key: "$set", Value: bson.D{{Key: fieldJournal + ".done", Value: true}}},
				{Key: "$max", Value: bson.D{{Key: "floor", Value: floor}}}})
		if err != nil {
			return nil, err
		}
		if res.MatchedCount == 0 {
			// Another ack replaced the journal meanwhile: it took this
			// one's entries over, and its receipts as unfinished. Leave
			// the floor, and the trim, to it.
			return out, nil
		}
	}
	if s.stopAt(ackStepCommit) {
		return nil, errStopped
	}
	s.acked.put(deviceID, ackHead{User: dev.User, Floor: max(dev.Floor, floor),
		Journal: &ackJournal{Token: j.Token, Cursor: j.Cursor, Done: true}})
	// The trim point is the slowest device's floor. Every ack that moves a
	// floor trims (two reads, two writes), so a feed holds what some
	// device has not acked and no more: trimming only every 8 or 64 acks
	// saved commands but kept more entries, and with them longer range
	// reads on FerretDB, which scans a collection for them (measured:
	// docs/architecture.md, "The MongoDB store has feeds too").
	if err := s.trimAfterAck(ctx, dev.User, deviceID, max(dev.Floor, floor), entries, dev.Floor); err != nil {
		return out, err
	}
	return out, nil
}

// trimAfterAck trims user's feed up to its slowest device's floor, the
// floor of device being floor. known are entries read before, of the feed
// above knownFrom (see trimFeed).
func (s *Store) trimAfterAck(ctx context.Context, user, device string, floor int64, known []feedDoc, knownFrom int64) error {
	fh, floors, err := s.trimState(ctx, user)
	if err != nil || fh.User == "" {
		return err
	}
	to := floor
	for _, f := range floors {
		if f.ID != device {
			to = min(to, f.Floor)
		}
	}
	return s.trimFeed(ctx, user, fh.Trim, min(to, fh.Hint), known, knownFrom)
}

// trimState reads user's feed head and the floors of its devices.
func (s *Store) trimState(ctx context.Context, user string) (fh feedHead, floors []floorDoc, err error) {
	err = parallel(
		func() error {
			err := s.feeds.FindOne(ctx, bson.D{{Key: "_id", Value: user}}).Decode(&fh)
			if errors.Is(err, mongo.ErrNoDocuments) {
				return nil
			}
			return err
		},
		func() error {
			cur, err := s.devices.Find(ctx, bson.D{{Key: "user", Value: user}},
				options.Find().SetProjection(bson.D{{Key: "floor", Value: 1}}))
			if err == nil {
				err = cur.All(ctx, &floors)
			}
			return err
		})
	return fh, floors, err
}

// planAck works out which of the entries read (those of the device's user
// above its floor, up to cursor and, if the last ack did not finish, up to
// its cursor) are messages of others that need a delivered receipt (msgs,
// in seq order), and which of them the unfinished last ack covered, whose
// receipts go out whatever the watermarks say (force).
func (s *Store) planAck(ctx context.Context, deviceID string, dev ackHead, entries []feedDoc, cursor int64, last *ackJournal) ([]ackMsg, map[string]bool, error) {
	logs, err := s.readRefs(ctx, entries, bson.D{{Key: "id", Value: 1}, {Key: "chat", Value: 1}, {Key: "seq", Value: 1}, {Key: "from", Value: 1}, {Key: "kind", Value: 1}})
	if err != nil {
		return nil, nil, err
	}
	var (
		msgs  []ackMsg
		force map[string]bool
	)
	unfinished := last != nil && !last.Done
	for i := range entries {
		d := &entries[i]
		c := feedCursor(d.ID)
		if c <= dev.Floor || !d.visibleTo(deviceID) {
			continue
		}
		var m *eventMsg
		if chat, seq, ok := d.target(); ok {
			m = logs[numKey(chat, seq)]
		} else if d.Kind == kindMessage {
			m = d.Msg
		}
		// Group changes and message actions, entries but not messages,
		// get no receipt; nor do one's own messages.
		if m == nil || m.Kind != "" || m.From == dev.User {
			continue
		}
		inLast := unfinished && c <= last.Cursor
		if c > cursor && !inLast {
			continue
		}
		msgs = append(msgs, ackMsg{Chat: m.ChatID, Seq: m.Seq, ID: m.ID, From: m.From})
		if inLast {
			if force == nil {
				force = map[string]bool{}
			}
			force[m.ID] = true
		}
	}
	slices.SortStableFunc(msgs, func(a, b ackMsg) int { return cmp.Compare(a.Seq, b.Seq) })
	return msgs, force, nil
}

// delivered moves the reader's delivered watermarks over msgs and sends a
// delivered receipt for the messages it moved over, and for those in force
// in any case. The watermark update is conditional (delivered < seq), so of
// the reader's devices acking one message concurrently exactly one moves it
// and sends the receipt.
func (s *Store) delivered(ctx context.Context, reader string, msgs []ackMsg, force map[string]bool, now int64) ([]store.Delivery, error) {
	top := map[string]int64{} // chat -> highest seq acked
	var chats, authors []string
	for _, m := range msgs {
		if _, ok := top[m.Chat]; !ok {
			chats = append(chats, m.Chat)
		}
		top[m.Chat] = max(top[m.Chat], m.Seq)
		if !slices.Contains(authors, m.From) {
			authors = append(authors, m.From)
		}
	}
	// below[i] is the watermark this ack moved up from in chats[i], if
	// moved[i]. The authors' devices are read meanwhile, in case, and so
	// are the mark moves of a stopped ack this one finishes.
	below := make([]int64, len(chats))
	moved := make([]bool, len(chats))
	var (
		hs    []head
		moves []markMove
	)
	fns := make([]func() error, len(chats), len(chats)+2)
	for i, c := range chats {
		fns[i] = func() error {
			var m memberDoc
			err := s.members.FindOneAndUpdate(ctx,
				bson.D{{Key: "_id", Value: pairKey(reader, c)}, {Key: "delivered", Value: bson.D{{Key: "$lt", Value: top[c]}}}},
				bson.D{{Key: "$max", Value: bson.D{{Key: "delivered", Value: top[c]}}}},
				options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&m)
			if errors.Is(err, mongo.ErrNoDocuments) {
				return nil // already delivered, or the reader left the chat
			}
			below[i], moved[i] = m.Delivered, err == nil
			return err
		}
	}
	fns = append(fns, func() error {
		var err error
		hs, err = s.heads(ctx, bson.D{{Key: "user", Value: bson.D{{Key: "$in", Value: authors}}}})
		return err
	})
	if len(force) > 0 {
		fns = append(fns, func() error {
			var err error
			moves, err = s.forcedMarks(ctx, reader, msgs, force, now)
			return err
		})
	}
	if err := parallel(fns...); err != nil {
		return nil, err
	}
	if s.stopAt(ackStepWatermarks) {
		return nil, errStopped
	}
	for i, c := range chats {
		if moved[i] {
			moves = append(moves, markMove{Chat: c, User: reader, Kind: markDelivered, Seq: top[c], TS: now})
		}
	}
	var g groups
	for _, m := range msgs {
		i := slices.Index(chats, m.Chat)
		if force[m.ID] || (moved[i] && m.Seq > below[i]) {
			g.add(m.Chat, m.From, m.ID)
		}
	}
	// The moves are recorded before the journal is marked done, like the
	// receipts: an ack that stops before either is finished by the next
	// one (forcedMarks).
	var out []store.Delivery
	err := parallel(
		func() (err error) {
			out, err = s.appendFeed(ctx, hs, receiptOuts(&g, hs, store.StatusDelivered, reader, now))
			return err
		},
		func() error { return s.recordMarks(ctx, moves) })
	if err != nil {
		return nil, err
	}
	return out, nil
}
