package client

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/tern-im/tern/wire"
)

// closeWait bounds how long Close waits for the server to answer the close
// handshake before dropping the connection.
const closeWait = time.Second

var pingFrame = []byte(`{"type":"ping"}`)

// wsConn is one WebSocket connection. The loop replaces it on reconnect;
// the state that outlives a connection lives on the Client.
type wsConn struct {
	ws    *websocket.Conn
	token string // the access token it was opened with, to refresh on 4401
	since time.Time
	done  chan struct{} // closed when its reader exits
	err   error         // why the reader exited; read only after done

	lastWrite atomic.Int64 // unix nanoseconds, for keepalive
	lastRead  atomic.Int64
	ackSent   int64 // highest cursor acked on this connection; loop only
}

type sendCall struct {
	data  []byte // the encoded send frame, written again after a reconnect
	order uint64
	cn    *wsConn // the connection it was last given to, nil if none
	done  chan struct{}
	sent  wire.Sent
	err   error
}

type pingCall struct {
	cn *wsConn
	ch chan error // cap 1
}

// ackState decides what may be acked. It is client-wide, not per
// connection, because a message handed out on one connection and replayed
// on the next is dropped as a duplicate, and in manual mode that duplicate
// must not be acked before the application acks the original.
type ackState struct {
	mu      sync.Mutex
	handed  int64 // highest cursor put on the Events channel
	allowed int64 // highest cursor that may be acked
	dupTail int64 // highest dropped duplicate above handed, not yet allowed
}

func (a *ackState) onHanded(cursor int64, auto bool) {
	a.mu.Lock()
	a.handed = max(a.handed, cursor)
	if auto {
		a.allowLocked(cursor)
	}
	a.mu.Unlock()
}

// onDropped handles a duplicate the application will not see. Acks are
// cumulative, so it is acked at once only when the application has acked
// everything handed to it; otherwise it rides along with the next Ack.
func (a *ackState) onDropped(cursor int64) {
	a.mu.Lock()
	if a.allowed >= a.handed {
		a.allowLocked(cursor)
	} else {
		a.dupTail = max(a.dupTail, cursor)
	}
	a.mu.Unlock()
}

func (a *ackState) allow(cursor int64) {
	a.mu.Lock()
	a.allowLocked(cursor)
	a.mu.Unlock()
}

func (a *ackState) allowLocked(cursor int64) {
	if cursor >= a.handed && a.dupTail > cursor {
		cursor = a.dupTail
	}
	a.allowed = max(a.allowed, cursor)
	if a.dupTail <= a.allowed {
		a.dupTail = 0
	}
}

func (a *ackState) want() int64 {
	a.mu.Lock()
	defer a.mu.Unlock()
	return a.allowed
}

// Events returns the channel of server frames for the application:
// message, receipt, typing, presence, group and error frames that answer
// no request. It is closed after Close or a fatal stop (see Err).
func (c *Client) Events() <-chan wire.ServerFrame { return c.events }

// Err tells why the connection loop stopped on its own: an error wrapping
// ErrReplaced or ErrSignedOut. It is nil while the loop runs, and when it
// stopped because of Close.
func (c *Client) Err() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.stopErr
}

// Connected reports whether a socket is open right now.
func (c *Client) Connected() bool {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.conn != nil
}

