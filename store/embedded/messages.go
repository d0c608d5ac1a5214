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
	"time"

	bolt "go.etcd.io/bbolt"

	"github.com/tern-im/tern/store"
)

// maxClientID bounds the idempotency key, which becomes part of a bbolt key
// (bbolt refuses keys over 32 KiB, and long keys bloat the index).
const maxClientID = 512

// chatMeta is the rarely changing part of a chat; LastSeq lives in
// bktChatSeq so that a send does not rewrite the member list.
type chatMeta struct {
	Kind      string
	Title     string `json:",omitempty"`
	Members   []string
	CreatedAt time.Time
}

// Send implements store.Messages. A new chat is created from Kind and
// Members, which must include the sender; in an existing chat the sender
// must be a member (ErrNotFound otherwise). Target devices that do not exist
// (deleted meanwhile) are skipped, so that a send racing a DeleteDevice
// cannot resurrect its inbox.
func (s *Store) Send(ctx context.Context, req store.SendRequest) (store.SendResult, error) {
	m := req.Message
	switch {
	case m.ID == "":
		return store.SendResult{}, errInvalid("message id")
	case !validID(m.ChatID) || !validID(m.From) || !validID(m.FromDevice):
		return store.SendResult{}, errInvalid("chat, sender or device id")
	case len(req.ClientID) > maxClientID:
		return store.SendResult{}, errInvalid("client id (too long)")
	}
	// Work that needs no database state is done here, on the caller's
	// goroutine, to keep the single writer's share of a send small.
	p := sendPrep{
		req:     &req,
		members: dedupe(req.Members),
		targets: dedupe(req.Devices),
	}
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
	var res store.SendResult
	err := s.write(ctx, func(w *wtx) error {
		res = store.SendResult{}
		return applySend(w, &p, &res)
	})
	if err != nil {
		return store.SendResult{}, fmt.Errorf("send: %w", err)
	}
	return res, nil
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
		idemKey = pairKey(m.FromDevice, req.ClientID)
		if v := w.idem.Get(idemKey); v != nil {
			if len(v) < 8 {
				return fmt.Errorf("%w: idempotency record", errCorrupt)
			}
			first, err := decodeMessage(w.log.Get(seqKey(string(v[8:]), u64(v))))
			if err != nil {
				return fmt.Errorf("first send of %q: %w", req.ClientID, err)
			}
			*res = store.SendResult{Message: first, Duplicate: true}
			return nil
		}
	}

	chatKey := []byte(m.ChatID)
	var meta []byte
	var members []string
	if w.chats.Get(chatKey) == nil {
		if p.newChatErr != nil {
			return p.newChatErr
		}
		members = p.members
		var err error
		meta, err = json.Marshal(chatMeta{Kind: req.Kind, Members: members, CreatedAt: time.UnixMilli(m.TS).UTC()})
		if err != nil {
			return err
		}
	} else if w.members.Get(pairKey(m.From, m.ChatID)) == nil {
		return fmt.Errorf("%w: %s is not in chat %s", store.ErrNotFound, m.From, m.ChatID)
	}

	targets := make([]string, 0, len(p.targets))
	for _, d := range p.targets {
		if validID(d) && w.devices.Get([]byte(d)) != nil {
			targets = append(targets, d)
		}
	}

	// Everything above could fail; from here on only the engine can.
	cs := decodeChatSeq(w.chatSeq.Get(chatKey))
	m.Seq = cs.LastSeq + 1
	if meta != nil {
		w.put(w.chats, chatKey, meta)
		for _, u := range members {
			w.put(w.members, pairKey(u, m.ChatID), member{}.encode())
		}
	}
	w.put(w.chatSeq, chatKey, chatSeq{LastSeq: m.Seq, LastTS: max(cs.LastTS, m.TS)}.encode())
	w.put(w.log, seqKey(m.ChatID, m.Seq), encodeMessage(&m))
	if idemKey != nil {
		v := binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(m.ChatID)), uint64(m.Seq))
		w.put(w.idem, idemKey, append(v, m.ChatID...))
	}
	// One encoding serves every inbox; bbolt only needs it to live until
	// commit, and nobody writes to it.
	ev := encodeMessageEvent(&m)
	res.Message = m
	res.Deliveries = make([]store.Delivery, 0, len(targets))
	// The deliveries share one read-only copy of the message, which also
	// lets a caller render it once for all of them.
	shared := &m
	for _, d := range targets {
		cur := w.appendEvent(d, ev)
		res.Deliveries = append(res.Deliveries, store.Delivery{
			DeviceID: d,
			Event:    store.Event{Cursor: cur, Kind: store.EventMessage, Message: shared},
		})
	}
	return nil
}

