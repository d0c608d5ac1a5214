package mongo

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// The feed: one inbox per user, read by all of the user's devices (see the
// package docs, "Feeds"). An entry is a document of collection feed whose
// _id is the user's 16 bytes and the cursor's 5, as one fixed-length
// BinData (BinData sorts by length first, so the length must not vary, and
// a user's entries are then one _id range in cursor order). A message's
// entry is a reference to its log entry, r: BinData(uvarint seq ‖ the
// chat's bytes), 63 bytes in all: 1,024 members cost 64,512 bytes per
// group message, where per-device copies cost 550 KB.
//
// Cursors are claimed by insert, as the per-device inboxes did: the writer
// starts at max(h, t)+1 of the user's head document (collection feeds):
// h, the highest cursor known to hold an entry, raised after every insert;
// t, the trim point, at or below every device's floor (its acked cursor),
// under which entries may be deleted. On a duplicate key the writer tries
// the next cursor. An entry is deleted only once t is at or above it, and
// only if it was read before t was raised there, so a writer that lands on
// a freed cursor below t (it read a stale head) finds its own entry there
// and places it again.

// Feed collections.
const (
	collFeed  = "feed"
	collFeeds = "feeds"
)

// cursorBytes is the width of a cursor in a feed key: 2^40 entries per
// user, a thousand a second for 34 years.
const (
	cursorBytes = 5
	maxCursor   = 1<<(8*cursorBytes) - 1
	userBytes   = 16
	feedKeyLen  = userBytes + cursorBytes
)

// userKey is the 16 bytes that stand for user in feed keys: the bytes of
// an id made by store.NewID, or, for an id of another form, the first 16
// bytes of its SHA-256 (which collide with another user's with
// probability 2^-128).
func userKey(user string) []byte {
	if b, ok := store.IDBytes(user, store.PrefixUser); ok {
		return b[:]
	}
	h := sha256.Sum256([]byte(user))
	return h[:userBytes]
}

// feedKey is the _id of user's entry at cursor.
func feedKey(user string, cursor int64) []byte {
	k := make([]byte, feedKeyLen)
	copy(k, userKey(user))
	putCursor(k[userBytes:], cursor)
	return k
}

func putCursor(b []byte, c int64) {
	var x [8]byte
	binary.BigEndian.PutUint64(x[:], uint64(min(max(c, 0), maxCursor)))
	copy(b, x[8-cursorBytes:])
}

// feedCursor is the cursor of a feed key.
func feedCursor(k []byte) int64 {
	if len(k) != feedKeyLen {
		return 0
	}
	var x [8]byte
	copy(x[8-cursorBytes:], k[userBytes:])
	return int64(binary.BigEndian.Uint64(x[:]))
}

// feedRange is the filter of user's entries in (after, upto].
func feedRange(user string, after, upto int64) bson.D {
	return bson.D{{Key: "_id", Value: bson.D{
		{Key: "$gt", Value: feedKey(user, after)},
		{Key: "$lte", Value: feedKey(user, min(upto, maxCursor))},
	}}}
}

// compactRef encodes a reference to (chat, seq) as uvarint seq ‖ the
// chat's bytes: 16 for a group, 32 for a direct chat (its two users). ok
// is false for a chat id of another form: its entry names it in full.
func compactRef(chat string, seq int64) ([]byte, bool) {
	var chatBytes []byte
	if g, ok := store.IDBytes(chat, store.PrefixGroup); ok {
		chatBytes = g[:]
	} else if a, b, ok := store.DirectChatMembers(chat); ok {
		ab, okA := store.IDBytes(a, store.PrefixUser)
		bb, okB := store.IDBytes(b, store.PrefixUser)
		if !okA || !okB {
			return nil, false
		}
		chatBytes = append(ab[:], bb[:]...)
	} else {
		return nil, false
	}
	out := binary.AppendUvarint(make([]byte, 0, binary.MaxVarintLen64+len(chatBytes)), uint64(seq))
	return append(out, chatBytes...), true
}

