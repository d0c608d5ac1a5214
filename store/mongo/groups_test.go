package mongo

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"os"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/mongo/mongotest"
)

// groupEntry is the log entry of a group change by (from, dev).
func groupEntry(chatID, from, dev, change string) store.Message {
	return store.Message{ID: store.NewID(store.PrefixMessage), ChatID: chatID, From: from, FromDevice: dev,
		TS: time.Now().UnixMilli(), Body: []byte(fmt.Sprintf(`{"group":{"change":%q}}`, change))}
}

func createGroupWrite(chatID, from, dev string, members ...string) store.GroupWrite {
	ms := make([]store.Member, len(members))
	for i, u := range members {
		ms[i] = store.Member{UserID: u, Role: store.RoleMember}
	}
	ms[0].Role = store.RoleAdmin
	return store.GroupWrite{
		Create: &store.Group{ChatID: chatID, Name: "g", Settings: store.GroupSettings{EditInfo: store.AllowAll, Send: store.AllowAll},
			Members: ms},
		Message: groupEntry(chatID, from, dev, "created"),
	}
}

func groupReq(chatID, from, dev, clientID string) store.SendRequest {
	return store.SendRequest{ClientID: clientID, Kind: store.KindGroup,
		Message: store.Message{ID: store.NewID(store.PrefixMessage), ChatID: chatID, From: from, FromDevice: dev,
			TS: time.Now().UnixMilli(), Body: []byte(`{"text":"hi"}`)}}
}

// entryDevices returns the devices ds carry the entry msgID to, sorted.
func entryDevices(ds []store.Delivery, msgID string) []string {
	var out []string
	for _, d := range ds {
		if d.Event.Message != nil && d.Event.Message.ID == msgID {
			out = append(out, d.DeviceID)
		}
	}
	slices.Sort(out)
	return out
}

func sortedIDs(ids ...string) []string {
	ids = slices.Clone(ids)
	slices.Sort(ids)
	return ids
}

// record reads the membership record of user in chatID; nil if none.
func record(ctx context.Context, t *testing.T, s *Store, user, chatID string) *memberDoc {
	t.Helper()
	var d memberDoc
	err := s.members.FindOne(ctx, bson.D{{Key: "_id", Value: pairKey(user, chatID)}}).Decode(&d)
	if err != nil {
		if errors.Is(notFound(err), store.ErrNotFound) {
			return nil
		}
		t.Fatal(err)
	}
	return &d
}

