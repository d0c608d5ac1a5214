package embedded

import (
	"context"
	"encoding/binary"
	"fmt"

	pebble "github.com/cockroachdb/pebble/v2"

	"github.com/tern-im/tern/store"
)

// The feed: one inbox per user, read by all of the user's devices.
//
// A message to a group of a thousand members used to be two thousand inbox
// events (one per device), each a copy of the message: half a megabyte per
// message. Now the message is stored once, in its chat's log, and each
// member's feed gets one reference to it (its chat's number and its seq: a
// few bytes of value). Every device keeps its own ack cursor into its
// user's feed, in its head record; the cursors a device sees are its
// user's feed cursors, which only grow, so the wire cursor is still per
// device and increasing. The sending device skips its own message, which
// its feed entry names; a receipt is stored whole, once per author rather
// than once per author device.
//
// Feed entries up to the slowest device's ack cursor are deleted by the
// acks (trim), except the last entry of a feed, which stays: its key is
// where the next cursor continues after a restart, so no feed head record
// needs rewriting on every append.

// Feed entry kinds: the first byte of a feed value. A receipt is stored as
// its inbox event encoding (evReceipt); the others are references.
const (
	fRef     byte = 16 // chat number uvarint, seq uvarint
	fRefSkip byte = 17 // chat number uvarint, seq uvarint, the device that skips it
	fOnly    byte = 18 // device id string, inbox event: an event for one device (from a per-device inbox)
	fNone    byte = 19 // nothing: keeps a feed's cursor where per-device inboxes left it
)

// lastChatNumKey is the writer-cache key of the last chat number given out.
// It is never written to the database: the last key of tChatIDs says it.
var lastChatNumKey = string([]byte{tChatIDs, 0xff})

// feedLastKey is the writer-cache key of the last cursor of user's feed,
// which is never written to the database either: the feed's last key says it.
func feedLastKey(user string) string { return string(key(tFeedLast, user)) }

// last returns the last key in [lower, upper), nil if there is none.
func (x reader) last(lower, upper []byte) ([]byte, error) {
	it, err := x.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return nil, fmt.Errorf("iterate below %q: %w", upper, err)
	}
	var k []byte
	if it.Last() {
		k = append([]byte(nil), it.Key()...)
	}
	if err := it.Close(); err != nil {
		return nil, fmt.Errorf("iterate below %q: %w", upper, err)
	}
	return k, nil
}

// feedLast reads the last cursor of user's feed (0 for an empty one).
func feedLast(r reader, user string) (int64, error) {
	p := prefix(tFeed, user)
	k, err := r.last(p, prefixEnd(p))
	if err != nil || k == nil {
		return 0, err
	}
	return seqOf(k), nil
}

// pseudo returns the writer-cached number at k, a key of no table, computing
// it with load when the cache does not have it. As with the cached tables,
// what load reads from the batch is committed state unless the round wrote
// k (then pending has it).
func (w *wtx) pseudo(k string, load func() (int64, error)) int64 {
	if v, ok := w.pending[k]; ok {
		return u64(v)
	}
	if v, ok := w.cache.vals[k]; ok {
		return u64(v)
	}
	if w.err != nil {
		return 0
	}
	n, err := load()
	if err != nil {
		w.setErr(err)
		return 0
	}
	w.cache.set(k, binary.BigEndian.AppendUint64(nil, uint64(n)))
	return n
}

// setPseudo records n at k for the rest of the round; it reaches the cache
// with the round's commit.
func (w *wtx) setPseudo(k string, n int64) {
	w.pending[k] = binary.BigEndian.AppendUint64(nil, uint64(n))
}

// feedLast returns the last cursor of user's feed as of the round so far.
func (w *wtx) feedLast(user string) int64 {
	return w.pseudo(feedLastKey(user), func() (int64, error) { return feedLast(w.r, user) })
}

// appendFeed puts v at the end of user's feed and returns its cursor.
func (w *wtx) appendFeed(user string, v []byte) int64 {
	n := w.reserveFeed(user)
	w.put(seqKey(tFeed, user, n), v)
	return n
}

