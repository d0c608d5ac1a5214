package mongo

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/storetest"
)

func TestConformance(t *testing.T) {
	needServer(t)
	storetest.Run(t, func(t *testing.T) store.Store { return newStore(t) })
}

func TestReopen(t *testing.T) {
	needServer(t)
	dropped := map[string]bool{}
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store {
		// The "directory" of a MongoDB store is its database.
		sum := sha256.Sum256([]byte(dir))
		name := "tern_reopen_" + hex.EncodeToString(sum[:6])
		if !dropped[name] {
			dropped[name] = true
			dropDB(t, name)
		}
		s, err := Open(t.Context(), Config{URI: needServer(t), Database: name, Timeout: 30 * time.Second})
		if err != nil {
			t.Fatal(err)
		}
		return s
	})
}

func TestOpenErrors(t *testing.T) {
	if _, err := Open(t.Context(), Config{}); err == nil {
		t.Fatal("Open without a URI succeeded")
	}
	if _, err := Open(t.Context(), Config{URI: "mongodb://127.0.0.1:1/", WriteConcern: "most"}); err == nil {
		t.Fatal("Open with write concern \"most\" succeeded")
	}
	// Nothing listens on port 1: Open must give up within its timeout.
	t0 := time.Now()
	if _, err := Open(t.Context(), Config{URI: "mongodb://127.0.0.1:1/", Timeout: 300 * time.Millisecond}); err == nil {
		t.Fatal("Open of a closed port succeeded")
	}
	if d := time.Since(t0); d > 5*time.Second {
		t.Fatalf("Open of a closed port took %v", d)
	}
}

func TestWriteConcernOne(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	s := openDB(t, name, Config{WriteConcern: "1"})
	if _, _, err := s.EnsureUser(t.Context(), "+15550000001", store.NewID(store.PrefixUser), time.Now()); err != nil {
		t.Fatal(err)
	}
}

func TestIndexes(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	db := s.users.Database()
	for _, ix := range Indexes() {
		cur, err := db.Collection(ix.Collection).Indexes().List(ctx)
		if err != nil {
			t.Fatal(err)
		}
		var got []bson.M
		if err := cur.All(ctx, &got); err != nil {
			t.Fatal(err)
		}
		found := false
		for _, g := range got {
			var keys []string
			for _, e := range g["key"].(bson.D) {
				keys = append(keys, e.Key)
			}
			if slices.Equal(keys, ix.Keys) {
				found = true
				if u, _ := g["unique"].(bool); u != ix.Unique {
					t.Errorf("index %s %v: unique %v, want %v", ix.Collection, ix.Keys, u, ix.Unique)
				}
			}
		}
		if !found {
			t.Errorf("index %s %v missing; have %v", ix.Collection, ix.Keys, got)
		}
	}
	// Opening again (another node starting) finds them in place.
	openDB(t, s.users.Database().Name(), Config{})
}

// cast is the users and devices of the multi-node tests.
type cast struct {
	alice, bob, carol  string
	a1, a2, b1, b2, c1 string
}