// TestGroupWriteStopsHalfway stops a group change (carol in, bob out) after
// each of its steps on one node, as a node dying there would, marked dead
// or silently killed, and checks that the next send to the group, on
// another node, completes it: state, membership records, events to the
// members before and after the change, and the entry's state dropped once
// committed.
func TestGroupWriteStopsHalfway(t *testing.T) {
	for _, step := range []string{groupStepInserted, groupStepEvents, groupStepCommit} {
		for _, killed := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/killed=%v", step, killed), func(t *testing.T) {
				name := dbName()
				dropDB(t, name)
				dying, other := openDB(t, name, Config{}), openDB(t, name, Config{})
				other.lockTimeout = 300 * time.Millisecond
				dying.stopAck = func(s string) bool { return s == step }
				ctx := t.Context()
				c := newCast(t, other)
				g := store.NewID(store.PrefixGroup)
				if _, err := other.WriteGroup(ctx, createGroupWrite(g, c.alice, c.a1, c.alice, c.bob)); err != nil {
					t.Fatal(err)
				}
				change := store.GroupWrite{
					Apply: func(gr *store.Group) error {
						gr.Members = slices.DeleteFunc(gr.Members, func(m store.Member) bool { return m.UserID == c.bob })
						gr.Members = append(gr.Members, store.Member{UserID: c.carol, Role: store.RoleMember})
						gr.Name = "renamed"
						return nil
					},
					Message: groupEntry(g, c.alice, c.a1, "members_changed"),
				}
				if _, err := dying.WriteGroup(ctx, change); !errors.Is(err, errStopped) {
					t.Fatalf("stopped group write: %v", err)
				}
				if killed {
					// No word from the dead node: the lock just stays.
					if _, err := other.chats.UpdateOne(ctx, bson.D{{Key: "_id", Value: g}},
						bson.D{{Key: "$unset", Value: bson.D{{Key: "lock.dead", Value: ""}}}}); err != nil {
						t.Fatal(err)
					}
				}
				if step != groupStepCommit {
					// Not committed: the group is as before.
					if gr, err := other.Group(ctx, g); err != nil || gr.Name != "g" || len(gr.Members) != 2 {
						t.Fatalf("group before completion: %+v, %v", gr, err)
					}
				}

				r, err := other.Send(ctx, groupReq(g, c.alice, c.a2, "after"))
				if err != nil {
					t.Fatal(err)
				}
				if r.Message.Seq != 3 {
					t.Fatalf("send after the stopped change: seq %d, want 3", r.Message.Seq)
				}
				if got := entryDevices(r.Deliveries, r.Message.ID); !slices.Equal(got, sortedIDs(c.a1, c.c1)) {
					t.Fatalf("the send went to %v, want a1 and c1: bob is out, carol in", got)
				}
				if step != groupStepCommit {
					// Completed by the send: every device of the members
					// before and after, the writer's included.
					got := entryDevices(r.Deliveries, change.Message.ID)
					if want := sortedIDs(c.a1, c.a2, c.b1, c.b2, c.c1); !slices.Equal(got, want) {
						t.Fatalf("completion delivered the change to %v, want %v", got, want)
					}
				}

				gr, err := other.Group(ctx, g)
				if err != nil || gr.Name != "renamed" || !slices.Equal(gr.UserIDs(), []string{c.alice, c.carol}) {
					t.Fatalf("group after completion: %+v, %v", gr, err)
				}
				if m, err := other.Member(ctx, g, c.carol); err != nil || m.JoinedSeq != 2 {
					t.Fatalf("Member(carol) = %+v, %v; want JoinedSeq 2", m, err)
				}
				if _, err := other.Member(ctx, g, c.bob); !errors.Is(err, store.ErrNotMember) {
					t.Fatalf("Member(bob) after his removal: %v", err)
				}
				if rec := record(ctx, t, other, c.carol, g); rec == nil || rec.Read != 1 || rec.Joined != 2 {
					t.Fatalf("carol's record: %+v, want read 1, joined 2", rec)
				}
				bobs := record(ctx, t, other, c.bob, g)
				if (bobs != nil) != (step == groupStepCommit) {
					// Only a writer that died between the commit and the
					// deletion leaves it.
					t.Fatalf("bob's record after his removal: %+v", bobs)
				}
				var entry bson.M
				if err := other.messages.FindOne(ctx, bson.D{{Key: "_id", Value: numKey(g, 2)}}).Decode(&entry); err != nil {
					t.Fatal(err)
				}
				if _, ok := entry["g"]; ok != (step == groupStepCommit) {
					t.Fatalf("entry 2 keeps its state: %v", ok)
				}

				// A record left behind changes nothing a reader sees.
				for _, u := range []string{c.alice, c.carol} {
					if sum := findSummary(ctx, t, other, u, g); sum == nil || sum.Chat.Title != "renamed" {
						t.Fatalf("Chats(%s) lacks the group: %+v", u, sum)
					}
				}
				if sum := findSummary(ctx, t, other, c.bob, g); sum != nil {
					t.Fatalf("Chats(bob) lists the group he left")
				}
				if _, err := other.MarkRead(ctx, c.bob, g, 3, time.Now().UnixMilli(), true); !errors.Is(err, store.ErrNotFound) {
					t.Fatalf("MarkRead by bob after his removal: %v", err)
				}
				if _, err := other.Ack(ctx, c.b1, 100); err != nil {
					t.Fatalf("bob acks what he got of the group: %v", err)
				}
				hist, err := other.History(ctx, g, 0, 0)
				if err != nil || len(hist) != 3 || hist[1].ID != change.Message.ID || hist[1].Kind != store.EventGroup {
					t.Fatalf("History: %d entries, err %v", len(hist), err)
				}

				// bob comes back: his record starts at his new entry.
				back, err := other.WriteGroup(ctx, store.GroupWrite{
					Apply: func(gr *store.Group) error {
						gr.Members = append(gr.Members, store.Member{UserID: c.bob, Role: store.RoleMember})
						return nil
					},
					Message: groupEntry(g, c.carol, c.c1, "members_added"),
				})
				if err != nil || back.Message.Seq != 4 {
					t.Fatalf("bob's return: seq %d, %v", back.Message.Seq, err)
				}
				if rec := record(ctx, t, other, c.bob, g); rec == nil || rec.Read != 3 || rec.Joined != 4 {
					t.Fatalf("bob's record after his return: %+v, want read 3, joined 4", rec)
				}
				if sum := findSummary(ctx, t, other, c.bob, g); sum == nil || sum.ReadSeq != 3 || sum.Unread != 0 {
					t.Fatalf("Chats(bob) after his return: %+v", sum)
				}
			})
		}
	}
}

