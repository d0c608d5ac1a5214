package server

import (
	"cmp"
	"context"
	"errors"
	"io"
	"net/http"
	"slices"
	"strings"
	"sync"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tern-im/tern/chat"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

const websocketGoingAway = wire.CloseGoingAway

// hardFrameLimit is where a socket stops discarding oversized frames and
// closes with 1009: below it the frame is skipped and answered too_large.
const hardFrameFactor = 16

// inboxPage is how many events one inbox read fetches at most.
const inboxPage = 256

// session is one device's socket on this node.
type session struct {
	srv      *Server
	id       string // tells this connection apart from others of the device
	seq      uint64 // order of the socket's request on this node (Server.upgrades)
	conn     *websocket.Conn
	cork     *corkConn // conn's socket, for writing a batch of frames at once
	userID   string
	deviceID string
	budget   *budgets // the device's frame budgets, set before the read loop
	// expires is when the access token the socket was opened with
	// expires (on the auth clock): the socket closes then with 4401, and
	// the client reconnects with a refreshed token, so that a session
	// never outlives the token that opened it.
	expires time.Time

	mu       sync.Mutex
	out      [][]byte // frames waiting for the writer
	spare    [][]byte
	writing  bool // a writer goroutine is running
	closed   bool
	lastSent int64 // highest cursor queued to the socket
	// lastAcked is the highest cursor the device acked (or that was gone
	// from the inbox when the session started); -1 before the first read.
	lastAcked int64
	// inflight holds the cursors queued to the socket and not acked yet, in
	// order: the window counts events, not cursors, because an inbox a
	// device shares with its user's other devices has cursors that are
	// not for it (its own messages).
	inflight []int64
	ackWant  int64 // highest ack received, applied by ackLoop
	acking   bool  // an ackLoop is running
	pumping  bool  // an inbox read is running
	repump   bool  // something arrived during the read: read again
	behind   bool  // the window was full when events arrived
	// lastEventAt is when the last inbox event was queued, so that the
	// inbox check leaves sessions alone whose events are flowing.
	lastEventAt time.Time
	// held keeps routed events that came out of order (a later store
	// round's publish overtook an earlier one's) or during an inbox read,
	// in cursor order, so that the missing one can fill the gap instead of
	// every gap costing an inbox read. gapArmed: a timer will read the
	// inbox if the gap stays open (Config.GapWait).
	held     []heldEvent
	gapArmed bool
	// follows is what the device asked presence of (presence_sub),
	// guarded by the presence hub's mutex.
	follows []string
}

// heldEvent is a routed event waiting for the ones before it.
type heldEvent struct {
	cursor int64
	frame  []byte
}

// holdMax bounds the events a session holds; past it, it reads the inbox.
const holdMax = 64

// serveWS upgrades an authenticated request and starts the session.
func (s *Server) serveWS(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		s.metrics.wsRejected.WithLabelValues("draining").Inc()
		writeError(w, wire.Errorf(wire.CodeUnavailable, "node is draining, connect to another"))
		return
	}
	if !s.originAllowed(r) {
		s.metrics.wsRejected.WithLabelValues("origin").Inc()
		writeError(w, wire.Errorf(wire.CodeForbidden, "origin %q may not open a socket here", r.Header.Get("Origin")))
		return
	}
	token, proto := wsToken(r)
	if token == "" {
		s.metrics.wsRejected.WithLabelValues("unauthorized").Inc()
		writeError(w, wire.Errorf(wire.CodeUnauthorized,
			"missing access token: send it as Authorization: Bearer <token>, or (browsers) as the subprotocol bearer.<token>"))
		return
	}
	claims, err := s.auth.Authenticate(r.Context(), token)
	if err != nil {
		s.metrics.wsRejected.WithLabelValues("unauthorized").Inc()
		s.writeErr(w, r, err)
		return
	}
	var hdr http.Header
	if proto != "" {
		hdr = http.Header{"Sec-Websocket-Protocol": {proto}}
	}
	// Numbered before the upgrade answers: see Server.upgrades.
	seq := s.upgrades.Add(1)
	cw := &corkWriter{ResponseWriter: w, pool: &s.corkBuffers, closeWait: s.cfg.WriteTimeout}
	conn, err := s.upgrader.Upgrade(cw, r, hdr)
	if err != nil {
		s.metrics.wsRejected.WithLabelValues("handshake").Inc()
		return // the upgrader has answered
	}
	ss := &session{srv: s, conn: conn, cork: cw.conn, id: store.NewID("s"), userID: claims.UserID, deviceID: claims.DeviceID,
		expires:   claims.Expires,
		lastAcked: -1, pumping: true, seq: seq}
	ip := clientIP(r, s.cfg.TrustProxy)
	// Admitted under s.mu, so that no session is counted in s.wg once
	// Shutdown (which sets draining under s.mu) has begun waiting on it.
	s.mu.Lock()
	if s.draining.Load() {
		s.mu.Unlock()
		s.metrics.wsRejected.WithLabelValues("draining").Inc()
		_ = conn.WriteControl(websocket.CloseMessage,
			websocket.FormatCloseMessage(websocketGoingAway, "node is draining, reconnect"), time.Now().Add(time.Second))
		_ = conn.Close()
		return
	}
	s.wg.Add(1)
	s.mu.Unlock()
	s.metrics.connections.Inc()
	// The session runs on a fresh goroutine and the handler returns: that
	// releases net/http's per-connection state (request, response writer,
	// its buffers) and the handler's deep stack, which would otherwise be
	// held for the life of every idle socket.
	go func() {
		defer s.wg.Done()
		defer s.metrics.connections.Dec()
		s.run(ss, ip)
	}()
}