// Connect opens the WebSocket, refreshing the access token once if the
// server answers 401, and returns the error if that fails: nothing keeps
// running then, and Connect may be called again. Once it has succeeded, a
// background loop keeps the connection up until Close or a fatal stop;
// ctx only bounds this first dial. A Client connects at most once.
func (c *Client) Connect(ctx context.Context) error {
	c.mu.Lock()
	switch c.state {
	case stateConnecting, stateRunning:
		c.mu.Unlock()
		return errors.New("client: already connected")
	case stateStopped:
		c.mu.Unlock()
		return ErrClosed
	}
	c.state = stateConnecting
	c.mu.Unlock()

	token := c.accessToken()
	cn, err := c.dial(ctx, token)
	if isUnauthorized(err) && c.canRefresh() {
		if rerr := c.refreshFrom(ctx, token); rerr != nil {
			err = fmt.Errorf("%w (token refresh failed: %v)", err, rerr)
		} else {
			cn, err = c.dial(ctx, c.accessToken())
		}
	}

	c.mu.Lock()
	if err != nil {
		if c.state == stateConnecting {
			c.state = stateIdle
		}
		c.mu.Unlock()
		return err
	}
	if c.state == stateStopped { // Close ran during the dial
		c.mu.Unlock()
		_ = cn.ws.Close()
		return ErrClosed
	}
	loopCtx, cancel := context.WithCancel(context.Background())
	c.cancel = cancel
	c.loopDone = make(chan struct{})
	c.state = stateRunning
	c.mu.Unlock()

	c.stats.connects.Add(1)
	c.log.Debug("connected", "url", c.wsURL)
	c.attach(loopCtx, cn)
	go c.run(loopCtx, cn)
	return nil
}

// Close closes the socket with a normal closure after flushing pending
// acks, stops the loop and closes Events. Sends and pings still waiting
// fail with ErrClosed. It returns once every goroutine of the client has
// exited.
func (c *Client) Close() error {
	c.mu.Lock()
	switch c.state {
	case stateIdle, stateConnecting:
		// No loop and no reader exist, so nothing else can touch events.
		c.state = stateStopped
		close(c.stopped)
		close(c.events)
		c.mu.Unlock()
		return nil
	case stateRunning:
		cancel, done := c.cancel, c.loopDone
		c.mu.Unlock()
		cancel()
		<-done
		return nil
	default:
		done := c.loopDone
		c.mu.Unlock()
		if done != nil {
			<-done
		}
		return nil
	}
}

func (c *Client) dial(ctx context.Context, token string) (*wsConn, error) {
	h := http.Header{}
	if token != "" {
		h.Set("Authorization", "Bearer "+token)
	}
	ws, resp, err := c.dialer.DialContext(ctx, c.wsURL, h)
	if err != nil {
		if resp != nil && errors.Is(err, websocket.ErrBadHandshake) {
			return nil, &HTTPError{Method: http.MethodGet, Path: "/v1/ws", Status: resp.StatusCode, Err: decodeError(resp)}
		}
		return nil, fmt.Errorf("client: dial %s: %w", c.wsURL, err)
	}
	ws.SetReadLimit(c.opts.ReadLimit)
	cn := &wsConn{ws: ws, token: token, since: time.Now(), done: make(chan struct{})}
	now := cn.since.UnixNano()
	cn.lastRead.Store(now)
	cn.lastWrite.Store(now)
	return cn, nil
}

// attach makes cn the current connection, starts its reader and writes the
// unanswered sends again, oldest first. writeMu is taken before mu is let
// go, so a Send issued after the switch is written after the resends and
// per-chat order is kept.
func (c *Client) attach(ctx context.Context, cn *wsConn) {
	go c.readLoop(ctx, cn)
	c.mu.Lock()
	c.conn = cn
	close(c.ready)
	var resend []*sendCall
	for _, call := range c.sends {
		call.cn = cn
		resend = append(resend, call)
	}
	c.writeMu.Lock()
	c.mu.Unlock()
	defer c.writeMu.Unlock()
	slices.SortFunc(resend, func(a, b *sendCall) int { return cmp.Compare(a.order, b.order) })
	for _, call := range resend {
		if c.writeLocked(cn, call.data) != nil {
			return // the reader sees the broken socket; the loop reconnects
		}
		c.stats.resends.Add(1)
	}
}