// appendEvent puts v at the end of device's inbox and returns its cursor.
// The head is read back from the transaction, which sees the batch's own
// earlier writes: that is what keeps cursors gap-free inside a batch.
func (w *wtx) appendEvent(device string, v []byte) int64 {
	cur := u64(w.heads.Get([]byte(device))) + 1
	w.put(w.inbox, seqKey(device, cur), v)
	w.put(w.heads, []byte(device), putU64(cur))
	return cur
}

// dedupe drops repeated ids, keeping the first of each in place.
func dedupe(ids []string) []string {
	out := make([]string, 0, len(ids))
	if len(ids) <= 16 { // the usual direct chat: a scan beats a map
		for _, id := range ids {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		return out
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
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

// emit appends one receipt per group to every device of its author. The
// deliveries of one receipt share one read-only *Receipt, so that a caller
// can render it once.
func (w *wtx) emit(g *groups, status, by string, ts int64) []store.Delivery {
	var out []store.Delivery
	for _, rg := range g.list {
		r := &store.Receipt{ChatID: rg.chatID, MsgIDs: rg.msgIDs, Status: status, By: by, TS: ts}
		ev := encodeReceiptEvent(r)
		for _, d := range userDeviceIDs(w.userDevices, rg.author) {
			cur := w.appendEvent(d, ev)
			out = append(out, store.Delivery{
				DeviceID: d,
				Event:    store.Event{Cursor: cur, Kind: store.EventReceipt, Receipt: r},
			})
		}
	}
	return out
}

// Inbox implements store.Messages. limit <= 0 means no limit.
func (s *Store) Inbox(ctx context.Context, deviceID string, after int64, limit int) ([]store.Event, int64, error) {
	var (
		events []store.Event
		head   int64
	)
	if !validID(deviceID) {
		return nil, 0, nil
	}
	after = max(after, 0)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		events = events[:0]
		head = u64(tx.Bucket(bktHeads).Get([]byte(deviceID)))
		p := prefix(deviceID)
		c := tx.Bucket(bktInbox).Cursor()
		for k, v := c.Seek(seqKey(deviceID, after+1)); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			if limit > 0 && len(events) >= limit {
				break
			}
			ev, err := decodeEvent(v)
			if err != nil {
				return fmt.Errorf("event %d: %w", seqOf(k), err)
			}
			ev.Cursor = seqOf(k)
			events = append(events, ev)
		}
		return nil
	})
	if err != nil {
		return nil, 0, fmt.Errorf("inbox of %s: %w", deviceID, err)
	}
	return events, head, nil
}