// wsToken finds the access token: Authorization header, then the
// access_token query parameter, then a "bearer.<token>" subprotocol (the
// only header a browser's WebSocket can set). proto is the subprotocol to
// echo, which browsers require when they offered one.
func wsToken(r *http.Request) (token, proto string) {
	if h := r.Header.Get("Authorization"); len(h) > 7 && strings.EqualFold(h[:7], "bearer ") {
		token = strings.TrimSpace(h[7:])
	} else if q := r.URL.Query().Get("access_token"); q != "" {
		token = q
	}
	for _, p := range websocket.Subprotocols(r) {
		switch {
		case p == "tern.v1":
			proto = p
		case strings.HasPrefix(p, "bearer."):
			if token == "" {
				token = p[len("bearer."):]
			}
			if proto == "" {
				proto = p
			}
		}
	}
	return token, proto
}

func (s *Server) run(ss *session, ip string) {
	log := s.log.With("device", ss.deviceID, "user", ss.userID)
	old, refuse, why := s.attach(ss)
	if refuse != 0 {
		ss.close(refuse, why)
		return
	}
	if old != nil {
		old.close(wire.CloseReplaced, "device connected again")
	}
	s.cancelPush(ss.deviceID) // it will read its inbox: no wake, and the next miss is news
	// A connection of this device on another node is replaced too.
	err := s.router.Publish(s.ctx, ss.deviceID, routing.Envelope{Kind: routing.KindReplace, Frame: replaceNotice(s.cfg.NodeID, ss.id)})
	if err != nil && !errors.Is(err, routing.ErrNoRoute) {
		log.Warn("replace publish failed", "err", err)
	}
	detach, err := s.router.Attach(s.ctx, ss.deviceID, ss)
	if err != nil {
		log.Error("router attach failed", "err", err)
		ss.close(websocketGoingAway, "routing unavailable, reconnect")
		s.detach(ss)
		return
	}
	// A revoke published between the token check and the attach found no
	// route; the device record, deleted before the revoke is published,
	// tells.
	dev, err := s.st.Device(s.ctx, ss.deviceID)
	if errors.Is(err, store.ErrNotFound) {
		ss.close(wire.CloseUnauthorized, "device signed out")
		detach()
		s.detach(ss)
		return
	}
	now := time.Now()
	lastOnline := dev.LastSeen
	if !lastOnline.After(dev.CreatedAt) {
		lastOnline = time.Time{} // never connected: it spent nothing
	}
	ss.budget = s.limits.acquire(ss.deviceID, lastOnline, now)
	defer func() { s.limits.release(ss.deviceID, ss.budget, time.Now()) }()
	// Online from now: a node this device connects to next starts its
	// budgets from this moment, not from its last disconnect. Best effort.
	if err := s.st.TouchDevice(s.ctx, ss.deviceID, now); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Warn("touch device failed", "err", err)
	}
	log.Info("connected", "ip", ip)
	s.presence.connected(ss.userID)
	started := time.Now()
	expiry := time.AfterFunc(ss.expires.Sub(s.now()), func() {
		ss.close(wire.CloseUnauthorized, "access token expired: refresh it and connect again")
	})
	defer expiry.Stop()
	go ss.pump()

	ss.readLoop()

	detach()
	s.detach(ss)
	ss.close(websocket.CloseNormalClosure, "")
	// Last seen is written before the tracker says offline: a presence_sub
	// answered after that reads it from the store, and must not find the
	// connect time there. Best effort; a failure only makes it stale.
	at := time.Now()
	tctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	if err := s.st.TouchDevice(tctx, ss.deviceID, at); err != nil && !errors.Is(err, store.ErrNotFound) {
		log.Warn("touch device failed", "err", err)
	}
	cancel()
	s.presence.disconnected(ss, at)
	log.Info("disconnected", "duration", time.Since(started).Round(time.Millisecond).String())
}

