package mongo

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// The chat lock. A send holds its chat from reading the chat's seq until
// its events are in the inboxes and the new seq is committed, so that the
// sends of one chat reach every inbox in seq order. The lock is a field of
// the chat document, {lock: {t: token}}, taken with one conditional
// findOneAndUpdate and dropped with one conditional update: no transaction,
// no TTL index, no clock shared between nodes.
//
// A holder that dies leaves the lock set. A waiter that has seen the same
// token for lockTimeout by its own clock (or sees it marked dead) takes the
// lock over with a findOneAndUpdate on that token, so of several waiters
// one wins, and then completes the dead holder's send if its message is in
// the log (rollForward).

// lockDoc is the lock field of a chat. Dead marks a holder that gave up
// after its message was in the log: waiters take over at once.
type lockDoc struct {
	T    string `bson:"t"`
	Dead bool   `bson:"dead,omitempty"`
}

// chatLock is a held chat lock.
type chatLock struct {
	chatID   string
	token    string
	seq      int64    // the chat's committed seq
	members  []string // the chat's members, as of seq
	takeover bool     // taken from another holder
	// group is the group as of seq, for a group chat: what Apply and
	// Check run against. rollForward keeps it and members current.
	group *store.Group
	// dis is the chat's disappearing timer as of seq, in seconds: the
	// next entry's expiry is computed from it (rollForward keeps it
	// current too).
	dis int64
}

// newChatLock is the lock token now holds on c, as c was read.
func newChatLock(c *chatDoc, token string, takeover bool) *chatLock {
	l := &chatLock{chatID: c.ID, token: token, seq: c.Seq, members: c.Members, takeover: takeover, dis: c.Dis}
	if c.Kind == store.KindGroup {
		l.group = c.group()
	}
	return l
}

var lockProjection = bson.D{{Key: "kind", Value: 1}, {Key: "seq", Value: 1}, {Key: "members", Value: 1}, {Key: "lock", Value: 1}}

const maxLockWait = 50 * time.Millisecond

// lockReq says which chat to lock, for whom.
type lockReq struct {
	chatID, from string
	// group locks a group whoever from is: the caller checks membership
	// under the lock (a resend of a removed member is still answered as
	// a duplicate). Otherwise from must be a member (ErrNotFound).
	group bool
	// create makes the chat, locked by token, when it does not exist;
	// nil: ErrNotFound.
	create func(ctx context.Context, token string) (*chatLock, error)
}

// lockChat takes the lock of a chat.
func (s *Store) lockChat(ctx context.Context, r lockReq) (*chatLock, error) {
	token := newToken()
	newLock := bson.D{{Key: "$set", Value: bson.D{{Key: "lock", Value: lockDoc{T: token}}}}}
	filter := bson.D{{Key: "_id", Value: r.chatID}}
	if r.group {
		filter = append(filter, bson.E{Key: "kind", Value: store.KindGroup})
	} else {
		filter = append(filter, bson.E{Key: "members", Value: r.from})
	}
	filter = append(filter, bson.E{Key: "lock", Value: bson.D{{Key: "$exists", Value: false}}})
	var (
		seen  string    // the token of the holder we wait for
		since time.Time // since when we have seen it
		wait  = time.Millisecond
	)
	for {
		var c chatDoc
		err := s.chats.FindOneAndUpdate(ctx, filter, newLock).Decode(&c)
		if err == nil {
			return newChatLock(&c, token, false), nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			// The update may have been applied before the error came.
			s.dropToken(ctx, r.chatID, token)
			return nil, err
		}
		// Missing, not a member, or locked?
		err = s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: r.chatID}}, options.FindOne().SetProjection(lockProjection)).Decode(&c)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments) && r.create != nil:
			l, err := r.create(ctx, token)
			if err == nil || !mongo.IsDuplicateKeyError(err) {
				return l, err
			}
			continue // created by another sender meanwhile
		case errors.Is(err, mongo.ErrNoDocuments):
			return nil, fmt.Errorf("no chat %s: %w", r.chatID, store.ErrNotFound)
		case err != nil:
			return nil, err
		case r.group && c.Kind != store.KindGroup:
			return nil, fmt.Errorf("%s is not a group: %w", r.chatID, store.ErrNotFound)
		case !r.group && !slices.Contains(c.Members, r.from):
			return nil, fmt.Errorf("%s is not in chat %s: %w", r.from, r.chatID, store.ErrNotFound)
		case c.Lock == nil:
			continue // unlocked meanwhile
		}
		if c.Lock.T != seen {
			seen, since = c.Lock.T, time.Now()
		}
		if c.Lock.Dead || time.Since(since) >= s.lockTimeout {
			err := s.chats.FindOneAndUpdate(ctx,
				bson.D{{Key: "_id", Value: r.chatID}, {Key: "lock.t", Value: seen}},
				newLock).Decode(&c)
			if err == nil {
				s.log.Warn("store/mongo: took over a chat lock", "chat", r.chatID,
					"held_for_at_least", time.Since(since).Round(time.Millisecond), "dead", c.Lock != nil && c.Lock.Dead)
				return newChatLock(&c, token, true), nil
			}
			if !errors.Is(err, mongo.ErrNoDocuments) {
				s.dropToken(ctx, r.chatID, token)
				return nil, err
			}
			continue
		}
		// Full jitter, so that the nodes waiting for one chat spread out.
		if err := sleep(ctx, time.Duration(rand.Int64N(int64(wait)))+time.Millisecond/4); err != nil {
			return nil, err
		}
		wait = min(2*wait, maxLockWait)
	}
}

