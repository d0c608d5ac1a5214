package server

import (
	"context"
	"errors"
	"log/slog"
	"strings"
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

	// order makes the tracker's changes reach the queue in the order the
	// tracker made them (a session's offline must not overtake the next
	// session's online); broadcasts go out after, without it.
	order sync.Mutex

	mu sync.Mutex
	// follows maps a user to the sessions following it here.
	follows map[string]map[*session]follow
	queue   []presenceJob
	jobs    uint64 // the seq of the last job queued
	// rechecking is the users with a recheck queued and not yet begun: a
	// second one for them would read the same settings, so it is not
	// queued (a client saving its address book over and over costs one).
	rechecking map[string]bool
	// dropped holds the offline times of users whose node died (a
	// presence.Change marked Dropped) until recordDropped has stored them
	// as last seen: the store still has the time the user connected, and
	// a recheck reading it meanwhile would tell followers an earlier last
	// seen than they were told.
	dropped map[string]time.Time
	kick    chan struct{}
}

// The states a follower is told (see follow.told).
const (
	stateOnline  = "online"
	stateOffline = "offline"
	stateSeen    = "seen"
)

// toldOnline reports whether a follow's told state says online.
func toldOnline(state string) bool { return strings.HasPrefix(state, stateOnline) }

// follow is one session following one user.
type follow struct {
	// told is the state it was last told (online, with or without a
	// last seen shown, or offline with the last seen shown): a change it
	// may no longer see must still take an online back, and a change that
	// would say the same again (its answer, read later than the change
	// was queued, said it already) is not news.
	told string
	// from is the seq of the subscription's answer: a change queued
	// before it is in the answer already, and telling it too would only
	// repeat it (or, on the way to the answer, be a frame a client cannot
	// tell from a change after it).
	from uint64
}

// presenceJob is a change to tell followers of, or (sub not nil) the first
// answer to a presence_sub, or (recheck) a second look at what users'
// followers and users' own sessions were told, queued behind the changes
// before it.
type presenceJob struct {
	seq     uint64
	change  presence.Change
	sub     *session
	recheck bool
	users   []string
}

func newPresenceHub(s *Server) *presenceHub {
	lease := 3 * s.cfg.PresenceBeat
	return &presenceHub{s: s, tracker: presence.New(s.cfg.NodeID, store.NewID("boot"), lease, nil),
		follows: make(map[string]map[*session]follow), rechecking: make(map[string]bool), kick: make(chan struct{}, 1)}
}

// run broadcasts this node's hello and heartbeats and expires dead nodes
// on one goroutine, and tells followers on another, until the server
// stops: a long queue of followers to tell must not hold a beat back past
// the lease.
func (h *presenceHub) run() {
	m := h.tracker.Hello()
	h.broadcast(&m)
	go h.tellLoop()
	beat := time.NewTicker(h.s.cfg.PresenceBeat)
	defer beat.Stop()
	for {
		select {
		case <-h.s.ctx.Done():
			return
		case <-beat.C:
			m := h.tracker.Beat()
			h.broadcast(&m)
			h.order.Lock()
			h.notify(h.tracker.Expire())
			h.order.Unlock()
		}
	}
}