func (ss *session) readLoop() {
	cfg := &ss.srv.cfg
	ss.conn.SetReadLimit(int64(cfg.MaxFrameBytes) * hardFrameFactor)
	_ = ss.conn.SetReadDeadline(time.Now().Add(cfg.IdleTimeout))
	ss.conn.SetPingHandler(func(data string) error {
		_ = ss.conn.SetReadDeadline(time.Now().Add(cfg.IdleTimeout))
		err := ss.conn.WriteControl(websocket.PongMessage, []byte(data), time.Now().Add(time.Second))
		if err != nil && !errors.Is(err, websocket.ErrCloseSent) {
			return err
		}
		return nil
	})
	for {
		mt, r, err := ss.conn.NextReader()
		if err != nil {
			return
		}
		_ = ss.conn.SetReadDeadline(time.Now().Add(cfg.IdleTimeout))
		// Read one byte past the limit to tell an oversized frame, then
		// discard its rest without holding it in memory.
		data, err := io.ReadAll(io.LimitReader(r, int64(cfg.MaxFrameBytes)+1))
		if err != nil {
			return
		}
		if len(data) > cfg.MaxFrameBytes {
			if _, err := io.Copy(io.Discard, r); err != nil {
				return // over the hard limit: gorilla has sent 1009
			}
			ss.srv.metrics.framesIn.WithLabelValues("too_large").Inc()
			if !ss.spendOther(wire.PeekID(data)) {
				continue
			}
			ss.sendError(wire.PeekID(data), wire.Errorf(wire.CodeTooLarge, "frame over %d bytes", cfg.MaxFrameBytes))
			continue
		}
		if mt != websocket.TextMessage {
			ss.srv.metrics.framesIn.WithLabelValues("invalid").Inc()
			if !ss.spendOther("") {
				continue
			}
			ss.sendError("", wire.Errorf(wire.CodeBadRequest, "frames are JSON text frames"))
			continue
		}
		f, err := wire.DecodeClientFrame(data)
		if errors.Is(err, wire.ErrInvalidUTF8) {
			// RFC 6455: a text frame that is not UTF-8 fails the
			// connection with 1007.
			ss.srv.metrics.framesIn.WithLabelValues("invalid").Inc()
			ss.close(websocket.CloseInvalidFramePayloadData, "frame is not valid UTF-8")
			return
		}
		class := classOther
		if err == nil {
			class = classOf(f.Type)
		}
		// Acks are never refused: one only moves a number in memory (the
		// ack worker coalesces them into one store write), and a refused
		// ack is never sent again, which would leave a full window
		// waiting for it.
		if err != nil || f.Type != wire.TypeAck {
			if wait := ss.budget.take(class, time.Now()); wait > 0 {
				ss.srv.metrics.framesIn.WithLabelValues("rate_limited").Inc()
				ss.sendError(f.ID, rateLimited(wait, class.String()))
				continue
			}
		}
		if err != nil {
			ss.srv.metrics.framesIn.WithLabelValues("invalid").Inc()
			ss.sendError(f.ID, asWireError(err))
			continue
		}
		ss.srv.metrics.framesIn.WithLabelValues(f.Type).Inc()
		if !ss.srv.now().Before(ss.expires) {
			// The timer runs on the wall clock; the token's expiry is on
			// the auth clock, which tests move.
			ss.close(wire.CloseUnauthorized, "access token expired: refresh it and connect again")
			return
		}
		ss.handle(&f)
	}
}

