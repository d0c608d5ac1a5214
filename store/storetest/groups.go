package storetest

import (
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"

	"github.com/tern-im/tern/store"
)

// errRefused is what the suite's Apply and Check return to refuse a write:
// the store hands it back as is and stores nothing.
var errRefused = errors.New("storetest: refused by the caller's rule")

// gworld is the cast of the group tests: the world's alice (a1, a2), bob
// (b1, b2) and carol (c1), and dave (d1), who is in no group unless a test
// adds him. It names ids in failure messages.
type gworld struct {
	*world
	dave, d1 string
	names    map[string]string
	devs     []string // every device, for heads
}

func newGWorld(t *testing.T, s store.Store) *gworld {
	t.Helper()
	w := &gworld{world: newWorld(t, s), names: map[string]string{}}
	w.dave = newUser(t, s, "+15550000004")
	w.d1 = newDevice(t, s, w.dave, "d1").ID
	for id, name := range map[string]string{
		w.alice: "alice", w.bob: "bob", w.carol: "carol", w.dave: "dave",
		w.a1: "a1", w.a2: "a2", w.b1: "b1", w.b2: "b2", w.c1: "c1", w.d1: "d1",
	} {
		w.names[id] = name
	}
	w.devs = []string{w.a1, w.a2, w.b1, w.b2, w.c1, w.d1}
	return w
}

// addUser adds a user called name with one device.
func (w *gworld) addUser(t *testing.T, name string, n int) (user, device string) {
	t.Helper()
	user = newUser(t, w.s, fmt.Sprintf("+1555100%04d", n))
	device = newDevice(t, w.s, user, name+"-dev").ID
	w.names[user], w.names[device] = name, name+"-dev"
	w.devs = append(w.devs, device)
	return user, device
}

// who names ids, sorted.
func (w *gworld) who(ids []string) string {
	out := make([]string, len(ids))
	for i, id := range ids {
		out[i] = w.names[id]
		if out[i] == "" {
			out[i] = id
		}
	}
	slices.Sort(out)
	return "[" + strings.Join(out, " ") + "]"
}

func gmember(user, role string, ms int64) store.Member {
	return store.Member{UserID: user, Role: role, JoinedAt: at(ms)}
}

// groupEntry is the log entry of a group change (ID new, Seq and Kind left
// to the store).
func groupEntry(chatID, from, fromDevice string, ms int64, change string, userIDs ...string) store.Message {
	b, _ := json.Marshal(map[string]any{"group": map[string]any{"change": change, "by": from, "user_ids": userIDs}})
	return store.Message{
		ID:         store.NewID(store.PrefixMessage),
		ChatID:     chatID,
		From:       from,
		FromDevice: fromDevice,
		TS:         ts(ms),
		Body:       b,
	}
}

// createWrite creates the group chatID, named "trip", by (from,
// fromDevice) at ms with members.
func createWrite(chatID, from, fromDevice string, ms int64, members ...store.Member) store.GroupWrite {
	ids := make([]string, len(members))
	for i, m := range members {
		ids[i] = m.UserID
	}
	return store.GroupWrite{
		Create: &store.Group{
			ChatID:      chatID,
			Name:        "trip",
			Description: "who brings what",
			Settings:    store.GroupSettings{EditInfo: store.AllowAdmins, Send: store.AllowAll},
			Members:     members,
			CreatedBy:   from,
			CreatedAt:   at(ms),
		},
		Message: groupEntry(chatID, from, fromDevice, ms, "created", ids...),
	}
}

// changeWrite changes the group chatID with apply.
func changeWrite(chatID, from, fromDevice string, ms int64, change string, apply func(g *store.Group) error, userIDs ...string) store.GroupWrite {
	return store.GroupWrite{Apply: apply, Message: groupEntry(chatID, from, fromDevice, ms, change, userIDs...)}
}

func addMembers(ms ...store.Member) func(g *store.Group) error {
	return func(g *store.Group) error {
		g.Members = append(g.Members, ms...)
		return nil
	}
}

func removeMember(user string) func(g *store.Group) error {
	return func(g *store.Group) error {
		var keep []store.Member
		for _, m := range g.Members {
			if m.UserID != user {
				keep = append(keep, m)
			}
		}
		g.Members = keep
		return nil
	}
}

func writeGroup(t testing.TB, s store.Store, w store.GroupWrite) store.GroupResult {
	t.Helper()
	r, err := s.WriteGroup(t.Context(), w)
	if err != nil {
		t.Fatalf("WriteGroup %s from %s: %v", w.Message.Body, w.Message.FromDevice, err)
	}
	return r
}

// created is what a create must store: the group with every JoinedSeq 1,
// and its entry with seq 1.
func created(cw store.GroupWrite) (store.Group, store.Message) {
	g := *cw.Create
	g.Members = slices.Clone(g.Members)
	for i := range g.Members {
		g.Members[i].JoinedSeq = 1
	}
	m := cw.Message
	m.Seq, m.Kind = 1, store.EventGroup
	return g, m
}

// newGroup creates a group of alice (admin, writing from a1) and the other
// users (members), all joined at ms 1.
func (w *gworld) newGroup(t *testing.T, others ...string) (store.Group, store.Message) {
	t.Helper()
	members := []store.Member{gmember(w.alice, store.RoleAdmin, 1)}
	for _, u := range others {
		members = append(members, gmember(u, store.RoleMember, 1))
	}
	cw := createWrite(store.NewID(store.PrefixGroup), w.alice, w.a1, 1, members...)
	writeGroup(t, w.s, cw)
	return created(cw)
}

// groupSend is a message to the group chatID. Members and Devices are
// left empty: the store resolves them.
func groupSend(chatID, from, fromDevice, clientID string, ms int64, text string) store.SendRequest {
	return store.SendRequest{
		ClientID: clientID,
		Message: store.Message{
			ID:         store.NewID(store.PrefixMessage),
			ChatID:     chatID,
			From:       from,
			FromDevice: fromDevice,
			TS:         ts(ms),
			Body:       body(text),
		},
		Kind: store.KindGroup,
	}
}

// sent is the message a send must store with seq.
func sent(req store.SendRequest, seq int64) store.Message {
	m := req.Message
	m.Seq = seq
	return m
}

// checkEntry is checkMessage that also compares Kind.
func checkEntry(t testing.TB, what string, got, want store.Message) {
	t.Helper()
	checkMessage(t, what, got, want)
	if got.Kind != want.Kind {
		t.Fatalf("%s: Kind %q, want %q", what, got.Kind, want.Kind)
	}
}