func (h *presenceHub) tellLoop() {
	for {
		select {
		case <-h.s.ctx.Done():
			return
		case <-h.kick:
			h.mu.Lock()
			jobs := h.queue
			h.queue = nil
			h.mu.Unlock()
			for _, j := range jobs {
				switch {
				case j.sub != nil:
					h.answer(j.sub, j.users)
				case j.recheck:
					h.reevaluate(j.seq, j.users)
				default:
					h.tell(j.seq, j.change)
				}
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
		level := slog.LevelDebug
		if m.Type == presence.TypeRecheck {
			// Nothing replays a lost recheck: followers elsewhere keep
			// what they were told until the user's next change.
			level = slog.LevelWarn
		}
		h.s.log.Log(ctx, level, "presence broadcast failed", "type", m.Type, "err", err)
	}
}

// notify queues changes for the followers here; callers hold order.
func (h *presenceHub) notify(changes []presence.Change) {
	if len(changes) == 0 {
		return
	}
	var dropped []presence.Change
	h.mu.Lock()
	for _, c := range changes {
		h.jobs++
		h.queue = append(h.queue, presenceJob{seq: h.jobs, change: c})
		if c.Dropped {
			if h.dropped == nil {
				h.dropped = make(map[string]time.Time)
			}
			if c.At.After(h.dropped[c.User]) {
				h.dropped[c.User] = c.At
			}
			dropped = append(dropped, c)
		}
	}
	h.mu.Unlock()
	h.wake()
	if len(dropped) > 0 {
		go h.recordDropped(dropped)
	}
}

// recordDropped stores when the users of a dead node went offline as
// their last seen, on the device seen last (its connect time is what the
// store has). Every node that saw the node die does it: the writes agree.
func (h *presenceHub) recordDropped(changes []presence.Change) {
	for _, c := range changes {
		if h.s.ctx.Err() != nil {
			return
		}
		if !h.tracker.Online(c.User) {
			if err := h.storeLastSeen(c.User, c.At); err != nil {
				h.s.log.Warn("presence: storing the last seen of a dead node's user", "user", c.User, "err", err)
			}
		}
		h.mu.Lock()
		if !h.dropped[c.User].After(c.At) {
			delete(h.dropped, c.User)
		}
		h.mu.Unlock()
	}
}

func (h *presenceHub) storeLastSeen(user string, at time.Time) error {
	ctx, cancel := context.WithTimeout(h.s.ctx, 5*time.Second)
	defer cancel()
	ds, err := h.s.st.UserDevices(ctx, user)
	if err != nil {
		return err
	}
	var last *store.Device
	for i := range ds {
		if last == nil || ds[i].LastSeen.After(last.LastSeen) {
			last = &ds[i]
		}
	}
	if last == nil || !last.LastSeen.Before(at) {
		return nil
	}
	if err := h.s.st.TouchDevice(ctx, last.ID, at); err != nil && !errors.Is(err, store.ErrNotFound) {
		return err
	}
	return nil
}

func (h *presenceHub) wake() {
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
	if m.Type == presence.TypeRecheck {
		// A node asks about at most two users (a block's two sides).
		if !h.tracker.Own(m) && len(m.Users) <= maxRecheckUsers {
			h.queueRecheck(m.Users)
		}
		return
	}
	h.order.Lock()
	reply, changes := h.tracker.Apply(m)
	h.notify(changes)
	h.order.Unlock()
	if reply != nil {
		go h.broadcast(reply)
	}
}

// connected and disconnected count a session of user on this node.
func (h *presenceHub) connected(user string) {
	h.order.Lock()
	m, changes := h.tracker.Connect(user)
	h.notify(changes)
	h.order.Unlock()
	h.broadcast(m)
}

func (h *presenceHub) disconnected(ss *session, at time.Time) {
	h.mu.Lock()
	for _, u := range ss.follows {
		h.unfollowLocked(u, ss)
	}
	ss.follows = nil
	h.mu.Unlock()
	h.order.Lock()
	m, changes := h.tracker.Disconnect(ss.userID, at)
	h.notify(changes)
	h.order.Unlock()
	h.broadcast(m)
}

func (h *presenceHub) unfollowLocked(user string, ss *session) {
	if set := h.follows[user]; set != nil {
		delete(set, ss)
		if len(set) == 0 {
			delete(h.follows, user)
		}
	}
}

// subscribe replaces what ss follows with users; the current presence of
// each is answered from the queue, behind the changes already in it and
// ahead of those after, so that a first answer never overtakes a newer
// change.
func (h *presenceHub) subscribe(ss *session, users []string) {
	seen := make(map[string]bool, len(users))
	var list []string
	for _, u := range users {
		if u == "" || seen[u] {
			continue
		}
		seen[u] = true
		list = append(list, u)
	}
	h.order.Lock()
	defer h.order.Unlock()
	h.mu.Lock()
	for _, u := range ss.follows {
		h.unfollowLocked(u, ss)
	}
	ss.follows = list
	h.jobs++
	for _, u := range list {
		set := h.follows[u]
		if set == nil {
			set = make(map[*session]follow)
			h.follows[u] = set
		}
		set[ss] = follow{from: h.jobs}
	}
	if len(list) > 0 {
		h.queue = append(h.queue, presenceJob{seq: h.jobs, sub: ss, users: list})
	}
	h.mu.Unlock()
	h.wake()
}

// answer tells ss the current presence of users.
func (h *presenceHub) answer(ss *session, users []string) {
	ctx, cancel := context.WithTimeout(h.s.ctx, 10*time.Second)
	defer cancel()
	viewer, err := h.s.st.User(ctx, ss.userID)
	if err != nil {
		h.s.log.Warn("presence: reading the follower failed", "user", ss.userID, "err", err)
		return
	}
	for _, u := range users {
		target, err := h.s.st.User(ctx, u)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) { // no such user: nothing to tell
				h.s.log.Warn("presence: reading the user failed", "user", u, "err", err)
			}
			continue
		}
		online, at, err := h.current(ctx, u)
		if err != nil {
			continue
		}
		f, state, _, err := h.frame(ctx, target, viewer, online, at)
		if err != nil {
			continue
		}
		if !h.told(ss, u, state) {
			continue // unfollowed meanwhile
		}
		ss.queue(f)
	}
}

