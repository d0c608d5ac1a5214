package server

import (
	"context"
	"errors"
	"sync"
	"time"

	"github.com/tern-im/tern/chat"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// handleSend stores a message durably (chat.Send routes it before it
// returns), then answers sent.
func (s *Server) handleSend(ctx context.Context, ss *session, f *wire.ClientFrame) error {
	t0 := time.Now()
	res, err := s.chat.Send(ctx, ss.actor(), chat.SendInput{ClientID: f.ID, To: f.To, Body: f.Body, ReplyTo: f.ReplyTo})
	if err != nil {
		return err
	}
	if res.Duplicate {
		s.metrics.duplicates.Inc()
	} else {
		s.metrics.messagesSent.Inc()
		s.stats.sent.Add(1)
	}
	ss.skipOwn(res.SenderCursor)
	ss.queue(sentFrame(f.ID, &res.Message))
	s.metrics.sendSeconds.Observe(time.Since(t0).Seconds())
	return nil
}

func (s *Server) handleRead(ctx context.Context, ss *session, f *wire.ClientFrame) error {
	n, err := s.chat.Read(ctx, ss.actor(), f.ChatID, f.Seq)
	s.metrics.receipts.WithLabelValues(store.StatusRead).Add(float64(n))
	return err
}

func (s *Server) handleTyping(ctx context.Context, ss *session, f *wire.ClientFrame) error {
	return s.chat.Typing(ctx, ss.actor(), f.ChatID, f.State)
}

// dispatcher is the chat.Dispatcher of a node: it renders stored events,
// publishes them through the router and wakes the devices nobody holds.
type dispatcher struct{ s *Server }

func (d dispatcher) Dispatch(ctx context.Context, ds []store.Delivery, g *store.Group) {
	d.s.dispatch(ctx, ds, g)
}

// Poke makes the holders of users' devices re-read their inboxes: one
// broadcast when the router can, else a poke per device (but except) as
// one batch, with the devices whose poke could not be published left to
// the repair list.
func (d dispatcher) Poke(ctx context.Context, users []string, except string) {
	if b, ok := d.s.router.(routing.Broadcaster); ok {
		err := b.Broadcast(ctx, routing.Envelope{Kind: routing.KindPokeUsers, Users: users})
		if err == nil {
			return
		}
		d.s.log.Debug("poke: broadcast failed, poking each device", "err", err)
	}
	var targets []routing.Target
	for _, uid := range users {
		ds, err := d.s.st.UserDevices(ctx, uid)
		if err != nil {
			d.s.log.Warn("poke: listing devices failed", "user", uid, "err", err)
			continue
		}
		for _, dev := range ds {
			if dev.ID != except {
				targets = append(targets, routing.Target{DeviceID: dev.ID, Env: routing.Envelope{Kind: routing.KindPoke}})
			}
		}
	}
	for i, err := range routing.PublishAll(ctx, d.s.router, targets) {
		if err != nil && !errors.Is(err, routing.ErrNoRoute) {
			d.s.repair.add(targets[i].DeviceID)
		}
	}
}

// Typing hands frame to every device of users: one broadcast to all nodes
// when the router can (each node looks up its own sessions of users), one
// publish per device, as one batch, otherwise.
func (d dispatcher) Typing(ctx context.Context, users []string, frame []byte) {
	if b, ok := d.s.router.(routing.Broadcaster); ok {
		// Ephemeral: a node that misses it just shows no typing.
		if err := b.Broadcast(ctx, routing.Envelope{Kind: routing.KindUsers, Frame: frame, Users: users}); err != nil {
			d.s.log.Debug("typing: broadcast failed", "err", err)
		}
		return
	}
	var targets []routing.Target
	for _, uid := range users {
		ds, err := d.s.st.UserDevices(ctx, uid)
		if err != nil {
			d.s.log.Warn("typing: listing devices failed", "user", uid, "err", err)
			continue
		}
		for _, dev := range ds {
			targets = append(targets, routing.Target{DeviceID: dev.ID, Env: routing.Envelope{Kind: routing.KindFrame, Frame: frame}})
		}
	}
	// Typing is ephemeral: offline devices simply miss it.
	_ = routing.PublishAll(ctx, d.s.router, targets)
}

// dispatch publishes stored inbox events to the nodes holding their
// devices, as one batch, then queues a push for each device that no node
// holds. g, if set, is the group of group-change events.
func (s *Server) dispatch(ctx context.Context, ds []store.Delivery, g *store.Group) {
	s.settle(ds, s.publish(ctx, ds, g))
}

// publish routes stored inbox events to the nodes holding their devices and
// returns each one's outcome.
func (s *Server) publish(ctx context.Context, ds []store.Delivery, g *store.Group) []error {
	if len(ds) == 0 {
		return nil
	}
	// All deliveries of one call share the rendering of their content.
	var tails map[any][]byte
	targets := make([]routing.Target, len(ds))
	for i := range ds {
		ev := &ds[i].Event
		var key any
		var typ string
		switch {
		case ev.Kind == store.EventGroup && ev.Message != nil:
			key, typ = ev.Message, wire.TypeGroup
		case ev.Message != nil:
			key, typ = ev.Message.ID, wire.TypeMessage
		case ev.Receipt != nil:
			key, typ = ev.Receipt, wire.TypeReceipt
		}
		var frame []byte
		if key != nil {
			if tails == nil {
				tails = make(map[any][]byte, 2)
			}
			tail, ok := tails[key]
			if !ok {
				switch typ {
				case wire.TypeGroup:
					gr := g
					if gr == nil || gr.ChatID != ev.Message.ChatID {
						// Completed for another write: show the group as
						// it is now rather than none.
						gr = s.currentGroup(ctx, ev.Message.ChatID)
					}
					tail = groupTail(ev.Message, gr)
				case wire.TypeMessage:
					tail = messageTail(ev.Message)
				default:
					tail = receiptTail(ev.Receipt)
				}
				tails[key] = tail
			}
			frame = eventFrame(typ, ev.Cursor, tail)
		} else {
			frame = renderEvent(ev, nil)
		}
		targets[i] = routing.Target{DeviceID: ds[i].DeviceID, Env: routing.Envelope{Kind: routing.KindEvent, Cursor: ev.Cursor, Frame: frame}}
	}
	// One batch: over a broker, a fan-out waits for its confirms together.
	t0 := time.Now()
	errs := routing.PublishAll(ctx, s.router, targets)
	s.metrics.routeSeconds.Observe(time.Since(t0).Seconds())
	return errs
}

// settle does what a publish leaves to do: wake the devices nobody holds
// and remember the ones whose publish failed, to poke them later. Wakes go
// to the push queue: reading device records and calling a push service
// never holds up the sender.
func (s *Server) settle(ds []store.Delivery, errs []error) {
	for i, err := range errs {
		ev := &ds[i].Event
		switch {
		case err == nil:
			s.metrics.routed.WithLabelValues("routed").Inc()
		case errors.Is(err, routing.ErrNoRoute):
			s.metrics.routed.WithLabelValues("offline").Inc()
			if s.isBizDevice(ds[i].DeviceID) {
				s.wakeWebhooks(ds[i].DeviceID)
			} else if ev.Kind == store.EventMessage && ev.Message != nil {
				s.wakes.add(s.wakeFor(ds[i].DeviceID, ev.Message, false))
			}
		default:
			// The event is in the inbox; the device gets it on its next
			// inbox read (reconnect or resync). Wake it unless it is here:
			// during a broker outage an extra push beats a silent phone.
			s.metrics.routed.WithLabelValues("error").Inc()
			s.log.Warn("publish failed", "device", ds[i].DeviceID, "err", err)
			s.repair.add(ds[i].DeviceID)
			if ev.Kind == store.EventMessage && ev.Message != nil && !s.isBizDevice(ds[i].DeviceID) {
				s.wakes.add(s.wakeFor(ds[i].DeviceID, ev.Message, true))
			}
		}
	}
}

// bucket is a token bucket of one device's frames of one kind.
type bucket struct {
	mu     sync.Mutex
	rate   float64 // tokens per second
	burst  float64
	tokens float64
	last   time.Time
}

func newBucket(rate float64, burst int) bucket {
	return bucket{rate: rate, burst: float64(burst), tokens: float64(burst)}
}

// fill sets the bucket to what idle time earned it, from now on.
func (b *bucket) fill(idle time.Duration, now time.Time) {
	b.mu.Lock()
	defer b.mu.Unlock()
	b.tokens = b.burst
	if b.rate > 0 && idle.Seconds()*b.rate < b.burst {
		b.tokens = idle.Seconds() * b.rate
	}
	b.last = now
}

// take spends one token, or returns how long until one is available.
func (b *bucket) take(now time.Time) time.Duration {
	b.mu.Lock()
	defer b.mu.Unlock()
	if !b.last.IsZero() {
		b.tokens = min(b.burst, b.tokens+now.Sub(b.last).Seconds()*b.rate)
	}
	b.last = now
	if b.tokens >= 1 {
		b.tokens--
		return 0
	}
	return time.Duration((1 - b.tokens) / b.rate * float64(time.Second))
}

// poke asks the node holding device to re-read its inbox; a device nobody
// holds reads it when it connects.
func (s *Server) poke(ctx context.Context, device string) {
	err := s.router.Publish(ctx, device, routing.Envelope{Kind: routing.KindPoke})
	if err != nil && !errors.Is(err, routing.ErrNoRoute) {
		s.repair.add(device)
	}
}

// maxRepairs bounds the devices waiting for a poke; past it the oldest
// unrepaired ones get their events on reconnect only.
const maxRepairs = 100_000

// repairs remembers devices whose event could not be published (the broker
// link was down), so that they are poked once it is back: otherwise a
// connected device would not see its last event until its next one or a
// reconnect. The holder's own resync does not cover it when the failure
// was on the publishing node's link.
type repairs struct {
	mu      sync.Mutex
	devices map[string]struct{}
}

func (r *repairs) add(device string) {
	r.mu.Lock()
	if r.devices == nil {
		r.devices = make(map[string]struct{})
	}
	if len(r.devices) < maxRepairs {
		r.devices[device] = struct{}{}
	}
	r.mu.Unlock()
}

func (r *repairs) take() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	out := make([]string, 0, len(r.devices))
	for d := range r.devices {
		out = append(out, d)
	}
	clear(r.devices)
	return out
}

