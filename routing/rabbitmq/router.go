package rabbitmq

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"sync"
	"time"

	"github.com/tern-im/tern/routing"
)

var (
	// ErrClosed is returned by Publish and Attach after Close.
	ErrClosed = errors.New("rabbitmq: router closed")
	// ErrNotConnected is returned by Publish while the node has no working
	// link to the broker. The envelope was not routed; whether the device
	// is online is unknown.
	ErrNotConnected = errors.New("rabbitmq: not connected to the broker")
	// ErrNacked is returned by Publish when the broker refused the message.
	ErrNacked = errors.New("rabbitmq: broker nacked the envelope")
)

// Router is one node's routing.Router over RabbitMQ.
type Router struct {
	cfg Config
	log *slog.Logger

	// sem holds one token per publish awaiting its confirm.
	sem chan struct{}
	// topo serializes binding changes (attach, detach, rebind), so that
	// the broker's bindings always converge on the devices attached here.
	topo chan struct{}

	quit      <-chan struct{} // closed by Close
	stop      context.CancelFunc
	done      chan struct{} // closed when the supervisor has torn everything down
	closeOnce sync.Once

	mu      sync.RWMutex
	closed  bool
	link    *link // nil while disconnected
	devices map[string]*device
	// onBroadcast receives what is published to broadcastKey.
	onBroadcast func(routing.Envelope)
}

// broadcastKey is the routing key every node's queue is bound to, besides
// its devices': a publish to it reaches all nodes. A device id has no dot.
const broadcastKey = ".all"

// Broadcast implements routing.Broadcaster: one publish, to every node's
// queue. It returns when the broker confirmed it.
func (r *Router) Broadcast(ctx context.Context, env routing.Envelope) error {
	return r.Publish(ctx, broadcastKey, env)
}

// OnBroadcast implements routing.Broadcaster.
func (r *Router) OnBroadcast(fn func(routing.Envelope)) {
	r.mu.Lock()
	r.onBroadcast = fn
	r.mu.Unlock()
}

// device is what this node knows of one device id.
type device struct {
	cur   *slot // the attached handler; nil once detached
	bound *link // the link whose queue has the device's binding, if any
}

// slot is one Attach. Its mutex serializes the handler's calls and lets
// detach wait out a delivery under way, so that none follows it.
type slot struct {
	mu   sync.Mutex
	h    routing.Handler
	gone bool
}

func (s *slot) deliver(env routing.Envelope) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gone {
		s.h.Deliver(env)
	}
}

func (s *slot) resync() {
	s.mu.Lock()
	defer s.mu.Unlock()
	if !s.gone {
		s.h.Resync()
	}
}

// New connects to the broker and returns a router. It fails when the first
// connection fails, so that a misconfigured node does not start; later
// failures are retried in the background. ctx bounds the first connection
// only.
func New(ctx context.Context, cfg Config) (*Router, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	runCtx, stop := context.WithCancel(context.Background())
	r := &Router{
		cfg:     cfg,
		log:     cfg.Log.With("component", "routing"),
		sem:     make(chan struct{}, cfg.MaxInFlight),
		topo:    make(chan struct{}, 1),
		quit:    runCtx.Done(),
		stop:    stop,
		done:    make(chan struct{}),
		devices: make(map[string]*device),
	}
	l, err := r.establish(ctx)
	if err != nil {
		stop()
		return nil, fmt.Errorf("rabbitmq: connect to %s: %w", redact(cfg.URL), err)
	}
	r.log.Info("connected to broker", "url", redact(cfg.URL), "queue", l.queue)
	go r.run(runCtx, l)
	return r, nil
}

// Attach implements routing.Router. When connected it returns once the
// device's binding exists; when not, it records the device, which is bound
// on reconnection. It fails only when ctx ends first or the router is
// closed.
func (r *Router) Attach(ctx context.Context, deviceID string, h routing.Handler) (func(), error) {
	if h == nil {
		return nil, errors.New("rabbitmq: attach: nil handler")
	}
	if len(deviceID) > maxKey {
		// The broker would close the channel over it, and every rebind
		// after, leaving the whole node unroutable.
		return nil, fmt.Errorf("rabbitmq: attach: device id of %d bytes, at most %d", len(deviceID), maxKey)
	}
	s := &slot{h: h}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	d := r.devices[deviceID]
	if d == nil {
		d = &device{}
		r.devices[deviceID] = d
	}
	d.cur = s
	r.mu.Unlock()

	if err := r.bind(ctx, deviceID); err != nil {
		r.detach(deviceID, s)
		return nil, err
	}
	var once sync.Once
	return func() { once.Do(func() { r.detach(deviceID, s) }) }, nil
}

