package mongo

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// receiptsOn counts, per message id, the receipts of status in device's
// inbox.
func receiptsOn(ctx context.Context, t *testing.T, s *Store, device, status string) map[string]int {
	t.Helper()
	evs, _, err := s.Inbox(ctx, device, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	got := map[string]int{}
	for _, e := range evs {
		if e.Kind == store.EventReceipt && e.Receipt.Status == status {
			for _, id := range e.Receipt.MsgIDs {
				got[id]++
			}
		}
	}
	return got
}

// sendN sends n messages from alice's a1 to bob's b1, with client ids
// prefix0, prefix1..., and returns their ids in seq order.
func sendN(ctx context.Context, t *testing.T, s *Store, c cast, prefix string, n int) []string {
	t.Helper()
	ids := make([]string, n)
	for i := range n {
		res, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, fmt.Sprint(prefix, i), c.b1))
		if err != nil {
			t.Fatal(err)
		}
		ids[i] = res.Message.ID
	}
	return ids
}

// stored counts the entries of user's feed, visible or not.
func stored(ctx context.Context, t *testing.T, s *Store, user string) int64 {
	t.Helper()
	n, err := s.feed.CountDocuments(ctx, feedRange(user, 0, maxCursor))
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// soleDevice deletes bob's second device, so that b1's acks alone decide
// what bob's feed keeps.
func soleDevice(t *testing.T, s *Store, c cast) {
	t.Helper()
	if err := s.DeleteDevice(t.Context(), c.b2); err != nil {
		t.Fatal(err)
	}
}

// TestAckStopsHalfway stops an ack after each of its steps, as a node dying
// there would, and checks that the device's next ack, on another node,
// leaves the store as if the first had finished: every acked message has a
// delivered receipt, no event is left stored below the floor.
func TestAckStopsHalfway(t *testing.T) {
	for _, tc := range []struct {
		step string
		// again is the cursor of the device's next ack: the same one (the
		// client acks the events that came again after it reconnected) or
		// further on.
		again int64
		// twice: the receipts of the stopped ack may come out twice.
		twice bool
	}{
		{step: ackStepJournal, again: 3},
		{step: ackStepJournal, again: 5},
		{step: ackStepWatermarks, again: 3},
		{step: ackStepWatermarks, again: 5},
		{step: ackStepReceipts, again: 3, twice: true},
		{step: ackStepReceipts, again: 5, twice: true},
		{step: ackStepCommit, again: 3},
		{step: ackStepCommit, again: 5},
	} {
		t.Run(fmt.Sprintf("%s/then%d", tc.step, tc.again), func(t *testing.T) {
			name := dbName()
			dropDB(t, name)
			dying, other := openDB(t, name, Config{}), openDB(t, name, Config{})
			dying.stopAck = func(step string) bool { return step == tc.step }
			ctx := t.Context()
			c := newCast(t, other)
			soleDevice(t, other, c)
			ids := sendN(ctx, t, other, c, "m", 5)

			if _, err := dying.Ack(ctx, c.b1, 3); !errors.Is(err, errStopped) {
				t.Fatalf("stopped ack: %v", err)
			}
			if _, err := other.Ack(ctx, c.b1, tc.again); err != nil {
				t.Fatal(err)
			}
			if tc.again < 5 {
				// The rest, acked normally.
				if _, err := other.Ack(ctx, c.b1, 5); err != nil {
					t.Fatal(err)
				}
			}
			got := receiptsOn(ctx, t, other, c.a1, store.StatusDelivered)
			for i, id := range ids {
				k := got[id]
				if k == 0 || k > 2 || (k == 2 && (!tc.twice || i >= 3)) {
					t.Fatalf("message %d has %d delivered receipts (all: %v)", i+1, k, got)
				}
			}
			if n := stored(ctx, t, other, c.bob); n != 0 {
				t.Fatalf("%d events of b1 still stored after it acked all", n)
			}
			evs, head, err := other.Inbox(ctx, c.b1, 0, 0)
			if err != nil || len(evs) != 0 || head != 5 {
				t.Fatalf("inbox of b1: %v head %d err %v", evs, head, err)
			}
			// The next message is placed above the floor and acked as usual.
			more := sendN(ctx, t, other, c, "more", 1)
			evs, _, err = dying.Inbox(ctx, c.b1, 5, 0)
			if err != nil || len(evs) != 1 || evs[0].Cursor != 6 || evs[0].Message.ID != more[0] {
				t.Fatalf("inbox of b1 after 5: %v err %v", evs, err)
			}
			if _, err := other.Ack(ctx, c.b1, 6); err != nil {
				t.Fatal(err)
			}
			if got := receiptsOn(ctx, t, other, c.a1, store.StatusDelivered); got[more[0]] != 1 {
				t.Fatalf("the next message has %d delivered receipts", got[more[0]])
			}
		})
	}
}

// TestAckRepeatedAfterCommit: an ack that stopped after raising the floor
// leaves its entries stored below it; a repeated ack, with nothing new to
// ack, writes nothing, and the next ack that moves the floor trims them.
func TestAckRepeatedAfterCommit(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	dying, other := openDB(t, name, Config{}), openDB(t, name, Config{})
	dying.stopAck = func(step string) bool { return step == ackStepCommit }
	ctx := t.Context()
	c := newCast(t, other)
	soleDevice(t, other, c)
	sendN(ctx, t, other, c, "m", 5)
	if _, err := dying.Ack(ctx, c.b1, 5); !errors.Is(err, errStopped) {
		t.Fatalf("stopped ack: %v", err)
	}
	if n := stored(ctx, t, other, c.bob); n != 5 {
		t.Fatalf("%d entries stored after the stopped ack, want all 5 (below the floor, above the trim point)", n)
	}
	if evs, _, err := other.Inbox(ctx, c.b1, 0, 0); err != nil || len(evs) != 0 {
		t.Fatalf("inbox of b1 shows %v (err %v) below its floor", evs, err)
	}
	ds, err := other.Ack(ctx, c.b1, 2)
	if err != nil || len(ds) != 0 {
		t.Fatalf("repeated ack: %v %v", ds, err)
	}
	if n := stored(ctx, t, other, c.bob); n != 5 {
		t.Fatalf("%d entries stored after the repeated ack, want 5", n)
	}
	sendN(ctx, t, other, c, "n", 1)
	if _, err := other.Ack(ctx, c.b1, 6); err != nil {
		t.Fatal(err)
	}
	if n := stored(ctx, t, other, c.bob); n != 0 {
		t.Fatalf("%d entries stored after the next ack", n)
	}
	// And once clean, a repeated ack writes nothing.
	journal := func() *ackJournal {
		var h ackHead
		if err := other.devices.FindOne(ctx, bson.D{{Key: "_id", Value: c.b1}}).Decode(&h); err != nil || h.Journal == nil {
			t.Fatalf("journal of b1: %+v, %v", h, err)
		}
		return h.Journal
	}
	before := journal()
	for _, cursor := range []int64{6, 2} {
		if _, err := other.Ack(ctx, c.b1, cursor); err != nil {
			t.Fatal(err)
		}
		if after := journal(); after.Token != before.Token {
			t.Fatalf("a repeated ack up to %d of a clean inbox rewrote the journal", cursor)
		}
	}
	// Reads of the device leave the journal out.
	var raw bson.M
	if err := other.devices.FindOne(ctx, bson.D{{Key: "_id", Value: c.b1}}, options.FindOne().SetProjection(deviceProjection)).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	if _, ok := raw[fieldJournal]; ok || raw["user"] != c.bob {
		t.Fatalf("device read with its projection: %v", raw)
	}
}

// TestMarkReadStopsHalfway stops a read after its receipts were stored but
// before its note was dropped, and checks that the user's next read in the
// chat, once the note is older than the lock timeout, sends them again and
// drops the note; and that a read whose receipts were never stored gets
// them the same way.
func TestMarkReadStopsHalfway(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	// The other node's clock of read notes is moved by hand: whether a
	// note is young or old never depends on how busy the machine is.
	var ahead atomic.Int64
	dying := openDB(t, name, Config{})
	other := openDB(t, name, Config{readClock: func() int64 { return nowMillis() + ahead.Load() }})
	other.lockTimeout = time.Minute
	ctx := t.Context()
	c := newCast(t, other)
	ids := sendN(ctx, t, other, c, "m", 4)
	chat := store.DirectChatID(c.alice, c.bob)

	// Stopped after storing the receipts of 1..2.
	dying.stopAck = func(step string) bool { return step == readStepReceipts }
	if _, err := dying.MarkRead(ctx, c.bob, chat, 2, 1000, true); !errors.Is(err, errStopped) {
		t.Fatalf("stopped read: %v", err)
	}
	// Stopped before storing the receipts of 3: the note is written by
	// hand, as the dying node left it.
	_, err := other.members.UpdateOne(ctx, bson.D{{Key: "_id", Value: pairKey(c.bob, chat)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "read", Value: 3},
			{Key: fieldPendingReads + ".s3", Value: pendingRead{From: 2, To: 3, TS: 2000, At: nowMillis()}}}}})
	if err != nil {
		t.Fatal(err)
	}
	// A read right away leaves young notes alone: their reads may be in
	// flight.
	if ds, err := other.MarkRead(ctx, c.bob, chat, 3, 3000, true); err != nil || len(ds) != 0 {
		t.Fatalf("read at once: %v %v", ds, err)
	}
	ahead.Store((other.lockTimeout + time.Second).Milliseconds())
	ds, err := other.MarkRead(ctx, c.bob, chat, 3, 3000, true)
	if err != nil {
		t.Fatal(err)
	}
	sent := map[string]int{}
	for _, d := range ds {
		if d.DeviceID == c.a1 {
			for _, id := range d.Event.Receipt.MsgIDs {
				sent[id]++
			}
		}
	}
	if sent[ids[0]] != 1 || sent[ids[1]] != 1 || sent[ids[2]] != 1 || sent[ids[3]] != 0 {
		t.Fatalf("replayed read receipts %v for %v", sent, ids)
	}
	got := receiptsOn(ctx, t, other, c.a1, store.StatusRead)
	if got[ids[0]] != 2 || got[ids[1]] != 2 || got[ids[2]] != 1 || got[ids[3]] != 0 {
		t.Fatalf("read receipts in a1's inbox %v for %v", got, ids)
	}
	var m memberDoc
	if err := other.members.FindOne(ctx, bson.D{{Key: "_id", Value: pairKey(c.bob, chat)}}).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if len(m.Pending) != 0 || m.Read != 3 {
		t.Fatalf("member record after the replay: %+v", m)
	}
	// A normal read leaves no note.
	if _, err := other.MarkRead(ctx, c.bob, chat, 4, 4000, true); err != nil {
		t.Fatal(err)
	}
	if err := other.members.FindOne(ctx, bson.D{{Key: "_id", Value: pairKey(c.bob, chat)}}).Decode(&m); err != nil {
		t.Fatal(err)
	}
	if len(m.Pending) != 0 || m.Read != 4 {
		t.Fatalf("member record after a read: %+v", m)
	}
}

