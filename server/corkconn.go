package server

import (
	"bufio"
	"net"
	"net/http"
	"sync"
	"time"
)

// corkLimit is how many bytes a corked socket holds before it writes them
// anyway: enough for a window of message frames, small enough that the
// pooled buffers stay cheap.
const corkLimit = 32 << 10

// corkConn lets a session's writer put a batch of WebSocket frames on the
// wire in one write call instead of one per frame. gorilla/websocket
// writes every message straight to its net.Conn; on a busy node the write
// system calls were a fifth of the server's CPU (docs/benchmarks.md), and a
// session that has several frames queued can send them together.
//
// While corked, writes are appended to a buffer borrowed from a pool;
// uncork writes it out and returns it, so an idle socket holds no buffer.
// Writes while not corked go straight through. mu serialises every write
// to the socket, so a control frame written by another goroutine (a pong,
// a close) never lands inside a flush.
//
// The first failed write sticks: every later one fails with it, as gorilla
// itself refuses to write after a failure. Otherwise a flush cut short by
// its deadline would be followed on the wire by a close frame or a pong
// in the middle of a frame.
type corkConn struct {
	net.Conn
	pool *sync.Pool
	// closeWait bounds how long Close waits for a write under way to end,
	// so that the close frame queued behind it still goes out.
	closeWait time.Duration

	mu     sync.Mutex
	corked bool
	buf    *[]byte
	err    error
}

func newCorkConn(c net.Conn, pool *sync.Pool, closeWait time.Duration) *corkConn {
	return &corkConn{Conn: c, pool: pool, closeWait: closeWait}
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.err != nil {
		return 0, c.err
	}
	if !c.corked {
		return c.writeLocked(p)
	}
	if c.buf == nil {
		c.buf = c.pool.Get().(*[]byte)
	}
	if len(*c.buf)+len(p) > corkLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > corkLimit {
			return c.writeLocked(p)
		}
		c.buf = c.pool.Get().(*[]byte)
	}
	*c.buf = append(*c.buf, p...)
	return len(p), nil
}

// flushLocked writes what the buffer holds and gives the buffer back.
// The write deadline is the one gorilla set for the last frame buffered.
func (c *corkConn) flushLocked() error {
	if c.buf == nil {
		return nil
	}
	b := c.buf
	c.buf = nil
	var err error
	if len(*b) > 0 && c.err == nil {
		_, err = c.writeLocked(*b)
	}
	*b = (*b)[:0]
	c.pool.Put(b)
	return err
}

func (c *corkConn) writeLocked(p []byte) (int, error) {
	n, err := c.Conn.Write(p)
	if err != nil {
		c.err = err
	}
	return n, err
}

// SetWriteDeadline waits for a write under way: a pong written by another
// goroutine must not shorten the deadline of a flush in progress.
func (c *corkConn) SetWriteDeadline(t time.Time) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.Conn.SetWriteDeadline(t)
}

// cork starts holding writes.
func (c *corkConn) cork() {
	c.mu.Lock()
	c.corked = true
	c.mu.Unlock()
}

// uncork writes what was held and stops holding.
func (c *corkConn) uncork() error {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.corked = false
	return c.flushLocked()
}

// Close writes what is held (a close frame, typically), then closes. When
// a write is under way it lets it end first, in the background and for at
// most closeWait: a write blocked on a peer that stopped reading is ended
// by the close itself.
func (c *corkConn) Close() error {
	if c.mu.TryLock() {
		c.closeLocked()
		return c.Conn.Close()
	}
	go func() {
		force := time.AfterFunc(c.closeWait, func() { _ = c.Conn.Close() })
		defer force.Stop()
		c.mu.Lock()
		c.closeLocked()
		_ = c.Conn.Close()
	}()
	return nil
}

// closeLocked flushes what is held and releases mu.
func (c *corkConn) closeLocked() {
	_ = c.flushLocked()
	c.corked = false
	c.mu.Unlock()
}

// corkWriter hands gorilla/websocket's upgrader a hijacked connection
// wrapped in a corkConn. The handshake answer is written before anything
// corks, so it goes straight through.
type corkWriter struct {
	http.ResponseWriter
	pool      *sync.Pool
	closeWait time.Duration
	conn      *corkConn
}

func (w *corkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = newCorkConn(c, w.pool, w.closeWait)
	return w.conn, brw, nil
}
