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

// Inbox events are documents with _id "<device>/<cursor>". How a cursor is
// claimed, and why that keeps an inbox gap-free and visible strictly in
// cursor order, is in the package docs ("Inbox cursors"). In short:
//
//   - An event is inserted at cursor k only after the event at k-1 exists
//     (or was acked): the writer starts at max(hint, floor)+1 of the device
//     document, both of which only ever name cursors that existed, and on a
//     duplicate key tries the next one. The insert is the claim.
//   - hint is raised after an insert; floor is raised by Ack before it
//     deletes the acked events, and a writer re-checks floor after its
//     insert: an insert at or below floor may have landed on an acked and
//     deleted cursor, so the writer takes it back and claims again.

// eventDoc is an inbox event. N is a random tag of one insert, so that a
// writer can take back exactly its own event.
type eventDoc struct {
	ID      string     `bson:"_id"`
	N       int64      `bson:"n"`
	Kind    string     `bson:"k"`
	Message *eventMsg  `bson:"m,omitempty"`
	Receipt *eventRcpt `bson:"r,omitempty"`
}

// Event kinds in documents.
const (
	kindMessage = "m"
	kindReceipt = "r"
	kindGroup   = "g" // a group change: m is its log entry; no receipts
)

type eventMsg struct {
	ID         string `bson:"id"`
	ChatID     string `bson:"chat"`
	Seq        int64  `bson:"seq"`
	From       string `bson:"from"`
	FromDevice string `bson:"dev"`
	TS         int64  `bson:"ts"`
	Body       []byte `bson:"body,omitempty"`
	ReplyTo    string `bson:"reply,omitempty"`
	Kind       string `bson:"kind,omitempty"`
	Hidden     string `bson:"hidden,omitempty"` // store.Message.HiddenFrom
	// What message actions and expiry left on the entry (store.Message's
	// fields of the same names): absent on most entries, so that they
	// cost a message nothing.
	EditedTS  int64         `bson:"ed,omitempty"`
	Deleted   bool          `bson:"del,omitempty"`
	Reactions []reactionDoc `bson:"rx,omitempty"`
	EditSeqs  []int64       `bson:"es,omitempty"`
	ExpiresTS int64         `bson:"exp,omitempty"`
	// Ref marks the copy in an inbox event, which leaves out the body,
	// reply_to and the state above: the log entry at (chat, seq) has
	// them, stored once however many devices get it. The entry is never
	// undone (a send that stops halfway is completed), but actions and
	// expiry change its body and state in the log, and a reference reads
	// them as they are when the device does.
	Ref bool `bson:"ref,omitempty"`
}

// reactionDoc is a store.Reaction in documents.
type reactionDoc struct {
	UserID string `bson:"u"`
	Emoji  string `bson:"e"`
}

func reactionDocs(rs []store.Reaction) []reactionDoc {
	if len(rs) == 0 {
		return nil
	}
	out := make([]reactionDoc, len(rs))
	for i, r := range rs {
		out[i] = reactionDoc{UserID: r.UserID, Emoji: r.Emoji}
	}
	return out
}

func reactionsOf(ds []reactionDoc) []store.Reaction {
	if len(ds) == 0 {
		return nil
	}
	out := make([]store.Reaction, len(ds))
	for i, d := range ds {
		out[i] = store.Reaction{UserID: d.UserID, Emoji: d.Emoji}
	}
	return out
}

type eventRcpt struct {
	ChatID string   `bson:"chat"`
	MsgIDs []string `bson:"ids"`
	Status string   `bson:"st"`
	By     string   `bson:"by"`
	TS     int64    `bson:"ts"`
}

func msgOf(m *store.Message) *eventMsg {
	return &eventMsg{ID: m.ID, ChatID: m.ChatID, Seq: m.Seq, From: m.From, FromDevice: m.FromDevice,
		TS: m.TS, Body: m.Body, ReplyTo: m.ReplyTo, Kind: m.Kind, Hidden: m.HiddenFrom,
		EditedTS: m.EditedTS, Deleted: m.Deleted, Reactions: reactionDocs(m.Reactions), EditSeqs: m.EditSeqs,
		ExpiresTS: m.ExpiresTS}
}

// refOf is m as an inbox event holds it: what acks need (id, chat, seq,
// author, kind), not the body and state, which Inbox reads from the log.
func refOf(m *store.Message) *eventMsg {
	e := msgOf(m)
	e.Body, e.ReplyTo, e.Ref = nil, "", true
	e.EditedTS, e.Deleted, e.Reactions, e.EditSeqs, e.ExpiresTS = 0, false, nil, nil, 0
	return e
}

