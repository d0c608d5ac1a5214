package rabbitmq

import (
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/url"
	"time"
)

// Config configures a Router. Zero fields take the defaults noted.
type Config struct {
	// URL of the broker, amqp://user:pass@host:port/vhost. Required.
	URL string
	// NodeID names this node in queue and connection names, which is what
	// an operator sees in the broker. Default: a random id.
	NodeID string
	// Exchange is the direct exchange all nodes share. Default
	// "tern.devices".
	Exchange string
	// MaxInFlight bounds the publishes awaiting the broker's confirm.
	// Default 1024.
	MaxInFlight int
	// Log receives connection events. Default slog.Default().
	Log *slog.Logger
	// ReconnectMin and ReconnectMax bound the backoff between reconnection
	// attempts. Defaults 100ms and 5s.
	ReconnectMin, ReconnectMax time.Duration
	// PublishTimeout bounds one Publish, waiting for room and for the
	// confirm. Default 5s.
	PublishTimeout time.Duration
	// OutageResync is how often every attached handler's Resync is called
	// while the broker link is down, so that connected devices still get
	// their events from the inbox during an outage. Default 1s; negative
	// turns the polling off (handlers are still resynced when the link fails
	// and after reconnecting).
	OutageResync time.Duration
	// Heartbeat is the AMQP heartbeat interval the node asks for. It is how
	// soon the broker notices a node that vanished without closing its
	// connection (host down, partition) and drops its queue; until then
	// publishes to that node's devices are confirmed but not delivered, and
	// push does not fire. The broker takes the lower of its own value and
	// this. Default 10s.
	Heartbeat time.Duration
}

const (
	defaultExchange       = "tern.devices"
	defaultMaxInFlight    = 1024
	defaultReconnectMin   = 100 * time.Millisecond
	defaultReconnectMax   = 5 * time.Second
	defaultPublishTimeout = 5 * time.Second
	defaultOutageResync   = time.Second
	defaultHeartbeat      = 10 * time.Second

	// dialTimeout bounds the TCP connect and the AMQP handshake.
	dialTimeout = 10 * time.Second
	// closeTimeout bounds the queue deletion on Close when the broker is
	// slow; the connection is closed regardless.
	closeTimeout = 2 * time.Second
	// prefetch bounds the envelopes the broker pushes ahead of our acks, so
	// a node that falls behind leaves them in its queue instead of memory.
	prefetch = 1024
	// maxKey is the longest routing key (an AMQP short string).
	maxKey = 255
	// maxNodeID leaves room in a queue name (a short string too) for the
	// prefix and the random suffix.
	maxNodeID = maxKey - len("tern.node..") - 16

	// ackBatch acknowledges deliveries in groups; an idle consumer
	// acknowledges at once.
	ackBatch = prefetch / 4
)

func (c Config) withDefaults() (Config, error) {
	if c.URL == "" {
		return c, errors.New("rabbitmq: Config.URL is required")
	}
	if c.NodeID == "" {
		c.NodeID = randomID()
	}
	if len(c.NodeID) > maxNodeID {
		return c, fmt.Errorf("rabbitmq: Config.NodeID of %d bytes, at most %d", len(c.NodeID), maxNodeID)
	}
	if c.Exchange == "" {
		c.Exchange = defaultExchange
	}
	if c.MaxInFlight <= 0 {
		c.MaxInFlight = defaultMaxInFlight
	}
	if c.Log == nil {
		c.Log = slog.Default()
	}
	if c.ReconnectMin <= 0 {
		c.ReconnectMin = defaultReconnectMin
	}
	if c.ReconnectMax <= 0 {
		c.ReconnectMax = defaultReconnectMax
	}
	if c.ReconnectMax < c.ReconnectMin {
		c.ReconnectMax = c.ReconnectMin
	}
	if c.PublishTimeout <= 0 {
		c.PublishTimeout = defaultPublishTimeout
	}
	if c.OutageResync == 0 {
		c.OutageResync = defaultOutageResync
	}
	if c.Heartbeat <= 0 {
		c.Heartbeat = defaultHeartbeat
	}
	return c, nil
}

func randomID() string {
	var b [8]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// redact hides the password of a broker URL, for logs and errors.
func redact(raw string) string {
	u, err := url.Parse(raw)
	if err != nil {
		return "(unparsable URL)"
	}
	return u.Redacted()
}
