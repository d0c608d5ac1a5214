package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// A group is a chat document of kind "group" whose state (name,
// description, settings, members and their roles) is committed together
// with the chat's seq, by the same conditional update that releases the
// chat lock. A change is written like a message: under the lock, its log
// entry carries the group's state after it (field g), so that whoever
// finds the entry above the committed seq (rollForward) can finish the
// change as its writer would have. How the membership records follow is
// in the package docs ("Groups").

// groupSettings are a group's permissions in documents.
type groupSettings struct {
	Edit string `bson:"edit"`
	Send string `bson:"send"`
}

// gmDoc is a member's details in the chat document's gm map, keyed by user
// id: a map rather than a list, so that Member reads one entry by its path
// ("gm.<user>") without loading the others. The order of the members is
// that of the chat's members list.
type gmDoc struct {
	Role string    `bson:"r"`
	At   time.Time `bson:"at"`
	Seq  int64     `bson:"js"`
}

// groupState is what a group change sets in the chat document; a group
// entry holds it until the change is committed.
type groupState struct {
	Title    string           `bson:"title"`
	Desc     string           `bson:"desc,omitempty"`
	Settings groupSettings    `bson:"set"`
	Members  []string         `bson:"members"`
	GM       map[string]gmDoc `bson:"gm"`
}

func stateOf(g *store.Group) *groupState {
	st := &groupState{
		Title: g.Name, Desc: g.Description,
		Settings: groupSettings{Edit: g.Settings.EditInfo, Send: g.Settings.Send},
		Members:  g.UserIDs(),
		GM:       make(map[string]gmDoc, len(g.Members)),
	}
	for _, m := range g.Members {
		st.GM[m.UserID] = gmDoc{Role: m.Role, At: m.JoinedAt, Seq: m.JoinedSeq}
	}
	return st
}

// fields are the chat document's fields st sets; none for nil (a message).
func (st *groupState) fields() bson.D {
	if st == nil {
		return nil
	}
	return bson.D{
		{Key: "title", Value: st.Title}, {Key: "desc", Value: st.Desc}, {Key: "set", Value: st.Settings},
		{Key: "members", Value: st.Members}, {Key: "gm", Value: st.orderedGM()},
	}
}

// orderedGM is the gm map in the order of the members: a document written
// the same way every time (a Go map encodes in random order).
func (st *groupState) orderedGM() bson.D {
	d := make(bson.D, 0, len(st.Members))
	for _, u := range st.Members {
		d = append(d, bson.E{Key: u, Value: st.GM[u]})
	}
	return d
}

// group is the group prev (its id and creation) with the state st.
func (st *groupState) group(prev *store.Group) *store.Group {
	g := &store.Group{Name: st.Title, Description: st.Desc,
		Settings: store.GroupSettings{EditInfo: st.Settings.Edit, Send: st.Settings.Send},
		Members:  membersOf(st.Members, st.GM)}
	if prev != nil {
		g.ChatID, g.CreatedBy, g.CreatedAt = prev.ChatID, prev.CreatedBy, prev.CreatedAt
	}
	return g
}

func (c *chatDoc) group() *store.Group {
	g := &store.Group{ChatID: c.ID, Name: c.Title, Description: c.Desc, CreatedBy: c.By, CreatedAt: c.Created,
		Members: membersOf(c.Members, c.GM)}
	if c.Settings != nil {
		g.Settings = store.GroupSettings{EditInfo: c.Settings.Edit, Send: c.Settings.Send}
	}
	return g
}

func membersOf(ids []string, gm map[string]gmDoc) []store.Member {
	out := make([]store.Member, len(ids))
	for i, u := range ids {
		d := gm[u]
		out[i] = store.Member{UserID: u, Role: d.Role, JoinedAt: d.At, JoinedSeq: d.Seq}
	}
	return out
}

func cloneGroup(g *store.Group) store.Group {
	c := *g
	c.Members = slices.Clone(g.Members)
	return c
}

// union returns a followed by the elements of b not in a.
func union(a, b []string) []string {
	return append(slices.Clip(a), minus(b, a)...)
}

// minus returns the elements of a not in b.
func minus(a, b []string) []string {
	in := make(map[string]bool, len(b))
	for _, x := range b {
		in[x] = true
	}
	var out []string
	for _, x := range a {
		if !in[x] {
			out = append(out, x)
		}
	}
	return out
}

// validMemberID reports whether id can be a member: an id that can also
// be a field name of the gm map (no '.', no '$').
func validMemberID(id string) bool {
	return validID(id) && !strings.ContainsAny(id, ".$\x00")
}

