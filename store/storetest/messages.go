package storetest

import (
	"errors"
	"fmt"
	"slices"
	"testing"

	"github.com/tern-im/tern/store"
)

func testMessages(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("SendDirect", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		_, err := s.Chat(ctx, w.chatAB)
		wantErr(t, err, store.ErrNotFound, "Chat before its first message")

		req := direct(w.alice, w.a1, w.bob, "c1", 1, "hello", w.b1, w.b2, w.a2)
		r1 := send(t, s, req)
		want := req.Message
		want.Seq = 1
		if r1.Duplicate {
			t.Fatal("first send reported Duplicate")
		}
		checkMessage(t, "first send", r1.Message, want)
		got := byDevice(t, r1.Deliveries)
		if !slices.Equal(sortedKeys(got), sorted([]string{w.b1, w.b2, w.a2})) {
			t.Fatalf("first send delivered to %v, want b1, b2, a2", sortedKeys(got))
		}
		prev := map[string]int64{} // device -> its last cursor
		for dev, evs := range got {
			if len(evs) != 1 || evs[0].Cursor < 1 || evs[0].Kind != store.EventMessage {
				t.Fatalf("first send to %s: %+v, want one message event", dev, evs)
			}
			checkMessage(t, "delivered message", *evs[0].Message, want)
			prev[dev] = evs[0].Cursor
		}
		checkInboxHas(t, s, r1.Deliveries)

		chat, err := s.Chat(ctx, w.chatAB)
		must(t, err)
		if chat.ID != w.chatAB || chat.Kind != "direct" || chat.LastSeq != 1 ||
			!slices.Equal(sorted(chat.Members), sorted([]string{w.alice, w.bob})) {
			t.Fatalf("Chat after first message = %+v", chat)
		}

		req2 := direct(w.alice, w.a1, w.bob, "c2", 2, "again", w.b1, w.b2, w.a2)
		req2.Message.ReplyTo = r1.Message.ID
		r2 := send(t, s, req2)
		want2 := req2.Message
		want2.Seq = 2
		checkMessage(t, "second send", r2.Message, want2)
		for dev, evs := range byDevice(t, r2.Deliveries) {
			if len(evs) != 1 || evs[0].Cursor <= prev[dev] {
				t.Fatalf("second send to %s: cursors %v, want one after %d", dev, cursors(evs), prev[dev])
			}
			prev[dev] = evs[0].Cursor
		}

		// bob answers; "c1" again, but from another device: a new message.
		req3 := direct(w.bob, w.b1, w.alice, "c1", 3, "hi", w.a1, w.a2, w.b2)
		r3 := send(t, s, req3)
		if r3.Duplicate || r3.Message.Seq != 3 || r3.Message.ChatID != w.chatAB {
			t.Fatalf("bob's answer: %+v, want seq 3 in %s", r3.Message, w.chatAB)
		}
		got = byDevice(t, r3.Deliveries)
		if !slices.Equal(sortedKeys(got), sorted([]string{w.a1, w.a2, w.b2})) {
			t.Fatalf("bob's answer delivered to %v, want a1, a2, b2", sortedKeys(got))
		}
		for dev, evs := range got {
			if len(evs) != 1 || evs[0].Cursor <= prev[dev] {
				t.Fatalf("bob's answer to %s: cursors %v, want one after %d", dev, cursors(evs), prev[dev])
			}
		}
		checkInboxHas(t, s, r3.Deliveries)

		evs, head := checkInbox(t, s, w.b2, "inbox of b2", r1.Message.ID, r2.Message.ID, r3.Message.ID)
		if head != evs[2].Cursor {
			t.Fatalf("inbox of b2: cursors %v head %d", cursors(evs), head)
		}
		for i, m := range []store.Message{r1.Message, r2.Message, r3.Message} {
			if evs[i].Kind != store.EventMessage || evs[i].Message == nil {
				t.Fatalf("inbox of b2 at %d: %+v", i+1, evs[i])
			}
			checkMessage(t, fmt.Sprintf("inbox of b2 at %d", i+1), *evs[i].Message, m)
		}
		// a1 wrote the first two: its inbox holds bob's answer only.
		if evs, head := checkInbox(t, s, w.a1, "inbox of a1", r3.Message.ID); head != evs[0].Cursor {
			t.Fatalf("inbox of a1: cursors %v head %d", cursors(evs), head)
		}
		if evs, head := inbox(t, s, w.c1); head != 0 || len(evs) != 0 {
			t.Fatalf("inbox of c1 (no messages): %d events, head %d", len(evs), head)
		}
		chat, err = s.Chat(ctx, w.chatAB)
		must(t, err)
		if chat.LastSeq != 3 {
			t.Fatalf("LastSeq = %d after 3 messages", chat.LastSeq)
		}
	})

	t.Run("Idempotency", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		first := send(t, s, direct(w.alice, w.a1, w.bob, "x", 1, "one", w.b1, w.b2, w.a2))

		again := direct(w.alice, w.a1, w.bob, "x", 2, "changed", w.b1, w.b2, w.a2)
		dup := send(t, s, again)
		if !dup.Duplicate || len(dup.Deliveries) != 0 {
			t.Fatalf("resend: Duplicate %v with %d deliveries; want true and none", dup.Duplicate, len(dup.Deliveries))
		}
		checkMessage(t, "resend answers the first message", dup.Message, first.Message)
		for _, dev := range []string{w.b1, w.a2, w.b2} {
			evs, head := checkInbox(t, s, dev, "inbox after resend", first.Message.ID)
			if head != evs[0].Cursor {
				t.Fatalf("inbox of %s after resend: cursors %v, head %d", dev, cursors(evs), head)
			}
		}
		hist, err := s.History(ctx, w.chatAB, 0, 10)
		must(t, err)
		if len(hist) != 1 {
			t.Fatalf("History after resend has %d messages", len(hist))
		}

		// The key is scoped to the device: a2 may use "x" too.
		other := send(t, s, direct(w.alice, w.a2, w.bob, "x", 3, "from a2", w.b1, w.a1))
		if other.Duplicate || other.Message.Seq != 2 {
			t.Fatalf("same client id from another device: Duplicate %v seq %d; want a new message 2", other.Duplicate, other.Message.Seq)
		}
		// And the first device's key still answers its first message.
		dup = send(t, s, direct(w.alice, w.a1, w.bob, "x", 4, "third try", w.b1))
		if !dup.Duplicate || dup.Message.ID != first.Message.ID || dup.Message.Seq != 1 {
			t.Fatalf("third try: %+v, Duplicate %v", dup.Message, dup.Duplicate)
		}
	})

	t.Run("ConcurrentSends", func(t *testing.T) { testConcurrentSends(t, newStore(t)) })

	t.Run("InboxPaging", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		var ids []string
		for i := range 5 {
			r := send(t, s, direct(w.alice, w.a1, w.bob, fmt.Sprint(i), int64(i), "m", w.b1))
			ids = append(ids, r.Message.ID)
		}
		for _, c := range []struct {
			after int64
			limit int
			want  []int64
		}{
			{0, 2, []int64{1, 2}},
			{2, 2, []int64{3, 4}},
			{4, 2, []int64{5}},
			{5, 2, nil},
			{1, 100, []int64{2, 3, 4, 5}},
		} {
			evs, head, err := s.Inbox(ctx, w.b1, c.after, c.limit)
			must(t, err)
			// A full page's head may stop at its last event.
			minHead := int64(5)
			if len(evs) == c.limit {
				minHead = evs[len(evs)-1].Cursor
			}
			if head < minHead || head > 5 || !slices.Equal(cursors(evs), c.want) {
				t.Fatalf("Inbox(after %d, limit %d) = %v head %d; want %v head 5 (or from %d with a full page)",
					c.after, c.limit, cursors(evs), head, c.want, minHead)
			}
			for _, e := range evs {
				if e.Message.ID != ids[e.Cursor-1] {
					t.Fatalf("Inbox cursor %d holds %s, want %s", e.Cursor, e.Message.ID, ids[e.Cursor-1])
				}
			}
		}
	})

	t.Run("Ack", func(t *testing.T) {
		s := newStore(t)
		w := newWorld(t, s)
		for i := range 5 {
			send(t, s, direct(w.alice, w.a1, w.bob, fmt.Sprint(i), int64(i), "m", w.b1, w.b2))
		}
		ack(t, s, w.b1, 2)
		if evs, head := inbox(t, s, w.b1); head != 5 || !slices.Equal(cursors(evs), []int64{3, 4, 5}) {
			t.Fatalf("after ack 2: %v head %d", cursors(evs), head)
		}
		for _, c := range []int64{2, 1, 0} { // idempotent, and never backwards
			if ds := ack(t, s, w.b1, c); len(ds) != 0 {
				t.Fatalf("repeated ack %d made %d deliveries", c, len(ds))
			}
			if evs, _ := inbox(t, s, w.b1); !slices.Equal(cursors(evs), []int64{3, 4, 5}) {
				t.Fatalf("after repeated ack %d: %v", c, cursors(evs))
			}
		}
		// Acks are per device.
		if evs, _ := inbox(t, s, w.b2); !slices.Equal(cursors(evs), span(1, 5)) {
			t.Fatalf("b2 after b1's ack: %v", cursors(evs))
		}
		ack(t, s, w.b1, 5)
		if evs, head := inbox(t, s, w.b1); head != 5 || len(evs) != 0 {
			t.Fatalf("after ack 5: %v head %d", cursors(evs), head)
		}
		// Cursors go on after the acked ones, never reused.
		r := send(t, s, direct(w.alice, w.a1, w.bob, "next", 9, "m", w.b1))
		if evs, head := inbox(t, s, w.b1); head != 6 || !slices.Equal(cursors(evs), []int64{6}) || r.Deliveries[0].Event.Cursor != 6 {
			t.Fatalf("after a new message: %v head %d", cursors(evs), head)
		}
	})

	t.Run("MessageByID", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		r1 := send(t, s, direct(w.alice, w.a1, w.bob, "1", 1, "first", w.b1))
		r2 := send(t, s, direct(w.bob, w.b1, w.alice, "2", 2, "second", w.a1))
		for _, r := range []store.SendResult{r1, r2} {
			m, err := s.Message(ctx, r.Message.ChatID, r.Message.ID)
			must(t, err)
			if m.ID != r.Message.ID || m.Seq != r.Message.Seq || m.From != r.Message.From || string(m.Body) != string(r.Message.Body) {
				t.Fatalf("Message(%s) = %+v, want %+v", r.Message.ID, m, r.Message)
			}
		}
		other := send(t, s, direct(w.alice, w.a1, w.alice, "3", 3, "note to self"))
		for _, c := range []struct{ chat, id string }{
			{r1.Message.ChatID, "mnosuchmessage"},
			{other.Message.ChatID, r1.Message.ID}, // a message of another chat
			{"cnosuchchat", r1.Message.ID},
			{"", ""},
		} {
			if _, err := s.Message(ctx, c.chat, c.id); !errors.Is(err, store.ErrNotFound) {
				t.Fatalf("Message(%q, %q) = %v, want ErrNotFound", c.chat, c.id, err)
			}
		}
	})

	t.Run("Heads", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		for i := range 3 {
			send(t, s, direct(w.alice, w.a1, w.bob, fmt.Sprint(i), int64(i), "m", w.b1, w.b2))
		}
		ack(t, s, w.b1, 3)
		fresh := newDevice(t, s, w.alice, "a3").ID
		hs, err := s.Heads(ctx, []string{w.b1, w.b2, w.a1, fresh, "dnosuchdevice", ""})
		must(t, err)
		// Acked or not, the head is at least the last cursor used (a1 has
		// the delivered receipt of b1's ack); a device with nothing in its
		// inbox has no events below its head.
		evs, _ := checkInbox(t, s, w.b2, "inbox of b2", msgIDs(t, s, w.chatAB, 1, 3)...)
		if hs[w.b1] != evs[2].Cursor || hs[w.b2] != evs[2].Cursor || hs["dnosuchdevice"] != 0 {
			t.Fatalf("Heads = %v; want b1 and b2 at %d", hs, evs[2].Cursor)
		}
		evs, _ = inbox(t, s, w.a1)
		if len(evs) != 1 || evs[0].Kind != store.EventReceipt || hs[w.a1] < evs[0].Cursor {
			t.Fatalf("a1: Heads %d, inbox %+v; want its one receipt at or below the head", hs[w.a1], evs)
		}
		checkInbox(t, s, fresh, "inbox of a device made after the messages")
		for _, d := range []string{w.b1, w.b2, w.a1, fresh} {
			if _, head := inbox(t, s, d); head != hs[d] {
				t.Fatalf("Heads says %d for %s, Inbox %d", hs[d], d, head)
			}
		}
		if hs, err := s.Heads(ctx, nil); err != nil || len(hs) != 0 {
			t.Fatalf("Heads(nil) = %v, %v", hs, err)
		}
	})

	t.Run("History", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		var msgs []store.Message
		for i := range 7 {
			r := send(t, s, direct(w.alice, w.a1, w.bob, fmt.Sprint(i), int64(i), fmt.Sprint("m", i), w.b1))
			msgs = append(msgs, r.Message)
		}
		for _, c := range []struct {
			before int64
			limit  int
			want   []int64
		}{
			{0, 3, []int64{7, 6, 5}},
			{5, 3, []int64{4, 3, 2}},
			{2, 3, []int64{1}},
			{1, 3, nil},
			{0, 100, []int64{7, 6, 5, 4, 3, 2, 1}},
			{100, 2, []int64{7, 6}},
		} {
			hist, err := s.History(ctx, w.chatAB, c.before, c.limit)
			must(t, err)
			var seqs []int64
			for _, m := range hist {
				seqs = append(seqs, m.Seq)
				checkMessage(t, "History", m, msgs[m.Seq-1])
			}
			if !slices.Equal(seqs, c.want) {
				t.Fatalf("History(before %d, limit %d) = %v, want %v", c.before, c.limit, seqs, c.want)
			}
		}
		hist, err := s.History(ctx, w.chatAC, 0, 10)
		if (err != nil && !errors.Is(err, store.ErrNotFound)) || len(hist) != 0 {
			t.Fatalf("History of a chat without messages: %d messages, error %v", len(hist), err)
		}
	})

	t.Run("SelfChat", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		self := store.DirectChatID(w.alice, w.alice)
		r := send(t, s, direct(w.alice, w.a1, w.alice, "note", 1, "note to self", w.a2))
		if r.Message.ChatID != self || r.Message.Seq != 1 {
			t.Fatalf("self message: %+v", r.Message)
		}
		chat, err := s.Chat(ctx, self)
		must(t, err)
		if !slices.Equal(chat.Members, []string{w.alice}) || chat.LastSeq != 1 {
			t.Fatalf("self chat = %+v, want the one member %s", chat, w.alice)
		}
		if ds := ack(t, s, w.a2, 1); len(ds) != 0 {
			t.Fatalf("acking one's own message made %d receipts", len(ds))
		}
		ds, err := s.MarkRead(ctx, w.alice, self, 1, ts(2), true)
		must(t, err)
		if len(ds) != 0 {
			t.Fatalf("reading one's own message made %d receipts", len(ds))
		}
		sums, err := s.Chats(ctx, w.alice)
		must(t, err)
		if len(sums) != 1 || sums[0].Chat.ID != self || sums[0].Unread != 0 || sums[0].ReadSeq != 1 || sums[0].Last == nil {
			t.Fatalf("Chats(alice) = %+v", sums)
		}
	})

	t.Run("CanceledContext", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		if _, err := s.Send(canceled(), direct(w.alice, w.a1, w.bob, "c", 1, "no", w.b1)); err == nil {
			t.Fatal("Send with a canceled context succeeded")
		}
		hist, err := s.History(ctx, w.chatAB, 0, 10)
		if (err != nil && !errors.Is(err, store.ErrNotFound)) || len(hist) != 0 {
			t.Fatalf("a send with a canceled context stored %d messages (err %v)", len(hist), err)
		}
		if evs, head := inbox(t, s, w.b1); len(evs) != 0 || head != 0 {
			t.Fatalf("a send with a canceled context filled an inbox: %v head %d", cursors(evs), head)
		}
		// The key was not used up either.
		if r := send(t, s, direct(w.alice, w.a1, w.bob, "c", 2, "yes", w.b1)); r.Duplicate || r.Message.Seq != 1 {
			t.Fatalf("send after a canceled one: Duplicate %v seq %d", r.Duplicate, r.Message.Seq)
		}
	})
}

