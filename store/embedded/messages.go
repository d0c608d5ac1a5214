package embedded

import (
	"bytes"
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	pebble "github.com/cockroachdb/pebble/v2"

	"github.com/tern-im/tern/store"
)

// chatMeta is the rarely changing part of a chat; LastSeq lives in
// tChatSeq so that a send does not rewrite the member list. A group made by
// WriteGroup has no Members here: its record in tGroups holds them.
type chatMeta struct {
	Kind      string
	Title     string `json:",omitempty"`
	Members   []string
	CreatedAt time.Time
}

// Send implements store.Messages. A new direct chat is created from Kind
// and Members, which must include the sender; in an existing chat the
// sender must be a member (ErrNotFound otherwise). Target devices that do
// not exist (deleted meanwhile) are skipped, so that a send racing a
// DeleteDevice cannot resurrect its inbox. A group send (Kind KindGroup)
// goes to the group's members instead (see groupTargets).
func (s *Store) Send(ctx context.Context, req store.SendRequest) (store.SendResult, error) {
	p, err := prepareSend(&req)
	if err != nil {
		return store.SendResult{}, err
	}
	var res store.SendResult
	err = s.write(ctx, func(w *wtx) error {
		res = store.SendResult{}
		return applySend(w, &p, &res)
	})
	if ce, ok := callerErr(err); ok {
		return store.SendResult{}, ce
	}
	if err != nil {
		return store.SendResult{}, fmt.Errorf("send: %w", err)
	}
	return res, nil
}

// prepareSend checks req and makes it ready for the writer. Work that needs
// no database state is done here, on the caller's goroutine, to keep the
// single writer's share of a send small.
func prepareSend(req *store.SendRequest) (sendPrep, error) {
	m := req.Message
	if err := store.CheckSend(req); err != nil {
		return sendPrep{}, fmt.Errorf("store/embedded: %w", err)
	}
	if !validID(m.ChatID) || !validID(m.From) || !validID(m.FromDevice) {
		return sendPrep{}, errInvalid("chat, sender or device id")
	}
	p := sendPrep{req: req}
	if req.Kind == store.KindGroup {
		return p, nil // the group says who gets it
	}
	p.members = store.Unique(req.Members)
	p.targets = store.Unique(req.Devices)
	switch {
	case req.Kind == "":
		p.newChatErr = errInvalid("chat kind")
	case !slices.Contains(p.members, m.From):
		p.newChatErr = errInvalid("members: the sender is not one of them")
	}
	for _, u := range p.members {
		if !validID(u) {
			p.newChatErr = errInvalid("member id")
		}
	}
	return p, nil
}

// sendPrep is a send request made ready for the writer.
type sendPrep struct {
	req              *store.SendRequest
	members, targets []string // deduplicated
	// newChatErr is why the request cannot create its chat; it only matters
	// if the chat does not exist yet.
	newChatErr error
}

