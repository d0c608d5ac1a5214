package mongo

import (
	"encoding/json"
	"fmt"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/tern-im/tern/store"
)

// TestFeedTrimFollowsSlowestDevice: a user's feed keeps what any of its
// devices has not acked, and no more; a deleted device stops holding it;
// a new device starts at the feed's end.
func TestFeedTrimFollowsSlowestDevice(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	sendN(ctx, t, s, c, "m", 3) // to b1; b2 reads bob's feed too
	if _, err := s.Ack(ctx, c.b1, 3); err != nil {
		t.Fatal(err)
	}
	if n := stored(ctx, t, s, c.bob); n != 3 {
		t.Fatalf("%d entries stored with b2 behind, want 3", n)
	}
	if _, err := s.Ack(ctx, c.b2, 2); err != nil {
		t.Fatal(err)
	}
	if n := stored(ctx, t, s, c.bob); n != 1 {
		t.Fatalf("%d entries stored with b2 at 2, want 1", n)
	}
	evs, head, err := s.Inbox(ctx, c.b2, 0, 0)
	if err != nil || len(evs) != 1 || evs[0].Cursor != 3 || head != 3 {
		t.Fatalf("inbox of b2: %v head %d, %v; want cursor 3", evs, head, err)
	}
	if err := s.DeleteDevice(ctx, c.b2); err != nil {
		t.Fatal(err)
	}
	if n := stored(ctx, t, s, c.bob); n != 0 {
		t.Fatalf("%d entries stored after the slowest device went, want 0", n)
	}
	// A device that acks past its feed's end is held at the end.
	if _, err := s.Ack(ctx, c.b1, 1<<40); err != nil {
		t.Fatal(err)
	}
	b3 := store.Device{ID: store.NewID(store.PrefixDevice), UserID: c.bob, CreatedAt: time.Now(), RefreshHash: []byte("h")}
	if err := s.CreateDevice(ctx, b3); err != nil {
		t.Fatal(err)
	}
	if evs, head, err := s.Inbox(ctx, b3.ID, 0, 0); err != nil || len(evs) != 0 || head != 3 {
		t.Fatalf("inbox of a new device: %v head %d, %v; want nothing, head 3", evs, head, err)
	}
	more := sendN(ctx, t, s, c, "n", 1)
	for _, d := range []string{c.b1, b3.ID} {
		evs, _, err := s.Inbox(ctx, d, 0, 0)
		if err != nil || len(evs) != 1 || evs[0].Cursor != 4 || evs[0].Message.ID != more[0] {
			t.Fatalf("inbox of %s: %v, %v; want the next message at 4", d, evs, err)
		}
	}
}

// TestTrimRaceKeepsStaleWritersEntry: a trim whose read of the trim point
// is stale reads a cursor that another trim freed and a writer with a
// stale head filled again; it must not delete that entry, which no device
// has read (the writer would take it as trimmed, read by all, and drop it).
func TestTrimRaceKeepsStaleWritersEntry(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	sendN(ctx, t, s, c, "m", 3) // bob's feed: 1..3
	// T2 (an ack on another node about to trim) reads the trim point: 0.
	fh, _, err := s.trimState(ctx, c.bob)
	if err != nil {
		t.Fatal(err)
	}
	// T1: both devices ack 3; the second ack trims 1..3.
	for _, d := range []string{c.b1, c.b2} {
		if _, err := s.Ack(ctx, d, 3); err != nil {
			t.Fatal(err)
		}
	}
	if n := stored(ctx, t, s, c.bob); n != 0 {
		t.Fatalf("%d entries stored after both devices acked", n)
	}
	// W: a writer that read bob's head before the trim lands on cursor 1.
	r := &store.Receipt{ChatID: "x", MsgIDs: []string{"m"}, Status: store.StatusRead, By: c.alice, TS: 1}
	o := &feedOut{user: c.bob, devices: []string{c.b1, c.b2}, event: store.Event{Kind: store.EventReceipt, Receipt: r},
		doc: feedDoc{Receipt: &eventRcpt{ChatID: r.ChatID, MsgIDs: r.MsgIDs, Status: r.Status, By: r.By, TS: r.TS}}}
	next := map[string]int64{c.bob: 1}
	placed, err := s.placeFeed(ctx, next, []*feedOut{o})
	if err != nil || len(placed) != 1 || o.event.Cursor != 1 {
		t.Fatalf("stale writer placed %d at %d, %v", len(placed), o.event.Cursor, err)
	}
	// T2 goes on from its stale read: (0, 3].
	if err := s.trimFeed(ctx, c.bob, fh.Trim, 3, nil, 0); err != nil {
		t.Fatal(err)
	}
	again, err := s.confirmFeed(ctx, next, placed, 0)
	if err != nil || len(again) != 1 {
		t.Fatalf("the stale writer's entry was not taken back to be placed again: %d, %v", len(again), err)
	}
	if _, err := s.appendFrom(ctx, next, again); err != nil {
		t.Fatal(err)
	}
	for _, d := range []string{c.b1, c.b2} {
		evs, _, err := s.Inbox(ctx, d, 0, 0)
		if err != nil || len(evs) != 1 || evs[0].Kind != store.EventReceipt || evs[0].Cursor != 4 {
			t.Fatalf("inbox of %s: %v, %v; want the receipt at 4", d, evs, err)
		}
	}
}

