package mongo

import (
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// collBlocks holds who blocks whom: _id "<user>/<target>", ts. The _id
// index answers both a point lookup (Blocked, on every direct send) and a
// user's list (a range of _id: ids have no '/').
const collBlocks = "blocks"

type blockDoc struct {
	ID string `bson:"_id"`
	TS int64  `bson:"ts"`
}

// SetBlock implements store.Blocks.
func (s *Store) SetBlock(ctx context.Context, userID, target string, on bool, ts int64) error {
	if !validID(userID) || !validID(target) {
		return fmt.Errorf("block: %w", errInvalid("user id"))
	}
	n, err := s.users.CountDocuments(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: []string{userID, target}}}}})
	if err == nil && n != int64(len(store.Unique([]string{userID, target}))) {
		err = store.ErrNotFound
	}
	if err == nil {
		id := userID + "/" + target
		if on {
			// Blocking again keeps the first time.
			_, err = s.blocks.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
				bson.D{{Key: "$setOnInsert", Value: bson.D{{Key: "ts", Value: ts}}}}, options.UpdateOne().SetUpsert(true))
		} else {
			_, err = s.blocks.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
		}
	}
	if err != nil {
		return fmt.Errorf("block %s for %s: %w", target, userID, err)
	}
	return nil
}

// Blocks implements store.Blocks.
func (s *Store) Blocks(ctx context.Context, userID string) ([]store.Block, error) {
	if !validID(userID) {
		return nil, nil
	}
	// '0' follows '/' in byte order: the range is every "<user>/...".
	cur, err := s.blocks.Find(ctx, bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: userID + "/"}, {Key: "$lt", Value: userID + "0"}}}})
	var docs []blockDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("blocks of %s: %w", userID, err)
	}
	out := make([]store.Block, 0, len(docs))
	for _, d := range docs {
		out = append(out, store.Block{UserID: d.ID[len(userID)+1:], TS: d.TS})
	}
	slices.SortStableFunc(out, func(a, b store.Block) int { return cmp.Compare(a.TS, b.TS) })
	return out, nil
}

// Blocked implements store.Blocks.
func (s *Store) Blocked(ctx context.Context, userID, target string) (bool, error) {
	if !validID(userID) || !validID(target) {
		return false, nil
	}
	err := s.blocks.FindOne(ctx, bson.D{{Key: "_id", Value: userID + "/" + target}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("block of %s by %s: %w", target, userID, err)
	}
	return true, nil
}
