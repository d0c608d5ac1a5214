package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// A reader's delivered and read marks in a chat are single numbers (the
// member record's watermarks), which cannot say when they passed a given
// message. So every move of a mark also leaves a small record in the marks
// collection, keyed by the seq it reached: "when did the mark first reach
// seq S" is then the first record at or above S, one seek on the _id index.
// A move covers every message between the previous mark and its seq, so
// the messages it covers share its time, as they share its receipt.

// collMarks holds the mark moves: _id "<chat>/<user>/<kind>/<seq>", ts.
const collMarks = "marks"

// Kinds of mark moves, in their _id.
const (
	markDelivered = "d"
	markRead      = "r"
)

// markMove is one move of one reader's mark in one chat up to Seq, at TS
// (unix milliseconds, the time its receipts carry).
type markMove struct {
	Chat, User, Kind string
	Seq, TS          int64
}

// markPrefix is the _id prefix of the moves of user's mark of kind in
// chat. Ids never hold '/' (validID), so the prefixes of different
// (chat, user, kind) never overlap.
func markPrefix(chat, user, kind string) string {
	return chat + string(keySep) + user + string(keySep) + kind
}

// recordMarks stores moves. A move may be recorded more than once (an ack
// or read that stopped halfway is finished by a later one, which cannot
// tell whether the first got this far): the upsert keeps the earliest
// time, so a repeat changes nothing.
func (s *Store) recordMarks(ctx context.Context, moves []markMove) error {
	if len(moves) == 0 {
		return nil
	}
	models := make([]mongo.WriteModel, len(moves))
	for i, m := range moves {
		models[i] = mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: numKey(markPrefix(m.Chat, m.User, m.Kind), m.Seq)}}).
			SetUpdate(bson.D{{Key: "$min", Value: bson.D{{Key: "ts", Value: m.TS}}}}).
			SetUpsert(true)
	}
	// Two upserts of one new _id at once can both miss and one of them
	// then fails on the duplicate key (MongoDB retries that itself for an
	// _id filter; FerretDB may not). The record exists then, and the
	// retry applies $min to it.
	var err error
	for range 2 {
		if _, err = s.bulkUpdate(ctx, s.marks, models, nil); err == nil || !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("record mark moves: %w", err)
	}
	return nil
}

// firstMark returns the time of the first recorded move of user's mark of
// kind in chat at or above seq, 0 if there is none.
func (s *Store) firstMark(ctx context.Context, chat, user, kind string, seq int64) (int64, error) {
	p := markPrefix(chat, user, kind)
	var d struct {
		TS int64 `bson:"ts"`
	}
	err := s.marks.FindOne(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gte", Value: numKey(p, seq)}, {Key: "$lt", Value: rangeEnd(p)}}}},
		options.FindOne().SetSort(bson.D{{Key: "_id", Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	return d.TS, err
}

// MessageMarks implements store.Messages: two seeks per user (delivered,
// read), run a few at a time.
func (s *Store) MessageMarks(ctx context.Context, chatID string, seq int64, userIDs []string) ([]store.Marks, error) {
	out := make([]store.Marks, len(userIDs))
	var fns []func() error
	for i, u := range userIDs {
		out[i].UserID = u
		if !validID(chatID) || !validID(u) || seq <= 0 {
			continue
		}
		fns = append(fns,
			func() (err error) {
				out[i].DeliveredTS, err = s.firstMark(ctx, chatID, u, markDelivered, seq)
				return err
			},
			func() (err error) {
				out[i].ReadTS, err = s.firstMark(ctx, chatID, u, markRead, seq)
				return err
			})
	}
	if err := parallelN(8, fns); err != nil {
		return nil, fmt.Errorf("marks of %s at %d: %w", chatID, seq, err)
	}
	return out, nil
}

// forcedMarks returns the delivered moves an ack must record for the
// messages it finishes for an ack that stopped halfway (force): that ack
// may have moved the watermark and died before recording the move. Per
// chat, the move reaches the highest forced seq, unless a record at or
// above it exists already: the mark got there then (recorded by the
// stopped ack itself, or by another device's ack), and a record made now,
// later, at a lower seq would hide it from lookups.
func (s *Store) forcedMarks(ctx context.Context, reader string, msgs []ackMsg, force map[string]bool, now int64) ([]markMove, error) {
	top := map[string]int64{}
	var chats []string
	for _, m := range msgs {
		if !force[m.ID] {
			continue
		}
		if _, ok := top[m.Chat]; !ok {
			chats = append(chats, m.Chat)
		}
		top[m.Chat] = max(top[m.Chat], m.Seq)
	}
	known := make([]bool, len(chats))
	fns := make([]func() error, len(chats))
	for i, c := range chats {
		fns[i] = func() error {
			ts, err := s.firstMark(ctx, c, reader, markDelivered, top[c])
			known[i] = ts != 0
			return err
		}
	}
	if err := parallelN(8, fns); err != nil {
		return nil, err
	}
	var out []markMove
	for i, c := range chats {
		if !known[i] {
			out = append(out, markMove{Chat: c, User: reader, Kind: markDelivered, Seq: top[c], TS: now})
		}
	}
	return out, nil
}
