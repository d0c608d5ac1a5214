package client

import (
	"context"
	"encoding/json"
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/gorilla/websocket"
	"github.com/tern-im/tern/wire"
)

// The tests below run the SDK against fakeServer, a few lines of scripted
// server: it accepts WebSockets for the tokens it is told are valid, hands
// each connection to the test, records acks and answers pings. The test
// plays the rest of the protocol by hand, which is what lets it drop,
// replay and close at the exact moments that matter.

const waitFor = 5 * time.Second

type fakeServer struct {
	t     *testing.T
	srv   *httptest.Server
	mux   *http.ServeMux
	up    websocket.Upgrader
	conns chan *fakeConn
	dials atomic.Int32
	pings atomic.Int32 // on every connection
	// autoPong answers ping frames; off, the server looks dead to pings.
	autoPong atomic.Bool
	// refreshUseless makes refresh answer tokens the server then refuses.
	refreshUseless atomic.Bool
	closeOnce      sync.Once

	mu      sync.Mutex
	valid   map[string]bool         // access tokens accepted
	refresh map[string]wire.Session // refresh token -> what refresh answers
	all     []*fakeConn
	wg      sync.WaitGroup
	closed  bool
}

type fakeConn struct {
	ws    *websocket.Conn
	token string
	in    chan wire.ClientFrame // frames other than ping and ack
	kill  chan struct{}
	done  chan struct{}
	wmu   sync.Mutex
	pings atomic.Int32

	mu        sync.Mutex
	acks      []int64
	closeCode int
}

func newFakeServer(t *testing.T) *fakeServer {
	t.Helper()
	fs := &fakeServer{
		t:       t,
		mux:     http.NewServeMux(),
		conns:   make(chan *fakeConn, 16),
		valid:   map[string]bool{},
		refresh: map[string]wire.Session{},
	}
	fs.autoPong.Store(true)
	fs.mux.HandleFunc("GET /v1/ws", fs.handleWS)
	fs.mux.HandleFunc("POST /v1/auth/refresh", fs.handleRefresh)
	fs.srv = httptest.NewServer(fs.mux)
	t.Cleanup(fs.close)
	return fs
}

// client makes a connected-ready client with a valid session; it is
// closed before the server (cleanups run last-in first-out).
func (fs *fakeServer) client(t *testing.T, opts Options) *Client {
	t.Helper()
	if opts.Backoff.Min == 0 {
		opts.Backoff.Min, opts.Backoff.Max = 5*time.Millisecond, 20*time.Millisecond
	}
	opts.HTTPClient = fs.srv.Client()
	c := New(fs.srv.URL, opts)
	c.SetSession(wire.Session{UserID: "u1", DeviceID: "d1", AccessToken: "tok", RefreshToken: "ref"})
	fs.allow("tok")
	t.Cleanup(func() { _ = c.Close() })
	return c
}

func (fs *fakeServer) allow(token string) {
	fs.mu.Lock()
	fs.valid[token] = true
	fs.mu.Unlock()
}

func (fs *fakeServer) revoke(token string) {
	fs.mu.Lock()
	delete(fs.valid, token)
	fs.mu.Unlock()
}

func (fs *fakeServer) onRefresh(refreshToken string, s wire.Session) {
	fs.mu.Lock()
	fs.refresh[refreshToken] = s
	fs.mu.Unlock()
}

func (fs *fakeServer) tokenOK(r *http.Request) (string, bool) {
	tok := strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	fs.mu.Lock()
	defer fs.mu.Unlock()
	return tok, fs.valid[tok]
}