// msTime is t as the store keeps it: whole milliseconds, UTC.
func msTime(t time.Time) time.Time { return t.Truncate(time.Millisecond).UTC() }

// checkGroup validates a group's members and settings.
func checkGroup(g *store.Group) error {
	seen := make(map[string]bool, len(g.Members))
	for _, m := range g.Members {
		switch {
		case !validMemberID(m.UserID):
			return errInvalid(fmt.Sprintf("group member id %q", m.UserID))
		case seen[m.UserID]:
			return errInvalid(fmt.Sprintf("group: %s is a member twice", m.UserID))
		case m.Role != store.RoleAdmin && m.Role != store.RoleMember:
			return errInvalid(fmt.Sprintf("group role %q", m.Role))
		}
		seen[m.UserID] = true
	}
	for _, v := range []string{g.Settings.EditInfo, g.Settings.Send} {
		if v != store.AllowAll && v != store.AllowAdmins {
			return errInvalid(fmt.Sprintf("group setting %q", v))
		}
	}
	return nil
}

// newGroup validates the group of a Create and completes it: every member
// joins at seq 1.
func newGroup(c *store.Group, m *store.Message) (store.Group, error) {
	switch {
	case !strings.HasPrefix(c.ChatID, store.PrefixGroup) || c.ChatID != m.ChatID:
		return store.Group{}, errInvalid("group id (a new group's id starts with " + store.PrefixGroup + " and is the entry's chat)")
	case len(c.Members) == 0:
		return store.Group{}, errInvalid("group: no members")
	case c.Member(m.From) == nil:
		return store.Group{}, errInvalid("group: its creator is not a member")
	}
	if err := checkGroup(c); err != nil {
		return store.Group{}, err
	}
	g := cloneGroup(c)
	ts := time.UnixMilli(m.TS).UTC()
	if g.CreatedBy == "" {
		g.CreatedBy = m.From
	}
	if g.CreatedAt.IsZero() {
		g.CreatedAt = ts
	}
	g.CreatedAt = msTime(g.CreatedAt)
	for i := range g.Members {
		mb := &g.Members[i]
		mb.JoinedSeq = 1
		if mb.JoinedAt.IsZero() {
			mb.JoinedAt = ts
		}
		mb.JoinedAt = msTime(mb.JoinedAt)
	}
	return g, nil
}

// changed validates what Apply made of the group before, and gives the
// members it added the entry's seq: the ones it kept keep theirs.
func changed(before, after *store.Group, m *store.Message) error {
	switch {
	case after.ChatID != before.ChatID:
		return errInvalid("group change: the chat id cannot change")
	case after.CreatedBy != before.CreatedBy || !after.CreatedAt.Equal(before.CreatedAt):
		return errInvalid("group change: the creation cannot change")
	}
	if err := checkGroup(after); err != nil {
		return err
	}
	after.CreatedAt = before.CreatedAt
	ts := time.UnixMilli(m.TS).UTC()
	for i := range after.Members {
		mb := &after.Members[i]
		if old := before.Member(mb.UserID); old != nil {
			mb.JoinedSeq = old.JoinedSeq
			if mb.JoinedAt.IsZero() {
				mb.JoinedAt = old.JoinedAt
			}
		} else {
			mb.JoinedSeq = m.Seq
			if mb.JoinedAt.IsZero() {
				mb.JoinedAt = ts
			}
		}
		mb.JoinedAt = msTime(mb.JoinedAt)
	}
	return nil
}

// Steps of a group write after which tests stop it, as a node dying there
// would.
const (
	groupStepInserted = "group-inserted" // the entry is in the log
	groupStepEvents   = "group-events"   // events and new members' records stored
	groupStepCommit   = "group-commit"   // committed; removed members' records stay
)

// groupPlan is a group write made ready.
type groupPlan struct {
	w      *store.GroupWrite
	create *store.Group // the new group, completed (Create)
	// completed are the events placed to complete what a dead holder of
	// the lock left in the log.
	completed []store.Delivery
}