// testConcurrentSends races senders in one chat (and a second chat into the
// same devices) and checks the ordering guarantees: seqs 1..N once each,
// every inbox holding exactly its messages at increasing cursors, and on
// every device a chat's messages in seq order.
func testConcurrentSends(t *testing.T, s store.Store) {
	w := newWorld(t, s)
	const (
		workers = 8
		each    = 50
		carols  = 2
	)
	type sent struct {
		r   store.SendResult
		err error
	}
	results := make([][]sent, workers+carols)
	race(workers+carols, func(g int) {
		results[g] = make([]sent, each)
		for i := range each {
			cid := fmt.Sprintf("w%d-%d", g, i)
			var req store.SendRequest
			switch {
			case g >= workers: // carol into the bob-carol chat
				req = direct(w.carol, w.c1, w.bob, cid, int64(i), cid, w.b1, w.b2)
			case g%2 == 0:
				req = direct(w.alice, w.a1, w.bob, cid, int64(i), cid, w.b1, w.b2, w.a2)
			default:
				req = direct(w.bob, w.b1, w.alice, cid, int64(i), cid, w.a1, w.a2, w.b2)
			}
			r, err := s.Send(t.Context(), req)
			results[g][i] = sent{r, err}
		}
	})

	seqOf := map[string]map[int64]string{w.chatAB: {}, w.chatBC: {}} // chat -> seq -> msg id
	var all []store.Delivery
	for g := range results {
		for _, x := range results[g] {
			if x.err != nil {
				t.Fatalf("concurrent send: %v", x.err)
			}
			m := x.r.Message
			if x.r.Duplicate {
				t.Fatalf("concurrent send of a new message reported Duplicate: %+v", m)
			}
			if prev, ok := seqOf[m.ChatID][m.Seq]; ok {
				t.Fatalf("seq %d of %s given to %s and %s", m.Seq, m.ChatID, prev, m.ID)
			}
			seqOf[m.ChatID][m.Seq] = m.ID
			all = append(all, x.r.Deliveries...)
		}
	}
	for chatID, n := range map[string]int{w.chatAB: workers * each, w.chatBC: carols * each} {
		for seq := int64(1); seq <= int64(n); seq++ {
			if _, ok := seqOf[chatID][seq]; !ok {
				t.Fatalf("%s: seq %d missing among %d messages (not gap-free)", chatID, seq, n)
			}
		}
		chat, err := s.Chat(t.Context(), chatID)
		must(t, err)
		if chat.LastSeq != int64(n) {
			t.Fatalf("%s: LastSeq %d after %d messages", chatID, chat.LastSeq, n)
		}
	}

	// What each device must hold: a2 and b2 everything of their chats, a1
	// and b1 what the other side (and carol, for b1) wrote.
	half := workers / 2 * each
	want := map[string]int{
		w.a1: half,
		w.a2: workers * each,
		w.b1: half + carols*each,
		w.b2: workers*each + carols*each,
	}
	delivered := map[string]map[int64]string{} // device -> cursor -> msg id
	for dev, evs := range byDevice(t, all) {
		delivered[dev] = map[int64]string{}
		for _, e := range evs {
			if _, dup := delivered[dev][e.Cursor]; dup {
				t.Fatalf("cursor %d of %s delivered twice", e.Cursor, dev)
			}
			delivered[dev][e.Cursor] = e.Message.ID
		}
	}
	for dev, n := range want {
		evs, head := inbox(t, s, dev)
		if len(evs) != n || len(delivered[dev]) != n {
			t.Fatalf("inbox of %s: %d events, %d delivered; want %d", dev, len(evs), len(delivered[dev]), n)
		}
		for i, e := range evs {
			if e.Cursor < 1 || i > 0 && e.Cursor <= evs[i-1].Cursor || e.Cursor > head {
				t.Fatalf("inbox of %s: cursor %d after %d, head %d: not increasing", dev, e.Cursor, evs[max(i-1, 0)].Cursor, head)
			}
		}
		last := map[string]int64{}
		for _, e := range evs {
			m := e.Message
			if m.ID != delivered[dev][e.Cursor] {
				t.Fatalf("inbox of %s at %d holds %s, but Send delivered %s there", dev, e.Cursor, m.ID, delivered[dev][e.Cursor])
			}
			if seqOf[m.ChatID][m.Seq] != m.ID {
				t.Fatalf("inbox of %s at %d: %s with seq %d, but that seq is %s", dev, e.Cursor, m.ID, m.Seq, seqOf[m.ChatID][m.Seq])
			}
			if m.Seq <= last[m.ChatID] {
				t.Fatalf("inbox of %s: seq %d of %s at cursor %d after seq %d: not in chat order", dev, m.Seq, m.ChatID, e.Cursor, last[m.ChatID])
			}
			last[m.ChatID] = m.Seq
		}
	}
	hist, err := s.History(t.Context(), w.chatAB, 0, 100000)
	must(t, err)
	if len(hist) != workers*each {
		t.Fatalf("History has %d of %d messages", len(hist), workers*each)
	}
	for i, m := range hist {
		if m.Seq != int64(len(hist)-i) || m.ID != seqOf[w.chatAB][m.Seq] {
			t.Fatalf("History[%d] = seq %d id %s", i, m.Seq, m.ID)
		}
	}
}