// parseRef is compactRef's inverse.
func parseRef(r []byte) (chat string, seq int64, ok bool) {
	s, n := binary.Uvarint(r)
	if n <= 0 {
		return "", 0, false
	}
	rest := r[n:]
	switch len(rest) {
	case 16:
		return store.IDFromBytes(store.PrefixGroup, [16]byte(rest)), int64(s), true
	case 32:
		a := store.IDFromBytes(store.PrefixUser, [16]byte(rest[:16]))
		b := store.IDFromBytes(store.PrefixUser, [16]byte(rest[16:]))
		return store.DirectChatID(a, b), int64(s), true
	}
	return "", 0, false
}

// feedDoc is a feed entry. Exactly one of these says what it holds: Ref
// (or Chat and Seq), a log entry, read from the log when the entry is;
// Receipt; Msg, a whole message moved from a per-device inbox of before
// references. N tags the entries that hold no reference, so that a writer
// takes back exactly its own; a reference is its own tag (two writers
// placing one log entry in one feed are a dead node's send and its
// completion, and either copy will do).
type feedDoc struct {
	ID   []byte `bson:"_id"`
	Ref  []byte `bson:"r,omitempty"`
	Chat string `bson:"c,omitempty"`
	Seq  int64  `bson:"s,omitempty"`
	// Skip is the device that does not read the entry: the sender of a
	// message, in its own user's feed.
	Skip string `bson:"x,omitempty"`
	// Only is the one device that reads the entry: events moved from a
	// per-device inbox.
	Only    string     `bson:"o,omitempty"`
	N       int64      `bson:"n,omitempty"`
	Receipt *eventRcpt `bson:"rc,omitempty"`
	Kind    string     `bson:"k,omitempty"` // of Msg: kindMessage or kindGroup
	Msg     *eventMsg  `bson:"m,omitempty"`
}

// refTo makes d a reference to (chat, seq).
func (d *feedDoc) refTo(chat string, seq int64) {
	if r, ok := compactRef(chat, seq); ok {
		d.Ref = r
		return
	}
	d.Chat, d.Seq = chat, seq
}

// target is the log entry d refers to, ok false if it holds no reference.
func (d *feedDoc) target() (chat string, seq int64, ok bool) {
	if d.Ref != nil {
		return parseRef(d.Ref)
	}
	return d.Chat, d.Seq, d.Chat != ""
}

// identity is the filter of exactly this entry.
func (d *feedDoc) identity() bson.D {
	f := bson.D{{Key: "_id", Value: d.ID}}
	if d.Skip != "" {
		f = append(f, bson.E{Key: "x", Value: d.Skip})
	}
	if d.Only != "" {
		f = append(f, bson.E{Key: "o", Value: d.Only})
	}
	switch {
	case d.Ref != nil:
		return append(f, bson.E{Key: "r", Value: d.Ref})
	case d.Chat != "":
		return append(f, bson.E{Key: "c", Value: d.Chat}, bson.E{Key: "s", Value: d.Seq})
	}
	return append(f, bson.E{Key: "n", Value: d.N})
}

// visibleTo reports whether device reads d.
func (d *feedDoc) visibleTo(device string) bool {
	return d.Skip != device && (d.Only == "" || d.Only == device)
}

// feedHead is a user's feed head document.
type feedHead struct {
	User string `bson:"_id"`
	Hint int64  `bson:"h"`
	Trim int64  `bson:"t"`
}

// feedOut is an entry on its way into one user's feed, and to the devices
// that read it.
type feedOut struct {
	user    string
	doc     feedDoc
	event   store.Event // what the caller returns; Cursor set once placed
	devices []string    // routed to: the user's devices that read it
	placed  bool
}

