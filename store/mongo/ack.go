package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"sync"

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
	// Done: the delivered receipts of the acked events are stored. Until
	// then a later ack sends them again; the events are still stored, as
	// they are deleted only after done, and say which messages need them.
	Done bool `bson:"done"`
	// Cursors and Tags name the acked events to delete: by cursor and
	// insert tag, since an acked cursor may be taken again by a writer
	// (see confirm), whose event has another tag and must stay.
	Cursors []int64 `bson:"dc,omitempty"`
	Tags    []int64 `bson:"dn,omitempty"`
}

// events returns the journal's events as pairs of the device's inbox.
func (j *ackJournal) events(device string) []ackPair {
	out := make([]ackPair, 0, len(j.Cursors))
	for i, c := range j.Cursors {
		if i < len(j.Tags) {
			out = append(out, ackPair{ID: numKey(device, c), N: j.Tags[i]})
		}
	}
	return out
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

// ackPair is an inbox event by _id and insert tag.
type ackPair struct {
	ID string
	N  int64
}

// ackedEvent is what Ack reads of an event.
type ackedEvent struct {
	ID      string `bson:"_id"`
	N       int64  `bson:"n"`
	Kind    string `bson:"k"`
	Message *struct {
		ID     string `bson:"id"`
		ChatID string `bson:"chat"`
		Seq    int64  `bson:"seq"`
		From   string `bson:"from"`
		Kind   string `bson:"kind"`
	} `bson:"m"`
}

// receipted reports whether e is a message of another user than reader,
// which gets a delivered receipt: group changes and message actions,
// entries but not messages, get none.
func (e *ackedEvent) receipted(reader string) bool {
	return e.Kind == kindMessage && e.Message != nil && e.Message.Kind == "" && e.Message.From != reader
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

func (s *Store) ack(ctx context.Context, deviceID string, cursor int64) ([]store.Delivery, error) {
	now := nowMillis()
	// The events first, the floor after: an event read above the floor
	// read later was never on a deleted cursor, so the device has seen it
	// (confirm relies on this).
	evs, err := s.ackedEvents(ctx, deviceID, 0, cursor)
	if err != nil {
		return nil, err
	}
	// The device: floor, user, journal. When this node wrote the journal
	// there by the device's last ack, and finished it, the cache knows
	// them; the compare-and-set on the journal's token below checks that
	// nothing changed since (every change of the floor rewrites the
	// journal), and a miss falls back to reading.
	dev, cached := s.acked.get(deviceID)
	if !cached {
		err = s.devices.FindOne(ctx, bson.D{{Key: "_id", Value: deviceID}},
			options.FindOne().SetProjection(bson.D{{Key: "user", Value: 1}, {Key: "floor", Value: 1}, {Key: fieldJournal, Value: 1}})).Decode(&dev)
		if err != nil {
			return nil, notFound(err)
		}
	}
	last := dev.Journal
	if last != nil && last.Cursor > cursor && len(last.Cursors) > 0 {
		// The last ack went further than this one (a client acking again
		// after a reconnect): see which of its events are still stored.
		// Read after the floor, but matched by insert tag, so a writer's
		// event on one of those cursors is never taken for one of them.
		more, err := s.ackedEvents(ctx, deviceID, cursor, last.Cursor)
		if err != nil {
			return nil, err
		}
		evs = append(evs, more...)
	}

	plan := planAck(deviceID, dev, evs, cursor)
	if len(plan.del) == 0 && len(plan.msgs) == 0 {
		return nil, nil // a repeated ack, and nothing left over
	}
	if len(plan.force) > 0 {
		s.log.Info("finishing an ack that stopped halfway", "device", deviceID,
			"cursor", last.Cursor, "receipts", len(plan.force))
	}

	// The journal is written compare-and-set on the last one's token. An
	// ack that needs no receipts raises the floor in the same write.
	j := ackJournal{Token: rand.Int64(), Cursor: plan.floor, Done: len(plan.msgs) == 0}
	for _, d := range plan.del {
		j.Cursors, j.Tags = append(j.Cursors, keyNum(d.ID)), append(j.Tags, d.N)
	}
	filter := bson.D{{Key: "_id", Value: deviceID}, {Key: fieldJournal, Value: bson.D{{Key: "$exists", Value: false}}}}
	if last != nil {
		filter = bson.D{{Key: "_id", Value: deviceID}, {Key: fieldJournal + ".tok", Value: last.Token}}
	}
	update := bson.D{{Key: "$set", Value: bson.D{{Key: fieldJournal, Value: &j}}}}
	if j.Done && dev.Floor < plan.floor {
		update = append(update, bson.E{Key: "$max", Value: bson.D{{Key: "floor", Value: plan.floor}}})
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
		out, err = s.delivered(ctx, dev.User, plan.msgs, plan.force, now)
		if err != nil {
			return nil, err
		}
		if s.stopAt(ackStepReceipts) {
			return nil, errStopped
		}
		// Done and the floor in one write.
		res, err := s.devices.UpdateOne(ctx, bson.D{{Key: "_id", Value: deviceID}, {Key: fieldJournal + ".tok", Value: j.Token}},
			bson.D{{Key: "$set", Value: bson.D{{Key: fieldJournal + ".done", Value: true}}},
				{Key: "$max", Value: bson.D{{Key: "floor", Value: plan.floor}}}})
		if err != nil {
			return nil, err
		}
		if res.MatchedCount == 0 {
			// Another ack replaced the journal meanwhile: it took this
			// one's events over, and its receipts as unfinished. Its own
			// may not be stored yet, and it (or the ack that finishes it)
			// tells which from the events: leave them, and the floor
			// under them, to it.
			return out, nil
		}
	}
	if s.stopAt(ackStepCommit) {
		return nil, errStopped
	}
	if len(plan.del) > 0 {
		ids := make([]string, len(plan.del))
		tags := make([]int64, len(plan.del))
		for i, p := range plan.del {
			ids[i], tags[i] = p.ID, p.N
		}
		// A writer's event on one of these cursors has another random tag
		// (1 in 2^64 per event that it collides), so it stays.
		_, err := s.inbox.DeleteMany(ctx, bson.D{
			{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}},
			{Key: "n", Value: bson.D{{Key: "$in", Value: tags}}},
		})
		if err != nil {
			return nil, err
		}
	}
	// Done, floor raised, events deleted: the journal needs nothing from
	// the next ack, which only has to check it is still ours.
	s.acked.put(deviceID, ackHead{User: dev.User, Floor: max(dev.Floor, plan.floor),
		Journal: &ackJournal{Token: j.Token, Cursor: j.Cursor, Done: true}})
	return out, nil
}

// ackCache holds, per device, the head an ack of this node left behind,
// complete and done. It is bounded: when full, it forgets an entry.
type ackCache struct {
	mu sync.Mutex
	m  map[string]ackHead
}

// ackCacheSize bounds the cache: 64Ki devices of about 100 bytes each.
const ackCacheSize = 1 << 16

func (c *ackCache) get(device string) (ackHead, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	h, ok := c.m[device]
	return h, ok
}

func (c *ackCache) put(device string, h ackHead) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]ackHead)
	}
	if _, ok := c.m[device]; !ok && len(c.m) >= ackCacheSize {
		for k := range c.m {
			delete(c.m, k)
			break
		}
	}
	c.m[device] = h
}