// detach forgets a connection that ended: pings sent on it cannot be
// answered any more, while sends stay pending for the next connection.
func (c *Client) detach(cn *wsConn) {
	_ = cn.ws.Close()
	var culprit *sendCall
	c.mu.Lock()
	if c.conn == cn {
		c.conn = nil
		c.ready = make(chan struct{})
	}
	for id, p := range c.pings {
		if p.cn == cn {
			delete(c.pings, id)
			p.ch <- ErrConnectionLost
		}
	}
	if isClose(cn.err, wire.CloseTooLarge) {
		// The server closed on a frame too large to read, which a resend
		// would repeat forever. It cannot say which frame; the largest send
		// in flight is by far the likeliest, so that one fails.
		var id string
		for k, call := range c.sends {
			if call.cn == cn && (culprit == nil || len(call.data) > len(culprit.data)) {
				id, culprit = k, call
			}
		}
		if culprit != nil {
			delete(c.sends, id)
		}
	}
	c.mu.Unlock()
	if culprit != nil {
		culprit.err = &wire.Error{Code: wire.CodeTooLarge, Message: "the server closed the socket on a frame too large (1009)"}
		close(culprit.done)
	}
}

// finish stops the client: every waiter fails and Events is closed. Only
// the loop calls it, after the last reader has exited.
func (c *Client) finish(err error) {
	c.mu.Lock()
	c.state = stateStopped
	c.stopErr = err
	c.conn = nil
	sends, pings := c.sends, c.pings
	c.sends, c.pings = make(map[string]*sendCall), make(map[string]*pingCall)
	close(c.stopped)
	c.mu.Unlock()
	if err != nil {
		c.log.Warn("connection loop stopped", "err", err)
	} else {
		err = ErrClosed
	}
	for _, call := range sends {
		call.err = err
		close(call.done)
	}
	for _, p := range pings {
		p.ch <- err
	}
	close(c.events)
}

// run is the connection loop: it serves a connection until it ends, then
// reconnects, until Close or a fatal stop.
func (c *Client) run(ctx context.Context, cn *wsConn) {
	defer close(c.loopDone)
	attempt := 0
	for {
		c.serve(ctx, cn)
		c.detach(cn)
		if ctx.Err() != nil {
			c.finish(nil)
			return
		}
		c.log.Info("connection lost", "err", cn.err, "lived", time.Since(cn.since))
		if time.Since(cn.since) >= c.opts.Backoff.Max {
			// It was a working connection, not one of a string of failures.
			attempt = 0
		}
		next, err := c.reconnect(ctx, cn, &attempt)
		if next == nil {
			c.finish(err)
			return
		}
		cn = next
		c.stats.connects.Add(1)
		c.stats.reconnects.Add(1)
		c.log.Info("reconnected")
		c.attach(ctx, cn)
	}
}

// serve writes acks and keepalives for cn until its reader exits or the
// client closes.
func (c *Client) serve(ctx context.Context, cn *wsConn) {
	var tick <-chan time.Time
	if ka := c.opts.KeepAlive; ka > 0 {
		t := time.NewTicker(max(ka/2, time.Millisecond))
		defer t.Stop()
		tick = t.C
	}
	// ackDue fires AckDelay after the first event an ack waits for; the
	// kicks in between ride on it.
	var ackDue <-chan time.Time
	ackTimer := time.NewTimer(time.Hour)
	ackTimer.Stop()
	defer ackTimer.Stop()
	for {
		select {
		case <-cn.done:
			if ctx.Err() != nil {
				c.shutdown(cn) // still say goodbye properly
			}
			return
		case <-ctx.Done():
			c.shutdown(cn)
			return
		case <-c.ackKick:
			if c.opts.AckDelay < 0 {
				c.flushAck(cn)
			} else if ackDue == nil {
				ackTimer.Reset(c.opts.AckDelay)
				ackDue = ackTimer.C
			}
		case <-ackDue:
			ackDue = nil
			c.flushAck(cn)
		case <-tick:
			now := time.Now().UnixNano()
			ka := int64(c.opts.KeepAlive)
			// Idle in either direction: the server's read deadline needs
			// our writes, and our read deadline needs its pong.
			if now-cn.lastWrite.Load() >= ka || now-cn.lastRead.Load() >= ka {
				_ = c.write(cn, pingFrame)
			}
		}
	}
}

