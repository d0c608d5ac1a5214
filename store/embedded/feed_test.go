package embedded

import (
	"context"
	"fmt"
	"slices"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// feedKeys returns the cursors of the entries user's feed holds.
func feedKeys(t *testing.T, s *Store, user string) []int64 {
	t.Helper()
	var out []int64
	err := s.view(t.Context(), func(r reader) error {
		p := prefix(tFeed, user)
		return r.scan(p, prefixEnd(p), func(k, _ []byte) (bool, error) {
			out = append(out, seqOf(k))
			return true, nil
		})
	})
	if err != nil {
		t.Fatal(err)
	}
	return out
}

// twoDevices makes users alice (devices a1, a2) and bob (b1, b2).
func twoDevices(t *testing.T, s *Store) (alice, bob string, a, b [2]string) {
	t.Helper()
	ctx := t.Context()
	var users [2]string
	var devs [2][2]string
	for i := range users {
		u, _, err := s.EnsureUser(ctx, fmt.Sprintf("+155500002%02d", i), store.NewID(store.PrefixUser), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		users[i] = u.ID
		for j := range devs[i] {
			devs[i][j] = store.NewID(store.PrefixDevice)
			if err := s.CreateDevice(ctx, store.Device{ID: devs[i][j], UserID: u.ID}); err != nil {
				t.Fatal(err)
			}
		}
	}
	return users[0], users[1], devs[0], devs[1]
}

func directReq(from, fromDevice, to, clientID string, devices ...string) store.SendRequest {
	return store.SendRequest{
		ClientID: clientID,
		Message: store.Message{ID: store.NewID(store.PrefixMessage), ChatID: store.DirectChatID(from, to),
			From: from, FromDevice: fromDevice, Body: []byte(`{"text":"x"}`), TS: time.Now().UnixMilli()},
		Kind:    store.KindDirect,
		Members: []string{from, to},
		Devices: devices,
	}
}

// TestFeedSkipsSender: the sender's own entry holds a cursor of its feed
// that the sending device skips, reported as SenderCursor; its other device
// reads the message there.
func TestFeedSkipsSender(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	alice, bob, a, b := twoDevices(t, s)
	r, err := s.Send(ctx, directReq(alice, a[0], bob, "1", b[0], b[1], a[1]))
	if err != nil {
		t.Fatal(err)
	}
	var a2 int64
	for _, d := range r.Deliveries {
		if d.DeviceID == a[0] {
			t.Fatal("the sending device got its own message")
		}
		if d.DeviceID == a[1] {
			a2 = d.Event.Cursor
		}
	}
	if r.SenderCursor == 0 || r.SenderCursor != a2 {
		t.Fatalf("SenderCursor %d, a2's cursor %d: want the same, not 0", r.SenderCursor, a2)
	}
	evs, head, err := s.Inbox(ctx, a[0], 0, 0)
	if err != nil || len(evs) != 0 || head != r.SenderCursor {
		t.Fatalf("inbox of the sending device: %d events, head %d, %v; want none below head %d", len(evs), head, err, r.SenderCursor)
	}
	// A sender without another device writes nothing to its own feed.
	if err := s.DeleteDevice(ctx, a[1]); err != nil {
		t.Fatal(err)
	}
	before := feedKeys(t, s, alice)
	r, err = s.Send(ctx, directReq(alice, a[0], bob, "2", b[0], b[1]))
	if err != nil {
		t.Fatal(err)
	}
	if r.SenderCursor != 0 || !slices.Equal(feedKeys(t, s, alice), before) {
		t.Fatalf("a lone sender's send: SenderCursor %d, feed %v -> %v", r.SenderCursor, before, feedKeys(t, s, alice))
	}
}

// TestFeedTrim: entries go when every device of the user has acked them,
// except the feed's last, which keeps the cursor; a deleted device stops
// holding entries back; a new device starts after what is there.
func TestFeedTrim(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	alice, bob, a, b := twoDevices(t, s)
	var last int64
	for i := range 4 {
		r, err := s.Send(ctx, directReq(alice, a[0], bob, fmt.Sprint(i), b[0], b[1]))
		if err != nil {
			t.Fatal(err)
		}
		last = r.Deliveries[0].Event.Cursor
	}
	if got := feedKeys(t, s, bob); !slices.Equal(got, []int64{1, 2, 3, 4}) {
		t.Fatalf("bob's feed %v after 4 messages", got)
	}
	if _, err := s.Ack(ctx, b[0], last); err != nil {
		t.Fatal(err)
	}
	if got := feedKeys(t, s, bob); len(got) != 4 {
		t.Fatalf("one of two devices acked, and the feed is %v", got)
	}
	if _, err := s.Ack(ctx, b[1], 2); err != nil {
		t.Fatal(err)
	}
	if got := feedKeys(t, s, bob); !slices.Equal(got, []int64{3, 4}) {
		t.Fatalf("both acked 2: feed %v, want 3, 4", got)
	}
	if err := s.DeleteDevice(ctx, b[1]); err != nil {
		t.Fatal(err)
	}
	if got := feedKeys(t, s, bob); !slices.Equal(got, []int64{4}) {
		t.Fatalf("the lagging device was deleted: feed %v, want only the last entry", got)
	}
	fresh := store.NewID(store.PrefixDevice)
	if err := s.CreateDevice(ctx, store.Device{ID: fresh, UserID: bob}); err != nil {
		t.Fatal(err)
	}
	if evs, head, err := s.Inbox(ctx, fresh, 0, 0); err != nil || len(evs) != 0 || head != 4 {
		t.Fatalf("a new device's inbox: %d events, head %d, %v; want none, head 4", len(evs), head, err)
	}
	r, err := s.Send(ctx, directReq(alice, a[0], bob, "next", b[0], fresh))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Deliveries {
		if d.Event.Cursor != 5 {
			t.Fatalf("after trims, %s got cursor %d, want 5", d.DeviceID, d.Event.Cursor)
		}
	}
	if _, err := s.Ack(ctx, b[0], 5); err != nil {
		t.Fatal(err)
	}
	if _, err := s.Ack(ctx, fresh, 5); err != nil {
		t.Fatal(err)
	}
	if got := feedKeys(t, s, bob); !slices.Equal(got, []int64{5}) {
		t.Fatalf("all acked: feed %v, want only the last entry", got)
	}
}

// TestMigrateInboxes: a store from before feeds, with events waiting in
// per-device inboxes, opens with every one of them still there for its
// device, and cursors that go on above every device's old ones.
func TestMigrateInboxes(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(ctx, dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	alice, bob, a, b := twoDevices(t, s)
	r, err := s.Send(ctx, directReq(alice, a[0], bob, "1", b[0], b[1]))
	if err != nil {
		t.Fatal(err)
	}
	m := r.Message
	idle := store.NewID(store.PrefixDevice)
	if err := s.CreateDevice(ctx, store.Device{ID: idle, UserID: bob}); err != nil {
		t.Fatal(err)
	}
	// Make the old layout by hand: b1 has m at cursor 5 (acked up to 4),
	// b2 everything acked up to 3, and a third device never had an event;
	// no feeds. (Small cursors: an ack of up to 8 reads entries one by
	// one, where a missing one once failed the ack.)
	old := encodeMessageEvent(&m)
	err = s.write(ctx, func(w *wtx) error {
		for _, k := range [][]byte{seqKey(tFeed, bob, 1), migratedKey} {
			w.del(k)
		}
		w.put(seqKey(tInbox, b[0], 5), old)
		w.put(key(tHeads, b[0]), head{Last: 5, Acked: 4, User: bob}.encode())
		w.put(key(tHeads, b[1]), head{Last: 3, Acked: 3, User: bob}.encode())
		w.put(key(tHeads, idle), head{User: bob}.encode())
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	s, err = Open(ctx, dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	evs, head, err := s.Inbox(ctx, b[0], 4, 0)
	if err != nil || len(evs) != 1 || evs[0].Message.ID != m.ID || evs[0].Cursor <= 5 || head != evs[0].Cursor {
		t.Fatalf("b1 after the migration: %+v head %d, %v; want m above cursor 5", evs, head, err)
	}
	if evs, _, err := s.Inbox(ctx, b[1], 3, 0); err != nil || len(evs) != 0 {
		t.Fatalf("b2 after the migration: %d events, %v; want none (it was b1's)", len(evs), err)
	}
	r, err = s.Send(ctx, directReq(alice, a[0], bob, "2", b[0], b[1]))
	if err != nil {
		t.Fatal(err)
	}
	for _, d := range r.Deliveries {
		if d.Event.Cursor <= head {
			t.Fatalf("next cursor of %s is %d, not above %d", d.DeviceID, d.Event.Cursor, head)
		}
	}
	if ds, err := s.Ack(ctx, b[0], head); err != nil || len(ds) != 2 || ds[0].Event.Receipt == nil {
		t.Fatalf("b1 acks the migrated message: %+v, %v; want its delivered receipt to a1 and a2", ds, err)
	}
	// Every device acks the new message, the one that never had an event
	// too: the feed is trimmed down to its last entry, without walking
	// the cursors below the migration.
	next := r.Deliveries[0].Event.Cursor
	for _, d := range []string{b[0], b[1], idle} {
		if _, err := s.Ack(ctx, d, next); err != nil {
			t.Fatalf("%s acks %d after the migration: %v", d, next, err)
		}
	}
	if got := feedKeys(t, s, bob); !slices.Equal(got, []int64{next}) {
		t.Fatalf("bob's feed after every device acked: %v, want only %d", got, next)
	}
	var legacy int
	err = s.view(context.Background(), func(r reader) error {
		return r.scan([]byte{tInbox}, []byte{tInbox + 1}, func(_, _ []byte) (bool, error) {
			legacy++
			return true, nil
		})
	})
	if err != nil || legacy != 0 {
		t.Fatalf("%d per-device inbox records left after the migration (%v)", legacy, err)
	}
}

// TestReceiptsCoalesce: in a group above store.CoalesceReceiptsAbove, the
// delivered receipts that one writer round makes for one message are one
// receipt event per author device, naming every reader; in a smaller group
// each reader's receipt is its own.
func TestReceiptsCoalesce(t *testing.T) {
	for _, c := range []struct {
		members  int
		coalesce bool
	}{
		{store.CoalesceReceiptsAbove + 8, true},
		{store.CoalesceReceiptsAbove, false},
	} {
		t.Run(fmt.Sprint(c.members), func(t *testing.T) {
			s := openTest(t)
			ctx := t.Context()
			cast := newCast(t, s, c.members, 1)
			idx := make([]int, c.members)
			for i := range idx {
				idx[i] = i
			}
			g := cast.create(t, s, idx...)
			r, err := s.Send(ctx, cast.msg(g, 0, "m"))
			if err != nil {
				t.Fatal(err)
			}
			// Every reader's ack in one round.
			release := holdWriter(t, s)
			type acked struct {
				ds  []store.Delivery
				err error
			}
			results := make(chan acked, len(r.Deliveries))
			for _, d := range r.Deliveries {
				go func() {
					ds, err := s.Ack(ctx, d.DeviceID, d.Event.Cursor)
					results <- acked{ds, err}
				}()
			}
			waitQueued(s, len(r.Deliveries))
			release()
			var receipts []store.Delivery
			for range r.Deliveries {
				a := <-results
				if a.err != nil {
					t.Fatal(a.err)
				}
				receipts = append(receipts, a.ds...)
			}
			readers := map[string]int{}
			for _, d := range receipts {
				if d.DeviceID != cast.devices[0][0] || d.Event.Receipt.MsgIDs[0] != r.Message.ID {
					t.Fatalf("a receipt to %s for %v", d.DeviceID, d.Event.Receipt.MsgIDs)
				}
				readers[d.Event.Receipt.By]++
				for _, u := range d.Event.Receipt.Others {
					readers[u]++
				}
			}
			if len(readers) != c.members-1 {
				t.Fatalf("receipts name %d readers, want %d", len(readers), c.members-1)
			}
			if want := map[bool]int{true: 1, false: c.members - 1}[c.coalesce]; len(receipts) != want {
				t.Fatalf("%d receipt events to the author's device, want %d", len(receipts), want)
			}
			// What was stored is what was delivered.
			evs, _, err := s.Inbox(ctx, cast.devices[0][0], 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			var events, stored int
			for _, e := range evs {
				if e.Receipt != nil {
					events++
					stored += 1 + len(e.Receipt.Others)
				}
			}
			if events != len(receipts) || stored != c.members-1 {
				t.Fatalf("the author's inbox holds %d receipts naming %d readers; want %d and %d", events, stored, len(receipts), c.members-1)
			}
		})
	}
}
