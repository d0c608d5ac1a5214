package server_test

import (
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// groupCast is a node with alice (two devices), bob, carol and dave signed
// in, and a group of alice (admin), bob and carol.
type groupCast struct {
	nodes                      []*servertest.Node
	alice, alice2, bob, carol  *client.Client
	dave                       *client.Client
	aID, bID, cID, dID, chatID string
}

// deployments are what every group test runs on: one embedded node, and a
// cluster of three nodes on MongoDB (FerretDB) and RabbitMQ with the users
// spread over them.
var deployments = []struct {
	name  string
	start func(t *testing.T, cfg server.Config) []*servertest.Node
}{
	{"embedded", func(t *testing.T, cfg server.Config) []*servertest.Node {
		return []*servertest.Node{servertest.Start(t, servertest.Options{Server: cfg})}
	}},
	{"cluster", func(t *testing.T, cfg server.Config) []*servertest.Node {
		return servertest.StartCluster(t, 3, servertest.Options{Server: cfg})
	}},
}

// eachDeployment runs test on every deployment.
func eachDeployment(t *testing.T, cfg server.Config, test func(t *testing.T, g *groupCast)) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) { test(t, newGroupCast(t, d.start(t, cfg))) })
	}
}

// node returns the node the i-th login goes to.
func (g *groupCast) node(i int) *servertest.Node { return g.nodes[i%len(g.nodes)] }

func newGroupCast(t *testing.T, nodes []*servertest.Node) *groupCast {
	t.Helper()
	g := &groupCast{nodes: nodes}
	g.alice = g.node(0).Login(t, "+14155550201", "alice-phone")
	g.alice2 = g.node(1).Login(t, "+14155550201", "alice-laptop")
	g.bob = g.node(2).Login(t, "+14155550202", "bob-phone")
	g.carol = g.node(3).Login(t, "+14155550203", "carol-phone")
	g.dave = g.node(4).Login(t, "+14155550204", "dave-phone")
	g.aID, g.bID, g.cID, g.dID = g.alice.Session().UserID, g.bob.Session().UserID, g.carol.Session().UserID, g.dave.Session().UserID
	grp, err := g.alice.CreateGroup(ctxT(t), "Hiking", "Sundays", []string{g.bID, g.cID})
	if err != nil {
		t.Fatal(err)
	}
	g.chatID = grp.ChatID
	// Everyone in it, the creating device included, learns of it.
	for _, c := range []*client.Client{g.alice, g.alice2, g.bob, g.carol} {
		f := servertest.Next(t, c, wire.TypeGroup, wait)
		if f.Change != wire.ChangeCreated || f.ChatID != g.chatID || f.Seq != 1 || f.Group == nil || len(f.Group.Members) != 3 {
			t.Fatalf("created event = %+v", f)
		}
	}
	return g
}

func wantErrCode(t *testing.T, what string, err error, code string) {
	t.Helper()
	if errCode(err) != code {
		t.Fatalf("%s: got %v, want %s", what, err, code)
	}
}