// shutdown flushes acks (so the next session does not replay what the
// application already has) and closes the socket with a normal closure.
// ctx is done by now, so the reader hands out nothing more once handMu is
// free: the ack below covers exactly what the application got.
func (c *Client) shutdown(cn *wsConn) {
	c.handMu.Lock()
	c.flushAck(cn)
	c.handMu.Unlock()
	err := cn.ws.WriteControl(websocket.CloseMessage,
		websocket.FormatCloseMessage(websocket.CloseNormalClosure, ""), time.Now().Add(closeWait))
	if err == nil {
		// Wait for the server's close answer, so the TCP close that
		// follows finds nothing unread and ends with a FIN, not a reset.
		t := time.NewTimer(closeWait)
		select {
		case <-cn.done:
		case <-t.C:
		}
		t.Stop()
	}
	_ = cn.ws.Close()
	<-cn.done
}

// flushAck writes one ack for everything allowed since the last one; the
// events that arrived while the previous ack was being written share it.
func (c *Client) flushAck(cn *wsConn) {
	w := c.ack.want()
	if w <= cn.ackSent {
		return
	}
	data, _ := json.Marshal(wire.ClientFrame{Type: wire.TypeAck, Cursor: w})
	if c.write(cn, data) == nil {
		cn.ackSent = w
		c.stats.acks.Add(1)
	}
}

func (c *Client) kickAck() {
	select {
	case c.ackKick <- struct{}{}:
	default: // a kick is pending already; it will see this cursor too
	}
}

// reconnect dials until it has a connection, backing off between attempts
// and refreshing the token when the server says it is no longer valid. It
// returns (nil, nil) when the client closes and (nil, err) on a fatal stop.
func (c *Client) reconnect(ctx context.Context, prev *wsConn, attempt *int) (*wsConn, error) {
	cause := prev.err
	if isClose(cause, wire.CloseReplaced) {
		return nil, fmt.Errorf("%w: %w", ErrReplaced, cause)
	}
	needRefresh := isClose(cause, wire.CloseUnauthorized)
	stale := prev.token
	refreshed := false
	var wait time.Duration
	for {
		if needRefresh {
			if refreshed || !c.canRefresh() {
				return nil, fmt.Errorf("%w: %w", ErrSignedOut, cause)
			}
			err := c.refreshFrom(ctx, stale)
			if ctx.Err() != nil {
				return nil, nil
			}
			if err != nil {
				if isRefused(err) {
					return nil, fmt.Errorf("%w: %w", ErrSignedOut, err)
				}
				// The server could not be reached; that says nothing about
				// the device, so try again later.
				c.log.Warn("token refresh failed", "err", err)
				if !sleep(ctx, c.backoff(attempt)) {
					return nil, nil
				}
				continue
			}
			refreshed, needRefresh = true, false
		} else {
			if !sleep(ctx, max(c.backoff(attempt), wait)) {
				return nil, nil
			}
			wait = 0
		}
		token := c.accessToken()
		dctx, cancel := context.WithTimeout(ctx, c.opts.DialTimeout)
		cn, err := c.dial(dctx, token)
		cancel()
		if err == nil {
			return cn, nil
		}
		if ctx.Err() != nil {
			return nil, nil
		}
		c.log.Info("reconnect failed", "err", err)
		cause, stale = err, token
		if isUnauthorized(err) {
			needRefresh = true
			continue
		}
		var werr *wire.Error
		if errors.As(err, &werr) && werr.RetryAfter > 0 {
			wait = time.Duration(werr.RetryAfter) * time.Second
		}
	}
}

