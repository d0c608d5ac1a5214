package embedded

import (
	"cmp"
	"context"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"slices"
	"strings"
	"time"

	"github.com/tern-im/tern/store"
)

// A group lives in three places, each shaped for the one who reads it:
//
//   - tGroups holds the whole group (info, settings, members in joining
//     order), binary like the log: a group of a thousand members is a
//     record of about 45 KB, which JSON would double. Sends need it whole
//     (every member's devices, and the group for SendRequest.Check), so the
//     writer keeps it decoded (cache.go) and a send reads no record at all.
//   - Each member's tMembers record, the one direct chats have, goes on
//     with the member's role and joining: Member is one point read, and
//     MarkRead, Ack and Chats need nothing new to work for groups.
//   - tChats holds what Chat and Chats show: kind, title (the name) and
//     creation time. The member list is not repeated there; readChat takes
//     it from tGroups.
//
// A group write rewrites the group record and the records of the members
// it changes, adds one log entry, and appends that entry to every device of
// every member before or after the change.

// callerError carries an error of the caller's Apply or Check out of the
// writer, so that it reaches the caller as it came.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }
func (e *callerError) Unwrap() error { return e.err }

// callerErr returns the caller's own error if err carries one.
func callerErr(err error) (error, bool) {
	var ce *callerError
	if errors.As(err, &ce) {
		return ce.err, true
	}
	return nil, false
}

// WriteGroup implements store.Groups.
func (s *Store) WriteGroup(ctx context.Context, gw store.GroupWrite) (store.GroupResult, error) {
	m := gw.Message
	switch {
	case m.ID == "":
		return store.GroupResult{}, errInvalid("message id")
	case !validID(m.ChatID) || !validID(m.From) || !validID(m.FromDevice):
		return store.GroupResult{}, errInvalid("chat, sender or device id")
	case (gw.Create == nil) == (gw.Apply == nil):
		return store.GroupResult{}, errInvalid("group write: exactly one of Create and Apply must be set")
	}
	m.Kind = store.EventGroup
	m.Seq = 0
	var create *store.Group
	if gw.Create != nil {
		// Checked here, on the caller's goroutine: a new group is valid or
		// not whatever the database holds.
		var err error
		if create, err = prepareCreate(gw.Create, &m); err != nil {
			return store.GroupResult{}, err
		}
	}
	var res store.GroupResult
	err := s.write(ctx, func(w *wtx) error {
		res = store.GroupResult{}
		if create != nil {
			return applyCreateGroup(w, create, m, &res)
		}
		return applyChangeGroup(w, gw.Apply, gw.Operator, m, &res)
	})
	if ce, ok := callerErr(err); ok {
		return store.GroupResult{}, ce
	}
	if err != nil {
		return store.GroupResult{}, fmt.Errorf("write group %s: %w", m.ChatID, err)
	}
	return res, nil
}

// prepareCreate checks a new group and returns the copy of it to store,
// with what the store assigns filled in.
func prepareCreate(c *store.Group, m *store.Message) (*store.Group, error) {
	g := cloneGroup(c)
	switch {
	case !strings.HasPrefix(g.ChatID, store.PrefixGroup) || !validID(g.ChatID) || len(g.ChatID) == len(store.PrefixGroup):
		return nil, errInvalid("group id")
	case g.ChatID != m.ChatID:
		return nil, errInvalid("group write: the message is for another chat than the group")
	case len(g.Members) == 0:
		return nil, errInvalid("group: no members")
	case g.Member(m.From) == nil:
		return nil, errInvalid("group: the writer is not one of its members")
	}
	if err := checkGroup(&g); err != nil {
		return nil, err
	}
	at := time.UnixMilli(m.TS).UTC()
	if g.CreatedBy == "" {
		g.CreatedBy = m.From
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = at
	}
	for i := range g.Members {
		// The entry is the chat's first: it will have seq 1.
		g.Members[i].JoinedSeq = 1
		if g.Members[i].JoinedAt.IsZero() {
			g.Members[i].JoinedAt = at
		}
	}
	return &g, nil
}

