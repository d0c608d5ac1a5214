package mongo

import (
	"context"
	"fmt"
	"regexp"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// defaultGroupList is the page of ListGroups when the caller names none.
const defaultGroupList = 50

// groupIDEnd is the first id above every group id (the prefix's next
// byte): a group's id starts with store.PrefixGroup (newGroup).
var groupIDEnd = string(rune(store.PrefixGroup[0] + 1))

// ListGroups implements store.GroupList: a walk of the chats' _id index
// over the group ids from after, with the name tested by a
// case-insensitive regular expression of the query quoted. No index
// serves the name, so a query that few groups match reads every group
// document: fine for the dashboard, which lists rarely.
func (s *Store) ListGroups(ctx context.Context, query, after string, limit int) ([]store.Group, error) {
	if limit < 1 {
		limit = defaultGroupList
	}
	ids := bson.D{{Key: "$lt", Value: groupIDEnd}}
	if after < store.PrefixGroup {
		ids = append(ids, bson.E{Key: "$gte", Value: store.PrefixGroup})
	} else {
		ids = append(ids, bson.E{Key: "$gt", Value: after})
	}
	filter := bson.D{{Key: "_id", Value: ids}, {Key: "kind", Value: store.KindGroup}}
	if query != "" {
		filter = append(filter, bson.E{Key: "title", Value: bson.D{
			{Key: "$regex", Value: regexp.QuoteMeta(query)}, {Key: "$options", Value: "i"},
		}})
	}
	cur, err := s.chats.Find(ctx, filter, options.Find().
		SetSort(bson.D{{Key: "_id", Value: 1}}).
		SetLimit(int64(limit)).
		SetProjection(bson.D{{Key: "lock", Value: 0}}))
	var docs []chatDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("list groups: %w", err)
	}
	out := make([]store.Group, 0, len(docs))
	for i := range docs {
		out = append(out, *docs[i].group())
	}
	return out, nil
}