// backoff returns the delay before the next attempt: Min doubled per
// attempt up to Max, with "equal jitter" (half fixed, half random) so that
// thousands of clients dropped by one node do not come back in lockstep.
func (c *Client) backoff(attempt *int) time.Duration {
	d := c.opts.Backoff.Max
	if *attempt < 32 {
		if s := c.opts.Backoff.Min << *attempt; s > 0 && s < d {
			d = s
		}
	}
	*attempt++
	half := d / 2
	return half + rand.N(d-half+1)
}

func sleep(ctx context.Context, d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-ctx.Done():
		return false
	}
}

func isClose(err error, code int) bool {
	var ce *websocket.CloseError
	return errors.As(err, &ce) && ce.Code == code
}

// readLoop reads cn until it fails or the client closes. It answers nothing
// itself: it resolves waiters and hands frames to the application.
func (c *Client) readLoop(ctx context.Context, cn *wsConn) {
	defer close(cn.done)
	ka := c.opts.KeepAlive
	var deadlineSet time.Time
	var lastCursor int64
	for {
		if ka > 0 {
			// Moving the deadline on every frame would cost a timer update
			// per frame under load; every KeepAlive/2 is enough for a
			// 3×KeepAlive deadline.
			if now := time.Now(); now.Sub(deadlineSet) > ka/2 {
				_ = cn.ws.SetReadDeadline(now.Add(3 * ka))
				deadlineSet = now
			}
		}
		typ, data, err := cn.ws.ReadMessage()
		if err != nil {
			cn.err = err
			return
		}
		cn.lastRead.Store(time.Now().UnixNano())
		if typ != websocket.TextMessage {
			continue
		}
		f, err := wire.DecodeServerFrame(data)
		if err != nil {
			c.log.Warn("bad frame from server", "err", err)
			continue
		}
		if f.Cursor > 0 {
			if f.Cursor <= lastCursor {
				// Acks are cumulative: out of order, acking the higher
				// cursor would ack events not yet received. The contract
				// forbids it; say so loudly if a server does it.
				c.log.Warn("inbox cursor out of order on one connection", "cursor", f.Cursor, "after", lastCursor)
			}
			lastCursor = f.Cursor
		}
		if !c.dispatch(ctx, f) {
			cn.err = ctx.Err()
			return
		}
	}
}

// dispatch routes one frame; it returns false when the client is closing.
func (c *Client) dispatch(ctx context.Context, f wire.ServerFrame) bool {
	switch f.Type {
	case wire.TypeSent:
		c.resolveSend(f.ID, &f, nil)
		return true
	case wire.TypePong:
		c.resolvePing(f.ID, nil)
		return true
	case wire.TypeError:
		if f.ID != "" {
			werr := &wire.Error{Code: f.Code, Message: f.Message, RetryAfter: f.RetryAfter}
			if c.resolveSend(f.ID, nil, werr) || c.resolvePing(f.ID, werr) {
				return true
			}
		}
	case wire.TypeMessage:
		if c.dedupe != nil && f.MsgID != "" && c.dedupe.seen(f.MsgID) {
			c.stats.duplicates.Add(1)
			if f.Cursor > 0 {
				c.ack.onDropped(f.Cursor)
				c.kickAck()
			}
			return true
		}
	}
	// handMu spans the hand-off and its bookkeeping so that shutdown can
	// wait for a hand-off in progress, and none starts after ctx is done.
	c.handMu.Lock()
	defer c.handMu.Unlock()
	if ctx.Err() != nil {
		return false
	}
	select {
	case c.events <- f:
	case <-ctx.Done():
		return false
	}
	if f.Cursor > 0 {
		c.ack.onHanded(f.Cursor, !c.opts.ManualAck)
		if !c.opts.ManualAck {
			c.kickAck()
		}
	}
	return true
}

func (c *Client) resolveSend(id string, f *wire.ServerFrame, werr *wire.Error) bool {
	c.mu.Lock()
	call, ok := c.sends[id]
	if ok {
		delete(c.sends, id)
	}
	c.mu.Unlock()
	if !ok {
		return false // a late answer to a send already answered or abandoned
	}
	if werr != nil {
		call.err = werr
	} else {
		call.sent = wire.Sent{Type: f.Type, ID: f.ID, MsgID: f.MsgID, ChatID: f.ChatID, Seq: f.Seq, TS: f.TS}
	}
	close(call.done)
	return true
}