// WriteGroup implements store.Groups. The package docs ("Groups") tell how
// a write stays whole when its node dies halfway.
func (s *Store) WriteGroup(ctx context.Context, w store.GroupWrite) (store.GroupResult, error) {
	m := &w.Message
	switch {
	case (w.Create == nil) == (w.Apply == nil):
		return store.GroupResult{}, errInvalid("group write (set one of Create and Apply)")
	case m.ID == "":
		return store.GroupResult{}, errInvalid("message id")
	case !validID(m.ChatID) || !validID(m.From) || !validID(m.FromDevice):
		return store.GroupResult{}, errInvalid("chat, sender or device id")
	}
	m.Seq, m.Kind = 0, store.EventGroup
	p := &groupPlan{w: &w}
	if w.Create != nil {
		g, err := newGroup(w.Create, m)
		if err != nil {
			return store.GroupResult{}, err
		}
		p.create = &g
	}
	if err := ctx.Err(); err != nil {
		return store.GroupResult{}, fmt.Errorf("group write: %w", err)
	}
	unlock, err := s.chatGates.lock(ctx, m.ChatID)
	if err != nil {
		return store.GroupResult{}, fmt.Errorf("group write: %w", err)
	}
	defer unlock()
	for range 5 {
		var res store.GroupResult
		if p.create != nil {
			res, err = s.createGroup(ctx, p)
		} else {
			res, err = s.changeGroup(ctx, p)
			if errors.Is(err, errLockLost) {
				continue
			}
		}
		if ce, ok := errors.AsType[*callerError](err); ok {
			return store.GroupResult{Deliveries: p.completed}, ce.err
		}
		if err != nil {
			return store.GroupResult{Deliveries: p.completed}, fmt.Errorf("group write to %s: %w", m.ChatID, err)
		}
		res.Deliveries = append(res.Deliveries, p.completed...)
		return res, nil
	}
	return store.GroupResult{Deliveries: p.completed}, fmt.Errorf("group write to %s: %w", m.ChatID, errLockLost)
}

// createGroup creates a group and its first entry:
//
//  1. the membership records, and the members' devices read meanwhile;
//  2. the entry at seq 1, with the group's state: nothing points at it
//     yet, so a creation that stops here leaves nothing visible;
//  3. the chat, with the state, locked and at seq 0: from here on the
//     creation completes, by this call or by the next holder of the lock;
//  4. the events, then the commit of seq 1 that unlocks the chat.
func (s *Store) createGroup(ctx context.Context, p *groupPlan) (store.GroupResult, error) {
	m := p.w.Message
	m.Seq = 1
	g := *p.create
	st := stateOf(&g)
	err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: m.ChatID}}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if err == nil {
		return store.GroupResult{}, fmt.Errorf("chat %s exists: %w", m.ChatID, store.ErrConflict)
	}
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return store.GroupResult{}, err
	}
	var hs []head
	err = parallel(
		func() error { return s.joinRecords(ctx, m.ChatID, st.Members, 1) },
		func() error {
			var err error
			hs, err = s.heads(ctx, bson.D{{Key: "user", Value: bson.D{{Key: "$in", Value: st.Members}}}})
			return err
		})
	if err != nil {
		return store.GroupResult{}, err
	}
	entry := msgDoc{ID: numKey(m.ChatID, 1), Msg: *msgOf(&m), Key: "m:" + m.ID, Group: st}
	if _, err := s.messages.InsertOne(ctx, &entry); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			// Seq 1 of this chat, or the message id, is taken.
			err = fmt.Errorf("group %s or message %s exists: %w", m.ChatID, m.ID, store.ErrConflict)
		}
		return store.GroupResult{}, err
	}
	token := newToken()
	c := chatDoc{ID: m.ChatID, Kind: store.KindGroup, Title: st.Title, Members: st.Members, Created: g.CreatedAt,
		Desc: st.Desc, Settings: &st.Settings, By: g.CreatedBy, GM: st.GM, Lock: &lockDoc{T: token}}
	l := &chatLock{chatID: m.ChatID, token: token, members: st.Members, group: &g}
	if _, err := s.chats.InsertOne(ctx, &c); err != nil {
		if mongo.IsDuplicateKeyError(err) {
			return store.GroupResult{}, fmt.Errorf("chat %s exists: %w", m.ChatID, store.ErrConflict)
		}
		// It may have been applied: then the lock makes the next holder
		// complete the creation, at once.
		s.markDead(ctx, l)
		return store.GroupResult{}, err
	}
	released := false
	defer func() {
		if !released {
			s.markDead(ctx, l)
		}
	}()
	if s.stopAt(groupStepInserted) {
		return store.GroupResult{}, errStopped
	}
	return s.finishGroupWrite(ctx, l, &m, st, g, hs, &released)
}