func newCast(t *testing.T, s store.Store) cast {
	t.Helper()
	ctx := t.Context()
	var c cast
	user := func(phone string) string {
		u, _, err := s.EnsureUser(ctx, phone, store.NewID(store.PrefixUser), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		return u.ID
	}
	device := func(user string) string {
		d := store.Device{ID: store.NewID(store.PrefixDevice), UserID: user, CreatedAt: time.Now(), RefreshHash: []byte("h")}
		if err := s.CreateDevice(ctx, d); err != nil {
			t.Fatal(err)
		}
		return d.ID
	}
	c.alice, c.bob, c.carol = user("+15550000001"), user("+15550000002"), user("+15550000003")
	c.a1, c.a2 = device(c.alice), device(c.alice)
	c.b1, c.b2 = device(c.bob), device(c.bob)
	c.c1 = device(c.carol)
	return c
}

func directReq(from, fromDevice, to, clientID string, devices ...string) store.SendRequest {
	members := []string{from, to}
	body, _ := json.Marshal(map[string]string{"text": clientID})
	return store.SendRequest{
		ClientID: clientID,
		Message: store.Message{
			ID: store.NewID(store.PrefixMessage), ChatID: store.DirectChatID(from, to),
			From: from, FromDevice: fromDevice, TS: time.Now().UnixMilli(), Body: body,
		},
		Kind: "direct", Members: members, Devices: devices,
	}
}

// TestTwoNodes races senders on two Stores (two nodes) sharing a database,
// into one chat and into the same devices from two chats, and checks that
// seqs and cursors come out unique, gap-free and in chat order on every
// device. Some senders also resend, on the other node, a message they sent.
func TestTwoNodes(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	nodes := []*Store{openDB(t, name, Config{}), openDB(t, name, Config{})}
	c := newCast(t, nodes[0])
	const (
		workers = 6 // per node
		each    = 25
	)
	chatAB, chatBC := store.DirectChatID(c.alice, c.bob), store.DirectChatID(c.bob, c.carol)
	type result struct {
		r   store.SendResult
		err error
	}
	var (
		mu      sync.Mutex
		results []result
		wg      sync.WaitGroup
	)
	start := make(chan struct{})
	for n, s := range nodes {
		for w := range workers {
			wg.Go(func() {
				<-start
				for i := range each {
					cid := fmt.Sprintf("n%d-w%d-%d", n, w, i)
					var req store.SendRequest
					switch w % 3 {
					case 0:
						req = directReq(c.alice, c.a1, c.bob, cid, c.b1, c.b2, c.a2)
					case 1:
						req = directReq(c.bob, c.b1, c.alice, cid, c.a1, c.a2, c.b2)
					default:
						req = directReq(c.carol, c.c1, c.bob, cid, c.b1, c.b2)
					}
					r, err := s.Send(t.Context(), req)
					if err == nil && i%10 == 0 {
						// A resend through the other node: the same answer.
						dup, derr := nodes[1-n].Send(t.Context(), req)
						if derr == nil && (!dup.Duplicate || dup.Message.ID != r.Message.ID || dup.Message.Seq != r.Message.Seq || len(dup.Deliveries) != 0) {
							derr = fmt.Errorf("resend of %s on the other node: %+v, Duplicate %v", cid, dup.Message, dup.Duplicate)
						}
						err = derr
					}
					mu.Lock()
					results = append(results, result{r, err})
					mu.Unlock()
				}
			})
		}
	}
	close(start)
	wg.Wait()

	seqOf := map[string]map[int64]string{chatAB: {}, chatBC: {}}
	delivered := map[string]map[int64]string{}
	for _, x := range results {
		if x.err != nil {
			t.Fatal(x.err)
		}
		m := x.r.Message
		if x.r.Duplicate {
			t.Fatalf("a new message reported Duplicate: %+v", m)
		}
		if prev, ok := seqOf[m.ChatID][m.Seq]; ok {
			t.Fatalf("seq %d of %s given to %s and %s", m.Seq, m.ChatID, prev, m.ID)
		}
		seqOf[m.ChatID][m.Seq] = m.ID
		for _, d := range x.r.Deliveries {
			if delivered[d.DeviceID] == nil {
				delivered[d.DeviceID] = map[int64]string{}
			}
			if prev, ok := delivered[d.DeviceID][d.Event.Cursor]; ok {
				t.Fatalf("cursor %d of %s delivered for %s and %s", d.Event.Cursor, d.DeviceID, prev, d.Event.Message.ID)
			}
			delivered[d.DeviceID][d.Event.Cursor] = d.Event.Message.ID
		}
	}
	perKind := workers / 3 * 2 * each // senders of each kind, on both nodes
	for chatID, n := range map[string]int{chatAB: 2 * perKind, chatBC: perKind} {
		for seq := int64(1); seq <= int64(n); seq++ {
			if _, ok := seqOf[chatID][seq]; !ok {
				t.Fatalf("%s: seq %d missing among %d messages", chatID, seq, n)
			}
		}
		for _, s := range nodes {
			chat, err := s.Chat(t.Context(), chatID)
			if err != nil || chat.LastSeq != int64(n) {
				t.Fatalf("%s: LastSeq %d (err %v) after %d messages", chatID, chat.LastSeq, err, n)
			}
		}
	}
	want := map[string]int{c.a1: perKind, c.a2: 2 * perKind, c.b1: perKind + perKind, c.b2: 2*perKind + perKind}
	for dev, n := range want {
		for _, s := range nodes {
			evs, head, err := s.Inbox(t.Context(), dev, 0, 100000)
			if err != nil {
				t.Fatal(err)
			}
			// A user's devices share its feed: a device's cursors skip
			// its own messages, which its other devices read.
			if len(evs) != n || head < evs[len(evs)-1].Cursor {
				t.Fatalf("inbox of %s: %d events, head %d; want %d", dev, len(evs), head, n)
			}
			last := map[string]int64{}
			for i, e := range evs {
				m := e.Message
				if i > 0 && e.Cursor <= evs[i-1].Cursor {
					t.Fatalf("inbox of %s: cursor %d after %d", dev, e.Cursor, evs[i-1].Cursor)
				}
				if delivered[dev][e.Cursor] != m.ID || seqOf[m.ChatID][m.Seq] != m.ID {
					t.Fatalf("inbox of %s at %d holds %s (seq %d), Send said %s", dev, e.Cursor, m.ID, m.Seq, delivered[dev][e.Cursor])
				}
				if m.Seq <= last[m.ChatID] {
					t.Fatalf("inbox of %s: seq %d of %s after seq %d: not in chat order", dev, m.Seq, m.ChatID, last[m.ChatID])
				}
				last[m.ChatID] = m.Seq
			}
		}
	}
	// A feed is gap-free: its devices' cursors together are 1..n.
	for user, devs := range map[string][]string{c.alice: {c.a1, c.a2}, c.bob: {c.b1, c.b2}} {
		seen := map[int64]bool{}
		for _, d := range devs {
			evs, _, err := nodes[0].Inbox(t.Context(), d, 0, 0)
			if err != nil {
				t.Fatal(err)
			}
			for _, e := range evs {
				seen[e.Cursor] = true
			}
		}
		for k := int64(1); k <= int64(len(seen)); k++ {
			if !seen[k] {
				t.Fatalf("feed of %s: no device reads cursor %d of %d: a gap", user, k, len(seen))
			}
		}
	}
}

// TestTwoNodesAck races acks of one reader's two devices on two nodes:
// every message gets one delivered receipt.
func TestTwoNodesAck(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	nodes := []*Store{openDB(t, name, Config{}), openDB(t, name, Config{})}
	c := newCast(t, nodes[0])
	ctx := t.Context()
	const n = 30
	for i := range n {
		if _, err := nodes[i%2].Send(ctx, directReq(c.alice, c.a1, c.bob, fmt.Sprint(i), c.b1, c.b2)); err != nil {
			t.Fatal(err)
		}
	}
	var (
		mu  sync.Mutex
		got = map[string]int{} // msg id -> receipts to a1
		wg  sync.WaitGroup
	)
	for i, dev := range []string{c.b1, c.b2} {
		wg.Go(func() {
			// b1 acks every event, b2 every other one; both end at n.
			for cur := int64(1); ; cur = min(cur+1+int64(i), n) {
				ds, err := nodes[i].Ack(ctx, dev, cur)
				if err != nil {
					t.Error(err)
					return
				}
				mu.Lock()
				for _, d := range ds {
					if d.DeviceID == c.a1 {
						for _, id := range d.Event.Receipt.MsgIDs {
							got[id]++
						}
					}
				}
				mu.Unlock()
				if cur == n {
					return
				}
			}
		})
	}
	wg.Wait()
	if len(got) != n {
		t.Fatalf("delivered receipts for %d of %d messages: %v", len(got), n, got)
	}
	for id, k := range got {
		if k != 1 {
			t.Fatalf("message %s got %d delivered receipts", id, k)
		}
	}
	evs, _, err := nodes[0].Inbox(ctx, c.a1, 0, 1000)
	if err != nil {
		t.Fatal(err)
	}
	for i, e := range evs {
		if e.Cursor != int64(i+1) || e.Kind != store.EventReceipt {
			t.Fatalf("inbox of a1 at %d: cursor %d kind %s", i, e.Cursor, e.Kind)
		}
	}
}

// TestLockTakeover leaves a chat locked by a "dead node" that had written
// its message to the log but no inbox events, and checks that the next
// sender takes the lock over after the lock timeout, completes the dead
// send (same seq, events delivered) and then sends its own.
func TestLockTakeover(t *testing.T) {
	for _, dead := range []bool{false, true} {
		t.Run(fmt.Sprintf("dead=%v", dead), func(t *testing.T) {
			s := newStore(t)
			s.lockTimeout = 300 * time.Millisecond
			ctx := t.Context()
			c := newCast(t, s)
			first, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, "1", c.b1, c.a2))
			if err != nil {
				t.Fatal(err)
			}
			chatID := first.Message.ChatID
			// The dead node: it locked the chat and logged message 2.
			orphan := directReq(c.alice, c.a1, c.bob, "2").Message
			orphan.Seq = 2
			if _, err := s.messages.InsertOne(ctx, msgDoc{ID: numKey(chatID, 2), Msg: *msgOf(&orphan), Key: "c:2"}); err != nil {
				t.Fatal(err)
			}
			if _, err := s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: chatID}},
				bson.D{{Key: "$set", Value: bson.D{{Key: "lock", Value: lockDoc{T: "dead-node", Dead: dead}}}}}); err != nil {
				t.Fatal(err)
			}
			t0 := time.Now()
			r, err := s.Send(ctx, directReq(c.bob, c.b1, c.alice, "3", c.a1, c.a2, c.b2))
			if err != nil {
				t.Fatal(err)
			}
			waited := time.Since(t0)
			// The events that completed the dead send come back with the
			// taker's own, for the caller to route: nobody else will.
			completed := map[string]bool{}
			for _, d := range r.Deliveries {
				if d.Event.Message != nil && d.Event.Message.ID == orphan.ID {
					completed[d.DeviceID] = true
				}
			}
			if len(completed) != 3 || !completed[c.b1] || !completed[c.b2] || !completed[c.a2] {
				t.Fatalf("deliveries of the completed send: %v, want b1, b2 and a2", completed)
			}
			if !dead && waited < s.lockTimeout {
				t.Fatalf("took a live-looking lock over after %v (timeout %v)", waited, s.lockTimeout)
			}
			if dead && waited > s.lockTimeout {
				t.Fatalf("waited %v for a lock marked dead", waited)
			}
			if r.Message.Seq != 3 {
				t.Fatalf("send after the takeover got seq %d, want 3", r.Message.Seq)
			}
			hist, err := s.History(ctx, chatID, 0, 10)
			if err != nil || len(hist) != 3 || hist[1].ID != orphan.ID {
				t.Fatalf("History = %d messages (err %v), want 3 with the dead node's second", len(hist), err)
			}
			// Every device of the chat but the writer got the dead send
			// (and a user's devices share its feed: b2 reads the first
			// message, sent to b1, too).
			for dev, want := range map[string][]string{
				c.b1: {first.Message.ID, orphan.ID},
				c.b2: {first.Message.ID, orphan.ID, r.Message.ID},
				c.a2: {first.Message.ID, orphan.ID, r.Message.ID},
				c.a1: {r.Message.ID},
			} {
				evs, _, err := s.Inbox(ctx, dev, 0, 100)
				if err != nil {
					t.Fatal(err)
				}
				var ids []string
				for i, e := range evs {
					if i > 0 && e.Cursor <= evs[i-1].Cursor {
						t.Fatalf("inbox of %s: cursor %d after %d", dev, e.Cursor, evs[i-1].Cursor)
					}
					ids = append(ids, e.Message.ID)
				}
				if !slices.Equal(ids, want) {
					t.Fatalf("inbox of %s = %v, want %v", dev, ids, want)
				}
			}
			// The dead send's key answers it.
			dup, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, "2", c.b1))
			if err != nil || !dup.Duplicate || dup.Message.ID != orphan.ID || dup.Message.Seq != 2 {
				t.Fatalf("resend of the dead send: %+v Duplicate %v err %v", dup.Message, dup.Duplicate, err)
			}
		})
	}
}