func (e *eventMsg) message() *store.Message {
	return &store.Message{ID: e.ID, ChatID: e.ChatID, Seq: e.Seq, From: e.From, FromDevice: e.FromDevice,
		TS: e.TS, Body: e.Body, ReplyTo: e.ReplyTo, Kind: e.Kind, HiddenFrom: e.Hidden,
		EditedTS: e.EditedTS, Deleted: e.Deleted, Reactions: reactionsOf(e.Reactions), EditSeqs: e.EditSeqs,
		ExpiresTS: e.ExpiresTS}
}

func (d *eventDoc) event() (store.Event, error) {
	ev := store.Event{Cursor: keyNum(d.ID)}
	switch {
	case d.Kind == kindMessage && d.Message != nil:
		ev.Kind, ev.Message = store.EventMessage, d.Message.message()
	case d.Kind == kindGroup && d.Message != nil:
		ev.Kind, ev.Message = store.EventGroup, d.Message.message()
	case d.Kind == kindReceipt && d.Receipt != nil:
		r := d.Receipt
		ev.Kind = store.EventReceipt
		ev.Receipt = &store.Receipt{ChatID: r.ChatID, MsgIDs: r.MsgIDs, Status: r.Status, By: r.By, TS: r.TS}
	default:
		return store.Event{}, fmt.Errorf("store/mongo: inbox event %s of kind %q is malformed", d.ID, d.Kind)
	}
	return ev, nil
}

// idRange is the filter of every key id/N.
func idRange(id string) bson.D {
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: rangeStart(id)}, {Key: "$lt", Value: rangeEnd(id)}}}}
}

// head is the part of a device document that places its next event.
type head struct {
	ID    string `bson:"_id"`
	User  string `bson:"user"`
	Hint  int64  `bson:"hint"`
	Floor int64  `bson:"floor"`
}

var headProjection = bson.D{{Key: "user", Value: 1}, {Key: "hint", Value: 1}, {Key: "floor", Value: 1}}

// heads reads the heads of the devices matched by filter, in id order.
func (s *Store) heads(ctx context.Context, filter bson.D) ([]head, error) {
	var hs []head
	// One batch, however many: a group's are thousands of small documents.
	cur, err := s.devices.Find(ctx, filter, options.Find().SetProjection(headProjection).SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(1<<20))
	if err == nil {
		err = cur.All(ctx, &hs)
	}
	return hs, err
}

// outEvent is an event on its way into one inbox.
type outEvent struct {
	device string
	doc    eventDoc
	event  store.Event // what the caller returns; Cursor set once inserted
}

// appendEvents inserts every event into its device's inbox, claiming the
// next cursors, and returns their deliveries. heads must hold every target
// device; an event for a device that has gone (deleted) is dropped. Events
// of one device land in the order given.
func (s *Store) appendEvents(ctx context.Context, heads map[string]head, evs []*outEvent) ([]store.Delivery, error) {
	if len(evs) == 0 {
		return nil, nil
	}
	next := make(map[string]int64, len(heads))
	for _, ev := range evs {
		h, ok := heads[ev.device]
		if !ok {
			continue
		}
		if _, ok := next[ev.device]; !ok {
			next[ev.device] = max(h.Hint, h.Floor) + 1
		}
	}
	var done []*outEvent
	for attempt := 0; len(evs) > 0; attempt++ {
		if attempt > 10 {
			return nil, fmt.Errorf("store/mongo: could not place %d inbox events", len(evs))
		}
		placed, err := s.place(ctx, next, evs)
		if err != nil {
			return nil, err
		}
		again, err := s.confirm(ctx, next, placed, attempt)
		if err != nil {
			return nil, err
		}
		for _, ev := range placed {
			if !slices.Contains(again, ev) {
				done = append(done, ev)
			}
		}
		evs = again
	}
	out := make([]store.Delivery, 0, len(done))
	for _, ev := range done {
		if _, ok := next[ev.device]; ok {
			out = append(out, store.Delivery{DeviceID: ev.device, Event: ev.event})
		}
	}
	return out, nil
}