// bind makes the broker route deviceID to this node's queue, unless it
// already does or there is no link (establish binds it then).
func (r *Router) bind(ctx context.Context, deviceID string) error {
	select {
	case r.topo <- struct{}{}:
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: attach %s: %w", deviceID, ctx.Err())
	case <-r.quit:
		return ErrClosed
	}
	defer func() { <-r.topo }()

	r.mu.RLock()
	d, l := r.devices[deviceID], r.link
	need := d != nil && d.cur != nil && l != nil && d.bound != l
	r.mu.RUnlock()
	if !need {
		return nil
	}
	if err := l.ctl.QueueBind(l.queue, deviceID, r.cfg.Exchange, false, nil); err != nil {
		// The channel is closed after a failed bind: the link is unusable.
		// The next one rebinds every attached device, this one included,
		// so the attach itself succeeds.
		r.log.Warn("bind failed; reconnecting", "device", deviceID, "err", err)
		l.fail(fmt.Errorf("bind %s: %w", deviceID, err))
		return nil
	}
	r.mu.Lock()
	if d := r.devices[deviceID]; d != nil {
		d.bound = l
	}
	r.mu.Unlock()
	return nil
}

// detach ends one Attach. Once the slot is gone no delivery can start, and
// one under way has finished (it holds the slot's mutex).
func (r *Router) detach(deviceID string, s *slot) {
	s.mu.Lock()
	s.gone = true
	s.mu.Unlock()

	r.mu.Lock()
	d := r.devices[deviceID]
	if d == nil || d.cur != s {
		// Replaced by a later Attach, which keeps the binding.
		r.mu.Unlock()
		return
	}
	d.cur = nil
	r.mu.Unlock()
	r.unbind(deviceID)
}

// unbind removes deviceID's binding unless the device was attached again
// meanwhile, and forgets the device.
func (r *Router) unbind(deviceID string) {
	select {
	case r.topo <- struct{}{}:
	case <-r.quit:
		// Close deletes the queue with every binding on it.
		return
	}
	defer func() { <-r.topo }()

	r.mu.Lock()
	d, l := r.devices[deviceID], r.link
	if d == nil || d.cur != nil {
		r.mu.Unlock()
		return
	}
	if d.bound == nil || d.bound != l {
		// Not bound, or bound on a dead link's queue, gone with it.
		delete(r.devices, deviceID)
		r.mu.Unlock()
		return
	}
	r.mu.Unlock()

	if err := l.ctl.QueueUnbind(l.queue, deviceID, r.cfg.Exchange, nil); err != nil {
		// The link's queue goes with the link, and with it the binding;
		// the next link binds only attached devices.
		r.log.Warn("unbind failed; reconnecting", "device", deviceID, "err", err)
		l.fail(fmt.Errorf("unbind %s: %w", deviceID, err))
	}
	r.mu.Lock()
	if d := r.devices[deviceID]; d != nil {
		d.bound = nil
		if d.cur == nil {
			delete(r.devices, deviceID)
		}
	}
	r.mu.Unlock()
}

// Publish implements routing.Router: nil when at least one node's queue
// took the envelope, routing.ErrNoRoute when no node holds the device, and
// another error (ErrNotConnected, ErrBlocked, ErrClosed, ErrNacked, a
// context error) when it is not known.
func (r *Router) Publish(ctx context.Context, deviceID string, env routing.Envelope) error {
	l, err := r.usable()
	if err != nil {
		return err
	}
	expired, stop := r.deadline()
	defer stop()
	p, err := r.start(ctx, l, deviceID, env, expired)
	if err != nil || p == nil {
		return err
	}
	return r.wait(ctx, p, deviceID, expired)
}

