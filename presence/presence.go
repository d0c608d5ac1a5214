package presence

import (
	"encoding/json"
	"fmt"
	"sync"
	"time"
)

// Msg types.
const (
	TypeChange   = "change"   // User went online (Online) or offline at TS on Node
	TypeBeat     = "beat"     // Node is alive, at Version
	TypeSnapshot = "snapshot" // Node's online users (Users) at Version
	TypeSync     = "sync"     // asks Node (For) for a snapshot
	// TypeRecheck says that what followers may see of Users changed
	// (privacy, address book, a block) with no change of their presence:
	// every node re-evaluates what it told their followers, and what it
	// told their sessions of others. The tracker has no part in it.
	TypeRecheck = "recheck"
)

// Msg is what nodes tell each other. It travels as JSON in a broadcast.
type Msg struct {
	Type    string   `json:"type"`
	Node    string   `json:"node"`
	Boot    string   `json:"boot"`
	Version uint64   `json:"version,omitempty"`
	User    string   `json:"user,omitempty"`
	Online  bool     `json:"online,omitempty"`
	TS      int64    `json:"ts,omitempty"` // unix ms
	Users   []string `json:"users,omitempty"`
	For     string   `json:"for,omitempty"`
}

// Encode returns m as the bytes of a broadcast.
func (m Msg) Encode() []byte {
	b, _ := json.Marshal(m) // only strings, numbers and a bool
	return b
}

// Decode parses a broadcast made by Encode.
func Decode(b []byte) (Msg, error) {
	var m Msg
	if err := json.Unmarshal(b, &m); err != nil {
		return Msg{}, fmt.Errorf("presence: malformed message: %w", err)
	}
	if m.Node == "" || m.Boot == "" {
		return Msg{}, fmt.Errorf("presence: message without node or boot id")
	}
	switch m.Type {
	case TypeChange, TypeBeat, TypeSnapshot, TypeSync, TypeRecheck:
	default:
		return Msg{}, fmt.Errorf("presence: unknown message type %q", m.Type)
	}
	return m, nil
}

// Change is a user going online or offline for the whole cluster: the
// followers of User are told.
type Change struct {
	User   string
	Online bool
	At     time.Time // when it went offline (zero for online)
	// Dropped marks an offline that the user's node never announced (it
	// died, or restarted): nobody stored it as the user's last seen.
	Dropped bool
}

// Tracker is one node's view. Its methods are safe for concurrent use.
type Tracker struct {
	node, boot string
	lease      time.Duration
	now        func() time.Time

	mu      sync.Mutex
	local   map[string]int // user -> sessions on this node
	version uint64
	nodes   map[string]*remote
}

type remote struct {
	boot    string
	version uint64
	synced  bool // users is a snapshot plus the changes since
	users   map[string]bool
	heard   time.Time // last message from it
	asked   time.Time // last snapshot request to it
}

// New returns the tracker of node; boot tells this run of the node from
// its earlier ones. A node not heard from for lease is dead. now nil is
// time.Now.
func New(node, boot string, lease time.Duration, now func() time.Time) *Tracker {
	if now == nil {
		now = time.Now
	}
	return &Tracker{node: node, boot: boot, lease: lease, now: now,
		local: make(map[string]int), nodes: make(map[string]*remote)}
}

// Online reports whether any node holds a device of user.
func (t *Tracker) Online(user string) bool {
	t.mu.Lock()
	defer t.mu.Unlock()
	return t.onlineLocked(user)
}

func (t *Tracker) onlineLocked(user string) bool {
	if t.local[user] > 0 {
		return true
	}
	for _, r := range t.nodes {
		if r.users[user] {
			return true
		}
	}
	return false
}

// Connect counts a session of user on this node. msg, when not nil, is to
// be broadcast; changes go to user's followers here.
func (t *Tracker) Connect(user string) (msg *Msg, changes []Change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	was := t.onlineLocked(user)
	t.local[user]++
	if t.local[user] > 1 {
		return nil, nil
	}
	t.version++
	msg = &Msg{Type: TypeChange, Node: t.node, Boot: t.boot, Version: t.version, User: user, Online: true}
	if !was {
		changes = []Change{{User: user, Online: true}}
	}
	return msg, changes
}

// Disconnect uncounts a session of user that ended at.
func (t *Tracker) Disconnect(user string, at time.Time) (msg *Msg, changes []Change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if t.local[user] == 0 {
		return nil, nil
	}
	t.local[user]--
	if t.local[user] > 0 {
		return nil, nil
	}
	delete(t.local, user)
	t.version++
	msg = &Msg{Type: TypeChange, Node: t.node, Boot: t.boot, Version: t.version, User: user, TS: at.UnixMilli()}
	if !t.onlineLocked(user) {
		changes = []Change{{User: user, At: at}}
	}
	return msg, changes
}

// Everyone, as Msg.For of a sync, asks every node for its snapshot.
const Everyone = "*"

// Hello is what a node broadcasts when it starts: every node answers with
// its snapshot, so the new one knows at once who is online elsewhere.
func (t *Tracker) Hello() Msg {
	return Msg{Type: TypeSync, Node: t.node, Boot: t.boot, For: Everyone}
}

