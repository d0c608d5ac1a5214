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
	members  []string // the chat's members
	takeover bool     // taken from another holder
}

var lockProjection = bson.D{{Key: "seq", Value: 1}, {Key: "members", Value: 1}, {Key: "lock", Value: 1}}

const maxLockWait = 50 * time.Millisecond

// lockChat takes the lock of the request's chat, creating the chat if it
// does not exist. The sender must be a member (ErrNotFound otherwise).
func (s *Store) lockChat(ctx context.Context, p *sendPlan) (*chatLock, error) {
	m := &p.req.Message
	token := newToken()
	newLock := bson.D{{Key: "$set", Value: bson.D{{Key: "lock", Value: lockDoc{T: token}}}}}
	var (
		seen  string    // the token of the holder we wait for
		since time.Time // since when we have seen it
		wait  = time.Millisecond
	)
	for {
		var c chatDoc
		err := s.chats.FindOneAndUpdate(ctx,
			bson.D{{Key: "_id", Value: m.ChatID}, {Key: "members", Value: m.From}, {Key: "lock", Value: bson.D{{Key: "$exists", Value: false}}}},
			newLock).Decode(&c)
		if err == nil {
			return &chatLock{chatID: m.ChatID, token: token, seq: c.Seq, members: c.Members}, nil
		}
		if !errors.Is(err, mongo.ErrNoDocuments) {
			// The update may have been applied before the error came.
			s.dropToken(ctx, m.ChatID, token)
			return nil, err
		}
		// Missing, not a member, or locked?
		err = s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: m.ChatID}}, options.FindOne().SetProjection(lockProjection)).Decode(&c)
		switch {
		case errors.Is(err, mongo.ErrNoDocuments):
			l, err := s.createChat(ctx, p, token)
			if err == nil || !mongo.IsDuplicateKeyError(err) {
				return l, err
			}
			continue // created by another sender meanwhile
		case err != nil:
			return nil, err
		case !slices.Contains(c.Members, m.From):
			return nil, fmt.Errorf("%s is not in chat %s: %w", m.From, m.ChatID, store.ErrNotFound)
		case c.Lock == nil:
			continue // unlocked meanwhile
		}
		if c.Lock.T != seen {
			seen, since = c.Lock.T, time.Now()
		}
		if c.Lock.Dead || time.Since(since) >= s.lockTimeout {
			err := s.chats.FindOneAndUpdate(ctx,
				bson.D{{Key: "_id", Value: m.ChatID}, {Key: "lock.t", Value: seen}},
				newLock).Decode(&c)
			if err == nil {
				s.log.Warn("store/mongo: took over a chat lock", "chat", m.ChatID,
					"held_for_at_least", time.Since(since).Round(time.Millisecond), "dead", c.Lock != nil && c.Lock.Dead)
				return &chatLock{chatID: m.ChatID, token: token, seq: c.Seq, members: c.Members, takeover: true}, nil
			}
			if !errors.Is(err, mongo.ErrNoDocuments) {
				s.dropToken(ctx, m.ChatID, token)
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
	ctx, cancel := s.detached(ctx)
	defer cancel()
	update := bson.D{{Key: "$unset", Value: bson.D{{Key: "lock", Value: ""}}}}
	if seq > l.seq {
		update = append(update,
			bson.E{Key: "$set", Value: bson.D{{Key: "seq", Value: seq}}},
			bson.E{Key: "$max", Value: bson.D{{Key: "last_ts", Value: ts}}})
	}
	res, err := s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: l.chatID}, {Key: "lock.t", Value: l.token}}, update)
	switch {
	case err != nil:
		s.log.Error("store/mongo: unlock chat", "chat", l.chatID, "err", err)
	case res.MatchedCount == 0:
		// Taken over while held: the taker found this send's message in
		// the log and committed it, or found none.
		s.log.Warn("store/mongo: chat lock was taken over while held", "chat", l.chatID, "seq", seq)
	}
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