// place inserts evs in rounds of one event per device: MongoDB may apply
// the inserts of an unordered insertMany in any order, and an event must
// never become visible before the one below it in its inbox.
func (s *Store) place(ctx context.Context, next map[string]int64, evs []*outEvent) ([]*outEvent, error) {
	var placed []*outEvent
	for len(evs) > 0 {
		var round, later []*outEvent
		seen := make(map[string]bool, len(evs))
		for _, ev := range evs {
			if _, ok := next[ev.device]; !ok {
				continue // the device is gone
			}
			if seen[ev.device] {
				later = append(later, ev)
				continue
			}
			seen[ev.device] = true
			round = append(round, ev)
		}
		if err := s.insertRound(ctx, next, round); err != nil {
			return nil, err
		}
		placed = append(placed, round...)
		evs = later
	}
	return placed, nil
}

func deviceList(evs []*outEvent) []string {
	var ds []string
	for _, ev := range evs {
		if !slices.Contains(ds, ev.device) {
			ds = append(ds, ev.device)
		}
	}
	return ds
}

// insertRound inserts events of distinct devices, each at its device's
// next cursor, moving up past cursors that are taken.
func (s *Store) insertRound(ctx context.Context, next map[string]int64, round []*outEvent) error {
	for tries := 0; len(round) > 0; tries++ {
		if tries > 0 && tries%4 == 0 {
			// Many taken cursors in a row: the hints moved on, start
			// from there rather than walking.
			hs, err := s.heads(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: deviceList(round)}}}})
			if err != nil {
				return err
			}
			for _, h := range hs {
				next[h.ID] = max(next[h.ID], max(h.Hint, h.Floor)+1)
			}
		}
		if tries > 1000 {
			return errors.New("store/mongo: no free inbox cursor after 1000 tries")
		}
		docs := make([]any, len(round))
		for i, ev := range round {
			ev.doc.ID = numKey(ev.device, next[ev.device])
			ev.doc.N = rand.Int64()
			docs[i] = &ev.doc
		}
		_, err := s.inbox.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		taken := map[int]bool{}
		if err != nil {
			var bwe mongo.BulkWriteException
			if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
				return fmt.Errorf("insert inbox events: %w", err)
			}
			for _, we := range bwe.WriteErrors {
				if !mongo.IsDuplicateKeyError(we.WriteError) {
					return fmt.Errorf("insert inbox events: %w", err)
				}
				taken[we.Index] = true
			}
		}
		var retry []*outEvent
		for i, ev := range round {
			cur := next[ev.device]
			next[ev.device] = cur + 1
			if taken[i] {
				retry = append(retry, ev)
				continue
			}
			ev.event.Cursor = cur
		}
		round = retry
	}
	return nil
}

// confirm raises the hints of the devices written to and checks that no
// event landed at or below its device's floor. Such an event may sit on a
// cursor that was acked and deleted after the writer read the floor: the
// device would never see it. confirm takes those back and returns them to
// be placed again. Events of deleted devices are removed, and the device
// dropped from next.
func (s *Store) confirm(ctx context.Context, next map[string]int64, placed []*outEvent, attempt int) ([]*outEvent, error) {
	lo := map[string]int64{}
	hi := map[string]int64{}
	for _, ev := range placed {
		c := ev.event.Cursor
		if l, ok := lo[ev.device]; !ok || c < l {
			lo[ev.device] = c
		}
		hi[ev.device] = max(hi[ev.device], c)
	}
	models := make([]mongo.WriteModel, 0, len(lo))
	for d, l := range lo {
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: d}, {Key: "floor", Value: bson.D{{Key: "$lt", Value: l}}}}).
			SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "hint", Value: hi[d]}}}}))
	}
	matched, err := s.bulkUpdate(ctx, s.devices, models, nil)
	if err != nil {
		return nil, fmt.Errorf("raise inbox hints: %w", err)
	}
	if matched == int64(len(models)) {
		return nil, nil // the usual case: every floor is below every new event
	}
	devs := make([]string, 0, len(lo))
	for d := range lo {
		devs = append(devs, d)
	}
	hs, err := s.heads(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: devs}}}})
	if err != nil {
		return nil, err
	}
	floor := make(map[string]int64, len(hs))
	for _, h := range hs {
		floor[h.ID] = h.Floor
	}
	var again []*outEvent
	for _, ev := range placed {
		f, alive := floor[ev.device]
		if alive && ev.event.Cursor > f {
			continue
		}
		// Take our event back, if it is still there. If it is gone, an ack
		// removed it: the device got it.
		res, err := s.inbox.DeleteOne(ctx, bson.D{{Key: "_id", Value: ev.doc.ID}, {Key: "n", Value: ev.doc.N}})
		if err != nil {
			return nil, fmt.Errorf("take back inbox event: %w", err)
		}
		if !alive {
			delete(next, ev.device)
			continue
		}
		if res.DeletedCount == 1 {
			s.log.Info("inbox event landed below an ack; placing it again",
				"device", ev.device, "cursor", ev.event.Cursor, "floor", f, "attempt", attempt)
			next[ev.device] = max(next[ev.device], f+1)
			again = append(again, ev)
		}
	}
	// Raise the hints the filtered update above skipped.
	models = models[:0]
	for d, h := range hi {
		if _, alive := floor[d]; alive {
			models = append(models, mongo.NewUpdateOneModel().
				SetFilter(bson.D{{Key: "_id", Value: d}}).
				SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "hint", Value: h}}}}))
		}
	}
	if len(models) > 0 {
		if _, err := s.bulkUpdate(ctx, s.devices, models, nil); err != nil {
			return nil, fmt.Errorf("raise inbox hints: %w", err)
		}
	}
	return again, nil
}