func TestGroupCreateAndMessage(t *testing.T) {
	eachDeployment(t, server.Config{}, func(t *testing.T, g *groupCast) {
		ctx := ctxT(t)

		grp, err := g.bob.Group(ctx, g.chatID)
		if err != nil {
			t.Fatal(err)
		}
		if grp.Name != "Hiking" || grp.Description != "Sundays" || grp.CreatedBy != g.aID || grp.CreatedAt == "" ||
			grp.Settings != (wire.GroupSettings{EditInfo: "all", Send: "all"}) || len(grp.Members) != 3 {
			t.Fatalf("group = %+v", grp)
		}
		roles := map[string]string{}
		for _, m := range grp.Members {
			if m.JoinedAt == "" {
				t.Fatalf("member without joined_at: %+v", m)
			}
			roles[m.UserID] = m.Role
		}
		if roles[g.aID] != "admin" || roles[g.bID] != "member" || roles[g.cID] != "member" {
			t.Fatalf("roles = %v", roles)
		}

		sent, err := g.bob.Send(ctx, g.chatID, text("hello group"))
		if err != nil {
			t.Fatal(err)
		}
		if sent.ChatID != g.chatID || sent.Seq != 2 {
			t.Fatalf("sent = %+v", sent)
		}
		for _, c := range []*client.Client{g.alice, g.alice2, g.carol} {
			m := servertest.Next(t, c, wire.TypeMessage, wait)
			if m.MsgID != sent.MsgID || m.From != g.bID || m.ChatID != g.chatID || m.Body.Text != "hello group" {
				t.Fatalf("message = %+v", m)
			}
		}
		// The author's devices get one delivered receipt per member.
		by := map[string]bool{}
		for len(by) < 2 {
			r := servertest.Next(t, g.bob, wire.TypeReceipt, wait)
			if r.Status != wire.StatusDelivered || r.ChatID != g.chatID || r.MsgIDs[0] != sent.MsgID || by[r.By] {
				t.Fatalf("receipt = %+v (seen %v)", r, by)
			}
			by[r.By] = true
		}
		if !by[g.aID] || !by[g.cID] {
			t.Fatalf("delivered by %v", by)
		}
		if err := g.carol.Read(ctx, g.chatID, sent.Seq); err != nil {
			t.Fatal(err)
		}
		r := servertest.Next(t, g.bob, wire.TypeReceipt, wait)
		if r.Status != wire.StatusRead || r.By != g.cID || r.MsgIDs[0] != sent.MsgID {
			t.Fatalf("read receipt = %+v", r)
		}

		// Typing reaches the other members.
		if err := g.carol.Typing(ctx, g.chatID, wire.TypingStarted); err != nil {
			t.Fatal(err)
		}
		for _, c := range []*client.Client{g.alice, g.bob} {
			f := servertest.Next(t, c, wire.TypeTyping, wait)
			if f.ChatID != g.chatID || f.From != g.cID {
				t.Fatalf("typing = %+v", f)
			}
		}

		// The chat list shows the group with its name and unread count.
		chats, err := g.alice.Chats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(chats.Chats) != 1 || chats.Chats[0].ChatID != g.chatID || chats.Chats[0].Kind != wire.KindGroup ||
			chats.Chats[0].Title != "Hiking" || chats.Chats[0].UnreadCount != 1 || chats.Chats[0].LastMessage == nil ||
			chats.Chats[0].LastMessage.MsgID != sent.MsgID {
			t.Fatalf("chats = %+v", chats)
		}
		// History holds the creation entry and the message.
		h, err := g.carol.History(ctx, g.chatID, 0, 10)
		if err != nil {
			t.Fatal(err)
		}
		if len(h.Messages) != 2 || h.Messages[0].MsgID != sent.MsgID || h.Messages[1].Body.Group == nil ||
			h.Messages[1].Body.Group.Change != wire.ChangeCreated || h.Messages[1].Body.Group.By != g.aID {
			t.Fatalf("history = %+v", h)
		}
	})
}

func TestGroupNonMembersAreForbidden(t *testing.T) {
	eachDeployment(t, server.Config{}, func(t *testing.T, g *groupCast) {
		ctx := ctxT(t)
		d := g.dave
		_, err := d.Group(ctx, g.chatID)
		wantErrCode(t, "get", err, wire.CodeForbidden)
		_, err = d.Send(ctx, g.chatID, text("let me in"))
		wantErrCode(t, "send", err, wire.CodeForbidden)
		_, err = d.History(ctx, g.chatID, 0, 10)
		wantErrCode(t, "history", err, wire.CodeForbidden)
		_, err = d.UpdateGroup(ctx, g.chatID, wire.GroupPatch{Name: ptr("mine")})
		wantErrCode(t, "patch", err, wire.CodeForbidden)
		_, err = d.AddMembers(ctx, g.chatID, []string{g.dID})
		wantErrCode(t, "add self", err, wire.CodeForbidden)
		err = d.RemoveMember(ctx, g.chatID, g.bID)
		wantErrCode(t, "remove", err, wire.CodeForbidden)
		_, err = d.SetAdmin(ctx, g.chatID, g.dID, true)
		wantErrCode(t, "promote self", err, wire.CodeForbidden)
		// Frames answer on the socket: read and typing.
		err = d.Read(ctx, g.chatID, 1)
		if err == nil {
			f := servertest.Next(t, d, wire.TypeError, wait)
			err = &wire.Error{Code: f.Code, Message: f.Message}
		}
		wantErrCode(t, "read", err, wire.CodeForbidden)
		err = d.Typing(ctx, g.chatID, wire.TypingStarted)
		if err == nil {
			f := servertest.Next(t, d, wire.TypeError, wait)
			err = &wire.Error{Code: f.Code, Message: f.Message}
		}
		wantErrCode(t, "typing", err, wire.CodeForbidden)
		// An unknown group is not found.
		_, err = g.alice.Group(ctx, "g0000000000000000000000000")
		wantErrCode(t, "unknown group", err, wire.CodeNotFound)
		_, err = g.alice.Send(ctx, "g0000000000000000000000000", text("x"))
		wantErrCode(t, "send to unknown group", err, wire.CodeNotFound)
		// Nothing reached the members.
		servertest.None(t, g.bob, wire.TypeMessage, 200*time.Millisecond)
	})
}