func findSummary(ctx context.Context, t *testing.T, s *Store, user, chatID string) *store.ChatSummary {
	t.Helper()
	sums, err := s.Chats(ctx, user)
	if err != nil {
		t.Fatal(err)
	}
	for i := range sums {
		if sums[i].Chat.ID == chatID {
			return &sums[i]
		}
	}
	return nil
}

// TestGroupCreateStopsHalfway: a creation that stops once its chat exists
// is completed by the first send to the group; one that stops before
// leaves nothing anyone sees.
func TestGroupCreateStopsHalfway(t *testing.T) {
	for _, step := range []string{groupStepInserted, groupStepEvents} {
		t.Run(step, func(t *testing.T) {
			name := dbName()
			dropDB(t, name)
			dying, other := openDB(t, name, Config{}), openDB(t, name, Config{})
			dying.stopAck = func(s string) bool { return s == step }
			ctx := t.Context()
			c := newCast(t, other)
			g := store.NewID(store.PrefixGroup)
			cw := createGroupWrite(g, c.alice, c.a1, c.alice, c.bob)
			if _, err := dying.WriteGroup(ctx, cw); !errors.Is(err, errStopped) {
				t.Fatalf("stopped create: %v", err)
			}
			if _, err := other.WriteGroup(ctx, cw); !errors.Is(err, store.ErrConflict) {
				t.Fatalf("create again: %v, want ErrConflict", err)
			}
			r, err := other.Send(ctx, groupReq(g, c.bob, c.b1, "1"))
			if err != nil || r.Message.Seq != 2 {
				t.Fatalf("send to the half-created group: seq %d, %v", r.Message.Seq, err)
			}
			got := entryDevices(r.Deliveries, cw.Message.ID)
			if want := sortedIDs(c.a1, c.a2, c.b1, c.b2); !slices.Equal(got, want) {
				t.Fatalf("completion delivered the creation to %v, want %v", got, want)
			}
			chat, err := other.Chat(ctx, g)
			if err != nil || chat.LastSeq != 2 || chat.Title != "g" {
				t.Fatalf("Chat: %+v, %v", chat, err)
			}
		})
	}

	t.Run("before the chat", func(t *testing.T) {
		s := newStore(t)
		ctx := t.Context()
		c := newCast(t, s)
		g := store.NewID(store.PrefixGroup)
		cw := createGroupWrite(g, c.alice, c.a1, c.alice, c.bob)
		// What a creation leaves when it stops before inserting its chat:
		// records and the entry.
		if err := s.joinRecords(ctx, g, []string{c.alice, c.bob}, 1); err != nil {
			t.Fatal(err)
		}
		m := cw.Message
		m.Seq, m.Kind = 1, store.EventGroup
		if _, err := s.messages.InsertOne(ctx, msgDoc{ID: numKey(g, 1), Msg: *msgOf(&m), Key: "m:" + m.ID}); err != nil {
			t.Fatal(err)
		}
		if _, err := s.Group(ctx, g); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Group: %v", err)
		}
		if sums, err := s.Chats(ctx, c.alice); err != nil || len(sums) != 0 {
			t.Fatalf("Chats(alice): %+v, %v", sums, err)
		}
		if _, err := s.Message(ctx, g, m.ID); !errors.Is(err, store.ErrNotFound) {
			t.Fatalf("Message: %v", err)
		}
	})
}