// logOuts returns the entries of log entry m (ev, its event, sharing m) for
// the users of devices hs: one per user that has a device reading it. skip,
// if set, is a device that does not (the sending one).
func logOuts(hs []head, m *store.Message, ev store.Event, skip string) []*feedOut {
	var outs []*feedOut
	byUser := map[string]*feedOut{}
	for _, h := range hs {
		o := byUser[h.User]
		if o == nil {
			o = &feedOut{user: h.User, event: ev}
			o.doc.refTo(m.ChatID, m.Seq)
			byUser[h.User] = o
			outs = append(outs, o)
		}
		if h.ID == skip {
			o.doc.Skip = skip
			continue
		}
		o.devices = append(o.devices, h.ID)
	}
	if skip != "" {
		// The sending device is not always among hs (a direct send
		// names its targets), but its user's other devices are.
		for _, o := range outs {
			if o.user == m.From {
				o.doc.Skip = skip
			}
		}
	}
	return slices.DeleteFunc(outs, func(o *feedOut) bool { return len(o.devices) == 0 })
}

// senderCursor is the cursor of the sender's own entry among outs, which
// its other devices read (store.SendResult.SenderCursor).
func senderCursor(outs []*feedOut, m *store.Message) int64 {
	for _, o := range outs {
		if o.user == m.From && o.doc.Skip == m.FromDevice && o.placed {
			return o.event.Cursor
		}
	}
	return 0
}

var headProjection = bson.D{{Key: "user", Value: 1}, {Key: "hint", Value: 1}, {Key: "floor", Value: 1}}

// head is what a writer reads of a device: its user, and the numbers a
// per-device inbox of before the feeds left (Hint), which a user's feed
// starts above.
type head struct {
	ID    string `bson:"_id"`
	User  string `bson:"user"`
	Hint  int64  `bson:"hint"`
	Floor int64  `bson:"floor"`
}

// heads reads the devices matched by filter, in id order.
func (s *Store) heads(ctx context.Context, filter bson.D) ([]head, error) {
	var hs []head
	// One batch, however many: a group's are thousands of small documents.
	cur, err := s.devices.Find(ctx, filter, options.Find().SetProjection(headProjection).SetSort(bson.D{{Key: "_id", Value: 1}}).SetBatchSize(1<<20))
	if err == nil {
		err = cur.All(ctx, &hs)
	}
	return hs, err
}

// feedHeads reads the feed heads of users, creating the missing ones: a
// feed starts above every cursor its user's devices (among devs) had in a
// per-device inbox, so that no device's stored cursor hides an entry.
func (s *Store) feedHeads(ctx context.Context, users []string, devs []head, known map[string]feedHead) (map[string]feedHead, error) {
	out := make(map[string]feedHead, len(users))
	read := func(ids []string) error {
		fhs, err := s.readFeedHeads(ctx, ids)
		for u, fh := range fhs {
			out[u] = fh
		}
		return err
	}
	var unknown []string
	for _, u := range users {
		if fh, ok := known[u]; ok {
			out[u] = fh
		} else {
			unknown = append(unknown, u)
		}
	}
	if len(unknown) > 0 {
		if err := read(unknown); err != nil {
			return nil, err
		}
	}
	var missing []string
	for _, u := range users {
		if _, ok := out[u]; !ok {
			missing = append(missing, u)
		}
	}
	if len(missing) == 0 {
		return out, nil
	}
	start := map[string]int64{}
	for _, h := range devs {
		start[h.User] = max(start[h.User], h.Hint, h.Floor)
	}
	docs := make([]any, len(missing))
	for i, u := range missing {
		docs[i] = feedHead{User: u, Hint: start[u], Trim: start[u]}
	}
	if err := s.insertIgnoringDuplicates(ctx, s.feeds, docs); err != nil {
		return nil, fmt.Errorf("create feeds: %w", err)
	}
	if err := read(missing); err != nil {
		return nil, err
	}
	return out, nil
}