// PublishBatch implements routing.Batcher: it publishes every target before
// it waits for the first confirm, so a fan-out costs one round trip to the
// broker, not one per device. Envelopes to one device keep their order (one
// channel, one queue per node). All of them share one Config.PublishTimeout.
func (r *Router) PublishBatch(ctx context.Context, targets []routing.Target, errs []error) {
	l, err := r.usable()
	if err != nil {
		for i := range targets {
			errs[i] = err
		}
		return
	}
	expired, stop := r.deadline()
	defer stop()
	ps := make([]*pending, len(targets))
	for i, t := range targets {
		ps[i], errs[i] = r.start(ctx, l, t.DeviceID, t.Env, expired)
	}
	for i, p := range ps {
		if p != nil {
			errs[i] = r.wait(ctx, p, targets[i].DeviceID, expired)
		}
	}
}

// usable returns the link to publish on, or why there is none.
func (r *Router) usable() (*link, error) {
	r.mu.RLock()
	closed, l := r.closed, r.link
	r.mu.RUnlock()
	switch {
	case closed:
		return nil, ErrClosed
	case l == nil:
		return nil, ErrNotConnected
	case l.blocked.Load():
		return nil, ErrBlocked
	}
	return l, nil
}

// deadline returns a channel closed after Config.PublishTimeout (closed, so
// that every publish of a batch sees it) and its stop function.
func (r *Router) deadline() (<-chan struct{}, func() bool) {
	expired := make(chan struct{})
	t := time.AfterFunc(r.cfg.PublishTimeout, func() { close(expired) })
	return expired, t.Stop
}

// start publishes env once there is room among the publishes in flight. A
// nil pending with a nil error never happens; a nil pending comes with the
// error that ends the publish.
func (r *Router) start(ctx context.Context, l *link, deviceID string, env routing.Envelope, expired <-chan struct{}) (*pending, error) {
	if len(deviceID) > maxKey {
		return nil, routing.ErrNoRoute // no node can have attached it
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("rabbitmq: publish to %s: %w", deviceID, err)
	}
	select {
	case r.sem <- struct{}{}:
	case <-ctx.Done():
		return nil, fmt.Errorf("rabbitmq: publish to %s: waiting for room: %w", deviceID, ctx.Err())
	case <-expired:
		return nil, fmt.Errorf("rabbitmq: publish to %s: %d publishes awaiting confirms for %v: %w",
			deviceID, r.cfg.MaxInFlight, r.cfg.PublishTimeout, context.DeadlineExceeded)
	case <-l.down:
		return nil, ErrNotConnected
	case <-r.quit:
		return nil, ErrClosed
	}
	// From here the token is released by whoever settles the publish.
	p, err := l.publish(r.cfg.Exchange, deviceID, encode(env))
	if err != nil {
		return nil, fmt.Errorf("rabbitmq: publish to %s: %w", deviceID, err)
	}
	return p, nil
}

// wait waits for the broker's answer to p.
func (r *Router) wait(ctx context.Context, p *pending, deviceID string, expired <-chan struct{}) error {
	select {
	case <-p.done:
		return p.err
	case <-ctx.Done():
		return fmt.Errorf("rabbitmq: publish to %s: waiting for confirm: %w", deviceID, ctx.Err())
	case <-expired:
		return fmt.Errorf("rabbitmq: publish to %s: no confirm within %v: %w",
			deviceID, r.cfg.PublishTimeout, context.DeadlineExceeded)
	}
}

// Connected reports whether the node has a working link to the broker,
// for readiness and metrics. While it has none, Publish fails with
// ErrNotConnected and attached handlers are resynced periodically.
func (r *Router) Connected() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.link != nil
}

// Blocked reports whether the broker blocks this node's publishing (a
// memory or disk alarm): the link is up, and Publish fails with ErrBlocked.
func (r *Router) Blocked() bool {
	r.mu.RLock()
	defer r.mu.RUnlock()
	return r.link != nil && r.link.blocked.Load()
}

var _ routing.Linked = (*Router)(nil)

// Close implements routing.Router. It returns once every goroutine of the
// router has ended and the node's queue is gone. Later calls do nothing.
func (r *Router) Close() error {
	r.closeOnce.Do(func() {
		r.mu.Lock()
		r.closed = true
		r.mu.Unlock()
		r.stop()
		<-r.done
	})
	return nil
}

// deliver hands an envelope from the queue to the device's handler.
func (r *Router) deliver(deviceID string, env routing.Envelope) {
	if deviceID == broadcastKey {
		r.mu.RLock()
		fn := r.onBroadcast
		r.mu.RUnlock()
		if fn != nil {
			fn(env)
		}
		return
	}
	r.mu.RLock()
	var s *slot
	if d := r.devices[deviceID]; d != nil {
		s = d.cur
	}
	r.mu.RUnlock()
	if s != nil {
		s.deliver(env)
	}
}

