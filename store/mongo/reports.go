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
// Report ids sort by creation time, so they are listed by _id, newest
// first. An open report has no res field: resolving it sets res, res_by
// and res_ts in one conditional update, and the open ones are listed
// through the {res, _id} index (those without res index as null).
const collReports = "reports"

// Resolutions of a report (store.Report.Resolution).
const (
	resolutionDismissed = "dismissed"
	resolutionBanned    = "banned"
)

type reportDoc struct {
	ID       string     `bson:"_id"`
	By       string     `bson:"by"`
	UserID   string     `bson:"user"`
	ChatID   string     `bson:"chat,omitempty"`
	Messages []eventMsg `bson:"msgs,omitempty"`
	Reason   string     `bson:"reason"`
	TS       int64      `bson:"ts"`
	Res      string     `bson:"res,omitempty"`
	ResBy    string     `bson:"res_by,omitempty"`
	ResTS    int64      `bson:"res_ts,omitempty"`
}

func (d *reportDoc) report() store.Report {
	r := store.Report{ID: d.ID, By: d.By, UserID: d.UserID, ChatID: d.ChatID, Reason: d.Reason, TS: d.TS,
		Resolution: d.Res, ResolvedBy: d.ResBy, ResolvedTS: d.ResTS}
	for i := range d.Messages {
		r.Messages = append(r.Messages, *d.Messages[i].message())
	}
	return r
}

// openReport matches the reports not resolved yet.
var openReport = bson.E{Key: "res", Value: bson.D{{Key: "$exists", Value: false}}}

// AddReport implements store.Reports.
func (s *Store) AddReport(ctx context.Context, r store.Report) error {
	if !validID(r.ID) || !validID(r.By) || !validID(r.UserID) {
		return fmt.Errorf("add report: %w", errInvalid("report, reporter or reported user id"))
	}
	// A new report is open, whatever r says.
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

// Report implements store.Reports.
func (s *Store) Report(ctx context.Context, id string) (store.Report, error) {
	var d reportDoc
	if err := s.reports.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.Report{}, fmt.Errorf("report %s: %w", id, notFound(err))
	}
	return d.report(), nil
}

// Reports implements store.Reports: a backward walk of the _id index, or
// with openOnly of the {res, _id} index's open part.
func (s *Store) Reports(ctx context.Context, openOnly bool, before string, limit int) ([]store.Report, error) {
	filter := bson.D{}
	if openOnly {
		filter = append(filter, openReport)
	}
	if before != "" {
		filter = append(filter, bson.E{Key: "_id", Value: bson.D{{Key: "$lt", Value: before}}})
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: -1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.reports.Find(ctx, filter, opts)
	var docs []reportDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("reports: %w", err)
	}
	out := make([]store.Report, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].report())
	}
	return out, nil
}

// ResolveReport implements store.Reports: one updateOne filtered on the
// report being open, so of concurrent resolutions one matches (on FerretDB
// v1 only behind the proxy that serialises writes: see the package docs).
// A miss is then told apart: no report, or one resolved already.
func (s *Store) ResolveReport(ctx context.Context, id, resolution, by string, ts int64) error {
	if resolution != resolutionDismissed && resolution != resolutionBanned {
		return fmt.Errorf("resolve report %s: %w", id, errInvalid(fmt.Sprintf("resolution %q", resolution)))
	}
	if by == "" {
		return fmt.Errorf("resolve report %s: %w", id, errInvalid("resolving admin (empty)"))
	}
	res, err := s.reports.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, openReport},
		bson.D{{Key: "$set", Value: bson.D{
			{Key: "res", Value: resolution}, {Key: "res_by", Value: by}, {Key: "res_ts", Value: ts},
		}}})
	if err != nil {
		return fmt.Errorf("resolve report %s: %w", id, err)
	}
	if res.MatchedCount == 1 {
		return nil
	}
	n, err := s.reports.CountDocuments(ctx, bson.D{{Key: "_id", Value: id}})
	switch {
	case err != nil:
		return fmt.Errorf("resolve report %s: %w", id, err)
	case n == 0:
		return fmt.Errorf("resolve report %s: %w", id, store.ErrNotFound)
	}
	return fmt.Errorf("resolve report %s: already resolved: %w", id, store.ErrConflict)
}
