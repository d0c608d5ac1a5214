package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// chatDoc is a chat. Seq is the last committed seq; Lock is set while a
// send holds the chat (see lock.go).
type chatDoc struct {
	ID      string    `bson:"_id"`
	Kind    string    `bson:"kind"`
	Title   string    `bson:"title,omitempty"`
	Members []string  `bson:"members"`
	Created time.Time `bson:"created"`
	Seq     int64     `bson:"seq"`
	LastTS  int64     `bson:"last_ts"`
	Lock    *lockDoc  `bson:"lock,omitempty"`
	// Dis is the disappearing timer in seconds, committed with the
	// entry that set it (absent: never set).
	Dis int64 `bson:"dis,omitempty"`
	// The rest of a group's state (groups.go); Title is its name and
	// Members its user ids in joining order.
	Desc     string           `bson:"desc,omitempty"`
	Settings *groupSettings   `bson:"set,omitempty"`
	By       string           `bson:"by,omitempty"`
	GM       map[string]gmDoc `bson:"gm,omitempty"`
}

func (d *chatDoc) chat() store.Chat {
	return store.Chat{ID: d.ID, Kind: d.Kind, Title: d.Title, Members: d.Members, LastSeq: d.Seq, CreatedAt: d.Created}
}

// chatProjection leaves out the lock and a group's member details (up to
// some 100 bytes a member), which a store.Chat does not hold.
var chatProjection = bson.D{{Key: "lock", Value: 0}, {Key: "gm", Value: 0}}

// memberDoc is a member's marks in a chat; _id is "<user>/<chat>".
type memberDoc struct {
	ID        string `bson:"_id"`
	Read      int64  `bson:"read"`
	Delivered int64  `bson:"delivered"`
	// Joined is, in a group, the seq of the entry that added the member:
	// a removal deletes only records older than itself (see groups.go).
	Joined int64 `bson:"js,omitempty"`
	// Pending are read ranges whose receipts may not be stored yet.
	Pending map[string]pendingRead `bson:"rp,omitempty"`
}

// msgDoc is an entry of a chat log; _id is "<chat>/<seq>". Key is the
// idempotency key: "c:" and the client id, or "m:" and the message id for a
// send without a client id, so that those never collide in the unique
// (dev, key) index.
type msgDoc struct {
	ID  string   `bson:"_id"`
	Msg eventMsg `bson:",inline"`
	Key string   `bson:"key"`
	// Group is, in the entry of a group change, the group's state after
	// it, until the change is committed to the chat (see groups.go).
	Group *groupState `bson:"g,omitempty"`
	// Action is, in a message action's entry, the action, so that
	// rollForward can apply it again (see actions.go).
	Action *actionDoc `bson:"act,omitempty"`
	// Due is the expiry of a disappearing entry until ExpireDue has
	// expired it: what the sweeper's index holds.
	Due int64 `bson:"due,omitempty"`
}

// msgProjection leaves out a group entry's state and an action entry's
// action, which readers of the log never need.
var msgProjection = bson.D{{Key: "g", Value: 0}, {Key: fieldAction, Value: 0}}

func idemKey(req *store.SendRequest) string {
	if req.ClientID == "" {
		return "m:" + req.Message.ID
	}
	return "c:" + req.ClientID
}

func nowMillis() int64 { return time.Now().UnixMilli() }

// sendPlan is a send request made ready: validated, deduplicated.
type sendPlan struct {
	req              *store.SendRequest
	key              string
	members, targets []string
	// group: a send to a group, whose members and target devices the send
	// resolves under the lock.
	group bool
	// newChatErr is why the request cannot create its chat; it only
	// matters if the chat does not exist yet.
	newChatErr error
	// completed are the events this send placed to complete the sends a
	// dead holder of the lock left in the log (rollForward).
	completed []store.Delivery
}

// errLockLost means another node took the chat lock over while this send
// held it, before the send's message was in the log: the send starts over.
var errLockLost = errors.New("store/mongo: chat lock taken over")