// idIn is the filter of the documents whose _id is one of ids: an
// equality when there is one, which FerretDB (the tests' server) answers
// from its primary key, where it scans the collection for $in.
func idIn(ids []string) bson.D {
	if len(ids) == 1 {
		return bson.D{{Key: "_id", Value: ids[0]}}
	}
	return bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}
}

// readFeedHeads reads the feed heads of users that have one.
func (s *Store) readFeedHeads(ctx context.Context, users []string) (map[string]feedHead, error) {
	var fhs []feedHead
	cur, err := s.feeds.Find(ctx, idIn(users),
		options.Find().SetBatchSize(1<<20))
	if err == nil {
		err = cur.All(ctx, &fhs)
	}
	if err != nil {
		return nil, fmt.Errorf("feed heads: %w", err)
	}
	out := make(map[string]feedHead, len(fhs))
	for _, fh := range fhs {
		out[fh.User] = fh
	}
	return out, nil
}

// insertIgnoringDuplicates inserts docs, those whose _id is taken left as
// they are.
func (s *Store) insertIgnoringDuplicates(ctx context.Context, coll *mongo.Collection, docs []any) error {
	_, err := coll.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
	var bwe mongo.BulkWriteException
	if err == nil || !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return err
	}
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we.WriteError) {
			return err
		}
	}
	return nil
}

// appendFeed places outs in their users' feeds, claiming the next cursors,
// and returns their deliveries. devs are the devices the outs were made
// from (their legacy numbers start a missing feed). Entries of one user
// land in the order given.
func (s *Store) appendFeed(ctx context.Context, devs []head, outs []*feedOut) ([]store.Delivery, error) {
	return s.appendFeedKnown(ctx, devs, outs, nil)
}

// appendFeedKnown is appendFeed with some feed heads read already (known,
// read meanwhile with the target devices): stale heads are only a start,
// the claims decide.
func (s *Store) appendFeedKnown(ctx context.Context, devs []head, outs []*feedOut, known map[string]feedHead) ([]store.Delivery, error) {
	if len(outs) == 0 {
		return nil, nil
	}
	var users []string
	for _, o := range outs {
		if !slices.Contains(users, o.user) {
			users = append(users, o.user)
		}
	}
	fhs, err := s.feedHeads(ctx, users, devs, known)
	if err != nil {
		return nil, err
	}
	next := make(map[string]int64, len(fhs))
	for u, fh := range fhs {
		next[u] = max(fh.Hint, fh.Trim) + 1
	}
	return s.appendFrom(ctx, next, outs)
}

// appendFrom is appendFeed from the cursors next (per user) up.
func (s *Store) appendFrom(ctx context.Context, next map[string]int64, outs []*feedOut) ([]store.Delivery, error) {
	pending := outs
	for attempt := 0; len(pending) > 0; attempt++ {
		if attempt > 10 {
			return nil, fmt.Errorf("store/mongo: could not place %d feed entries", len(pending))
		}
		placed, err := s.placeFeed(ctx, next, pending)
		if err != nil {
			return nil, err
		}
		pending, err = s.confirmFeed(ctx, next, placed, attempt)
		if err != nil {
			return nil, err
		}
	}
	var ds []store.Delivery
	for _, o := range outs {
		if !o.placed {
			continue
		}
		for _, d := range o.devices {
			ds = append(ds, store.Delivery{DeviceID: d, Event: o.event})
		}
	}
	return ds, nil
}

// placeFeed inserts outs in rounds of one entry per user: MongoDB may apply
// the inserts of an unordered insertMany in any order, and an entry must
// never become visible before the one below it in its feed.
func (s *Store) placeFeed(ctx context.Context, next map[string]int64, outs []*feedOut) ([]*feedOut, error) {
	var placed []*feedOut
	for len(outs) > 0 {
		var round, later []*feedOut
		seen := make(map[string]bool, len(outs))
		for _, o := range outs {
			if _, ok := next[o.user]; !ok {
				continue
			}
			if seen[o.user] {
				later = append(later, o)
				continue
			}
			seen[o.user] = true
			round = append(round, o)
		}
		if err := s.insertFeedRound(ctx, next, round); err != nil {
			return nil, err
		}
		placed = append(placed, round...)
		outs = later
	}
	return placed, nil
}