// checkGroup checks what every stored group must satisfy: valid member
// ids, each once, and known roles and settings.
func checkGroup(g *store.Group) error {
	for _, v := range []string{g.Settings.EditInfo, g.Settings.Send} {
		if v != store.AllowAll && v != store.AllowAdmins {
			return errInvalid(fmt.Sprintf("group setting %q", v))
		}
	}
	// A map only for large groups: for a handful of members a scan is
	// cheaper.
	var seen map[string]bool
	if len(g.Members) > 16 {
		seen = make(map[string]bool, len(g.Members))
	}
	for i, mb := range g.Members {
		if !validID(mb.UserID) {
			return errInvalid("member id")
		}
		if mb.Role != store.RoleAdmin && mb.Role != store.RoleMember {
			return errInvalid(fmt.Sprintf("role %q of member %s", mb.Role, mb.UserID))
		}
		dup := false
		if seen != nil {
			dup = seen[mb.UserID]
			seen[mb.UserID] = true
		} else {
			dup = slices.ContainsFunc(g.Members[:i], func(o store.Member) bool { return o.UserID == mb.UserID })
		}
		if dup {
			return errInvalid(fmt.Sprintf("members: %s is listed twice", mb.UserID))
		}
	}
	return nil
}

// cloneGroup returns a copy of g that shares nothing mutable with it.
func cloneGroup(g *store.Group) store.Group {
	c := *g
	c.Members = slices.Clone(g.Members)
	return c
}

func applyCreateGroup(w *wtx, g *store.Group, m store.Message, res *store.GroupResult) error {
	if w.has(key(tChats, g.ChatID)) {
		return fmt.Errorf("%w: chat %s exists", store.ErrConflict, g.ChatID)
	}
	if cur, err := w.group(g.ChatID); err != nil || cur != nil {
		return cmp.Or(err, fmt.Errorf("%w: group %s exists", store.ErrConflict, g.ChatID))
	}
	meta, err := json.Marshal(chatMeta{Kind: store.KindGroup, Title: g.Name, CreatedAt: g.CreatedAt})
	if err != nil {
		return err
	}

	// Everything above could fail; from here on only the engine can.
	cs := decodeChatSeq(w.get(key(tChatSeq, m.ChatID)))
	m.Seq = cs.LastSeq + 1
	w.put(key(tChats, g.ChatID), meta)
	stored := w.putGroup(g)
	for _, mb := range stored.Members {
		w.put(pairKey(tMembers, mb.UserID, g.ChatID), newMember(&mb).encode())
	}
	w.putEntry(&m, cs)
	res.Group = cloneGroup(stored)
	res.Message = m
	res.Deliveries = w.deliverGroupEntry(&m, stored.Members, nil)
	return nil
}

func applyChangeGroup(w *wtx, apply func(*store.Group) error, operator bool, m store.Message, res *store.GroupResult) error {
	cur, err := w.group(m.ChatID)
	switch {
	case err != nil:
		return err
	case cur == nil:
		return fmt.Errorf("%w: no group %s", store.ErrNotFound, m.ChatID)
	case !operator && cur.Member(m.From) == nil:
		return fmt.Errorf("%w: %s is not in group %s", store.ErrNotMember, m.From, m.ChatID)
	}
	g := cloneGroup(cur)
	if err := apply(&g); err != nil {
		return &callerError{err}
	}
	g.ChatID, g.CreatedBy, g.CreatedAt = cur.ChatID, cur.CreatedBy, cur.CreatedAt
	if err := checkGroup(&g); err != nil {
		return err
	}
	cs := decodeChatSeq(w.get(key(tChatSeq, m.ChatID)))
	m.Seq = cs.LastSeq + 1
	at := time.UnixMilli(m.TS).UTC()
	old := make(map[string]*store.Member, len(cur.Members))
	for i := range cur.Members {
		old[cur.Members[i].UserID] = &cur.Members[i]
	}
	for i := range g.Members {
		mb := &g.Members[i]
		if old[mb.UserID] == nil || mb.JoinedSeq == 0 {
			mb.JoinedSeq = m.Seq
		} else if mb.JoinedSeq < 0 || mb.JoinedSeq > m.Seq {
			return errInvalid(fmt.Sprintf("joined seq %d of member %s", mb.JoinedSeq, mb.UserID))
		}
		if mb.JoinedAt.IsZero() {
			mb.JoinedAt = at
		}
	}
	var meta chatMeta
	if err := w.getJSON(key(tChats, m.ChatID), &meta); err != nil {
		return err
	}
	var metaV []byte
	if meta.Title != g.Name {
		meta.Title = g.Name
		if metaV, err = json.Marshal(meta); err != nil {
			return err
		}
	}

	// Everything above could fail; from here on only the engine can.
	stored := w.putGroup(&g)
	if metaV != nil {
		w.put(key(tChats, m.ChatID), metaV)
	}
	// Only the members the change touched: a rename of a large group
	// rewrites no member record.
	kept := make(map[string]bool, len(stored.Members))
	for i := range stored.Members {
		mb := &stored.Members[i]
		kept[mb.UserID] = true
		k := pairKey(tMembers, mb.UserID, m.ChatID)
		was := old[mb.UserID]
		switch {
		case was == nil:
			w.put(k, newMember(mb).encode())
		case *was != *mb:
			raw := w.get(k)
			if raw == nil {
				w.put(k, newMember(mb).encode())
				continue
			}
			rec := decodeMember(raw)
			rec.Group = encodeMembership(mb)
			w.put(k, rec.encode())
		}
	}
	var gone []store.Member
	for _, mb := range cur.Members {
		if !kept[mb.UserID] {
			w.del(pairKey(tMembers, mb.UserID, m.ChatID))
			gone = append(gone, mb)
		}
	}
	w.putEntry(&m, cs)
	res.Group = cloneGroup(stored)
	res.Message = m
	res.Deliveries = w.deliverGroupEntry(&m, stored.Members, gone)
	return nil
}

