package bench

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"
)

// Modes.
const (
	ModeIdle   = "idle"
	ModeClosed = "closed"
	ModeRate   = "rate"
)

// Defaults of Config fields left at their zero value.
const (
	DefaultAddr         = "127.0.0.1:8080"
	DefaultSMSListen    = "127.0.0.1:9099"
	DefaultConns        = 10000
	DefaultHold         = 20 * time.Second
	DefaultSettle       = 5 * time.Second
	DefaultPairs        = 1000
	DefaultInflight     = 1 // closed mode
	DefaultRateInflight = 8 // rate mode
	DefaultDuration     = 20 * time.Second
	DefaultWarmup       = 3 * time.Second
	DefaultRate         = 5000
	DefaultDrain        = 10 * time.Second
	DefaultConcurrency  = 64
)

// MaxConns is the most devices one bench process connects: each socket is
// a file descriptor, and the machine Tern is developed on allows 20,000 per
// process, some of which the bench needs for itself.
const MaxConns = 18000

// Config is one bench run. Zero values take the defaults above, except
// Warmup, which is taken literally when WarmupSet is true (a zero warmup is
// legitimate).
type Config struct {
	// Addr is the server: host:port or a base URL (http://host:port).
	Addr string `json:"addr"`
	// Mode is idle, closed or rate.
	Mode string `json:"mode"`

	// Conns is the number of devices idle mode connects.
	Conns int `json:"conns,omitempty"`
	// Hold is how long idle mode holds them before measuring.
	Hold time.Duration `json:"hold,omitempty"`
	// Settle is how long idle mode waits after provisioning before it
	// takes the memory baseline, so the garbage of sign-up is not counted.
	Settle time.Duration `json:"settle,omitempty"`

	// Pairs is the number of sender→receiver device pairs (2×Pairs users)
	// of the closed and rate modes.
	Pairs int `json:"pairs,omitempty"`
	// Inflight is, in closed mode, the messages each sender keeps
	// outstanding (sent and not yet delivered); in rate mode, the sends
	// each sender may have waiting for their sent answer at once (a cap
	// on the open loop: when every one waits, later sends start late,
	// which the schedule lag shows and the latencies include).
	Inflight int `json:"inflight,omitempty"`
	// Duration is the measured window; Warmup runs before it, uncounted.
	Duration  time.Duration `json:"duration,omitempty"`
	Warmup    time.Duration `json:"warmup"`
	WarmupSet bool          `json:"-"`
	// Rate is the offered load of rate mode, messages per second in all.
	Rate float64 `json:"rate,omitempty"`
	// Drain is how long the end waits for outstanding messages to be
	// delivered; what is still missing then counts as lost.
	Drain time.Duration `json:"drain,omitempty"`
	// Size pads message texts to this many bytes (0: no padding; the text
	// carries about 40 bytes of bench bookkeeping anyway).
	Size int `json:"size,omitempty"`

	// RunID seeds the phone number series: the same RunID gives the same
	// phones (hence the same users). Empty means a fresh random one.
	RunID string `json:"run_id"`
	// SessionsFile, when set, keeps device sessions between runs: existing
	// ones are refreshed instead of signed up again, new ones are added.
	SessionsFile string `json:"sessions_file,omitempty"`
	// SMSListen is where the built-in SMS sink listens for the codes the
	// server's http SMS provider posts. Unused when CodeSource is set.
	SMSListen string `json:"sms_listen,omitempty"`
	// CodeSource, if set, returns the code texted to phone instead of the
	// built-in sink (tests pass their own sink's).
	CodeSource func(ctx context.Context, phone string) (string, error) `json:"-"`
	// Concurrency bounds sign-ups, refreshes and connects in flight.
	Concurrency int `json:"concurrency,omitempty"`
}

// withDefaults fills zero fields and checks the rest.
func (c Config) withDefaults() (Config, error) {
	if c.Addr == "" {
		c.Addr = DefaultAddr
	}
	if !strings.Contains(c.Addr, "://") {
		c.Addr = "http://" + c.Addr
	}
	c.Addr = strings.TrimRight(c.Addr, "/")
	if c.Mode == "" {
		c.Mode = ModeClosed
	}
	if c.SMSListen == "" {
		c.SMSListen = DefaultSMSListen
	}
	if c.Concurrency <= 0 {
		c.Concurrency = DefaultConcurrency
	}
	if c.Drain <= 0 {
		c.Drain = DefaultDrain
	}
	if c.Size < 0 {
		return c, errors.New("size must not be negative")
	}
	switch c.Mode {
	case ModeIdle:
		if c.Conns <= 0 {
			c.Conns = DefaultConns
		}
		if c.Conns > MaxConns {
			return c, fmt.Errorf("conns %d: at most %d sockets fit in one process's open-file limit", c.Conns, MaxConns)
		}
		if c.Hold <= 0 {
			c.Hold = DefaultHold
		}
		if c.Settle <= 0 {
			c.Settle = DefaultSettle
		}
	case ModeClosed, ModeRate:
		if c.Pairs <= 0 {
			c.Pairs = DefaultPairs
		}
		if 2*c.Pairs > MaxConns {
			return c, fmt.Errorf("pairs %d: at most %d sockets fit in one process's open-file limit", c.Pairs, MaxConns)
		}
		if c.Inflight <= 0 {
			c.Inflight = DefaultInflight
			if c.Mode == ModeRate {
				c.Inflight = DefaultRateInflight
			}
		}
		if c.Duration <= 0 {
			c.Duration = DefaultDuration
		}
		if !c.WarmupSet && c.Warmup == 0 {
			c.Warmup = DefaultWarmup
		}
		if c.Warmup < 0 {
			return c, errors.New("warmup must not be negative")
		}
		if c.Mode == ModeRate && c.Rate <= 0 {
			c.Rate = DefaultRate
		}
	default:
		return c, fmt.Errorf("mode %q: want idle, closed or rate", c.Mode)
	}
	return c, nil
}