// Send implements store.Messages. A new chat is created from Kind and
// Members, which must include the sender; in an existing chat the sender
// must be a member (ErrNotFound otherwise). Target devices that do not exist
// are skipped. How seqs and cursors stay gap-free without transactions is in
// the package docs.
func (s *Store) Send(ctx context.Context, req store.SendRequest) (store.SendResult, error) {
	m := &req.Message
	if err := store.CheckSend(&req); err != nil {
		return store.SendResult{}, fmt.Errorf("store/mongo: %w", err)
	}
	if !validID(m.ChatID) || !validID(m.From) || !validID(m.FromDevice) {
		return store.SendResult{}, errInvalid("chat, sender or device id")
	}
	if err := ctx.Err(); err != nil {
		return store.SendResult{}, fmt.Errorf("send: %w", err)
	}
	p := &sendPlan{req: &req, key: idemKey(&req), group: req.Kind == store.KindGroup}
	if !p.group {
		p.members = store.Unique(req.Members)
		for _, d := range store.Unique(req.Devices) {
			if validID(d) {
				p.targets = append(p.targets, d)
			}
		}
	}
	switch {
	case p.group:
		// A group is created by WriteGroup, never by a send.
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
	if a := req.Action; a != nil && a.Kind != store.ActionDisappearing {
		// Its target would be a message of a chat that has none.
		p.newChatErr = fmt.Errorf("no chat %s for message %s: %w", m.ChatID, a.Target, store.ErrNotFound)
	}

	// This node's senders of the chat wait here, in memory; only the
	// first polls the lock in the database.
	unlock, err := s.chatGates.lock(ctx, m.ChatID)
	if err != nil {
		return store.SendResult{}, fmt.Errorf("send: %w", err)
	}
	defer unlock()
	for range 5 {
		res, err := s.send(ctx, p)
		if errors.Is(err, errLockLost) {
			continue
		}
		if ce, ok := errors.AsType[*callerError](err); ok {
			return store.SendResult{Deliveries: p.completed}, ce.err
		}
		if err != nil {
			return store.SendResult{Deliveries: p.completed}, fmt.Errorf("send to %s: %w", m.ChatID, err)
		}
		res.Deliveries = append(res.Deliveries, p.completed...)
		return res, nil
	}
	return store.SendResult{Deliveries: p.completed}, fmt.Errorf("send to %s: %w", m.ChatID, errLockLost)
}

// send is one attempt of Send under the chat lock:
//
//  1. lock the chat (this reads its last seq S and its timer);
//  2. for an action, read its target, run Check and work out its effect
//     (actions.go);
//  3. insert the message at S+1, which also claims the idempotency key, and
//     read the target devices' inbox heads at the same time (in a group,
//     the devices of every member, or for an action's entry of the members
//     who can see its target: joined at or before it);
//  4. append the events to the inboxes (one insert, plus a hint update),
//     and write the action's effect meanwhile;
//  5. unlock, setting the chat's seq to S+1 (and a new timer, unless the
//     change is hidden from someone: store.TimerChange).
//
// Once the message is in the log (2), the send completes even if ctx ends;
// if it cannot, the lock is left marked dead, and the next sender in the
// chat completes it (rollForward).
func (s *Store) send(ctx context.Context, p *sendPlan) (store.SendResult, error) {
	m := p.req.Message
	lr := lockReq{chatID: m.ChatID, from: m.From, group: p.group}
	if !p.group {
		lr.create = func(ctx context.Context, token string) (*chatLock, error) { return s.createChat(ctx, p, token) }
	}
	l, err := s.lockChat(ctx, lr)
	if err != nil {
		return store.SendResult{}, err
	}
	released := false
	defer func() {
		if !released {
			// Whatever failed, a message may be in the log above the
			// chat's seq: an insert can fail after the server applied it
			// (a timeout, a connection cut). Dropping the lock would let
			// a resend find that message by its key and answer it as
			// sent, never delivered. Marked dead, the lock makes the next
			// sender complete it at once.
			s.markDead(ctx, l)
		}
	}()
	if l.takeover {
		ds, err := s.rollForward(ctx, l)
		p.completed = append(p.completed, ds...)
		if err != nil {
			return store.SendResult{}, err
		}
	}
	if !p.group && l.group != nil {
		// A group's members, rules and change entries are its own: a
		// direct-style send would bypass all three.
		s.unlockChat(ctx, l, 0, 0)
		released = true
		return store.SendResult{}, errInvalid(fmt.Sprintf("chat kind %q: %s is a group", p.req.Kind, l.chatID))
	}
	// The target devices: given, or, in a group, every device of every
	// member (the sending one is skipped below), in one query.
	headFilter := bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: p.targets}}}}
	if p.group {
		if err := s.groupSendAllowed(l, p.req); err != nil {
			return s.refuse(ctx, l, p, &released, err)
		}
	}

	var (
		hs    []head
		known map[string]feedHead // feed heads read with hs
		eff   *effect             // what the entry's action does to its target
	)
	for {
		m.Seq = l.seq + 1
		m.ExpiresTS = store.ExpiryOf(&m, p.req.Action, l.dis)
		eff = nil
		if act := p.req.Action; act != nil && act.Kind != store.ActionDisappearing {
			// Against the target as the entries up to l.seq left it;
			// nothing is written to it before the entry is in the log.
			if eff, err = s.actOn(ctx, l, &m, act); err != nil {
				return s.refuse(ctx, l, p, &released, err)
			}
		}
		if p.group {
			// Every member as of l.seq; an action's entry only to those
			// who can see its target.
			p.targets = l.members
			if eff != nil {
				p.targets = seeing(l.group, eff.target.Seq)
			}
			headFilter = bson.D{{Key: "user", Value: bson.D{{Key: "$in", Value: p.targets}}}}
		}
		doc := msgDoc{ID: numKey(m.ChatID, m.Seq), Msg: *msgOf(&m), Key: p.key,
			Action: actionDocOf(p.req.Action), Due: m.ExpiresTS}
		var insErr, headErr error
		feedUsers := p.members
		if p.group {
			feedUsers = p.targets
		}
		_ = parallel(
			func() error {
				_, insErr = s.messages.InsertOne(ctx, &doc)
				if insErr == nil && s.stopAt(sendStepInserted) {
					insErr = errStopped // applied, yet failed: a timeout, a cut
				}
				return nil
			},
			func() error {
				if len(p.targets) > 0 {
					hs, headErr = s.heads(ctx, headFilter)
				}
				return nil
			},
			func() error {
				if len(p.targets) > 0 {
					// A start only: appendFeed reads what this missed.
					known, _ = s.readFeedHeads(ctx, feedUsers)
				}
				return nil
			})
		if insErr == nil {
			if headErr != nil {
				// The message is in the log: finish regardless.
				dctx, cancel := s.detached(ctx)
				hs, headErr = s.heads(dctx, headFilter)
				cancel()
				if headErr != nil {
					return store.SendResult{}, headErr
				}
			}
			break
		}
		if !mongo.IsDuplicateKeyError(insErr) {
			return store.SendResult{}, insErr
		}
		// The key, or the seq? The key: a resend, answered with the
		// first message.
		res, dup, err := s.duplicate(ctx, l, p)
		if err != nil {
			return store.SendResult{}, err
		}
		if dup {
			s.unlockChat(ctx, l, 0, 0)
			released = true
			return res, nil
		}
		// The seq: the holder this send took the lock over from was alive
		// after all and wrote its message; complete it, and go on above it.
		before := l.seq
		ds, err := s.rollForward(ctx, l)
		p.completed = append(p.completed, ds...)
		if err != nil {
			return store.SendResult{}, err
		}
		if l.seq == before {
			// Neither: the message id, unique, is another message's.
			return store.SendResult{}, fmt.Errorf("message id %s is taken: %w", m.ID, store.ErrConflict)
		}
		if p.group {
			// What was completed may have changed the group. Nothing of
			// this send is stored: the insert failed on a duplicate.
			if err := s.groupSendAllowed(l, p.req); err != nil {
				s.unlockChat(ctx, l, 0, 0)
				released = true
				return store.SendResult{}, err
			}
		}
	}

	ctx, cancel := s.detached(ctx)
	defer cancel()
	// The events share one read-only copy of the message, which also lets
	// a caller render it once for all of them.
	shared := &m
	skip := m.FromDevice
	if p.req.EchoToSender {
		skip = ""
	}
	outs := logOuts(hs, shared, store.Event{Kind: store.EventMessage, Message: shared}, skip)
	var deliveries []store.Delivery
	fns := []func() error{func() (err error) {
		deliveries, err = s.appendFeedKnown(ctx, hs, outs, known)
		return err
	}}
	if eff != nil && eff.applied {
		// Before the commit, so that whoever reads the entry also reads
		// its effect; events are references, which read the target's
		// state when they are read, so the two need no order.
		fns = append(fns, func() error { return s.applyEffect(ctx, &m, p.req.Action.Kind, eff) })
	}
	if err := parallel(fns...); err != nil {
		return store.SendResult{}, err
	}
	s.commitUnlock(ctx, l, m.Seq, m.TS, timerFields(&m, p.req.Action))
	released = true
	return store.SendResult{Message: m, Deliveries: deliveries, SenderCursor: senderCursor(outs, shared)}, nil
}

