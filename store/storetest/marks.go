package storetest

import (
	"fmt"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// testMarks checks MessageMarks, the "message info" of a message: when
// each reader's delivered and read marks first reached it.
func testMarks(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Direct", func(t *testing.T) {
		s := newStore(t)
		w := newWorld(t, s)
		var ids []string
		for i := range 3 {
			ids = append(ids, send(t, s, direct(w.alice, w.a1, w.bob, fmt.Sprint(i), int64(i), "m", w.b1, w.b2, w.a2)).Message.ID)
		}
		for seq := int64(1); seq <= 3; seq++ {
			checkMarks(t, fmt.Sprintf("seq %d before any ack", seq), marksOf(t, s, w.chatAB, seq, w.bob), store.Marks{UserID: w.bob})
		}
		// alice's other device acking her own messages is no delivery.
		checkReceipts(t, "a2 acks", ack(t, s, w.a2, 3), nil)
		checkMarks(t, "after a2's ack", marksOf(t, s, w.chatAB, 1, w.bob), store.Marks{UserID: w.bob})

		// b1 acks the first message alone, then the other two: each
		// message gets the time of the ack that first covered it, and one
		// move over several messages gives them all its time.
		t1 := receiptTS(t, "b1 acks 1", ack(t, s, w.b1, 1), ids[:1])
		waitPast(t, t1)
		t2 := receiptTS(t, "b1 acks 3", ack(t, s, w.b1, 3), ids[1:])
		if t2 <= t1 {
			t.Fatalf("second ack's receipt has TS %d, not after the first's %d", t2, t1)
		}
		checkMarks(t, "seq 1", marksOf(t, s, w.chatAB, 1, w.bob), store.Marks{UserID: w.bob, DeliveredTS: t1})
		for seq := int64(2); seq <= 3; seq++ {
			checkMarks(t, fmt.Sprintf("seq %d", seq), marksOf(t, s, w.chatAB, seq, w.bob), store.Marks{UserID: w.bob, DeliveredTS: t2})
		}

		// bob's other device acking later moves nothing: the first time
		// stays.
		waitPast(t, t2)
		checkReceipts(t, "b2 acks", ack(t, s, w.b2, 3), nil)
		checkMarks(t, "seq 3 after b2's ack", marksOf(t, s, w.chatAB, 3, w.bob), store.Marks{UserID: w.bob, DeliveredTS: t2})

		// A read with notify records its own time (the ts argument).
		_, err := s.MarkRead(t.Context(), w.bob, w.chatAB, 2, ts(100), true)
		must(t, err)
		checkMarks(t, "seq 1 read", marksOf(t, s, w.chatAB, 1, w.bob), store.Marks{UserID: w.bob, DeliveredTS: t1, ReadTS: ts(100)})
		checkMarks(t, "seq 2 read", marksOf(t, s, w.chatAB, 2, w.bob), store.Marks{UserID: w.bob, DeliveredTS: t2, ReadTS: ts(100)})
		checkMarks(t, "seq 3 not read yet", marksOf(t, s, w.chatAB, 3, w.bob), store.Marks{UserID: w.bob, DeliveredTS: t2})
		// Reading again, later, over the same messages changes nothing.
		_, err = s.MarkRead(t.Context(), w.bob, w.chatAB, 2, ts(150), true)
		must(t, err)
		checkMarks(t, "seq 2 read again", marksOf(t, s, w.chatAB, 2, w.bob), store.Marks{UserID: w.bob, DeliveredTS: t2, ReadTS: ts(100)})
		_, err = s.MarkRead(t.Context(), w.bob, w.chatAB, 3, ts(200), true)
		must(t, err)
		checkMarks(t, "seq 3 read", marksOf(t, s, w.chatAB, 3, w.bob), store.Marks{UserID: w.bob, DeliveredTS: t2, ReadTS: ts(200)})
		checkMarks(t, "seq 2 after a later read", marksOf(t, s, w.chatAB, 2, w.bob), store.Marks{UserID: w.bob, DeliveredTS: t2, ReadTS: ts(100)})

		// The answer follows the order asked for; users who are not in the
		// chat, or do not exist, get zeros, and so does the author, whose
		// marks never moved over its own messages here.
		got := marksOf(t, s, w.chatAB, 1, w.carol, w.bob, "u-nobody", w.alice, w.bob)
		checkMarks(t, "several users", got,
			store.Marks{UserID: w.carol},
			store.Marks{UserID: w.bob, DeliveredTS: t1, ReadTS: ts(100)},
			store.Marks{UserID: "u-nobody"},
			store.Marks{UserID: w.alice},
			store.Marks{UserID: w.bob, DeliveredTS: t1, ReadTS: ts(100)})
		// A seq the chat does not have yet, another chat, no users.
		checkMarks(t, "seq 4 (not sent)", marksOf(t, s, w.chatAB, 4, w.bob), store.Marks{UserID: w.bob})
		checkMarks(t, "a chat that does not exist", marksOf(t, s, w.chatBC, 1, w.bob), store.Marks{UserID: w.bob})
		checkMarks(t, "no users", marksOf(t, s, w.chatAB, 1))

		// The other way round: alice's marks over bob's message.
		m4 := send(t, s, direct(w.bob, w.b1, w.alice, "4", 4, "answer", w.a1, w.a2, w.b2)).Message
		checkMarks(t, "bob's message before alice acks", marksOf(t, s, w.chatAB, 4, w.alice, w.bob),
			store.Marks{UserID: w.alice}, store.Marks{UserID: w.bob})
		ta := receiptTS(t, "a1 acks bob's message", ackHead(t, s, w.a1), []string{m4.ID})
		checkMarks(t, "bob's message after alice acks", marksOf(t, s, w.chatAB, 4, w.alice, w.bob),
			store.Marks{UserID: w.alice, DeliveredTS: ta}, store.Marks{UserID: w.bob})
	})

	t.Run("SilentRead", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		send(t, s, direct(w.alice, w.a1, w.bob, "1", 1, "one", w.b1))
		send(t, s, direct(w.alice, w.a1, w.bob, "2", 2, "two", w.b1))
		// bob hides his read receipts: the mark moves, the time is not kept.
		ds, err := s.MarkRead(ctx, w.bob, w.chatAB, 2, ts(10), false)
		must(t, err)
		checkReceipts(t, "silent read", ds, nil)
		for seq := int64(1); seq <= 2; seq++ {
			checkMarks(t, fmt.Sprintf("seq %d after a silent read", seq), marksOf(t, s, w.chatAB, seq, w.bob), store.Marks{UserID: w.bob})
		}
		// Reading on with receipts on again: the new message gets the
		// read's time. The silent read's time is never revealed (what the
		// earlier messages answer, 0 or this read's time, is the adapter's
		// choice).
		send(t, s, direct(w.alice, w.a1, w.bob, "3", 3, "three", w.b1))
		_, err = s.MarkRead(ctx, w.bob, w.chatAB, 3, ts(20), true)
		must(t, err)
		checkMarks(t, "seq 3 after a read", marksOf(t, s, w.chatAB, 3, w.bob), store.Marks{UserID: w.bob, ReadTS: ts(20)})
		for seq := int64(1); seq <= 2; seq++ {
			m := marksOf(t, s, w.chatAB, seq, w.bob)[0]
			if m.ReadTS != 0 && m.ReadTS != ts(20) {
				t.Fatalf("seq %d: ReadTS %d, want 0 or the later read's %d (the silent read was at %d)", seq, m.ReadTS, ts(20), ts(10))
			}
			if m.DeliveredTS != 0 {
				t.Fatalf("seq %d: DeliveredTS %d without an ack", seq, m.DeliveredTS)
			}
		}
	})

	t.Run("Group", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		grp, _ := w.newGroup(t, w.bob, w.carol)
		g := grp.ChatID
		m := send(t, s, groupSend(g, w.alice, w.a1, "1", 2, "hello")).Message
		users := []string{w.bob, w.carol, w.dave}
		checkMarks(t, "before anyone acks", marksOf(t, s, g, m.Seq, users...),
			store.Marks{UserID: w.bob}, store.Marks{UserID: w.carol}, store.Marks{UserID: w.dave})

		tb := receiptTS(t, "b1 acks", ackHead(t, s, w.b1), []string{m.ID})
		// carol reads before any device of hers acked: read, not delivered.
		_, err := s.MarkRead(ctx, w.carol, g, m.Seq, ts(50), true)
		must(t, err)
		checkMarks(t, "bob acked, carol read", marksOf(t, s, g, m.Seq, users...),
			store.Marks{UserID: w.bob, DeliveredTS: tb},
			store.Marks{UserID: w.carol, ReadTS: ts(50)},
			store.Marks{UserID: w.dave})

		tc := receiptTS(t, "c1 acks", ackHead(t, s, w.c1), []string{m.ID})
		_, err = s.MarkRead(ctx, w.bob, g, m.Seq, ts(60), true)
		must(t, err)
		checkMarks(t, "both acked and read", marksOf(t, s, g, m.Seq, users...),
			store.Marks{UserID: w.bob, DeliveredTS: tb, ReadTS: ts(60)},
			store.Marks{UserID: w.carol, DeliveredTS: tc, ReadTS: ts(50)},
			store.Marks{UserID: w.dave})

		// Per message: a later message starts from nothing.
		m2 := send(t, s, groupSend(g, w.alice, w.a1, "2", 3, "again")).Message
		checkMarks(t, "the next message", marksOf(t, s, g, m2.Seq, w.bob, w.carol),
			store.Marks{UserID: w.bob}, store.Marks{UserID: w.carol})
		checkMarks(t, "the first message still", marksOf(t, s, g, m.Seq, w.bob),
			store.Marks{UserID: w.bob, DeliveredTS: tb, ReadTS: ts(60)})
	})
}

