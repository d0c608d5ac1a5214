package server

import (
	"bufio"
	"net"
	"net/http"
	"sync"
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
type corkConn struct {
	net.Conn
	pool *sync.Pool

	mu     sync.Mutex
	corked bool
	buf    *[]byte
}

func newCorkConn(c net.Conn, pool *sync.Pool) *corkConn {
	return &corkConn{Conn: c, pool: pool}
}

func (c *corkConn) Write(p []byte) (int, error) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if !c.corked {
		return c.Conn.Write(p)
	}
	if c.buf == nil {
		c.buf = c.pool.Get().(*[]byte)
	}
	if len(*c.buf)+len(p) > corkLimit {
		if err := c.flushLocked(); err != nil {
			return 0, err
		}
		if len(p) > corkLimit {
			return c.Conn.Write(p)
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
	if len(*b) > 0 {
		_, err = c.Conn.Write(*b)
	}
	*b = (*b)[:0]
	c.pool.Put(b)
	return err
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

// Close writes what is held (a close frame, typically) when no write is
// in progress, then closes. A write blocked on a peer that stopped reading
// holds mu: Close does not wait for it but closes under it, which is what
// ends that write.
func (c *corkConn) Close() error {
	if c.mu.TryLock() {
		_ = c.flushLocked()
		c.corked = false
		c.mu.Unlock()
	}
	return c.Conn.Close()
}

// corkWriter hands gorilla/websocket's upgrader a hijacked connection
// wrapped in a corkConn. The handshake answer is written before anything
// corks, so it goes straight through.
type corkWriter struct {
	http.ResponseWriter
	pool *sync.Pool
	conn *corkConn
}

func (w *corkWriter) Hijack() (net.Conn, *bufio.ReadWriter, error) {
	c, brw, err := http.NewResponseController(w.ResponseWriter).Hijack()
	if err != nil {
		return nil, nil, err
	}
	w.conn = newCorkConn(c, w.pool)
	return w.conn, brw, nil
}