// refuse answers a send that the chat's state refuses under the lock
// with err (the group's rules, the action's target), unless it is a
// resend: that is answered as before, whatever changed since.
func (s *Store) refuse(ctx context.Context, l *chatLock, p *sendPlan, released *bool, err error) (store.SendResult, error) {
	res, dup, derr := s.duplicate(ctx, l, p)
	if derr != nil {
		return store.SendResult{}, derr
	}
	s.unlockChat(ctx, l, 0, 0)
	*released = true
	if dup {
		return res, nil
	}
	return store.SendResult{}, err
}

// groupSendAllowed checks, under the lock, that req's sender is in the
// group and passes the caller's Check.
func (s *Store) groupSendAllowed(l *chatLock, req *store.SendRequest) error {
	m := &req.Message
	if l.group == nil || !slices.Contains(l.members, m.From) {
		return fmt.Errorf("%s is not in group %s: %w", m.From, m.ChatID, store.ErrNotMember)
	}
	if req.Check != nil {
		g := cloneGroup(l.group)
		if err := req.Check(&g); err != nil {
			return &callerError{err}
		}
	}
	return nil
}

// duplicate looks up the request's idempotency key: a resend is answered
// with the first message, which is completed first if it is in the log
// above the committed seq (its attempt stopped halfway, and nobody
// completed it yet: answering sent now would leave it in no inbox).
func (s *Store) duplicate(ctx context.Context, l *chatLock, p *sendPlan) (store.SendResult, bool, error) {
	var first msgDoc
	err := s.messages.FindOne(ctx, bson.D{{Key: "dev", Value: p.req.Message.FromDevice}, {Key: "key", Value: p.key}},
		options.FindOne().SetProjection(msgProjection)).Decode(&first)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.SendResult{}, false, nil
	}
	if err != nil {
		return store.SendResult{}, false, err
	}
	if first.Msg.ChatID == l.chatID && first.Msg.Seq > l.seq {
		ds, err := s.rollForward(ctx, l)
		p.completed = append(p.completed, ds...)
		if err != nil {
			return store.SendResult{}, false, err
		}
	}
	return store.SendResult{Message: *first.Msg.message(), Duplicate: true}, true, nil
}