// told records what ss was last told of user; false if it no longer
// follows user.
func (h *presenceHub) told(ss *session, user string, state string) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	set := h.follows[user]
	f, ok := set[ss]
	if !ok {
		return false
	}
	f.told = state
	set[ss] = f
	return true
}

// current is user's presence now: online, or when it was last seen.
func (h *presenceHub) current(ctx context.Context, user string) (online bool, at time.Time, err error) {
	if h.tracker.Online(user) {
		return true, time.Time{}, nil
	}
	at, err = h.lastSeen(ctx, user)
	return false, at, err
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
	h.mu.Lock()
	if t := h.dropped[user]; t.After(at) {
		at = t // not stored yet: see presenceHub.dropped
	}
	h.mu.Unlock()
	return at, nil
}

// tell sends c, the job seq, to the followers of its user here whose
// answer did not already say it.
func (h *presenceHub) tell(seq uint64, c presence.Change) {
	h.mu.Lock()
	var to []*session
	for ss, f := range h.follows[c.User] {
		if f.from < seq {
			to = append(to, ss)
		}
	}
	h.mu.Unlock()
	if len(to) == 0 {
		return
	}
	ctx, cancel := context.WithTimeout(h.s.ctx, 10*time.Second)
	target, err := h.s.st.User(ctx, c.User)
	cancel()
	if err != nil {
		h.s.log.Warn("presence: reading the user failed", "user", c.User, "err", err)
		return
	}
	viewers := map[string]store.User{}
	for _, ss := range to {
		ctx, cancel := context.WithTimeout(h.s.ctx, 5*time.Second)
		h.tellOne(ctx, ss, seq, target, viewers, c)
		cancel()
	}
}

func (h *presenceHub) tellOne(ctx context.Context, ss *session, seq uint64, target store.User, viewers map[string]store.User, c presence.Change) {
	viewer, ok := viewers[ss.userID]
	if !ok {
		var err error
		if viewer, err = h.s.st.User(ctx, ss.userID); err != nil {
			return
		}
		viewers[ss.userID] = viewer
	}
	fr, state, shown, err := h.frame(ctx, target, viewer, c.Online, c.At)
	if err != nil {
		h.s.log.Warn("presence: privacy check failed", "user", c.User, "err", err)
		return
	}
	// A change the viewer may not see is not news to it, unless it was
	// told the user is online: that must be taken back (the privacy
	// setting or a block changed since).
	h.update(ss, c.User, seq, fr, state, shown)
}

