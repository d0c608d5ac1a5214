package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tern-im/tern/presence"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// presenceHub connects the cluster-wide tracker to this node's sessions:
// who follows whom here (presence_sub), and the frames they get when a
// user they follow comes or goes. Changes are told to followers in the
// order they happened, by one goroutine (a user's online and offline must
// not swap places on the way).
type presenceHub struct {
	s       *Server
	tracker *presence.Tracker

	mu      sync.Mutex
	follows map[string]map[*session]struct{} // user -> sessions following it
	queue   []presence.Change
	kick    chan struct{}
}

func newPresenceHub(s *Server) *presenceHub {
	lease := 3 * s.cfg.PresenceBeat
	return &presenceHub{s: s, tracker: presence.New(s.cfg.NodeID, store.NewID("boot"), lease, nil),
		follows: make(map[string]map[*session]struct{}), kick: make(chan struct{}, 1)}
}

// run broadcasts this node's hello and heartbeats, expires dead nodes and
// tells followers, until the server stops.
func (h *presenceHub) run() {
	m := h.tracker.Hello()
	h.broadcast(&m)
	beat := time.NewTicker(h.s.cfg.PresenceBeat)
	defer beat.Stop()
	for {
		select {
		case <-h.s.ctx.Done():
			return
		case <-beat.C:
			m := h.tracker.Beat()
			h.broadcast(&m)
			h.notify(h.tracker.Expire())
		case <-h.kick:
			h.mu.Lock()
			changes := h.queue
			h.queue = nil
			h.mu.Unlock()
			for _, c := range changes {
				h.tell(c)
			}
		}
	}
}

// broadcast hands m to every node's tracker (this one ignores its own).
// Without a broadcasting router there is no other node to tell.
func (h *presenceHub) broadcast(m *presence.Msg) {
	if m == nil {
		return
	}
	b, ok := h.s.router.(routing.Broadcaster)
	if !ok {
		return
	}
	// Not cancelled with the server: a node that drains still tells the
	// others its users went offline.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(h.s.ctx), 5*time.Second)
	defer cancel()
	if err := b.Broadcast(ctx, routing.Envelope{Kind: routing.KindPresence, Frame: m.Encode()}); err != nil {
		// The next heartbeat's version tells the others they missed it.
		h.s.log.Debug("presence broadcast failed", "type", m.Type, "err", err)
	}
}

// notify queues changes for the followers here.
func (h *presenceHub) notify(changes []presence.Change) {
	if len(changes) == 0 {
		return
	}
	h.mu.Lock()
	h.queue = append(h.queue, changes...)
	h.mu.Unlock()
	select {
	case h.kick <- struct{}{}:
	default:
	}
}

// received takes another node's message (from the broadcast handler,
// which must not block: the reply goes out on its own goroutine).
func (h *presenceHub) received(env routing.Envelope) {
	m, err := presence.Decode(env.Frame)
	if err != nil {
		h.s.log.Warn("presence: dropped a message", "err", err)
		return
	}
	reply, changes := h.tracker.Apply(m)
	if reply != nil {
		go h.broadcast(reply)
	}
	h.notify(changes)
}

// connected and disconnected count a session of user on this node.
func (h *presenceHub) connected(user string) {
	m, changes := h.tracker.Connect(user)
	h.broadcast(m)
	h.notify(changes)
}

func (h *presenceHub) disconnected(ss *session, at time.Time) {
	h.mu.Lock()
	for _, u := range ss.follows {
		h.unfollowLocked(u, ss)
	}
	ss.follows = nil
	h.mu.Unlock()
	m, changes := h.tracker.Disconnect(ss.userID, at)
	h.broadcast(m)
	h.notify(changes)
}

func (h *presenceHub) unfollowLocked(user string, ss *session) {
	if set := h.follows[user]; set != nil {
		delete(set, ss)
		if len(set) == 0 {
			delete(h.follows, user)
		}
	}
}

// subscribe replaces what ss follows with users and answers the current
// presence of each.
func (h *presenceHub) subscribe(ctx context.Context, ss *session, users []string) error {
	seen := make(map[string]bool, len(users))
	var list []string
	for _, u := range users {
		if u == "" || seen[u] {
			continue
		}
		seen[u] = true
		list = append(list, u)
	}
	h.mu.Lock()
	for _, u := range ss.follows {
		h.unfollowLocked(u, ss)
	}
	ss.follows = list
	for _, u := range list {
		set := h.follows[u]
		if set == nil {
			set = make(map[*session]struct{})
			h.follows[u] = set
		}
		set[ss] = struct{}{}
	}
	h.mu.Unlock()

	viewer, err := h.s.st.User(ctx, ss.userID)
	if err != nil {
		return err
	}
	for _, u := range list {
		target, err := h.s.st.User(ctx, u)
		if errors.Is(err, store.ErrNotFound) {
			continue // no such user: nothing to tell
		}
		if err != nil {
			return err
		}
		online := h.tracker.Online(u)
		var at time.Time
		if !online {
			if at, err = h.lastSeen(ctx, u); err != nil {
				return err
			}
		}
		f, _, err := h.frame(ctx, target, viewer, online, at)
		if err != nil {
			return err
		}
		ss.queue(f)
	}
	return nil
}