// rollForward completes the sends and group writes that a previous holder
// of the lock left in the log above the chat's seq. A message goes to every
// member's devices but the writing one (not to the user it is hidden from,
// and an action's entry in a group only to the members who can see its
// target, as the send does), an action's effect is applied again (and a
// timer committed, as TimerChange says); a group change to every device of
// every member before or after it, and its state is committed with its
// seq, its new members' records written before and the removed ones'
// deleted after (as WriteGroup does). Devices that got the event before
// the holder stopped get it twice; the client deduplicates by message id.
func (s *Store) rollForward(ctx context.Context, l *chatLock) ([]store.Delivery, error) {
	var out []store.Delivery
	for {
		var d msgDoc
		err := s.messages.FindOne(ctx, bson.D{{Key: "_id", Value: numKey(l.chatID, l.seq+1)}}).Decode(&d)
		if errors.Is(err, mongo.ErrNoDocuments) {
			return out, nil
		}
		if err != nil {
			return out, err
		}
		m := d.Msg.message()
		st := d.Group
		act := d.Action.action()
		users := l.members
		if st != nil {
			users = union(l.members, st.Members)
		}
		var (
			target *store.Message // an action's, as committed
			tErr   error
		)
		if act != nil && act.Kind != store.ActionDisappearing {
			t, err := s.target(ctx, l, act.Target)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return out, err
			}
			if err == nil {
				target = &t
			}
			tErr = err
		}
		if l.group != nil && m.Kind == store.KindAction && (act == nil || act.Kind != store.ActionDisappearing) {
			// Only to the members who can see the target, as the send.
			// Without it (the entry lost its action with its text, to
			// an expiry or an erasure, and log entries are never
			// deleted, so that is the only way) it goes to nobody: who
			// could see the target cannot be told.
			users = nil
			if target != nil {
				users = seeing(l.group, target.Seq)
			}
		}
		if m.HiddenFrom != "" {
			// Nowhere for the user it is hidden from, as the send left
			// that user's devices out.
			users = minus(users, []string{m.HiddenFrom})
		}
		var hs []head
		if len(users) > 0 {
			if hs, err = s.heads(ctx, bson.D{{Key: "user", Value: bson.D{{Key: "$in", Value: users}}}}); err != nil {
				return out, err
			}
		}
		skip := ""
		if st == nil {
			skip = m.FromDevice
		}
		outs := logOuts(hs, m, entryEvent(m), skip)
		var joined []string
		var ds []store.Delivery
		fns := []func() error{func() (err error) {
			ds, err = s.appendFeed(ctx, hs, outs)
			return err
		}}
		if st != nil {
			joined = minus(st.Members, l.members)
			fns = append(fns, func() error { return s.joinRecords(ctx, l.chatID, joined, m.Seq) })
		}
		if act != nil && act.Kind != store.ActionDisappearing {
			fns = append(fns, func() error { return s.reapply(ctx, m, act, target, tErr) })
		}
		err = parallel(fns...)
		// Returned even when a later step fails: they are in the
		// inboxes, and whoever holds their devices must hear of them.
		out = append(out, ds...)
		if err != nil {
			return out, err
		}
		// Commit it now, so that whoever holds the lock next does not
		// deliver it again, to the wrong devices.
		set := append(append(bson.D{{Key: "seq", Value: m.Seq}}, st.fields()...), timerFields(m, act)...)
		res, err := s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: l.chatID}, {Key: "lock.t", Value: l.token}},
			bson.D{{Key: "$set", Value: set},
				{Key: "$max", Value: bson.D{{Key: "last_ts", Value: m.TS}}}})
		if err != nil {
			return out, err
		}
		if res.MatchedCount == 0 {
			return out, errLockLost
		}
		if st != nil {
			left := minus(l.members, st.Members)
			l.members, l.group = st.Members, st.group(l.group)
			s.afterGroupCommit(ctx, l.chatID, left, m.Seq)
		}
		if n, ok := store.TimerChange(m, act); ok {
			l.dis = n
		}
		l.seq = m.Seq
		s.log.Warn("store/mongo: completed a send left unfinished by another node",
			"chat", l.chatID, "seq", m.Seq, "msg_id", m.ID, "users", len(outs), "group_change", st != nil)
	}
}