func testReceipts(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("DeliveredOncePerReader", func(t *testing.T) {
		s := newStore(t)
		w := newWorld(t, s)
		m1 := send(t, s, direct(w.alice, w.a1, w.bob, "1", 1, "one", w.b1, w.b2, w.a2)).Message
		m2 := send(t, s, direct(w.alice, w.a1, w.bob, "2", 2, "two", w.b1, w.b2, w.a2)).Message

		// alice's other device acking her own messages tells nobody anything.
		checkReceipts(t, "a2 acks its own messages", ack(t, s, w.a2, 2), nil)

		ds := ack(t, s, w.b1, 2)
		checkReceipts(t, "b1 acks", ds, []string{w.a1, w.a2},
			wantReceipt{w.chatAB, store.StatusDelivered, w.bob, []string{m1.ID, m2.ID}})
		checkInboxHas(t, s, ds)

		// bob's second device: already delivered to bob.
		checkReceipts(t, "b2 acks the same messages", ack(t, s, w.b2, 2), nil)
		checkReceipts(t, "b1 acks again", ack(t, s, w.b1, 2), nil)

		// The other order: b2 first this time.
		m3 := send(t, s, direct(w.alice, w.a1, w.bob, "3", 3, "three", w.b1, w.b2, w.a2)).Message
		checkReceipts(t, "b2 acks m3", ack(t, s, w.b2, 3), []string{w.a1, w.a2},
			wantReceipt{w.chatAB, store.StatusDelivered, w.bob, []string{m3.ID}})
		checkReceipts(t, "b1 acks m3", ack(t, s, w.b1, 3), nil)

		// bob's own message, acked by his other device: no receipt.
		send(t, s, direct(w.bob, w.b1, w.alice, "4", 4, "four", w.a1, w.a2, w.b2))
		checkReceipts(t, "b2 acks bob's own message", ack(t, s, w.b2, 4), nil)
		if evs, _ := inbox(t, s, w.b1); len(evs) != 0 {
			t.Fatalf("receipts reached bob for his own message: %v", cursors(evs))
		}
		// Receipts in alice's inboxes are events like any other: acking them
		// removes them and answers nothing.
		evs, _ := inbox(t, s, w.a1)
		if len(evs) != 3 || evs[0].Kind != store.EventReceipt || evs[1].Kind != store.EventReceipt || evs[2].Kind != store.EventMessage {
			t.Fatalf("inbox of a1: %+v; want two receipts, then bob's message", evs)
		}
		checkReceipts(t, "a1 acks receipts", ack(t, s, w.a1, 2), nil)
	})

	t.Run("DeliveredGroupedPerChatAndAuthor", func(t *testing.T) {
		s := newStore(t)
		w := newWorld(t, s)
		mc := send(t, s, direct(w.carol, w.c1, w.bob, "1", 1, "from carol", w.b1)).Message
		ma1 := send(t, s, direct(w.alice, w.a1, w.bob, "1", 2, "from alice", w.b1)).Message
		mc2 := send(t, s, direct(w.carol, w.c1, w.bob, "2", 3, "carol again", w.b1)).Message
		ma2 := send(t, s, direct(w.alice, w.a2, w.bob, "1", 4, "alice from a2", w.b1)).Message
		ds := ack(t, s, w.b1, 4)
		checkInboxHas(t, s, ds)
		got := byDevice(t, ds)
		if !slices.Equal(sortedKeys(got), sorted([]string{w.a1, w.a2, w.c1})) {
			t.Fatalf("receipts went to %v", sortedKeys(got))
		}
		checkReceipts(t, "to carol", filter(ds, w.c1), []string{w.c1},
			wantReceipt{w.chatBC, store.StatusDelivered, w.bob, []string{mc.ID, mc2.ID}})
		// Both of alice's messages, whichever device wrote them, in one receipt
		// to each of her devices.
		checkReceipts(t, "to alice", filter(ds, w.a1, w.a2), []string{w.a1, w.a2},
			wantReceipt{w.chatAB, store.StatusDelivered, w.bob, []string{ma1.ID, ma2.ID}})
	})

	t.Run("Read", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		var ids []string
		for i, from := range []string{w.alice, w.alice, w.alice, w.bob, w.alice} {
			req := direct(w.alice, w.a1, w.bob, fmt.Sprint(i), int64(i), "m", w.b1, w.b2, w.a2)
			if from == w.bob {
				req = direct(w.bob, w.b1, w.alice, fmt.Sprint(i), int64(i), "m", w.a1, w.a2, w.b2)
			}
			ids = append(ids, send(t, s, req).Message.ID)
		}
		readSeq := func() int64 {
			t.Helper()
			sums, err := s.Chats(ctx, w.bob)
			must(t, err)
			if len(sums) != 1 {
				t.Fatalf("Chats(bob) has %d chats", len(sums))
			}
			return sums[0].ReadSeq
		}
		if rs := readSeq(); rs != 0 {
			t.Fatalf("ReadSeq %d before any read", rs)
		}

		ds, err := s.MarkRead(ctx, w.bob, w.chatAB, 2, ts(100), true)
		must(t, err)
		checkReceipts(t, "bob reads to 2", ds, []string{w.a1, w.a2},
			wantReceipt{w.chatAB, store.StatusRead, w.bob, ids[:2]})
		for _, d := range ds {
			if d.Event.Receipt.TS != ts(100) {
				t.Fatalf("read receipt TS %d, want the read's %d", d.Event.Receipt.TS, ts(100))
			}
		}
		checkInboxHas(t, s, ds)
		if rs := readSeq(); rs != 2 {
			t.Fatalf("ReadSeq %d after reading to 2", rs)
		}

		// Backwards or in place: nothing moves, nothing is sent.
		for _, seq := range []int64{1, 2} {
			ds, err = s.MarkRead(ctx, w.bob, w.chatAB, seq, ts(101), true)
			must(t, err)
			checkReceipts(t, fmt.Sprintf("bob reads to %d again", seq), ds, nil)
			if rs := readSeq(); rs != 2 {
				t.Fatalf("ReadSeq %d after reading to %d", rs, seq)
			}
		}

		// Past the end: capped at the last seq; bob's own message 4 excluded.
		ds, err = s.MarkRead(ctx, w.bob, w.chatAB, 100, ts(102), true)
		must(t, err)
		checkReceipts(t, "bob reads to 100", ds, []string{w.a1, w.a2},
			wantReceipt{w.chatAB, store.StatusRead, w.bob, []string{ids[2], ids[4]}})
		if rs := readSeq(); rs != 5 {
			t.Fatalf("ReadSeq %d after reading past the end, want 5", rs)
		}

		// Without notify (the reader hides receipts) the mark still moves.
		send(t, s, direct(w.alice, w.a1, w.bob, "6", 6, "m", w.b1))
		send(t, s, direct(w.alice, w.a1, w.bob, "7", 7, "m", w.b1))
		_, before := inbox(t, s, w.a1)
		ds, err = s.MarkRead(ctx, w.bob, w.chatAB, 7, ts(103), false)
		must(t, err)
		checkReceipts(t, "bob reads silently", ds, nil)
		if rs := readSeq(); rs != 7 {
			t.Fatalf("ReadSeq %d after a silent read to 7", rs)
		}
		if _, after := inbox(t, s, w.a1); after != before {
			t.Fatalf("a silent read appended to a1's inbox (head %d -> %d)", before, after)
		}

		// alice reads: bob's one message gets a receipt, to bob's devices.
		ds, err = s.MarkRead(ctx, w.alice, w.chatAB, 7, ts(104), true)
		must(t, err)
		checkReceipts(t, "alice reads", ds, []string{w.b1, w.b2},
			wantReceipt{w.chatAB, store.StatusRead, w.alice, []string{ids[3]}})

		_, err = s.MarkRead(ctx, w.bob, w.chatBC, 1, ts(105), true)
		wantErr(t, err, store.ErrNotFound, "MarkRead of a chat that does not exist")
		_, err = s.MarkRead(ctx, w.carol, w.chatAB, 1, ts(105), true)
		wantErr(t, err, store.ErrNotFound, "MarkRead by a non-member")
	})
}