// lastSeen is when user's last device went offline: the latest of its
// devices' last seen (written at connect and disconnect).
func (h *presenceHub) lastSeen(ctx context.Context, user string) (time.Time, error) {
	ds, err := h.s.st.UserDevices(ctx, user)
	if err != nil {
		return time.Time{}, err
	}
	var at time.Time
	for _, d := range ds {
		if d.LastSeen.After(d.CreatedAt) && d.LastSeen.After(at) {
			at = d.LastSeen
		}
	}
	return at, nil
}

// tell sends c to the followers of its user here.
func (h *presenceHub) tell(c presence.Change) {
	h.mu.Lock()
	var to []*session
	for ss := range h.follows[c.User] {
		to = append(to, ss)
	}
	h.mu.Unlock()
	if len(to) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(h.s.ctx, 10*time.Second)
	defer cancel()
	target, err := h.s.st.User(ctx, c.User)
	if err != nil {
		h.s.log.Warn("presence: reading the user failed", "user", c.User, "err", err)
		return
	}
	viewers := map[string]store.User{}
	for _, ss := range to {
		viewer, ok := viewers[ss.userID]
		if !ok {
			if viewer, err = h.s.st.User(ctx, ss.userID); err != nil {
				continue
			}
			viewers[ss.userID] = viewer
		}
		f, shown, err := h.frame(ctx, target, viewer, c.Online, c.At)
		if err != nil {
			h.s.log.Warn("presence: privacy check failed", "user", c.User, "err", err)
			continue
		}
		if !shown {
			continue // a change the viewer may not see is not news to it
		}
		ss.Deliver(routing.Envelope{Kind: routing.KindFrame, Frame: f})
	}
}

// frame is the presence of target as viewer may see it (DESIGN.md section
// 3, "Presence and privacy"): last seen per target's setting, online per
// target's setting (or as last seen), and a viewer who hides its own last
// seen (or online) sees no one else's. What is hidden reads as offline
// and a null last_seen. shown is false when the viewer may see neither.
func (h *presenceHub) frame(ctx context.Context, target, viewer store.User, online bool, at time.Time) (f []byte, shown bool, err error) {
	if target.ID != viewer.ID {
		// Presence never crosses a block, either way.
		for _, pair := range [2][2]string{{target.ID, viewer.ID}, {viewer.ID, target.ID}} {
			if blocked, err := h.s.st.Blocked(ctx, pair[0], pair[1]); err != nil {
				return nil, false, err
			} else if blocked {
				return marshalFrame(wire.Presence{Type: wire.TypePresence, UserID: target.ID}), false, nil
			}
		}
	}
	seen, err := h.lastSeenVisible(ctx, target, viewer)
	if err != nil {
		return nil, false, err
	}
	showOnline := seen
	if target.Privacy.Online != store.SameAsLastSeen {
		showOnline = true
	}
	if target.ID != viewer.ID && viewer.Privacy.Online == store.SameAsLastSeen && viewer.Privacy.LastSeen == store.Nobody {
		showOnline = false
	}
	p := wire.Presence{Type: wire.TypePresence, UserID: target.ID}
	switch {
	case online && showOnline:
		p.Online = true
		if seen {
			now := rfc3339(time.Now())
			p.LastSeen = &now
		}
	case !online && seen && !at.IsZero():
		ts := rfc3339(at)
		p.LastSeen = &ts
	}
	return marshalFrame(p), seen || showOnline, nil
}

func (h *presenceHub) lastSeenVisible(ctx context.Context, target, viewer store.User) (bool, error) {
	if target.ID == viewer.ID {
		return true, nil
	}
	if viewer.Privacy.LastSeen == store.Nobody {
		return false, nil // hiding yours hides others' from you
	}
	switch target.Privacy.LastSeen {
	case store.Nobody:
		return false, nil
	case store.Contacts:
		return h.s.st.HasContact(ctx, target.ID, viewer.Phone)
	}
	return true, nil
}