// reserveFeed takes the next cursor of user's feed, whose entry the caller
// puts before the round commits.
func (w *wtx) reserveFeed(user string) int64 {
	n := w.feedLast(user) + 1
	w.setPseudo(feedLastKey(user), n)
	w.sync = true
	return n
}

// chatNum returns the number of chatID, giving it the next one if it has
// none yet. Numbers keep feed references small: a chat id is 28 bytes or
// more, a number two or three.
func (w *wtx) chatNum(chatID string) uint64 {
	if v := w.get(key(tChatNums, chatID)); v != nil {
		n, _ := binary.Uvarint(v)
		return n
	}
	n := w.pseudo(lastChatNumKey, func() (int64, error) {
		k, err := w.r.last([]byte{tChatIDs}, []byte{tChatIDs + 1})
		if err != nil || k == nil {
			return 0, err
		}
		return seqOf(k), nil
	}) + 1
	w.setPseudo(lastChatNumKey, n)
	w.put(key(tChatNums, chatID), binary.AppendUvarint(nil, uint64(n)))
	w.put(chatIDKey(uint64(n)), []byte(chatID))
	return uint64(n)
}

func chatIDKey(n uint64) []byte {
	return binary.BigEndian.AppendUint64([]byte{tChatIDs}, n)
}

// encodeRef returns the feed entry of a reference to the log entry seq of
// chat number chat; skip, if not empty, is the device that skips it.
func encodeRef(chat uint64, seq int64, skip string) []byte {
	b := make([]byte, 0, 1+2*binary.MaxVarintLen64+len(skip))
	if skip == "" {
		b = append(b, fRef)
	} else {
		b = append(b, fRefSkip)
	}
	b = binary.AppendUvarint(b, chat)
	b = binary.AppendUvarint(b, uint64(seq))
	return append(b, skip...)
}

// feedEntry is a decoded feed value: a reference (chat, seq), or an inline
// event (event, the encoding decodeEvent reads). only and skip say which
// devices it is not for.
type feedEntry struct {
	chat  uint64
	seq   int64
	event []byte
	only  string // if set, the one device the entry is for
	skip  string // if set, the device the entry is not for
	none  bool
}

// forDevice reports whether device should see the entry.
func (e *feedEntry) forDevice(device string) bool {
	return !e.none && (e.only == "" || e.only == device) && e.skip != device
}

// decodeFeedEntry parses a feed value; the result aliases v.
func decodeFeedEntry(v []byte) (feedEntry, error) {
	if len(v) == 0 {
		return feedEntry{}, fmt.Errorf("%w: empty feed entry", errCorrupt)
	}
	var e feedEntry
	switch v[0] {
	case evMessage, evReceipt:
		e.event = v
	case fRef, fRefSkip:
		d := decoder{b: v[1:]}
		e.chat = d.uvarint("chat number")
		e.seq = int64(d.uvarint("seq"))
		if d.err != nil {
			return feedEntry{}, d.err
		}
		if v[0] == fRefSkip {
			e.skip = string(d.b)
		} else if len(d.b) != 0 {
			return feedEntry{}, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
		}
	case fOnly:
		d := decoder{b: v[1:]}
		e.only = d.str("device")
		if d.err != nil {
			return feedEntry{}, d.err
		}
		if e.only == "" || len(d.b) == 0 {
			return feedEntry{}, fmt.Errorf("%w: event for one device without device or event", errCorrupt)
		}
		e.event = d.b
	case fNone:
		e.none = true
	default:
		return feedEntry{}, fmt.Errorf("%w: feed entry kind %d", errCorrupt, v[0])
	}
	return e, nil
}

// chatID resolves a chat number with r. Numbers never change once given,
// so the answer is remembered for every reader.
func (s *Store) chatID(r reader, n uint64) (string, error) {
	if id, ok := s.chatIDs.Load(n); ok {
		return id.(string), nil
	}
	v, err := r.get(chatIDKey(n))
	if err != nil {
		return "", err
	}
	if v == nil {
		return "", fmt.Errorf("%w: no chat number %d", errCorrupt, n)
	}
	s.chatIDs.Store(n, string(v))
	return string(v), nil
}