func filter(ds []store.Delivery, devices ...string) []store.Delivery {
	var out []store.Delivery
	for _, d := range ds {
		if slices.Contains(devices, d.DeviceID) {
			out = append(out, d)
		}
	}
	return out
}

func testChats(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Summaries", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		send(t, s, direct(w.alice, w.a1, w.bob, "1", 1000, "hi bob", w.b1))
		fromBob := send(t, s, direct(w.bob, w.b1, w.alice, "1", 2000, "hi alice", w.a1)).Message
		fromCarol := send(t, s, direct(w.carol, w.c1, w.alice, "1", 3000, "hi from carol", w.a1)).Message

		type row struct {
			chat             string
			last             store.Message
			lastSeq, readSeq int64
			unread           int64
		}
		check := func(user string, want ...row) {
			t.Helper()
			sums, err := s.Chats(ctx, user)
			must(t, err)
			if len(sums) != len(want) {
				t.Fatalf("Chats has %d chats, want %d: %+v", len(sums), len(want), sums)
			}
			for i, r := range want {
				g := sums[i]
				if g.Chat.ID != r.chat {
					t.Fatalf("Chats[%d] is %s, want %s (most recent first)", i, g.Chat.ID, r.chat)
				}
				if g.Last == nil {
					t.Fatalf("Chats[%d] has no last message", i)
				}
				checkMessage(t, fmt.Sprintf("Chats[%d].Last", i), *g.Last, r.last)
				if g.Chat.LastSeq != r.lastSeq || g.ReadSeq != r.readSeq || g.Unread != r.unread || len(g.Chat.Members) != 2 {
					t.Fatalf("Chats[%d] = LastSeq %d ReadSeq %d Unread %d members %v; want %d %d %d",
						i, g.Chat.LastSeq, g.ReadSeq, g.Unread, g.Chat.Members, r.lastSeq, r.readSeq, r.unread)
				}
			}
		}
		check(w.alice,
			row{w.chatAC, fromCarol, 1, 0, 1},
			row{w.chatAB, fromBob, 2, 0, 1})
		check(w.bob, row{w.chatAB, fromBob, 2, 0, 1})
		check(w.carol, row{w.chatAC, fromCarol, 1, 0, 0})

		// New activity moves a chat to the top; own messages are not unread.
		mine := send(t, s, direct(w.alice, w.a1, w.bob, "2", 4000, "still there?", w.b1)).Message
		check(w.alice,
			row{w.chatAB, mine, 3, 0, 1},
			row{w.chatAC, fromCarol, 1, 0, 1})
		check(w.bob, row{w.chatAB, mine, 3, 0, 2})

		_, err := s.MarkRead(ctx, w.alice, w.chatAB, 3, ts(5000), false)
		must(t, err)
		_, err = s.MarkRead(ctx, w.bob, w.chatAB, 2, ts(5000), false)
		must(t, err)
		check(w.alice,
			row{w.chatAB, mine, 3, 3, 0},
			row{w.chatAC, fromCarol, 1, 0, 1})
		check(w.bob, row{w.chatAB, mine, 3, 2, 1})

		sums, err := s.Chats(ctx, store.NewID(store.PrefixUser))
		must(t, err)
		if len(sums) != 0 {
			t.Fatalf("Chats of a user without chats = %+v", sums)
		}
	})
}

