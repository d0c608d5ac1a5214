package server

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/prometheus/client_golang/prometheus"

	"github.com/tern-im/tern/admin"
	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/chat"
	"github.com/tern-im/tern/internal/health"
	"github.com/tern-im/tern/media"
	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/web"
	"github.com/tern-im/tern/wire"
)

const readBufferSize = 1024

// Config holds the limits and timings of one node. Zero fields take the
// defaults of DefaultConfig.
type Config struct {
	NodeID         string
	MaxFrameBytes  int     // larger client frames are refused with too_large
	MaxTextBytes   int     // text + caption of one message
	SendsPerSecond float64 // per device, sustained
	SendBurst      int     // per device, burst
	// Budgets of the other frames, per device: typing, read
	// frames, and the rest (ping, presence_sub, frames that fail to
	// decode). A frame over its budget is answered rate_limited.
	TypingRate, ReadRate, OtherFrameRate Rate
	Window                               int           // unacked inbox events in flight per socket
	IdleTimeout                          time.Duration // a socket that sends nothing for this long is closed
	WriteTimeout                         time.Duration // a write that takes longer closes the socket
	OutboxLimit                          int           // frames queued for one socket before it counts as a slow consumer
	HistoryLimit                         int           // largest history page
	// MediaURLTTL is how long a media URL works (default 5 minutes).
	MediaURLTTL time.Duration
	// MediaGrace is how long an upload waits for a message to carry it;
	// then, never sent, it is deleted (default 24 hours; checked every
	// SweepInterval).
	MediaGrace time.Duration
	// MediaLimits are the largest uploads by kind ("image", "video",
	// "audio", "document", "sticker"), in bytes; a kind not listed has
	// media/imaging's default.
	MediaLimits map[string]int64
	// UploadDir holds uploads while they are checked ("": the system's
	// temporary directory). A file is there at most twice over, for the
	// time of its request.
	UploadDir    string
	MaxGroupSize int // members of one group
	// InboxCheck is how often the node compares the inbox heads of its
	// sessions' devices with what it sent them, and reads the inbox of a
	// session that fell behind: the safety net under routing, for an event
	// whose publish died with its node or its broker link. 0: off.
	InboxCheck time.Duration
	// LookupsPerUserDay and LookupsPerIPDay bound contact discovery: the
	// phone numbers one user, or one client IP, may look up per 24 hours
	// (each number counts, found or not). 0: the default; negative: no limit.
	LookupsPerUserDay int
	LookupsPerIPDay   int
	// SettingsPerUserHour bounds the changes one user may make per hour to
	// what others may see of it (PATCH /v1/me/privacy, PUT /v1/contacts,
	// PUT and DELETE /v1/blocks/{user_id}): each makes every node
	// re-evaluate what the user's followers were told. 0: the default;
	// negative: no limit.
	SettingsPerUserHour int
	// UploadsPerUserHour bounds the files one user may upload per hour
	// (each up to its kind's limit): what one account can put on the
	// node's disk before the collector's day is over. 0: the default;
	// negative: no limit.
	UploadsPerUserHour int
	// EmailCodesPerUserHour bounds the verification codes one user may
	// have mailed per hour, to all addresses together (each address also
	// has the limits of a phone's codes): without it, one account could
	// have codes mailed to any number of strangers. 0: the default;
	// negative: no limit.
	EmailCodesPerUserHour int
	// PushCooldown is how long after a push to a device that no node
	// holds its next events wake it no more: the first push of a burst
	// wakes the phone, which then reads its whole inbox, and a group
	// conversation would otherwise push every offline member's phones for
	// every message. A device that connects to this node starts afresh.
	// 0: the default (3 s); negative: every event pushes.
	PushCooldown time.Duration
	// PushDelay is how long a push to a device that no node holds waits
	// for the device to connect by itself (a phone that lost its signal
	// for a moment): one that does is not pushed. 0: the default (3 s);
	// negative: at once.
	PushDelay time.Duration
	// PushPoll is how often a node looks for pushes that are due (queued
	// by any node, or put back after a failure). 0: the default (1 s).
	PushPoll time.Duration
	// PushPreview puts the message's text in the push (the push service,
	// Google's or a browser maker's, then sees it). Off: "a message came".
	PushPreview bool
	// MediaOrigins are the origins media URLs point at when they are not
	// this node's own (the S3 endpoint): the web client's pages may load
	// files from them (its Content-Security-Policy names them).
	MediaOrigins []string
	// WebPushAllowPrivate takes Web Push endpoints on loopback and
	// private addresses: PUT /v1/devices/current/push accepts them and the
	// node's own client (internal/node) dials them. For tests, and push
	// services on a private network; off, a subscription must name a
	// public host, as every browser's push service does.
	WebPushAllowPrivate bool
	// GapWait is how long a session holds routed events that came out of
	// order, waiting for the ones before them, before it reads its inbox
	// for the gap: a publish overtaken by a later one arrives within
	// milliseconds, a lost one (its node died) is found by that read.
	// 0: the default (50 ms).
	GapWait time.Duration
	// PresenceBeat is how often the node tells the others it is alive; a
	// node silent for three beats is dead and its users are offline.
	// 0: the default (5 s).
	PresenceBeat time.Duration
	// EditWindow is how long an author may edit a message (0: 15 min);
	// DeleteWindow how long it, or a group admin, may delete it for
	// everyone (0: 48 h).
	EditWindow, DeleteWindow time.Duration
	// SweepInterval is how often the node erases the disappearing
	// messages that are due (0: the default, 30 s).
	SweepInterval time.Duration
	// AllowedOrigins are the web origins ("https://chat.example.com")
	// whose pages may open a WebSocket; "*" allows any. Empty: only the
	// origin of the server itself (the Host the request names). Requests
	// without an Origin header (not from a browser) are always allowed.
	AllowedOrigins []string
	// HideMetrics keeps /metrics off the API port (serve MetricsHandler on
	// a private listener instead).
	HideMetrics bool
	// TrustProxy takes the client IP from the last X-Forwarded-For entry
	// (set it only behind a load balancer that appends the address it
	// sees, or overwrites the header).
	TrustProxy bool
	// WebhookAllowPrivate lets business webhooks (and their verification)
	// go to loopback and private addresses (tests, receivers inside the
	// operator's network).
	WebhookAllowPrivate bool
	// MediaLinkAllowPrivate lets the business API's media links (files
	// the server fetches for a business's send) be on loopback and
	// private addresses. Apart from the webhooks' switch: a business
	// chooses its links, and what the server fetches it hands to a
	// customer, who may be the business itself.
	MediaLinkAllowPrivate bool
	// WebhookPoll is how often the node looks at the business webhook
	// queues (0: 1 s); WebhookGiveUp how long an event may keep failing
	// before it is dropped (0: 7 days, the Cloud API's); WebhookRetry the
	// first wait after a failure, doubled at each one after (0: 1 s).
	WebhookPoll, WebhookGiveUp, WebhookRetry time.Duration
	// WebhookLease is how long a node holds a business's queue without
	// renewing it (0: 1 min); a node that dies passes its queues on
	// after it.
	WebhookLease time.Duration
	// AdminHost, if set, is the only host name (the request's Host, its
	// port aside) on which the admin dashboard and API answer, so that
	// they have an origin of their own ("admin.chat.example.com").
	AdminHost string
	// ReportEvery is how often the node writes its report for the
	// dashboard's overview; a node silent for three is shown down.
	// 0: the default (10 s).
	ReportEvery time.Duration
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		NodeID:         "node-1",
		MaxFrameBytes:  64 << 10,
		MaxTextBytes:   16 << 10,
		SendsPerSecond: 30,
		SendBurst:      100,
		TypingRate:     Rate{PerSecond: 2, Burst: 10},
		ReadRate:       Rate{PerSecond: 10, Burst: 100},
		OtherFrameRate: Rate{PerSecond: 5, Burst: 100},
		Window:         512,
		IdleTimeout:    90 * time.Second,
		WriteTimeout:   10 * time.Second,
		OutboxLimit:    2048,
		HistoryLimit:   200,
		MaxGroupSize:   1024,
		// An address book of a few thousand numbers uploads in a day; a
		// scan of a number range does not.
		LookupsPerUserDay: 5000,
		LookupsPerIPDay:   20000,
		// A person changes settings and blocks a few times a day; an app
		// syncs its address book when it starts.
		SettingsPerUserHour: 120,
		// Sharing a whole album is a few dozen files.
		UploadsPerUserHour: 200,
		// A person mistypes an address once or twice.
		EmailCodesPerUserHour: 5,
		PushCooldown:          3 * time.Second,
		PushDelay:             3 * time.Second,
		PushPoll:              time.Second,
		GapWait:               50 * time.Millisecond,
		PresenceBeat:          5 * time.Second,
		EditWindow:            15 * time.Minute,
		DeleteWindow:          48 * time.Hour,
		SweepInterval:         30 * time.Second,
		ReportEvery:           10 * time.Second,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.NodeID == "" {
		c.NodeID = d.NodeID
	}
	if c.MaxFrameBytes <= 0 {
		c.MaxFrameBytes = d.MaxFrameBytes
	}
	if c.MaxTextBytes <= 0 {
		c.MaxTextBytes = d.MaxTextBytes
	}
	if c.SendsPerSecond <= 0 {
		c.SendsPerSecond = d.SendsPerSecond
	}
	if c.SendBurst <= 0 {
		c.SendBurst = d.SendBurst
	}
	for _, r := range []struct{ c, d *Rate }{{&c.TypingRate, &d.TypingRate}, {&c.ReadRate, &d.ReadRate}, {&c.OtherFrameRate, &d.OtherFrameRate}} {
		if r.c.PerSecond <= 0 || r.c.Burst <= 0 {
			*r.c = *r.d
		}
	}
	if c.Window <= 0 {
		c.Window = d.Window
	}
	if c.IdleTimeout <= 0 {
		c.IdleTimeout = d.IdleTimeout
	}
	if c.WriteTimeout <= 0 {
		c.WriteTimeout = d.WriteTimeout
	}
	if c.EditWindow <= 0 {
		c.EditWindow = d.EditWindow
	}
	if c.DeleteWindow <= 0 {
		c.DeleteWindow = d.DeleteWindow
	}
	if c.SweepInterval <= 0 {
		c.SweepInterval = d.SweepInterval
	}
	if c.WebhookPoll <= 0 {
		c.WebhookPoll = time.Second
	}
	if c.WebhookLease <= 0 {
		c.WebhookLease = webhookLeaseDef
	}
	c.WebhookLease = max(c.WebhookLease, webhookMinLease)
	if c.WebhookRetry <= 0 {
		c.WebhookRetry = time.Second
	}
	if c.WebhookGiveUp <= 0 {
		c.WebhookGiveUp = webhookGiveUpDef
	}
	if c.ReportEvery <= 0 {
		c.ReportEvery = d.ReportEvery
	}
	if c.PresenceBeat <= 0 {
		c.PresenceBeat = d.PresenceBeat
	}
	if c.GapWait <= 0 {
		c.GapWait = d.GapWait
	}
	if c.PushCooldown == 0 {
		c.PushCooldown = d.PushCooldown
	}
	switch {
	case c.PushDelay == 0:
		c.PushDelay = d.PushDelay
	case c.PushDelay < 0:
		c.PushDelay = 0
	}
	if c.PushPoll <= 0 {
		c.PushPoll = d.PushPoll
	}
	if c.OutboxLimit <= 0 {
		c.OutboxLimit = d.OutboxLimit
	}
	if c.HistoryLimit <= 0 {
		c.HistoryLimit = d.HistoryLimit
	}
	if c.MediaURLTTL <= 0 {
		c.MediaURLTTL = 5 * time.Minute
	}
	if c.MediaGrace <= 0 {
		c.MediaGrace = 24 * time.Hour
	}
	if c.MaxGroupSize <= 0 {
		c.MaxGroupSize = d.MaxGroupSize
	}
	if c.LookupsPerUserDay == 0 {
		c.LookupsPerUserDay = d.LookupsPerUserDay
	}
	if c.LookupsPerIPDay == 0 {
		c.LookupsPerIPDay = d.LookupsPerIPDay
	}
	if c.SettingsPerUserHour == 0 {
		c.SettingsPerUserHour = d.SettingsPerUserHour
	}
	if c.UploadsPerUserHour == 0 {
		c.UploadsPerUserHour = d.UploadsPerUserHour
	}
	if c.EmailCodesPerUserHour == 0 {
		c.EmailCodesPerUserHour = d.EmailCodesPerUserHour
	}
	return c
}