// resyncAll tells every attached handler that envelopes may have been lost.
func (r *Router) resyncAll() {
	r.mu.RLock()
	slots := make([]*slot, 0, len(r.devices))
	for _, d := range r.devices {
		if d.cur != nil {
			slots = append(slots, d.cur)
		}
	}
	r.mu.RUnlock()
	for _, s := range slots {
		s.resync()
	}
}

// run supervises the link: when it fails, it resyncs the handlers,
// reconnects with backoff, and resyncs them again. It returns on Close,
// having closed the link.
func (r *Router) run(ctx context.Context, l *link) {
	defer close(r.done)
	for {
		r.superviseLink(ctx, l)
		r.mu.Lock()
		r.link = nil
		r.mu.Unlock()
		closing := ctx.Err() != nil
		l.close(closing)
		if closing {
			r.log.Info("router closed")
			return
		}
		r.log.Warn("broker link lost; reconnecting", "err", l.cause())
		// What was in the lost queue is gone; the inboxes have it.
		r.resyncAll()

		stopPoll := make(chan struct{})
		var poll sync.WaitGroup
		if r.cfg.OutageResync > 0 {
			poll.Go(func() { r.pollDuringOutage(ctx, stopPoll) })
		}
		l = r.reconnect(ctx)
		close(stopPoll)
		poll.Wait()
		if l == nil {
			r.log.Info("router closed")
			return
		}
		r.log.Info("reconnected to broker", "queue", l.queue)
		// Envelopes published while the link was down were not routed.
		r.resyncAll()
	}
}

// superviseLink returns when the link fails or ctx ends. Meanwhile, while
// the broker blocks publishing (a memory or disk alarm), the link is up but
// nothing is routed: it polls as in an outage, and resyncs once more when
// the block lifts (publishes refused meanwhile are in the inboxes).
func (r *Router) superviseLink(ctx context.Context, l *link) {
	var (
		stop chan struct{}
		poll sync.WaitGroup
	)
	endPoll := func() {
		if stop != nil {
			close(stop)
			poll.Wait()
			stop = nil
		}
	}
	defer endPoll()
	for {
		select {
		case <-l.down:
			return
		case <-ctx.Done():
			return
		case <-l.blockChanged:
			blocked := l.blocked.Load()
			switch {
			case blocked && stop == nil:
				r.resyncAll()
				if r.cfg.OutageResync > 0 {
					stop = make(chan struct{})
					s := stop
					poll.Go(func() { r.pollDuringOutage(ctx, s) })
				}
			case !blocked:
				endPoll()
				r.resyncAll()
			}
		}
	}
}

// pollDuringOutage resyncs the handlers until the link is back, standing in
// for the routing that is down.
func (r *Router) pollDuringOutage(ctx context.Context, stop <-chan struct{}) {
	t := time.NewTicker(r.cfg.OutageResync)
	defer t.Stop()
	for {
		select {
		case <-t.C:
			r.resyncAll()
		case <-stop:
			return
		case <-ctx.Done():
			return
		}
	}
}

// reconnect establishes a new link, retrying with backoff; nil means the
// router was closed.
func (r *Router) reconnect(ctx context.Context) *link {
	for attempt := 0; ; attempt++ {
		wait := time.NewTimer(r.backoff(attempt))
		select {
		case <-ctx.Done():
			wait.Stop()
			return nil
		case <-wait.C:
		}
		l, err := r.establish(ctx)
		if err == nil {
			return l
		}
		if ctx.Err() != nil {
			return nil
		}
		r.log.Warn("reconnect failed", "attempt", attempt+1, "err", err)
	}
}

// backoff doubles from ReconnectMin up to ReconnectMax, with jitter so that
// the nodes of a cluster do not all reconnect at the same instant.
func (r *Router) backoff(attempt int) time.Duration {
	d := r.cfg.ReconnectMin
	for i := 0; i < attempt && d < r.cfg.ReconnectMax; i++ {
		d *= 2
	}
	d = min(d, r.cfg.ReconnectMax)
	return d/2 + rand.N(d/2+1)
}
