package server

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"sync"
	"time"

	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// handleSend stores a message durably, answers sent, then routes it.
func (s *Server) handleSend(ctx context.Context, ss *session, f *wire.ClientFrame) error {
	t0 := time.Now()
	if f.Body.Len() > s.cfg.MaxTextBytes {
		return wire.Errorf(wire.CodeTooLarge, "message text over %d bytes", s.cfg.MaxTextBytes)
	}
	if len(f.To) < 2 || f.To[:1] != store.PrefixUser {
		if len(f.To) > 1 && f.To[:1] == store.PrefixGroup {
			return wire.Errorf(wire.CodeNotFound, "no such group")
		}
		return wire.Errorf(wire.CodeNotFound, "no such user or group")
	}
	if _, err := s.st.User(ctx, f.To); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.CodeNotFound, "no such user")
		}
		return err
	}
	members := []string{ss.userID, f.To}
	if f.To == ss.userID {
		members = members[:1]
	}
	devices := make(map[string]store.Device, 4)
	var targets []string
	for _, uid := range members {
		ds, err := s.st.UserDevices(ctx, uid)
		if err != nil {
			return err
		}
		for _, d := range ds {
			if d.ID == ss.deviceID {
				continue
			}
			devices[d.ID] = d
			targets = append(targets, d.ID)
		}
	}
	body, err := json.Marshal(f.Body)
	if err != nil {
		return err
	}
	if f.Body.MediaID != "" {
		// No media exists on this version: an id would reference nothing,
		// and the message would promise its readers a file nobody can get.
		return wire.Errorf(wire.CodeUnsupported, "media is not available on this server version")
	}
	chatID := store.DirectChatID(ss.userID, f.To)
	if f.ReplyTo != "" {
		// A reply quotes a message of its own chat, or none: an id from
		// elsewhere would show others a quote of what they cannot see.
		if _, err := s.st.Message(ctx, chatID, f.ReplyTo); errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.CodeNotFound, "reply_to: no message %s in this chat", f.ReplyTo)
		} else if err != nil {
			return err
		}
	}
	req := store.SendRequest{
		ClientID: f.ID,
		Message: store.Message{
			ID:         store.NewID(store.PrefixMessage),
			ChatID:     chatID,
			From:       ss.userID,
			FromDevice: ss.deviceID,
			TS:         t0.UnixMilli(),
			Body:       body,
			ReplyTo:    f.ReplyTo,
		},
		Kind:    wire.KindDirect,
		Members: members,
		Devices: targets,
	}
	t1 := time.Now()
	res, err := s.st.Send(ctx, req)
	s.metrics.storeSeconds.WithLabelValues("send").Observe(time.Since(t1).Seconds())
	if err != nil {
		// Events it placed to complete another send are stored: route them.
		s.dispatch(ctx, res.Deliveries, devices)
		return err
	}
	if res.Duplicate && (res.Message.ChatID != chatID || !bytes.Equal(res.Message.Body, body) || res.Message.ReplyTo != f.ReplyTo) {
		// The id was the key of another message: answering that one's
		// sent would tell the client this one is stored.
		s.dispatch(ctx, res.Deliveries, devices)
		return wire.Errorf(wire.CodeConflict, "id %q was used for another message (recipient, body or reply differ); use a new id", f.ID)
	}
	// Routed before the answer: once the client has sent, it will not
	// write the send again, so a node that died between the answer and the
	// publish would leave a connected recipient waiting for its next event.
	// The other way round, a node that dies before answering is asked
	// again, and the duplicate pokes the targets (below).
	errs := s.publish(ctx, res.Deliveries)
	if res.Duplicate {
		// A resend usually means the first attempt's answer was lost, maybe
		// with the node that stored it before it published: poke the
		// targets so that their holders read the inbox.
		s.metrics.duplicates.Inc()
		for _, d := range targets {
			s.poke(ctx, d)
		}
	} else {
		s.metrics.messagesSent.Inc()
	}
	ss.queue(sentFrame(f.ID, &res.Message))
	s.metrics.sendSeconds.Observe(time.Since(t0).Seconds())
	s.settle(ctx, res.Deliveries, errs, devices)
	return nil
}

// dispatch publishes stored inbox events to the nodes holding their devices.
// Devices nobody holds are woken by push when devices (their records) are
// known; receipts never wake a device.
func (s *Server) dispatch(ctx context.Context, ds []store.Delivery, devices map[string]store.Device) {
	s.settle(ctx, ds, s.publish(ctx, ds), devices)
}