func writeError(w http.ResponseWriter, code, msg string, retryAfter int) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(wire.HTTPStatus(code))
	_ = json.NewEncoder(w).Encode(wire.ErrorBody{Error: &wire.Error{Code: code, Message: msg, RetryAfter: retryAfter}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func (fs *fakeServer) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req wire.RefreshRequest
	_ = json.NewDecoder(r.Body).Decode(&req)
	fs.mu.Lock()
	s, ok := fs.refresh[req.RefreshToken]
	if ok {
		delete(fs.refresh, req.RefreshToken) // rotation: one use only
		fs.valid[s.AccessToken] = !fs.refreshUseless.Load()
	}
	fs.mu.Unlock()
	if !ok {
		writeError(w, wire.CodeUnauthorized, "refresh token not valid", 0)
		return
	}
	writeJSON(w, http.StatusOK, s)
}

func (fs *fakeServer) handleWS(w http.ResponseWriter, r *http.Request) {
	fs.dials.Add(1)
	tok, ok := fs.tokenOK(r)
	if !ok {
		writeError(w, wire.CodeUnauthorized, "bad token", 0)
		return
	}
	ws, err := fs.up.Upgrade(w, r, nil)
	if err != nil {
		return
	}
	fc := &fakeConn{ws: ws, token: tok, in: make(chan wire.ClientFrame, 1024),
		kill: make(chan struct{}), done: make(chan struct{})}
	fs.mu.Lock()
	if fs.closed {
		fs.mu.Unlock()
		_ = ws.Close()
		return
	}
	fs.all = append(fs.all, fc)
	fs.wg.Add(1)
	fs.mu.Unlock()
	defer fs.wg.Done()
	fs.conns <- fc
	fc.readLoop(fs)
}

func (fc *fakeConn) readLoop(fs *fakeServer) {
	defer close(fc.done)
	defer close(fc.in)
	for {
		_, data, err := fc.ws.ReadMessage()
		if err != nil {
			var ce *websocket.CloseError
			if errors.As(err, &ce) {
				fc.mu.Lock()
				fc.closeCode = ce.Code
				fc.mu.Unlock()
			}
			return
		}
		var f wire.ClientFrame
		if json.Unmarshal(data, &f) != nil {
			f = wire.ClientFrame{Type: "raw:" + string(data)}
		}
		switch f.Type {
		case wire.TypePing:
			fc.pings.Add(1)
			fs.pings.Add(1)
			if fs.autoPong.Load() {
				_ = fc.send(wire.Pong{Type: wire.TypePong, ID: f.ID})
			}
			continue
		case wire.TypeAck:
			fc.mu.Lock()
			fc.acks = append(fc.acks, f.Cursor)
			fc.mu.Unlock()
			continue
		}
		select {
		case fc.in <- f:
		case <-fc.kill:
			return
		}
	}
}

func (fs *fakeServer) close() { fs.closeOnce.Do(fs.doClose) }

func (fs *fakeServer) doClose() {
	fs.mu.Lock()
	fs.closed = true
	all := fs.all
	fs.mu.Unlock()
	for _, fc := range all {
		close(fc.kill)
		_ = fc.ws.Close()
	}
	fs.wg.Wait()
	fs.srv.Close()
}

// accept returns the next connection the client opened.
func (fs *fakeServer) accept(t *testing.T) *fakeConn {
	t.Helper()
	select {
	case fc := <-fs.conns:
		return fc
	case <-time.After(waitFor):
		t.Fatal("no connection from the client")
		return nil
	}
}

func (fc *fakeConn) send(v any) error {
	data, err := json.Marshal(v)
	if err != nil {
		return err
	}
	fc.wmu.Lock()
	defer fc.wmu.Unlock()
	return fc.ws.WriteMessage(websocket.TextMessage, data)
}

func (fc *fakeConn) mustSend(t *testing.T, v any) {
	t.Helper()
	if err := fc.send(v); err != nil {
		t.Fatalf("server write: %v", err)
	}
}

// closeWith closes the way the real server does: a close frame, then the
// connection.
func (fc *fakeConn) closeWith(code int, reason string) {
	fc.wmu.Lock()
	_ = fc.ws.WriteControl(websocket.CloseMessage, websocket.FormatCloseMessage(code, reason),
		time.Now().Add(time.Second))
	fc.wmu.Unlock()
	_ = fc.ws.Close()
}

// drop cuts the connection without a close frame, like a crashed node.
func (fc *fakeConn) drop() { _ = fc.ws.Close() }

// next returns the next frame the client wrote (pings and acks aside).
func (fc *fakeConn) next(t *testing.T) wire.ClientFrame {
	t.Helper()
	select {
	case f, ok := <-fc.in:
		if !ok {
			t.Fatal("connection closed while waiting for a frame")
		}
		return f
	case <-time.After(waitFor):
		t.Fatal("no frame from the client")
	}
	return wire.ClientFrame{}
}

func (fc *fakeConn) ackList() []int64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	return append([]int64(nil), fc.acks...)
}