func (c *ackCache) drop(device string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, device)
}

// ackPlan is what one ack does.
type ackPlan struct {
	floor int64
	msgs  []ackMsg        // messages that need delivered receipts, in seq order
	force map[string]bool // ids of msgs whose receipts go out whatever the watermark says
	del   []ackPair       // events to delete
}

// planAck works out an ack from the events read up to cursor (and, beyond
// it, up to the last ack's cursor), and the device read after the first of
// them, with the journal of its last ack.
func planAck(deviceID string, dev ackHead, evs []ackedEvent, cursor int64) ackPlan {
	p := ackPlan{floor: cursor}
	seen := map[string]bool{}
	add := func(e ackedEvent) {
		p.del = append(p.del, ackPair{ID: e.ID, N: e.N})
		seen[e.ID] = true
		if e.receipted(dev.User) {
			m := e.Message
			p.msgs = append(p.msgs, ackMsg{Chat: m.ChatID, Seq: m.Seq, ID: m.ID, From: m.From})
		}
	}
	for _, e := range evs {
		// At or below the floor: acked before (its ack deletes it), or a
		// writer's event on an acked cursor, which the writer takes back.
		// Beyond cursor: read only to find the last ack's events.
		if k := keyNum(e.ID); k > dev.Floor && k <= cursor {
			add(e)
		}
	}
	last := dev.Journal
	if last == nil {
		return p
	}
	// The last ack's cursor was acked by the device too.
	p.floor = max(p.floor, last.Cursor)
	lastEvents := map[ackPair]bool{}
	for _, d := range last.events(deviceID) {
		lastEvents[d] = true
	}
	before := len(p.msgs)
	for _, e := range evs {
		// Still stored: it stopped before deleting. Delete it with ours.
		if lastEvents[ackPair{ID: e.ID, N: e.N}] && !seen[e.ID] {
			add(e)
		}
	}
	if !last.Done {
		// It stopped before its receipts were surely stored. Its watermark
		// moves may have happened, so they can't tell which are missing:
		// send them all. Its events are all still stored (deleted only
		// after done), so they say which messages those are.
		p.force = map[string]bool{}
		for _, e := range evs {
			if lastEvents[ackPair{ID: e.ID, N: e.N}] && e.receipted(dev.User) {
				p.force[e.Message.ID] = true
			}
		}
	}
	if len(p.msgs) > before {
		slices.SortStableFunc(p.msgs, func(a, b ackMsg) int { return cmp.Compare(a.Seq, b.Seq) })
	}
	return p
}

// ackedEvents reads the events of device in (after, upto], with what an
// ack needs of them.
func (s *Store) ackedEvents(ctx context.Context, device string, after, upto int64) ([]ackedEvent, error) {
	lo := rangeStart(device)
	if after > 0 {
		lo = numKey(device, after)
	}
	var evs []ackedEvent
	cur, err := s.inbox.Find(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: lo}, {Key: "$lte", Value: numKey(device, upto)}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{
			{Key: "n", Value: 1}, {Key: "k", Value: 1},
			{Key: "m.id", Value: 1}, {Key: "m.chat", Value: 1}, {Key: "m.seq", Value: 1}, {Key: "m.from", Value: 1}, {Key: "m.kind", Value: 1},
		}))
	if err == nil {
		err = cur.All(ctx, &evs)
	}
	return evs, err
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
			out, err = s.appendReceipts(ctx, &g, hs, store.StatusDelivered, reader, now)
			return err
		},
		func() error { return s.recordMarks(ctx, moves) })
	if err != nil {
		return nil, err
	}
	return out, nil
}
