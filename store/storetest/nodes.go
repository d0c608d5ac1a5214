package storetest

import (
	"bytes"
	"testing"

	"github.com/tern-im/tern/store"
)

// testNodeReports: one report per node, replaced whole, listed by id,
// bodies kept byte for byte.
func testNodeReports(t *testing.T, s store.Store) {
	ctx := t.Context()
	if got, err := s.NodeReports(ctx); err != nil || len(got) != 0 {
		t.Fatalf("NodeReports of a new store = %v, %v; want none", got, err)
	}
	must(t, s.PutNodeReport(ctx, store.NodeReport{NodeID: "node-b", At: at(100), Body: []byte(`{"v":1}`)}))
	must(t, s.PutNodeReport(ctx, store.NodeReport{NodeID: "node-a", At: at(200), Body: []byte{0, 1, 0xff}}))
	must(t, s.PutNodeReport(ctx, store.NodeReport{NodeID: "node-b", At: at(300), Body: []byte(`{"v":2}`)}))
	got, err := s.NodeReports(ctx)
	must(t, err)
	want := []store.NodeReport{{NodeID: "node-a", At: at(200), Body: []byte{0, 1, 0xff}},
		{NodeID: "node-b", At: at(300), Body: []byte(`{"v":2}`)}}
	if len(got) != len(want) {
		t.Fatalf("NodeReports = %+v; want %+v", got, want)
	}
	for i := range want {
		if got[i].NodeID != want[i].NodeID || !got[i].At.Equal(want[i].At) || !bytes.Equal(got[i].Body, want[i].Body) {
			t.Fatalf("NodeReports[%d] = %+v; want %+v", i, got[i], want[i])
		}
	}
	must(t, s.DeleteNodeReport(ctx, "node-a"))
	must(t, s.DeleteNodeReport(ctx, "node-a")) // gone already: not an error
	if got, err := s.NodeReports(ctx); err != nil || len(got) != 1 || got[0].NodeID != "node-b" {
		t.Fatalf("NodeReports after a delete = %+v, %v; want node-b only", got, err)
	}
}