func (c *Client) resolvePing(id string, err error) bool {
	if id == "" {
		return false // a keepalive's pong
	}
	c.mu.Lock()
	p, ok := c.pings[id]
	if ok {
		delete(c.pings, id)
	}
	c.mu.Unlock()
	if ok {
		p.ch <- err
	}
	return ok
}

// write writes one text frame on cn. A failed write leaves the stream in an
// unknown state, so it closes the socket; the reader then fails and the
// loop reconnects.
func (c *Client) write(cn *wsConn, data []byte) error {
	c.writeMu.Lock()
	defer c.writeMu.Unlock()
	return c.writeLocked(cn, data)
}

func (c *Client) writeLocked(cn *wsConn, data []byte) error {
	_ = cn.ws.SetWriteDeadline(time.Now().Add(c.opts.WriteTimeout))
	if err := cn.ws.WriteMessage(websocket.TextMessage, data); err != nil {
		_ = cn.ws.Close()
		return fmt.Errorf("client: write: %w", err)
	}
	cn.lastWrite.Store(time.Now().UnixNano())
	return nil
}

// waitConn returns the current connection, waiting for one while the loop
// reconnects. register, if set, runs under mu with the connection, so that
// a waiter it records is failed by detach if that connection ends.
func (c *Client) waitConn(ctx context.Context, register func(*wsConn)) (*wsConn, error) {
	for {
		c.mu.Lock()
		switch c.state {
		case stateIdle, stateConnecting:
			c.mu.Unlock()
			return nil, ErrNotConnected
		case stateStopped:
			err := c.stoppedErrLocked()
			c.mu.Unlock()
			return nil, err
		}
		if cn := c.conn; cn != nil {
			if register != nil {
				register(cn)
			}
			c.mu.Unlock()
			return cn, nil
		}
		ready := c.ready
		c.mu.Unlock()
		select {
		case <-ready:
		case <-c.stopped:
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
}

func (c *Client) stoppedErrLocked() error {
	if c.stopErr != nil {
		return c.stopErr
	}
	return ErrClosed
}

// writeFrame writes a frame that needs no answer, waiting for a connection.
func (c *Client) writeFrame(ctx context.Context, f wire.ClientFrame) error {
	data, err := json.Marshal(f)
	if err != nil {
		return fmt.Errorf("client: encode %s: %w", f.Type, err)
	}
	return c.WriteRaw(ctx, data)
}

// Send sends body to a user or group id with a fresh client message id and
// waits for the server's answer; see SendWithID.
func (c *Client) Send(ctx context.Context, to string, body wire.Body) (wire.Sent, error) {
	return c.SendWithID(ctx, c.NewID(), to, body, "")
}

// SendWithID sends a message with the client message id id and waits until
// the server answers sent (the message is durable) or an error frame for id,
// which is returned as a *wire.Error. If the socket drops before the answer,
// the frame is written again with the same id on the next connection, which
// the server answers without storing twice; that goes on until ctx is done.
// After ctx is done the message may or may not have been stored: sending
// again with the same id tells.
func (c *Client) SendWithID(ctx context.Context, id, to string, body wire.Body, replyTo string) (wire.Sent, error) {
	if id == "" {
		return wire.Sent{}, errors.New("client: send needs an id")
	}
	data, err := json.Marshal(wire.ClientFrame{Type: wire.TypeSend, ID: id, To: to, Body: &body, ReplyTo: replyTo})
	if err != nil {
		return wire.Sent{}, fmt.Errorf("client: encode send: %w", err)
	}
	call := &sendCall{data: data, done: make(chan struct{})}
	c.mu.Lock()
	switch c.state {
	case stateIdle, stateConnecting:
		c.mu.Unlock()
		return wire.Sent{}, ErrNotConnected
	case stateStopped:
		err := c.stoppedErrLocked()
		c.mu.Unlock()
		return wire.Sent{}, err
	}
	if _, dup := c.sends[id]; dup {
		c.mu.Unlock()
		return wire.Sent{}, fmt.Errorf("client: a send with id %q is already waiting", id)
	}
	c.order++
	call.order = c.order
	call.cn = c.conn
	c.sends[id] = call
	cn := c.conn
	c.mu.Unlock()

	if cn != nil {
		// A failed write is not the caller's failure: the connection is
		// gone and the next one writes the frame again.
		_ = c.write(cn, data)
	}
	select {
	case <-call.done:
		return call.sent, call.err
	case <-ctx.Done():
		c.mu.Lock()
		if c.sends[id] == call {
			delete(c.sends, id)
		}
		c.mu.Unlock()
		select {
		case <-call.done: // answered meanwhile: the answer is worth more
			return call.sent, call.err
		default:
			return wire.Sent{}, ctx.Err()
		}
	}
}

// Ack acks every inbox event up to cursor. It is for Options.ManualAck;
// without it the client acks by itself. While the socket is down the ack
// waits for the next connection.
func (c *Client) Ack(cursor int64) error {
	if cursor <= 0 {
		return errors.New("client: ack needs a positive cursor")
	}
	c.mu.Lock()
	state, err := c.state, c.stoppedErrLocked()
	c.mu.Unlock()
	switch state {
	case stateIdle, stateConnecting:
		return ErrNotConnected
	case stateStopped:
		return err
	}
	c.ack.allow(cursor)
	c.kickAck()
	return nil
}

// Read tells the server the user has read chatID up to seq.
func (c *Client) Read(ctx context.Context, chatID string, seq int64) error {
	return c.writeFrame(ctx, wire.ClientFrame{Type: wire.TypeRead, ChatID: chatID, Seq: seq})
}

// Typing sends a typing state (wire.TypingStarted or wire.TypingPaused).
func (c *Client) Typing(ctx context.Context, chatID, state string) error {
	return c.writeFrame(ctx, wire.ClientFrame{Type: wire.TypeTyping, ChatID: chatID, State: state})
}

// PresenceSub asks for presence frames about userIDs.
func (c *Client) PresenceSub(ctx context.Context, userIDs []string) error {
	return c.writeFrame(ctx, wire.ClientFrame{Type: wire.TypePresenceSub, UserIDs: userIDs})
}

// WriteRaw writes data as one text frame, waiting for a connection: a hook
// for tests of the server's frame validation.
func (c *Client) WriteRaw(ctx context.Context, data []byte) error {
	cn, err := c.waitConn(ctx, nil)
	if err != nil {
		return err
	}
	return c.write(cn, data)
}

// Ping makes a round trip on the socket. The server handles a socket's
// frames in order, so when Ping returns nil every frame written before it
// on this connection has been processed. If the socket drops first it
// returns ErrConnectionLost, since the earlier frames may not have been.
func (c *Client) Ping(ctx context.Context) error {
	id := c.NewID()
	p := &pingCall{ch: make(chan error, 1)}
	cn, err := c.waitConn(ctx, func(cn *wsConn) {
		p.cn = cn
		c.pings[id] = p
	})
	if err != nil {
		return err
	}
	data, _ := json.Marshal(wire.ClientFrame{Type: wire.TypePing, ID: id})
	if err := c.write(cn, data); err != nil {
		c.dropPing(id, p)
		return err
	}
	select {
	case err := <-p.ch:
		return err
	case <-ctx.Done():
		c.dropPing(id, p)
		return ctx.Err()
	}
}

func (c *Client) dropPing(id string, p *pingCall) {
	c.mu.Lock()
	if c.pings[id] == p {
		delete(c.pings, id)
	}
	c.mu.Unlock()
}
