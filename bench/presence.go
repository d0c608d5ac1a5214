package bench

import (
	"context"
	"fmt"
	"math"
	"math/rand/v2"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/wire"
)

// presenceSeed fixes who follows whom and the order devices are picked to
// change, so that two runs of one configuration load the server alike.
const presenceSeed = 0x7465726e // "tern"

// presenceRestMax bounds the time before the churn that measures the
// server's CPU at rest.
const presenceRestMax = 5 * time.Second

// presenceCooldownMax bounds the time a device is left alone after it
// changed (see presence.cooldown).
const presenceCooldownMax = 5 * time.Second

// PresenceReport is what presence mode measured. Counts named ...InWindow
// cover the churn window by when they happened; the others the whole run,
// the drain included. Every change is made in the window.
type PresenceReport struct {
	Devices     int     `json:"devices"` // one per user
	Follows     int     `json:"follows"` // users each device follows
	FollowEdges int     `json:"follow_edges"`
	Churn       float64 `json:"churn"`        // fraction of the devices changed per second
	OfferedRate float64 `json:"offered_rate"` // changes per second
	// CooldownSeconds is how long a device that changed is not picked again.
	CooldownSeconds float64 `json:"cooldown_seconds"`
	// SubscribeSeconds is from the first presence_sub until every device
	// had the first answer about each user it follows; InitialFrames those
	// answers.
	SubscribeSeconds float64 `json:"subscribe_seconds"`
	InitialFrames    int64   `json:"initial_frames"`
	WindowSeconds    float64 `json:"window_seconds"`
	DrainSeconds     float64 `json:"drain_seconds"`

	Scheduled int64 `json:"scheduled"` // changes due in the window
	Changes   int64 `json:"changes"`   // changes made (connect or close started)
	ToOnline  int64 `json:"to_online"`
	ToOffline int64 `json:"to_offline"`
	// Skipped are due changes for which every device was busy changing or
	// in its cooldown.
	Skipped int64 `json:"skipped"`
	// ConnectFailed are reconnects that failed: the device stays offline,
	// and the change is voided (not expected, not matched).
	ConnectFailed int64 `json:"connect_failed"`
	OnlineStart   int   `json:"online_start"`
	OnlineEnd     int   `json:"online_end"`
	OnlineMin     int   `json:"online_min"`

	// Expected sums, over the changes, the followers of the changed user
	// that were online and had their subscription answered when the change
	// was made: the presence frames the server owes.
	Expected         int64   `json:"expected"`
	Received         int64   `json:"received"` // frames matched to a change a follower was counted for
	ReceivedInWindow int64   `json:"received_in_window"`
	EventRate        float64 `json:"event_rate"` // ReceivedInWindow per second
	// LeftBefore is what followers lacked when they went offline themselves
	// (their own change closed the socket before the frame came); Missing
	// what followers still online lacked after the drain: lost.
	LeftBefore int64 `json:"left_before_delivery"`
	Missing    int64 `json:"missing"`
	// Unmatched are presence frames after a follower's subscription was
	// answered that match no change it was counted for (but for those at
	// a follower already closing); Foreign those about users it does not
	// follow.
	Unmatched int64 `json:"unmatched"`
	Foreign   int64 `json:"foreign"`
	// Resubscribes are the presence_sub of devices that came back online,
	// ResubscribeFrames the answers to them (server work too).
	Resubscribes      int64            `json:"resubscribes"`
	ResubscribeFrames int64            `json:"resubscribe_frames"`
	Errors            int64            `json:"errors"`
	ErrorCodes        map[string]int64 `json:"error_codes,omitempty"`
	Reconnects        int64            `json:"sdk_reconnects"`

	// Latencies count from when the bench started the connect or close
	// to the follower's frame; OnlineLatency and OfflineLatency split them
	// by the kind of change. Connect is the reconnects' dial (TCP and
	// upgrade), Close the close handshake of the devices going offline.
	Latency        Summary `json:"change_to_follower"`
	OnlineLatency  Summary `json:"online_to_follower"`
	OfflineLatency Summary `json:"offline_to_follower"`
	Connect        Summary `json:"reconnect_dial"`
	Close          Summary `json:"close"`
	Lag            Summary `json:"schedule_lag"`

	// ServerCPUSeconds is process_cpu_seconds_total over the window, and
	// FramesOutPerChange tern_frames_out_total over it per change made.
	ServerCPUSeconds   float64 `json:"server_cpu_seconds"`
	FramesOutPerChange float64 `json:"server_frames_out_per_change,omitempty"`
	// ServerRestCores is the server's CPU, in cores, over RestSeconds
	// before the churn, every device connected and subscribed; the window's
	// CPU above that rate is divided by the changes and by the events.
	ServerRestCores                float64 `json:"server_rest_cores"`
	RestSeconds                    float64 `json:"rest_seconds"`
	ServerAboveRestSeconds         float64 `json:"server_cpu_above_rest_seconds"`
	ServerAboveRestMicrosPerChange float64 `json:"server_cpu_above_rest_us_per_change,omitempty"`
	ServerAboveRestMicrosPerEvent  float64 `json:"server_cpu_above_rest_us_per_event,omitempty"`
}