// TestEntryBelowTrim stages the race that confirmFeed exists for: a
// writer read a feed's head, and before it inserted, every device of the
// user acked past that point and the entries there were trimmed. The
// entry must not stay on the trimmed cursor.
func TestEntryBelowTrim(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	for i := range 3 {
		if _, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, fmt.Sprint(i), c.b1, c.b2)); err != nil {
			t.Fatal(err)
		}
	}
	for _, d := range []string{c.b1, c.b2} {
		if _, err := s.Ack(ctx, d, 3); err != nil {
			t.Fatal(err)
		}
	}
	if n := stored(ctx, t, s, c.bob); n != 0 {
		t.Fatalf("%d entries stored after both devices acked all", n)
	}
	m := &store.Message{ID: store.NewID(store.PrefixMessage), ChatID: "cx", Seq: 1, From: c.alice, FromDevice: c.a1, Body: json.RawMessage(`{}`)}
	o := &feedOut{user: c.bob, devices: []string{c.b1}, event: store.Event{Kind: store.EventMessage, Message: m},
		doc: feedDoc{Kind: kindMessage, Msg: msgOf(m)}}
	// The head as read before the acks: the entry lands on cursor 2.
	ds, err := s.appendFrom(ctx, map[string]int64{c.bob: 2}, []*feedOut{o})
	if err != nil {
		t.Fatal(err)
	}
	if len(ds) != 1 || ds[0].Event.Cursor != 4 {
		t.Fatalf("deliveries %+v, want one at cursor 4", ds)
	}
	evs, head, err := s.Inbox(ctx, c.b1, 0, 100)
	if err != nil || len(evs) != 1 || evs[0].Cursor != 4 || head != 4 {
		t.Fatalf("inbox of b1: %v head %d err %v; want the event at 4", evs, head, err)
	}
	if n := stored(ctx, t, s, c.bob); n != 1 {
		t.Fatalf("%d entries stored for bob, want 1: the one below the trim point stayed", n)
	}
}

