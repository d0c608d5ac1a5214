package bench

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/tern-im/tern/wire"
)

// Modes.
const (
	ModeIdle   = "idle"
	ModeClosed = "closed"
	ModeRate   = "rate"
	ModeGroup  = "group"
	// ModePresence churns connected devices that follow each other's
	// presence.
	ModePresence = "presence"
	// ModeMedia uploads files and downloads them again.
	ModeMedia = "media"
	// ModeBusiness drives the business API: customers' messages to a
	// business, posted to the bench's webhook receiver, and the
	// business's REST sends to its connected customers.
	ModeBusiness = "business"
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

	// Group mode.
	DefaultGroupMembers   = 1024
	DefaultGroupDevices   = 2
	DefaultGroupConnected = 256
	DefaultGroupSenders   = 4
	DefaultGroupRate      = 20 // group messages per second
	DefaultGroupSize      = 100
	DefaultGroupDuration  = 30 * time.Second

	// Presence mode (Conns devices, one per user).
	DefaultFollows          = 50
	DefaultChurn            = 0.01 // of the devices per second
	DefaultPresenceDuration = 60 * time.Second

	// Media mode: one user uploads MediaCount files of MediaSize bytes,
	// MediaParallel at a time, then downloads them.
	DefaultMediaSize     = 1 << 20
	DefaultMediaCount    = 20
	DefaultMediaParallel = 1

	// Business mode.
	DefaultBusinessConns    = 100 // connected customers
	DefaultBusinessInflight = 16  // REST sends in flight (workers)
	DefaultBusinessRate     = 40  // customer messages/s to the businesses
	DefaultBusinessDuration = 15 * time.Second
	// DefaultBusinessRateLimit is the rate_per_second business mode gives
	// each business: the most the server allows a number (the Cloud API's
	// is 80 by default, up to 1,000 on upgrade).
	DefaultBusinessRateLimit = 1000
	DefaultAdminAddr         = "127.0.0.1:9090"
	DefaultWebhookListen     = "127.0.0.1:0"
)

// MaxBusinesses bounds business mode's businesses: each is one number
// made through the admin listener, with its own webhook queue.
const MaxBusinesses = 64

// Business mode's phases, in the order they run (Config.Phases).
const (
	PhaseWebhooks = "webhooks"
	PhaseSends    = "sends"
)

// MaxMediaParallel bounds media mode's transfers at once: each upload
// holds a temporary file on the server (and, with media S3, up to a
// 16 MiB part in its memory), and the point is the throughput of a few
// transfers, not a flood.
const MaxMediaParallel = 64

// MediaKind is the kind media mode uploads as: a document takes any type
// (random bytes sniff as application/octet-stream) and is stored as sent,
// so the figures are the transfer path's, without image processing.
const MediaKind = "document"

// MaxGroupMembers is the most members group mode puts in its group: the
// server's default group limit (the creator included), so the group is
// made with one POST /v1/groups.
const MaxGroupMembers = 1024

