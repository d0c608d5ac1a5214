package server

import (
	"context"
	"encoding/json"
	"errors"
	"net"
	"net/url"
	"sync"
	"time"

	"github.com/tern-im/tern/internal/safehttp"
	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// Pushes to devices that no node holds go through two queues:
//
//   - the wake queue, in memory: one wake per device, and none for a device
//     pushed less than PushCooldown ago, so that a group conversation does
//     not make a store write per offline member per message;
//   - the push queue in the store (store.Pushes), shared by the nodes:
//     flushLoop moves each wake there at once, due PushDelay later, and a
//     device that connects before then cancels it (so a phone that only
//     lost its signal for a moment is not pushed). sendLoop, on every
//     node, claims due pushes under a lease, sends them, and marks them
//     done or due again; a node that dies while sending leaves them to
//     the others when the lease ends.
//
// A node that stops cleanly (Shutdown) flushes its wakes first, and lets
// sendLoop finish the batch it is sending. Only a wake that a node dies
// holding within the moment before it is flushed, or one made after the
// final flush, is lost: the message itself is in the device's inbox
// whatever happens, and the device gets it when it next connects.

// maxWakes bounds the wake queue; past it wakes are dropped (counted).
const maxWakes = 100_000

// Push timings.
const (
	// pushLease is how long a claimed push is its node's to send.
	pushLease = 30 * time.Second
	// pushClaim is how many pushes one claim takes.
	pushClaim = 100
	// pushMaxAttempts bounds the sends of one push that fail for a
	// time; then it is dropped (the message waits in the inbox).
	pushMaxAttempts = 10
	// pushMaxBackoff caps the wait between two attempts.
	pushMaxBackoff = 10 * time.Minute
	// pushFlushers is how many store writes the flush makes at once.
	pushFlushers = 8
)

// wake is a push to send to a device that no node holds.
type wake struct {
	device, chatID, msgID, from, text string
	unlessOnline                      bool // skip it if the device is on this node by then
}

// wakeFor is the wake of device for message m; the text only with
// previews on.
func (s *Server) wakeFor(device string, m *store.Message, unlessOnline bool) wake {
	w := wake{device: device, chatID: m.ChatID, msgID: m.ID, from: m.From, unlessOnline: unlessOnline}
	if s.cfg.PushPreview && m.Kind == "" {
		var b struct {
			Text    string `json:"text"`
			Caption string `json:"caption"`
		}
		if json.Unmarshal(m.Body, &b) == nil {
			w.text = b.Text
			if w.text == "" {
				w.text = b.Caption
			}
			w.text = push.Truncate(w.text, push.MaxText)
		}
	}
	return w
}

// wakeQueue holds pushes to queue, one per device (a burst of events to an
// offline device wakes it once), and none to a device pushed less than
// cooldown ago.
type wakeQueue struct {
	mu       sync.Mutex
	pending  map[string]wake
	recent   map[string]time.Time // devices pushed, and when
	cooldown time.Duration
	now      func() time.Time
	signal   chan struct{}
	count    func(outcome string) // "dropped", "coalesced"
}

func newWakeQueue(cooldown time.Duration, now func() time.Time, count func(outcome string)) *wakeQueue {
	return &wakeQueue{pending: make(map[string]wake), recent: make(map[string]time.Time), cooldown: cooldown,
		now: now, signal: make(chan struct{}, 1), count: count}
}

func (q *wakeQueue) add(w wake) {
	q.mu.Lock()
	if at, ok := q.recent[w.device]; ok && q.now().Sub(at) < q.cooldown {
		q.mu.Unlock()
		q.count("coalesced")
		return
	}
	if _, ok := q.pending[w.device]; ok {
		q.mu.Unlock() // the burst's first message names the push
		return
	}
	if len(q.pending) >= maxWakes {
		q.mu.Unlock()
		q.count("dropped")
		return
	}
	q.pending[w.device] = w
	q.mu.Unlock()
	select {
	case q.signal <- struct{}{}:
	default:
	}
}

func (q *wakeQueue) take() []wake {
	q.mu.Lock()
	defer q.mu.Unlock()
	out := make([]wake, 0, len(q.pending))
	for _, w := range q.pending {
		out = append(out, w)
	}
	clear(q.pending)
	return out
}

// pushed starts device's cooldown: its push is queued now.
func (q *wakeQueue) pushed(device string) {
	if q.cooldown <= 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	now := q.now()
	if len(q.recent) >= maxWakes {
		for d, at := range q.recent {
			if now.Sub(at) >= q.cooldown {
				delete(q.recent, d)
			}
		}
		if len(q.recent) >= maxWakes {
			return // full of fresh ones: this device may be pushed again
		}
	}
	q.recent[device] = now
}

// forget ends device's cooldown: it connected, so the next event it misses
// is news again.
func (q *wakeQueue) forget(device string) {
	q.mu.Lock()
	delete(q.recent, device)
	q.mu.Unlock()
}

// pushLoops is what Shutdown needs to stop flushLoop and sendLoop.
type pushLoops struct {
	stop     chan struct{} // closed when the node stops cleanly
	stopOnce sync.Once
	wg       sync.WaitGroup
}

func (s *Server) startPushLoops() {
	s.pushLoops.stop = make(chan struct{})
	s.pushLoops.wg.Add(2)
	go func() { defer s.pushLoops.wg.Done(); s.flushLoop() }()
	go func() { defer s.pushLoops.wg.Done(); s.sendLoop() }()
}

// stopPushLoops ends flushLoop, after it moved the wakes still in memory
// to the store's queue (where another node, or this one restarted, sends
// them), and sendLoop, after it recorded the outcomes of the batch it is
// sending (else those pushes wait out their lease and may go twice). Both
// only as long as ctx lasts: the caller then cancels s.ctx, which ends
// whatever they still do.
func (s *Server) stopPushLoops(ctx context.Context) {
	s.pushLoops.stopOnce.Do(func() { close(s.pushLoops.stop) })
	done := make(chan struct{})
	go func() { s.pushLoops.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown: pushes still being queued or sent at deadline")
	}
}

// flushLoop moves the wakes into the store's push queue until the node
// stops.
func (s *Server) flushLoop() {
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.pushLoops.stop:
			s.flushWakes()
			return
		case <-s.wakes.signal:
		}
		s.flushWakes()
	}
}

