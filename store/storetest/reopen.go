package storetest

import (
	"slices"
	"testing"

	"github.com/tern-im/tern/store"
)

// RunReopen checks that a store keeps everything across Close and a new open
// of the same directory: records, chat logs, inboxes, cursors and seqs
// (which continue without reuse), receipt watermarks and idempotency keys.
// open must open the store kept in dir; RunReopen closes every store it
// opens, so open should not register a Close of its own.
func RunReopen(t *testing.T, open func(t *testing.T, dir string) store.Store) {
	dir := t.TempDir()
	var cur store.Store
	t.Cleanup(func() {
		if cur != nil {
			cur.Close()
		}
	})
	reopen := func() store.Store {
		t.Helper()
		if cur != nil {
			if err := cur.Close(); err != nil {
				t.Fatalf("Close: %v", err)
			}
		}
		cur = open(t, dir)
		return cur
	}

	s := reopen()
	ctx := t.Context()
	w := newWorld(t, s)
	secret, err := s.Secret(ctx, "signing", []byte("first"))
	must(t, err)
	must(t, s.PutCode(ctx, store.Code{Phone: "+15550000009", Hash: []byte("h"), ExpiresAt: at(600000), SentAt: base}))
	var msgs []store.Message
	for i, cid := range []string{"x1", "x2", "x3"} {
		msgs = append(msgs, send(t, s, direct(w.alice, w.a1, w.bob, cid, int64(i), cid, w.b1, w.b2)).Message)
	}
	// A delivered receipt for m1 and m2 (cursor 1 of a1), then a read
	// receipt for m1 (cursor 2).
	ack(t, s, w.b1, 2)
	_, err = s.MarkRead(ctx, w.bob, w.chatAB, 1, ts(10), true)
	must(t, err)

	s = reopen()
	if u, err := s.UserByPhone(ctx, "+15550000001"); err != nil || u.ID != w.alice {
		t.Fatalf("after reopen, UserByPhone = %+v, %v", u, err)
	}
	ds, err := s.UserDevices(ctx, w.bob)
	must(t, err)
	if got := deviceIDs(ds); !slices.Equal(got, sorted([]string{w.b1, w.b2})) {
		t.Fatalf("after reopen, UserDevices(bob) = %v", got)
	}
	if v, err := s.Secret(ctx, "signing", []byte("second")); err != nil || string(v) != string(secret) {
		t.Fatalf("after reopen, Secret = %q, %v; want %q", v, err, secret)
	}
	if c, err := s.Code(ctx, "+15550000009"); err != nil || string(c.Hash) != "h" {
		t.Fatalf("after reopen, Code = %+v, %v", c, err)
	}
	heads := map[string]int64{}
	for dev, want := range map[string][]string{
		w.b1: {msgs[2].ID},
		w.b2: {msgs[0].ID, msgs[1].ID, msgs[2].ID},
		w.a1: {receiptID(store.StatusDelivered, msgs[0].ID, msgs[1].ID), receiptID(store.StatusRead, msgs[0].ID)},
	} {
		_, heads[dev] = checkInbox(t, s, dev, "after reopen, inbox", want...)
	}
	evs, _ := inbox(t, s, w.b2)
	for i, e := range evs {
		checkMessage(t, "after reopen, inbox of b2", *e.Message, msgs[i])
	}

	// Idempotency survives: the same key answers the first message.
	dup := send(t, s, direct(w.alice, w.a1, w.bob, "x2", 9, "again", w.b1, w.b2))
	if !dup.Duplicate || dup.Message.ID != msgs[1].ID || dup.Message.Seq != 2 || len(dup.Deliveries) != 0 {
		t.Fatalf("after reopen, resend of x2 = %+v, Duplicate %v", dup.Message, dup.Duplicate)
	}
	// Seqs and cursors continue.
	r := send(t, s, direct(w.alice, w.a1, w.bob, "x4", 4, "x4", w.b1, w.b2))
	if r.Message.Seq != 4 {
		t.Fatalf("after reopen, next seq = %d, want 4", r.Message.Seq)
	}
	if got := byDevice(t, r.Deliveries); !slices.Equal(sortedKeys(got), sorted([]string{w.b1, w.b2})) {
		t.Fatalf("after reopen, x4 went to %v", sortedKeys(got))
	}
	for _, d := range r.Deliveries {
		if d.Event.Cursor <= heads[d.DeviceID] {
			t.Fatalf("after reopen, next cursor of %s = %d, not after its head %d", d.DeviceID, d.Event.Cursor, heads[d.DeviceID])
		}
		heads[d.DeviceID] = d.Event.Cursor
	}
	// The delivered watermark survives: b2 acking m1..m4 reports only m3, m4.
	checkReceipts(t, "after reopen, b2 acks", ack(t, s, w.b2, 4), []string{w.a1, w.a2},
		wantReceipt{w.chatAB, store.StatusDelivered, w.bob, []string{msgs[2].ID, r.Message.ID}})

	s = reopen()
	sums, err := s.Chats(ctx, w.bob)
	must(t, err)
	if len(sums) != 1 || sums[0].ReadSeq != 1 || sums[0].Chat.LastSeq != 4 || sums[0].Unread != 3 {
		t.Fatalf("after second reopen, Chats(bob) = %+v", sums)
	}
	evs, heads[w.a1] = checkInbox(t, s, w.a1, "after second reopen, inbox of a1",
		receiptID(store.StatusDelivered, msgs[0].ID, msgs[1].ID), receiptID(store.StatusRead, msgs[0].ID),
		receiptID(store.StatusDelivered, msgs[2].ID, r.Message.ID))
	if heads[w.a1] != evs[2].Cursor {
		t.Fatalf("after second reopen, inbox of a1 = %v head %d", cursors(evs), heads[w.a1])
	}
	if evs, head := inbox(t, s, w.b2); len(evs) != 0 || head != heads[w.b2] {
		t.Fatalf("after second reopen, inbox of b2 = %v head %d; the ack was lost", cursors(evs), head)
	}
	r = send(t, s, direct(w.bob, w.b1, w.alice, "y1", 5, "y1", w.a1, w.a2, w.b2))
	if r.Message.Seq != 5 {
		t.Fatalf("after second reopen, next seq = %d, want 5", r.Message.Seq)
	}
	if got := byDevice(t, r.Deliveries); !slices.Equal(sortedKeys(got), sorted([]string{w.a1, w.a2, w.b2})) {
		t.Fatalf("after second reopen, y1 went to %v", sortedKeys(got))
	}
	for _, d := range r.Deliveries {
		if d.Event.Cursor <= heads[d.DeviceID] {
			t.Fatalf("after second reopen, cursor of %s = %d, not after its head %d", d.DeviceID, d.Event.Cursor, heads[d.DeviceID])
		}
	}
	hist, err := s.History(ctx, w.chatAB, 0, 10)
	must(t, err)
	if len(hist) != 5 || hist[0].ID != r.Message.ID || hist[4].ID != msgs[0].ID {
		t.Fatalf("after second reopen, History has %d messages", len(hist))
	}
}