// MaxGroupDevices bounds the devices per member: each is one sign-in of the
// member's phone, and a phone gets 10 codes an hour by default
// (--codes-per-phone-hour).
const MaxGroupDevices = 8

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
	// Mode is idle, closed, rate, group, presence, media or business.
	Mode string `json:"mode"`

	// Conns is the number of devices idle and presence modes connect;
	// in business mode, the customers (one device each).
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
	// Rate is the offered load of rate mode, messages per second in all;
	// in group mode, group messages per second, all senders together; in
	// business mode, the customers' messages per second to the
	// businesses, all together (the webhooks phase).
	Rate float64 `json:"rate,omitempty"`
	// Drain is how long the end waits for outstanding messages to be
	// delivered; what is still missing then counts as lost.
	Drain time.Duration `json:"drain,omitempty"`
	// Size pads message texts to this many bytes (0: no padding, except
	// in group mode, where 0 means DefaultGroupSize; the text carries about
	// 40 bytes of bench bookkeeping anyway).
	Size int `json:"size,omitempty"`

	// GroupMembers is the size of group mode's one group, its creator
	// included (at most MaxGroupMembers).
	GroupMembers int `json:"group_members,omitempty"`
	// GroupDevices is the devices of each member, each a sign-in of the
	// member's phone.
	GroupDevices int `json:"group_devices,omitempty"`
	// GroupConnected is how many members connect, with all their devices;
	// the others' devices are signed in but never connect, like phones
	// that are off, so their inboxes fill up.
	GroupConnected int `json:"group_connected,omitempty"`
	// GroupSenders is how many of the connected members send (each from
	// its first device), at Rate group messages/s in all.
	GroupSenders int `json:"group_senders,omitempty"`

	// Follows is how many other users each device of presence mode
	// follows (presence_sub takes at most wire.MaxPresenceIn).
	Follows int `json:"follows,omitempty"`
	// Churn is the fraction of presence mode's devices that change each
	// second: an online one closes, an offline one connects again.
	Churn float64 `json:"churn,omitempty"`

	// MediaSize is the size in bytes of each file media mode uploads.
	MediaSize int64 `json:"media_size,omitempty"`
	// MediaCount is how many files media mode uploads, then downloads.
	// Each upload counts against the server's --uploads-per-user-hour.
	MediaCount int `json:"media_count,omitempty"`
	// MediaParallel is how many of media mode's transfers run at once.
	MediaParallel int `json:"media_parallel,omitempty"`

	// Businesses is how many businesses business mode drives; customer i
	// talks to business i mod Businesses. Each has its own webhook queue
	// and its own rate.
	Businesses int `json:"businesses,omitempty"`
	// BusinessFile, when set, keeps the businesses (their ids, API token
	// and app secret; written 0600) between runs: those in it are used,
	// and what is missing is made and added. A file made by hand holds at
	// least phone, phone_number_id, waba_id, access_token and app_secret
	// (the fields tern business create prints, and the phone).
	BusinessFile string `json:"business_file,omitempty"`
	// AdminAddr and AdminToken reach the node's admin listener (its
	// --admin-addr and --admin-token), which makes businesses; with them
	// the bench also signs in to the admin API (as the dashboard account
	// "tern-bench", made or reset through the same listener) to set each
	// business's rate and turn its 24-hour rule off. Without a token, the
	// businesses must all be in BusinessFile and keep their settings.
	AdminAddr  string `json:"admin_addr,omitempty"`
	AdminToken string `json:"-"`
	// RateLimit is the rate_per_second business mode sets on each
	// business (1 to 1,000), when it has the admin token.
	RateLimit int `json:"rate_limit,omitempty"`
	// SendRate paces business mode's REST sends, all businesses together,
	// open loop; 0 sends as fast as Inflight workers go (closed loop).
	SendRate float64 `json:"send_rate,omitempty"`
	// Phases picks business mode's phases: PhaseWebhooks, PhaseSends or
	// both (empty), comma-separated; they run in that order.
	Phases string `json:"phases,omitempty"`
	// WebhookListen is where business mode's webhook receiver listens; the
	// server must reach it (and, on loopback, allow it with
	// --webhook-allow-private).
	WebhookListen string `json:"webhook_listen,omitempty"`
	// Nodes are the other nodes of a cluster (host:port or base URLs), in
	// business mode: the REST sends go to Addr and these in turn, and the
	// server figures are every node's /metrics summed. Customers connect
	// to Addr.
	Nodes []string `json:"nodes,omitempty"`

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
	case ModeGroup:
		if err := c.groupDefaults(); err != nil {
			return c, err
		}
	case ModePresence:
		if err := c.presenceDefaults(); err != nil {
			return c, err
		}
	case ModeMedia:
		if err := c.mediaDefaults(); err != nil {
			return c, err
		}
	case ModeBusiness:
		if err := c.businessDefaults(); err != nil {
			return c, err
		}
	default:
		return c, fmt.Errorf("mode %q: want idle, closed, rate, group, presence, media or business", c.Mode)
	}
	if len(c.Nodes) > 0 && c.Mode != ModeBusiness {
		return c, errors.New("nodes: only business mode spreads its load over several nodes")
	}
	return c, nil
}