// flushWakes moves the wakes queued now into the store's push queue.
func (s *Server) flushWakes() {
	ws := s.wakes.take()
	sem := make(chan struct{}, pushFlushers)
	var wg sync.WaitGroup
	for _, w := range ws {
		if w.unlessOnline && s.online(w.device) {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			if s.queuePush(w) {
				s.wakes.pushed(w.device)
			}
		}()
	}
	wg.Wait()
	s.signalSend()
}

// queuePush writes w to the store's push queue, and reports whether it did.
func (s *Server) queuePush(w wake) bool {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	j := store.PushJob{DeviceID: w.device, Kind: store.EventMessage, ChatID: w.chatID, MsgID: w.msgID,
		From: w.from, Text: w.text, Due: s.now().Add(s.cfg.PushDelay)}
	if err := s.st.QueuePush(ctx, j, s.cfg.PushCooldown); err != nil {
		s.metrics.pushes.WithLabelValues("error").Inc()
		s.log.Warn("push: queueing failed", "device", w.device, "err", err)
		return false
	}
	s.metrics.pushes.WithLabelValues("queued").Inc()
	return true
}

// cancelPush drops device's queued push: it connected.
//
// Any node may have queued that push (the sender's node queues it), and
// the queue outlives restarts, so this node cannot tell from what it
// knows itself that there is none to cancel: skipping the store on that
// ground would push a device that connected, and then left again before
// the push was due, for a message it already has. The store's answer is
// the only one, and asking it costs what cancelling does (the embedded
// store writes nothing when there is nothing, MongoDB's delete of no
// document changes nothing). What can be saved is the connects of a device
// that come while the cancel of an earlier one still runs: a single
// cancel started after that one ends covers them all, since it starts
// after every one of them. So each device has at most one cancel running
// and one waiting, however often it reconnects.
func (s *Server) cancelPush(device string) {
	s.wakes.forget(device)
	if !s.pushCancels.start(device) {
		return
	}
	go func() {
		for {
			ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
			err := s.st.CancelPush(ctx, device)
			cancel()
			if err != nil && s.ctx.Err() == nil {
				s.log.Warn("push: cancelling failed", "device", device, "err", err)
			}
			if !s.pushCancels.next(device) {
				return
			}
		}
	}()
}