// spendOther spends a frame of the "other" budget on a frame refused
// before decoding (oversized, binary), answering rate_limited when there
// is none left; it reports whether the frame is to be answered as usual.
func (ss *session) spendOther(id string) bool {
	if wait := ss.budget.take(classOther, time.Now()); wait > 0 {
		ss.srv.metrics.framesIn.WithLabelValues("rate_limited").Inc()
		ss.sendError(id, rateLimited(wait, classOther.String()))
		return false
	}
	return true
}

func (ss *session) handle(f *wire.ClientFrame) {
	ctx := ss.srv.ctx
	var err error
	switch f.Type {
	case wire.TypeSend:
		err = ss.srv.handleSend(ctx, ss, f)
	case wire.TypeAck:
		err = ss.handleAck(f.Cursor)
	case wire.TypeRead:
		err = ss.srv.handleRead(ctx, ss, f)
	case wire.TypeTyping:
		err = ss.srv.handleTyping(ctx, ss, f)
	case wire.TypePing:
		ss.queue(marshalFrame(wire.Pong{Type: wire.TypePong, ID: f.ID}))
	case wire.TypePresenceSub:
		ss.srv.presence.subscribe(ss, f.UserIDs)
	}
	if err != nil {
		we := asWireError(err)
		if we.Code == wire.CodeInternal {
			ss.srv.log.Error("frame failed", "type", f.Type, "device", ss.deviceID, "err", err)
		}
		ss.sendError(f.ID, we)
	}
}

func (ss *session) sendError(id string, e *wire.Error) { ss.queue(errorFrame(id, e)) }

// Deliver implements routing.Handler. It never blocks: it queues a frame
// or schedules an inbox read.
func (ss *session) Deliver(env routing.Envelope) {
	switch env.Kind {
	case routing.KindRevoke:
		go ss.close(wire.CloseUnauthorized, "device signed out")
	case routing.KindPoke:
		ss.Resync()
	case routing.KindReplace:
		node, id := parseReplaceNotice(env.Frame)
		// Sockets of the device on this node were ordered by attach
		// already: a notice from a session here that lost that race (it
		// publishes after the winner attached) must not close the winner.
		if id != ss.id && node != ss.srv.cfg.NodeID {
			go ss.close(wire.CloseReplaced, "device connected again")
		}
	case routing.KindFrame:
		ss.mu.Lock()
		// Ephemeral frames are the first thing to drop for a slow reader.
		if len(ss.out) < ss.srv.cfg.OutboxLimit/2 {
			ss.queueLocked(env.Frame)
		}
		ss.mu.Unlock()
	case routing.KindEvent:
		ss.mu.Lock()
		switch {
		case env.Cursor <= ss.lastSent:
			// Already sent (replayed from the inbox): drop the duplicate.
		case ss.behind || len(ss.inflight) >= ss.srv.cfg.Window:
			// The inbox read that follows the next ack finds it.
			ss.behind = true
		case ss.pumping:
			// The read under way may or may not see it: hold it for
			// when the read is done.
			if !ss.holdLocked(env.Cursor, env.Frame) {
				ss.repump = true
			}
		case env.Cursor == ss.lastSent+1:
			if ss.queueLocked(env.Frame) {
				ss.sentLocked(env.Cursor)
				ss.releaseHeldLocked()
			}
		default:
			// A gap: an earlier event is still on its way, or was lost
			// (then the inbox has it, and a read after Config.GapWait finds it).
			if ss.holdLocked(env.Cursor, env.Frame) {
				ss.armGapLocked()
			} else {
				ss.startPumpLocked()
			}
		}
		ss.mu.Unlock()
	}
}

// holdLocked keeps an out-of-order event, reporting false when the session
// holds too many already (then they are dropped: an inbox read is due).
func (ss *session) holdLocked(cursor int64, frame []byte) bool {
	if len(ss.held) >= holdMax {
		ss.held = nil
		return false
	}
	i, found := slices.BinarySearchFunc(ss.held, cursor, func(h heldEvent, c int64) int { return cmp.Compare(h.cursor, c) })
	if !found {
		ss.held = slices.Insert(ss.held, i, heldEvent{cursor: cursor, frame: frame})
	}
	return true
}