// entryEvent is the event of log entry m: a message, or a group change.
func entryEvent(m *store.Message) store.Event {
	if m.Kind == store.EventGroup {
		return store.Event{Kind: store.EventGroup, Message: m}
	}
	return store.Event{Kind: store.EventMessage, Message: m}
}

// Inbox, Ack and the feed writes are in feed.go and ack.go.

// MarkRead implements store.Messages. ErrNotFound if the chat does not
// exist or userID is not in it.
func (s *Store) MarkRead(ctx context.Context, userID, chatID string, seq, ts int64, notify bool) ([]store.Delivery, error) {
	if !validID(userID) || !validID(chatID) {
		return nil, fmt.Errorf("mark read: %w", store.ErrNotFound)
	}
	var (
		c   chatDoc
		mem memberDoc
	)
	err := parallel(
		func() error {
			// Filtered on the member rather than reading the members: a
			// group's list is long, and a record of a member who left
			// may outlive the removal (see groups.go).
			return s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: chatID}, {Key: "members", Value: userID}},
				options.FindOne().SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&c)
		},
		func() error {
			return s.members.FindOne(ctx, bson.D{{Key: "_id", Value: pairKey(userID, chatID)}}).Decode(&mem)
		})
	if err != nil {
		return nil, fmt.Errorf("mark read %s in %s: %w", userID, chatID, notFound(err))
	}
	seq = min(seq, c.Seq)
	out := s.replayReads(ctx, userID, chatID, mem)
	// Compare and set, so that of concurrent reads exactly one moves the
	// mark over each message and sends its receipt. With notify it notes
	// the range it moved over in the member record until the receipts are
	// stored: a node that dies in between leaves the note, and a later
	// read finishes the job (replayReads).
	key := fmt.Sprintf("%s.s%d", fieldPendingReads, seq)
	for {
		if seq <= mem.Read {
			return out, nil
		}
		set := bson.D{{Key: "read", Value: seq}}
		if notify {
			set = append(set, bson.E{Key: key, Value: pendingRead{From: mem.Read, To: seq, TS: ts, At: s.readClock()}})
		}
		res, err := s.members.UpdateOne(ctx, bson.D{{Key: "_id", Value: mem.ID}, {Key: "read", Value: mem.Read}},
			bson.D{{Key: "$set", Value: set}})
		if err != nil {
			return nil, fmt.Errorf("mark read %s in %s: %w", userID, chatID, err)
		}
		if res.MatchedCount == 1 {
			break
		}
		if err := s.members.FindOne(ctx, bson.D{{Key: "_id", Value: mem.ID}}).Decode(&mem); err != nil {
			return nil, fmt.Errorf("mark read %s in %s: %w", userID, chatID, notFound(err))
		}
	}
	if !notify {
		return out, nil
	}
	more, err := s.readReceipts(ctx, userID, chatID, pendingRead{From: mem.Read, To: seq, TS: ts}, key)
	if err != nil {
		return nil, fmt.Errorf("mark read %s in %s: %w", userID, chatID, err)
	}
	return append(out, more...), nil
}