// Deps are the adapters the node runs on.
type Deps struct {
	Store  store.Store
	Router routing.Router
	Push   push.Notifier
	// VAPIDPublicKey is the Web Push key browsers subscribe with
	// (GET /v1/push/vapid); "": Web Push is not offered.
	VAPIDPublicKey string
	Auth           *auth.Service
	// Media keeps uploaded files; nil: POST /v1/media answers
	// unsupported. A media store that serves its own URLs (media/fs)
	// has its handler mounted at the path its URLs use.
	Media    media.Store
	Log      *slog.Logger
	Registry *prometheus.Registry // nil: a new one
	Version  string
	// Now is the clock of Auth (token expiry); nil: time.Now.
	Now func() time.Time
	// ChatNow is the clock of the chat rules: message times, the edit
	// and delete windows, disappearing messages; nil: time.Now.
	ChatNow func() time.Time
	// MasterKey seals the secrets the server itself keeps (admins'
	// second factors); nil: they are stored as they are.
	MasterKey []byte
	// Engines names the engines, for the dashboard.
	Engines Engines
	// SMS and Mail, if set, are where the node records how sending
	// verification codes and mail goes (the dashboard shows it).
	SMS, Mail *health.Outcomes
}

// Server is one Tern node.
type Server struct {
	cfg    Config
	st     store.Store
	router routing.Router
	push   push.Notifier
	vapid  string // the VAPID public key; "": no Web Push
	// sendSignal wakes sendLoop after a flush.
	sendSignal chan struct{}
	auth       *auth.Service
	media      media.Store
	// imaging holds a token per image being decoded (processImage).
	imaging  chan struct{}
	log      *slog.Logger
	reg      *prometheus.Registry
	metrics  *metrics
	version  string
	now      func() time.Time
	upgrader websocket.Upgrader
	presence *presenceHub
	// corkBuffers lends sessions the buffer a batch of frames is written
	// from (corkConn).
	corkBuffers sync.Pool
	handler     http.Handler
	chat        *chat.Service
	web         *web.Handler
	wakes       *wakeQueue // pushes to send, to devices no node holds
	pushLoops   pushLoops  // flushLoop and sendLoop, which Shutdown stops
	pushCancels pushCancels

	// ctx is the parent of every session's work; cancel ends it on Close.
	ctx    context.Context
	cancel context.CancelFunc

	repair repairs // devices to poke once publishing works again
	limits *limiter
	// lookups bound contact discovery per user and per client IP.
	lookupsByUser, lookupsByIP *quota
	settingsByUser             *quota
	uploadsByUser              *quota
	emailCodesByUser           *quota
	adminLogins, adminLoginsIP *quota        // admin sign-in tries, per account and address, per address
	adminLoginsAll             *quota        // admin sign-in tries per account from everywhere
	hashSlots                  chan struct{} // admin password hashes running now
	dummyHash                  []byte        // hashed for unknown admin usernames, to take the same time
	auditSeq                   atomic.Int64  // orders this node's audit entries within a millisecond
	totpSteps                  sync.Map      // admin id -> the last TOTP step accepted (int64)
	draining                   atomic.Bool
	master                     []byte                          // Deps.MasterKey
	stats                      nodeStats                       // for the dashboard's overview (overview.go)
	webhooks                   webhookWorkers                  // webhook posts running (webhooks.go)
	bizRates                   sync.Map                        // business user id -> *bucket (cloudapi.go)
	bizDevices                 atomic.Pointer[map[string]bool] // businesses' API devices (webhooks.go)
	hookWakes                  chan string                     // API devices with new events (webhooks.go)
	linkFetches                chan struct{}                   // business media links being fetched (cloudapi_media.go)
	linkMu                     sync.Mutex
	linkBusy                   map[string]int // link fetches per business (cloudapi_media.go)
	mu                         sync.Mutex
	sessions                   map[string]*session   // by device id, this node only
	byUser                     map[string][]*session // the same sessions, by user id
	// upgrades numbers WebSocket requests as they start, before the
	// upgrade answers: a client that connects again after its first
	// connect returned is always numbered after it, however the two
	// requests' goroutines are scheduled afterwards.
	upgrades atomic.Uint64
	wg       sync.WaitGroup // running sessions
}