// releaseHeldLocked queues the held events that follow lastSent without a
// gap, drops those at or below it, and arms the gap timer for the rest.
func (ss *session) releaseHeldLocked() {
	n := 0
	for n < len(ss.held) {
		h := ss.held[n]
		if h.cursor > ss.lastSent+1 {
			break
		}
		n++
		if h.cursor <= ss.lastSent {
			continue
		}
		if len(ss.inflight) >= ss.srv.cfg.Window {
			ss.behind = true
			ss.held = nil
			return
		}
		if !ss.queueLocked(h.frame) {
			ss.held = nil
			return
		}
		ss.sentLocked(h.cursor)
	}
	ss.held = slices.Delete(ss.held, 0, n)
	if len(ss.held) == 0 {
		ss.held = nil
	} else {
		ss.armGapLocked()
	}
}

// armGapLocked reads the inbox after Config.GapWait unless the gap closes first.
func (ss *session) armGapLocked() {
	if ss.gapArmed {
		return
	}
	ss.gapArmed = true
	time.AfterFunc(ss.srv.cfg.GapWait, func() {
		ss.mu.Lock()
		ss.gapArmed = false
		if len(ss.held) > 0 && !ss.closed {
			if ss.held[0].cursor <= ss.lastSent+1 {
				ss.releaseHeldLocked() // closed meanwhile by skipOwn
			} else {
				ss.startPumpLocked()
			}
		}
		ss.mu.Unlock()
	})
}

// behindInbox starts an inbox read if head is beyond what the session sent,
// no read is running and no event came for quiet, and reports whether it
// did.
func (ss *session) behindInbox(head int64, quiet time.Duration) bool {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if ss.closed || ss.pumping || ss.behind || head <= ss.lastSent {
		return false
	}
	if time.Since(ss.lastEventAt) < quiet {
		// Events are flowing: the one beyond is most likely on its way
		// (and if it was lost, the next event's gap, or the next check,
		// finds it).
		return false
	}
	ss.startPumpLocked()
	return true
}

// Resync implements routing.Handler.
func (ss *session) Resync() {
	ss.mu.Lock()
	ss.startPumpLocked()
	ss.mu.Unlock()
}

func (ss *session) startPumpLocked() {
	if ss.closed {
		return
	}
	// The read finds everything held, in order.
	ss.held = nil
	if ss.pumping {
		ss.repump = true
		return
	}
	ss.pumping = true
	go ss.pump()
}

// pump streams the inbox from lastSent until it is exhausted or the window
// is full. Only one pump runs per session (pumping).
func (ss *session) pump() {
	window := int64(ss.srv.cfg.Window)
	for {
		ss.mu.Lock()
		if ss.closed {
			ss.pumping = false
			ss.mu.Unlock()
			return
		}
		ss.repump = false
		after := ss.lastSent
		room := window - int64(len(ss.inflight))
		if room <= 0 {
			ss.behind = true
			ss.pumping = false
			ss.mu.Unlock()
			return
		}
		ss.mu.Unlock()

		limit := int(min(room, inboxPage))
		t0 := time.Now()
		evs, head, err := ss.srv.st.Inbox(ss.srv.ctx, ss.deviceID, after, limit)
		ss.srv.metrics.storeSeconds.WithLabelValues("inbox").Observe(time.Since(t0).Seconds())
		if err != nil {
			ss.srv.log.Error("inbox read failed", "device", ss.deviceID, "err", err)
			ss.mu.Lock()
			ss.pumping = false
			ss.mu.Unlock()
			ss.close(websocketGoingAway, "store unavailable, reconnect")
			return
		}
		frames := ss.srv.renderEvents(ss.srv.ctx, evs)
		ss.mu.Lock()
		if ss.lastAcked < 0 {
			// First read: whatever precedes the oldest unacked event was
			// acked before this session.
			ss.lastAcked = head
			if len(evs) > 0 {
				ss.lastAcked = evs[0].Cursor - 1
			}
		}
		for i := range evs {
			if evs[i].Cursor <= ss.lastSent {
				continue
			}
			if !ss.queueLocked(frames[i]) {
				break // closed: nothing after it may be written either
			}
			ss.sentLocked(evs[i].Cursor)
		}
		exhausted := len(evs) < limit
		if exhausted && head > ss.lastSent {
			// Nothing up to head is left for this device: acked, or never
			// for it (its own messages in its user's inbox). Its acks of
			// what is in flight still count.
			ss.lastSent = head
		}
		if !exhausted || ss.repump {
			ss.mu.Unlock()
			continue
		}
		ss.pumping = false
		// What was routed during the read follows it, or waits for a gap
		// to close, without another read.
		ss.releaseHeldLocked()
		ss.mu.Unlock()
		return
	}
}