// newMember is the members record of a member who joins with mb: the
// entries before the one that added it are not its to read or receive,
// so its marks start just below that one.
func newMember(mb *store.Member) member {
	return member{ReadSeq: mb.JoinedSeq - 1, DeliveredSeq: mb.JoinedSeq - 1, Group: encodeMembership(mb)}
}

// putEntry stores m, whose Seq follows cs, in its chat's log, and returns
// the location tMsgIDs and tIdem record.
func (w *wtx) putEntry(m *store.Message, cs chatSeq) []byte {
	w.put(key(tChatSeq, m.ChatID), chatSeq{LastSeq: m.Seq, LastTS: max(cs.LastTS, m.TS), Disappear: cs.Disappear}.encode())
	if m.ExpiresTS != 0 {
		w.put(expiryKey(m.ExpiresTS, m.ChatID, m.Seq), nil)
	}
	w.put(seqKey(tLog, m.ChatID, m.Seq), encodeMessage(m))
	loc := append(binary.BigEndian.AppendUint64(make([]byte, 0, 8+len(m.ChatID)), uint64(m.Seq)), m.ChatID...)
	if validID(m.ID) {
		w.put(key(tMsgIDs, m.ID), loc)
	}
	return loc
}

// deliver appends a reference to m to the feed of each of users that has
// a device other than skip (the sending device, which its own user's entry
// names) and returns a delivery for each of their devices but skip, and
// the cursor of the entry skip skips (0 if none). The deliveries share one
// read-only copy of the message, which also lets a caller render it once
// for all of them.
func (w *wtx) deliver(m *store.Message, kind string, users []string, skip string) ([]store.Delivery, int64) {
	num := w.chatNum(m.ChatID)
	w.pending[msgHeadKey(num, m.Seq)] = encodeMsgHead(&msgHead{id: m.ID, chatID: m.ChatID, seq: m.Seq,
		from: m.From, group: m.Kind != ""})
	plain := encodeRef(num, m.Seq, "")
	shared := m
	out := make([]store.Delivery, 0, 2*len(users))
	var skipped int64
	for _, u := range users {
		devs := w.userDeviceIDs(u)
		if len(devs) == 0 || len(devs) == 1 && devs[0] == skip {
			continue // nobody would read the entry
		}
		entry := plain
		if skip != "" && slices.Contains(devs, skip) {
			entry = encodeRef(num, m.Seq, skip)
		}
		cur := w.appendFeed(u, entry)
		for _, d := range devs {
			if d == skip {
				skipped = cur
				continue
			}
			out = append(out, store.Delivery{
				DeviceID: d,
				Event:    store.Event{Cursor: cur, Kind: kind, Message: shared},
			})
		}
	}
	return out, skipped
}

// deliverGroupEntry appends the entry of a group change to the feeds of
// the members after it and of those it removed (gone), who learn of their
// removal: the writing device too, which sees its change in order with
// the rest of the chat.
func (w *wtx) deliverGroupEntry(m *store.Message, members, gone []store.Member) []store.Delivery {
	users := make([]string, 0, len(members)+len(gone))
	for _, list := range [][]store.Member{members, gone} {
		for _, mb := range list {
			users = append(users, mb.UserID)
		}
	}
	out, _ := w.deliver(m, store.EventGroup, users, "")
	return out
}