// New builds a node. Call Run to serve, or use Handler with your own
// http.Server and call Shutdown before closing the store.
func New(cfg Config, d Deps) (*Server, error) {
	if d.Store == nil || d.Router == nil || d.Push == nil || d.Auth == nil {
		return nil, errors.New("server: store, router, push and auth are required")
	}
	if d.Log == nil {
		d.Log = slog.New(slog.DiscardHandler)
	}
	if d.Registry == nil {
		d.Registry = prometheus.NewRegistry()
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	ctx, cancel := context.WithCancel(context.Background())
	s := &Server{
		cfg:         cfg.withDefaults(),
		st:          d.Store,
		hookWakes:   make(chan string, 64),
		linkFetches: make(chan struct{}, maxLinkFetches),
		router:      d.Router,
		push:        d.Push,
		vapid:       d.VAPIDPublicKey,
		media:       d.Media,
		imaging:     make(chan struct{}, 2),
		auth:        d.Auth,
		log:         d.Log,
		reg:         d.Registry,
		metrics:     newMetrics(d.Registry),
		version:     d.Version,
		now:         d.Now,
		ctx:         ctx,
		cancel:      cancel,
		sessions:    make(map[string]*session),
		sendSignal:  make(chan struct{}, 1),
		byUser:      make(map[string][]*session),
	}
	s.stats.boot, s.stats.started, s.stats.engines = store.NewID("boot"), time.Now(), d.Engines
	s.stats.sms, s.stats.mail = d.SMS, d.Mail
	s.master = d.MasterKey
	s.presence = newPresenceHub(s)
	if b, ok := d.Router.(routing.Broadcaster); ok {
		b.OnBroadcast(s.deliverToUsers)
	}
	go s.presence.run()
	s.chat = chat.New(d.Store, dispatcher{s}, chat.Config{
		MaxTextBytes:    s.cfg.MaxTextBytes,
		MaxGroupSize:    s.cfg.MaxGroupSize,
		MaxHistoryLimit: s.cfg.HistoryLimit,
		EditWindow:      s.cfg.EditWindow,
		DeleteWindow:    s.cfg.DeleteWindow,
	}, d.ChatNow, d.Log)
	s.wakes = newWakeQueue(s.cfg.PushCooldown, s.now, func(outcome string) { s.metrics.pushes.WithLabelValues(outcome).Inc() })
	s.limits = newLimiter(&s.cfg)
	s.lookupsByUser = newQuota(s.cfg.LookupsPerUserDay, 24*time.Hour)
	s.lookupsByIP = newQuota(s.cfg.LookupsPerIPDay, 24*time.Hour)
	s.settingsByUser = newQuota(s.cfg.SettingsPerUserHour, time.Hour)
	s.uploadsByUser = newQuota(s.cfg.UploadsPerUserHour, time.Hour)
	s.emailCodesByUser = newQuota(s.cfg.EmailCodesPerUserHour, time.Hour)
	// Five wrong passwords in 15 minutes per account (an owner mistypes;
	// a guesser gets 480 a day), 20 per address.
	s.adminLogins = newQuota(5, 15*time.Minute)
	s.adminLoginsIP = newQuota(20, 15*time.Minute)
	// From many addresses at once: enough that a guesser cannot lock the
	// owner out cheaply, few enough to bound guessing to ~10,000 a day.
	s.adminLoginsAll = newQuota(100, 15*time.Minute)
	s.hashSlots = make(chan struct{}, 2)
	dummy, err := admin.HashPassword("not a password of anyone's")
	if err != nil {
		return nil, err
	}
	s.dummyHash = dummy
	s.corkBuffers.New = func() any { b := make([]byte, 0, corkLimit); return &b }
	s.upgrader = websocket.Upgrader{
		// Frames are small; a 1 KiB read buffer costs an extra read call for
		// a large one but saves 3 KiB on every idle socket. Write buffers are
		// borrowed from a pool only while writing, so an idle socket holds none.
		ReadBufferSize:    readBufferSize,
		WriteBufferPool:   &sync.Pool{},
		HandshakeTimeout:  10 * time.Second,
		EnableCompression: false,
		// serveWS checks the origin before upgrading, with an answer
		// that says why.
		CheckOrigin: func(*http.Request) bool { return true },
	}
	if l, ok := d.Router.(routing.Linked); ok {
		watchLink(d.Registry, l)
	}
	wh, err := web.New(web.Options{MediaOrigins: s.cfg.MediaOrigins})
	if err != nil {
		return nil, err
	}
	s.web = wh
	s.handler = s.routes()
	go s.every(time.Second, func(time.Time) { s.repairDevices() })
	go s.reportLoop()
	go s.webhookLoop()
	go func() {
		s.pruneCallbackData()
		s.every(10*time.Minute, func(time.Time) { s.pruneCallbackData() })
	}()
	s.startPushLoops()
	// Budgets of devices gone for long enough have refilled: drop them.
	keep := s.limits.keepFor()
	go s.every(keep/2, func(now time.Time) { s.limits.forget(keep, now) })
	go s.chat.RunSweeper(s.ctx, s.cfg.SweepInterval)
	if s.media != nil {
		go s.every(s.cfg.SweepInterval, func(time.Time) { s.collectMedia() })
	}
	if c := s.cfg.InboxCheck; c > 0 {
		go s.every(c, func(time.Time) { s.checkInboxes(s.ctx, c) })
	}
	return s, nil
}

// Handler serves the REST API, the WebSocket edge, health and metrics.
func (s *Server) Handler() http.Handler { return s.handler }

// RunOptions tune how Run serves and stops.
type RunOptions struct {
	// Grace bounds a graceful shutdown.
	Grace time.Duration
	// DrainDelay is how long a stopping node keeps serving after /readyz
	// turned 503, so that a load balancer's health checks see it and stop
	// sending new connections before the sockets are closed.
	DrainDelay time.Duration
}

// Run serves on ln until ctx is done, then shuts down gracefully: /readyz
// answers 503 and new sockets are refused, after DrainDelay every socket is
// closed with 1001 (reconnect, elsewhere), and in-flight work finishes,
// within Grace. ln may be a TLS listener.
func (s *Server) Run(ctx context.Context, ln net.Listener, o RunOptions) error {
	if o.Grace <= 0 {
		o.Grace = 15 * time.Second
	}
	hs := &http.Server{
		Handler:           s.handler,
		ReadHeaderTimeout: 10 * time.Second,
		IdleTimeout:       120 * time.Second,
		ErrorLog:          slog.NewLogLogger(s.log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	s.log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		s.Shutdown(context.Background())
		return fmt.Errorf("server: serve: %w", err)
	case <-ctx.Done():
	}
	s.draining.Store(true)
	if o.DrainDelay > 0 {
		s.log.Info("draining: /readyz is 503, closing sockets after the drain delay", "delay", o.DrainDelay)
		time.Sleep(o.DrainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), o.Grace)
	defer cancel()
	herr := hs.Shutdown(sctx)
	s.Shutdown(sctx)
	if herr != nil && !errors.Is(herr, context.DeadlineExceeded) {
		return fmt.Errorf("server: shutdown: %w", herr)
	}
	return nil
}

// Shutdown stops taking sockets, closes every socket with 1001 so clients
// reconnect (elsewhere), and waits until their in-flight frames are
// finished or ctx is done. Then, still within ctx, it moves the pushes
// waiting in memory to the store's queue and lets a batch of pushes being
// sent finish. It is safe to call more than once.
func (s *Server) Shutdown(ctx context.Context) {
	// Under s.mu: from here no socket is admitted or attached (serveWS,
	// attach), so the sessions seen below are all there will be.
	s.mu.Lock()
	s.draining.Store(true)
	all := make([]*session, 0, len(s.sessions))
	for _, ss := range s.sessions {
		all = append(all, ss)
	}
	s.mu.Unlock()
	for _, ss := range all {
		ss.close(websocketGoingAway, "server going away, reconnect")
	}
	done := make(chan struct{})
	go func() { s.wg.Wait(); close(done) }()
	select {
	case <-done:
	case <-ctx.Done():
		s.log.Warn("shutdown: sessions still running at deadline")
	}
	// After the sessions: their last messages may have queued wakes.
	s.stopPushLoops(ctx)
	s.stopWebhooks(ctx)
	// The dashboard shows the node stopped, not lost; also when the
	// sessions took all of ctx.
	last, cancel := context.WithTimeout(context.WithoutCancel(ctx), 5*time.Second)
	s.writeReportCtx(last, time.Now(), true)
	cancel()
	s.cancel()
}

// DeviceRevoked closes the socket of a signed-out or revoked device,
// wherever in the cluster it is. auth.Options.OnRevoke calls it.
func (s *Server) DeviceRevoked(userID, deviceID string) {
	err := s.router.Publish(s.ctx, deviceID, routing.Envelope{Kind: routing.KindRevoke})
	if err != nil && !errors.Is(err, routing.ErrNoRoute) {
		s.log.Warn("revoke: publish failed", "device", deviceID, "err", err)
	}
	// Its queued push, and the record of its last one, go too.
	s.cancelPush(deviceID)
}

// attach registers ss as its device's session on this node and returns the
// one it replaces. When ss must not run it registers nothing and returns a
// close code and reason instead: the node drains, or a socket of the device
// that started after ss's got here first (sockets of one device race from
// their upgrade to here; the one whose request came last wins, as its
// client expects).
func (s *Server) attach(ss *session) (old *session, refuse int, why string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.draining.Load() {
		return nil, websocketGoingAway, "server going away, reconnect"
	}
	old = s.sessions[ss.deviceID]
	if old != nil && old.seq > ss.seq {
		return nil, wire.CloseReplaced, "device connected again"
	}
	s.sessions[ss.deviceID] = ss
	if old != nil {
		s.dropUserLocked(old)
	}
	s.byUser[ss.userID] = append(s.byUser[ss.userID], ss)
	return old, 0, ""
}

func (s *Server) detach(ss *session) {
	s.mu.Lock()
	if s.sessions[ss.deviceID] == ss {
		delete(s.sessions, ss.deviceID)
		s.dropUserLocked(ss)
	}
	s.mu.Unlock()
}

// dropUserLocked removes ss from byUser.
func (s *Server) dropUserLocked(ss *session) {
	list := s.byUser[ss.userID]
	for i, x := range list {
		if x == ss {
			list = slices.Delete(list, i, i+1)
			break
		}
	}
	if len(list) == 0 {
		delete(s.byUser, ss.userID)
	} else {
		s.byUser[ss.userID] = list
	}
}

// deliverToUsers hands a broadcast to this node's sessions of its users: a
// frame (routing.KindUsers: a group's typing) or an inbox read
// (routing.KindPokeUsers). It costs the sender's node one publish, and
// each node one lookup per user, however many devices.
func (s *Server) deliverToUsers(env routing.Envelope) {
	switch {
	case env.Kind == routing.KindPresence:
		s.presence.received(env)
		return
	case env.Kind == routing.KindUsers && len(env.Frame) > 0:
	case env.Kind == routing.KindPokeUsers:
	default:
		return
	}
	var to []*session
	s.mu.Lock()
	for _, u := range env.Users {
		to = append(to, s.byUser[u]...)
	}
	s.mu.Unlock()
	for _, ss := range to {
		if env.Kind == routing.KindPokeUsers {
			ss.Resync()
		} else {
			ss.Deliver(routing.Envelope{Kind: routing.KindFrame, Frame: env.Frame})
		}
	}
}

func (s *Server) online(deviceID string) bool {
	s.mu.Lock()
	_, ok := s.sessions[deviceID]
	s.mu.Unlock()
	return ok
}

// onlineAnywhere reports whether any node of the cluster holds the device:
// a probe envelope is routed like an event, and holders ignore it.
func (s *Server) onlineAnywhere(ctx context.Context, deviceID string) bool {
	if s.online(deviceID) {
		return true
	}
	return s.router.Publish(ctx, deviceID, routing.Envelope{Kind: routing.KindProbe}) == nil
}