func diffMember(got, want store.Member) string {
	if got.UserID != want.UserID || got.Role != want.Role || !got.JoinedAt.Equal(want.JoinedAt) || got.JoinedSeq != want.JoinedSeq {
		return fmt.Sprintf("member %s %s joined %v at seq %d; want %s %s joined %v at seq %d",
			got.UserID, got.Role, got.JoinedAt, got.JoinedSeq, want.UserID, want.Role, want.JoinedAt, want.JoinedSeq)
	}
	return ""
}

func diffGroup(got, want store.Group) string {
	switch {
	case got.ChatID != want.ChatID:
		return fmt.Sprintf("ChatID %q, want %q", got.ChatID, want.ChatID)
	case got.Name != want.Name || got.Description != want.Description:
		return fmt.Sprintf("Name %q Description %q, want %q %q", got.Name, got.Description, want.Name, want.Description)
	case got.Settings != want.Settings:
		return fmt.Sprintf("Settings %+v, want %+v", got.Settings, want.Settings)
	case got.CreatedBy != want.CreatedBy || !got.CreatedAt.Equal(want.CreatedAt):
		return fmt.Sprintf("created by %s at %v, want %s at %v", got.CreatedBy, got.CreatedAt, want.CreatedBy, want.CreatedAt)
	case !slices.Equal(got.UserIDs(), want.UserIDs()):
		return fmt.Sprintf("members %v, want %v (in joining order)", got.UserIDs(), want.UserIDs())
	}
	for i := range want.Members {
		if d := diffMember(got.Members[i], want.Members[i]); d != "" {
			return d
		}
	}
	return ""
}

func checkGroup(t testing.TB, what string, got, want store.Group) {
	t.Helper()
	if d := diffGroup(got, want); d != "" {
		t.Fatalf("%s: %s", what, d)
	}
}

// checkStored checks that Group and Member answer want.
func (w *gworld) checkStored(t *testing.T, what string, want store.Group) {
	t.Helper()
	ctx := t.Context()
	g, err := w.s.Group(ctx, want.ChatID)
	must(t, err)
	checkGroup(t, what+": Group", g, want)
	for _, m := range want.Members {
		got, err := w.s.Member(ctx, want.ChatID, m.UserID)
		if err != nil {
			t.Fatalf("%s: Member(%s): %v", what, w.names[m.UserID], err)
		}
		if d := diffMember(got, m); d != "" {
			t.Fatalf("%s: Member(%s): %s", what, w.names[m.UserID], d)
		}
	}
}

// checkChat checks Chat's view of the group: kind, title, members in
// joining order, last seq.
func (w *gworld) checkChat(t *testing.T, what, chatID, title string, lastSeq int64, members ...string) {
	t.Helper()
	c, err := w.s.Chat(t.Context(), chatID)
	must(t, err)
	if c.ID != chatID || c.Kind != store.KindGroup || c.Title != title || c.LastSeq != lastSeq || !slices.Equal(c.Members, members) {
		t.Fatalf("%s: Chat = %s %q %q members %v LastSeq %d; want %s %q %q members %v LastSeq %d",
			what, c.ID, c.Kind, c.Title, c.Members, c.LastSeq, chatID, store.KindGroup, title, members, lastSeq)
	}
}

// summary returns user's summary of chatID in Chats, or nil.
func (w *gworld) summary(t *testing.T, user, chatID string) *store.ChatSummary {
	t.Helper()
	sums, err := w.s.Chats(t.Context(), user)
	must(t, err)
	for i := range sums {
		if sums[i].Chat.ID == chatID {
			return &sums[i]
		}
	}
	return nil
}

// checkListed checks that Chats lists chatID, titled title, for members and
// not for others.
func (w *gworld) checkListed(t *testing.T, what, chatID, title string, members, others []string) {
	t.Helper()
	for _, u := range members {
		sum := w.summary(t, u, chatID)
		if sum == nil {
			t.Fatalf("%s: Chats(%s) lacks the group", what, w.names[u])
		}
		if sum.Chat.Kind != store.KindGroup || sum.Chat.Title != title {
			t.Fatalf("%s: Chats(%s) shows the group as %q %q, want %q %q", what, w.names[u], sum.Chat.Kind, sum.Chat.Title, store.KindGroup, title)
		}
	}
	for _, u := range others {
		if w.summary(t, u, chatID) != nil {
			t.Fatalf("%s: Chats(%s) lists the group, but %s is not a member", what, w.names[u], w.names[u])
		}
	}
}

// eventsTo is byDevice that also takes group events.
func eventsTo(t testing.TB, ds []store.Delivery) map[string][]store.Event {
	t.Helper()
	m := map[string][]store.Event{}
	for _, d := range ds {
		e := d.Event
		if e.Cursor <= 0 {
			t.Fatalf("delivery to %s has cursor %d", d.DeviceID, e.Cursor)
		}
		switch e.Kind {
		case store.EventMessage, store.EventGroup:
			if e.Message == nil || e.Receipt != nil {
				t.Fatalf("%s event to %s: Message %v, Receipt %v", e.Kind, d.DeviceID, e.Message, e.Receipt)
			}
		case store.EventReceipt:
			if e.Receipt == nil || e.Message != nil {
				t.Fatalf("receipt event to %s: Message %v, Receipt %v", d.DeviceID, e.Message, e.Receipt)
			}
		default:
			t.Fatalf("delivery to %s has kind %q", d.DeviceID, e.Kind)
		}
		m[d.DeviceID] = append(m[d.DeviceID], e)
	}
	return m
}

// checkFanout checks that ds are exactly one event of kind carrying want to
// each of devices, and that each is in its device's inbox at its cursor.
func (w *gworld) checkFanout(t *testing.T, what string, ds []store.Delivery, kind string, want store.Message, devices ...string) {
	t.Helper()
	got := eventsTo(t, ds)
	if !slices.Equal(sortedKeys(got), sorted(devices)) {
		t.Fatalf("%s: delivered to %s, want %s", what, w.who(sortedKeys(got)), w.who(devices))
	}
	for dev, evs := range got {
		name := w.names[dev]
		if len(evs) != 1 {
			t.Fatalf("%s: %d events to %s, want 1", what, len(evs), name)
		}
		e := evs[0]
		if e.Kind != kind {
			t.Fatalf("%s: event to %s of kind %q, want %q", what, name, e.Kind, kind)
		}
		checkEntry(t, fmt.Sprintf("%s: event to %s", what, name), *e.Message, want)
		inb, _ := inbox(t, w.s, dev)
		i := slices.IndexFunc(inb, func(x store.Event) bool { return x.Cursor == e.Cursor })
		if i < 0 {
			t.Fatalf("%s: inbox of %s lacks delivered cursor %d (has %v)", what, name, e.Cursor, cursors(inb))
		}
		if inb[i].Kind != kind || inb[i].Message == nil {
			t.Fatalf("%s: inbox of %s at %d: kind %q message %v, want a %q event", what, name, e.Cursor, inb[i].Kind, inb[i].Message, kind)
		}
		checkEntry(t, fmt.Sprintf("%s: inbox of %s at %d", what, name, e.Cursor), *inb[i].Message, want)
	}
}