// pchange is one change of a user's presence. counted is never modified
// once the change is published in its device's history; void is guarded
// by the device's mu.
type pchange struct {
	seq     int64
	online  bool
	at      int64    // run clock when the bench started the connect or close
	counted []*pconn // the followers the server owes a frame
	void    bool
}

// pconn is one connection of a device: a new one each time it comes back,
// since a client connects at most once.
type pconn struct {
	c        *client.Client
	dev      *pdev
	initial  bool         // made at setup, not by a reconnect
	readyAt  atomic.Int64 // run clock when every followed user was answered; 0 before
	expected atomic.Int64 // changes it was counted for
	received atomic.Int64 // frames matched to them
	leaving  atomic.Bool  // its close has begun: it counts as a follower of no new change
	closed   atomic.Bool  // taken offline by the churn, its reader done
	done     chan struct{}

	// The event reader's own.
	seen     []bool
	nseen    int
	credited []int64 // per followed user, the seq of the last change matched
}

// pdev is one simulated device and its user (one device per user).
type pdev struct {
	user      string
	follows   []int32  // indices of the users it follows, ascending
	followIDs []string // their ids, in the same order
	followers []int32  // indices of the devices that follow it
	cur       atomic.Pointer[pconn]
	busy      atomic.Bool  // a change is under way
	last      atomic.Int64 // run clock of its last change
	sess      wire.Session // the session to reconnect with; its changer's

	mu   sync.Mutex
	seq  int64
	hist [2]*pchange // the last two changes; hist[seq&1] is the latest
}

// presence is the state of a presence run.
type presence struct {
	r        *runner
	devs     []*pdev
	userIdx  map[string]int32
	opts     client.Options
	rate     float64 // changes per second
	cooldown int64

	winStart, winEnd int64
	stop             atomic.Bool

	pickMu sync.Mutex
	rng    *rand.Rand

	connsMu sync.Mutex
	conns   []*pconn

	lat, latOn, latOff, dial, closing, lag *Recorder

	next, changes, toOnline, toOffline, skipped, failed atomic.Int64
	online, onlineMin, ready                            atomic.Int64
	received, recvInWin, unmatched, foreign             atomic.Int64
	initialFrames, resubs, resubFrames, errs            atomic.Int64
	errMu                                               sync.Mutex
	errCodes                                            map[string]int64
}

func (p *presence) measured(at int64) bool { return at >= p.winStart && at < p.winEnd }