// resolve turns a feed entry into the event it stands for. r must be a
// snapshot of committed state (not the writer's batch): the message may come
// from Store.recent, which holds committed records only.
func (s *Store) resolve(r reader, e *feedEntry) (store.Event, error) {
	if e.event != nil {
		return decodeEvent(e.event)
	}
	chatID, err := s.chatID(r, e.chat)
	if err != nil {
		return store.Event{}, err
	}
	k := seqKey(tLog, chatID, e.seq)
	raw, ok := s.recent.get(k)
	if !ok {
		if raw, err = r.get(k); err != nil {
			return store.Event{}, err
		}
	}
	if raw == nil {
		return store.Event{}, fmt.Errorf("%w: feed entry for missing message %d of %s", errCorrupt, e.seq, chatID)
	}
	m, err := decodeMessage(raw)
	if err != nil {
		return store.Event{}, fmt.Errorf("message %d of %s: %w", e.seq, chatID, err)
	}
	ev := store.Event{Kind: store.EventMessage, Message: &m}
	if m.Kind == store.EventGroup {
		ev.Kind = store.EventGroup
	}
	return ev, nil
}

// entryHead is what an ack needs of a feed entry: the head of the message
// it refers to (ok false for receipts and entries that are not messages).
func (w *wtx) entryHead(e *feedEntry) (msgHead, bool, error) {
	switch {
	case e.none:
		return msgHead{}, false, nil
	case e.event != nil:
		if e.event[0] != evMessage {
			return msgHead{}, false, nil
		}
		mh, err := messageHead(e.event[1:])
		return mh, err == nil, err
	}
	hk := msgHeadKey(e.chat, e.seq)
	if v, ok := w.pending[hk]; ok {
		return decodeMsgHead(v, e.seq)
	}
	if v, ok := w.cache.vals[hk]; ok {
		return decodeMsgHead(v, e.seq)
	}
	v := w.get(chatIDKey(e.chat))
	if v == nil {
		return msgHead{}, false, cmpErr(w.err, fmt.Errorf("%w: no chat number %d", errCorrupt, e.chat))
	}
	raw := w.get(seqKey(tLog, string(v), e.seq))
	if raw == nil {
		return msgHead{}, false, cmpErr(w.err, fmt.Errorf("%w: feed entry for missing message %d of %s", errCorrupt, e.seq, v))
	}
	mh, err := messageHead(raw)
	if err != nil {
		return msgHead{}, false, err
	}
	// Read from the batch and not written in the round (pending would
	// have it): committed, and a log entry never changes.
	w.cache.set(hk, encodeMsgHead(&mh))
	return mh, true, nil
}

// Recent messages' heads. Every member's ack of a group message needs the
// message's author and id for its receipt: a thousand log reads of the
// same entry on the writer goroutine, unless the writer remembers them.
// A send records its message's head for the round (pending), so that it
// reaches the cache only if the round commits.

func msgHeadKey(chat uint64, seq int64) string {
	k := binary.BigEndian.AppendUint64([]byte{tMsgHeads}, chat)
	return string(binary.BigEndian.AppendUint64(k, uint64(seq)))
}

func encodeMsgHead(mh *msgHead) []byte {
	b := make([]byte, 0, 3+len(mh.id)+len(mh.chatID)+len(mh.from)+3)
	b = appendString(b, mh.id)
	b = appendString(b, mh.chatID)
	b = appendString(b, mh.from)
	if mh.group {
		return append(b, 1)
	}
	return append(b, 0)
}

func decodeMsgHead(b []byte, seq int64) (msgHead, bool, error) {
	d := decoder{b: b}
	mh := msgHead{seq: seq}
	mh.id = d.str("id")
	mh.chatID = d.str("chat id")
	mh.from = d.str("from")
	if d.err != nil || len(d.b) != 1 {
		return msgHead{}, false, cmpErr(d.err, fmt.Errorf("%w: cached message head", errCorrupt))
	}
	mh.group = d.b[0] == 1
	return mh, true, nil
}

func cmpErr(a, b error) error {
	if a != nil {
		return a
	}
	return b
}