// TestSendSkipsDeletedDevices: a send to a device that was deleted creates
// no inbox for it.
func TestSendSkipsDeletedDevices(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	if err := s.DeleteDevice(ctx, c.b2); err != nil {
		t.Fatal(err)
	}
	r, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, "1", c.b1, c.b2))
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Deliveries) != 1 || r.Deliveries[0].DeviceID != c.b1 {
		t.Fatalf("deliveries %+v, want b1 only", r.Deliveries)
	}
	if evs, _, err := s.Inbox(ctx, c.b2, 0, 0); err != nil || len(evs) != 0 {
		t.Fatalf("deleted device has events %v (err %v)", evs, err)
	}
}

// TestSendGivesUpWaiting: a send that waits for a chat lock stops when its
// context ends, leaving no trace; once the lock is free the chat goes on
// without a gap.
func TestSendGivesUpWaiting(t *testing.T) {
	s := newStore(t)
	c := newCast(t, s)
	ctx := t.Context()
	first, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, "1", c.b1))
	if err != nil {
		t.Fatal(err)
	}
	chatID := first.Message.ChatID
	setLock := func(v any) {
		t.Helper()
		if _, err := s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: chatID}}, bson.D{{Key: "$set", Value: bson.D{{Key: "lock", Value: v}}}}); err != nil {
			t.Fatal(err)
		}
	}
	setLock(lockDoc{T: "another-node"})
	wctx, cancel := context.WithTimeout(ctx, 200*time.Millisecond)
	defer cancel()
	if _, err := s.Send(wctx, directReq(c.alice, c.a1, c.bob, "2", c.b1)); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("send waiting for a held lock: %v, want the context's deadline", err)
	}
	if _, err := s.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: chatID}}, bson.D{{Key: "$unset", Value: bson.D{{Key: "lock", Value: ""}}}}); err != nil {
		t.Fatal(err)
	}
	r, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, "2", c.b1))
	if err != nil || r.Duplicate || r.Message.Seq != 2 || r.Deliveries[0].Event.Cursor != 2 {
		t.Fatalf("send after the lock was freed: %+v, err %v; want seq 2 at cursor 2", r, err)
	}
}