// Ack implements store.Messages. The receipts' time is the time of the ack.
func (s *Store) Ack(ctx context.Context, deviceID string, cursor int64) ([]store.Delivery, error) {
	now := time.Now().UnixMilli()
	// Look the reader up and see whether there is anything to remove with a
	// read on the caller's goroutine, keeping the writer's share small: a
	// device's user never changes, and an ack of nothing (a repeated ack)
	// does not need the writer at all.
	var (
		reader string
		due    bool
	)
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var d store.Device
		if err := getJSON(tx.Bucket(bktDevices), []byte(deviceID), &d); err != nil {
			return err
		}
		reader = d.UserID
		k, _ := tx.Bucket(bktInbox).Cursor().Seek(seqKey(deviceID, 1))
		due = k != nil && bytes.HasPrefix(k, prefix(deviceID)) && seqOf(k) <= cursor
		return nil
	})
	if err != nil || !due {
		if err != nil {
			err = fmt.Errorf("ack %s up to %d: %w", deviceID, cursor, err)
		}
		return nil, err
	}
	var out []store.Delivery
	err = s.write(ctx, func(w *wtx) error {
		out = nil
		return applyAck(w, deviceID, reader, cursor, now, &out)
	})
	if err != nil {
		return nil, fmt.Errorf("ack %s up to %d: %w", deviceID, cursor, err)
	}
	return out, nil
}

func applyAck(w *wtx, deviceID, reader string, cursor, now int64, out *[]store.Delivery) error {
	if w.devices.Get([]byte(deviceID)) == nil {
		return store.ErrNotFound // deleted since the caller looked
	}
	p := prefix(deviceID)
	var (
		dels [][]byte
		g    groups
		// marks holds the reader's member record per chat met; nil when the
		// reader is not (or no longer) a member, which sends no receipt.
		marks   = map[string]*member{}
		changed []string
	)
	c := w.inbox.Cursor()
	for k, v := c.Seek(seqKey(deviceID, 1)); k != nil && bytes.HasPrefix(k, p) && seqOf(k) <= cursor; k, v = c.Next() {
		dels = append(dels, bytes.Clone(k))
		if len(v) == 0 || v[0] != evMessage {
			continue // receipts ask for nothing back
		}
		id, chatID, seq, from, err := messageHead(v[1:])
		if err != nil {
			return fmt.Errorf("event %d: %w", seqOf(k), err)
		}
		if from == reader {
			continue
		}
		mk, seen := marks[chatID]
		if !seen {
			if raw := w.members.Get(pairKey(reader, chatID)); raw != nil {
				m := decodeMember(raw)
				mk = &m
			}
			marks[chatID] = mk
		}
		// The watermark: another device of the reader acked this one first.
		if mk == nil || seq <= mk.DeliveredSeq {
			continue
		}
		if !slices.Contains(changed, chatID) {
			changed = append(changed, chatID)
		}
		mk.DeliveredSeq = seq
		g.add(chatID, from, id)
	}

	for _, k := range dels {
		w.del(w.inbox, k)
	}
	for _, chatID := range changed {
		w.put(w.members, pairKey(reader, chatID), marks[chatID].encode())
	}
	*out = w.emit(&g, store.StatusDelivered, reader, now)
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
	mkey := pairKey(userID, chatID)
	raw := w.members.Get(mkey)
	if raw == nil {
		return store.ErrNotFound
	}
	mk := decodeMember(raw)
	seq = min(seq, decodeChatSeq(w.chatSeq.Get([]byte(chatID))).LastSeq)
	if seq <= mk.ReadSeq {
		return nil
	}
	var g groups
	if notify {
		p := prefix(chatID)
		c := w.log.Cursor()
		for k, v := c.Seek(seqKey(chatID, mk.ReadSeq+1)); k != nil && bytes.HasPrefix(k, p) && seqOf(k) <= seq; k, v = c.Next() {
			id, _, _, from, err := messageHead(v)
			if err != nil {
				return fmt.Errorf("message %d: %w", seqOf(k), err)
			}
			if from != userID {
				g.add(chatID, from, id)
			}
		}
	}
	mk.ReadSeq = seq
	w.put(w.members, mkey, mk.encode())
	*out = w.emit(&g, store.StatusRead, userID, ts)
	return nil
}

// Chat implements store.Messages.
func (s *Store) Chat(ctx context.Context, chatID string) (store.Chat, error) {
	var c store.Chat
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		c, err = readChat(tx, chatID)
		return err
	})
	if err != nil {
		return store.Chat{}, fmt.Errorf("chat %s: %w", chatID, err)
	}
	return c, nil
}

