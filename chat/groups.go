package chat

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// NewGroup is a group to create.
type NewGroup struct {
	Name        string
	Description string
	Members     []string // user ids besides the creator
}

// GroupPatch changes a group's info or settings; nil fields stay.
type GroupPatch struct {
	Name, Description *string
	EditInfo, Send    *string
}

// CreateGroup creates a group with the actor as its admin and the members
// it names; notAdded lists those left out.
func (s *Service) CreateGroup(ctx context.Context, a Actor, in NewGroup) (g store.Group, notAdded []string, err error) {
	if e := s.checkInfo(&in.Name, &in.Description); e != nil {
		return store.Group{}, nil, e
	}
	if in.Name == "" {
		return store.Group{}, nil, wire.Errorf(wire.CodeBadRequest, "a group needs a name")
	}
	if len(in.Members) >= s.cfg.MaxGroupSize+1 {
		// Refused before looking anyone up: a long list costs reads.
		return store.Group{}, nil, wire.Errorf(wire.CodeTooLarge, "a group holds at most %d members", s.cfg.MaxGroupSize)
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	members, notAdded, err := s.newMembers(ctx, in.Members, nil, a.UserID)
	if err != nil {
		return store.Group{}, nil, err
	}
	if 1+len(members) > s.cfg.MaxGroupSize {
		return store.Group{}, nil, wire.Errorf(wire.CodeTooLarge, "a group holds at most %d members", s.cfg.MaxGroupSize)
	}
	now := s.now()
	at := time.UnixMilli(now.UnixMilli()).UTC()
	g = store.Group{
		ChatID:      store.NewID(store.PrefixGroup),
		Name:        in.Name,
		Description: in.Description,
		Settings:    store.GroupSettings{EditInfo: store.AllowAll, Send: store.AllowAll},
		Members:     []store.Member{{UserID: a.UserID, Role: store.RoleAdmin, JoinedAt: at}},
		CreatedBy:   a.UserID,
		CreatedAt:   at,
	}
	for _, u := range members {
		g.Members = append(g.Members, store.Member{UserID: u, Role: store.RoleMember, JoinedAt: at})
	}
	msg, err := s.note(a, g.ChatID, now, wire.ChangeCreated, members)
	if err != nil {
		return store.Group{}, nil, err
	}
	res, err := s.st.WriteGroup(ctx, store.GroupWrite{Create: &g, Message: msg})
	if err != nil {
		// Events it placed to complete another write are stored: route them.
		s.d.Dispatch(ctx, res.Deliveries, nil)
		return store.Group{}, nil, s.groupErr(err)
	}
	s.d.Dispatch(ctx, res.Deliveries, &res.Group)
	return res.Group, notAdded, nil
}

// Group returns a group to one of its members.
func (s *Service) Group(ctx context.Context, a Actor, chatID string) (store.Group, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if !isGroup(chatID) {
		return store.Group{}, wire.Errorf(wire.CodeNotFound, "no such group")
	}
	if _, err := s.member(ctx, chatID, a.UserID); err != nil {
		return store.Group{}, s.groupErr(err)
	}
	g, err := s.st.Group(ctx, chatID)
	if err != nil {
		return store.Group{}, s.groupErr(err)
	}
	return g, nil
}

// UpdateGroup changes a group's name, description (per edit_info) or
// settings (admins). Info and settings changed at once are two entries.
func (s *Service) UpdateGroup(ctx context.Context, a Actor, chatID string, p GroupPatch) (store.Group, error) {
	if p.Name != nil && *p.Name == "" {
		return store.Group{}, wire.Errorf(wire.CodeBadRequest, "a group needs a name")
	}
	if e := s.checkInfo(p.Name, p.Description); e != nil {
		return store.Group{}, e
	}
	for _, v := range []*string{p.EditInfo, p.Send} {
		if v != nil && *v != store.AllowAll && *v != store.AllowAdmins {
			return store.Group{}, wire.Errorf(wire.CodeBadRequest, "settings take %q or %q", store.AllowAll, store.AllowAdmins)
		}
	}
	var g store.Group
	var err error
	changed := false
	if p.Name != nil || p.Description != nil {
		changed = true
		g, err = s.change(ctx, a, chatID, wire.ChangeInfoChanged, nil, func(g *store.Group) error {
			if g.Settings.EditInfo == store.AllowAdmins && !g.IsAdmin(a.UserID) {
				return wire.Errorf(wire.CodeForbidden, "only admins may edit this group's info")
			}
			if (p.EditInfo != nil || p.Send != nil) && !g.IsAdmin(a.UserID) {
				// Refused whole: the settings part would be, and half a
				// patch stored under a forbidden answer misleads the client.
				return wire.Errorf(wire.CodeForbidden, "only admins may change settings")
			}
			if p.Name != nil {
				g.Name = *p.Name
			}
			if p.Description != nil {
				g.Description = *p.Description
			}
			return nil
		})
		if err != nil {
			return store.Group{}, err
		}
	}
	if p.EditInfo != nil || p.Send != nil {
		changed = true
		g, err = s.change(ctx, a, chatID, wire.ChangeSettingsChanged, nil, func(g *store.Group) error {
			if !g.IsAdmin(a.UserID) {
				return wire.Errorf(wire.CodeForbidden, "only admins may change settings")
			}
			if p.EditInfo != nil {
				g.Settings.EditInfo = *p.EditInfo
			}
			if p.Send != nil {
				g.Settings.Send = *p.Send
			}
			return nil
		})
		if err != nil {
			return store.Group{}, err
		}
	}
	if !changed {
		return s.Group(ctx, a, chatID)
	}
	return g, nil
}

// AddMembers adds users to a group (admins only). Users already in it are
// skipped; when all are, nothing is written.
func (s *Service) AddMembers(ctx context.Context, a Actor, chatID string, userIDs []string) (g store.Group, notAdded []string, err error) {
	if len(userIDs) == 0 {
		return store.Group{}, nil, wire.Errorf(wire.CodeBadRequest, "user_ids is empty")
	}
	if len(userIDs) > s.cfg.MaxGroupSize {
		return store.Group{}, nil, wire.Errorf(wire.CodeTooLarge, "a group holds at most %d members", s.cfg.MaxGroupSize)
	}
	cur, err := s.Group(ctx, a, chatID)
	if err != nil {
		return store.Group{}, nil, err
	}
	if !cur.IsAdmin(a.UserID) {
		return store.Group{}, nil, wire.Errorf(wire.CodeForbidden, "only admins may add members")
	}
	cctx, cancel := s.storeCtx(ctx)
	defer cancel()
	add, notAdded, err := s.newMembers(cctx, userIDs, &cur, a.UserID)
	if err != nil {
		return store.Group{}, nil, err
	}
	if len(add) == 0 {
		return cur, notAdded, nil
	}
	at := time.UnixMilli(s.now().UnixMilli()).UTC()
	g, err = s.change(ctx, a, chatID, wire.ChangeMembersAdded, add, func(g *store.Group) error {
		if !g.IsAdmin(a.UserID) {
			return wire.Errorf(wire.CodeForbidden, "only admins may add members")
		}
		n := len(g.Members)
		for _, u := range add {
			// One added meanwhile by another admin is named by both
			// entries: harmless, and the entry's body is fixed before
			// the step.
			if g.Member(u) == nil {
				g.Members = append(g.Members, store.Member{UserID: u, Role: store.RoleMember, JoinedAt: at})
			}
		}
		if len(g.Members) == n {
			return errNoChange
		}
		if len(g.Members) > s.cfg.MaxGroupSize {
			return wire.Errorf(wire.CodeTooLarge, "a group holds at most %d members", s.cfg.MaxGroupSize)
		}
		return nil
	})
	if err != nil {
		return store.Group{}, nil, err
	}
	return g, notAdded, nil
}

// RemoveMember removes userID from a group: an admin removing another
// member, or anyone leaving (userID is the actor). When the last admin
// leaves, the longest-standing member becomes admin.
func (s *Service) RemoveMember(ctx context.Context, a Actor, chatID, userID string) (store.Group, error) {
	change := wire.ChangeMemberRemoved
	if userID == a.UserID {
		change = wire.ChangeMemberLeft
	}
	return s.change(ctx, a, chatID, change, []string{userID}, func(g *store.Group) error {
		if change == wire.ChangeMemberRemoved && !g.IsAdmin(a.UserID) {
			return wire.Errorf(wire.CodeForbidden, "only admins may remove members")
		}
		i := slices.IndexFunc(g.Members, func(m store.Member) bool { return m.UserID == userID })
		if i < 0 {
			return wire.Errorf(wire.CodeNotFound, "%s is not a member of this group", userID)
		}
		g.Members = slices.Delete(g.Members, i, i+1)
		if len(g.Members) > 0 && !slices.ContainsFunc(g.Members, func(m store.Member) bool { return m.Role == store.RoleAdmin }) {
			g.Members[0].Role = store.RoleAdmin
		}
		return nil
	})
}

// SetAdmin promotes (admin) or demotes userID (admins only). A group keeps
// at least one admin: its last one cannot be demoted.
func (s *Service) SetAdmin(ctx context.Context, a Actor, chatID, userID string, admin bool) (store.Group, error) {
	change := wire.ChangeAdminAdded
	if !admin {
		change = wire.ChangeAdminRemoved
	}
	return s.change(ctx, a, chatID, change, []string{userID}, func(g *store.Group) error {
		if !g.IsAdmin(a.UserID) {
			return wire.Errorf(wire.CodeForbidden, "only admins may promote or demote")
		}
		m := g.Member(userID)
		if m == nil {
			return wire.Errorf(wire.CodeNotFound, "%s is not a member of this group", userID)
		}
		if !admin && m.Role == store.RoleAdmin &&
			!slices.ContainsFunc(g.Members, func(o store.Member) bool { return o.Role == store.RoleAdmin && o.UserID != userID }) {
			return wire.Errorf(wire.CodeConflict, "the last admin cannot be demoted; promote another member first")
		}
		if (m.Role == store.RoleAdmin) == admin {
			return errNoChange
		}
		if admin {
			m.Role = store.RoleAdmin
		} else {
			m.Role = store.RoleMember
		}
		return nil
	})
}

// DeleteGroup ends a group for every member at once, for an operator
// (the admin API): one change, "deleted" by wire.SystemUser, removes them
// all, and each of their devices receives it. The log stays in the store,
// readable by nobody (only members read a group). Deleting it again
// changes nothing.
func (s *Service) DeleteGroup(ctx context.Context, chatID string) (store.Group, error) {
	system := Actor{UserID: wire.SystemUser, DeviceID: wire.SystemUser}
	return s.changeAs(ctx, system, true, chatID, wire.ChangeDeleted, nil, func(g *store.Group) error {
		if len(g.Members) == 0 {
			return errNoChange
		}
		g.Members = nil
		return nil
	})
}

// errNoChange is returned by an apply that finds nothing to do.
var errNoChange = errors.New("chat: no change")

// change writes one group change whose entry names ids: apply runs in the
// store's atomic step against the current group and returns errNoChange
// when it finds nothing to do.
func (s *Service) change(ctx context.Context, a Actor, chatID, change string, ids []string, apply func(g *store.Group) error) (store.Group, error) {
	return s.changeAs(ctx, a, false, chatID, change, ids, apply)
}

// changeAs is change, by an operator when operator is set (see
// store.GroupWrite.Operator).
func (s *Service) changeAs(ctx context.Context, a Actor, operator bool, chatID, change string, ids []string, apply func(g *store.Group) error) (store.Group, error) {
	if !isGroup(chatID) {
		return store.Group{}, wire.Errorf(wire.CodeNotFound, "no such group")
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	msg, err := s.note(a, chatID, s.now(), change, ids)
	if err != nil {
		return store.Group{}, err
	}
	res, err := s.st.WriteGroup(ctx, store.GroupWrite{Apply: apply, Message: msg, Operator: operator})
	if err != nil {
		// Events it placed to complete another write are stored: route them.
		s.d.Dispatch(ctx, res.Deliveries, nil)
	}
	if errors.Is(err, errNoChange) {
		g, err := s.st.Group(ctx, chatID)
		return g, s.groupErr(err)
	}
	if err != nil {
		return store.Group{}, s.groupErr(err)
	}
	s.d.Dispatch(ctx, res.Deliveries, &res.Group)
	return res.Group, nil
}

// note makes the chat-log entry of a change.
func (s *Service) note(a Actor, chatID string, now time.Time, change string, ids []string) (store.Message, error) {
	b, err := noteBody(a.UserID, change, ids)
	if err != nil {
		return store.Message{}, err
	}
	return store.Message{ID: store.NewID(store.PrefixMessage), ChatID: chatID, From: a.UserID,
		FromDevice: a.DeviceID, TS: now.UnixMilli(), Body: b, Kind: store.EventGroup}, nil
}

func noteBody(by, change string, ids []string) (json.RawMessage, error) {
	return json.Marshal(wire.Body{Group: &wire.GroupNote{Change: change, By: by, UserIDs: ids}})
}

// newMembers checks user ids to add: each must exist, repeats and users
// already in cur (or self) are dropped.
func (s *Service) newMembers(ctx context.Context, ids []string, cur *store.Group, adder string) (add, notAdded []string, err error) {
	add = make([]string, 0, len(ids))
	seen := make(map[string]bool, len(ids))
	var adderPhone string
	for _, id := range ids {
		if id == adder || seen[id] || (cur != nil && cur.Member(id) != nil) {
			continue
		}
		seen[id] = true
		if len(id) < 2 || id[:1] != store.PrefixUser || len(id) > wire.MaxIDLen {
			return nil, nil, wire.Errorf(wire.CodeNotFound, "no such user %q", truncate(id, 40))
		}
		u, err := s.st.User(ctx, id)
		if err != nil {
			if errors.Is(err, store.ErrNotFound) {
				return nil, nil, wire.Errorf(wire.CodeNotFound, "no such user %q", id)
			}
			return nil, nil, err
		}
		if blocked, err := s.st.Blocked(ctx, id, adder); err != nil {
			return nil, nil, err
		} else if blocked {
			// Someone you blocked cannot add you to groups; told like a
			// privacy refusal, so that the block is not revealed.
			notAdded = append(notAdded, id)
			continue
		}
		if u.Privacy.GroupsAdd == store.Contacts {
			// Only those in the user's address book may add it.
			if adderPhone == "" {
				me, err := s.st.User(ctx, adder)
				if err != nil {
					return nil, nil, err
				}
				adderPhone = me.Phone
			}
			ok, err := s.st.HasContact(ctx, id, adderPhone)
			if err != nil {
				return nil, nil, err
			}
			if !ok {
				notAdded = append(notAdded, id)
				continue
			}
		}
		add = append(add, id)
	}
	return add, notAdded, nil
}

// checkInfo checks a group's name and description.
func (s *Service) checkInfo(name, description *string) *wire.Error {
	if name != nil {
		if e := wire.CheckName("name", *name, s.cfg.MaxGroupName); e != nil {
			return e
		}
	}
	if description != nil {
		if e := wire.CheckText("description", *description); e != nil && *description != "" {
			return e
		}
		if n := len([]rune(*description)); n > s.cfg.MaxGroupAbout {
			return wire.Errorf(wire.CodeTooLarge, "description is longer than %d characters", s.cfg.MaxGroupAbout)
		}
	}
	return nil
}

// groupErr maps the store's answers about a group the actor asked for.
func (s *Service) groupErr(err error) error {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return we
	case errors.Is(err, store.ErrNotMember):
		return wire.Errorf(wire.CodeForbidden, "not a member of this group")
	case errors.Is(err, store.ErrNotFound):
		return wire.Errorf(wire.CodeNotFound, "no such group")
	}
	return err
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	return s[:n] + "…"
}

// member returns userID's membership of the group chatID: forbidden if the
// user is not in it, not_found if there is no such group. (Group ids are
// random 128-bit values: telling the two apart reveals nothing useful, and
// a client that mistyped an id learns so.)
func (s *Service) member(ctx context.Context, chatID, userID string) (store.Member, error) {
	m, err := s.st.Member(ctx, chatID, userID)
	if errors.Is(err, store.ErrNotMember) {
		if _, gerr := s.st.Chat(ctx, chatID); errors.Is(gerr, store.ErrNotFound) || errors.Is(gerr, store.ErrInvalid) {
			return store.Member{}, wire.Errorf(wire.CodeNotFound, "no such group")
		}
	}
	if errors.Is(err, store.ErrInvalid) {
		return store.Member{}, wire.Errorf(wire.CodeNotFound, "no such group")
	}
	return m, err
}