// Inbox implements store.Messages. limit <= 0 means no limit. Events at or
// below the device's floor (acked, their deletion in progress) are not
// returned.
func (s *Store) Inbox(ctx context.Context, deviceID string, after int64, limit int) ([]store.Event, int64, error) {
	if !validID(deviceID) {
		return nil, 0, nil
	}
	after = max(after, 0)
	var (
		h    head
		docs []eventDoc
	)
	err := parallel(
		func() error {
			err := s.devices.FindOne(ctx, bson.D{{Key: "_id", Value: deviceID}},
				options.FindOne().SetProjection(headProjection)).Decode(&h)
			if errors.Is(err, mongo.ErrNoDocuments) {
				return nil // a deleted device has an empty inbox
			}
			return err
		},
		func() error {
			var err error
			docs, err = s.readEvents(ctx, deviceID, after, limit)
			return err
		})
	if err != nil {
		return nil, 0, fmt.Errorf("inbox of %s: %w", deviceID, err)
	}
	// The device was read concurrently with the events. Two things can
	// have moved between: acked events may be returned (harmless, the
	// client deduplicates), and hint may name an event inserted after the
	// event read. The caller takes a short page with a head above its
	// last event to mean "acked up to head", so such an event must be
	// fetched now.
	for {
		docs = slices.DeleteFunc(docs, func(d eventDoc) bool { return keyNum(d.ID) <= h.Floor })
		short := limit <= 0 || len(docs) < limit
		last := after
		if len(docs) > 0 {
			last = keyNum(docs[len(docs)-1].ID)
		}
		if !short || h.Hint <= max(last, h.Floor) {
			break
		}
		more, err := s.readEvents(ctx, deviceID, max(last, h.Floor), limit-len(docs))
		if err != nil {
			return nil, 0, fmt.Errorf("inbox of %s: %w", deviceID, err)
		}
		if len(more) == 0 {
			break
		}
		docs = append(docs, more...)
	}
	if err := s.fillRefs(ctx, docs); err != nil {
		return nil, 0, fmt.Errorf("inbox of %s: %w", deviceID, err)
	}
	events := make([]store.Event, 0, len(docs))
	headCur := max(h.Hint, h.Floor)
	for i := range docs {
		ev, err := docs[i].event()
		if err != nil {
			return nil, 0, err
		}
		events = append(events, ev)
		headCur = max(headCur, ev.Cursor)
	}
	return events, headCur, nil
}

// Heads implements store.Messages: max(hint, floor) of each device, as
// Inbox reports it when the device has no event above.
func (s *Store) Heads(ctx context.Context, deviceIDs []string) (map[string]int64, error) {
	ids := make([]string, 0, len(deviceIDs))
	for _, id := range deviceIDs {
		if validID(id) {
			ids = append(ids, id)
		}
	}
	out := make(map[string]int64, len(ids))
	if len(ids) == 0 {
		return out, nil
	}
	cur, err := s.devices.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}},
		options.Find().SetProjection(bson.D{{Key: "hint", Value: 1}, {Key: "floor", Value: 1}}))
	var hs []head
	if err == nil {
		err = cur.All(ctx, &hs)
	}
	if err != nil {
		return nil, fmt.Errorf("inbox heads: %w", err)
	}
	for _, h := range hs {
		out[h.ID] = max(h.Hint, h.Floor)
	}
	return out, nil
}