// insertFeedRound inserts entries of distinct users, each at its user's
// next cursor, moving up past cursors that are taken.
func (s *Store) insertFeedRound(ctx context.Context, next map[string]int64, round []*feedOut) error {
	for tries := 0; len(round) > 0; tries++ {
		if tries > 0 && tries%4 == 0 {
			// Many taken cursors in a row: the heads moved on, start
			// from there rather than walking.
			users := make([]string, len(round))
			for i, o := range round {
				users[i] = o.user
			}
			fhs, err := s.feedHeads(ctx, users, nil, nil)
			if err != nil {
				return err
			}
			for u, fh := range fhs {
				next[u] = max(next[u], max(fh.Hint, fh.Trim)+1)
			}
		}
		if tries > 1000 {
			return errors.New("store/mongo: no free feed cursor after 1000 tries")
		}
		docs := make([]any, len(round))
		for i, o := range round {
			c := next[o.user]
			if c > maxCursor {
				return fmt.Errorf("store/mongo: the feed of %s is full", o.user)
			}
			o.doc.ID = feedKey(o.user, c)
			if o.doc.Ref == nil && o.doc.Chat == "" {
				o.doc.N = rand.Int64()
			}
			docs[i] = &o.doc
		}
		_, err := s.feed.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false))
		taken := map[int]bool{}
		if err != nil {
			var bwe mongo.BulkWriteException
			if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
				return fmt.Errorf("insert feed entries: %w", err)
			}
			for _, we := range bwe.WriteErrors {
				if !mongo.IsDuplicateKeyError(we.WriteError) {
					return fmt.Errorf("insert feed entries: %w", err)
				}
				taken[we.Index] = true
			}
		}
		var retry []*feedOut
		for i, o := range round {
			c := next[o.user]
			next[o.user] = c + 1
			if taken[i] {
				retry = append(retry, o)
				continue
			}
			o.event.Cursor, o.placed = c, true
		}
		round = retry
	}
	return nil
}

// confirmFeed raises the heads of the feeds written to and checks that no
// entry landed at or below its feed's trim point: it may sit on a cursor
// that was trimmed after the writer read the head, and no device would
// read it. Those are taken back and returned, to be placed again; one that
// is gone was trimmed, which only happens to entries every device read.
func (s *Store) confirmFeed(ctx context.Context, next map[string]int64, placed []*feedOut, attempt int) ([]*feedOut, error) {
	lo := map[string]int64{}
	hi := map[string]int64{}
	for _, o := range placed {
		c := o.event.Cursor
		if l, ok := lo[o.user]; !ok || c < l {
			lo[o.user] = c
		}
		hi[o.user] = max(hi[o.user], c)
	}
	models := make([]mongo.WriteModel, 0, len(lo))
	for u, l := range lo {
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: u}, {Key: "t", Value: bson.D{{Key: "$lt", Value: l}}}}).
			SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "h", Value: hi[u]}}}}))
	}
	matched, err := s.bulkUpdate(ctx, s.feeds, models, nil)
	if err != nil {
		return nil, fmt.Errorf("raise feed heads: %w", err)
	}
	if matched == int64(len(models)) {
		return nil, nil // the usual case: every trim point is below every new entry
	}
	users := make([]string, 0, len(lo))
	for u := range lo {
		users = append(users, u)
	}
	fhs, err := s.feedHeads(ctx, users, nil, nil)
	if err != nil {
		return nil, err
	}
	var again []*feedOut
	for _, o := range placed {
		t := fhs[o.user].Trim
		if o.event.Cursor > t {
			continue
		}
		res, err := s.feed.DeleteOne(ctx, o.doc.identity())
		if err != nil {
			return nil, fmt.Errorf("take back feed entry: %w", err)
		}
		o.placed = false
		if res.DeletedCount == 1 {
			s.log.Info("feed entry landed below a trim; placing it again",
				"user", o.user, "cursor", o.event.Cursor, "trim", t, "attempt", attempt)
			next[o.user] = max(next[o.user], t+1)
			again = append(again, o)
		}
		// Gone: trimmed, so every device read it. It is not delivered
		// again.
	}
	models = models[:0]
	for u, h := range hi {
		models = append(models, mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: u}}).
			SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "h", Value: h}}}}))
	}
	if _, err := s.bulkUpdate(ctx, s.feeds, models, nil); err != nil {
		return nil, fmt.Errorf("raise feed heads: %w", err)
	}
	return again, nil
}