func ptr[T any](v T) *T { return &v }

func TestGroupAdminRules(t *testing.T) {
	eachDeployment(t, server.Config{}, func(t *testing.T, g *groupCast) {
		ctx := ctxT(t)
		b := g.bob
		// A member may not do an admin's work.
		for _, c := range []struct {
			what string
			do   func() error
		}{
			{"add", func() error { _, err := b.AddMembers(ctx, g.chatID, []string{g.dID}); return err }},
			{"remove another", func() error { return b.RemoveMember(ctx, g.chatID, g.cID) }},
			{"promote", func() error { _, err := b.SetAdmin(ctx, g.chatID, g.bID, true); return err }},
			{"demote", func() error { _, err := b.SetAdmin(ctx, g.chatID, g.aID, false); return err }},
			{"settings", func() error {
				_, err := b.UpdateGroup(ctx, g.chatID, wire.GroupPatch{Settings: &wire.GroupSettingsPatch{Send: ptr("admins")}})
				return err
			}},
		} {
			wantErrCode(t, c.what, c.do(), wire.CodeForbidden)
		}
		// A patch of info and settings by a member is refused whole: carol's
		// next group event (below) is bob's rename, not this one.
		_, err := b.UpdateGroup(ctx, g.chatID, wire.GroupPatch{Name: ptr("Half"), Settings: &wire.GroupSettingsPatch{Send: ptr("admins")}})
		wantErrCode(t, "info and settings as member", err, wire.CodeForbidden)
		// edit_info "all": a member renames it; "admins": it may not.
		if _, err := b.UpdateGroup(ctx, g.chatID, wire.GroupPatch{Name: ptr("Hikers")}); err != nil {
			t.Fatal(err)
		}
		f := servertest.Next(t, g.carol, wire.TypeGroup, wait)
		if f.Change != wire.ChangeInfoChanged || f.By != g.bID || f.Group.Name != "Hikers" {
			t.Fatalf("info_changed = %+v", f)
		}
		grp, err := g.alice.UpdateGroup(ctx, g.chatID, wire.GroupPatch{Settings: &wire.GroupSettingsPatch{EditInfo: ptr("admins"), Send: ptr("admins")}})
		if err != nil {
			t.Fatal(err)
		}
		if grp.Settings != (wire.GroupSettings{EditInfo: "admins", Send: "admins"}) {
			t.Fatalf("settings = %+v", grp.Settings)
		}
		f = servertest.Next(t, g.carol, wire.TypeGroup, wait)
		if f.Change != wire.ChangeSettingsChanged || f.Group.Settings.Send != "admins" {
			t.Fatalf("settings_changed = %+v", f)
		}
		_, err = b.UpdateGroup(ctx, g.chatID, wire.GroupPatch{Description: ptr("mine now")})
		wantErrCode(t, "edit info as member", err, wire.CodeForbidden)
		_, err = b.Send(ctx, g.chatID, text("may I?"))
		wantErrCode(t, "send as member", err, wire.CodeForbidden)
		if _, err := g.alice.Send(ctx, g.chatID, text("announcement")); err != nil {
			t.Fatal(err)
		}
		// Promote bob: he may send and add now.
		if _, err := g.alice.SetAdmin(ctx, g.chatID, g.bID, true); err != nil {
			t.Fatal(err)
		}
		if _, err := b.Send(ctx, g.chatID, text("now I may")); err != nil {
			t.Fatal(err)
		}
		if _, err := b.AddMembers(ctx, g.chatID, []string{g.dID}); err != nil {
			t.Fatal(err)
		}
		// The last admin cannot be demoted; an admin can demote another.
		if _, err := b.SetAdmin(ctx, g.chatID, g.aID, false); err != nil {
			t.Fatal(err)
		}
		_, err = b.SetAdmin(ctx, g.chatID, g.bID, false)
		wantErrCode(t, "demote the last admin", err, wire.CodeConflict)

		// Carol's devices saw every change, in order, with the messages.
		var changes []string
		for _, fr := range servertest.Drain(g.carol, 500*time.Millisecond) {
			switch fr.Type {
			case wire.TypeGroup:
				changes = append(changes, fr.Change)
			case wire.TypeMessage:
				changes = append(changes, "msg:"+fr.Body.Text)
			}
		}
		want := []string{"msg:announcement", wire.ChangeAdminAdded, "msg:now I may", wire.ChangeMembersAdded, wire.ChangeAdminRemoved}
		if !slices.Equal(changes, want) {
			t.Fatalf("carol saw %v, want %v", changes, want)
		}
	})
}

