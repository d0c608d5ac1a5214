package client

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"log/slog"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/tern-im/tern/wire"
)

// Defaults for Options fields left at their zero value.
const (
	DefaultEventBuffer  = 256
	DefaultBackoffMin   = 100 * time.Millisecond
	DefaultBackoffMax   = 5 * time.Second
	DefaultDedupeWindow = 65536
	DefaultKeepAlive    = 30 * time.Second
	DefaultWriteTimeout = 10 * time.Second
	DefaultDialTimeout  = 10 * time.Second
	DefaultReadLimit    = 16 << 20
	DefaultAckDelay     = 20 * time.Millisecond
)

// Errors a Client returns on its own (server errors are *wire.Error).
var (
	// ErrClosed: Close was called, or the connection loop has stopped.
	ErrClosed = errors.New("client: closed")
	// ErrNotConnected: a WebSocket operation before Connect.
	ErrNotConnected = errors.New("client: not connected")
	// ErrConnectionLost: the socket dropped before a ping was answered.
	ErrConnectionLost = errors.New("client: connection lost")
	// ErrReplaced: the server closed the socket with 4409 because this
	// device connected elsewhere; the client does not reconnect.
	ErrReplaced = errors.New("client: device connected elsewhere")
	// ErrSignedOut: the server refused the device's tokens (401 or 4401 and
	// the refresh failed); the client does not reconnect.
	ErrSignedOut = errors.New("client: device signed out")
)

// Options tune a Client. The zero value is ready to use.
type Options struct {
	// HTTPClient makes REST calls; nil uses http.DefaultClient.
	HTTPClient *http.Client
	// Dialer opens WebSockets; nil uses websocket.DefaultDialer. A load
	// generator should share one Dialer with a WriteBufferPool among all its
	// clients so idle connections hold no write buffer.
	Dialer *websocket.Dialer
	// ManualAck leaves acking to the application (Ack). By default the
	// client acks every inbox event once it is on the Events channel.
	ManualAck bool
	// AckDelay is how long the client gathers further events before it
	// acks: acks are cumulative, so one frame then covers a burst. It
	// delays the sender's delivered tick by as much, which no one sees at
	// 20 ms, and it halved the ack frames of a load generator's device
	// receiving a busy group. 0 means DefaultAckDelay, negative acks every
	// event at once.
	AckDelay time.Duration
	// EventBuffer is the capacity of the Events channel: 0 means
	// DefaultEventBuffer, negative means unbuffered. When it is full the
	// client stops reading the socket, and the server, which only sends a
	// bounded window of unacked events, waits. The buffer is allocated up
	// front at about 300 bytes a slot, so a load generator keeps it small.
	EventBuffer int
	// Backoff bounds the delay between reconnect attempts, which doubles
	// from Min up to Max, with jitter. Zero fields take the defaults.
	Backoff struct{ Min, Max time.Duration }
	// Log receives connection events; nil discards them.
	Log *slog.Logger
	// DedupeWindow is how many msg_ids are remembered to drop replayed
	// messages: 0 means DefaultDedupeWindow, negative turns dedupe off
	// (tests that want to observe replays do that).
	DedupeWindow int
	// KeepAlive is the idle time after which a ping frame is sent, so that
	// neither end's read deadline trips on a quiet connection; it also sets
	// the client's own read deadline (3×KeepAlive). 0 means
	// DefaultKeepAlive, negative turns keepalive and the read deadline off.
	KeepAlive time.Duration
	// WriteTimeout bounds one frame write; 0 means DefaultWriteTimeout.
	WriteTimeout time.Duration
	// DialTimeout bounds one reconnect attempt (TCP, TLS and upgrade);
	// 0 means DefaultDialTimeout. Connect's first dial obeys its ctx instead.
	DialTimeout time.Duration
	// ReadLimit is the largest frame the client accepts; 0 means
	// DefaultReadLimit. Keep it above the server's frame limit: a frame over
	// it closes the socket, and the server would replay the same frame.
	ReadLimit int64
	// NoRefresh disables the automatic token refresh on 401 (REST and
	// WebSocket) and 4401; tests of revocation use it.
	NoRefresh bool
}

// Client is one device's connection to a Tern server. Its methods are safe
// for concurrent use.
type Client struct {
	base   string // e.g. http://host:8080, no trailing slash
	wsURL  string
	opts   Options
	hc     *http.Client
	dialer *websocket.Dialer
	log    *slog.Logger
	idPfx  string // random per client, so ids are unique across devices

	sessMu sync.Mutex
	sess   wire.Session
	// refreshMu serializes refreshes so concurrent 401s rotate the refresh
	// token once, not once per caller (the second rotation would fail).
	refreshMu sync.Mutex

	idSeq atomic.Uint64

	// writeMu serializes writes to the socket: gorilla allows one writer.
	writeMu sync.Mutex

	// mu guards the connection state below.
	mu       sync.Mutex
	state    connState
	conn     *wsConn              // nil while disconnected
	ready    chan struct{}        // closed when conn becomes non-nil
	sends    map[string]*sendCall // unanswered sends by id
	pings    map[string]*pingCall
	order    uint64 // issue order of sends, so resends keep it
	stopErr  error  // why the loop stopped; nil after Close
	stopped  chan struct{}
	loopDone chan struct{}
	cancel   context.CancelFunc

	events  chan wire.ServerFrame
	ack     ackState
	handMu  sync.Mutex    // held by the reader while it hands out an event
	ackKick chan struct{} // cap 1: the loop has an ack to consider
	dedupe  *dedupe       // used by the reader of the moment, one at a time

	stats struct {
		connects, reconnects, duplicates, acks, resends, refreshes atomic.Int64
	}
}