// Recheck is the message that asks every node to re-evaluate what the
// followers of users were told (see TypeRecheck).
func (t *Tracker) Recheck(users []string) Msg {
	return Msg{Type: TypeRecheck, Node: t.node, Boot: t.boot, Users: users}
}

// Own reports whether m came from this tracker (a broadcast can come back
// to its sender).
func (t *Tracker) Own(m Msg) bool { return m.Node == t.node && m.Boot == t.boot }

// Beat is the heartbeat to broadcast now and then (well within the lease).
func (t *Tracker) Beat() Msg {
	t.mu.Lock()
	defer t.mu.Unlock()
	return Msg{Type: TypeBeat, Node: t.node, Boot: t.boot, Version: t.version}
}

// snapshotLocked is this node's users, for a node that asked.
func (t *Tracker) snapshotLocked() Msg {
	users := make([]string, 0, len(t.local))
	for u := range t.local {
		users = append(users, u)
	}
	return Msg{Type: TypeSnapshot, Node: t.node, Boot: t.boot, Version: t.version, Users: users}
}

// Apply takes a message from another node (its own are ignored). reply,
// when not nil, is to be broadcast: a snapshot request, or the snapshot
// another node asked for.
func (t *Tracker) Apply(m Msg) (reply *Msg, changes []Change) {
	t.mu.Lock()
	defer t.mu.Unlock()
	if m.Node == t.node && m.Boot == t.boot || m.Type == TypeRecheck {
		return nil, nil // our own, or not the tracker's
	}
	now := t.now()
	if m.Type == TypeSync {
		if m.For != t.node && m.For != Everyone {
			return nil, nil
		}
		s := t.snapshotLocked()
		return &s, nil
	}
	r := t.nodes[m.Node]
	if r == nil || r.boot != m.Boot {
		// A node new to us, or one that restarted: what we knew of it is
		// void (a restarted node's users are offline until it says).
		if r != nil {
			changes = t.dropLocked(m.Node, r, now)
		}
		r = &remote{boot: m.Boot, users: make(map[string]bool)}
		t.nodes[m.Node] = r
	}
	r.heard = now
	switch m.Type {
	case TypeSnapshot:
		if r.synced && m.Version < r.version {
			return nil, changes // overtaken by changes after it
		}
		next := make(map[string]bool, len(m.Users))
		for _, u := range m.Users {
			next[u] = true
		}
		changes = append(changes, t.replaceLocked(r, next, now)...)
		r.version, r.synced = m.Version, true
		return nil, changes
	case TypeChange:
		if r.synced && m.Version == r.version+1 {
			r.version = m.Version
			was := t.onlineLocked(m.User)
			if m.Online {
				r.users[m.User] = true
			} else {
				delete(r.users, m.User)
			}
			if is := t.onlineLocked(m.User); is != was {
				changes = append(changes, Change{User: m.User, Online: is, At: at(m.TS, is)})
			}
			return nil, changes
		}
		if r.synced && m.Version <= r.version {
			return nil, changes // old news
		}
	case TypeBeat:
		if r.synced && m.Version == r.version {
			return nil, changes
		}
	}
	// Out of step: ask for a snapshot, at most once a second per node.
	r.synced = false
	if now.Sub(r.asked) < time.Second {
		return nil, changes
	}
	r.asked = now
	return &Msg{Type: TypeSync, Node: t.node, Boot: t.boot, For: m.Node}, changes
}

func at(ts int64, online bool) time.Time {
	if online || ts == 0 {
		return time.Time{}
	}
	return time.UnixMilli(ts)
}

// replaceLocked sets r's users to next and returns the changes for the
// cluster; a user who went offline this way went at now.
func (t *Tracker) replaceLocked(r *remote, next map[string]bool, now time.Time) []Change {
	var changes []Change
	old := r.users
	r.users = next
	for u := range old {
		if !next[u] && !t.onlineLocked(u) {
			changes = append(changes, Change{User: u, At: now})
		}
	}
	for u := range next {
		if !old[u] && !t.onlineExceptLocked(u, r) {
			changes = append(changes, Change{User: u, Online: true})
		}
	}
	return changes
}

// onlineExceptLocked reports whether user is online on this node or on a
// remote node other than skip.
func (t *Tracker) onlineExceptLocked(user string, skip *remote) bool {
	if t.local[user] > 0 {
		return true
	}
	for _, r := range t.nodes {
		if r != skip && r.users[user] {
			return true
		}
	}
	return false
}

// dropLocked forgets node r; its users who are online nowhere else went
// offline at the last time it was heard from (or now, if never).
func (t *Tracker) dropLocked(node string, r *remote, now time.Time) []Change {
	delete(t.nodes, node)
	when := r.heard
	if when.IsZero() {
		when = now
	}
	var changes []Change
	for u := range r.users {
		if !t.onlineLocked(u) {
			changes = append(changes, Change{User: u, At: when, Dropped: true})
		}
	}
	return changes
}

// Expire forgets the nodes not heard from for the lease: they are dead.
func (t *Tracker) Expire() []Change {
	t.mu.Lock()
	defer t.mu.Unlock()
	now := t.now()
	var changes []Change
	for node, r := range t.nodes {
		if now.Sub(r.heard) > t.lease {
			changes = append(changes, t.dropLocked(node, r, now)...)
		}
	}
	return changes
}
