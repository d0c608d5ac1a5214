package mongo

import (
	"context"
	"errors"
	"fmt"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/tern-im/tern/store"
)

// sendBoth sends n messages from alice's a1 to both of bob's devices.
func sendBoth(ctx context.Context, t *testing.T, s *Store, c cast, n int) {
	t.Helper()
	for i := range n {
		if _, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, fmt.Sprint("m", i), c.b1, c.b2)); err != nil {
			t.Fatal(err)
		}
	}
}

// deliveredAt returns bob's delivered time of each of seqs in chat.
func deliveredAt(ctx context.Context, t *testing.T, s *Store, chat, user string, seqs ...int64) []int64 {
	t.Helper()
	out := make([]int64, len(seqs))
	for i, seq := range seqs {
		m, err := s.MessageMarks(ctx, chat, seq, []string{user})
		if err != nil {
			t.Fatal(err)
		}
		out[i] = m[0].DeliveredTS
	}
	return out
}

// firstReceiptTS returns the time of the earliest delivered receipt in
// device's inbox.
func firstReceiptTS(ctx context.Context, t *testing.T, s *Store, device string) int64 {
	t.Helper()
	evs, _, err := s.Inbox(ctx, device, 0, 0)
	if err != nil {
		t.Fatal(err)
	}
	var first int64
	for _, e := range evs {
		if e.Kind == store.EventReceipt && e.Receipt.Status == store.StatusDelivered && (first == 0 || e.Receipt.TS < first) {
			first = e.Receipt.TS
		}
	}
	if first == 0 {
		t.Fatalf("no delivered receipt in %s's inbox", device)
	}
	return first
}

// waitClockPast waits until the wall clock, which stamps acks, is past ms.
func waitClockPast(t *testing.T, ms int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().UnixMilli() <= ms {
		if time.Now().After(deadline) {
			t.Fatalf("the clock did not pass %d", ms)
		}
		time.Sleep(time.Millisecond)
	}
}

// TestMarksAckStopsHalfway stops an ack as a node dying there would and
// checks the delivered times message info reports once the next ack
// finished it: recorded by the stopped ack if it got that far, else by the
// finishing ack at its own time, unless another device's move already
// covered those messages.
func TestMarksAckStopsHalfway(t *testing.T) {
	setup := func(t *testing.T, step string) (dying, other *Store, c cast, chat string) {
		name := dbName()
		dropDB(t, name)
		dying, other = openDB(t, name, Config{}), openDB(t, name, Config{})
		dying.stopAck = func(s string) bool { return s == step }
		c = newCast(t, other)
		sendBoth(t.Context(), t, other, c, 5)
		if _, err := dying.Ack(t.Context(), c.b1, 3); !errors.Is(err, errStopped) {
			t.Fatalf("stopped ack: %v", err)
		}
		return dying, other, c, store.DirectChatID(c.alice, c.bob)
	}
	t.Run("BeforeRecording", func(t *testing.T) {
		// The watermark moved, nothing recorded: the finishing ack records
		// the move at its time, the time of the receipts it sends.
		_, other, c, chat := setup(t, ackStepWatermarks)
		ctx := t.Context()
		if got := deliveredAt(ctx, t, other, chat, c.bob, 1, 3); got[0] != 0 || got[1] != 0 {
			t.Fatalf("delivered %v before the ack was finished", got)
		}
		ds, err := other.Ack(ctx, c.b1, 3)
		if err != nil || len(ds) == 0 {
			t.Fatalf("finishing ack: %d deliveries, %v", len(ds), err)
		}
		at := ds[0].Event.Receipt.TS
		if got := deliveredAt(ctx, t, other, chat, c.bob, 1, 2, 3, 4); got[0] != at || got[1] != at || got[2] != at || got[3] != 0 {
			t.Fatalf("delivered at %v, want %d for 1..3 and 0 for 4", got, at)
		}
	})
	t.Run("AfterRecording", func(t *testing.T) {
		// Receipts and record stored: the finishing ack keeps the stopped
		// ack's time, though it sends the receipts again.
		_, other, c, chat := setup(t, ackStepReceipts)
		ctx := t.Context()
		first := firstReceiptTS(ctx, t, other, c.a1)
		waitClockPast(t, first)
		if _, err := other.Ack(ctx, c.b1, 3); err != nil {
			t.Fatal(err)
		}
		if got := deliveredAt(ctx, t, other, chat, c.bob, 1, 3); got[0] != first || got[1] != first {
			t.Fatalf("delivered at %v, want the stopped ack's %d", got, first)
		}
	})
	t.Run("CoveredByAnotherDevice", func(t *testing.T) {
		// Before the finishing ack, bob's other device acked further: its
		// move covers the stopped ack's messages, and a later record below
		// it would hide it.
		_, other, c, chat := setup(t, ackStepWatermarks)
		ctx := t.Context()
		ds, err := other.Ack(ctx, c.b2, 5)
		if err != nil || len(ds) == 0 {
			t.Fatalf("b2's ack: %d deliveries, %v", len(ds), err)
		}
		at := ds[0].Event.Receipt.TS
		waitClockPast(t, at)
		if _, err := other.Ack(ctx, c.b1, 5); err != nil {
			t.Fatal(err)
		}
		if got := deliveredAt(ctx, t, other, chat, c.bob, 1, 3, 5); got[0] != at || got[1] != at || got[2] != at {
			t.Fatalf("delivered at %v, want b2's %d", got, at)
		}
	})
}

// TestMarksReadReplayed checks that a read whose node died before its
// move was recorded is recorded by the replay of its note, with the
// read's own time.
func TestMarksReadReplayed(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	s := openDB(t, name, Config{})
	s.lockTimeout = 200 * time.Millisecond
	ctx := t.Context()
	c := newCast(t, s)
	sendBoth(ctx, t, s, c, 3)
	chat := store.DirectChatID(c.alice, c.bob)
	if _, err := s.MarkRead(ctx, c.bob, chat, 1, 1000, true); err != nil {
		t.Fatal(err)
	}
	// The read of 2..3 as a dying node left it: the mark moved, the note
	// written, no receipts, no record.
	_, err := s.members.UpdateOne(ctx, bson.D{{Key: "_id", Value: pairKey(c.bob, chat)}},
		bson.D{{Key: "$set", Value: bson.D{{Key: "read", Value: 3},
			{Key: fieldPendingReads + ".s3", Value: pendingRead{From: 1, To: 3, TS: 2000, At: nowMillis()}}}}})
	if err != nil {
		t.Fatal(err)
	}
	readAt := func(seq int64) int64 {
		m, err := s.MessageMarks(ctx, chat, seq, []string{c.bob})
		if err != nil {
			t.Fatal(err)
		}
		return m[0].ReadTS
	}
	if got := readAt(3); got != 0 {
		t.Fatalf("seq 3 read at %d before the replay", got)
	}
	// bob's next read in the chat replays the note once it is old enough.
	deadline := time.Now().Add(10 * time.Second)
	for readAt(3) == 0 {
		if time.Now().After(deadline) {
			t.Fatal("the note was never replayed")
		}
		if _, err := s.MarkRead(ctx, c.bob, chat, 3, 3000, true); err != nil {
			t.Fatal(err)
		}
		time.Sleep(20 * time.Millisecond)
	}
	if got := [3]int64{readAt(1), readAt(2), readAt(3)}; got != [3]int64{1000, 2000, 2000} {
		t.Fatalf("read at %v, want [1000 2000 2000]", got)
	}
}