func applySend(w *wtx, p *sendPrep, res *store.SendResult) error {
	req := p.req
	m := req.Message
	m.Seq = 0
	var idemKey []byte
	if req.ClientID != "" {
		idemKey = pairKey(tIdem, m.FromDevice, req.ClientID)
		if v := w.get(idemKey); v != nil {
			if len(v) < 8 {
				return fmt.Errorf("%w: idempotency record", errCorrupt)
			}
			first, err := decodeMessage(w.get(seqKey(tLog, string(v[8:]), u64(v))))
			if err != nil {
				return fmt.Errorf("first send of %q: %w", req.ClientID, err)
			}
			*res = store.SendResult{Message: first, Duplicate: true}
			return nil
		}
	}

	if req.Kind != store.KindGroup && strings.HasPrefix(m.ChatID, store.PrefixGroup) {
		// A group's members, rules and change entries are its own: a
		// direct-style send would bypass all three.
		if g, err := w.group(m.ChatID); err != nil || g != nil {
			return cmp.Or(err, errInvalid(fmt.Sprintf("chat kind %q: %s is a group", req.Kind, m.ChatID)))
		}
	}
	var meta []byte
	var members, users []string
	var g *store.Group
	switch {
	case req.Kind == store.KindGroup:
		var err error
		if users, g, err = groupTargets(w, req); err != nil {
			return err
		}
	case !w.has(key(tChats, m.ChatID)):
		if p.newChatErr != nil {
			return p.newChatErr
		}
		members = p.members
		var err error
		meta, err = json.Marshal(chatMeta{Kind: req.Kind, Members: members, CreatedAt: time.UnixMilli(m.TS).UTC()})
		if err != nil {
			return err
		}
	case !w.has(pairKey(tMembers, m.From, m.ChatID)):
		return fmt.Errorf("%w: %s is not in chat %s", store.ErrNotFound, m.From, m.ChatID)
	}
	if req.Kind != store.KindGroup {
		// The feeds are per user: the target devices' users get the
		// message, which reaches all of their devices. A device's head
		// exists exactly as long as the device.
		for _, d := range p.targets {
			if !validID(d) {
				continue
			}
			if u := w.head(d).User; u != "" && !slices.Contains(users, u) {
				users = append(users, u)
			}
		}
	}

	cs := decodeChatSeq(w.get(key(tChatSeq, m.ChatID)))
	m.Seq = cs.LastSeq + 1
	m.ExpiresTS = store.ExpiryOf(&m, req.Action, cs.Disappear)
	var target *store.Message
	var erase []int64
	var released string // the file of a message deleted for everyone
	if act := req.Action; act != nil {
		if n, ok := store.TimerChange(&m, act); ok {
			cs.Disappear = n
		} else if act.Kind != store.ActionDisappearing {
			t, applied, e, rel, err := applyAction(w, &m, act, g)
			if err != nil {
				return err
			}
			if applied {
				target, erase, released = &t, e, rel
			}
			if g != nil {
				// Only to the members who can see the target.
				users = slices.DeleteFunc(users, func(u string) bool {
					mb := g.Member(u)
					return mb == nil || mb.JoinedSeq > t.Seq
				})
			}
		}
	}

	// Everything above could fail; from here on only the engine can.
	if meta != nil {
		w.put(key(tChats, m.ChatID), meta)
		for _, u := range members {
			w.put(pairKey(tMembers, u, m.ChatID), member{}.encode())
		}
	}
	loc := w.putEntry(&m, cs)
	if idemKey != nil {
		w.put(idemKey, loc)
	}
	if target != nil {
		w.put(seqKey(tLog, target.ChatID, target.Seq), encodeMessage(target))
	}
	w.eraseEdits(m.ChatID, erase)
	if released != "" {
		w.releaseMedia(released, target.ID, 0)
	}
	res.Message = m
	skip := m.FromDevice
	if req.EchoToSender {
		skip = ""
	}
	res.Deliveries, res.SenderCursor = w.deliver(&m, store.EventMessage, users, skip)
	return nil
}

// receiptGroup collects the message ids of one receipt: one chat, one
// author, in seq order.
type receiptGroup struct {
	chatID, author string
	msgIDs         []string
}

// groups keeps receipt groups in first-seen order, so that results are
// deterministic.
type groups struct {
	list  []*receiptGroup
	index map[[2]string]*receiptGroup
}

func (g *groups) add(chatID, author, msgID string) {
	k := [2]string{chatID, author}
	rg := g.index[k]
	if rg == nil {
		if g.index == nil {
			g.index = make(map[[2]string]*receiptGroup)
		}
		rg = &receiptGroup{chatID: chatID, author: author}
		g.index[k] = rg
		g.list = append(g.list, rg)
	}
	rg.msgIDs = append(rg.msgIDs, msgID)
}