// TestResendAfterInsertFailed: a send whose message insert was applied but
// answered with an error (a timeout, a cut connection) must not leave its
// message in the log, uncommitted and in no inbox, for a resend to find by
// its key and answer as sent. The lock stays marked dead, and the resend,
// on another node, completes the message at once before answering.
func TestResendAfterInsertFailed(t *testing.T) {
	name := dbName()
	dropDB(t, name)
	failing, other := openDB(t, name, Config{}), openDB(t, name, Config{})
	failing.stopAck = func(step string) bool { return step == sendStepInserted }
	ctx := t.Context()
	c := newCast(t, other)
	if _, err := other.Send(ctx, directReq(c.alice, c.a1, c.bob, "1", c.b1)); err != nil {
		t.Fatal(err)
	}
	if _, err := failing.Send(ctx, directReq(c.alice, c.a1, c.bob, "2", c.b1)); !errors.Is(err, errStopped) {
		t.Fatalf("send whose insert failed: %v", err)
	}
	t0 := time.Now()
	dup, err := other.Send(ctx, directReq(c.alice, c.a1, c.bob, "2", c.b1))
	if err != nil || !dup.Duplicate || dup.Message.Seq != 2 {
		t.Fatalf("resend: %+v Duplicate %v err %v", dup.Message, dup.Duplicate, err)
	}
	if waited := time.Since(t0); waited >= other.lockTimeout {
		t.Fatalf("the resend waited %v for the lock: it was not left marked dead", waited)
	}
	if !deliversTo(dup.Deliveries, c.b1, dup.Message.ID) {
		t.Fatalf("resend deliveries %+v, want the completed message for b1", dup.Deliveries)
	}
	checkDelivered(ctx, t, other, c.b1, 2)
}