// checkInbox checks the events in dev's inbox, in cursor order, as
// "kind@seq" of chatID's entries ("receipt" for receipts).
func (w *gworld) checkInbox(t *testing.T, what, dev, chatID string, want ...string) {
	t.Helper()
	evs, _ := inbox(t, w.s, dev)
	var got []string
	for _, e := range evs {
		switch {
		case e.Message != nil && e.Message.ChatID == chatID:
			got = append(got, fmt.Sprintf("%s@%d", e.Kind, e.Message.Seq))
		case e.Message != nil:
			got = append(got, fmt.Sprintf("%s@%d in %s", e.Kind, e.Message.Seq, e.Message.ChatID))
		default:
			got = append(got, e.Kind)
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: inbox of %s = %v, want %v", what, w.names[dev], got, want)
	}
}

func (w *gworld) checkNone(t *testing.T, what string, ds []store.Delivery) {
	t.Helper()
	if len(ds) != 0 {
		got := eventsTo(t, ds)
		t.Fatalf("%s: %d deliveries (to %s), want none", what, len(ds), w.who(sortedKeys(got)))
	}
}

// checkHistory checks chatID's whole history, newest first, as "kind@seq"
// (kind "" for a message).
func (w *gworld) checkHistory(t *testing.T, what, chatID string, want ...string) []store.Message {
	t.Helper()
	hist, err := w.s.History(t.Context(), chatID, 0, 1000)
	must(t, err)
	var got []string
	for _, m := range hist {
		got = append(got, fmt.Sprintf("%s@%d", m.Kind, m.Seq))
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: History = %v, want %v", what, got, want)
	}
	return hist
}

// groupState is what a refused write must leave as it was.
type groupState struct {
	chatID  string
	group   store.Group
	err     error
	lastSeq int64
	heads   map[string]int64
}

func (w *gworld) state(t *testing.T, chatID string) groupState {
	t.Helper()
	st := groupState{chatID: chatID}
	st.group, st.err = w.s.Group(t.Context(), chatID)
	if c, err := w.s.Chat(t.Context(), chatID); err == nil {
		st.lastSeq = c.LastSeq
	}
	var err error
	st.heads, err = w.s.Heads(t.Context(), w.devs)
	must(t, err)
	return st
}

// unchanged checks that the group, its log and every inbox are as in
// before.
func (w *gworld) unchanged(t *testing.T, what string, before groupState) {
	t.Helper()
	after := w.state(t, before.chatID)
	if (before.err == nil) != (after.err == nil) {
		t.Fatalf("%s: Group answered %v before, %v after", what, before.err, after.err)
	}
	if before.err == nil {
		if d := diffGroup(after.group, before.group); d != "" {
			t.Fatalf("%s changed the group: %s", what, d)
		}
	}
	if after.lastSeq != before.lastSeq {
		t.Fatalf("%s stored a log entry: LastSeq %d, was %d", what, after.lastSeq, before.lastSeq)
	}
	for _, d := range w.devs {
		if after.heads[d] != before.heads[d] {
			t.Fatalf("%s appended to the inbox of %s: head %d, was %d", what, w.names[d], after.heads[d], before.heads[d])
		}
	}
}

func wantErrOneOf(t testing.TB, err error, what string, targets ...error) {
	t.Helper()
	for _, target := range targets {
		if errors.Is(err, target) {
			return
		}
	}
	t.Fatalf("%s: got error %v, want one of %v", what, err, targets)
}

func testGroups(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Create", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		g := store.NewID(store.PrefixGroup)
		// Not in id order: the store keeps the order given.
		cw := createWrite(g, w.alice, w.a1, 1,
			gmember(w.alice, store.RoleAdmin, 1), gmember(w.carol, store.RoleMember, 1), gmember(w.bob, store.RoleAdmin, 1))
		cw.Create.Settings = store.GroupSettings{EditInfo: store.AllowAll, Send: store.AllowAdmins}
		r := writeGroup(t, s, cw)
		want, entry := created(cw)
		checkEntry(t, "WriteGroup's entry", r.Message, entry)
		checkGroup(t, "WriteGroup's group", r.Group, want)
		w.checkFanout(t, "creation", r.Deliveries, store.EventGroup, entry, w.a1, w.a2, w.b1, w.b2, w.c1)
		w.checkStored(t, "after creation", want)
		_, err := s.Member(ctx, g, w.dave)
		wantErr(t, err, store.ErrNotMember, "Member of a non-member")
		w.checkChat(t, "after creation", g, "trip", 1, w.alice, w.carol, w.bob)
		w.checkListed(t, "after creation", g, "trip", []string{w.alice, w.bob, w.carol}, []string{w.dave})
		hist := w.checkHistory(t, "after creation", g, "group@1")
		checkEntry(t, "History", hist[0], entry)
		w.checkInbox(t, "after creation", w.d1, g)
	})

	t.Run("CreateInvalid", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		valid := func() store.GroupWrite {
			return createWrite(store.NewID(store.PrefixGroup), w.alice, w.a1, 1,
				gmember(w.alice, store.RoleAdmin, 1), gmember(w.bob, store.RoleMember, 1), gmember(w.carol, store.RoleMember, 1))
		}
		setChat := func(cw *store.GroupWrite, id string) { cw.Create.ChatID, cw.Message.ChatID = id, id }
		for _, c := range []struct {
			name string
			edit func(cw *store.GroupWrite)
		}{
			{"DirectChatID", func(cw *store.GroupWrite) { setChat(cw, store.DirectChatID(w.alice, w.bob)) }},
			{"UserIDAsChatID", func(cw *store.GroupWrite) { setChat(cw, store.NewID(store.PrefixUser)) }},
			{"EmptyChatID", func(cw *store.GroupWrite) { setChat(cw, "") }},
			{"EntryInAnotherChat", func(cw *store.GroupWrite) { cw.Message.ChatID = store.NewID(store.PrefixGroup) }},
			{"NoMembers", func(cw *store.GroupWrite) { cw.Create.Members = nil }},
			{"EmptyMemberID", func(cw *store.GroupWrite) {
				cw.Create.Members = append(cw.Create.Members, gmember("", store.RoleMember, 1))
			}},
			{"MemberTwice", func(cw *store.GroupWrite) {
				cw.Create.Members = append(cw.Create.Members, gmember(w.bob, store.RoleAdmin, 1))
			}},
			{"UnknownRole", func(cw *store.GroupWrite) { cw.Create.Members[2].Role = "owner" }},
			{"NoRole", func(cw *store.GroupWrite) { cw.Create.Members[2].Role = "" }},
			{"BadEditInfo", func(cw *store.GroupWrite) { cw.Create.Settings.EditInfo = "everyone" }},
			{"NoSend", func(cw *store.GroupWrite) { cw.Create.Settings.Send = "" }},
			{"AuthorNotMember", func(cw *store.GroupWrite) { cw.Message.From, cw.Message.FromDevice = w.dave, w.d1 }},
		} {
			cw := valid()
			c.edit(&cw)
			before := w.state(t, cw.Create.ChatID)
			_, err := s.WriteGroup(ctx, cw)
			wantErr(t, err, store.ErrInvalid, c.name)
			w.unchanged(t, c.name, before)
			for _, u := range []string{w.alice, w.bob, w.carol, w.dave} {
				if sums, err := s.Chats(ctx, u); err != nil || len(sums) != 0 {
					t.Fatalf("%s: Chats(%s) = %d chats, %v; want none", c.name, w.names[u], len(sums), err)
				}
			}
		}
		// The unedited request is valid: the refusals above came from the
		// edits.
		cw := valid()
		r := writeGroup(t, s, cw)
		if r.Message.Seq != 1 {
			t.Fatalf("valid create after refused ones: seq %d", r.Message.Seq)
		}
	})

	t.Run("CreateConflict", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		want, _ := w.newGroup(t, w.bob)
		again := createWrite(want.ChatID, w.carol, w.c1, 5, gmember(w.carol, store.RoleAdmin, 5), gmember(w.dave, store.RoleMember, 5))
		again.Create.Name = "other"
		before := w.state(t, want.ChatID)
		_, err := s.WriteGroup(ctx, again)
		wantErr(t, err, store.ErrConflict, "second create of the same chat id")
		w.unchanged(t, "second create", before)
		w.checkStored(t, "after second create", want)
	})

	t.Run("Unknown", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		g := store.NewID(store.PrefixGroup)
		_, err := s.Group(ctx, g)
		wantErr(t, err, store.ErrNotFound, "Group of an unknown group")
		_, err = s.Member(ctx, g, w.alice)
		wantErr(t, err, store.ErrNotMember, "Member of an unknown group")
		before := w.state(t, g)
		_, err = s.WriteGroup(ctx, changeWrite(g, w.alice, w.a1, 1, "info_changed", func(g *store.Group) error {
			g.Name = "ghost"
			return nil
		}))
		wantErr(t, err, store.ErrNotFound, "change of an unknown group")
		w.unchanged(t, "change of an unknown group", before)
		_, err = s.Send(ctx, groupSend(g, w.alice, w.a1, "x", 2, "anyone?"))
		wantErr(t, err, store.ErrNotFound, "send to an unknown group")
		w.unchanged(t, "send to an unknown group", before)
	})

	t.Run("AddMembers", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		want, _ := w.newGroup(t, w.bob)
		g := want.ChatID
		added := []store.Member{gmember(w.carol, store.RoleMember, 10), gmember(w.dave, store.RoleAdmin, 10)}
		cw := changeWrite(g, w.alice, w.a2, 10, "members_added", addMembers(added...), w.carol, w.dave)
		r := writeGroup(t, s, cw)
		entry := cw.Message
		entry.Seq, entry.Kind = 2, store.EventGroup
		checkEntry(t, "WriteGroup's entry", r.Message, entry)
		for _, m := range added {
			m.JoinedSeq = 2
			want.Members = append(want.Members, m)
		}
		checkGroup(t, "WriteGroup's group", r.Group, want)
		w.checkFanout(t, "add", r.Deliveries, store.EventGroup, entry, w.a1, w.a2, w.b1, w.b2, w.c1, w.d1)
		w.checkStored(t, "after add", want)
		w.checkChat(t, "after add", g, "trip", 2, w.alice, w.bob, w.carol, w.dave)
		w.checkListed(t, "after add", g, "trip", []string{w.alice, w.bob, w.carol, w.dave}, nil)
		w.checkHistory(t, "after add", g, "group@2", "group@1")
		// New members see the chat from their addition on.
		w.checkInbox(t, "after add", w.c1, g, "group@2")
		w.checkInbox(t, "after add", w.b1, g, "group@1", "group@2")
		if _, err := s.Member(ctx, g, w.carol); err != nil {
			t.Fatal(err)
		}
	})

	t.Run("RemoveMember", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		want, _ := w.newGroup(t, w.bob, w.carol)
		g := want.ChatID
		cw := changeWrite(g, w.alice, w.a1, 10, "member_removed", removeMember(w.bob), w.bob)
		r := writeGroup(t, s, cw)
		entry := cw.Message
		entry.Seq, entry.Kind = 2, store.EventGroup
		checkEntry(t, "WriteGroup's entry", r.Message, entry)
		want.Members = slices.Delete(want.Members, 1, 2)
		checkGroup(t, "WriteGroup's group", r.Group, want)
		// bob learns of his own removal.
		w.checkFanout(t, "removal", r.Deliveries, store.EventGroup, entry, w.a1, w.a2, w.b1, w.b2, w.c1)
		w.checkStored(t, "after removal", want)
		_, err := s.Member(ctx, g, w.bob)
		wantErr(t, err, store.ErrNotMember, "Member of the removed member")
		w.checkChat(t, "after removal", g, "trip", 2, w.alice, w.carol)
		w.checkListed(t, "after removal", g, "trip", []string{w.alice, w.carol}, []string{w.bob})

		// Later changes no longer reach bob.
		cw = changeWrite(g, w.carol, w.c1, 11, "info_changed", func(g *store.Group) error {
			g.Description = "bob is out"
			return nil
		})
		r = writeGroup(t, s, cw)
		entry = cw.Message
		entry.Seq, entry.Kind = 3, store.EventGroup
		w.checkFanout(t, "change after removal", r.Deliveries, store.EventGroup, entry, w.a1, w.a2, w.c1)
		w.checkInbox(t, "after removal", w.b2, g, "group@1", "group@2")
	})

	t.Run("Leave", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		want, _ := w.newGroup(t, w.bob, w.carol)
		g := want.ChatID
		// carol removes herself: she was a member before the change.
		cw := changeWrite(g, w.carol, w.c1, 10, "member_left", removeMember(w.carol), w.carol)
		r := writeGroup(t, s, cw)
		entry := cw.Message
		entry.Seq, entry.Kind = 2, store.EventGroup
		w.checkFanout(t, "leave", r.Deliveries, store.EventGroup, entry, w.a1, w.a2, w.b1, w.b2, w.c1)
		want.Members = want.Members[:2]
		w.checkStored(t, "after leave", want)
		_, err := s.Member(ctx, g, w.carol)
		wantErr(t, err, store.ErrNotMember, "Member of the member who left")
		w.checkListed(t, "after leave", g, "trip", []string{w.alice, w.bob}, []string{w.carol})
	})

	t.Run("ChangeInfo", func(t *testing.T) {
		s := newStore(t)
		w := newGWorld(t, s)
		want, _ := w.newGroup(t, w.bob, w.carol)
		g := want.ChatID
		cw := changeWrite(g, w.alice, w.a2, 10, "info_changed", func(g *store.Group) error {
			g.Name, g.Description = "trip 2", ""
			g.Settings = store.GroupSettings{EditInfo: store.AllowAll, Send: store.AllowAdmins}
			g.Member(w.bob).Role = store.RoleAdmin
			g.Member(w.alice).Role = store.RoleMember
			return nil
		})
		r := writeGroup(t, s, cw)
		want.Name, want.Description = "trip 2", ""
		want.Settings = store.GroupSettings{EditInfo: store.AllowAll, Send: store.AllowAdmins}
		want.Members[0].Role, want.Members[1].Role = store.RoleMember, store.RoleAdmin
		checkGroup(t, "WriteGroup's group", r.Group, want)
		entry := cw.Message
		entry.Seq, entry.Kind = 2, store.EventGroup
		w.checkFanout(t, "change", r.Deliveries, store.EventGroup, entry, w.a1, w.a2, w.b1, w.b2, w.c1)
		w.checkStored(t, "after change", want)
		w.checkChat(t, "after change", g, "trip 2", 2, w.alice, w.bob, w.carol)
		w.checkListed(t, "after change", g, "trip 2", []string{w.alice, w.bob, w.carol}, []string{w.dave})
	})

	t.Run("ApplyError", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		want, _ := w.newGroup(t, w.bob, w.carol)
		g := want.ChatID
		before := w.state(t, g)
		// Apply changes the group in place, then refuses: none of it stays.
		_, err := s.WriteGroup(ctx, changeWrite(g, w.bob, w.b1, 10, "member_removed", func(g *store.Group) error {
			g.Name = "taken over"
			g.Settings.Send = store.AllowAdmins
			g.Members[1].Role = store.RoleAdmin
			g.Members = slices.DeleteFunc(g.Members, func(m store.Member) bool { return m.UserID == w.alice })
			g.Members = append(g.Members, gmember(w.dave, store.RoleAdmin, 10))
			return errRefused
		}, w.alice))
		wantErr(t, err, errRefused, "Apply's error")
		w.unchanged(t, "a refused change", before)
		w.checkStored(t, "after a refused change", want)
		w.checkHistory(t, "after a refused change", g, "group@1")
		_, err = s.Member(ctx, g, w.dave)
		wantErr(t, err, store.ErrNotMember, "Member of a user a refused change added")
	})

	t.Run("ApplyByNonMember", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		want, _ := w.newGroup(t, w.bob, w.carol)
		g := want.ChatID
		before := w.state(t, g)
		_, err := s.WriteGroup(ctx, changeWrite(g, w.dave, w.d1, 10, "members_added",
			addMembers(gmember(w.dave, store.RoleAdmin, 10)), w.dave))
		wantErr(t, err, store.ErrNotMember, "a change by a user who never was a member")
		w.unchanged(t, "a change by a non-member", before)

		writeGroup(t, s, changeWrite(g, w.alice, w.a1, 11, "member_removed", removeMember(w.bob), w.bob))
		before = w.state(t, g)
		_, err = s.WriteGroup(ctx, changeWrite(g, w.bob, w.b1, 12, "members_added",
			addMembers(gmember(w.bob, store.RoleMember, 12)), w.bob))
		wantErr(t, err, store.ErrNotMember, "a change by a removed member")
		w.unchanged(t, "a change by a removed member", before)
		_, err = s.Member(ctx, g, w.bob)
		wantErr(t, err, store.ErrNotMember, "Member of the removed member after his change")
	})

	t.Run("Operator", func(t *testing.T) {
		// The operators' change (the admin API deleting a group): its
		// writer is no member, and it may leave the group empty; every
		// member's devices learn of it, and then nobody can write.
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		want, _ := w.newGroup(t, w.bob, w.carol)
		g := want.ChatID
		cw := changeWrite(g, "system", "system", 10, "deleted", func(g *store.Group) error {
			g.Members = nil
			return nil
		})
		cw.Operator = true
		r := writeGroup(t, s, cw)
		entry := cw.Message
		entry.Seq, entry.Kind = 2, store.EventGroup
		w.checkFanout(t, "deletion", r.Deliveries, store.EventGroup, entry, w.a1, w.a2, w.b1, w.b2, w.c1)
		want.Members = nil
		w.checkStored(t, "after deletion", want)
		w.checkListed(t, "after deletion", g, "trip", nil, []string{w.alice, w.bob, w.carol})
		_, err := s.WriteGroup(ctx, changeWrite(g, w.alice, w.a1, 11, "members_added",
			addMembers(gmember(w.alice, store.RoleAdmin, 11)), w.alice))
		wantErr(t, err, store.ErrNotMember, "a former admin's change after the deletion")
	})

	t.Run("ApplyImmutable", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		orig, _ := w.newGroup(t, w.bob)
		g := orig.ChatID
		other := store.NewID(store.PrefixGroup)
		for _, c := range []struct {
			name  string
			apply func(g *store.Group) error
		}{
			{"ChatID", func(g *store.Group) error { g.ChatID = other; return nil }},
			{"CreatedBy", func(g *store.Group) error { g.CreatedBy = w.bob; return nil }},
			{"CreatedAt", func(g *store.Group) error { g.CreatedAt = at(999); return nil }},
		} {
			before := w.state(t, g)
			r, err := s.WriteGroup(ctx, changeWrite(g, w.alice, w.a1, 10, "info_changed", c.apply))
			switch {
			case err == nil: // ignored
				if r.Group.ChatID != g || r.Group.CreatedBy != orig.CreatedBy || !r.Group.CreatedAt.Equal(orig.CreatedAt) {
					t.Fatalf("%s: a change of %s was accepted: WriteGroup's group is %s created by %s at %v",
						c.name, c.name, r.Group.ChatID, r.Group.CreatedBy, r.Group.CreatedAt)
				}
			case errors.Is(err, store.ErrInvalid): // refused
				w.unchanged(t, "a refused change of "+c.name, before)
			default:
				t.Fatalf("%s: a change of %s: %v, want it ignored or ErrInvalid", c.name, c.name, err)
			}
			w.checkStored(t, "after a change of "+c.name, orig)
		}
		_, err := s.Group(ctx, other)
		wantErr(t, err, store.ErrNotFound, "Group of the chat id a change tried to set")
	})

	t.Run("ApplyInvalid", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		want, _ := w.newGroup(t, w.bob)
		g := want.ChatID
		for _, c := range []struct {
			name  string
			apply func(g *store.Group) error
		}{
			{"DuplicateMember", addMembers(gmember(w.bob, store.RoleMember, 10))},
			{"UnknownRole", func(g *store.Group) error { g.Member(w.bob).Role = "owner"; return nil }},
			{"NewMemberWithoutRole", addMembers(gmember(w.carol, "", 10))},
		} {
			before := w.state(t, g)
			_, err := s.WriteGroup(ctx, changeWrite(g, w.alice, w.a1, 10, "members_added", c.apply))
			wantErr(t, err, store.ErrInvalid, c.name)
			w.unchanged(t, c.name, before)
		}
		w.checkStored(t, "after invalid changes", want)
		w.checkHistory(t, "after invalid changes", g, "group@1")
	})

	t.Run("ConcurrentAdds", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		orig, _ := w.newGroup(t, w.bob)
		g := orig.ChatID
		const n = 8
		users, devs := make([]string, n), make([]string, n)
		for i := range n {
			users[i], devs[i] = w.addUser(t, fmt.Sprintf("u%d", i), i)
		}
		writes := make([]store.GroupWrite, n)
		for i := range n {
			writes[i] = changeWrite(g, w.alice, w.a1, int64(10+i), "members_added",
				addMembers(gmember(users[i], store.RoleMember, int64(10+i))), users[i])
		}
		results := make([]store.GroupResult, n)
		errs := make([]error, n)
		race(n, func(i int) { results[i], errs[i] = s.WriteGroup(ctx, writes[i]) })
		must(t, errors.Join(errs...))
		seqOf := map[string]int64{} // user -> seq of its addition
		bySeq := map[int64]int{}    // seq -> i
		for i, r := range results {
			if r.Message.Seq < 2 || r.Message.Seq > n+1 {
				t.Fatalf("add of u%d: seq %d, want 2..%d", i, r.Message.Seq, n+1)
			}
			if j, dup := bySeq[r.Message.Seq]; dup {
				t.Fatalf("seq %d given to the adds of u%d and u%d", r.Message.Seq, j, i)
			}
			bySeq[r.Message.Seq] = i
			seqOf[users[i]] = r.Message.Seq
		}
		// Each write ran against the group as the writes before it left it.
		want := orig
		for seq := int64(2); seq <= n+1; seq++ {
			i := bySeq[seq]
			m := gmember(users[i], store.RoleMember, int64(10+i))
			m.JoinedSeq = seq
			want.Members = append(want.Members, m)
			r := results[i]
			checkGroup(t, fmt.Sprintf("WriteGroup's group after the add of seq %d", seq), r.Group, want)
			devices := []string{w.a1, w.a2, w.b1, w.b2}
			for _, in := range want.Members[2:] {
				devices = append(devices, devs[slices.Index(users, in.UserID)])
			}
			entry := writes[i].Message
			entry.Seq, entry.Kind = seq, store.EventGroup
			checkEntry(t, fmt.Sprintf("WriteGroup's entry of seq %d", seq), r.Message, entry)
			w.checkFanout(t, fmt.Sprintf("add of seq %d", seq), r.Deliveries, store.EventGroup, entry, devices...)
		}
		w.checkStored(t, "after concurrent adds", want)
		w.checkChat(t, "after concurrent adds", g, "trip", n+1, want.UserIDs()...)
		var all []string
		for seq := int64(1); seq <= n+1; seq++ {
			all = append(all, fmt.Sprintf("%s@%d", store.EventGroup, seq))
		}
		w.checkInbox(t, "after concurrent adds", w.a1, g, all...)
		for i, dev := range devs {
			w.checkInbox(t, "after concurrent adds", dev, g, all[seqOf[users[i]]-1:]...)
		}
		slices.Reverse(all)
		w.checkHistory(t, "after concurrent adds", g, all...)
	})

	t.Run("Send", func(t *testing.T) {
		s := newStore(t)
		w := newGWorld(t, s)
		grp, _ := w.newGroup(t, w.bob, w.carol)
		g := grp.ChatID
		// Members and Devices are ignored: dave's d1 gets nothing, everyone
		// but the sending device gets the message.
		req := groupSend(g, w.alice, w.a1, "1", 2, "hello all")
		req.Members, req.Devices = []string{w.alice, w.dave}, []string{w.d1, w.a1}
		r := send(t, s, req)
		if r.Duplicate {
			t.Fatal("first send reported Duplicate")
		}
		m2 := sent(req, 2)
		checkEntry(t, "alice's send", r.Message, m2)
		w.checkFanout(t, "alice's send", r.Deliveries, store.EventMessage, m2, w.a2, w.b1, w.b2, w.c1)

		req = groupSend(g, w.bob, w.b2, "1", 3, "hi")
		r = send(t, s, req)
		m3 := sent(req, 3)
		checkEntry(t, "bob's send", r.Message, m3)
		w.checkFanout(t, "bob's send", r.Deliveries, store.EventMessage, m3, w.a1, w.a2, w.b1, w.c1)

		req = groupSend(g, w.carol, w.c1, "1", 4, "hey")
		r = send(t, s, req)
		m4 := sent(req, 4)
		checkEntry(t, "carol's send", r.Message, m4)
		w.checkFanout(t, "carol's send", r.Deliveries, store.EventMessage, m4, w.a1, w.a2, w.b1, w.b2)

		w.checkInbox(t, "after sends", w.a1, g, "group@1", "message@3", "message@4")
		w.checkInbox(t, "after sends", w.d1, g)
		hist := w.checkHistory(t, "after sends", g, "@4", "@3", "@2", "group@1")
		for i, m := range []store.Message{m4, m3, m2} {
			checkEntry(t, "History", hist[i], m)
		}
		w.checkChat(t, "after sends", g, "trip", 4, w.alice, w.bob, w.carol)
	})

	t.Run("SendNotMember", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		grp, _ := w.newGroup(t, w.bob, w.carol)
		g := grp.ChatID
		before := w.state(t, g)
		_, err := s.Send(ctx, groupSend(g, w.dave, w.d1, "1", 2, "let me in"))
		wantErr(t, err, store.ErrNotMember, "send by a user who never was a member")
		w.unchanged(t, "send by a non-member", before)

		writeGroup(t, s, changeWrite(g, w.alice, w.a1, 3, "member_removed", removeMember(w.bob), w.bob))
		before = w.state(t, g)
		_, err = s.Send(ctx, groupSend(g, w.bob, w.b1, "1", 4, "still here"))
		wantErr(t, err, store.ErrNotMember, "send by a removed member")
		w.unchanged(t, "send by a removed member", before)
	})

	t.Run("SendCheck", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		grp, _ := w.newGroup(t, w.bob, w.carol)
		g := grp.ChatID
		var seen store.Group
		// The caller's rule: when only admins may send, others may not.
		check := func(user string) func(g *store.Group) error {
			return func(g *store.Group) error {
				seen = *g
				if g.Settings.Send == store.AllowAdmins && !g.IsAdmin(user) {
					return errRefused
				}
				return nil
			}
		}
		req := groupSend(g, w.bob, w.b1, "1", 2, "allowed")
		req.Check = check(w.bob)
		if r := send(t, s, req); r.Message.Seq != 2 {
			t.Fatalf("bob's send while all may send: seq %d, want 2", r.Message.Seq)
		}
		if seen.ChatID != g || !slices.Equal(seen.UserIDs(), grp.UserIDs()) {
			t.Fatalf("Check got group %s with members %v, want %s with %v", seen.ChatID, seen.UserIDs(), g, grp.UserIDs())
		}

		writeGroup(t, s, changeWrite(g, w.alice, w.a1, 3, "settings_changed", func(g *store.Group) error {
			g.Settings.Send = store.AllowAdmins
			return nil
		}))
		before := w.state(t, g)
		req = groupSend(g, w.bob, w.b1, "2", 4, "refused")
		req.Check = check(w.bob)
		_, err := s.Send(ctx, req)
		wantErr(t, err, errRefused, "Check's error on bob's send when only admins may send")
		w.unchanged(t, "a send Check refused", before)

		req = groupSend(g, w.alice, w.a1, "2", 5, "admin speaking")
		req.Check = check(w.alice)
		if r := send(t, s, req); r.Message.Seq != 4 {
			t.Fatalf("alice's (admin) send: seq %d, want 4", r.Message.Seq)
		}

		writeGroup(t, s, changeWrite(g, w.alice, w.a1, 6, "admin_added", func(g *store.Group) error {
			g.Member(w.bob).Role = store.RoleAdmin
			return nil
		}, w.bob))
		req = groupSend(g, w.bob, w.b1, "2", 7, "now an admin") // "2" was not used up by the refused send
		req.Check = check(w.bob)
		if r := send(t, s, req); r.Message.Seq != 6 || r.Duplicate {
			t.Fatalf("bob's send as an admin: seq %d Duplicate %v, want a new message 6", r.Message.Seq, r.Duplicate)
		}

		// Membership comes first: a non-member gets ErrNotMember, whatever
		// Check would say.
		before = w.state(t, g)
		req = groupSend(g, w.dave, w.d1, "1", 8, "outsider")
		req.Check = func(*store.Group) error { return errRefused }
		_, err = s.Send(ctx, req)
		wantErr(t, err, store.ErrNotMember, "send by a non-member with a refusing Check")
		w.unchanged(t, "send by a non-member", before)
	})

	t.Run("SendJoinLeave", func(t *testing.T) {
		s := newStore(t)
		w := newGWorld(t, s)
		grp, _ := w.newGroup(t, w.bob)
		g := grp.ChatID
		send(t, s, groupSend(g, w.alice, w.a1, "1", 2, "m2"))
		send(t, s, groupSend(g, w.bob, w.b1, "1", 3, "m3"))
		r := writeGroup(t, s, changeWrite(g, w.alice, w.a1, 4, "members_added", addMembers(gmember(w.carol, store.RoleMember, 4)), w.carol))
		if r.Message.Seq != 4 {
			t.Fatalf("add after two messages: seq %d, want 4 (one seq for messages and changes)", r.Message.Seq)
		}
		if m, err := w.s.Member(t.Context(), g, w.carol); err != nil || m.JoinedSeq != 4 {
			t.Fatalf("Member(carol) = %+v, %v; want JoinedSeq 4", m, err)
		}
		send(t, s, groupSend(g, w.alice, w.a1, "2", 5, "m5"))
		writeGroup(t, s, changeWrite(g, w.alice, w.a1, 6, "member_removed", removeMember(w.bob), w.bob))
		send(t, s, groupSend(g, w.alice, w.a1, "3", 7, "m7"))
		req := groupSend(g, w.carol, w.c1, "1", 8, "m8")
		r8 := send(t, s, req)
		w.checkFanout(t, "carol's send after bob left", r8.Deliveries, store.EventMessage, sent(req, 8), w.a1, w.a2)

		w.checkInbox(t, "after joins and leaves", w.c1, g, "group@4", "message@5", "group@6", "message@7")
		w.checkInbox(t, "after joins and leaves", w.b1, g, "group@1", "message@2", "group@4", "message@5", "group@6")
		w.checkInbox(t, "after joins and leaves", w.b2, g, "group@1", "message@2", "message@3", "group@4", "message@5", "group@6")
		w.checkInbox(t, "after joins and leaves", w.a1, g, "group@1", "message@3", "group@4", "group@6", "message@8")
		w.checkInbox(t, "after joins and leaves", w.a2, g, "group@1", "message@2", "message@3", "group@4", "message@5", "group@6", "message@7", "message@8")
		w.checkInbox(t, "after joins and leaves", w.d1, g)
		w.checkHistory(t, "after joins and leaves", g, "@8", "@7", "group@6", "@5", "group@4", "@3", "@2", "group@1")
		w.checkChat(t, "after joins and leaves", g, "trip", 8, w.alice, w.carol)
	})

	t.Run("SendIdempotent", func(t *testing.T) {
		s := newStore(t)
		w := newGWorld(t, s)
		grp, _ := w.newGroup(t, w.bob)
		g := grp.ChatID
		first := send(t, s, groupSend(g, w.alice, w.a1, "x", 2, "once"))
		dup := send(t, s, groupSend(g, w.alice, w.a1, "x", 3, "changed"))
		if !dup.Duplicate || len(dup.Deliveries) != 0 {
			t.Fatalf("resend: Duplicate %v with %d deliveries; want true and none", dup.Duplicate, len(dup.Deliveries))
		}
		checkEntry(t, "resend answers the first message", dup.Message, first.Message)
		w.checkInbox(t, "after resend", w.b1, g, "group@1", "message@2")
		w.checkHistory(t, "after resend", g, "@2", "group@1")
		// The key is the device's: a2 may use it too.
		if other := send(t, s, groupSend(g, w.alice, w.a2, "x", 4, "from a2")); other.Duplicate || other.Message.Seq != 3 {
			t.Fatalf("same client id from a2: Duplicate %v seq %d; want a new message 3", other.Duplicate, other.Message.Seq)
		}
	})

	t.Run("LargeGroup", func(t *testing.T) {
		s := newStore(t)
		w := newGWorld(t, s)
		const n = 40
		members := []store.Member{gmember(w.alice, store.RoleAdmin, 1)}
		devices := []string{w.a1, w.a2}
		for i := 1; i < n; i++ {
			u, d := w.addUser(t, fmt.Sprintf("u%d", i), i)
			members = append(members, gmember(u, store.RoleMember, 1))
			devices = append(devices, d)
		}
		cw := createWrite(store.NewID(store.PrefixGroup), w.alice, w.a1, 1, members...)
		g := cw.Create.ChatID
		r := writeGroup(t, s, cw)
		want, entry := created(cw)
		w.checkFanout(t, "creation", r.Deliveries, store.EventGroup, entry, devices...)
		w.checkStored(t, "after creation", want)
		w.checkChat(t, "after creation", g, "trip", 1, want.UserIDs()...)

		req := groupSend(g, w.alice, w.a1, "1", 2, "welcome")
		w.checkFanout(t, "alice's send", send(t, s, req).Deliveries, store.EventMessage, sent(req, 2), devices[1:]...)
		last := members[n-1].UserID
		req = groupSend(g, last, devices[n], "1", 3, "thanks")
		w.checkFanout(t, "the last member's send", send(t, s, req).Deliveries, store.EventMessage, sent(req, 3), devices[:n]...)
	})

	t.Run("ReceiptsDelivered", func(t *testing.T) {
		s := newStore(t)
		w := newGWorld(t, s)
		grp, _ := w.newGroup(t, w.bob, w.carol)
		g := grp.ChatID
		ackAll := func(dev string) []store.Delivery {
			t.Helper()
			_, head := inbox(t, s, dev)
			return ack(t, s, dev, head)
		}
		// Inboxes holding only the creation: no receipts.
		for _, dev := range []string{w.b1, w.c1, w.a2} {
			w.checkNone(t, "ack of the creation by "+w.names[dev], ackAll(dev))
		}
		m := send(t, s, groupSend(g, w.alice, w.a1, "1", 2, "hello")).Message
		ds := ackAll(w.b1)
		checkReceipts(t, "b1 acks", ds, []string{w.a1, w.a2}, wantReceipt{g, store.StatusDelivered, w.bob, []string{m.ID}})
		checkInboxHas(t, s, ds)
		w.checkNone(t, "b2 acks the same message", ackAll(w.b2))
		checkReceipts(t, "c1 acks", ackAll(w.c1), []string{w.a1, w.a2}, wantReceipt{g, store.StatusDelivered, w.carol, []string{m.ID}})

		// A change and a message acked together: a receipt for the message
		// only.
		writeGroup(t, s, changeWrite(g, w.alice, w.a1, 3, "info_changed", func(g *store.Group) error {
			g.Name = "trip 2"
			return nil
		}))
		m2 := send(t, s, groupSend(g, w.alice, w.a1, "2", 4, "again")).Message
		checkReceipts(t, "b1 acks a change and a message", ackAll(w.b1), []string{w.a1, w.a2},
			wantReceipt{g, store.StatusDelivered, w.bob, []string{m2.ID}})

		// A change by bob, acked by alice: nothing to bob.
		w.checkNone(t, "a2 acks alice's own messages and change, and receipts", ackAll(w.a2))
		writeGroup(t, s, changeWrite(g, w.bob, w.b1, 5, "info_changed", func(g *store.Group) error {
			g.Description = "by bob"
			return nil
		}))
		w.checkInbox(t, "before a2's ack", w.a2, g, "group@5")
		w.checkNone(t, "a2 acks bob's change", ackAll(w.a2))
	})

	t.Run("ReceiptsRead", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		grp, _ := w.newGroup(t, w.bob, w.carol)
		g := grp.ChatID
		ds, err := s.MarkRead(ctx, w.bob, g, 1, ts(2), true)
		must(t, err)
		w.checkNone(t, "bob reads the creation", ds)

		m2 := send(t, s, groupSend(g, w.alice, w.a1, "1", 3, "one")).Message
		writeGroup(t, s, changeWrite(g, w.alice, w.a1, 4, "info_changed", func(g *store.Group) error {
			g.Name = "trip 2"
			return nil
		}))
		m4 := send(t, s, groupSend(g, w.alice, w.a2, "1", 5, "two")).Message
		ds, err = s.MarkRead(ctx, w.bob, g, 2, ts(6), true)
		must(t, err)
		checkReceipts(t, "bob reads to 2", ds, []string{w.a1, w.a2}, wantReceipt{g, store.StatusRead, w.bob, []string{m2.ID}})
		checkInboxHas(t, s, ds)
		ds, err = s.MarkRead(ctx, w.carol, g, 4, ts(7), true)
		must(t, err)
		checkReceipts(t, "carol reads over a change", ds, []string{w.a1, w.a2}, wantReceipt{g, store.StatusRead, w.carol, []string{m2.ID, m4.ID}})
		ds, err = s.MarkRead(ctx, w.bob, g, 4, ts(8), true)
		must(t, err)
		checkReceipts(t, "bob reads on", ds, []string{w.a1, w.a2}, wantReceipt{g, store.StatusRead, w.bob, []string{m4.ID}})

		// Only changes, by others, to read: no receipts.
		writeGroup(t, s, changeWrite(g, w.bob, w.b1, 9, "info_changed", func(g *store.Group) error {
			g.Description = "by bob"
			return nil
		}))
		ds, err = s.MarkRead(ctx, w.alice, g, 5, ts(10), true)
		must(t, err)
		w.checkNone(t, "alice reads bob's change", ds)
		ds, err = s.MarkRead(ctx, w.carol, g, 5, ts(11), true)
		must(t, err)
		w.checkNone(t, "carol reads bob's change", ds)
	})

	t.Run("MarkReadNotMember", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		w := newGWorld(t, s)
		grp, _ := w.newGroup(t, w.bob, w.carol)
		g := grp.ChatID
		send(t, s, groupSend(g, w.alice, w.a1, "1", 2, "hi"))
		_, err := s.MarkRead(ctx, w.dave, g, 2, ts(3), true)
		wantErrOneOf(t, err, "MarkRead by a user who never was a member", store.ErrNotFound, store.ErrNotMember)
		writeGroup(t, s, changeWrite(g, w.alice, w.a1, 4, "member_removed", removeMember(w.bob), w.bob))
		before := w.state(t, g)
		_, err = s.MarkRead(ctx, w.bob, g, 2, ts(5), true)
		wantErrOneOf(t, err, "MarkRead by a removed member", store.ErrNotFound, store.ErrNotMember)
		w.unchanged(t, "MarkRead by a removed member", before)
	})
}