func (r *runner) presence(ctx context.Context, rep *Report) error {
	cfg := r.cfg
	N, F := cfg.Conns, cfg.Follows
	// A device gets F answers at once when it subscribes, then a frame now
	// and then: a small event buffer does.
	opts := r.clientOptions(16, 64)
	clients, prov, err := r.provision(ctx, N, 1, opts)
	rep.Provision = prov
	if err != nil {
		return err
	}
	defer closeAll(clients)

	p := &presence{r: r, opts: opts, rate: cfg.Churn * float64(N),
		userIdx: make(map[string]int32, N), rng: rand.New(rand.NewPCG(presenceSeed, math.MaxUint64)), // not a device's stream
		lat: NewRecorder(), latOn: NewRecorder(), latOff: NewRecorder(),
		dial: NewRecorder(), closing: NewRecorder(), lag: NewRecorder(),
		errCodes: make(map[string]int64)}
	// A device that just changed is left alone for a while: a reconnect
	// must not reach the server before it has handled the close before it
	// (the two would cancel out there and no follower would hear of
	// either), and a follower should get one change of a user before the
	// next but one (frames are matched to a user's last two changes). At
	// most a tenth of the devices are in their cooldown at once.
	p.cooldown = int64(min(presenceCooldownMax, time.Duration(0.1/cfg.Churn*float64(time.Second))))
	for i, c := range clients {
		id := c.Session().UserID
		if j, dup := p.userIdx[id]; dup {
			return fmt.Errorf("presence: devices %d and %d are both user %s (a sessions file of another layout?)", j, i, id)
		}
		p.userIdx[id] = int32(i)
		d := &pdev{user: id, sess: c.Session()}
		d.last.Store(-p.cooldown) // free from the start
		p.devs = append(p.devs, d)
	}
	p.follow(F)
	edges := N * F

	for i, c := range clients {
		p.newConn(p.devs[i], c, true)
	}
	conn, err := r.connectAll(ctx, clients, true)
	rep.Connect = conn
	if err != nil {
		return err
	}
	for _, pc := range p.conns {
		pc.dev.cur.Store(pc)
	}
	// The server counts a device online after the upgrade that ends
	// Connect, and only then reads its frames: a ping round trip from each
	// makes sure all those changes are made before the first subscription,
	// so that none comes to a follower after its answers, like churn.
	err = forEach(ctx, N, cfg.Concurrency, func(ctx context.Context, i int) error {
		if err := clients[i].Ping(ctx); err != nil {
			return fmt.Errorf("ping device %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	p.online.Store(int64(N))
	p.onlineMin.Store(int64(N))

	// Subscribe every device and wait until each has heard of every user
	// it follows: changes count only followers that are that far.
	subStart := time.Now()
	err = forEach(ctx, N, cfg.Concurrency, func(ctx context.Context, i int) error {
		if err := p.devs[i].cur.Load().c.PresenceSub(ctx, p.devs[i].followIDs); err != nil {
			return fmt.Errorf("presence_sub of device %d: %w", i, err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	// The server answers one subscription after another: wait as long as
	// answers keep coming.
	const subStall = 30 * time.Second
	stopProgress := r.progress("subscribe: devices answered", N, &p.ready)
	lastN, lastAt := int64(-1), time.Now()
	for n := p.ready.Load(); n < int64(N) && time.Since(lastAt) < subStall; n = p.ready.Load() {
		if f := p.initialFrames.Load(); f != lastN {
			lastN, lastAt = f, time.Now()
		}
		if !sleepCtx(ctx, 20*time.Millisecond) {
			stopProgress()
			return ctx.Err()
		}
	}
	stopProgress()
	subSecs := time.Since(subStart).Seconds()
	r.printf("subscribe: %d devices following %d users each (%d follow edges): %d answered in %s, %d presence frames\n",
		N, F, edges, p.ready.Load(), time.Duration(subSecs*float64(time.Second)).Round(time.Millisecond), p.initialFrames.Load())
	if n := p.ready.Load(); n < int64(N) {
		r.printf("warning: %d devices lack answers, none came for %s; they count as followers of no change until they have them\n",
			int64(N)-n, subStall)
	}
	// The server's CPU with every device connected and subscribed but no
	// churn: keepalives and timers, which the window pays too (for fewer
	// sockets as devices go offline, so what is above it per change is a
	// slight underestimate).
	before := r.scrape(ctx, "before churn")
	rest := min(presenceRestMax, cfg.Duration/2)
	r.printf("rest: %s with no churn, for the server's cpu at rest\n", rest)
	if !sleepCtx(ctx, rest) {
		return ctx.Err()
	}
	rested := r.scrape(ctx, "after rest")
	var restCores float64
	if el := rested.at.Sub(before.at).Seconds(); el > 0 {
		restCores = (rested.val(mCPU) - before.val(mCPU)) / el
	}

	workCtx, cancelWork := context.WithCancel(ctx)
	defer cancelWork()
	p.winStart = r.now() + int64(100*time.Millisecond)
	p.winEnd = p.winStart + int64(cfg.Duration)
	total := int64(p.rate * cfg.Duration.Seconds())
	r.printf("churn: %g of %d devices/s = %g changes/s for %s (%d changes), cooldown %s\n",
		cfg.Churn, N, p.rate, cfg.Duration, total, time.Duration(p.cooldown))
	var workers sync.WaitGroup
	for range min(int64(cfg.Concurrency), total) {
		workers.Go(func() { p.changer(workCtx, total) })
	}
	workersDone := make(chan struct{})
	go func() { workers.Wait(); close(workersDone) }()
	stopProgress = p.progress()

	w0, w1, cpu0, cpu1, m0, m1, interrupted := r.window(ctx, p.winStart, p.winEnd)
	p.stop.Store(true)

	// Drain: wait for the changes under way, then until every follower
	// still online has what it is owed, up to cfg.Drain.
	drained, stopped := drainUntil(ctx, cfg.Drain, 20*time.Millisecond, workersDone, func() bool { _, missing := p.owed(); return missing == 0 }, interrupted)
	interrupted = interrupted || stopped
	stopProgress()
	end := r.scrape(context.WithoutCancel(ctx), "end")
	cancelWork()
	<-workersDone
	left, missing := p.owed()
	var expected, reconnects int64
	var live []*client.Client
	p.connsMu.Lock()
	conns := slices.Clone(p.conns)
	p.connsMu.Unlock()
	for _, pc := range conns {
		expected += pc.expected.Load()
		reconnects += pc.c.Stats().Reconnects
		if !pc.closed.Load() {
			// Closing tells the followers still connected, which is
			// no churn of the run.
			pc.leaving.Store(true)
			live = append(live, pc.c)
		}
	}
	closeAll(live)
	for _, pc := range conns {
		<-pc.done
	}
	if interrupted {
		return ctx.Err()
	}

	win := cfg.Duration.Seconds()
	pr := &PresenceReport{Devices: N, Follows: F, FollowEdges: edges, Churn: cfg.Churn, OfferedRate: p.rate,
		CooldownSeconds: time.Duration(p.cooldown).Seconds(), SubscribeSeconds: subSecs, InitialFrames: p.initialFrames.Load(),
		WindowSeconds: win, DrainSeconds: drained.Seconds(),
		Scheduled: total, Changes: p.changes.Load(), ToOnline: p.toOnline.Load(), ToOffline: p.toOffline.Load(),
		Skipped: p.skipped.Load(), ConnectFailed: p.failed.Load(),
		OnlineStart: N, OnlineEnd: int(p.online.Load()), OnlineMin: int(p.onlineMin.Load()),
		Expected: expected, Received: p.received.Load(), ReceivedInWindow: p.recvInWin.Load(),
		LeftBefore: left, Missing: missing, Unmatched: p.unmatched.Load(), Foreign: p.foreign.Load(),
		Resubscribes: p.resubs.Load(), ResubscribeFrames: p.resubFrames.Load(), Errors: p.errs.Load(),
		Reconnects: reconnects,
		Latency:    p.lat.Summary(), OnlineLatency: p.latOn.Summary(), OfflineLatency: p.latOff.Summary(),
		Connect: p.dial.Summary(), Close: p.closing.Summary(), Lag: p.lag.Summary()}
	pr.EventRate = float64(pr.ReceivedInWindow) / win
	if len(p.errCodes) > 0 {
		pr.ErrorCodes = p.errCodes
	}
	serverCPU := w1.val(mCPU) - w0.val(mCPU)
	pr.ServerCPUSeconds = serverCPU
	if pr.Changes > 0 {
		pr.FramesOutPerChange = (w1.val(mFramesOut) - w0.val(mFramesOut)) / float64(pr.Changes)
	}
	pr.ServerRestCores, pr.RestSeconds = restCores, rested.at.Sub(before.at).Seconds()
	if span := w1.at.Sub(w0.at).Seconds(); span > 0 {
		pr.ServerAboveRestSeconds = serverCPU - restCores*span
	}
	if pr.Changes > 0 {
		pr.ServerAboveRestMicrosPerChange = pr.ServerAboveRestSeconds / float64(pr.Changes) * 1e6
	}
	if pr.ReceivedInWindow > 0 {
		pr.ServerAboveRestMicrosPerEvent = pr.ServerAboveRestSeconds / float64(pr.ReceivedInWindow) * 1e6
	}
	rep.Presence = pr
	b := sampleOf(before)
	rep.ServerBefore = &b
	rep.Server = sampleOf(end)
	rep.ServerCPUSeconds = serverCPU
	span := w1.at.Sub(w0.at).Seconds()
	rep.Bench.CPUSeconds = (cpu1 - cpu0).Seconds()
	if span > 0 {
		rep.Bench.CPUCores = rep.Bench.CPUSeconds / span
		rep.ServerCPUCores = serverCPU / span
	}
	rep.Machine = machineReport(m0, m1, rep.NumCPU, rep.ServerCPUCores, rep.Bench.CPUCores)
	if n := float64(pr.Changes); n > 0 {
		rep.ServerCPUMicrosPerChange = serverCPU / n * 1e6
		rep.Bench.CPUMicrosPerChange = rep.Bench.CPUSeconds / n * 1e6
	}
	if n := float64(pr.ReceivedInWindow); n > 0 {
		rep.ServerCPUMicrosPerDelivery = serverCPU / n * 1e6
		rep.Bench.CPUMicrosPerDelivery = rep.Bench.CPUSeconds / n * 1e6
	}
	return nil
}

// follow gives each device f distinct others to follow, pseudo-random from
// a fixed seed: the same for every run with the same device count.
func (p *presence) follow(f int) {
	n := len(p.devs)
	mark := make([]int32, n) // mark[j] == i+1: device i already follows j
	for i, d := range p.devs {
		rng := rand.New(rand.NewPCG(presenceSeed, uint64(i)))
		d.follows = make([]int32, 0, f)
		for len(d.follows) < f {
			j := rng.IntN(n)
			if j == i || mark[j] == int32(i+1) {
				continue
			}
			mark[j] = int32(i + 1)
			d.follows = append(d.follows, int32(j))
		}
		slices.Sort(d.follows)
		d.followIDs = make([]string, f)
		for s, j := range d.follows {
			d.followIDs[s] = p.devs[j].user
			p.devs[j].followers = append(p.devs[j].followers, int32(i))
		}
	}
}

// newConn makes c the next connection of d and starts its event reader.
func (p *presence) newConn(d *pdev, c *client.Client, initial bool) *pconn {
	pc := &pconn{c: c, dev: d, initial: initial, done: make(chan struct{}),
		seen: make([]bool, len(d.follows)), credited: make([]int64, len(d.follows))}
	p.connsMu.Lock()
	p.conns = append(p.conns, pc)
	p.connsMu.Unlock()
	go p.events(pc)
	return pc
}

// owed returns what followers lack of the changes they were counted for:
// those that went offline since (left), and those still online (missing).
func (p *presence) owed() (left, missing int64) {
	p.connsMu.Lock()
	defer p.connsMu.Unlock()
	for _, pc := range p.conns {
		n := pc.expected.Load() - pc.received.Load()
		if pc.closed.Load() {
			left += n
		} else {
			missing += n
		}
	}
	return left, missing
}

// changer makes the changes of the schedule: the k-th is due at winStart +
// k/rate. The changers take the next one in turn, so a slow connect or
// close holds up only itself.
func (p *presence) changer(ctx context.Context, total int64) {
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for {
		k := p.next.Add(1) - 1
		if k >= total || p.stop.Load() {
			return
		}
		due := p.winStart + int64(float64(k)*1e9/p.rate)
		if !p.r.waitUntil(ctx, tm, due) {
			return
		}
		now := p.r.now()
		p.lag.Record(time.Duration(now - due))
		d := p.pick(now)
		if d == nil {
			p.skipped.Add(1)
			continue
		}
		if pc := d.cur.Load(); pc != nil {
			p.goOffline(d, pc)
		} else {
			p.goOnline(ctx, d)
		}
		d.busy.Store(false)
	}
}

// pick returns a device neither changing nor in its cooldown, marked busy;
// nil if there is none.
func (p *presence) pick(now int64) *pdev {
	p.pickMu.Lock()
	defer p.pickMu.Unlock()
	n := len(p.devs)
	free := func(d *pdev) bool { return !d.busy.Load() && now-d.last.Load() >= p.cooldown }
	for range 64 {
		if d := p.devs[p.rng.IntN(n)]; free(d) {
			d.busy.Store(true)
			return d
		}
	}
	start := p.rng.IntN(n)
	for i := range n {
		if d := p.devs[(start+i)%n]; free(d) {
			d.busy.Store(true)
			return d
		}
	}
	return nil
}

// record makes a change of d's user: it counts the followers the server
// owes a frame (online, their subscription answered) and publishes the
// change for their readers to match.
func (p *presence) record(d *pdev, online bool) *pchange {
	at := p.r.now()
	d.last.Store(at)
	ch := &pchange{online: online, at: at}
	for _, f := range d.followers {
		pc := p.devs[f].cur.Load()
		if pc == nil {
			continue
		}
		if r := pc.readyAt.Load(); r != 0 && r <= at {
			ch.counted = append(ch.counted, pc)
		}
	}
	d.mu.Lock()
	d.seq++
	ch.seq = d.seq
	d.hist[d.seq&1] = ch
	d.mu.Unlock()
	for _, pc := range ch.counted {
		pc.expected.Add(1)
	}
	p.changes.Add(1)
	return ch
}

// goOffline closes d's connection. It stops counting as a follower before
// the change, and what it was owed and had not got by the close is told
// apart from what is missing.
func (p *presence) goOffline(d *pdev, pc *pconn) {
	pc.leaving.Store(true)
	d.cur.Store(nil)
	p.record(d, false)
	p.toOffline.Add(1)
	p.lower(p.online.Add(-1))
	t0 := time.Now()
	_ = pc.c.Close()
	p.closing.Record(time.Since(t0))
	<-pc.done
	pc.closed.Store(true)
	d.sess = pc.c.Session()
}

// goOnline connects d again with a new client and subscribes it. The
// change counts from before the dial: followers may hear of it before
// Connect returns.
func (p *presence) goOnline(ctx context.Context, d *pdev) {
	ch := p.record(d, true)
	p.toOnline.Add(1)
	c := client.New(p.r.cfg.Addr, p.opts)
	c.SetSession(d.sess)
	pc := p.newConn(d, c, false)
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	err := c.Connect(cctx)
	cancel()
	p.dial.Record(time.Since(t0))
	if err != nil {
		p.failed.Add(1)
		p.recordErr(err)
		d.mu.Lock()
		ch.void = true
		d.mu.Unlock()
		for _, f := range ch.counted {
			f.expected.Add(-1)
		}
		_ = c.Close()
		<-pc.done
		pc.closed.Store(true)
		return
	}
	d.cur.Store(pc)
	p.online.Add(1)
	p.resubs.Add(1)
	if err := c.PresenceSub(ctx, d.followIDs); err != nil && ctx.Err() == nil {
		p.recordErr(err)
	}
}

// lower keeps the fewest devices online seen.
func (p *presence) lower(n int64) {
	for {
		m := p.onlineMin.Load()
		if n >= m || p.onlineMin.CompareAndSwap(m, n) {
			return
		}
	}
}

func (p *presence) recordErr(err error) {
	p.errs.Add(1)
	code, _ := classifyErr(err)
	p.errMu.Lock()
	p.errCodes[code]++
	p.errMu.Unlock()
}

// events reads one connection's frames. Until every followed user has been
// answered, presence frames are the subscription's answers; after, each is
// matched to the change of its user that the connection was counted for
// and has not matched yet.
func (p *presence) events(pc *pconn) {
	defer close(pc.done)
	for f := range pc.c.Events() {
		switch f.Type {
		case wire.TypePresence:
			p.presenceFrame(pc, f.UserID, f.Online)
		case wire.TypeError:
			p.recordErr(&wire.Error{Code: f.Code, Message: f.Message})
		}
	}
}

func (p *presence) presenceFrame(pc *pconn, user string, online bool) {
	now := p.r.now()
	u, ok := p.userIdx[user]
	if !ok {
		p.foreign.Add(1)
		return
	}
	s, ok := slices.BinarySearch(pc.dev.follows, u)
	if !ok {
		p.foreign.Add(1)
		return
	}
	if pc.readyAt.Load() == 0 {
		if pc.initial {
			p.initialFrames.Add(1)
		} else {
			p.resubFrames.Add(1)
		}
		if !pc.seen[s] {
			pc.seen[s] = true
			pc.nseen++
			if pc.nseen == len(pc.seen) {
				pc.readyAt.Store(max(now, 1))
				p.ready.Add(1)
			}
		}
		return
	}
	d := p.devs[u]
	var hit *pchange
	d.mu.Lock()
	for _, ch := range d.hist {
		if ch != nil && !ch.void && ch.online == online && ch.seq > pc.credited[s] &&
			(hit == nil || ch.seq < hit.seq) && slices.Contains(ch.counted, pc) {
			hit = ch
		}
	}
	d.mu.Unlock()
	if hit == nil {
		// A follower whose close has begun was counted for no change made
		// since, but the server tells it until its socket is gone.
		if !pc.leaving.Load() {
			p.unmatched.Add(1)
		}
		return
	}
	pc.credited[s] = hit.seq
	pc.received.Add(1)
	p.received.Add(1)
	if p.measured(now) {
		p.recvInWin.Add(1)
	}
	lat := time.Duration(now - hit.at)
	p.lat.Record(lat)
	if hit.online {
		p.latOn.Record(lat)
	} else {
		p.latOff.Record(lat)
	}
}

// progress prints a line every 5 s.
func (p *presence) progress() (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(5 * time.Second)
		defer tk.Stop()
		var lastC, lastR int64
		lastAt := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-tk.C:
				c, rc := p.changes.Load(), p.received.Load()
				phase := "churn"
				if p.r.now() >= p.winEnd {
					phase = "drain"
				}
				el := now.Sub(lastAt).Seconds()
				_, missing := p.owed()
				p.r.printf("  %-5s changes %d (%.0f/s), events %d (%.0f/s), awaited %d, online %d, errors %d\n",
					phase, c, float64(c-lastC)/el, rc, float64(rc-lastR)/el, missing, p.online.Load(), p.errs.Load())
				lastC, lastR, lastAt = c, rc, now
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}