// TestAckAcrossNodes acks one device by turns on two nodes, so that each
// node's memory of the device's last ack goes stale every other time: every
// message still gets exactly one delivered receipt, and the inbox empties.
func TestAckAcrossNodes(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	nodes := []*Store{openDB(t, name, Config{}), openDB(t, name, Config{})}
	ctx := t.Context()
	c := newCast(t, nodes[0])
	soleDevice(t, nodes[0], c)
	ids := sendN(ctx, t, nodes[0], c, "m", 12)
	for cur := int64(1); cur <= 12; cur++ {
		// Twice on one node (the second from its memory), then the other.
		n := nodes[(cur/2)%2]
		if _, err := n.Ack(ctx, c.b1, cur); err != nil {
			t.Fatal(err)
		}
		if _, cached := n.acked.get(c.b1); !cached {
			t.Fatalf("node %d does not remember its ack up to %d", (cur/2)%2, cur)
		}
	}
	got := receiptsOn(ctx, t, nodes[0], c.a1, store.StatusDelivered)
	for i, id := range ids {
		if got[id] != 1 {
			t.Fatalf("message %d has %d delivered receipts (all %v)", i+1, got[id], got)
		}
	}
	if n := stored(ctx, t, nodes[1], c.bob); n != 0 {
		t.Fatalf("%d events of b1 still stored", n)
	}
	// A remembered device deleted by another node: acks change nothing
	// (and bring nothing back).
	sendN(ctx, t, nodes[0], c, "x", 1)
	if err := nodes[1].DeleteDevice(ctx, c.b1); err != nil {
		t.Fatal(err)
	}
	for _, n := range nodes {
		if _, err := n.Ack(ctx, c.b1, 13); err != nil && !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("ack of a deleted device: %v", err)
		}
	}
	if n, err := nodes[0].devices.CountDocuments(ctx, bson.D{{Key: "_id", Value: c.b1}}); err != nil || n != 0 {
		t.Fatalf("deleted device: %d documents (err %v)", n, err)
	}
}