func (fc *fakeConn) lastAck() int64 {
	fc.mu.Lock()
	defer fc.mu.Unlock()
	if len(fc.acks) == 0 {
		return 0
	}
	return fc.acks[len(fc.acks)-1]
}

func (fc *fakeConn) waitAck(t *testing.T, cursor int64) {
	t.Helper()
	eventually(t, func() bool { return fc.lastAck() >= cursor }, "ack %d (acks %v)", cursor, fc.ackList())
}

func eventually(t *testing.T, cond func() bool, format string, args ...any) {
	t.Helper()
	deadline := time.Now().Add(waitFor)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for "+format, args...)
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func message(cursor int64, msgID string) wire.Message {
	return wire.Message{Type: wire.TypeMessage, Cursor: cursor, MsgID: msgID, ChatID: "chat1",
		Seq: cursor, From: "u2", FromDevice: "d2", TS: 1700000000000, Body: wire.Body{Text: "hi " + msgID}}
}

func nextEvent(t *testing.T, c *Client) wire.ServerFrame {
	t.Helper()
	select {
	case f, ok := <-c.Events():
		if !ok {
			t.Fatalf("events closed (err %v)", c.Err())
		}
		return f
	case <-time.After(waitFor):
		t.Fatal("no event")
	}
	return wire.ServerFrame{}
}

// noEvent checks nothing arrives for a short while.
func noEvent(t *testing.T, c *Client, d time.Duration) {
	t.Helper()
	select {
	case f, ok := <-c.Events():
		if ok {
			t.Fatalf("unexpected event %+v", f)
		}
	case <-time.After(d):
	}
}

func waitEventsClosed(t *testing.T, c *Client) {
	t.Helper()
	timeout := time.After(waitFor)
	for {
		select {
		case _, ok := <-c.Events():
			if !ok {
				return
			}
		case <-timeout:
			t.Fatal("events not closed")
		}
	}
}

func connect(t *testing.T, fs *fakeServer, c *Client) *fakeConn {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), waitFor)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("connect: %v", err)
	}
	return fs.accept(t)
}

type sendResult struct {
	sent wire.Sent
	err  error
}

// sendAsync starts a Send and returns where its result will arrive.
func sendAsync(c *Client, id, text string) <-chan sendResult {
	ch := make(chan sendResult, 1)
	go func() {
		ctx, cancel := context.WithTimeout(context.Background(), waitFor)
		defer cancel()
		s, err := c.SendWithID(ctx, id, "u2", wire.Body{Text: text}, "")
		ch <- sendResult{s, err}
	}()
	return ch
}

func result(t *testing.T, ch <-chan sendResult) sendResult {
	t.Helper()
	select {
	case r := <-ch:
		return r
	case <-time.After(waitFor):
		t.Fatal("send did not return")
	}
	return sendResult{}
}

func sentFor(f wire.ClientFrame, seq int64) wire.Sent {
	return wire.Sent{Type: wire.TypeSent, ID: f.ID, MsgID: "m-" + f.ID, ChatID: "chat1", Seq: seq, TS: 1700000000000}
}