// fieldPendingReads is the member record's map of read ranges whose
// receipts may not be stored yet, keyed "s<seq>".
const fieldPendingReads = "rp"

// pendingRead is a range of a chat that a read moved over: (From, To].
type pendingRead struct {
	From int64 `bson:"f"`
	To   int64 `bson:"t"`
	TS   int64 `bson:"ts"` // the read's time, for the receipts
	At   int64 `bson:"at"` // when it was noted, on the noting node's clock
}

// replayReads sends the read receipts of the ranges noted in mem that are
// older than the lock timeout: their node died before storing them (a
// slower one would be a duplicate, which clients take as the same tick).
func (s *Store) replayReads(ctx context.Context, userID, chatID string, mem memberDoc) []store.Delivery {
	var out []store.Delivery
	now := s.readClock()
	for k, p := range mem.Pending {
		if now-p.At < s.lockTimeout.Milliseconds() {
			continue
		}
		s.log.Info("sending read receipts a read left behind", "user", userID, "chat", chatID, "from", p.From, "to", p.To)
		more, err := s.readReceipts(ctx, userID, chatID, p, fieldPendingReads+"."+k)
		if err != nil {
			// The note stays for a later read; this read goes on.
			s.log.Warn("read receipts left behind: still not sent", "user", userID, "chat", chatID, "err", err)
			continue
		}
		out = append(out, more...)
	}
	return out
}