// groupTargets checks a group send (the sender is a member, the caller's
// Check passes) and returns the users it goes to: every member.
func groupTargets(w *wtx, req *store.SendRequest) ([]string, *store.Group, error) {
	m := &req.Message
	g, err := w.group(m.ChatID)
	switch {
	case err != nil:
		return nil, nil, err
	case g == nil:
		return nil, nil, fmt.Errorf("%w: no group %s", store.ErrNotFound, m.ChatID)
	case g.Member(m.From) == nil:
		return nil, nil, fmt.Errorf("%w: %s is not in group %s", store.ErrNotMember, m.From, m.ChatID)
	}
	if req.Check != nil {
		c := cloneGroup(g)
		if err := req.Check(&c); err != nil {
			return nil, nil, &callerError{err}
		}
	}
	users := make([]string, len(g.Members))
	for i, mb := range g.Members {
		users[i] = mb.UserID
	}
	return users, g, nil
}

// group returns the group chatID as of the round so far, nil if there is
// none. The group is shared with the cache: the caller must not modify it.
func (w *wtx) group(chatID string) (*store.Group, error) {
	if w.err != nil {
		return nil, w.err
	}
	if g, ok := w.groups[chatID]; ok {
		return g.g, nil
	}
	if g, ok := w.cache.groups[chatID]; ok {
		return g.g, nil
	}
	raw, err := w.r.get(key(tGroups, chatID))
	if err != nil {
		w.setErr(err)
		return nil, err
	}
	var g *store.Group
	if raw != nil {
		dg, err := decodeGroup(chatID, raw)
		if err != nil {
			return nil, fmt.Errorf("group %s: %w", chatID, err)
		}
		g = &dg
	}
	// Not written in this round (see w.groups), so this is committed state.
	w.cache.setGroup(chatID, newCachedGroup(chatID, g, len(raw)))
	return g, nil
}

// putGroup stores g and returns it as it will read back (times at
// millisecond precision), which is what the round, the cache and the
// caller then see.
func (w *wtx) putGroup(g *store.Group) *store.Group {
	v := encodeGroup(g)
	w.put(key(tGroups, g.ChatID), v)
	stored, err := decodeGroup(g.ChatID, v)
	if err != nil {
		w.setErr(fmt.Errorf("group %s does not decode after encoding: %w", g.ChatID, err))
		return g
	}
	if w.groups == nil {
		w.groups = make(map[string]*cachedGroup)
	}
	w.groups[g.ChatID] = newCachedGroup(g.ChatID, &stored, len(v))
	return &stored
}

// Group implements store.Groups.
func (s *Store) Group(ctx context.Context, chatID string) (store.Group, error) {
	if !validID(chatID) {
		return store.Group{}, fmt.Errorf("group %s: %w", chatID, store.ErrNotFound)
	}
	var g store.Group
	err := s.view(ctx, func(r reader) error {
		raw, err := r.get(key(tGroups, chatID))
		if err != nil {
			return err
		}
		if raw == nil {
			return store.ErrNotFound
		}
		g, err = decodeGroup(chatID, raw)
		return err
	})
	if err != nil {
		return store.Group{}, fmt.Errorf("group %s: %w", chatID, err)
	}
	return g, nil
}

// Member implements store.Groups: one read of the user's members record,
// which tells the membership of a group (and a direct chat has none).
func (s *Store) Member(ctx context.Context, chatID, userID string) (store.Member, error) {
	if !validID(chatID) || !validID(userID) {
		return store.Member{}, fmt.Errorf("member %s of %s: %w", userID, chatID, store.ErrNotMember)
	}
	var mb store.Member
	err := s.view(ctx, func(r reader) error {
		raw, err := r.get(pairKey(tMembers, userID, chatID))
		if err != nil {
			return err
		}
		rec := decodeMember(raw)
		if len(rec.Group) == 0 {
			return store.ErrNotMember
		}
		mb, err = decodeMembership(userID, rec.Group)
		return err
	})
	if err != nil {
		return store.Member{}, fmt.Errorf("member %s of %s: %w", userID, chatID, err)
	}
	return mb, nil
}

// The group record (tGroups): formatV1, name, description, the two
// settings, created by, created at, the member count, then per member its
// user id, role, joined seq and joined at. Strings are length-prefixed,
// numbers varints and times milliseconds (see appendTime), as in the log.
// The chat id is the key.
//
// The membership in a members record (member.Group): formatV1, role,
// joined seq, joined at.