// changeGroup is one attempt of a change under the chat lock:
//
//  1. lock the group (this reads its state as of the committed seq);
//  2. run Apply on a copy and validate the result;
//  3. insert the entry at the next seq with the state after the change,
//     reading the devices of the members before and after meanwhile;
//  4. append the events, and write the records of the members it adds;
//  5. commit seq and state in the write that unlocks the chat;
//  6. delete the records of the members it removed.
func (s *Store) changeGroup(ctx context.Context, p *groupPlan) (store.GroupResult, error) {
	m := p.w.Message
	l, err := s.lockChat(ctx, lockReq{chatID: m.ChatID, from: m.From, group: true})
	if err != nil {
		return store.GroupResult{}, err
	}
	released := false
	release := func() {
		s.unlockChat(ctx, l, 0, 0)
		released = true
	}
	defer func() {
		if !released {
			// As in send: the entry may be in the log.
			s.markDead(ctx, l)
		}
	}()
	if l.takeover {
		ds, err := s.rollForward(ctx, l)
		p.completed = append(p.completed, ds...)
		if err != nil {
			return store.GroupResult{}, err
		}
	}
	var (
		after store.Group
		st    *groupState
		hs    []head
	)
	for {
		if !p.w.Operator && !slices.Contains(l.members, m.From) {
			release()
			return store.GroupResult{}, fmt.Errorf("%s is not in group %s: %w", m.From, m.ChatID, store.ErrNotMember)
		}
		after = cloneGroup(l.group)
		if err := p.w.Apply(&after); err != nil {
			release()
			return store.GroupResult{}, &callerError{err}
		}
		m.Seq = l.seq + 1
		if err := changed(l.group, &after, &m); err != nil {
			release()
			return store.GroupResult{}, err
		}
		st = stateOf(&after)
		entry := msgDoc{ID: numKey(m.ChatID, m.Seq), Msg: *msgOf(&m), Key: "m:" + m.ID, Group: st}
		users := union(l.members, st.Members)
		headFilter := bson.D{{Key: "user", Value: bson.D{{Key: "$in", Value: users}}}}
		var insErr, headErr error
		_ = parallel(
			func() error {
				_, insErr = s.messages.InsertOne(ctx, &entry)
				return nil
			},
			func() error {
				hs, headErr = s.heads(ctx, headFilter)
				return nil
			})
		if insErr == nil {
			if headErr != nil {
				// The entry is in the log: finish regardless.
				dctx, cancel := s.detached(ctx)
				hs, headErr = s.heads(dctx, headFilter)
				cancel()
				if headErr != nil {
					return store.GroupResult{}, headErr
				}
			}
			break
		}
		if !mongo.IsDuplicateKeyError(insErr) {
			return store.GroupResult{}, insErr
		}
		// The message id (this write was made before), or the seq (the
		// holder this write took the lock over from was alive after all)?
		var first msgDoc
		err := s.messages.FindOne(ctx, bson.D{{Key: "id", Value: m.ID}}, options.FindOne().SetProjection(bson.D{{Key: "chat", Value: 1}, {Key: "seq", Value: 1}})).Decode(&first)
		if err != nil && !errors.Is(err, mongo.ErrNoDocuments) {
			return store.GroupResult{}, err
		}
		if err == nil {
			if first.Msg.ChatID == l.chatID && first.Msg.Seq > l.seq {
				ds, err := s.rollForward(ctx, l)
				p.completed = append(p.completed, ds...)
				if err != nil {
					return store.GroupResult{}, err
				}
			}
			release()
			return store.GroupResult{}, fmt.Errorf("message id %s is taken: %w", m.ID, store.ErrConflict)
		}
		ds, err := s.rollForward(ctx, l)
		p.completed = append(p.completed, ds...)
		if err != nil {
			return store.GroupResult{}, err
		}
		// Apply runs again, against the group as the completed entry
		// left it.
	}
	if s.stopAt(groupStepInserted) {
		return store.GroupResult{}, errStopped
	}
	return s.finishGroupWrite(ctx, l, &m, st, after, hs, &released)
}