// TestResendFindsUncommittedMessage: a message in the log above the chat's
// committed seq with no lock on the chat (what an older version left when
// its insert failed after it was applied) is completed by its resend
// before the resend answers sent.
func TestResendFindsUncommittedMessage(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	first, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, "1", c.b1))
	if err != nil {
		t.Fatal(err)
	}
	orphan := directReq(c.alice, c.a1, c.bob, "2").Message
	orphan.ChatID, orphan.Seq = first.Message.ChatID, 2
	if _, err := s.messages.InsertOne(ctx, msgDoc{ID: numKey(orphan.ChatID, 2), Msg: *msgOf(&orphan), Key: "c:2"}); err != nil {
		t.Fatal(err)
	}
	dup, err := s.Send(ctx, directReq(c.alice, c.a1, c.bob, "2", c.b1))
	if err != nil || !dup.Duplicate || dup.Message.ID != orphan.ID {
		t.Fatalf("resend: %+v Duplicate %v err %v", dup.Message, dup.Duplicate, err)
	}
	if !deliversTo(dup.Deliveries, c.b1, orphan.ID) {
		t.Fatalf("resend deliveries %+v, want the completed message for b1", dup.Deliveries)
	}
	checkDelivered(ctx, t, s, c.b1, 2)
}

func deliversTo(ds []store.Delivery, device, msgID string) bool {
	for _, d := range ds {
		if d.DeviceID == device && d.Event.Message != nil && d.Event.Message.ID == msgID {
			return true
		}
	}
	return false
}

