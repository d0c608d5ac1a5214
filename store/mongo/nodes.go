package mongo

import (
	"context"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// collNodes holds one document per node, _id the node id: what the node
// last reported about itself. A handful of small documents, read whole.
const collNodes = "nodes"

type nodeDoc struct {
	ID   string    `bson:"_id"`
	At   time.Time `bson:"at"`
	Body []byte    `bson:"body"`
}

// PutNodeReport implements store.NodeReports.
func (s *Store) PutNodeReport(ctx context.Context, r store.NodeReport) error {
	if r.NodeID == "" {
		return fmt.Errorf("put node report: %w", errInvalid("node id"))
	}
	_, err := s.nodes.ReplaceOne(ctx, bson.D{{Key: "_id", Value: r.NodeID}},
		nodeDoc{ID: r.NodeID, At: r.At, Body: r.Body}, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("put node report %s: %w", r.NodeID, err)
	}
	return nil
}

// NodeReports implements store.NodeReports.
func (s *Store) NodeReports(ctx context.Context) ([]store.NodeReport, error) {
	cur, err := s.nodes.Find(ctx, bson.D{}, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
	var docs []nodeDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("node reports: %w", err)
	}
	out := make([]store.NodeReport, len(docs))
	for i, d := range docs {
		out[i] = store.NodeReport{NodeID: d.ID, At: d.At.UTC(), Body: d.Body}
	}
	return out, nil
}

// DeleteNodeReport implements store.NodeReports.
func (s *Store) DeleteNodeReport(ctx context.Context, nodeID string) error {
	if _, err := s.nodes.DeleteOne(ctx, bson.D{{Key: "_id", Value: nodeID}}); err != nil {
		return fmt.Errorf("delete node report %s: %w", nodeID, err)
	}
	return nil
}
