package store

import (
	"context"
	"time"
)

// NodeReport is what a node last said about itself (its sockets, its
// engines' health, its message counts), so that any node can show the
// whole cluster on the admin dashboard's overview. Body is the node's own
// encoding: the store keeps it and does not read it, so the report can
// grow without a store change.
type NodeReport struct {
	NodeID string
	At     time.Time // when the node wrote it
	Body   []byte
}

// NodeReports keeps one report per node, replaced every few seconds by
// the node itself.
type NodeReports interface {
	// PutNodeReport replaces r.NodeID's report.
	PutNodeReport(ctx context.Context, r NodeReport) error
	// NodeReports lists every node's report, ordered by node id.
	NodeReports(ctx context.Context) ([]NodeReport, error)
	// DeleteNodeReport forgets a node that left; none is not an error.
	DeleteNodeReport(ctx context.Context, nodeID string) error
}