// sentLocked records that the event at cursor was queued to the socket.
func (ss *session) sentLocked(cursor int64) {
	ss.lastSent = cursor
	ss.inflight = append(ss.inflight, cursor)
	ss.lastEventAt = time.Now()
}

// skipOwn counts cursor, the entry of the device's own message in an inbox
// it shares with its user's other devices (store.SendResult.SenderCursor),
// as sent when it is the next one, so that the event after it does not
// look like a gap that needs an inbox read. It is not in flight: nothing
// is written for it.
func (ss *session) skipOwn(cursor int64) {
	if cursor == 0 {
		return
	}
	ss.mu.Lock()
	if !ss.pumping && cursor == ss.lastSent+1 {
		ss.lastSent = cursor
		ss.releaseHeldLocked()
	}
	ss.mu.Unlock()
}

// handleAck records an ack and lets the ack worker apply it, so the read
// loop never waits for the store on an ack: a sender's ack of a receipt does
// not hold up its next send, and acks that arrive while one is being applied
// are coalesced into one store write (acks are cumulative).
func (ss *session) handleAck(cursor int64) error {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	if cursor > ss.lastSent {
		return wire.Errorf(wire.CodeBadRequest, "ack %d is beyond the last event sent", cursor)
	}
	if cursor <= ss.ackWant || cursor <= ss.lastAcked {
		return nil // an old ack changes nothing
	}
	ss.ackWant = cursor
	if !ss.acking {
		ss.acking = true
		// Counted with the sessions, so that a graceful stop waits for the
		// ack being applied instead of cancelling it halfway. The read loop
		// calling this is itself counted, so the count is not zero here.
		ss.srv.wg.Add(1)
		go ss.ackLoop()
	}
	return nil
}

func (ss *session) ackLoop() {
	defer ss.srv.wg.Done()
	ctx := ss.srv.ctx
	for {
		ss.mu.Lock()
		cursor, prev := ss.ackWant, ss.lastAcked
		if cursor <= prev {
			ss.acking = false
			ss.mu.Unlock()
			return
		}
		ss.mu.Unlock()

		t0 := time.Now()
		deliveries, err := ss.srv.st.Ack(ctx, ss.deviceID, cursor)
		ss.srv.metrics.storeSeconds.WithLabelValues("ack").Observe(time.Since(t0).Seconds())
		if err != nil {
			// The events stay in the inbox and come again on the next
			// connection; the client deduplicates them. The socket goes:
			// the client acked already and will not again, so a session
			// whose window is full would wait for an ack forever.
			if !errors.Is(err, context.Canceled) {
				ss.srv.log.Error("ack failed", "device", ss.deviceID, "err", err)
			}
			ss.mu.Lock()
			ss.acking = false
			ss.ackWant = ss.lastAcked
			ss.mu.Unlock()
			ss.close(websocketGoingAway, "store unavailable, reconnect")
			return
		}
		ss.srv.metrics.receipts.WithLabelValues(store.StatusDelivered).Add(float64(len(deliveries)))
		ss.mu.Lock()
		ss.lastAcked = max(ss.lastAcked, cursor)
		n := 0
		for n < len(ss.inflight) && ss.inflight[n] <= ss.lastAcked {
			n++
		}
		ss.srv.metrics.eventsAcked.Add(float64(n))
		ss.inflight = ss.inflight[n:]
		if len(ss.inflight) == 0 && cap(ss.inflight) > 64 {
			ss.inflight = nil // let a burst's array go
		}
		if ss.behind {
			ss.behind = false
			ss.startPumpLocked()
		}
		ss.mu.Unlock()
		ss.srv.dispatch(ctx, deliveries, nil)
	}
}

// queue hands a frame to the writer.
func (ss *session) queue(frame []byte) {
	ss.mu.Lock()
	ss.queueLocked(frame)
	ss.mu.Unlock()
}