// TestOverlappingAcksOneStops: ack A of a device writes its journal and
// pauses; ack B of the same device (another node) takes A's journal over,
// moves the delivered watermark and dies before storing the receipts; A
// goes on, finds its journal replaced and must leave the events to B's
// journal. The device's next ack then finishes B's journal: every message
// gets its delivered receipt.
func TestOverlappingAcksOneStops(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	a, b, c := openDB(t, name, Config{}), openDB(t, name, Config{}), openDB(t, name, Config{})
	ctx := t.Context()
	cs := newCast(t, c)
	soleDevice(t, c, cs)
	ids := sendN(ctx, t, c, cs, "m", 3)

	paused, resume := make(chan struct{}), make(chan struct{})
	a.stopAck = func(step string) bool {
		if step == ackStepJournal {
			close(paused)
			<-resume
		}
		return false
	}
	b.stopAck = func(step string) bool { return step == ackStepWatermarks }
	aDone := make(chan error, 1)
	go func() {
		_, err := a.Ack(ctx, cs.b1, 2)
		aDone <- err
	}()
	<-paused
	if _, err := b.Ack(ctx, cs.b1, 3); !errors.Is(err, errStopped) {
		t.Fatalf("ack B: %v", err)
	}
	close(resume)
	if err := <-aDone; err != nil {
		t.Fatalf("ack A: %v", err)
	}
	// The device is sent the events above its floor again, and acks them.
	if _, err := c.Ack(ctx, cs.b1, 3); err != nil {
		t.Fatal(err)
	}
	got := receiptsOn(ctx, t, c, cs.a1, store.StatusDelivered)
	for i, id := range ids {
		if got[id] == 0 {
			t.Fatalf("message %d has no delivered receipt (all: %v)", i+1, got)
		}
	}
	if n := stored(ctx, t, c, cs.bob); n != 0 {
		t.Fatalf("%d events of b1 still stored", n)
	}
}
