package mongo

import (
	"context"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// collReports holds reports, one document each; _id is the report id.
// They are listed by time (ids sort by time only to the millisecond).
const collReports = "reports"

type reportDoc struct {
	ID       string     `bson:"_id"`
	By       string     `bson:"by"`
	UserID   string     `bson:"user"`
	ChatID   string     `bson:"chat,omitempty"`
	Messages []eventMsg `bson:"msgs,omitempty"`
	Reason   string     `bson:"reason"`
	TS       int64      `bson:"ts"`
}

// AddReport implements store.Reports.
func (s *Store) AddReport(ctx context.Context, r store.Report) error {
	if !validID(r.ID) || !validID(r.By) || !validID(r.UserID) {
		return fmt.Errorf("add report: %w", errInvalid("report, reporter or reported user id"))
	}
	d := reportDoc{ID: r.ID, By: r.By, UserID: r.UserID, ChatID: r.ChatID, Reason: r.Reason, TS: r.TS}
	for i := range r.Messages {
		d.Messages = append(d.Messages, *msgOf(&r.Messages[i]))
	}
	_, err := s.reports.InsertOne(ctx, d)
	if mongo.IsDuplicateKeyError(err) {
		err = store.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("add report %s: %w", r.ID, err)
	}
	return nil
}

// Reports implements store.Reports.
func (s *Store) Reports(ctx context.Context, limit int) ([]store.Report, error) {
	opts := options.Find().SetSort(bson.D{{Key: "ts", Value: -1}, {Key: "_id", Value: -1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.reports.Find(ctx, bson.D{}, opts)
	var docs []reportDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	out := make([]store.Report, 0, len(docs))
	for _, d := range docs {
		r := store.Report{ID: d.ID, By: d.By, UserID: d.UserID, ChatID: d.ChatID, Reason: d.Reason, TS: d.TS}
		for i := range d.Messages {
			r.Messages = append(r.Messages, *d.Messages[i].message())
		}
		out = append(out, r)
	}
	return out, nil
}