// checkDelivered checks that the chat of device's messages has its first n
// seqs committed (History) and that device's inbox holds each of them.
func checkDelivered(ctx context.Context, t *testing.T, s *Store, device string, n int64) {
	t.Helper()
	evs, _, err := s.Inbox(ctx, device, 0, 0)
	if err != nil || len(evs) == 0 {
		t.Fatalf("inbox of %s: %d events, err %v", device, len(evs), err)
	}
	chatID := evs[0].Message.ChatID
	seqs := map[int64]bool{}
	for _, e := range evs {
		if e.Message != nil {
			seqs[e.Message.Seq] = true
		}
	}
	hist, err := s.History(ctx, chatID, 0, 0)
	if err != nil || int64(len(hist)) != n {
		t.Fatalf("History of %s: %d messages (err %v), want %d committed", chatID, len(hist), err, n)
	}
	for seq := int64(1); seq <= n; seq++ {
		if !seqs[seq] {
			t.Fatalf("inbox of %s has no event for seq %d (has %v)", device, seq, seqs)
		}
	}
}

// TestFeedEntriesAreReferences: a feed entry holds no copy of the body
// (the log has it, once), and is a few dozen bytes; Inbox puts the body
// back. The sender's own entry is read by its other devices only.
func TestFeedEntriesAreReferences(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	req := directReq(c.alice, c.a1, c.bob, "r1", c.b1, c.b2, c.a2)
	req.Message.Body = json.RawMessage(`{"text":"stored once"}`)
	req.Message.ReplyTo = ""
	r, err := s.Send(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	var raw bson.Raw
	if err := s.feed.FindOne(ctx, bson.D{{Key: "_id", Value: feedKey(c.bob, r.Deliveries[0].Event.Cursor)}}).Decode(&raw); err != nil {
		t.Fatal(err)
	}
	// _id (21 bytes), r (a varint seq and the direct chat's 32 bytes).
	if _, err := raw.LookupErr("r"); err != nil || len(raw) != 5+31+41 {
		t.Fatalf("feed entry %v of %d bytes: want r, 77 bytes", raw, len(raw))
	}
	for _, d := range []string{c.b1, c.b2, c.a2} {
		evs, _, err := s.Inbox(ctx, d, 0, 0)
		if err != nil || len(evs) != 1 || string(evs[0].Message.Body) != `{"text":"stored once"}` || evs[0].Message.ID != r.Message.ID {
			t.Fatalf("inbox of %s: %+v, %v", d, evs, err)
		}
	}
	if evs, _, err := s.Inbox(ctx, c.a1, 0, 0); err != nil || len(evs) != 0 {
		t.Fatalf("the sending device reads its own message: %+v, %v", evs, err)
	}
	if r.SenderCursor == 0 {
		t.Fatalf("no sender cursor for the entry a2 reads")
	}
	// A chat id of another form is named in full.
	var d feedDoc
	d.refTo("c-not-compact", 7)
	if chat, seq, ok := d.target(); !ok || chat != "c-not-compact" || seq != 7 || d.Ref != nil {
		t.Fatalf("reference to a chat id of another form: %+v", d)
	}
	g := store.NewID(store.PrefixGroup)
	d = feedDoc{}
	d.refTo(g, 1<<20)
	if chat, seq, ok := d.target(); !ok || chat != g || seq != 1<<20 || len(d.Ref) != 16+3 {
		t.Fatalf("reference to a group: %+v", d)
	}
}