// TestInboxPageSkipsOwn: a page of a feed whose first entries are the
// device's own messages (read by its other devices) goes on past them, so
// that a short page still means "nothing more".
func TestInboxPageSkipsOwn(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	for i := range 5 {
		if _, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, fmt.Sprint("own", i), c.b1, c.a2)); err != nil {
			t.Fatal(err)
		}
	}
	r, err := s.Send(ctx, directReq(c.bob, c.b1, c.alice, "to-alice", c.a1, c.a2))
	if err != nil {
		t.Fatal(err)
	}
	evs, head, err := s.Inbox(ctx, c.a1, 0, 2)
	if err != nil || len(evs) != 1 || evs[0].Message.ID != r.Message.ID || evs[0].Cursor != 6 || head < 6 {
		t.Fatalf("inbox of a1, pages of 2: %v head %d, %v; want bob's message at 6", evs, head, err)
	}
	evs, _, err = s.Inbox(ctx, c.a2, 0, 2)
	if err != nil || len(evs) != 2 || evs[0].Cursor != 1 || evs[1].Cursor != 2 {
		t.Fatalf("inbox of a2, pages of 2: %v, %v; want cursors 1 and 2", evs, err)
	}
}

// TestMigrateInboxes: a database written with per-device inboxes opens
// with feeds that start above every cursor its devices held, and with
// each pending event moved to its user's feed for its one device.
func TestMigrateInboxes(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	s := openDB(t, name, Config{})
	ctx := t.Context()
	c := newCast(t, s)
	r, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, "ref", c.b1, c.b2))
	if err != nil {
		t.Fatal(err)
	}
	// The database as the previous version left it: no feeds, b1 at
	// cursor 50 (acked to 40), b2 at 7, events in per-device inboxes.
	for _, coll := range []string{collFeed, collFeeds} {
		if err := s.feed.Database().Collection(coll).Drop(ctx); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := s.secrets.DeleteOne(ctx, bson.D{{Key: "_id", Value: migrationFeeds}}); err != nil {
		t.Fatal(err)
	}
	for d, hf := range map[string][2]int64{c.b1: {50, 40}, c.b2: {7, 7}, c.a2: {3, 3}} {
		if _, err := s.devices.UpdateOne(ctx, bson.D{{Key: "_id", Value: d}},
			bson.D{{Key: "$set", Value: bson.D{{Key: "hint", Value: hf[0]}, {Key: "floor", Value: hf[1]}}}}); err != nil {
			t.Fatal(err)
		}
	}
	// a2's last ack stopped halfway, at a cursor above its hint: its next
	// ack raises its floor there, so alice's feed must start above it.
	if _, err := s.devices.UpdateOne(ctx, bson.D{{Key: "_id", Value: c.a2}},
		bson.D{{Key: "$set", Value: bson.D{{Key: fieldJournal, Value: ackJournal{Token: 1, Cursor: 12}}}}}); err != nil {
		t.Fatal(err)
	}
	whole := &store.Message{ID: store.NewID(store.PrefixMessage), ChatID: r.Message.ChatID, Seq: 99, From: c.alice,
		FromDevice: c.a1, Body: json.RawMessage(`{"text":"old copy"}`)}
	ref := refOf(&r.Message)
	legacy := []any{
		// Acked (at or below b1's floor), its ack stopped before the delete.
		eventDoc{ID: numKey(c.b1, 40), N: 4, Kind: kindMessage, Message: msgOf(whole)},
		eventDoc{ID: numKey(c.b1, 45), N: 1, Kind: kindMessage, Message: msgOf(whole)},
		eventDoc{ID: numKey(c.b1, 50), N: 2, Kind: kindMessage, Message: ref},
		eventDoc{ID: numKey(c.a1, 3), N: 3, Kind: kindReceipt, Receipt: &eventRcpt{ChatID: r.Message.ChatID,
			MsgIDs: []string{r.Message.ID}, Status: store.StatusRead, By: c.bob, TS: 5}},
	}
	if _, err := s.inbox.InsertMany(ctx, legacy); err != nil {
		t.Fatal(err)
	}

	// Two nodes start at once: one moves the inboxes, the other waits.
	var s2, other *Store
	var wg sync.WaitGroup
	for _, p := range []**Store{&s2, &other} {
		wg.Add(1)
		go func() {
			defer wg.Done()
			st, err := Open(ctx, Config{URI: needServer(t), Database: name, Timeout: 30 * time.Second})
			if err != nil {
				t.Error(err)
				return
			}
			t.Cleanup(func() { st.Close() })
			*p = st
		}()
	}
	wg.Wait()
	if t.Failed() {
		t.FailNow()
	}
	if n, err := s2.inbox.CountDocuments(ctx, bson.D{}); err != nil || n != 0 {
		t.Fatalf("%d per-device events left (err %v)", n, err)
	}
	evs, _, err := s2.Inbox(ctx, c.b1, 40, 0)
	if err != nil || len(evs) != 2 || evs[0].Cursor <= 50 || evs[1].Cursor <= evs[0].Cursor {
		t.Fatalf("inbox of b1 after 40: %v, %v; want two events above 50", evs, err)
	}
	if string(evs[0].Message.Body) != `{"text":"old copy"}` || evs[1].Message.ID != r.Message.ID || string(evs[1].Message.Body) != string(r.Message.Body) {
		t.Fatalf("moved events read as %+v and %+v", evs[0].Message, evs[1].Message)
	}
	if evs, _, err := s2.Inbox(ctx, c.b2, 7, 0); err != nil || len(evs) != 0 {
		t.Fatalf("b2 reads b1's moved events: %v, %v", evs, err)
	}
	if evs, _, err := s2.Inbox(ctx, c.a1, 0, 0); err != nil || len(evs) != 1 || evs[0].Kind != store.EventReceipt || evs[0].Cursor <= 12 {
		t.Fatalf("inbox of a1: %v, %v; want the moved receipt, above a2's unfinished ack at 12", evs, err)
	}
	// A new message lands above everything, for both of bob's devices.
	next := sendN(ctx, t, s2, c, "next", 1)
	for _, d := range []string{c.b1, c.b2} {
		evs, _, err := s2.Inbox(ctx, d, 50, 0)
		if err != nil || len(evs) == 0 || evs[len(evs)-1].Message.ID != next[0] {
			t.Fatalf("inbox of %s after 50: %v, %v; want the new message last", d, evs, err)
		}
	}
	// Done once: opening again moves nothing and changes no head.
	var before, after feedHead
	if err := s2.feeds.FindOne(ctx, bson.D{{Key: "_id", Value: c.bob}}).Decode(&before); err != nil {
		t.Fatal(err)
	}
	s3 := openDB(t, name, Config{})
	if err := s3.feeds.FindOne(ctx, bson.D{{Key: "_id", Value: c.bob}}).Decode(&after); err != nil || after != before {
		t.Fatalf("feed head %+v after reopening, was %+v (%v)", after, before, err)
	}
}