// TestGroupSendDuplicateFirst: a resend is answered as a duplicate even
// when the sender has left since, or Check would now refuse it.
func TestGroupSendDuplicateFirst(t *testing.T) {
	s := newStore(t)
	ctx := t.Context()
	c := newCast(t, s)
	g := store.NewID(store.PrefixGroup)
	if _, err := s.WriteGroup(ctx, createGroupWrite(g, c.alice, c.a1, c.alice, c.bob)); err != nil {
		t.Fatal(err)
	}
	req := groupReq(g, c.bob, c.b1, "x")
	first, err := s.Send(ctx, req)
	if err != nil {
		t.Fatal(err)
	}
	refuse := errors.New("refused")
	req.Check = func(*store.Group) error { return refuse }
	if dup, err := s.Send(ctx, req); err != nil || !dup.Duplicate || dup.Message.ID != first.Message.ID {
		t.Fatalf("resend Check refuses: %+v, %v", dup, err)
	}
	other := groupReq(g, c.bob, c.b1, "y")
	other.Check = req.Check
	if _, err := s.Send(ctx, other); err != refuse {
		t.Fatalf("new send Check refuses: %v, want Check's error as is", err)
	}
	if _, err := s.WriteGroup(ctx, store.GroupWrite{
		Apply: func(gr *store.Group) error {
			gr.Members = gr.Members[:1]
			return nil
		},
		Message: groupEntry(g, c.alice, c.a1, "member_removed"),
	}); err != nil {
		t.Fatal(err)
	}
	req.Check = nil
	if dup, err := s.Send(ctx, req); err != nil || !dup.Duplicate || dup.Message.ID != first.Message.ID {
		t.Fatalf("resend by a removed member: %+v, %v", dup, err)
	}
	if _, err := s.Send(ctx, groupReq(g, c.bob, c.b1, "z")); !errors.Is(err, store.ErrNotMember) {
		t.Fatalf("new send by a removed member: %v", err)
	}
	// A direct-style send cannot bypass the group's rules.
	direct := directReq(c.alice, c.a1, c.bob, "d", c.b1)
	direct.Message.ChatID = g
	if _, err := s.Send(ctx, direct); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("direct-style send to a group: %v, want ErrInvalid", err)
	}
	if chat, err := s.Chat(ctx, g); err != nil || chat.LastSeq != 3 {
		t.Fatalf("Chat: %+v, %v; want LastSeq 3", chat, err)
	}
}

// costMeter counts the commands a store sends and their bytes.
type costMeter struct {
	mu    sync.Mutex
	on    bool
	cmds  map[string]int
	sent  int
	recvd int
}

func (c *costMeter) monitor() *event.CommandMonitor {
	return &event.CommandMonitor{
		Started: func(_ context.Context, e *event.CommandStartedEvent) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.on {
				c.cmds[e.CommandName]++
				c.sent += len(e.Command)
			}
		},
		Succeeded: func(_ context.Context, e *event.CommandSucceededEvent) {
			c.mu.Lock()
			defer c.mu.Unlock()
			if c.on {
				c.recvd += len(e.Reply)
			}
		},
	}
}

func (c *costMeter) start() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on, c.cmds, c.sent, c.recvd = true, map[string]int{}, 0, 0
}

func (c *costMeter) stop() {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.on = false
}

// bigGroup makes n users with two devices each, written straight into the
// collections (EnsureUser and CreateDevice one by one would take minutes
// on FerretDB), and a group of them all created by the first.
func bigGroup(ctx context.Context, tb testing.TB, s *Store, n int) (chatID string, users []string, devices [][2]string) {
	tb.Helper()
	now := time.Now().UTC().Truncate(time.Millisecond)
	var us, ds []any
	for i := range n {
		u := store.NewID(store.PrefixUser)
		users = append(users, u)
		us = append(us, userDoc{ID: u, Phone: fmt.Sprintf("+1555%07d", i), Created: now})
		var pair [2]string
		for j := range pair {
			pair[j] = store.NewID(store.PrefixDevice)
			ds = append(ds, deviceDoc{ID: pair[j], User: u, Created: now, LastSeen: now, RefreshHash: []byte("h")})
		}
		devices = append(devices, pair)
	}
	if _, err := s.users.InsertMany(ctx, us); err != nil {
		tb.Fatal(err)
	}
	if _, err := s.devices.InsertMany(ctx, ds); err != nil {
		tb.Fatal(err)
	}
	chatID = store.NewID(store.PrefixGroup)
	r, err := s.WriteGroup(ctx, createGroupWrite(chatID, users[0], devices[0][0], users...))
	if err != nil {
		tb.Fatal(err)
	}
	if len(r.Deliveries) != 2*n {
		tb.Fatalf("creation: %d deliveries, want %d", len(r.Deliveries), 2*n)
	}
	return chatID, users, devices
}