// createChat creates the request's chat, locked by token. The membership
// records go first: if this stops halfway, or another sender creates the
// chat first, they point at a chat that does not exist or does not list
// them, and readers skip such records.
func (s *Store) createChat(ctx context.Context, p *sendPlan, token string) (*chatLock, error) {
	if p.newChatErr != nil {
		return nil, p.newChatErr
	}
	m := &p.req.Message
	docs := make([]any, len(p.members))
	for i, u := range p.members {
		docs[i] = memberDoc{ID: pairKey(u, m.ChatID)}
	}
	if _, err := s.members.InsertMany(ctx, docs, options.InsertMany().SetOrdered(false)); err != nil && !onlyDuplicates(err) {
		return nil, err
	}
	c := chatDoc{ID: m.ChatID, Kind: p.req.Kind, Members: p.members,
		Created: time.UnixMilli(m.TS).UTC(), Lock: &lockDoc{T: token}}
	if _, err := s.chats.InsertOne(ctx, &c); err != nil {
		return nil, err
	}
	return &chatLock{chatID: m.ChatID, token: token, members: p.members}, nil
}

// onlyDuplicates reports whether err is a bulk write error made only of
// duplicate keys.
func onlyDuplicates(err error) bool {
	var bwe mongo.BulkWriteException
	if !errors.As(err, &bwe) || bwe.WriteConcernError != nil {
		return false
	}
	for _, we := range bwe.WriteErrors {
		if !mongo.IsDuplicateKeyError(we.WriteError) {
			return false
		}
	}
	return true
}

// unlockChat drops the lock, committing seq (and the time of its message,
// ts) if it is above the lock's. It
// runs even when ctx has ended: a lock left behind stalls the chat for
// lockTimeout. Failing, it only logs: the next holder takes over.
func (s *Store) unlockChat(ctx context.Context, l *chatLock, seq, ts int64) {
	s.commitUnlock(ctx, l, seq, ts, nil)
}

// commitUnlock is unlockChat that also sets the fields set (what the
// entry at seq changes in the chat: a group's state, the disappearing
// timer) in the same write, and reports whether it did.
func (s *Store) commitUnlock(ctx context.Context, l *chatLock, seq, ts int64, set bson.D) bool {
	ctx, cancel := s.detached(ctx)
	defer cancel()
	update := bson.D{{Key: "$unset", Value: bson.D{{Key: "lock", Value: ""}}}}
	if seq > l.seq {
		update = append(update,
			bson.E{Key: "$set", Value: append(bson.D{{Key: "seq", Value: seq}}, set...)},
			bson.E{Key: "$max", Value: bson.D{{Key: "last_ts", Value: ts}}})
	}
	res, err := s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: l.chatID}, {Key: "lock.t", Value: l.token}}, update)
	switch {
	case err != nil:
		s.log.Error("store/mongo: unlock chat", "chat", l.chatID, "err", err)
		return false
	case res.MatchedCount == 0:
		// Taken over while held: the taker found this send's message in
		// the log and committed it, or found none.
		s.log.Warn("store/mongo: chat lock was taken over while held", "chat", l.chatID, "seq", seq)
		return false
	}
	return true
}

// markDead tells waiters that the holder gave up with its message in the
// log, so that the next one completes it now rather than after lockTimeout.
func (s *Store) markDead(ctx context.Context, l *chatLock) {
	ctx, cancel := s.detached(ctx)
	defer cancel()
	_, err := s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: l.chatID}, {Key: "lock.t", Value: l.token}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "lock.dead", Value: true}}}})
	if err != nil {
		s.log.Error("store/mongo: mark chat lock dead", "chat", l.chatID, "err", err)
	}
}

// dropToken removes a lock that may or may not have been taken.
func (s *Store) dropToken(ctx context.Context, chatID, token string) {
	ctx, cancel := s.detached(ctx)
	defer cancel()
	_, _ = s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: chatID}, {Key: "lock.t", Value: token}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: "lock", Value: ""}}}})
}