// emit appends one receipt per group to its author's feed. The deliveries
// of one receipt (one per device of the author) share one read-only
// *Receipt, so that a caller can render it once.
func (w *wtx) emit(g *groups, status, by string, ts int64) []store.Delivery {
	var out []store.Delivery
	for _, rg := range g.list {
		devs := w.userDeviceIDs(rg.author)
		if len(devs) == 0 {
			continue
		}
		if w.largeGroup(rg.chatID) {
			out = append(out, w.coalesce(rg, status, by, ts, devs)...)
			continue
		}
		r := &store.Receipt{ChatID: rg.chatID, MsgIDs: rg.msgIDs, Status: status, By: by, TS: ts}
		cur := w.appendFeed(rg.author, encodeReceiptEvent(r))
		for _, d := range devs {
			out = append(out, store.Delivery{
				DeviceID: d,
				Event:    store.Event{Cursor: cur, Kind: store.EventReceipt, Receipt: r},
			})
		}
	}
	return out
}

// pointReadMax is the longest run of events read key by key rather than
// with an iterator: setting up a Pebble iterator costs several point
// reads, and an ack usually covers one or two events.
const pointReadMax = 8

// entries calls fn on the entries of user's feed with cursors from..to.
// fn must not keep v.
func (w *wtx) entries(user string, from, to int64, fn func(cur int64, v []byte) error) error {
	if to-from+1 > pointReadMax {
		return w.scan(seqKey(tFeed, user, from), seqKey(tFeed, user, to+1), func(k, v []byte) (bool, error) {
			return true, fn(seqOf(k), v)
		})
	}
	for cur := from; cur <= to; cur++ {
		v := w.get(seqKey(tFeed, user, cur))
		if w.err != nil {
			return w.err
		}
		if v == nil {
			continue // trimmed (a device that starts below the trim point)
		}
		if err := fn(cur, v); err != nil {
			return err
		}
	}
	return nil
}

// Inbox implements store.Messages: the device's part of its user's feed
// after its ack cursor. limit <= 0 means no limit. The events and the head
// come from one snapshot.
func (s *Store) Inbox(ctx context.Context, deviceID string, after int64, limit int) ([]store.Event, int64, error) {
	var (
		events []store.Event
		last   int64
	)
	if !validID(deviceID) {
		return nil, 0, nil
	}
	after = max(after, 0)
	err := s.snapshot(ctx, func(r reader) error {
		events, last = events[:0], 0
		raw, err := r.get(key(tHeads, deviceID))
		if err != nil {
			return err
		}
		h := decodeHead(raw)
		if h.User == "" {
			last = 0
			return nil
		}
		// The scan runs to the feed's end, so the last key it passes is the
		// head; only a scan that finds nothing, or stops at a full page,
		// needs no further look (a full page's head may be its last
		// event's cursor: see store.Messages.Inbox). A separate reverse
		// seek for the head cost a quarter of an inbox read under group
		// traffic.
		from := max(after, h.Acked) + 1
		p := prefix(tFeed, h.User)
		full := false
		err = r.scan(seqKey(tFeed, h.User, from), prefixEnd(p), func(k, v []byte) (bool, error) {
			if limit > 0 && len(events) >= limit {
				full = true
				return false, nil
			}
			last = seqOf(k)
			e, err := decodeFeedEntry(v)
			if err != nil {
				return false, fmt.Errorf("feed entry %d: %w", seqOf(k), err)
			}
			if !e.forDevice(deviceID) {
				return true, nil
			}
			ev, err := s.resolve(r, &e)
			if err != nil {
				return false, fmt.Errorf("feed entry %d: %w", seqOf(k), err)
			}
			ev.Cursor = seqOf(k)
			events = append(events, ev)
			return true, nil
		})
		if err != nil || full || last != 0 {
			return err
		}
		last, err = feedLast(r, h.User) // nothing at or after from
		return err
	})
	if err != nil {
		return nil, 0, fmt.Errorf("inbox of %s: %w", deviceID, err)
	}
	return events, last, nil
}