func TestGroupJoinLeaveRemove(t *testing.T) {
	eachDeployment(t, server.Config{}, func(t *testing.T, g *groupCast) {
		ctx := ctxT(t)
		before, err := g.alice.Send(ctx, g.chatID, text("before dave"))
		if err != nil {
			t.Fatal(err)
		}
		if _, err := g.alice.AddMembers(ctx, g.chatID, []string{g.dID}); err != nil {
			t.Fatal(err)
		}
		f := servertest.Next(t, g.dave, wire.TypeGroup, wait)
		if f.Change != wire.ChangeMembersAdded || !slices.Equal(f.UserIDs, []string{g.dID}) || f.By != g.aID {
			t.Fatalf("dave's added event = %+v", f)
		}
		after, err := g.alice.Send(ctx, g.chatID, text("after dave"))
		if err != nil {
			t.Fatal(err)
		}
		m := servertest.Next(t, g.dave, wire.TypeMessage, wait)
		if m.MsgID != after.MsgID {
			t.Fatalf("dave got %+v, want %s", m, after.MsgID)
		}
		// History starts where dave joined.
		h, err := g.dave.History(ctx, g.chatID, 0, 50)
		if err != nil {
			t.Fatal(err)
		}
		for _, hm := range h.Messages {
			if hm.MsgID == before.MsgID || hm.Seq < f.Seq {
				t.Fatalf("dave's history has %+v from before he joined (seq %d)", hm, f.Seq)
			}
		}
		if len(h.Messages) != 2 || h.NextBefore != 0 {
			t.Fatalf("dave's history = %+v", h)
		}

		// Alice removes carol: carol learns it, then gets nothing more.
		if err := g.alice.RemoveMember(ctx, g.chatID, g.cID); err != nil {
			t.Fatal(err)
		}
		for {
			f := servertest.Next(t, g.carol, wire.TypeGroup, wait)
			if f.Change == wire.ChangeMemberRemoved {
				if !slices.Equal(f.UserIDs, []string{g.cID}) || f.By != g.aID {
					t.Fatalf("removal = %+v", f)
				}
				break
			}
		}
		if _, err := g.alice.Send(ctx, g.chatID, text("without carol")); err != nil {
			t.Fatal(err)
		}
		servertest.Next(t, g.bob, wire.TypeMessage, wait) // before dave
		servertest.Next(t, g.bob, wire.TypeMessage, wait) // after dave
		if m := servertest.Next(t, g.bob, wire.TypeMessage, wait); m.Body.Text != "without carol" {
			t.Fatalf("bob got %+v", m)
		}
		servertest.None(t, g.carol, wire.TypeMessage, 300*time.Millisecond)
		_, err = g.carol.History(ctx, g.chatID, 0, 10)
		wantErrCode(t, "removed member's history", err, wire.CodeForbidden)
		_, err = g.carol.Send(ctx, g.chatID, text("still here?"))
		wantErrCode(t, "removed member's send", err, wire.CodeForbidden)
		chats, err := g.carol.Chats(ctx)
		if err != nil {
			t.Fatal(err)
		}
		if len(chats.Chats) != 0 {
			t.Fatalf("removed member's chat list = %+v", chats)
		}

		// The last admin leaves: the longest-standing member (bob) is admin.
		if err := g.alice.RemoveMember(ctx, g.chatID, g.aID); err != nil {
			t.Fatal(err)
		}
		grp, err := g.bob.Group(ctx, g.chatID)
		if err != nil {
			t.Fatal(err)
		}
		if len(grp.Members) != 2 || grp.Members[0].UserID != g.bID || grp.Members[0].Role != "admin" || grp.Members[1].Role != "member" {
			t.Fatalf("after alice left: %+v", grp.Members)
		}
		for {
			f := servertest.Next(t, g.dave, wire.TypeGroup, wait)
			if f.Change == wire.ChangeMemberLeft {
				if f.By != g.aID || f.Group == nil || f.Group.Members[0].Role != "admin" {
					t.Fatalf("left = %+v", f)
				}
				break
			}
		}
	})
}