func encodeGroup(g *store.Group) []byte {
	n := 1 + 8*binary.MaxVarintLen64 + len(g.Name) + len(g.Description) + len(g.Settings.EditInfo) +
		len(g.Settings.Send) + len(g.CreatedBy)
	for _, mb := range g.Members {
		n += 4*binary.MaxVarintLen64 + len(mb.UserID) + len(mb.Role)
	}
	b := make([]byte, 0, n)
	b = append(b, formatV1)
	b = appendString(b, g.Name)
	b = appendString(b, g.Description)
	b = appendString(b, g.Settings.EditInfo)
	b = appendString(b, g.Settings.Send)
	b = appendString(b, g.CreatedBy)
	b = appendTime(b, g.CreatedAt)
	b = binary.AppendUvarint(b, uint64(len(g.Members)))
	for _, mb := range g.Members {
		b = appendString(b, mb.UserID)
		b = appendString(b, mb.Role)
		b = binary.AppendUvarint(b, uint64(mb.JoinedSeq))
		b = appendTime(b, mb.JoinedAt)
	}
	return b
}

func decodeGroup(chatID string, b []byte) (store.Group, error) {
	d := decoder{b: b}
	d.format("group")
	g := store.Group{ChatID: chatID}
	g.Name = d.str("name")
	g.Description = d.str("description")
	g.Settings.EditInfo = d.str("edit info setting")
	g.Settings.Send = d.str("send setting")
	g.CreatedBy = d.str("created by")
	g.CreatedAt = d.time("created at")
	n := d.count("member count")
	if n > 0 {
		g.Members = make([]store.Member, 0, n)
	}
	for i := uint64(0); i < n && d.err == nil; i++ {
		var mb store.Member
		mb.UserID = d.str("member id")
		mb.Role = d.str("role")
		mb.JoinedSeq = d.seq("joined seq")
		mb.JoinedAt = d.time("joined at")
		g.Members = append(g.Members, mb)
	}
	if d.err == nil && len(d.b) != 0 {
		d.fail("group (trailing bytes)")
	}
	if d.err != nil {
		return store.Group{}, d.err
	}
	return g, nil
}

// groupUserIDs decodes only the member ids of a group record: what a chat
// list shows.
func groupUserIDs(b []byte) ([]string, error) {
	d := decoder{b: b}
	d.format("group")
	for range 5 { // name, description, two settings, created by
		d.raw("group info")
	}
	d.varint("created at")
	n := d.count("member count")
	ids := make([]string, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		ids = append(ids, d.str("member id"))
		d.raw("role")
		d.uvarint("joined seq")
		d.varint("joined at")
	}
	return ids, d.err
}

func encodeMembership(mb *store.Member) []byte {
	b := make([]byte, 0, 1+3*binary.MaxVarintLen64+len(mb.Role))
	b = append(b, formatV1)
	b = appendString(b, mb.Role)
	b = binary.AppendUvarint(b, uint64(mb.JoinedSeq))
	return appendTime(b, mb.JoinedAt)
}

func decodeMembership(userID string, b []byte) (store.Member, error) {
	d := decoder{b: b}
	d.format("membership")
	mb := store.Member{UserID: userID}
	mb.Role = d.str("role")
	mb.JoinedSeq = d.seq("joined seq")
	mb.JoinedAt = d.time("joined at")
	if d.err == nil && len(d.b) != 0 {
		d.fail("membership (trailing bytes)")
	}
	return mb, d.err
}

// zeroTime stands for the zero time.Time, which has no Unix milliseconds
// of its own that could not also be a real time.
const zeroTime = math.MinInt64

// appendTime appends t as Unix milliseconds: what the store keeps of every
// time (store/storetest compares at that precision).
func appendTime(b []byte, t time.Time) []byte {
	if t.IsZero() {
		return binary.AppendVarint(b, zeroTime)
	}
	return binary.AppendVarint(b, t.UnixMilli())
}

func (d *decoder) time(what string) time.Time {
	ms := d.varint(what)
	if d.err != nil || ms == zeroTime {
		return time.Time{}
	}
	return time.UnixMilli(ms).UTC()
}

func (d *decoder) seq(what string) int64 {
	v := d.uvarint(what)
	if v > math.MaxInt64 {
		d.fail(what)
		return 0
	}
	return int64(v)
}

// count reads a number of items that each take at least one byte, which
// bounds it by the input: a corrupt count cannot allocate without limit.
func (d *decoder) count(what string) uint64 {
	n := d.uvarint(what)
	if n > uint64(len(d.b)) {
		d.fail(what)
		return 0
	}
	return n
}