// readReceipts sends userID's read receipts for the messages of others in
// the range p of chatID, then drops the note at key.
func (s *Store) readReceipts(ctx context.Context, userID, chatID string, p pendingRead, key string) ([]store.Delivery, error) {
	var msgs []struct {
		ID     string `bson:"id"`
		From   string `bson:"from"`
		Kind   string `bson:"kind"`
		Hidden string `bson:"hidden"`
	}
	cur, err := s.messages.Find(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: numKey(chatID, p.From)}, {Key: "$lte", Value: numKey(chatID, p.To)}}}},
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetProjection(bson.D{{Key: "id", Value: 1}, {Key: "from", Value: 1}, {Key: "kind", Value: 1}, {Key: "hidden", Value: 1}}))
	if err == nil {
		err = cur.All(ctx, &msgs)
	}
	if err != nil {
		return nil, err
	}
	var g groups
	for _, m := range msgs {
		// Group changes and message actions get no receipts, nor
		// messages hidden from the reader by its block.
		if m.From != userID && m.Kind == "" && m.Hidden != userID {
			g.add(chatID, m.From, m.ID)
		}
	}
	// The move is recorded with the receipts and under the same note: a
	// read that stops before dropping the note records it again when
	// replayed, with the read's own time.
	var out []store.Delivery
	err = parallel(
		func() (err error) {
			out, err = s.sendReceipts(ctx, &g, store.StatusRead, userID, p.TS)
			return err
		},
		func() error {
			return s.recordMarks(ctx, []markMove{{Chat: chatID, User: userID, Kind: markRead, Seq: p.To, TS: p.TS}})
		})
	if err != nil {
		return nil, err
	}
	if s.stopAt(readStepReceipts) {
		return nil, errStopped
	}
	_, err = s.members.UpdateOne(ctx, bson.D{{Key: "_id", Value: pairKey(userID, chatID)}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: key, Value: ""}}}})
	if err != nil {
		return nil, err
	}
	return out, nil
}

// Chat implements store.Messages.
func (s *Store) Chat(ctx context.Context, chatID string) (store.Chat, error) {
	var c chatDoc
	err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: chatID}}, options.FindOne().SetProjection(chatProjection)).Decode(&c)
	if err != nil {
		return store.Chat{}, fmt.Errorf("chat %s: %w", chatID, notFound(err))
	}
	return c.chat(), nil
}

// Chats implements store.Messages: the user's chats, most recent activity
// (last message, or creation for a chat without one) first.
func (s *Store) Chats(ctx context.Context, userID string) ([]store.ChatSummary, error) {
	if !validID(userID) {
		return nil, nil
	}
	sums, err := s.summaries(ctx, userID)
	if err != nil {
		return nil, fmt.Errorf("chats of %s: %w", userID, err)
	}
	return sums, nil
}

func (s *Store) summaries(ctx context.Context, userID string) ([]store.ChatSummary, error) {
	var mems []memberDoc
	cur, err := s.members.Find(ctx, idRange(userID))
	if err == nil {
		err = cur.All(ctx, &mems)
	}
	if err != nil || len(mems) == 0 {
		return nil, err
	}
	readSeq := make(map[string]int64, len(mems))
	ids := make([]string, len(mems))
	for i, m := range mems {
		ids[i] = m.ID[len(userID)+1:]
		readSeq[ids[i]] = m.Read
	}
	var chats []chatDoc
	cur, err = s.chats.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}, {Key: "members", Value: userID}},
		options.Find().SetProjection(chatProjection))
	if err == nil {
		err = cur.All(ctx, &chats)
	}
	if err != nil {
		return nil, err
	}
	// A membership record without the chat listing the user is left from
	// a creation that lost a race or stopped halfway, or from a group the
	// user left: skip it (the filter does; this says why).
	chats = slices.DeleteFunc(chats, func(c chatDoc) bool { return !slices.Contains(c.Members, userID) })

	sums := make([]store.ChatSummary, len(chats))
	var lastKeys []string
	for i := range chats {
		sums[i] = store.ChatSummary{Chat: chats[i].chat(), ReadSeq: readSeq[chats[i].ID]}
		if chats[i].Seq > 0 {
			lastKeys = append(lastKeys, numKey(chats[i].ID, chats[i].Seq))
		}
	}
	fns := []func() error{func() error {
		if len(lastKeys) == 0 {
			return nil
		}
		var last []msgDoc
		cur, err := s.messages.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: lastKeys}}}},
			options.Find().SetProjection(msgProjection))
		if err == nil {
			err = cur.All(ctx, &last)
		}
		for i := range last {
			m := last[i].Msg.message()
			for j := range sums {
				if sums[j].Chat.ID == m.ChatID {
					sums[j].Last = m
				}
			}
		}
		return err
	}}
	for i := range sums {
		c := &sums[i]
		if c.Chat.LastSeq <= c.ReadSeq {
			continue
		}
		fns = append(fns, func() error {
			n, err := s.messages.CountDocuments(ctx, bson.D{
				{Key: "_id", Value: bson.D{{Key: "$gt", Value: numKey(c.Chat.ID, c.ReadSeq)}, {Key: "$lte", Value: numKey(c.Chat.ID, c.Chat.LastSeq)}}},
				{Key: "from", Value: bson.D{{Key: "$ne", Value: userID}}},
				// The entries of group changes and message actions are not
				// messages, and messages hidden from the user by its block
				// do not count.
				{Key: "kind", Value: bson.D{{Key: "$nin", Value: bson.A{store.EventGroup, store.KindAction}}}},
				{Key: "hidden", Value: bson.D{{Key: "$ne", Value: userID}}},
			})
			c.Unread = n
			return err
		})
	}
	if err := parallelN(8, fns); err != nil {
		return nil, err
	}
	activity := func(c *store.ChatSummary, i int) int64 {
		if c.Last != nil {
			return chats[i].LastTS
		}
		return c.Chat.CreatedAt.UnixMilli()
	}
	order := make([]int, len(sums))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int {
		if c := cmp.Compare(activity(&sums[b], b), activity(&sums[a], a)); c != 0 {
			return c
		}
		return cmp.Compare(sums[a].Chat.ID, sums[b].Chat.ID)
	})
	out := make([]store.ChatSummary, len(sums))
	for i, j := range order {
		out[i] = sums[j]
	}
	return out, nil
}

