package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// collHidden holds messages deleted for one user: _id "<user>/<chat>/<seq>"
// (the seq padded, so that a chat's range of them is a range of _id).
// collStars holds stars the same way, with user, chat, seq, msg and ts.
const (
	collHidden = "hidden"
	collStars  = "stars"
)

func userChatKey(userID, chatID string, seq int64) string {
	return numKey(userID+"/"+chatID, seq)
}

type starDoc struct {
	ID    string `bson:"_id"`
	User  string `bson:"user"`
	Chat  string `bson:"chat"`
	Seq   int64  `bson:"seq"`
	MsgID string `bson:"msg"`
	TS    int64  `bson:"ts"`
}

// HideMessage implements store.UserMarks.
func (s *Store) HideMessage(ctx context.Context, userID, chatID string, seq int64) error {
	if !validID(userID) || !validID(chatID) || seq <= 0 {
		return fmt.Errorf("hide message: %w", errInvalid("user, chat or seq"))
	}
	id := userChatKey(userID, chatID, seq)
	_, err := s.hidden.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
		bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "seq", Value: seq}}}}, options.UpdateOne().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("hide message %d of %s for %s: %w", seq, chatID, userID, err)
	}
	return nil
}

// HiddenSeqs implements store.UserMarks.
func (s *Store) HiddenSeqs(ctx context.Context, userID, chatID string, from, to int64) (map[int64]bool, error) {
	out := map[int64]bool{}
	if !validID(userID) || !validID(chatID) || to < from {
		return out, nil
	}
	cur, err := s.hidden.Find(ctx, bson.D{{Key: "_id", Value: bson.D{
		{Key: "$gte", Value: userChatKey(userID, chatID, max(from, 0))},
		{Key: "$lte", Value: userChatKey(userID, chatID, to)}}}})
	var docs []struct {
		Seq int64 `bson:"seq"`
	}
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("hidden messages of %s in %s: %w", userID, chatID, err)
	}
	for _, d := range docs {
		out[d.Seq] = true
	}
	return out, nil
}

// SetStar implements store.UserMarks.
func (s *Store) SetStar(ctx context.Context, userID string, st store.Star, on bool) error {
	if !validID(userID) || !validID(st.ChatID) || st.Seq <= 0 {
		return fmt.Errorf("star: %w", errInvalid("user, chat or seq"))
	}
	id := userChatKey(userID, st.ChatID, st.Seq)
	var err error
	if on {
		_, err = s.stars.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
			bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "user", Value: userID}, {Key: "chat", Value: st.ChatID},
				{Key: "seq", Value: st.Seq}, {Key: "msg", Value: st.MsgID}, {Key: "ts", Value: st.TS}}}},
			options.UpdateOne().SetUpsert(true))
	} else {
		_, err = s.stars.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
	}
	if err != nil {
		return fmt.Errorf("star %d of %s for %s: %w", st.Seq, st.ChatID, userID, err)
	}
	return nil
}

// Starred implements store.UserMarks.
func (s *Store) Starred(ctx context.Context, userID string, limit int) ([]store.Star, error) {
	if !validID(userID) {
		return nil, nil
	}
	opts := options.Find().SetSort(bson.D{{Key: "ts", Value: -1}, {Key: "seq", Value: -1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.stars.Find(ctx, bson.D{{Key: "user", Value: userID}}, opts)
	var docs []starDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("stars of %s: %w", userID, err)
	}
	out := make([]store.Star, 0, len(docs))
	for _, d := range docs {
		out = append(out, store.Star{ChatID: d.Chat, Seq: d.Seq, MsgID: d.MsgID, TS: d.TS})
	}
	return out, nil
}