// baseURL makes host:port a base URL, as Addr is.
func baseURL(addr string) string {
	if !strings.Contains(addr, "://") {
		addr = "http://" + addr
	}
	return strings.TrimRight(addr, "/")
}

// businessDefaults fills and checks the fields of business mode.
func (c *Config) businessDefaults() error {
	if c.Conns <= 0 {
		c.Conns = DefaultBusinessConns
	}
	if c.Businesses <= 0 {
		c.Businesses = 1
	}
	if c.Inflight <= 0 {
		c.Inflight = DefaultBusinessInflight
	}
	if c.Rate <= 0 {
		c.Rate = DefaultBusinessRate
	}
	if c.RateLimit == 0 {
		c.RateLimit = DefaultBusinessRateLimit
	}
	if c.Duration <= 0 {
		c.Duration = DefaultBusinessDuration
	}
	if !c.WarmupSet && c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	if c.AdminAddr == "" {
		c.AdminAddr = DefaultAdminAddr
	}
	c.AdminAddr = baseURL(c.AdminAddr)
	if c.WebhookListen == "" {
		c.WebhookListen = DefaultWebhookListen
	}
	if c.Phases == "" {
		c.Phases = PhaseWebhooks + "," + PhaseSends
	}
	nodes := make([]string, 0, len(c.Nodes))
	for _, n := range c.Nodes {
		if n = strings.TrimSpace(n); n != "" {
			nodes = append(nodes, baseURL(n))
		}
	}
	c.Nodes = nodes
	var webhooks, sends bool
	for p := range strings.SplitSeq(c.Phases, ",") {
		switch strings.TrimSpace(p) {
		case PhaseWebhooks:
			webhooks = true
		case PhaseSends:
			sends = true
		default:
			return fmt.Errorf("phases %q: want %s, %s or both, comma-separated", c.Phases, PhaseWebhooks, PhaseSends)
		}
	}
	c.Phases = strings.Join(slices.DeleteFunc([]string{PhaseWebhooks, PhaseSends}, func(p string) bool {
		return p == PhaseWebhooks && !webhooks || p == PhaseSends && !sends
	}), ",")
	switch {
	case c.Warmup < 0:
		return errors.New("warmup must not be negative")
	case c.Conns > MaxConns:
		return fmt.Errorf("conns %d: at most %d sockets fit in one process's open-file limit", c.Conns, MaxConns)
	case c.Businesses > MaxBusinesses:
		return fmt.Errorf("businesses %d: at most %d", c.Businesses, MaxBusinesses)
	case c.Businesses > c.Conns:
		return fmt.Errorf("businesses %d: more than the %d customers (each business needs one)", c.Businesses, c.Conns)
	case c.RateLimit < 1 || c.RateLimit > DefaultBusinessRateLimit:
		return fmt.Errorf("rate limit %d: a business's rate_per_second is 1 to %d", c.RateLimit, DefaultBusinessRateLimit)
	case c.SendRate < 0:
		return fmt.Errorf("send rate %g: want 0 (closed loop) or a rate", c.SendRate)
	case c.Rate*(c.Warmup+c.Duration).Seconds() >= maxSeq:
		return fmt.Errorf("rate %g for %s: more than %d customer messages in one run", c.Rate, c.Warmup+c.Duration, maxSeq)
	}
	return nil
}

// hasPhase says whether business mode runs phase p.
func (c *Config) hasPhase(p string) bool {
	return slices.Contains(strings.Split(c.Phases, ","), p)
}

