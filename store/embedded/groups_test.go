package embedded

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strconv"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// gcast is a population for the group tests here: users with their
// devices.
type gcast struct {
	users   []string
	devices [][]string
}

// newCast makes n users with perDevice devices each, concurrently so that
// group commit makes a large cast quick.
func newCast(t testing.TB, s *Store, n, perDevice int) *gcast {
	t.Helper()
	ctx := context.Background()
	c := &gcast{users: make([]string, n), devices: make([][]string, n)}
	var wg sync.WaitGroup
	errs := make([]error, n)
	for i := range n {
		wg.Go(func() {
			u, _, err := s.EnsureUser(ctx, fmt.Sprintf("+1777%07d", i), store.NewID(store.PrefixUser), time.Now())
			if err != nil {
				errs[i] = err
				return
			}
			c.users[i] = u.ID
			for range perDevice {
				d := store.NewID(store.PrefixDevice)
				if err := s.CreateDevice(ctx, store.Device{ID: d, UserID: u.ID}); err != nil {
					errs[i] = err
					return
				}
				c.devices[i] = append(c.devices[i], d)
			}
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatal(err)
	}
	return c
}

// members is the membership of users first..: the first an admin.
func (c *gcast) members(idx ...int) []store.Member {
	var out []store.Member
	for _, i := range idx {
		role := store.RoleMember
		if len(out) == 0 {
			role = store.RoleAdmin
		}
		out = append(out, store.Member{UserID: c.users[i], Role: role})
	}
	return out
}

func (c *gcast) entry(chatID string, from int, ms int64) store.Message {
	return store.Message{
		ID:         store.NewID(store.PrefixMessage),
		ChatID:     chatID,
		From:       c.users[from],
		FromDevice: c.devices[from][0],
		TS:         ms,
		Body:       json.RawMessage(`{"group":{"change":"x"}}`),
	}
}

func (c *gcast) create(t testing.TB, s *Store, idx ...int) string {
	t.Helper()
	g := store.NewID(store.PrefixGroup)
	_, err := s.WriteGroup(context.Background(), store.GroupWrite{
		Create: &store.Group{
			ChatID:   g,
			Name:     "g",
			Settings: store.GroupSettings{EditInfo: store.AllowAll, Send: store.AllowAll},
			Members:  c.members(idx...),
		},
		Message: c.entry(g, idx[0], 1),
	})
	if err != nil {
		t.Fatal(err)
	}
	return g
}

func (c *gcast) msg(chatID string, from int, clientID string) store.SendRequest {
	return store.SendRequest{
		ClientID: clientID,
		Message: store.Message{
			ID:         store.NewID(store.PrefixMessage),
			ChatID:     chatID,
			From:       c.users[from],
			FromDevice: c.devices[from][0],
			TS:         time.Now().UnixMilli(),
			Body:       json.RawMessage(`{"text":"hello, group"}`),
		},
		Kind: store.KindGroup,
	}
}

func add(ms ...store.Member) func(g *store.Group) error {
	return func(g *store.Group) error {
		g.Members = append(g.Members, ms...)
		return nil
	}
}

func remove(user string) func(g *store.Group) error {
	return func(g *store.Group) error {
		g.Members = slices.DeleteFunc(g.Members, func(m store.Member) bool { return m.UserID == user })
		return nil
	}
}

func targetsOf(ds []store.Delivery) []string {
	var out []string
	for _, d := range ds {
		out = append(out, d.DeviceID)
	}
	slices.Sort(out)
	return out
}

// devicesBut lists the devices of users idx but skip, sorted.
func (c *gcast) devicesBut(skip string, idx ...int) []string {
	var out []string
	for _, i := range idx {
		for _, d := range c.devices[i] {
			if d != skip {
				out = append(out, d)
			}
		}
	}
	slices.Sort(out)
	return out
}

// TestGroupAcrossReopen: the writer's group cache starts empty after a
// reopen and is filled from the database: sends reach the members as they
// were, and changes continue from there.
func TestGroupAcrossReopen(t *testing.T) {
	dir := t.TempDir()
	ctx := t.Context()
	s, err := Open(ctx, dir, Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	c := newCast(t, s, 4, 2)
	g := c.create(t, s, 0, 1, 2)
	if _, err := s.WriteGroup(ctx, store.GroupWrite{Apply: remove(c.users[2]), Message: c.entry(g, 0, 2)}); err != nil {
		t.Fatal(err)
	}
	want, err := s.Group(ctx, g)
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
	if got, err := s.Group(ctx, g); err != nil || !reflect.DeepEqual(got, want) {
		t.Fatalf("after reopen, Group = %+v, %v; want %+v", got, err, want)
	}
	r, err := s.Send(ctx, c.msg(g, 1, "1"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := targetsOf(r.Deliveries), c.devicesBut(c.devices[1][0], 0, 1); !slices.Equal(got, want) || r.Message.Seq != 3 {
		t.Fatalf("after reopen, a send went to %v with seq %d; want %v, 3", got, r.Message.Seq, want)
	}
	res, err := s.WriteGroup(ctx, store.GroupWrite{Apply: add(store.Member{UserID: c.users[3], Role: store.RoleMember}), Message: c.entry(g, 0, 4)})
	if err != nil {
		t.Fatal(err)
	}
	if m := res.Group.Member(c.users[3]); m == nil || m.JoinedSeq != 4 || !m.JoinedAt.Equal(time.UnixMilli(4)) {
		t.Fatalf("after reopen, the added member is %+v; want JoinedSeq 4 at the entry's time", m)
	}
	if _, err := s.Member(ctx, g, c.users[2]); !errors.Is(err, store.ErrNotMember) {
		t.Fatalf("after reopen, Member of the removed member: %v", err)
	}
	if m, err := s.Member(ctx, g, c.users[3]); err != nil || m.JoinedSeq != 4 || m.Role != store.RoleMember {
		t.Fatalf("after reopen, Member of the added member = %+v, %v", m, err)
	}
	r, err = s.Send(ctx, c.msg(g, 0, "2"))
	if err != nil {
		t.Fatal(err)
	}
	if got, want := targetsOf(r.Deliveries), c.devicesBut(c.devices[0][0], 0, 1, 3); !slices.Equal(got, want) {
		t.Fatalf("after reopen and an add, a send went to %v; want %v", got, want)
	}
}

// TestGroupCacheIgnoresFailedRounds: a group change in a round whose
// commit fails must not stay in the writer's memory, or later sends would
// go to members the database does not have.
func TestGroupCacheIgnoresFailedRounds(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	c := newCast(t, s, 3, 1)
	g := c.create(t, s, 0, 1)
	if _, err := s.Send(ctx, c.msg(g, 0, "1")); err != nil { // the group is now cached
		t.Fatal(err)
	}
	err := s.write(ctx, func(w *wtx) error {
		var res store.GroupResult
		m := c.entry(g, 0, 5)
		m.Kind = store.EventGroup
		if err := applyChangeGroup(w, add(store.Member{UserID: c.users[2], Role: store.RoleMember}), false, m, &res); err != nil {
			return err
		}
		w.setErr(errors.New("injected engine failure"))
		return nil
	})
	if err == nil {
		t.Fatal("the failing write succeeded")
	}
	r, err := s.Send(ctx, c.msg(g, 0, "2"))
	if err != nil {
		t.Fatal(err)
	}
	if got := targetsOf(r.Deliveries); !slices.Equal(got, c.devices[1]) || r.Message.Seq != 3 {
		t.Fatalf("after a failed change, a send went to %v with seq %d; want %v, 3", got, r.Message.Seq, c.devices[1])
	}
}

// TestGroupChangeAndSendInOneRound: a send queued behind a change shares
// its batch, and must see the change, which is not committed yet.
func TestGroupChangeAndSendInOneRound(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	c := newCast(t, s, 3, 1)
	g := c.create(t, s, 0, 1)
	release := holdWriter(t, s)
	changed := make(chan error, 1)
	go func() {
		_, err := s.WriteGroup(ctx, store.GroupWrite{Apply: add(store.Member{UserID: c.users[2], Role: store.RoleMember}), Message: c.entry(g, 0, 2)})
		changed <- err
	}()
	waitQueued(s, 1)
	sent := make(chan store.SendResult, 1)
	go func() {
		r, err := s.Send(ctx, c.msg(g, 1, "1"))
		if err != nil {
			t.Error(err)
		}
		sent <- r
	}()
	waitQueued(s, 2)
	commits := s.commits.Load()
	release()
	if err := <-changed; err != nil {
		t.Fatal(err)
	}
	r := <-sent
	if got, want := targetsOf(r.Deliveries), c.devicesBut("", 0, 2); !slices.Equal(got, want) || r.Message.Seq != 3 {
		t.Fatalf("a send in the round of an add went to %v with seq %d; want %v, 3", got, r.Message.Seq, want)
	}
	if n := s.commits.Load() - commits; n != 1 {
		t.Fatalf("the change and the send took %d commits, want 1 (one round)", n)
	}
}

// TestGroupRemovedMemberAcks: a removed member's devices still hold the
// group's events from before; acking them must work and send no receipt
// for the group, while receipts for its other chats still go out.
func TestGroupRemovedMemberAcks(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	c := newCast(t, s, 2, 1)
	g := c.create(t, s, 0, 1)
	if _, err := s.Send(ctx, c.msg(g, 0, "1")); err != nil {
		t.Fatal(err)
	}
	direct := store.SendRequest{
		ClientID: "d",
		Message: store.Message{ID: store.NewID(store.PrefixMessage), ChatID: store.DirectChatID(c.users[0], c.users[1]),
			From: c.users[0], FromDevice: c.devices[0][0], Body: json.RawMessage(`{}`)},
		Kind:    store.KindDirect,
		Members: c.users[:2],
		Devices: c.devices[1],
	}
	if _, err := s.Send(ctx, direct); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteGroup(ctx, store.GroupWrite{Apply: remove(c.users[1]), Message: c.entry(g, 0, 3)}); err != nil {
		t.Fatal(err)
	}
	evs, head, err := s.Inbox(ctx, c.devices[1][0], 0, 0)
	if err != nil || len(evs) != 4 || evs[3].Kind != store.EventGroup {
		t.Fatalf("inbox of the removed member: %d events, %v", len(evs), err)
	}
	rs, err := s.Ack(ctx, c.devices[1][0], head)
	if err != nil {
		t.Fatalf("ack of a removed member: %v", err)
	}
	if len(rs) != 1 || rs[0].Event.Receipt.ChatID != direct.Message.ChatID {
		t.Fatalf("ack of a removed member made %d receipts (%+v); want one, for the direct chat", len(rs), rs)
	}
}

// TestGroupSendRefusals covers what only this adapter refuses: a message
// that claims to be a group entry, and a direct-style send into a group,
// which would bypass its members and rules.
func TestGroupSendRefusals(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	c := newCast(t, s, 2, 1)
	g := c.create(t, s, 0, 1)
	req := c.msg(g, 0, "1")
	req.Message.Kind = store.EventGroup
	if _, err := s.Send(ctx, req); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a send of a group entry: %v, want ErrInvalid", err)
	}
	req = c.msg(g, 0, "1")
	req.Kind, req.Members, req.Devices = store.KindDirect, c.users[:2], c.devices[1]
	if _, err := s.Send(ctx, req); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a direct send into a group: %v, want ErrInvalid", err)
	}
	if _, err := s.WriteGroup(ctx, store.GroupWrite{Message: c.entry(g, 0, 2)}); !errors.Is(err, store.ErrInvalid) {
		t.Fatalf("a group write with neither Create nor Apply: %v, want ErrInvalid", err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if _, err := s.WriteGroup(ctx, store.GroupWrite{Apply: remove(c.users[1]), Message: c.entry(g, 0, 2)}); !errors.Is(err, store.ErrClosed) || !errors.Is(err, ErrClosed) {
		t.Fatalf("WriteGroup after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Group(ctx, g); !errors.Is(err, store.ErrClosed) {
		t.Fatalf("Group after Close: %v, want ErrClosed", err)
	}
}

// TestLegacyGroupChat: a chat of kind group stored before groups had their
// own record (members in the chat record) still reads as before.
func TestLegacyGroupChat(t *testing.T) {
	s := openTest(t)
	ctx := t.Context()
	c := newCast(t, s, 2, 1)
	g := store.NewID(store.PrefixGroup)
	meta, _ := json.Marshal(chatMeta{Kind: store.KindGroup, Members: c.users[:2], CreatedAt: time.UnixMilli(1).UTC()})
	if err := s.write(ctx, func(w *wtx) error {
		w.put(key(tChats, g), meta)
		w.put(pairKey(tMembers, c.users[0], g), member{}.encode())
		return nil
	}); err != nil {
		t.Fatal(err)
	}
	chat, err := s.Chat(ctx, g)
	if err != nil || !slices.Equal(chat.Members, c.users[:2]) || chat.Kind != store.KindGroup {
		t.Fatalf("legacy group chat = %+v, %v", chat, err)
	}
	if _, err := s.Member(ctx, g, c.users[0]); !errors.Is(err, store.ErrNotMember) {
		t.Fatalf("Member in a legacy group chat: %v, want ErrNotMember", err)
	}
	if sums, err := s.Chats(ctx, c.users[0]); err != nil || len(sums) != 1 {
		t.Fatalf("Chats with a legacy group chat: %+v, %v", sums, err)
	}
}

func TestGroupCodec(t *testing.T) {
	g := store.Group{
		ChatID:      "g1",
		Name:        "trip",
		Description: "who brings what",
		Settings:    store.GroupSettings{EditInfo: store.AllowAdmins, Send: store.AllowAll},
		Members: []store.Member{
			{UserID: "u1", Role: store.RoleAdmin, JoinedAt: time.UnixMilli(1767225600123).UTC(), JoinedSeq: 1},
			{UserID: "u2", Role: store.RoleMember, JoinedSeq: 300},
		},
		CreatedBy: "u1",
		CreatedAt: time.UnixMilli(1767225600123).UTC(),
	}
	b := encodeGroup(&g)
	got, err := decodeGroup("g1", b)
	if err != nil || !reflect.DeepEqual(got, g) {
		t.Fatalf("group round trip: %+v, %v", got, err)
	}
	if ids, err := groupUserIDs(b); err != nil || !slices.Equal(ids, g.UserIDs()) {
		t.Fatalf("groupUserIDs = %v, %v", ids, err)
	}
	for n := range len(b) {
		if _, err := decodeGroup("g1", b[:n]); err == nil {
			t.Fatalf("truncated group (%d of %d bytes) decoded", n, len(b))
		}
	}
	mb := g.Members[1]
	if got, err := decodeMembership(mb.UserID, encodeMembership(&mb)); err != nil || !reflect.DeepEqual(got, mb) {
		t.Fatalf("membership round trip: %+v, %v", got, err)
	}
	// The watermarks and the membership travel together, and a record
	// from before groups (16 bytes) has none.
	rec := member{ReadSeq: 5, DeliveredSeq: 7, Group: encodeMembership(&mb)}
	if got := decodeMember(rec.encode()); !reflect.DeepEqual(got, rec) {
		t.Fatalf("member record round trip: %+v", got)
	}
	if got := decodeMember(member{ReadSeq: 5, DeliveredSeq: 7}.encode()); len(got.Group) != 0 {
		t.Fatalf("a direct chat's member record has a membership: %+v", got)
	}
}

// FuzzDecodeGroup checks that no input makes the group decoder panic or
// allocate without bound, and that what it accepts encodes back to itself.
func FuzzDecodeGroup(f *testing.F) {
	f.Add(encodeGroup(&store.Group{Name: "n", Members: []store.Member{{UserID: "u", Role: "admin", JoinedSeq: 1}}}))
	f.Add([]byte{formatV1, 0, 0, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0x0f})
	f.Fuzz(func(t *testing.T, b []byte) {
		g, err := decodeGroup("g", b)
		if err != nil {
			return
		}
		g2, err := decodeGroup("g", encodeGroup(&g))
		if err != nil || !reflect.DeepEqual(g, g2) {
			t.Fatalf("re-encoded group differs: %+v / %+v, %v", g, g2, err)
		}
	})
}

// Bounds of TestGroupMessageStoreCost: the store work of one message to a
// group of 1024 members with 2 devices each, as measured with ~20% added.
// They guard against the cost creeping up; lower them when the storage
// model changes.
const (
	maxGroupMessageKeys  = 1_100    // measured 1028: a feed entry per member, 4 per message
	maxGroupMessageBytes = 64 << 10 // the bound; measured 44,438: 43 per member
)

// TestGroupMessageStoreCost measures what one message to a group of 1024
// members with two devices each writes: a feed entry per member (the
// sender's too, which its other device reads), the log entry, the chat seq
// and the two index records. Before feeds it was an event (a copy of the
// message) and a head per device: 4,098 keys and 534,646 bytes.
func TestGroupMessageStoreCost(t *testing.T) {
	if testing.Short() {
		t.Skip("-short: this test creates 1024 users and 2048 devices")
	}
	s := openTest(t)
	ctx := t.Context()
	const n = 1024
	c := newCast(t, s, n, 2)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	g := c.create(t, s, idx...)

	type cost struct {
		keys     uint32
		bytes    int
		apply    time.Duration
		walBytes uint64
		targets  int
	}
	measure := func(clientID string) cost {
		t.Helper()
		req := c.msg(g, 1, clientID)
		p, err := prepareSend(&req)
		if err != nil {
			t.Fatal(err)
		}
		var k cost
		wal0 := s.db.Metrics().WAL.BytesIn
		err = s.write(ctx, func(w *wtx) error {
			start := time.Now()
			var res store.SendResult
			if err := applySend(w, &p, &res); err != nil {
				return err
			}
			k.apply = time.Since(start)
			k.keys, k.bytes, k.targets = w.b.Count(), w.b.Len(), len(res.Deliveries)
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		k.walBytes = s.db.Metrics().WAL.BytesIn - wal0
		return k
	}
	// The first message fills the writer's caches (device lists, heads);
	// the second is the steady state.
	first := measure("1")
	k := measure("2")
	t.Logf("first message (cold caches): %d keys, %d batch bytes, %d WAL bytes, %d targets, apply %v",
		first.keys, first.bytes, first.walBytes, first.targets, first.apply)
	t.Logf("steady state: %d keys, %d batch bytes (%.0f per target), %d WAL bytes, %d targets, apply %v",
		k.keys, k.bytes, float64(k.bytes)/float64(k.targets), k.walBytes, k.targets, k.apply)
	if k.targets != 2*n-1 {
		t.Fatalf("%d targets, want %d", k.targets, 2*n-1)
	}
	if k.keys > maxGroupMessageKeys || k.bytes > maxGroupMessageBytes {
		t.Fatalf("one group message wrote %d keys and %d bytes; the bounds are %d and %d",
			k.keys, k.bytes, maxGroupMessageKeys, maxGroupMessageBytes)
	}
}

// BenchmarkGroupSend sends messages to a group of 1024 members with 2
// devices each, one at a time: the writer's work per group message (the
// log entry and 1,024 feed entries into Pebble's memtable), with fsync off.
func BenchmarkGroupSend(b *testing.B) {
	s, err := Open(b.Context(), b.TempDir(), Options{NoSync: true})
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(func() { s.Close() })
	const n = 1024
	c := newCast(b, s, n, 2)
	idx := make([]int, n)
	for i := range idx {
		idx[i] = i
	}
	g := c.create(b, s, idx...)
	i := 0
	for b.Loop() {
		i++
		req := c.msg(g, i%n, strconv.Itoa(i))
		if _, err := s.Send(b.Context(), req); err != nil {
			b.Fatal(err)
		}
	}
}