// queueLocked reports whether the frame was queued. When it was not, the
// session is closed (or closing) and nothing after it is written either:
// a writer that skipped a frame and wrote the next would let the client
// ack past an event it never saw.
func (ss *session) queueLocked(frame []byte) bool {
	if ss.closed {
		return false
	}
	if len(ss.out) >= ss.srv.cfg.OutboxLimit {
		// The window bounds inbox events, so only a client that stopped
		// reading gets here: drop it rather than grow without bound.
		ss.srv.metrics.slowConsumers.Inc()
		ss.closed = true
		ss.out = nil
		go ss.closeConn(wire.CloseSlowConsumer, "not reading fast enough")
		return false
	}
	ss.out = append(ss.out, frame)
	if !ss.writing {
		ss.writing = true
		go ss.writeLoop()
	}
	return true
}

// writeLoop drains the queue and exits when it is empty, so an idle socket
// has no writer goroutine.
func (ss *session) writeLoop() {
	for {
		ss.mu.Lock()
		if len(ss.out) == 0 || ss.closed {
			ss.writing = false
			ss.mu.Unlock()
			return
		}
		batch := ss.out
		ss.out = ss.spare[:0]
		ss.mu.Unlock()

		// One write call for the batch, not one per frame (see corkConn).
		corked := len(batch) > 1
		if corked {
			ss.cork.cork()
		}
		var err error
		for i, f := range batch {
			if err == nil {
				_ = ss.conn.SetWriteDeadline(time.Now().Add(ss.srv.cfg.WriteTimeout))
				err = ss.conn.WriteMessage(websocket.TextMessage, f)
			}
			batch[i] = nil
		}
		if corked {
			if uerr := ss.cork.uncork(); err == nil {
				err = uerr
			}
		}
		if err != nil {
			ss.mu.Lock()
			ss.writing = false
			ss.mu.Unlock()
			ss.close(websocketGoingAway, "write failed")
			return
		}
		ss.srv.metrics.framesOut.Add(float64(len(batch)))
		ss.mu.Lock()
		ss.spare = batch[:0]
		ss.mu.Unlock()
	}
}

// close sends a close frame and closes the socket; the read loop then ends
// the session. Safe to call many times from any goroutine.
func (ss *session) close(code int, reason string) {
	ss.mu.Lock()
	if ss.closed {
		ss.mu.Unlock()
		return
	}
	ss.closed = true
	ss.out = nil
	ss.mu.Unlock()
	ss.closeConn(code, reason)
}

// closeConn sends the close frame and closes the socket, once the session
// is marked closed.
func (ss *session) closeConn(code int, reason string) {
	// The close code is how a client tells "replaced" or "revoked" from a
	// network cut (after which it reconnects): on a loaded node a second
	// was too short to get it out, and a replaced client reconnected and
	// replaced its successor in turn. It waits at most the write timeout.
	_ = ss.conn.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
		time.Now().Add(ss.srv.cfg.WriteTimeout))
	_ = ss.conn.Close()
}

func asWireError(err error) *wire.Error { return chat.Error(err) }

func (ss *session) actor() chat.Actor { return chat.Actor{UserID: ss.userID, DeviceID: ss.deviceID} }

// renderEvents renders events read from an inbox. Group events show the
// group as it is now: the state right after their change is not kept.
func (s *Server) renderEvents(ctx context.Context, evs []store.Event) [][]byte {
	frames := make([][]byte, len(evs))
	var groups map[string]*store.Group
	for i := range evs {
		ev := &evs[i]
		var g *store.Group
		if ev.Kind == store.EventGroup && ev.Message != nil {
			var ok bool
			if g, ok = groups[ev.Message.ChatID]; !ok {
				g = s.currentGroup(ctx, ev.Message.ChatID)
				if groups == nil {
					groups = make(map[string]*store.Group)
				}
				groups[ev.Message.ChatID] = g
			}
		}
		frames[i] = renderEvent(ev, g)
	}
	return frames
}

// replaceNotice is the frame of a routing.KindReplace envelope: the node
// and the id of the session that replaces the device's others.
func replaceNotice(node, sessionID string) []byte { return []byte(node + " " + sessionID) }

// parseReplaceNotice reads a replaceNotice; a notice of a node before
// 2026-12 holds the session id alone (node "").
func parseReplaceNotice(b []byte) (node, sessionID string) {
	s := string(b)
	if i := strings.LastIndexByte(s, ' '); i >= 0 {
		return s[:i], s[i+1:]
	}
	return "", s
}