// ackHead acks everything in dev's inbox.
func ackHead(t testing.TB, s store.Store, dev string) []store.Delivery {
	t.Helper()
	_, head := inbox(t, s, dev)
	return ack(t, s, dev, head)
}

// marksOf is MessageMarks that fails the test on an error.
func marksOf(t testing.TB, s store.Store, chatID string, seq int64, users ...string) []store.Marks {
	t.Helper()
	got, err := s.MessageMarks(t.Context(), chatID, seq, users)
	if err != nil {
		t.Fatalf("MessageMarks(%s, %d, %v): %v", chatID, seq, users, err)
	}
	return got
}

func checkMarks(t testing.TB, what string, got []store.Marks, want ...store.Marks) {
	t.Helper()
	if len(got) != len(want) {
		t.Fatalf("%s: %d marks %+v, want %d %+v", what, len(got), got, len(want), want)
	}
	for i := range want {
		if got[i] != want[i] {
			t.Fatalf("%s: marks[%d] = %+v, want %+v", what, i, got[i], want[i])
		}
	}
}

// receiptTS returns the time of the delivered receipts in ds, which must
// cover exactly msgIDs: the time the ack records for them.
func receiptTS(t testing.TB, what string, ds []store.Delivery, msgIDs []string) int64 {
	t.Helper()
	var at int64
	for _, d := range ds {
		r := d.Event.Receipt
		if r == nil || r.Status != store.StatusDelivered {
			t.Fatalf("%s: delivery %+v is no delivered receipt", what, d.Event)
		}
		if fmt.Sprint(r.MsgIDs) != fmt.Sprint(msgIDs) {
			t.Fatalf("%s: receipt for %v, want %v", what, r.MsgIDs, msgIDs)
		}
		if at != 0 && r.TS != at {
			t.Fatalf("%s: receipts at %d and %d", what, at, r.TS)
		}
		at = r.TS
	}
	if at <= 0 {
		t.Fatalf("%s: no delivered receipt", what)
	}
	return at
}

// waitPast waits until the wall clock (which stamps acks) is past ms, so
// that the next ack's time differs from an earlier one's.
func waitPast(t testing.TB, ms int64) {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for time.Now().UnixMilli() <= ms {
		if time.Now().After(deadline) {
			t.Fatalf("the clock did not pass %d", ms)
		}
		time.Sleep(time.Millisecond)
	}
}