// pushCancels are the devices whose push a cancel is removing now.
type pushCancels struct {
	mu sync.Mutex
	m  map[string]bool // true: a connect came since the cancel started
}

// start reports whether the caller is to run device's cancel; if one runs
// already, it has it run once more instead.
func (c *pushCancels) start(device string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if _, running := c.m[device]; running {
		c.m[device] = true
		return false
	}
	if c.m == nil {
		c.m = make(map[string]bool)
	}
	c.m[device] = false
	return true
}

// next reports whether device's cancel, just finished, is to run again.
func (c *pushCancels) next(device string) bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m[device] {
		c.m[device] = false
		return true
	}
	delete(c.m, device)
	return false
}

// signalSend wakes sendLoop early: a push was queued that may be due
// before its next poll.
func (s *Server) signalSend() {
	select {
	case s.sendSignal <- struct{}{}:
	default:
	}
}

// sendLoop sends the due pushes of the store's queue until the node stops:
// it claims them at least every PushPoll, and sooner after a flush.
func (s *Server) sendLoop() {
	t := time.NewTimer(0)
	defer t.Stop()
	next := time.Now() // when t fires
	reset := func(d time.Duration) {
		if !t.Stop() {
			select {
			case <-t.C:
			default:
			}
		}
		t.Reset(d)
		next = time.Now().Add(d)
	}
	lastDepth := time.Time{}
	for {
		select {
		case <-s.ctx.Done():
			return
		case <-s.pushLoops.stop:
			return
		case <-t.C:
		case <-s.sendSignal:
			// Queued now, due PushDelay later: look then, unless the
			// timer fires sooner anyway. Only ever sooner: a node that
			// flushes more often than it polls would otherwise never
			// send.
			if d := min(s.cfg.PushDelay, s.cfg.PushPoll); time.Now().Add(d).Before(next) {
				reset(d)
			}
			continue
		}
		// A select with several cases ready picks one at random: a stop
		// that came with the timer must not start another batch.
		select {
		case <-s.pushLoops.stop:
			return
		default:
		}
		n := s.sendDue()
		if now := time.Now(); now.Sub(lastDepth) >= pushDepthEvery {
			lastDepth = now
			s.measurePushDepth()
		}
		if n == pushClaim {
			reset(0) // more are due
		} else {
			reset(s.cfg.PushPoll)
		}
	}
}

// pushDepthEvery is how often a node counts the push queue for the gauge.
const pushDepthEvery = 15 * time.Second

func (s *Server) measurePushDepth() {
	ctx, cancel := context.WithTimeout(s.ctx, 10*time.Second)
	defer cancel()
	if n, err := s.st.PendingPushes(ctx); err == nil {
		s.metrics.pushQueue.Set(float64(n))
	}
}

