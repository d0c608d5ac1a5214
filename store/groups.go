package store

import (
	"context"
	"errors"
	"time"
)

// More errors adapters return. ErrInvalid wraps a request the store refuses
// whatever its state (a malformed id, a missing field): a caller bug or bad
// input, never an outage. ErrNotMember is a user acting in a group it is not
// (or no longer) in. ErrClosed is a call on a closed store.
var (
	ErrInvalid   = errors.New("store: invalid request")
	ErrNotMember = errors.New("store: not a member")
	ErrClosed    = errors.New("store: closed")
)

// EventGroup is the kind of an inbox event that tells of a group change; its
// Message is the change's entry in the chat log.
const EventGroup = "group"

// Chat kinds.
const (
	KindDirect = "direct"
	KindGroup  = "group"
)

// Group roles.
const (
	RoleAdmin  = "admin"
	RoleMember = "member"
)

// Group setting values: who may edit the group's info, who may send.
const (
	AllowAll    = "all"
	AllowAdmins = "admins"
)

// GroupSettings are a group's permissions.
type GroupSettings struct {
	EditInfo string // AllowAll or AllowAdmins
	Send     string // AllowAll or AllowAdmins
}

// Member is one user's membership of a group.
type Member struct {
	UserID   string
	Role     string // RoleAdmin or RoleMember
	JoinedAt time.Time
	// JoinedSeq is the seq of the chat-log entry that added the member
	// (the group's creation or a members_added change): the member sees
	// the chat from there on. The store assigns it.
	JoinedSeq int64
}

// Group is a group chat. Its id is its chat id (PrefixGroup).
type Group struct {
	ChatID      string
	Name        string
	Description string
	Settings    GroupSettings
	// Members in the order they joined: the first is the longest-standing.
	Members   []Member
	CreatedBy string
	CreatedAt time.Time
}

// Member returns userID's membership, or nil.
func (g *Group) Member(userID string) *Member {
	for i := range g.Members {
		if g.Members[i].UserID == userID {
			return &g.Members[i]
		}
	}
	return nil
}

// IsAdmin reports whether userID is an admin of g.
func (g *Group) IsAdmin(userID string) bool {
	m := g.Member(userID)
	return m != nil && m.Role == RoleAdmin
}

// UserIDs returns the ids of g's members in joining order.
func (g *Group) UserIDs() []string {
	ids := make([]string, len(g.Members))
	for i, m := range g.Members {
		ids[i] = m.UserID
	}
	return ids
}

// GroupWrite creates or changes a group together with the chat-log entry
// that records it, in one atomic step: no send to the group sees half of a
// change.
type GroupWrite struct {
	// Create is the new group, members and roles included; its ChatID must
	// not exist yet (ErrConflict). Exactly one of Create and Apply is set.
	Create *Group
	// Apply changes the group as it is at the time of the write, in place:
	// the caller's rules (permissions, limits, who becomes admin) run
	// against the current state, not a copy read earlier. An error it
	// returns stores nothing and is returned unwrapped. ChatID, CreatedBy
	// and CreatedAt cannot be changed; members it adds get JoinedSeq set
	// by the store. Apply may be called more than once per write (an
	// adapter may retry), so it must not have side effects.
	Apply func(g *Group) error
	// Operator marks a change made by the service's operators (the admin
	// API) rather than by a member: Message.From need not be in the group.
	Operator bool
	// Message is the log entry: ID, ChatID, From, FromDevice, TS and Body
	// (the wire body {"group": {...}}) set by the caller; Seq assigned by
	// the store.
	Message Message
}

// GroupResult is the group after a write and the inbox events to route: one
// EventGroup for every device of every member before or after the change
// (a removed member learns of its removal), the writing device included.
type GroupResult struct {
	Group      Group
	Message    Message
	Deliveries []Delivery
}

// Groups stores group chats. A group's messages go through Messages.Send
// with SendRequest.Kind KindGroup: the store then resolves the recipients
// (every device of every member but the sending one) from the membership
// inside the same atomic step, refuses a sender that is not a member
// (ErrNotMember), and runs SendRequest.Check against the group.
type Groups interface {
	WriteGroup(ctx context.Context, w GroupWrite) (GroupResult, error)
	// Group returns the group; ErrNotFound if there is none.
	Group(ctx context.Context, chatID string) (Group, error)
	// Member returns userID's membership of the group chatID by a point
	// lookup: ErrNotMember if the user is not in it (or there is no such
	// group).
	Member(ctx context.Context, chatID, userID string) (Member, error)
}