func readChat(tx *bolt.Tx, chatID string) (store.Chat, error) {
	var meta chatMeta
	if err := getJSON(tx.Bucket(bktChats), []byte(chatID), &meta); err != nil {
		return store.Chat{}, err
	}
	return store.Chat{
		ID:        chatID,
		Kind:      meta.Kind,
		Title:     meta.Title,
		Members:   meta.Members,
		LastSeq:   decodeChatSeq(tx.Bucket(bktChatSeq).Get([]byte(chatID))).LastSeq,
		CreatedAt: meta.CreatedAt,
	}, nil
}

// Chats implements store.Messages: the user's chats, most recent activity
// (last message, or creation for a chat without one) first.
func (s *Store) Chats(ctx context.Context, userID string) ([]store.ChatSummary, error) {
	if !validID(userID) {
		return nil, nil
	}
	type entry struct {
		sum      store.ChatSummary
		activity int64
	}
	var list []entry
	err := s.view(ctx, func(tx *bolt.Tx) error {
		list = list[:0]
		logb, seqb := tx.Bucket(bktLog), tx.Bucket(bktChatSeq)
		p := prefix(userID)
		c := tx.Bucket(bktMembers).Cursor()
		for k, v := c.Seek(p); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
			chatID := string(k[len(p):])
			mk := decodeMember(v)
			chat, err := readChat(tx, chatID)
			if err != nil {
				return err
			}
			e := entry{
				sum:      store.ChatSummary{Chat: chat, ReadSeq: mk.ReadSeq},
				activity: chat.CreatedAt.UnixMilli(),
			}
			if chat.LastSeq > 0 {
				last, err := decodeMessage(logb.Get(seqKey(chatID, chat.LastSeq)))
				if err != nil {
					return fmt.Errorf("last message of %s: %w", chatID, err)
				}
				e.sum.Last = &last
				e.activity = decodeChatSeq(seqb.Get([]byte(chatID))).LastTS
				if e.sum.Unread, err = unread(logb, chatID, userID, mk.ReadSeq); err != nil {
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
func unread(logb *bolt.Bucket, chatID, userID string, readSeq int64) (int64, error) {
	var n int64
	p := prefix(chatID)
	c := logb.Cursor()
	for k, v := c.Seek(seqKey(chatID, readSeq+1)); k != nil && bytes.HasPrefix(k, p); k, v = c.Next() {
		_, _, _, from, err := messageHead(v)
		if err != nil {
			return 0, fmt.Errorf("message %d of %s: %w", seqOf(k), chatID, err)
		}
		if from != userID {
			n++
		}
	}
	return n, nil
}

// History implements store.Messages. limit <= 0 means no limit.
func (s *Store) History(ctx context.Context, chatID string, before int64, limit int) ([]store.Message, error) {
	if !validID(chatID) {
		return nil, fmt.Errorf("history: %w", store.ErrNotFound)
	}
	if before <= 0 {
		before = math.MaxInt64
	}
	var msgs []store.Message
	err := s.view(ctx, func(tx *bolt.Tx) error {
		msgs = msgs[:0]
		if tx.Bucket(bktChats).Get([]byte(chatID)) == nil {
			return store.ErrNotFound
		}
		p := prefix(chatID)
		c := tx.Bucket(bktLog).Cursor()
		// Seek lands on the first key >= before (or past the end); the
		// newest message before it is the key just ahead.
		k, v := c.Seek(seqKey(chatID, before))
		if k == nil {
			k, v = c.Last()
		} else {
			k, v = c.Prev()
		}
		for ; k != nil && bytes.HasPrefix(k, p); k, v = c.Prev() {
			if limit > 0 && len(msgs) >= limit {
				break
			}
			m, err := decodeMessage(v)
			if err != nil {
				return fmt.Errorf("message %d: %w", seqOf(k), err)
			}
			msgs = append(msgs, m)
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", chatID, err)
	}
	return msgs, nil
}