// sendDue claims the pushes due now and sends them; it returns how many it
// claimed.
func (s *Server) sendDue() int {
	// The bookkeeping gets its own deadline: a slow push service must not
	// leave the pushes it held up unmarked, to be claimed and sent again.
	ctx, cancel := context.WithTimeout(s.ctx, pushLease/3)
	defer cancel()
	now := s.now()
	jobs, err := s.st.ClaimPushes(ctx, now, now.Add(pushLease), pushClaim)
	if err != nil {
		if s.ctx.Err() == nil {
			s.log.Warn("push: claiming failed", "err", err)
		}
		return 0
	}
	if len(jobs) == 0 {
		return 0
	}
	var (
		ns   []push.Notification
		sent []store.PushJob
	)
	for _, j := range jobs {
		n, ok := s.pushNotification(ctx, j)
		if !ok {
			continue
		}
		ns = append(ns, n)
		sent = append(sent, j)
	}
	// The sends end well within the lease, so that another node does not
	// claim them while they run.
	sctx, scancel := context.WithTimeout(s.ctx, pushLease/2)
	errs := push.NotifyAll(sctx, s.push, ns)
	scancel()
	dctx, dcancel := context.WithTimeout(s.ctx, pushLease/3)
	defer dcancel()
	for i, err := range errs {
		s.pushed(dctx, sent[i], ns[i], err)
	}
	return len(jobs)
}

// pushNotification is the notification of j, false if there is nothing
// to send (the push is done then).
func (s *Server) pushNotification(ctx context.Context, j store.PushJob) (push.Notification, bool) {
	done := func(result string) {
		s.metrics.pushes.WithLabelValues(result).Inc()
		if err := s.st.DonePush(ctx, j.DeviceID, j.Lease, s.now()); err != nil && !errors.Is(err, store.ErrConflict) {
			s.log.Warn("push: finishing failed", "device", j.DeviceID, "err", err)
		}
	}
	if s.onlineAnywhere(ctx, j.DeviceID) {
		// Connected after all, here or on another node (its connect's
		// cancel can land before a slower node queued the push): no wake.
		s.metrics.pushes.WithLabelValues("online").Inc()
		if err := s.st.CancelPush(ctx, j.DeviceID); err != nil {
			s.log.Warn("push: cancelling failed", "device", j.DeviceID, "err", err)
		}
		return push.Notification{}, false
	}
	d, err := s.st.Device(ctx, j.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		// Gone: drop the push and leave no cooldown record behind.
		s.metrics.pushes.WithLabelValues("no_device").Inc()
		if err := s.st.CancelPush(ctx, j.DeviceID); err != nil {
			s.log.Warn("push: cancelling failed", "device", j.DeviceID, "err", err)
		}
		return push.Notification{}, false
	}
	if err != nil {
		s.retryPush(ctx, j, err)
		return push.Notification{}, false
	}
	if d.PushToken == "" {
		done("no_token")
		return push.Notification{}, false
	}
	return push.Notification{UserID: d.UserID, DeviceID: d.ID, Provider: d.PushProvider, Token: d.PushToken,
		Kind: j.Kind, ChatID: j.ChatID, MsgID: j.MsgID, From: j.From, Text: j.Text}, true
}

// pushed records the outcome of j's send as n.
func (s *Server) pushed(ctx context.Context, j store.PushJob, n push.Notification, err error) {
	switch {
	case err == nil:
		s.metrics.pushes.WithLabelValues("ok").Inc()
		s.stats.push.Record(nil, time.Now())
	case errors.Is(err, push.ErrUnregistered):
		// The service answered; the address is gone.
		s.stats.push.Record(nil, time.Now())
		s.metrics.pushes.WithLabelValues("unregistered").Inc()
		s.dropToken(ctx, n)
	case errors.Is(err, push.ErrTemporary) && j.Attempts+1 < pushMaxAttempts:
		s.stats.push.Record(err, time.Now())
		s.retryPush(ctx, j, err)
		return
	default:
		s.stats.push.Record(err, time.Now())
		s.metrics.pushes.WithLabelValues("failed").Inc()
		s.log.Warn("push failed", "device", j.DeviceID, "attempts", j.Attempts+1, "err", err)
	}
	if err := s.st.DonePush(ctx, j.DeviceID, j.Lease, s.now()); err != nil && !errors.Is(err, store.ErrConflict) {
		s.log.Warn("push: finishing failed", "device", j.DeviceID, "err", err)
	}
}