// trimFeed raises user's trim point from `from` (as read) to `to` and
// deletes the entries in between. known, if it covers (from, to], holds
// them as read before (an ack's own read); otherwise they are read here.
// Either way they are read before the trim point moves, and deleted by
// identity after it, those above where this raise found it only: a
// writer's entry that lands on one of those cursors later is not among
// them, and its writer finds it below the trim point and places it again.
func (s *Store) trimFeed(ctx context.Context, user string, from, to int64, known []feedDoc, knownFrom int64) error {
	if to <= from {
		return nil
	}
	var docs []feedDoc
	if knownFrom <= from && known != nil {
		for _, d := range known {
			if c := feedCursor(d.ID); c > from && c <= to {
				docs = append(docs, d)
			}
		}
	} else {
		var err error
		if docs, err = s.readFeed(ctx, user, from, to, 0, identityProjection); err != nil {
			return err
		}
	}
	// What t was when this trim raised it says which of the entries read
	// are still the ones that were there: at or below it, another trim
	// got there first and may have freed the cursor, on which a writer
	// with a stale head can have landed since (and takes its entry back
	// itself, unless this trim deleted it, read as the old one).
	var before feedHead
	err := s.feeds.FindOneAndUpdate(ctx, bson.D{{Key: "_id", Value: user}},
		bson.D{{Key: "$max", Value: bson.D{{Key: "t", Value: to}}}},
		options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&before)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("raise the trim point of %s: %w", user, err)
	}
	docs = slices.DeleteFunc(docs, func(d feedDoc) bool { return feedCursor(d.ID) <= before.Trim })
	for chunk := range slices.Chunk(docs, 500) {
		or := make(bson.A, len(chunk))
		for i := range chunk {
			or[i] = chunk[i].identity()
		}
		if _, err := s.feed.DeleteMany(ctx, bson.D{{Key: "$or", Value: or}}); err != nil {
			return fmt.Errorf("trim the feed of %s: %w", user, err)
		}
	}
	return nil
}

// identityProjection is what trimFeed needs of an entry.
var identityProjection = bson.D{{Key: "r", Value: 1}, {Key: "c", Value: 1}, {Key: "s", Value: 1}, {Key: "n", Value: 1},
	{Key: "x", Value: 1}, {Key: "o", Value: 1}}

// readFeed reads up to limit (0: all) entries of user's feed in (after,
// upto], in cursor order.
func (s *Store) readFeed(ctx context.Context, user string, after, upto int64, limit int, projection bson.D) ([]feedDoc, error) {
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	if projection != nil {
		opts.SetProjection(projection)
	}
	var docs []feedDoc
	cur, err := s.feed.Find(ctx, feedRange(user, after, upto), opts)
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("feed of %s: %w", user, err)
	}
	return docs, nil
}

// devHead is what Inbox and Heads read of a device.
type devHead struct {
	ID    string `bson:"_id"`
	User  string `bson:"user"`
	Floor int64  `bson:"floor"`
}