// finishGroupWrite delivers the entry m (state st, the group after) to the
// devices hs, writes the records of the members it adds, commits and
// unlocks, and deletes the records of the members it removes.
func (s *Store) finishGroupWrite(ctx context.Context, l *chatLock, m *store.Message, st *groupState, after store.Group,
	hs []head, released *bool) (store.GroupResult, error) {
	ctx, cancel := s.detached(ctx)
	defer cancel()
	outs := logOuts(hs, m, entryEvent(m), "")
	var ds []store.Delivery
	err := parallel(
		func() error {
			var err error
			ds, err = s.appendFeed(ctx, hs, outs)
			return err
		},
		func() error { return s.joinRecords(ctx, l.chatID, minus(st.Members, l.members), m.Seq) })
	if err != nil {
		return store.GroupResult{}, err
	}
	if s.stopAt(groupStepEvents) {
		return store.GroupResult{}, errStopped
	}
	committed := s.commitUnlock(ctx, l, m.Seq, m.TS, st.fields())
	*released = true
	if s.stopAt(groupStepCommit) {
		return store.GroupResult{}, errStopped
	}
	if committed {
		// Otherwise the lock was taken over, and the taker does this.
		s.afterGroupCommit(ctx, l.chatID, minus(l.members, st.Members), m.Seq)
	}
	return store.GroupResult{Group: after, Message: *m, Deliveries: ds}, nil
}

// joinRecords writes the membership records of users joining chatID at
// seq: their marks start just below it (what came before is not theirs to
// read). $max, so that a write repeated late (a holder that lost the lock
// while stalled) never moves a mark back, and a record left by an earlier
// membership is brought up.
func (s *Store) joinRecords(ctx context.Context, chatID string, users []string, seq int64) error {
	if len(users) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(users))
	for i, u := range users {
		models[i] = mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: pairKey(u, chatID)}}).
			SetUpdate(bson.D{{Key: "$max", Value: bson.D{{Key: "read", Value: seq - 1}, {Key: "delivered", Value: seq - 1}, {Key: "js", Value: seq}}}}).
			SetUpsert(true)
	}
	// Two upserts of one new record can race to insert it: the loser's
	// duplicate key means it is there.
	if _, err := s.bulkUpdate(ctx, s.members, models, onlyDuplicates); err != nil {
		return fmt.Errorf("membership records: %w", err)
	}
	return nil
}

// afterGroupCommit tidies up after the group entry at seq is committed:
// it deletes the records of the members it removed (only those older than
// the entry: one re-added since keeps the new one), and drops the state
// from the entry, which nobody needs once committed. Failing, it only
// logs: readers skip a record whose chat does not list its user.
func (s *Store) afterGroupCommit(ctx context.Context, chatID string, left []string, seq int64) {
	fns := []func() error{func() error {
		_, err := s.messages.UpdateOne(ctx, bson.D{{Key: "_id", Value: numKey(chatID, seq)}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: "g", Value: ""}}}})
		return err
	}}
	if len(left) > 0 {
		keys := make([]string, len(left))
		for i, u := range left {
			keys[i] = pairKey(u, chatID)
		}
		fns = append(fns, func() error {
			_, err := s.members.DeleteMany(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: keys}}},
				{Key: "js", Value: bson.D{{Key: "$lt", Value: seq}}}})
			return err
		})
	}
	if err := parallel(fns...); err != nil {
		s.log.Warn("store/mongo: tidying up after a group change", "chat", chatID, "seq", seq, "err", err)
	}
}

// Group implements store.Groups: the group as of its committed seq.
func (s *Store) Group(ctx context.Context, chatID string) (store.Group, error) {
	var c chatDoc
	err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: chatID}, {Key: "kind", Value: store.KindGroup}},
		options.FindOne().SetProjection(bson.D{{Key: "lock", Value: 0}})).Decode(&c)
	if err != nil {
		return store.Group{}, fmt.Errorf("group %s: %w", chatID, notFound(err))
	}
	return *c.group(), nil
}

// Member implements store.Groups: one findOne by the chat's _id that
// returns only the user's entry of the member map, however large the
// group. It reads the committed state, as Group does, so it needs no
// membership record (whose writes trail and lead the commit).
func (s *Store) Member(ctx context.Context, chatID, userID string) (store.Member, error) {
	if !validID(chatID) || !validMemberID(userID) {
		return store.Member{}, fmt.Errorf("%s in group %s: %w", userID, chatID, store.ErrNotMember)
	}
	var c struct {
		GM map[string]gmDoc `bson:"gm"`
	}
	err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: chatID}, {Key: "kind", Value: store.KindGroup}},
		options.FindOne().SetProjection(bson.D{{Key: "gm." + userID, Value: 1}})).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		err = store.ErrNotMember
	}
	if err != nil {
		return store.Member{}, fmt.Errorf("%s in group %s: %w", userID, chatID, err)
	}
	d, ok := c.GM[userID]
	if !ok {
		return store.Member{}, fmt.Errorf("%s in group %s: %w", userID, chatID, store.ErrNotMember)
	}
	return store.Member{UserID: userID, Role: d.Role, JoinedAt: d.At, JoinedSeq: d.Seq}, nil
}