// readEvents reads up to limit (0: all) events of device after cursor.
// fillRefs reads the bodies of docs' reference events from the chat logs,
// in one query. Events from before references carry their bodies.
func (s *Store) fillRefs(ctx context.Context, docs []eventDoc) error {
	var keys []string
	for i := range docs {
		if m := docs[i].Message; m != nil && m.Ref {
			keys = append(keys, numKey(m.ChatID, m.Seq))
		}
	}
	if len(keys) == 0 {
		return nil
	}
	type logBody struct {
		ID  string   `bson:"_id"`
		Msg eventMsg `bson:",inline"`
	}
	var found []logBody
	cur, err := s.messages.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}}},
		options.Find().SetProjection(stateProjection))
	if err == nil {
		err = cur.All(ctx, &found)
	}
	if err != nil {
		return fmt.Errorf("bodies of %d events: %w", len(keys), err)
	}
	byKey := make(map[string]*logBody, len(found))
	for i := range found {
		byKey[found[i].ID] = &found[i]
	}
	for i := range docs {
		m := docs[i].Message
		if m == nil || !m.Ref {
			continue
		}
		l := byKey[numKey(m.ChatID, m.Seq)]
		if l == nil {
			return fmt.Errorf("store/mongo: inbox event %s refers to %s/%d, which the log does not have", docs[i].ID, m.ChatID, m.Seq)
		}
		m.Body, m.ReplyTo, m.Ref = l.Msg.Body, l.Msg.ReplyTo, false
		m.EditedTS, m.Deleted, m.Reactions, m.EditSeqs, m.ExpiresTS = l.Msg.EditedTS, l.Msg.Deleted, l.Msg.Reactions, l.Msg.EditSeqs, l.Msg.ExpiresTS
	}
	return nil
}

func (s *Store) readEvents(ctx context.Context, device string, after int64, limit int) ([]eventDoc, error) {
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	filter := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: numKey(device, after)}, {Key: "$lt", Value: rangeEnd(device)}}}}
	var docs []eventDoc
	cur, err := s.inbox.Find(ctx, filter, opts)
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	return docs, err
}

// groups collects the message ids of receipts: one per chat and author, in
// first-seen order, ids in seq order.
type groups struct {
	list []*receiptGroup
}

type receiptGroup struct {
	chatID, author string
	msgIDs         []string
}

func (g *groups) add(chatID, author, msgID string) {
	for _, rg := range g.list {
		if rg.chatID == chatID && rg.author == author {
			rg.msgIDs = append(rg.msgIDs, msgID)
			return
		}
	}
	g.list = append(g.list, &receiptGroup{chatID: chatID, author: author, msgIDs: []string{msgID}})
}

// sendReceipts appends one receipt per group to every device of its
// author. The deliveries of one receipt share one read-only *Receipt.
func (s *Store) sendReceipts(ctx context.Context, g *groups, status, by string, ts int64) ([]store.Delivery, error) {
	if len(g.list) == 0 {
		return nil, nil
	}
	var authors []string
	for _, rg := range g.list {
		if !slices.Contains(authors, rg.author) {
			authors = append(authors, rg.author)
		}
	}
	hs, err := s.heads(ctx, bson.D{{Key: "user", Value: bson.D{{Key: "$in", Value: authors}}}})
	if err != nil {
		return nil, fmt.Errorf("devices of %v: %w", authors, err)
	}
	return s.appendReceipts(ctx, g, hs, status, by, ts)
}

// appendReceipts is sendReceipts with the authors' devices read: hs.
func (s *Store) appendReceipts(ctx context.Context, g *groups, hs []head, status, by string, ts int64) ([]store.Delivery, error) {
	if len(g.list) == 0 {
		return nil, nil
	}
	slices.SortFunc(hs, func(a, b head) int { return cmp.Compare(a.ID, b.ID) })
	byDevice := make(map[string]head, len(hs))
	for _, h := range hs {
		byDevice[h.ID] = h
	}
	var evs []*outEvent
	for _, rg := range g.list {
		r := &store.Receipt{ChatID: rg.chatID, MsgIDs: rg.msgIDs, Status: status, By: by, TS: ts}
		doc := eventDoc{Kind: kindReceipt, Receipt: &eventRcpt{ChatID: r.ChatID, MsgIDs: r.MsgIDs, Status: status, By: by, TS: ts}}
		for _, h := range hs {
			if h.User == rg.author {
				evs = append(evs, &outEvent{device: h.ID, doc: doc,
					event: store.Event{Kind: store.EventReceipt, Receipt: r}})
			}
		}
	}
	return s.appendEvents(ctx, byDevice, evs)
}