// dropToken forgets the push address n went to, which the push service
// says is gone for good, so that nothing is sent to it again until the
// device registers a new one; unless the device registered another since
// n was read (the app reinstalled, the browser subscribed again): that
// one is new, and clearing it would leave the device unreachable.
func (s *Server) dropToken(ctx context.Context, n push.Notification) {
	d, err := s.st.Device(ctx, n.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return // signed out: nothing to forget
	}
	if err != nil {
		s.log.Warn("push: dropping the token failed", "device", n.DeviceID, "err", err)
		return
	}
	if d.PushProvider != n.Provider || d.PushToken != n.Token {
		s.log.Info("push: token unregistered, but the device registered another since; keeping that", "device", n.DeviceID)
		return
	}
	// A registration that lands between the read above and this write is
	// cleared with the old one: the store has no conditional clear, so
	// this compares, then clears, within one store round trip of each
	// other. Such a device is unreachable by push until it registers
	// again, which apps do at every start.
	s.log.Info("push: token unregistered; dropping it", "device", n.DeviceID)
	if err := s.st.SetPush(ctx, n.DeviceID, "", ""); err != nil && !errors.Is(err, store.ErrNotFound) {
		s.log.Warn("push: dropping the token failed", "device", n.DeviceID, "err", err)
	}
}

// checkEndpoint refuses a Web Push endpoint whose host is, or resolves
// to, an address that is not public (loopback, a private network, ...):
// the node would otherwise send requests wherever a user says. Sending
// checks the address it dials again (internal/safehttp), so a name that
// resolves elsewhere later is caught then.
func (s *Server) checkEndpoint(ctx context.Context, endpoint string) error {
	if s.cfg.WebPushAllowPrivate {
		return nil
	}
	u, err := url.Parse(endpoint)
	if err != nil {
		return wire.Errorf(wire.CodeBadRequest, "subscription endpoint is not a URL")
	}
	ctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	err = safehttp.Check(ctx, u.Hostname())
	var dnsErr *net.DNSError
	switch {
	case err == nil:
		return nil
	case errors.Is(err, safehttp.ErrForbiddenAddress):
		return wire.Errorf(wire.CodeBadRequest, "subscription endpoint %s is not on a public address", u.Host)
	case errors.As(err, &dnsErr) && dnsErr.IsNotFound:
		return wire.Errorf(wire.CodeBadRequest, "subscription endpoint host %s does not exist", u.Hostname())
	}
	s.log.Warn("push: checking a subscription endpoint failed", "host", u.Hostname(), "err", err)
	return wire.Errorf(wire.CodeUnavailable, "could not check the subscription endpoint, try again")
}

// retryPush puts j back, due after a backoff that doubles with its
// attempts (or what the push service asked for).
func (s *Server) retryPush(ctx context.Context, j store.PushJob, cause error) {
	s.metrics.pushes.WithLabelValues("retry").Inc()
	wait := min(time.Second<<min(j.Attempts, 20), pushMaxBackoff)
	if d, ok := push.RetryAfter(cause); ok && d > 0 {
		wait = min(d, 24*time.Hour)
	}
	s.log.Info("push: will try again", "device", j.DeviceID, "attempt", j.Attempts+1, "in", wait, "err", cause)
	if err := s.st.RetryPush(ctx, j.DeviceID, j.Lease, s.now().Add(wait)); err != nil && !errors.Is(err, store.ErrConflict) {
		s.log.Warn("push: rescheduling failed", "device", j.DeviceID, "err", err)
	}
}