// trim deletes the entries of user's feed that every device of the user
// has acked, but never the feed's last entry (see the top of this file).
// tFeedTrim remembers how far the last trim went, so each entry is deleted
// once and nothing walks the tombstones.
func (w *wtx) trim(user string) {
	from := u64(w.get(key(tFeedTrim, user)))
	upTo := w.feedLast(user) - 1
	for _, d := range w.userDeviceIDs(user) {
		upTo = min(upTo, w.head(d).Acked)
	}
	if upTo <= from {
		return
	}
	for c := from + 1; c <= upTo; c++ {
		w.del(seqKey(tFeed, user, c))
	}
	w.put(key(tFeedTrim, user), binary.BigEndian.AppendUint64(nil, uint64(upTo)))
}

// migrateInboxes moves what per-device inboxes (the format before feeds)
// still hold into the feeds, once: each unacked event goes to its user's
// feed as an entry for its device alone. A user's feed continues above the
// highest cursor any of its devices had, and every device's ack cursor
// starts there, so no client's cursor ever goes backwards. 0x00 cannot
// start a device id, so migratedKey is not a head.
func (s *Store) migrateInboxes(ctx context.Context) error {
	var done []byte
	if err := s.view(ctx, func(r reader) error {
		var err error
		done, err = r.get(migratedKey)
		return err
	}); err != nil || done != nil {
		return err
	}
	type device struct {
		id string
		h  head
	}
	users := map[string][]device{}
	err := s.view(ctx, func(r reader) error {
		return r.scan([]byte{tHeads}, []byte{tHeads + 1}, func(k, v []byte) (bool, error) {
			if len(k) < 2 || k[1] == 0 {
				return true, nil
			}
			if h := decodeHead(v); h.User != "" {
				users[h.User] = append(users[h.User], device{string(k[1:]), h})
			}
			return true, nil
		})
	})
	if err != nil {
		return fmt.Errorf("migrate inboxes: %w", err)
	}
	// Users whose devices never had an event need nothing. The others go
	// many to a write, so that group commit is not one fsync per user.
	var todo []string
	for user, devs := range users {
		for _, d := range devs {
			if d.h.Last > 0 {
				todo = append(todo, user)
				break
			}
		}
	}
	// A write takes up to 256 users, or fewer whose old inboxes hold many
	// events, so that no batch grows without bound.
	const usersPerWrite, eventsPerWrite = 256, 50_000
	if len(todo) > 0 {
		s.log.Info("store/embedded: moving per-device inboxes into per-user feeds (once)", "users", len(todo))
	}
	for len(todo) > 0 {
		n, events := 0, int64(0)
		for n < len(todo) && n < usersPerWrite && (n == 0 || events < eventsPerWrite) {
			for _, d := range users[todo[n]] {
				events += max(d.h.Last-d.h.Acked, 0)
			}
			n++
		}
		chunk := todo[:n]
		todo = todo[n:]
		err := s.write(ctx, func(w *wtx) error {
			for _, user := range chunk {
				devs := users[user]
				var base int64
				for _, d := range devs {
					base = max(base, d.h.Last)
				}
				if w.feedLast(user) >= base {
					continue // migrated by an earlier, interrupted run
				}
				// The feed continues above every cursor any device had,
				// and everything below is trimmed: every device, the ones
				// that never had an event too, starts there.
				w.put(seqKey(tFeed, user, base), []byte{fNone})
				w.setPseudo(feedLastKey(user), base)
				w.put(key(tFeedTrim, user), binary.BigEndian.AppendUint64(nil, uint64(base-1)))
				for _, d := range devs {
					for c := d.h.Acked + 1; c <= d.h.Last; c++ {
						ik := seqKey(tInbox, d.id, c)
						v := w.get(ik)
						if v == nil {
							continue
						}
						e := appendString([]byte{fOnly}, d.id)
						w.appendFeed(user, append(e, v...))
						w.del(ik)
					}
					w.put(key(tHeads, d.id), head{Acked: base, User: user}.encode())
				}
			}
			return nil
		})
		if err != nil {
			return fmt.Errorf("migrate inboxes of %d users: %w", len(chunk), err)
		}
	}
	if err := s.write(ctx, func(w *wtx) error { w.put(migratedKey, []byte{1}); return nil }); err != nil {
		return fmt.Errorf("migrate inboxes: %w", err)
	}
	return nil
}

var migratedKey = []byte{tHeads, 0x00, 'f', 'e', 'e', 'd'}