func TestGroupOfflineMemberCatchesUpInOrder(t *testing.T) {
	eachDeployment(t, server.Config{}, func(t *testing.T, g *groupCast) {
		ctx := ctxT(t)
		if err := g.carol.Close(); err != nil {
			t.Fatal(err)
		}
		// While carol is away: messages and changes, interleaved.
		var want []string
		for i := range 3 {
			s, err := g.bob.Send(ctx, g.chatID, text(fmt.Sprintf("m%d", i)))
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, "message:"+s.MsgID)
			if i == 1 {
				if _, err := g.alice.UpdateGroup(ctx, g.chatID, wire.GroupPatch{Name: ptr("Renamed")}); err != nil {
					t.Fatal(err)
				}
				want = append(want, "group:"+wire.ChangeInfoChanged)
			}
		}
		carol := g.node(4).Client(t, client.Options{})
		carol.SetSession(g.carol.Session())
		if err := carol.Connect(ctx); err != nil {
			t.Fatal(err)
		}
		var got []string
		var seqs []int64
		for len(got) < len(want) {
			select {
			case f := <-carol.Events():
				switch f.Type {
				case wire.TypeMessage:
					got = append(got, "message:"+f.MsgID)
					seqs = append(seqs, f.Seq)
				case wire.TypeGroup:
					got = append(got, "group:"+f.Change)
					seqs = append(seqs, f.Seq)
					if f.Group == nil || f.Group.Name != "Renamed" {
						t.Fatalf("replayed group event without the group: %+v", f)
					}
				}
			case <-time.After(wait):
				t.Fatalf("carol got %v, want %v", got, want)
			}
		}
		if !slices.Equal(got, want) || !slices.IsSorted(seqs) {
			t.Fatalf("carol got %v (seqs %v), want %v", got, seqs, want)
		}
	})
}

func TestGroupBadInput(t *testing.T) {
	g := newGroupCast(t, deployments[0].start(t, server.Config{MaxGroupSize: 4}))
	ctx := ctxT(t)
	a := g.alice
	_, err := a.CreateGroup(ctx, "", "", []string{g.bID})
	wantErrCode(t, "no name", err, wire.CodeBadRequest)
	_, err = a.CreateGroup(ctx, "x\u202ey", "", []string{g.bID})
	wantErrCode(t, "bidi name", err, wire.CodeBadRequest)
	_, err = a.CreateGroup(ctx, "ok", "", []string{"u0000000000000000000000000"})
	wantErrCode(t, "unknown member", err, wire.CodeNotFound)
	_, err = a.CreateGroup(ctx, "ok", "", []string{"../etc"})
	wantErrCode(t, "malformed member", err, wire.CodeNotFound)
	_, err = a.CreateGroup(ctx, strings.Repeat("n", 101), "", nil)
	wantErrCode(t, "long name", err, wire.CodeTooLarge)
	// Over the size limit (4 here).
	extra := g.node(0).LoginOnly(t, "+14155550205", "eve-phone").Session().UserID
	_, err = a.CreateGroup(ctx, "big", "", []string{g.bID, g.cID, g.dID, extra})
	wantErrCode(t, "too many at create", err, wire.CodeTooLarge)
	if _, err := a.AddMembers(ctx, g.chatID, []string{g.dID}); err != nil {
		t.Fatal(err)
	}
	_, err = a.AddMembers(ctx, g.chatID, []string{extra})
	wantErrCode(t, "too many at add", err, wire.CodeTooLarge)
	// Settings take only their values; unknown fields are refused.
	_, err = a.UpdateGroup(ctx, g.chatID, wire.GroupPatch{Settings: &wire.GroupSettingsPatch{Send: ptr("everyone")}})
	wantErrCode(t, "bad setting", err, wire.CodeBadRequest)
	err = a.Do(ctx, http.MethodPost, "/v1/groups", []byte(`{"name":"x","members":"u1"}`), nil)
	wantErrCode(t, "members not a list", err, wire.CodeBadRequest)
	// A client may not forge a group change in a message body.
	_, err = a.Send(ctx, g.chatID, wire.Body{Text: "x", Group: &wire.GroupNote{Change: "created", By: g.bID}})
	wantErrCode(t, "forged group body", err, wire.CodeBadRequest)
	// Removing a non-member, promoting a non-member: not found.
	err = a.RemoveMember(ctx, g.chatID, extra)
	wantErrCode(t, "remove non-member", err, wire.CodeNotFound)
	_, err = a.SetAdmin(ctx, g.chatID, extra, true)
	wantErrCode(t, "promote non-member", err, wire.CodeNotFound)
	// None of it reached the members as a change.
	for _, f := range servertest.Drain(g.bob, 300*time.Millisecond) {
		if f.Type == wire.TypeGroup && f.Change != wire.ChangeMembersAdded {
			t.Fatalf("bob got %+v", f)
		}
	}
	var he *client.HTTPError
	_, err = a.Group(ctx, g.chatID+"x")
	if !errors.As(err, &he) || he.Status == http.StatusInternalServerError {
		t.Fatalf("malformed id: %v", err)
	}
}