// Inbox implements store.Messages: the entries of the device's user's feed
// above after that the device reads. limit <= 0 means no limit. Entries at
// or below the device's floor (acked) or the feed's trim point (being
// trimmed, or a writer's landing there that it will take back) are not
// returned.
func (s *Store) Inbox(ctx context.Context, deviceID string, after int64, limit int) ([]store.Event, int64, error) {
	if !validID(deviceID) {
		return nil, 0, nil
	}
	after = max(after, 0)
	var (
		dev devHead
		fh  feedHead
		raw []feedDoc
	)
	user, cached := s.devUsers.get(deviceID)
	readDev := func() error {
		err := s.devices.FindOne(ctx, bson.D{{Key: "_id", Value: deviceID}},
			options.FindOne().SetProjection(bson.D{{Key: "user", Value: 1}, {Key: "floor", Value: 1}})).Decode(&dev)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil // a deleted device has an empty inbox
		}
		return err
	}
	readHead := func() error {
		err := s.feeds.FindOne(ctx, bson.D{{Key: "_id", Value: user}}).Decode(&fh)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return nil
		}
		return err
	}
	var err error
	if cached {
		err = parallel(readDev, readHead, func() (err error) {
			raw, err = s.readFeed(ctx, user, after, maxCursor, limit, nil)
			return err
		})
	} else if err = readDev(); err == nil && dev.User != "" {
		user = dev.User
		err = parallel(readHead, func() (err error) {
			// Above the floor: what is below was acked.
			raw, err = s.readFeed(ctx, user, max(after, dev.Floor), maxCursor, limit, nil)
			return err
		})
	}
	if err != nil {
		return nil, 0, fmt.Errorf("inbox of %s: %w", deviceID, err)
	}
	if dev.User == "" || dev.User != user {
		return nil, 0, nil
	}
	s.devUsers.put(deviceID, user)
	below := max(dev.Floor, fh.Trim)
	var docs []feedDoc
	last := max(after, below) // the last cursor read, visible to the device or not, or below which nothing is
	asked := limit
	for {
		for _, d := range raw {
			c := feedCursor(d.ID)
			last = max(last, c)
			if c > below && d.visibleTo(deviceID) {
				docs = append(docs, d)
			}
		}
		if limit > 0 && len(docs) >= limit {
			break
		}
		// A full read whose entries were not all for this device: what
		// follows is stored already. Otherwise, the head was read
		// concurrently with the entries, and one it names may have been
		// inserted after the read: a short page with a head above its
		// last event means "acked up to head" to the caller, so such an
		// entry must be fetched now.
		full := asked > 0 && len(raw) == asked
		if !full && fh.Hint <= last {
			break
		}
		asked = 0
		if limit > 0 {
			asked = limit - len(docs)
		}
		var err error
		if raw, err = s.readFeed(ctx, user, max(last, below), maxCursor, asked, nil); err != nil {
			return nil, 0, fmt.Errorf("inbox of %s: %w", deviceID, err)
		}
		if len(raw) == 0 {
			break
		}
	}
	events, err := s.feedEvents(ctx, docs)
	if err != nil {
		return nil, 0, fmt.Errorf("inbox of %s: %w", deviceID, err)
	}
	return events, max(fh.Hint, below, last), nil
}

// feedEvents turns entries into events, reading the log entries the
// references name in one query.
func (s *Store) feedEvents(ctx context.Context, docs []feedDoc) ([]store.Event, error) {
	logs, err := s.readRefs(ctx, docs, msgProjection)
	if err != nil {
		return nil, err
	}
	events := make([]store.Event, 0, len(docs))
	for i := range docs {
		d := &docs[i]
		ev := store.Event{Cursor: feedCursor(d.ID)}
		if chat, seq, ok := d.target(); ok {
			l := logs[numKey(chat, seq)]
			if l == nil {
				return nil, fmt.Errorf("store/mongo: feed entry %x refers to %s/%d, which the log does not have", d.ID, chat, seq)
			}
			ev.Kind, ev.Message = store.EventMessage, l.message()
			if l.Kind == store.EventGroup {
				ev.Kind = store.EventGroup
			}
		} else {
			switch {
			case d.Receipt != nil:
				r := d.Receipt
				ev.Kind = store.EventReceipt
				ev.Receipt = &store.Receipt{ChatID: r.ChatID, MsgIDs: r.MsgIDs, Status: r.Status, By: r.By, TS: r.TS}
			case d.Msg != nil && d.Kind == kindGroup:
				ev.Kind, ev.Message = store.EventGroup, d.Msg.message()
			case d.Msg != nil:
				ev.Kind, ev.Message = store.EventMessage, d.Msg.message()
			default:
				return nil, fmt.Errorf("store/mongo: feed entry %x holds nothing", d.ID)
			}
		}
		events = append(events, ev)
	}
	return events, nil
}