// TestGroupSendCost measures what one message to a group of 1024 members
// with two devices each costs this adapter, and logs it: commands, bytes
// sent and received, documents and bytes stored. It asserts the shape
// (one of each command whatever the size, one document per inbox), not
// timings.
func TestGroupSendCost(t *testing.T) {
	needServer(t)
	n := 1024
	if mongotest.Label() == "FerretDB" {
		// Minutes on FerretDB, which takes some 15ms per inbox: the shape
		// is the same at 64 members, and the bytes are linear.
		n = 64
	}
	if v := os.Getenv("TERN_TEST_GROUP_SIZE"); v != "" {
		var err error
		if n, err = strconv.Atoi(v); err != nil || n < 2 {
			t.Fatalf("TERN_TEST_GROUP_SIZE=%q: want a number of members, 2 or more", v)
		}
	}
	if testing.Short() {
		n = min(n, 64)
	}
	meter := &costMeter{}
	_, name := mongotest.NewDatabase(t)
	// FerretDB takes minutes over a group this size: it is slow, not
	// stuck.
	s := openDB(t, name, Config{monitor: meter.monitor(), Timeout: 15 * time.Minute})
	ctx := t.Context()
	t1 := time.Now()
	g, users, devices := bigGroup(ctx, t, s, n)
	t.Logf("created in %v", time.Since(t1))

	var chat bson.Raw
	if err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: g}}).Decode(&chat); err != nil {
		t.Fatal(err)
	}
	meter.start()
	if _, err := s.Member(ctx, g, users[n/2]); err != nil {
		t.Fatal(err)
	}
	meter.stop()
	memberRecv := meter.recvd

	req := groupReq(g, users[1], devices[1][0], "cost")
	req.Check = func(*store.Group) error { return nil }
	meter.start()
	t0 := time.Now()
	r, err := s.Send(ctx, req)
	took := time.Since(t0)
	meter.stop()
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Deliveries) != 2*n-1 {
		t.Fatalf("%d deliveries, want %d", len(r.Deliveries), 2*n-1)
	}
	cmds, sent, recvd := meter.cmds, meter.sent, meter.recvd

	// What the send stored: its message and one entry per member's feed.
	var msg bson.Raw
	if err := s.messages.FindOne(ctx, bson.D{{Key: "_id", Value: numKey(g, 2)}}).Decode(&msg); err != nil {
		t.Fatal(err)
	}
	var evBytes, evDocs, ownBytes, largest int
	for i, u := range users {
		var entries []bson.Raw
		cur, err := s.feed.Find(ctx, feedRange(u, 0, maxCursor), options.Find().SetSort(bson.D{{Key: "_id", Value: -1}}).SetLimit(1))
		if err == nil {
			err = cur.All(ctx, &entries)
		}
		if err != nil || len(entries) != 1 {
			t.Fatalf("feed of member %d: %d entries, %v", i, len(entries), err)
		}
		evBytes += len(entries[0])
		evDocs++
		if i == 1 {
			ownBytes = len(entries[0]) // the sender's, which names the device that skips it
		} else {
			largest = max(largest, len(entries[0]))
		}
	}
	t.Logf("one message to a group of %d members with 2 devices each (%s; %v, not a benchmark):", n, mongotest.Label(), took.Round(time.Millisecond))
	t.Logf("  commands: %v", cmds)
	t.Logf("  sent %d bytes, received %d bytes", sent, recvd)
	t.Logf("  stored: 1 message of %d bytes, %d feed entries of %d bytes (%d each, the sender's %d), %d bytes in all; %d feed heads raised",
		len(msg), evDocs, evBytes, largest, ownBytes, len(msg)+evBytes, evDocs)
	t.Logf("  the group's chat document: %d bytes; Member() received %d bytes", len(chat), memberRecv)
	// The budget: at most 64 KiB stored per group message to 1024
	// members (counted at 1024 whatever n is: the entries are all alike).
	if at1024 := len(msg) + ownBytes + 1023*largest; at1024 > 64<<10 {
		t.Errorf("a message to 1024 members would store %d bytes (%d a member), over 64 KiB", at1024, largest)
	}
	// The lock; the message and the entries; the heads (one query for
	// every member's devices, one for their feeds); the feed heads and
	// the unlock.
	hintCmds := 1
	if s.updateBatch > 0 {
		hintCmds = (n + s.updateBatch - 1) / s.updateBatch
		t.Logf("  (the feed heads take %d update commands of at most %d here: %s)", hintCmds, s.updateBatch, mongotest.Label())
	}
	want := map[string]int{"findAndModify": 1, "insert": 2, "find": 2, "update": 1 + hintCmds}
	if !maps.Equal(cmds, want) {
		t.Errorf("commands %v, want %v: no per-member round trips", cmds, want)
	}
}

// BenchmarkGroupSend measures Send of a message to a group of 1024 members
// with two devices each: 1024 feeds, one entry each.
func BenchmarkGroupSend(b *testing.B) {
	const n = 1024
	s := newStore(b)
	ctx := b.Context()
	g, users, devices := bigGroup(ctx, b, s, n)
	for i := 0; b.Loop(); i++ {
		k := i % n
		if _, err := s.Send(ctx, groupReq(g, users[k], devices[k][0], fmt.Sprint(i))); err != nil {
			b.Fatal(err)
		}
	}
	b.ReportMetric(float64(n), "feed-entries/op")
}