type connState int

const (
	stateIdle connState = iota
	stateConnecting
	stateRunning
	stateStopped
)

// New returns a Client for the server at baseURL (like
// "http://127.0.0.1:8080"). It does no I/O.
func New(baseURL string, opts Options) *Client {
	base := strings.TrimRight(baseURL, "/")
	c := &Client{
		base:    base,
		wsURL:   wsURLFor(base) + "/v1/ws",
		opts:    opts,
		hc:      opts.HTTPClient,
		dialer:  opts.Dialer,
		log:     opts.Log,
		idPfx:   randomHex(8),
		ready:   make(chan struct{}),
		sends:   make(map[string]*sendCall),
		pings:   make(map[string]*pingCall),
		stopped: make(chan struct{}),
		ackKick: make(chan struct{}, 1),
	}
	if c.hc == nil {
		c.hc = http.DefaultClient
	}
	if c.dialer == nil {
		c.dialer = websocket.DefaultDialer
	}
	if c.log == nil {
		c.log = slog.New(slog.DiscardHandler)
	}
	switch n := opts.EventBuffer; {
	case n == 0:
		c.events = make(chan wire.ServerFrame, DefaultEventBuffer)
	case n < 0:
		c.events = make(chan wire.ServerFrame)
	default:
		c.events = make(chan wire.ServerFrame, n)
	}
	switch n := opts.DedupeWindow; {
	case n == 0:
		c.dedupe = newDedupe(DefaultDedupeWindow)
	case n > 0:
		c.dedupe = newDedupe(n)
	}
	if c.opts.Backoff.Min <= 0 {
		c.opts.Backoff.Min = DefaultBackoffMin
	}
	if c.opts.Backoff.Max <= 0 {
		c.opts.Backoff.Max = DefaultBackoffMax
	}
	if c.opts.Backoff.Max < c.opts.Backoff.Min {
		c.opts.Backoff.Max = c.opts.Backoff.Min
	}
	if c.opts.AckDelay == 0 {
		c.opts.AckDelay = DefaultAckDelay
	}
	if c.opts.KeepAlive == 0 {
		c.opts.KeepAlive = DefaultKeepAlive
	}
	if c.opts.WriteTimeout <= 0 {
		c.opts.WriteTimeout = DefaultWriteTimeout
	}
	if c.opts.DialTimeout <= 0 {
		c.opts.DialTimeout = DefaultDialTimeout
	}
	if c.opts.ReadLimit <= 0 {
		c.opts.ReadLimit = DefaultReadLimit
	}
	return c
}

// BaseURL is the server address the client was made with.
func (c *Client) BaseURL() string { return c.base }

// SetSession replaces the device session (tokens and ids). A connected
// client uses the new access token from its next dial on.
func (c *Client) SetSession(s wire.Session) {
	c.sessMu.Lock()
	c.sess = s
	c.sessMu.Unlock()
}

// Session returns the current device session.
func (c *Client) Session() wire.Session {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	return c.sess
}

func (c *Client) accessToken() string {
	c.sessMu.Lock()
	defer c.sessMu.Unlock()
	return c.sess.AccessToken
}

// NewID returns an id unique to this client and, with overwhelming
// probability, to every other: the client message ids of Send use it.
func (c *Client) NewID() string {
	return c.idPfx + "-" + strconv.FormatUint(c.idSeq.Add(1), 10)
}

// Stats counts what a client did since New; the load generator reports it.
type Stats struct {
	Connects   int64 // successful dials, the first included
	Reconnects int64 // successful dials after a lost connection
	Duplicates int64 // messages dropped by dedupe
	Acks       int64 // ack frames written
	Resends    int64 // sends written again after a reconnect
	Refreshes  int64 // token refreshes that succeeded
}

// Stats returns the client's counters.
func (c *Client) Stats() Stats {
	return Stats{
		Connects:   c.stats.connects.Load(),
		Reconnects: c.stats.reconnects.Load(),
		Duplicates: c.stats.duplicates.Load(),
		Acks:       c.stats.acks.Load(),
		Resends:    c.stats.resends.Load(),
		Refreshes:  c.stats.refreshes.Load(),
	}
}

func wsURLFor(base string) string {
	switch {
	case strings.HasPrefix(base, "https://"):
		return "wss://" + strings.TrimPrefix(base, "https://")
	case strings.HasPrefix(base, "http://"):
		return "ws://" + strings.TrimPrefix(base, "http://")
	default:
		return base
	}
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails on supported platforms
	return hex.EncodeToString(b)
}