// publish routes stored inbox events to the nodes holding their devices and
// returns each one's outcome.
func (s *Server) publish(ctx context.Context, ds []store.Delivery) []error {
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
				if ev.Message != nil {
					tail = messageTail(ev.Message)
				} else {
					tail = receiptTail(ev.Receipt)
				}
				tails[key] = tail
			}
			frame = eventFrame(typ, ev.Cursor, tail)
		} else {
			frame = renderEvent(ev)
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
// and remember the ones whose publish failed, to poke them later.
func (s *Server) settle(ctx context.Context, ds []store.Delivery, errs []error, devices map[string]store.Device) {
	for i, err := range errs {
		ev := &ds[i].Event
		switch {
		case err == nil:
			s.metrics.routed.WithLabelValues("routed").Inc()
		case errors.Is(err, routing.ErrNoRoute):
			s.metrics.routed.WithLabelValues("offline").Inc()
			if d, ok := devices[ds[i].DeviceID]; ok && ev.Message != nil {
				s.wake(ctx, d, ev)
			}
		default:
			// The event is in the inbox; the device gets it on its next
			// inbox read (reconnect or resync). Wake it unless it is here:
			// during a broker outage an extra push beats a silent phone.
			s.metrics.routed.WithLabelValues("error").Inc()
			s.log.Warn("publish failed", "device", ds[i].DeviceID, "err", err)
			s.repair.add(ds[i].DeviceID)
			if d, ok := devices[ds[i].DeviceID]; ok && ev.Message != nil && !s.online(d.ID) {
				s.wake(ctx, d, ev)
			}
		}
	}
}

func (s *Server) wake(ctx context.Context, d store.Device, ev *store.Event) {
	err := s.push.Notify(ctx, push.Notification{UserID: d.UserID, DeviceID: d.ID,
		Provider: d.PushProvider, Token: d.PushToken, Kind: ev.Kind, ChatID: ev.Message.ChatID})
	if err != nil {
		s.metrics.pushes.WithLabelValues("error").Inc()
		s.log.Warn("push failed", "device", d.ID, "err", err)
		return
	}
	s.metrics.pushes.WithLabelValues("ok").Inc()
}

// chatMembers returns the members of a chat the user may act in, or
// forbidden / not_found. Direct chats are known from their id alone, so a
// user may type in one before its first message.
func (s *Server) chatMembers(ctx context.Context, userID, chatID string) ([]string, error) {
	if a, b, ok := store.DirectChatMembers(chatID); ok {
		if userID != a && userID != b {
			return nil, wire.Errorf(wire.CodeForbidden, "not a member of this chat")
		}
		if a == b {
			return []string{a}, nil
		}
		return []string{a, b}, nil
	}
	c, err := s.st.Chat(ctx, chatID)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return nil, wire.Errorf(wire.CodeNotFound, "no such chat")
		}
		return nil, err
	}
	if !c.HasMember(userID) {
		return nil, wire.Errorf(wire.CodeForbidden, "not a member of this chat")
	}
	return c.Members, nil
}

func (s *Server) handleRead(ctx context.Context, ss *session, f *wire.ClientFrame) error {
	if _, err := s.chatMembers(ctx, ss.userID, f.ChatID); err != nil {
		return err
	}
	u, err := s.st.User(ctx, ss.userID)
	if err != nil {
		return err
	}
	ds, err := s.st.MarkRead(ctx, ss.userID, f.ChatID, f.Seq, time.Now().UnixMilli(), !u.HideReadReceipts)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.CodeNotFound, "no such chat")
		}
		return err
	}
	s.metrics.receipts.WithLabelValues(store.StatusRead).Add(float64(len(ds)))
	s.dispatch(ctx, ds, nil)
	return nil
}

func (s *Server) handleTyping(ctx context.Context, ss *session, f *wire.ClientFrame) error {
	// Only into a chat that exists: a direct chat id names its members,
	// but before its first message nobody asked to hear from the other.
	if _, err := s.chatMembers(ctx, ss.userID, f.ChatID); err != nil {
		return err
	}
	c, err := s.st.Chat(ctx, f.ChatID)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Errorf(wire.CodeNotFound, "no such chat")
	}
	if err != nil {
		return err
	}
	members := c.Members
	frame := marshalFrame(wire.Typing{Type: wire.TypeTyping, ChatID: f.ChatID, From: ss.userID, State: f.State})
	for _, uid := range members {
		if uid == ss.userID {
			continue
		}
		ds, err := s.st.UserDevices(ctx, uid)
		if err != nil {
			return err
		}
		for _, d := range ds {
			// Typing is ephemeral: offline devices simply miss it.
			_ = s.router.Publish(ctx, d.ID, routing.Envelope{Kind: routing.KindFrame, Frame: frame})
		}
	}
	return nil
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