// groupDefaults fills and checks the fields of group mode.
func (c *Config) groupDefaults() error {
	if c.GroupMembers <= 0 {
		c.GroupMembers = DefaultGroupMembers
	}
	if c.GroupDevices <= 0 {
		c.GroupDevices = DefaultGroupDevices
	}
	if c.GroupConnected <= 0 {
		c.GroupConnected = min(DefaultGroupConnected, c.GroupMembers)
	}
	if c.GroupSenders <= 0 {
		c.GroupSenders = min(DefaultGroupSenders, c.GroupConnected)
	}
	if c.Inflight <= 0 {
		c.Inflight = DefaultRateInflight
	}
	if c.Rate <= 0 {
		c.Rate = DefaultGroupRate
	}
	if c.Size == 0 {
		c.Size = DefaultGroupSize
	}
	if c.Duration <= 0 {
		c.Duration = DefaultGroupDuration
	}
	if !c.WarmupSet && c.Warmup == 0 {
		c.Warmup = DefaultWarmup
	}
	switch {
	case c.Warmup < 0:
		return errors.New("warmup must not be negative")
	case c.GroupMembers < 2 || c.GroupMembers > MaxGroupMembers:
		return fmt.Errorf("group members %d: want 2 to %d (the server's group limit, the creator included)", c.GroupMembers, MaxGroupMembers)
	case c.GroupDevices > MaxGroupDevices:
		return fmt.Errorf("group devices %d: at most %d (each is a sign-in of the member's phone, which gets 10 codes an hour)", c.GroupDevices, MaxGroupDevices)
	case c.GroupConnected > c.GroupMembers:
		return fmt.Errorf("group connected %d: more than the %d members", c.GroupConnected, c.GroupMembers)
	case c.GroupConnected*c.GroupDevices > MaxConns:
		return fmt.Errorf("group connected %d × devices %d: at most %d sockets fit in one process's open-file limit",
			c.GroupConnected, c.GroupDevices, MaxConns)
	case c.GroupConnected*c.GroupDevices < 2:
		return errors.New("group mode needs at least 2 connected devices: one sends, another receives")
	case c.GroupSenders > c.GroupConnected:
		return fmt.Errorf("group senders %d: more than the %d connected members", c.GroupSenders, c.GroupConnected)
	case c.Rate*(c.Warmup+c.Duration).Seconds() >= maxSeq:
		return fmt.Errorf("rate %g for %s: more than %d group messages in one run", c.Rate, c.Warmup+c.Duration, maxSeq)
	}
	return nil
}

// presenceDefaults fills and checks the fields of presence mode.
func (c *Config) presenceDefaults() error {
	if c.Conns <= 0 {
		c.Conns = DefaultConns
	}
	if c.Follows <= 0 {
		c.Follows = DefaultFollows
	}
	if c.Churn <= 0 {
		c.Churn = DefaultChurn
	}
	if c.Duration <= 0 {
		c.Duration = DefaultPresenceDuration
	}
	switch {
	case c.Conns > MaxConns:
		return fmt.Errorf("conns %d: at most %d sockets fit in one process's open-file limit", c.Conns, MaxConns)
	case c.Follows > wire.MaxPresenceIn:
		return fmt.Errorf("follows %d: presence_sub takes at most %d user ids", c.Follows, wire.MaxPresenceIn)
	case c.Follows >= c.Conns:
		return fmt.Errorf("follows %d: each of the %d devices follows other users, so at most %d", c.Follows, c.Conns, c.Conns-1)
	case c.Churn > 1:
		return fmt.Errorf("churn %g: at most 1 (every device changes once a second)", c.Churn)
	case c.Churn*float64(c.Conns)*c.Duration.Seconds() < 1:
		return fmt.Errorf("churn %g × %d devices × %s: not one change", c.Churn, c.Conns, c.Duration)
	}
	return nil
}

// mediaDefaults fills and checks the fields of media mode.
func (c *Config) mediaDefaults() error {
	if c.MediaSize == 0 {
		c.MediaSize = DefaultMediaSize
	}
	if c.MediaCount == 0 {
		c.MediaCount = DefaultMediaCount
	}
	if c.MediaParallel == 0 {
		c.MediaParallel = DefaultMediaParallel
	}
	switch {
	case c.MediaSize < 0:
		return fmt.Errorf("media size %d: want a positive size", c.MediaSize)
	case c.MediaCount < 0:
		return fmt.Errorf("media count %d: want at least 1 file", c.MediaCount)
	case c.MediaParallel < 0 || c.MediaParallel > MaxMediaParallel:
		return fmt.Errorf("media parallel %d: want 1 to %d transfers at once", c.MediaParallel, MaxMediaParallel)
	}
	// More workers than files would only wait.
	c.MediaParallel = min(c.MediaParallel, c.MediaCount)
	return nil
}