// Heads implements store.Messages: a device's head is its user's feed's.
func (s *Store) Heads(ctx context.Context, deviceIDs []string) (map[string]int64, error) {
	out := make(map[string]int64, len(deviceIDs))
	err := s.snapshot(ctx, func(r reader) error {
		clear(out)
		feeds := map[string]int64{}
		for _, id := range deviceIDs {
			if !validID(id) {
				continue
			}
			raw, err := r.get(key(tHeads, id))
			if err != nil {
				return err
			}
			u := decodeHead(raw).User
			if u == "" {
				continue
			}
			last, ok := feeds[u]
			if !ok {
				if last, err = feedLast(r, u); err != nil {
					return err
				}
				feeds[u] = last
			}
			out[id] = last
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("inbox heads: %w", err)
	}
	return out, nil
}

// Ack implements store.Messages. The receipts' time is the time of the ack.
// Acks are lazy writes: a round of nothing but acks that append no receipts
// commits without an fsync (see wtx.sync).
func (s *Store) Ack(ctx context.Context, deviceID string, cursor int64) ([]store.Delivery, error) {
	now := time.Now().UnixMilli()
	// No read ahead on the caller's goroutine to spot an ack of nothing: a
	// point read through the memtables cost 9% of the server's CPU under
	// group traffic, where the writer answers from its cache, and sessions
	// do not repeat acks anyway.
	var out []store.Delivery
	err := s.writeLazy(ctx, func(w *wtx) error {
		out = nil
		return applyAck(w, deviceID, cursor, now, &out)
	})
	if err != nil {
		return nil, fmt.Errorf("ack %s up to %d: %w", deviceID, cursor, err)
	}
	return out, nil
}

// applyAck moves the ack cursor of deviceID up to cursor, makes the
// delivered receipts of the messages it covers, and trims the feed of what
// every device of the user has acked.
func applyAck(w *wtx, deviceID string, cursor, now int64, out *[]store.Delivery) error {
	h := w.head(deviceID)
	if h.User == "" || cursor <= h.Acked {
		return nil // a device that is gone, or nothing new
	}
	by := h.User
	upTo := min(cursor, w.feedLast(by))
	if upTo <= h.Acked {
		return nil // another ack of the same device got here first
	}
	var (
		g groups
		// marks holds the reader's member record per chat met; nil when the
		// reader is not (or no longer) a member, which sends no receipt.
		marks   = map[string]*member{}
		changed []string
	)
	err := w.entries(by, h.Acked+1, upTo, func(cur int64, v []byte) error {
		e, err := decodeFeedEntry(v)
		if err != nil {
			return fmt.Errorf("feed entry %d: %w", cur, err)
		}
		if !e.forDevice(deviceID) {
			return nil
		}
		mh, ok, err := w.entryHead(&e)
		if err != nil {
			return fmt.Errorf("feed entry %d: %w", cur, err)
		}
		if !ok || mh.from == by || mh.group {
			return nil // receipts and group changes ask for nothing back
		}
		chatID := mh.chatID
		mk, seen := marks[chatID]
		if !seen {
			if raw := w.get(pairKey(tMembers, by, chatID)); raw != nil {
				m := decodeMember(raw)
				mk = &m
			}
			marks[chatID] = mk
		}
		// The watermark: another device of the reader acked this one first.
		if mk == nil || mh.seq <= mk.DeliveredSeq {
			return nil
		}
		if !slices.Contains(changed, chatID) {
			changed = append(changed, chatID)
		}
		mk.DeliveredSeq = mh.seq
		g.add(chatID, mh.from, mh.id)
		return nil
	})
	if err != nil {
		return err
	}

	h.Acked = upTo
	w.put(key(tHeads, deviceID), h.encode())
	w.trim(by)
	for _, chatID := range changed {
		w.put(pairKey(tMembers, by, chatID), marks[chatID].encode())
		w.mark(chatID, by, markDelivered, marks[chatID].DeliveredSeq, now)
	}
	*out = w.emit(&g, store.StatusDelivered, by, now)
	return nil
}

// MarkRead implements store.Messages. ErrNotFound if the chat does not
// exist or userID is not in it.
func (s *Store) MarkRead(ctx context.Context, userID, chatID string, seq, ts int64, notify bool) ([]store.Delivery, error) {
	if !validID(userID) || !validID(chatID) {
		return nil, fmt.Errorf("mark read: %w", store.ErrNotFound)
	}
	var out []store.Delivery
	err := s.write(ctx, func(w *wtx) error {
		out = nil
		return applyMarkRead(w, userID, chatID, seq, ts, notify, &out)
	})
	if err != nil {
		return nil, fmt.Errorf("mark read %s in %s: %w", userID, chatID, err)
	}
	return out, nil
}

func applyMarkRead(w *wtx, userID, chatID string, seq, ts int64, notify bool, out *[]store.Delivery) error {
	mkey := pairKey(tMembers, userID, chatID)
	raw := w.get(mkey)
	if raw == nil {
		return store.ErrNotFound
	}
	mk := decodeMember(raw)
	seq = min(seq, decodeChatSeq(w.get(key(tChatSeq, chatID))).LastSeq)
	if seq <= mk.ReadSeq {
		return nil
	}
	var g groups
	if notify {
		err := w.scan(seqKey(tLog, chatID, mk.ReadSeq+1), seqKey(tLog, chatID, seq+1), func(k, v []byte) (bool, error) {
			mh, err := messageHead(v)
			if err != nil {
				return false, fmt.Errorf("message %d: %w", seqOf(k), err)
			}
			if mh.from != userID && !mh.group && mh.hiddenFrom != userID {
				g.add(chatID, mh.from, mh.id)
			}
			return true, nil
		})
		if err != nil {
			return err
		}
	}
	mk.ReadSeq = seq
	w.put(mkey, mk.encode())
	if notify {
		w.mark(chatID, userID, markRead, seq, ts)
	}
	*out = w.emit(&g, store.StatusRead, userID, ts)
	return nil
}

// Chat implements store.Messages.
func (s *Store) Chat(ctx context.Context, chatID string) (store.Chat, error) {
	var c store.Chat
	err := s.snapshot(ctx, func(r reader) error {
		var err error
		c, _, err = readChat(r, chatID)
		return err
	})
	if err != nil {
		return store.Chat{}, fmt.Errorf("chat %s: %w", chatID, err)
	}
	return c, nil
}

// readChat reads the chat's metadata and its last seq and time; r must be
// a snapshot, so that a group's members agree with the rest.
func readChat(r reader, chatID string) (store.Chat, chatSeq, error) {
	var meta chatMeta
	if err := r.getJSON(key(tChats, chatID), &meta); err != nil {
		return store.Chat{}, chatSeq{}, err
	}
	raw, err := r.get(key(tChatSeq, chatID))
	if err != nil {
		return store.Chat{}, chatSeq{}, err
	}
	cs := decodeChatSeq(raw)
	if meta.Kind == store.KindGroup && meta.Members == nil {
		// A group made by WriteGroup keeps its members in one place.
		raw, err := r.get(key(tGroups, chatID))
		if err != nil {
			return store.Chat{}, chatSeq{}, err
		}
		if raw == nil {
			return store.Chat{}, chatSeq{}, fmt.Errorf("%w: chat %s has no group record", errCorrupt, chatID)
		}
		if meta.Members, err = groupUserIDs(raw); err != nil {
			return store.Chat{}, chatSeq{}, fmt.Errorf("group %s: %w", chatID, err)
		}
	}
	return store.Chat{
		ID:        chatID,
		Kind:      meta.Kind,
		Title:     meta.Title,
		Members:   meta.Members,
		LastSeq:   cs.LastSeq,
		CreatedAt: meta.CreatedAt,
	}, cs, nil
}

// Chats implements store.Messages: the user's chats, most recent activity
// (last message, or creation for a chat without one) first. Everything comes
// from one snapshot, so that the unread counts agree with the last messages.
func (s *Store) Chats(ctx context.Context, userID string) ([]store.ChatSummary, error) {
	if !validID(userID) {
		return nil, nil
	}
	type entry struct {
		sum      store.ChatSummary
		activity int64
	}
	var list []entry
	err := s.snapshot(ctx, func(r reader) error {
		list = list[:0]
		type membership struct {
			chatID  string
			readSeq int64
		}
		var chats []membership
		p := prefix(tMembers, userID)
		err := r.scan(p, prefixEnd(p), func(k, v []byte) (bool, error) {
			chats = append(chats, membership{chatID: string(k[len(p):]), readSeq: decodeMember(v).ReadSeq})
			return true, nil
		})
		if err != nil {
			return err
		}
		for _, c := range chats {
			chat, cs, err := readChat(r, c.chatID)
			if err != nil {
				return err
			}
			e := entry{
				sum:      store.ChatSummary{Chat: chat, ReadSeq: c.readSeq},
				activity: chat.CreatedAt.UnixMilli(),
			}
			if chat.LastSeq > 0 {
				raw, err := r.get(seqKey(tLog, c.chatID, chat.LastSeq))
				if err != nil {
					return err
				}
				last, err := decodeMessage(raw)
				if err != nil {
					return fmt.Errorf("last message of %s: %w", c.chatID, err)
				}
				e.sum.Last = &last
				e.activity = cs.LastTS
				if e.sum.Unread, err = unread(r, c.chatID, userID, c.readSeq); err != nil {
					return err
				}
			}
			list = append(list, e)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("chats of %s: %w", userID, err)
	}
	slices.SortFunc(list, func(a, b entry) int {
		if c := cmp.Compare(b.activity, a.activity); c != 0 {
			return c
		}
		return cmp.Compare(a.sum.Chat.ID, b.sum.Chat.ID)
	})
	out := make([]store.ChatSummary, len(list))
	for i, e := range list {
		out[i] = e.sum
	}
	return out, nil
}

// unread counts the messages of others after readSeq by walking the log:
// a read chat costs nothing, an unread one what its backlog costs to show.
// The entries of group changes are not messages and do not count.
func unread(r reader, chatID, userID string, readSeq int64) (int64, error) {
	var n int64
	err := r.scan(seqKey(tLog, chatID, readSeq+1), prefixEnd(prefix(tLog, chatID)), func(k, v []byte) (bool, error) {
		mh, err := messageHead(v)
		if err != nil {
			return false, fmt.Errorf("message %d of %s: %w", seqOf(k), chatID, err)
		}
		if mh.from != userID && !mh.group && mh.hiddenFrom != userID {
			n++
		}
		return true, nil
	})
	return n, err
}

// History implements store.Messages. limit <= 0 means no limit.
func (s *Store) Message(ctx context.Context, chatID, msgID string) (store.Message, error) {
	var m store.Message
	if !validID(chatID) || !validID(msgID) {
		return m, fmt.Errorf("message %s: %w", msgID, store.ErrNotFound)
	}
	err := s.snapshot(ctx, func(r reader) error {
		loc, err := r.get(key(tMsgIDs, msgID))
		if err != nil {
			return err
		}
		if len(loc) < 8 || string(loc[8:]) != chatID {
			return store.ErrNotFound
		}
		seq := int64(u64(loc))
		if cs, err := r.get(key(tChatSeq, chatID)); err != nil || decodeChatSeq(cs).LastSeq < seq {
			return cmp.Or(err, store.ErrNotFound)
		}
		raw, err := r.get(seqKey(tLog, chatID, seq))
		if err != nil {
			return err
		}
		if raw == nil {
			return store.ErrNotFound
		}
		m, err = decodeMessage(raw)
		return err
	})
	if err != nil {
		return store.Message{}, fmt.Errorf("message %s in %s: %w", msgID, chatID, err)
	}
	return m, nil
}

// History implements store.Messages.
func (s *Store) History(ctx context.Context, chatID string, before int64, limit int) ([]store.Message, error) {
	if !validID(chatID) {
		return nil, fmt.Errorf("history: %w", store.ErrNotFound)
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	var msgs []store.Message
	err := s.snapshot(ctx, func(r reader) error {
		msgs = msgs[:0]
		exists, err := r.get(key(tChats, chatID))
		if err != nil {
			return err
		}
		if exists == nil {
			return store.ErrNotFound
		}
		it, err := r.r.NewIter(&pebble.IterOptions{
			LowerBound: prefix(tLog, chatID),
			UpperBound: seqKey(tLog, chatID, before),
		})
		if err != nil {
			return err
		}
		for ok := it.Last(); ok; ok = it.Prev() {
			if limit > 0 && len(msgs) >= limit {
				break
			}
			v, err := it.ValueAndErr()
			if err != nil {
				break // the iterator keeps the error for Close
			}
			m, err := decodeMessage(v)
			if err != nil {
				err = fmt.Errorf("message %d: %w", seqOf(it.Key()), err)
				it.Close()
				return err
			}
			msgs = append(msgs, m)
		}
		return it.Close()
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", chatID, err)
	}
	return msgs, nil
}

// msgIDsDone marks a store whose every message is in tMsgIDs: messages
// stored before the table existed (before format 14) are indexed once, at
// the first Open that knows it. 0x00 cannot start a message id.
var msgIDsDone = []byte{tMsgIDs, 0x00, 'd', 'o', 'n', 'e'}

// indexMessageIDs fills tMsgIDs for the messages stored before it existed,
// so that Message (the target of a reply) finds them too.
func (s *Store) indexMessageIDs(ctx context.Context) error {
	var done []byte
	if err := s.view(ctx, func(r reader) error {
		var err error
		done, err = r.get(msgIDsDone)
		return err
	}); err != nil || done != nil {
		return err
	}
	type entry struct{ id, loc []byte }
	var batch []entry
	flush := func() error {
		err := s.write(ctx, func(w *wtx) error {
			for _, e := range batch {
				w.put(key(tMsgIDs, string(e.id)), e.loc)
			}
			return nil
		})
		batch = batch[:0]
		return err
	}
	err := s.view(ctx, func(r reader) error {
		it, err := r.r.NewIter(&pebble.IterOptions{LowerBound: []byte{tLog}, UpperBound: []byte{tLog + 1}})
		if err != nil {
			return err
		}
		for ok := it.First(); ok; ok = it.Next() {
			v, err := it.ValueAndErr()
			if err != nil {
				break
			}
			m, err := decodeMessage(v)
			if err != nil || !validID(m.ID) {
				continue // reported by reads of it; not an index's business
			}
			loc := append(binary.BigEndian.AppendUint64(nil, uint64(m.Seq)), m.ChatID...)
			batch = append(batch, entry{[]byte(m.ID), loc})
			if len(batch) == 10_000 {
				if err := flush(); err != nil {
					_ = it.Close()
					return err
				}
			}
		}
		return it.Close()
	})
	if err == nil && len(batch) > 0 {
		err = flush()
	}
	if err == nil {
		err = s.write(ctx, func(w *wtx) error { w.put(msgIDsDone, []byte{1}); return nil })
	}
	if err != nil {
		return fmt.Errorf("index message ids: %w", err)
	}
	return nil
}

// applyAction finds the target of act, an action stored as entry m, runs
// the caller's check and returns the target as the action leaves it, and
// the edit entries to erase (see store.ApplyAction), and the media file
// the target no longer carries, if any.
func applyAction(w *wtx, m *store.Message, act *store.Action, g *store.Group) (t store.Message, applied bool, erase []int64, released string, err error) {
	t, err = w.message(m.ChatID, act.Target)
	if err != nil {
		return t, false, nil, "", err
	}
	if act.Check != nil {
		var gc *store.Group
		if g != nil {
			c := cloneGroup(g)
			gc = &c
		}
		if err := act.Check(&t, gc); err != nil {
			return t, false, nil, "", &callerError{err}
		}
	}
	file := store.MediaOf(t.Body)
	applied, erase, err = store.ApplyAction(&t, m, act)
	if applied && t.Deleted && store.MediaOf(t.Body) != file {
		released = file
	}
	return t, applied, erase, released, err
}

// message reads message msgID of chatID as of the round so far.
func (w *wtx) message(chatID, msgID string) (store.Message, error) {
	if !validID(msgID) {
		return store.Message{}, fmt.Errorf("message %s: %w", msgID, store.ErrNotFound)
	}
	loc := w.get(key(tMsgIDs, msgID))
	if len(loc) < 8 || string(loc[8:]) != chatID {
		return store.Message{}, cmp.Or(w.err, fmt.Errorf("message %s in %s: %w", msgID, chatID, store.ErrNotFound))
	}
	raw := w.get(seqKey(tLog, chatID, u64(loc)))
	if raw == nil {
		return store.Message{}, cmp.Or(w.err, fmt.Errorf("message %s in %s: %w", msgID, chatID, store.ErrNotFound))
	}
	return decodeMessage(raw)
}

// eraseEdits writes store.ErasedEditBody over the edit entries seqs of
// chatID, whose target was deleted or expired. It runs after the entry is
// written, where only the engine may fail: a record it cannot read is
// left as it is (and logged).
func (w *wtx) eraseEdits(chatID string, seqs []int64) {
	for _, seq := range seqs {
		k := seqKey(tLog, chatID, seq)
		raw := w.get(k)
		if raw == nil {
			continue
		}
		e, err := decodeMessage(raw)
		if err != nil {
			w.log.Error("store/embedded: an edit entry to erase does not decode", "chat", chatID, "seq", seq, "err", err)
			continue
		}
		if !bytes.HasPrefix(e.Body, []byte(`{"edit"`)) {
			continue // expired itself meanwhile: nothing left to erase
		}
		var ed struct {
			Edit struct {
				MsgID string `json:"msg_id"`
			} `json:"edit"`
		}
		if json.Unmarshal(e.Body, &ed) != nil {
			continue
		}
		e.Body = store.ErasedEditBody(ed.Edit.MsgID)
		w.put(k, encodeMessage(&e))
	}
}

// ExpireDue implements store.Messages.
func (s *Store) ExpireDue(ctx context.Context, now int64, limit int) (int, error) {
	if limit <= 0 {
		return 0, nil
	}
	var n int
	err := s.write(ctx, func(w *wtx) error {
		n = 0
		var due [][]byte
		upper := binary.BigEndian.AppendUint64([]byte{tExpiry}, uint64(now)+1)
		if err := w.scan([]byte{tExpiry}, upper, func(k, _ []byte) (bool, error) {
			due = append(due, append([]byte(nil), k...))
			return len(due) < limit, nil
		}); err != nil {
			return err
		}
		for _, k := range due {
			w.del(k)
			_, chatID, seq, ok := parseExpiryKey(k)
			if !ok {
				continue
			}
			lk := seqKey(tLog, chatID, seq)
			raw := w.get(lk)
			if raw == nil {
				continue
			}
			m, err := decodeMessage(raw)
			if err != nil {
				return fmt.Errorf("expiring %d of %s: %w", seq, chatID, err)
			}
			file := store.MediaOf(m.Body)
			erase := store.Expire(&m)
			w.put(lk, encodeMessage(&m))
			w.eraseEdits(chatID, erase)
			w.releaseMedia(file, m.ID, 0)
			n++
		}
		return nil
	})
	if err != nil {
		return 0, fmt.Errorf("expire messages: %w", err)
	}
	return n, nil
}

// Disappearing implements store.Messages.
func (s *Store) Disappearing(ctx context.Context, chatID string) (int64, error) {
	if !validID(chatID) {
		return 0, nil
	}
	var n int64
	err := s.view(ctx, func(r reader) error {
		b, err := r.get(key(tChatSeq, chatID))
		n = decodeChatSeq(b).Disappear
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("disappearing timer of %s: %w", chatID, err)
	}
	return n, nil
}