// Message implements store.Messages: a point lookup on the unique {id}
// index, then the chat's committed seq.
func (s *Store) Message(ctx context.Context, chatID, msgID string) (store.Message, error) {
	if !validID(chatID) || msgID == "" {
		return store.Message{}, fmt.Errorf("message %s: %w", msgID, store.ErrNotFound)
	}
	var (
		d msgDoc
		c chatDoc
	)
	err := parallel(
		func() error {
			return s.messages.FindOne(ctx, bson.D{{Key: "id", Value: msgID}}, options.FindOne().SetProjection(msgProjection)).Decode(&d)
		},
		func() error {
			return s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: chatID}},
				options.FindOne().SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&c)
		})
	if err == nil && (d.Msg.ChatID != chatID || d.Msg.Seq > c.Seq) {
		err = store.ErrNotFound
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("message %s in %s: %w", msgID, chatID, notFound(err))
	}
	return *d.Msg.message(), nil
}

// History implements store.Messages. limit <= 0 means no limit. Only
// committed messages (seq up to the chat's) are returned.
func (s *Store) History(ctx context.Context, chatID string, before int64, limit int) ([]store.Message, error) {
	if !validID(chatID) {
		return nil, fmt.Errorf("history: %w", store.ErrNotFound)
	}
	var c chatDoc
	err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: chatID}}, options.FindOne().SetProjection(bson.D{{Key: "seq", Value: 1}})).Decode(&c)
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", chatID, notFound(err))
	}
	upper := c.Seq
	if before > 0 {
		upper = min(upper, before-1)
	}
	if upper < 1 {
		return nil, nil
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetProjection(msgProjection)
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	var docs []msgDoc
	cur, err := s.messages.Find(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: rangeStart(chatID)}, {Key: "$lte", Value: numKey(chatID, upper)}}}}, opts)
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("history of %s: %w", chatID, err)
	}
	out := make([]store.Message, len(docs))
	for i := range docs {
		out[i] = *docs[i].Msg.message()
	}
	return out, nil
}

// parallelN is parallel with at most n calls in flight.
func parallelN(n int, fns []func() error) error {
	sem := make(chan struct{}, n)
	wrapped := make([]func() error, len(fns))
	for i, f := range fns {
		wrapped[i] = func() error {
			sem <- struct{}{}
			defer func() { <-sem }()
			return f()
		}
	}
	if len(wrapped) == 0 {
		return nil
	}
	return parallel(wrapped...)
}