// msgIDs returns the ids of the messages from..to of chatID, in seq order.
func msgIDs(t testing.TB, s store.Store, chatID string, from, to int64) []string {
	t.Helper()
	hist, err := s.History(t.Context(), chatID, to+1, int(to-from+1))
	must(t, err)
	out := make([]string, len(hist))
	for i, m := range hist {
		out[len(hist)-1-i] = m.ID
	}
	return out
}

// testEchoToSender: a send with EchoToSender reaches the sending device's
// own inbox, in order with what else it got; without, it does not.
func testEchoToSender(t *testing.T, s store.Store) {
	w := newWorld(t, s)
	plain := send(t, s, direct(w.alice, w.a1, w.bob, "e1", 1, "not echoed", w.b1, w.b2, w.a2))
	if plain.Duplicate {
		t.Fatal("duplicate")
	}
	req := direct(w.alice, w.a1, w.bob, "e2", 2, "echoed", w.b1, w.b2, w.a2, w.a1)
	req.EchoToSender = true
	r := send(t, s, req)
	got := byDevice(t, r.Deliveries)
	if !slices.Equal(sortedKeys(got), sorted([]string{w.a1, w.a2, w.b1, w.b2})) {
		t.Fatalf("an echoed send delivered to %v, want a1 too", sortedKeys(got))
	}
	evs, _ := inbox(t, s, w.a1)
	if len(evs) != 1 || evs[0].Message == nil || evs[0].Message.ID != r.Message.ID {
		t.Fatalf("the sender's inbox after an echoed send: %+v, want only that send", evs)
	}
	checkInboxHas(t, s, r.Deliveries)
}