// every runs fn every interval until the node stops.
func (s *Server) every(interval time.Duration, fn func(now time.Time)) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		select {
		case <-s.ctx.Done():
			return
		case now := <-t.C:
			fn(now)
		}
	}
}

// repairDevices pokes the devices whose publish failed, until the router
// takes the poke (or says nobody holds the device).
func (s *Server) repairDevices() {
	for _, d := range s.repair.take() {
		s.poke(s.ctx, d)
	}
}

// inboxCheckBatch is how many devices one Heads call asks about.
const inboxCheckBatch = 500

// checkInboxes reads the inbox heads of this node's sessions' devices and
// resyncs each session whose inbox holds more than it sent. Routing is a
// fast path: an event whose publish never happened (its node died between
// the store and the broker, or its publish failed and the node died before
// the repair) would otherwise wait for the device's next event or
// reconnect. Sessions that received an event within half an interval are
// left for the next check: their next event is most likely on its way. A
// session idle until an event was stored a moment ago reads its inbox once
// more than needed: harmless, and rare.
func (s *Server) checkInboxes(ctx context.Context, budget time.Duration) {
	s.mu.Lock()
	all := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for len(all) > 0 {
		batch := all[:min(len(all), inboxCheckBatch)]
		all = all[len(batch):]
		ids := make([]string, len(batch))
		for i, ss := range batch {
			ids[i] = ss.deviceID
		}
		cctx, cancel := context.WithTimeout(ctx, budget)
		heads, err := s.st.Heads(cctx, ids)
		cancel()
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("inbox check failed", "err", err)
			}
			return
		}
		for _, ss := range batch {
			if ss.behindInbox(heads[ss.deviceID], budget/2) {
				s.metrics.caughtUp.Inc()
				s.log.Info("inbox check: session behind its inbox, resyncing", "device", ss.deviceID, "head", heads[ss.deviceID])
			}
		}
	}
}

// currentGroup reads a group to render its events; nil if it cannot.
func (s *Server) currentGroup(ctx context.Context, chatID string) *store.Group {
	g, err := s.st.Group(ctx, chatID)
	if err != nil {
		if !errors.Is(err, store.ErrNotFound) {
			s.log.Warn("reading a group for its event failed", "chat", chatID, "err", err)
		}
		return nil
	}
	return &g
}