// readRefs reads the log entries docs refer to, by "<chat>/<seq>".
func (s *Store) readRefs(ctx context.Context, docs []feedDoc, projection bson.D) (map[string]*eventMsg, error) {
	var keys []string
	for i := range docs {
		if chat, seq, ok := docs[i].target(); ok {
			keys = append(keys, numKey(chat, seq))
		}
	}
	out := make(map[string]*eventMsg, len(keys))
	if len(keys) == 0 {
		return out, nil
	}
	type logDoc struct {
		ID  string   `bson:"_id"`
		Msg eventMsg `bson:",inline"`
	}
	var found []logDoc
	cur, err := s.messages.Find(ctx, idIn(keys),
		options.Find().SetProjection(projection).SetBatchSize(1<<20))
	if err == nil {
		err = cur.All(ctx, &found)
	}
	if err != nil {
		return nil, fmt.Errorf("log entries of %d feed entries: %w", len(keys), err)
	}
	for i := range found {
		out[found[i].ID] = &found[i].Msg
	}
	return out, nil
}

// Heads implements store.Messages: max(feed head, trim point, floor) of
// each device, as Inbox reports it when the device has nothing above.
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
	var devs []devHead
	cur, err := s.devices.Find(ctx, idIn(ids),
		options.Find().SetProjection(bson.D{{Key: "user", Value: 1}, {Key: "floor", Value: 1}}).SetBatchSize(1<<20))
	if err == nil {
		err = cur.All(ctx, &devs)
	}
	if err != nil {
		return nil, fmt.Errorf("inbox heads: %w", err)
	}
	var users []string
	for _, d := range devs {
		if !slices.Contains(users, d.User) {
			users = append(users, d.User)
		}
	}
	byUser := map[string]feedHead{}
	if len(users) > 0 {
		if byUser, err = s.readFeedHeads(ctx, users); err != nil {
			return nil, fmt.Errorf("inbox heads: %w", err)
		}
	}
	for _, d := range devs {
		fh := byUser[d.User]
		out[d.ID] = max(fh.Hint, fh.Trim, d.Floor)
	}
	return out, nil
}

// receiptOuts returns the entries of the receipts in g, one per author
// with a device among hs.
func receiptOuts(g *groups, hs []head, status, by string, ts int64) []*feedOut {
	var outs []*feedOut
	for _, rg := range g.list {
		r := &store.Receipt{ChatID: rg.chatID, MsgIDs: rg.msgIDs, Status: status, By: by, TS: ts}
		o := &feedOut{user: rg.author, event: store.Event{Kind: store.EventReceipt, Receipt: r},
			doc: feedDoc{Receipt: &eventRcpt{ChatID: r.ChatID, MsgIDs: r.MsgIDs, Status: status, By: by, TS: ts}}}
		for _, h := range hs {
			if h.User == rg.author {
				o.devices = append(o.devices, h.ID)
			}
		}
		if len(o.devices) > 0 {
			outs = append(outs, o)
		}
	}
	return outs
}

// sendReceipts appends one receipt per group to its author's feed. The
// deliveries of one receipt share one read-only *Receipt.
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
	return s.appendFeed(ctx, hs, receiptOuts(g, hs, status, by, ts))
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