// update sends fr, saying state of user, to ss where that is news: ss
// still follows user, its answer came before job seq (a later one says
// state itself), and it was told something else. A state that is not
// shown (the viewer may see nothing of user) is news only to take back an
// online.
func (h *presenceHub) update(ss *session, user string, seq uint64, fr []byte, state string, shown bool) {
	h.mu.Lock()
	set := h.follows[user]
	f, following := set[ss]
	if !following || f.from >= seq || (!shown && !toldOnline(f.told)) || state == f.told {
		h.mu.Unlock()
		return
	}
	f.told = state
	set[ss] = f
	h.mu.Unlock()
	// Presence is state, not a droppable ephemeral frame.
	ss.queue(fr)
}

// frame is the presence of target as viewer may see it (DESIGN.md section
// 3, "Presence and privacy"): last seen per target's setting, online per
// target's setting (everyone, or the last seen's audience), and a viewer
// who hides its own last seen sees no one's, one who hides its online too
// sees no one online. What is hidden reads as offline and a null
// last_seen. state is what the frame says (stateOnline, or stateOffline
// and the last seen shown); shown is false when the viewer may see neither.
func (h *presenceHub) frame(ctx context.Context, target, viewer store.User, online bool, at time.Time) (f []byte, state string, shown bool, err error) {
	hidden := marshalFrame(wire.Presence{Type: wire.TypePresence, UserID: target.ID})
	self := target.ID == viewer.ID
	if !self {
		// Presence never crosses a block, either way.
		for _, pair := range [2][2]string{{target.ID, viewer.ID}, {viewer.ID, target.ID}} {
			if blocked, err := h.s.st.Blocked(ctx, pair[0], pair[1]); err != nil {
				return nil, "", false, err
			} else if blocked {
				return hidden, stateOffline, false, nil
			}
		}
	}
	audience, err := h.inLastSeenAudience(ctx, target, viewer)
	if err != nil {
		return nil, "", false, err
	}
	seen := self || (audience && viewer.Privacy.LastSeen != store.Nobody)
	showOnline := self || target.Privacy.Online != store.SameAsLastSeen || audience
	if !self && viewer.Privacy.Online == store.SameAsLastSeen && viewer.Privacy.LastSeen == store.Nobody {
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
	// An online frame's last seen is "now": only whether it is shown is
	// state (a viewer may lose or gain the right to see it while online).
	switch {
	case p.Online && p.LastSeen != nil:
		state = stateOnline + " " + stateSeen
	case p.Online:
		state = stateOnline
	case p.LastSeen != nil:
		state = stateOffline + " " + *p.LastSeen
	default:
		state = stateOffline
	}
	return marshalFrame(p), state, seen || showOnline, nil
}

// inLastSeenAudience reports whether target's last_seen setting includes
// viewer.
func (h *presenceHub) inLastSeenAudience(ctx context.Context, target, viewer store.User) (bool, error) {
	switch target.Privacy.LastSeen {
	case store.Nobody:
		return false, nil
	case store.Contacts:
		return h.s.st.HasContact(ctx, target.ID, viewer.Phone)
	}
	return true, nil
}

// recheck has every node look again at what the followers of users, and
// users' own sessions, were told: a privacy setting, an address book or a
// block changed what they may see while no one's presence changed. Without
// it, a follower told someone is online would go on seeing that after
// being blocked, until the next change.
func (h *presenceHub) recheck(users ...string) {
	h.queueRecheck(users)
	m := h.tracker.Recheck(users)
	h.broadcast(&m)
}

// maxRecheckUsers bounds a recheck from another node.
const maxRecheckUsers = 4

func (h *presenceHub) queueRecheck(users []string) {
	h.mu.Lock()
	var fresh []string
	for _, u := range users {
		if !h.rechecking[u] {
			h.rechecking[u] = true
			fresh = append(fresh, u)
		}
	}
	if len(fresh) == 0 {
		h.mu.Unlock()
		return
	}
	h.jobs++
	h.queue = append(h.queue, presenceJob{seq: h.jobs, recheck: true, users: fresh})
	h.mu.Unlock()
	h.wake()
}

// reevaluate tells every follower here of one of users, and every session
// here of one of users about those it follows, what it may see now, where
// that differs from what it was told. seq is the job's: a subscription
// answered after it reads the new settings anyway.
func (h *presenceHub) reevaluate(seq uint64, users []string) {
	type pair struct {
		ss     *session
		target string
	}
	var own []*session
	h.s.mu.Lock()
	for _, u := range users {
		own = append(own, h.s.byUser[u]...)
	}
	h.s.mu.Unlock()
	var pairs []pair
	seen := make(map[pair]bool)
	h.mu.Lock()
	for _, u := range users {
		delete(h.rechecking, u) // what is read from here on is news to a later one
	}
	add := func(ss *session, target string) {
		p := pair{ss, target}
		if f, ok := h.follows[target][ss]; ok && f.from < seq && !seen[p] {
			seen[p] = true
			pairs = append(pairs, p)
		}
	}
	for _, u := range users {
		for ss := range h.follows[u] {
			add(ss, u)
		}
	}
	for _, ss := range own {
		for _, t := range ss.follows {
			add(ss, t)
		}
	}
	h.mu.Unlock()
	if len(pairs) == 0 {
		return
	}
	known := make(map[string]store.User)
	user := func(ctx context.Context, id string) (store.User, bool) {
		if u, ok := known[id]; ok {
			return u, true
		}
		u, err := h.s.st.User(ctx, id)
		if err != nil {
			if !errors.Is(err, store.ErrNotFound) {
				h.s.log.Warn("presence: reading a user failed", "user", id, "err", err)
			}
			return store.User{}, false
		}
		known[id] = u
		return u, true
	}
	type state struct {
		online bool
		at     time.Time
	}
	states := make(map[string]state) // per target: read once
	type view struct {
		frame []byte
		state string
		ok    bool
	}
	// look is what viewer may see of target now, with a deadline of its
	// own (as in tell: a slow store fails some pairs, not all after one).
	look := func(target, viewer string) view {
		ctx, cancel := context.WithTimeout(h.s.ctx, 5*time.Second)
		defer cancel()
		t, ok1 := user(ctx, target)
		v, ok2 := user(ctx, viewer)
		if !ok1 || !ok2 {
			return view{}
		}
		st, ok := states[target]
		if !ok {
			var err error
			if st.online, st.at, err = h.current(ctx, target); err != nil {
				h.s.log.Warn("presence: reading last seen failed", "user", target, "err", err)
				return view{}
			}
			states[target] = st
		}
		fr, now, _, err := h.frame(ctx, t, v, st.online, st.at)
		if err != nil {
			h.s.log.Warn("presence: privacy check failed", "user", target, "err", err)
			return view{}
		}
		return view{fr, now, true}
	}
	// What a viewer may see of a target is the same for all of the
	// viewer's sessions: one look per pair of users.
	type users2 struct{ target, viewer string }
	views := make(map[users2]view)
	for _, p := range pairs {
		key := users2{p.target, p.ss.userID}
		v, ok := views[key]
		if !ok {
			v = look(p.target, p.ss.userID)
			views[key] = v
		}
		if v.ok {
			// A hidden state is news here: its timing is the setting's,
			// not the user's coming or going.
			h.update(p.ss, p.target, seq, v.frame, v.state, true)
		}
	}
}
