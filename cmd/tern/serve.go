package main

import (
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/tern-im/tern/auth"
	smshttp "github.com/tern-im/tern/auth/sms/http"
	smslog "github.com/tern-im/tern/auth/sms/log"
	ternnode "github.com/tern-im/tern/internal/node"
	"github.com/tern-im/tern/mail"
	maillog "github.com/tern-im/tern/mail/log"
	"github.com/tern-im/tern/mail/smtp"
	"github.com/tern-im/tern/media/imaging"
	"github.com/tern-im/tern/media/s3"
	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/push/fcm"
	pushlog "github.com/tern-im/tern/push/log"
	"github.com/tern-im/tern/server"
)

type serveConfig struct {
	addr, dataDir, logFormat, logLevel string
	storeKind, routerKind, pushKind    string
	mongoURI, mongoDB, mongoWC         string
	amqpURL                            string
	smsProvider, smsHTTPURL            string
	dev                                bool
	tlsCert, tlsKey                    string
	insecureHTTP                       bool
	adminAddr, adminToken              string
	metricsAddr                        string
	grace, drainDelay                  time.Duration
	httpReadTimeout, httpWriteTimeout  time.Duration
	allowedOrigins                     string
	typingRate, readRate               string
	otherFrameRate                     string
	masterKey                          string
	mediaKind, mediaDir, publicURL     string
	fcmCredentials, fcmEndpoint        string
	webPushContact                     string
	smtpURL, smtpFrom                  string
	mediaLimits                        [5]int // by kind, in imaging's order
	s3                                 s3.Options
	srv                                server.Config
	auth                               auth.Config
}

// defaultInboxCheck is --inbox-check with a broker: well inside the few
// seconds in which a connected device must see a message answered sent.
const defaultInboxCheck = 2 * time.Second

const serveHelp = `Usage: tern serve [flags]

Runs a Tern node. With no flags: a complete single node on 127.0.0.1:8080,
its data in ./data, verification codes printed to its log (--sms-provider
log, allowed without comment on a loopback address only; elsewhere it needs
--dev, or --sms-provider log given explicitly).

Secrets (--admin-token, --mongo-uri, --amqp-url, --sms-http-url) are best
given through their environment variable or a file (--admin-token-file FILE,
or TERN_ADMIN_TOKEN_FILE=FILE): every user of the machine can read a
process's command line (ps), while its environment is readable by its owner
only. Tern never logs them.

`

func serveFlags(c *serveConfig) *flagSet {
	fs := newFlagSet("tern serve", "TERN_")
	fs.Usage = func() {
		fmt.Fprint(fs.Output(), serveHelp+flagsHeader)
		fs.PrintDefaults()
	}
	sd, ad := server.DefaultConfig(), auth.DefaultConfig()
	fs.String(&c.addr, "addr", "127.0.0.1:8080", "`HOST:PORT` to listen on")
	fs.String(&c.dataDir, "data-dir", "./data", "`directory` of the embedded store (created 0700; made private if others can read it)")
	fs.String(&c.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal)")
	fs.String(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.String(&c.storeKind, "store", "embedded", "store engine: embedded (under --data-dir) or mongo")
	fs.String(&c.mongoURI, "mongo-uri", "", "MongoDB connection string for --store mongo")
	fs.secret("mongo-uri")
	fs.String(&c.mongoDB, "mongo-db", "tern", "MongoDB database for --store mongo")
	fs.String(&c.mongoWC, "mongo-write-concern", "majority", "MongoDB write concern: majority or a number of nodes")
	fs.String(&c.routerKind, "router", "inproc", "router between nodes: inproc (one node) or rabbitmq")
	fs.String(&c.amqpURL, "amqp-url", "", "RabbitMQ `URL` for --router rabbitmq, amqp://user:pass@host:5672/")
	fs.secret("amqp-url")
	fs.String(&c.tlsCert, "tls-cert", "", "serve HTTPS and WSS with this certificate (PEM `file`; reloaded on SIGHUP)")
	fs.String(&c.tlsKey, "tls-key", "", "private key of --tls-cert (PEM `file`)")
	fs.Bool(&c.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating load balancer)")
	fs.String(&c.adminAddr, "admin-addr", "", "serve the admin API (backup) and pprof, both behind --admin-token, on `HOST:PORT`; keep it private. Empty: off")
	fs.String(&c.adminToken, "admin-token", "", "bearer `token` the admin API and pprof require; empty: both off")
	fs.secret("admin-token")
	fs.String(&c.metricsAddr, "metrics-addr", "", "serve Prometheus /metrics on `HOST:PORT` (and not on the API port).\n"+
		"Empty: on the API port of a loopback node without TLS; otherwise on --admin-addr if set, else nowhere")
	fs.Duration(&c.drainDelay, "drain-delay", 0, "on SIGTERM, keep serving with /readyz at 503 this long before closing sockets (let the load balancer notice)")
	fs.String(&c.mediaKind, "media", "fs", "where uploaded files go: fs (under --media-dir, served by the node) or s3")
	fs.String(&c.mediaDir, "media-dir", "", "`directory` of --media fs (default: <data-dir>/media; nodes of a cluster share one volume)")
	fs.String(&c.publicURL, "public-url", "", "`URL` clients reach this node at, for --media fs links (default: http:// or https:// and --addr)")
	fs.String(&c.s3.Endpoint, "s3-endpoint", "", "S3 `URL` for --media s3 (https://s3.eu-west-1.amazonaws.com); clients fetch presigned links from it")
	fs.String(&c.s3.Bucket, "s3-bucket", "", "bucket for --media s3 (created if absent)")
	fs.String(&c.s3.Region, "s3-region", "us-east-1", "region of --s3-bucket")
	fs.String(&c.s3.AccessKey, "s3-access-key", "", "access key for --media s3")
	fs.String(&c.s3.SecretKey, "s3-secret-key", "", "secret key for --media s3")
	fs.secret("s3-secret-key")
	fs.Duration(&c.srv.MediaURLTTL, "media-url-ttl", 5*time.Minute, "how long a media link works")
	for i, k := range []imaging.Kind{imaging.Image, imaging.Video, imaging.Audio, imaging.Document, imaging.Sticker} {
		fs.Int(&c.mediaLimits[i], "max-"+k.String()+"-bytes", int(k.MaxSize()), "largest "+k.String()+" upload")
	}
	fs.String(&c.pushKind, "push", "log", "how devices registered with FCM are woken: log (a log line) or fcm (Firebase Cloud Messaging, --fcm-credentials)")
	fs.String(&c.fcmCredentials, "fcm-credentials", "", "`FILE`: the Firebase service account's JSON key, for --push fcm")
	fs.String(&c.fcmEndpoint, "fcm-endpoint", "", "FCM API base `URL` (default https://fcm.googleapis.com/v1)")
	fs.Bool(&c.srv.PushPreview, "push-preview", false, "put the message text in pushes (Google, Apple or the browser maker then see it); off: a push only says a message came")
	fs.Duration(&c.srv.PushDelay, "push-delay", sd.PushDelay, "how long a device that no node holds has to connect by itself before it is pushed; negative: at once")
	fs.String(&c.smtpURL, "smtp-url", "", "outgoing mail server `URL`, smtp://user:pass@host:587 (STARTTLS required) or smtps://...:465, for email verification codes and new-device notices; unset: mail goes to the log with --sms-provider log, else no email")
	fs.secret("smtp-url")
	fs.String(&c.smtpFrom, "smtp-from", "", "From address of Tern's mail (default: tern@ the --smtp-url's host)")
	fs.String(&c.webPushContact, "web-push-contact", "", "contact for Web Push services (an email or https URL) in every VAPID token; default: the --public-url if https, else postmaster@ its host; \"off\": no Web Push")
	fs.String(&c.smsProvider, "sms-provider", "log", "how verification codes are sent: log (printed; see --dev) or http (a gateway)")
	fs.String(&c.smsHTTPURL, "sms-http-url", "", "gateway `URL` for --sms-provider http; receives POST {to, text}")
	fs.secret("sms-http-url")
	fs.Bool(&c.dev, "dev", false, "development node: verification codes go to the log (--sms-provider log) whatever --addr is")
	fs.String(&c.srv.NodeID, "node-id", hostnameOr("node-1"), "this node's name in logs, metrics and routing")
	fs.Duration(&c.grace, "shutdown-grace", 15*time.Second, "how long a shutdown waits for in-flight work")
	fs.Duration(&c.httpReadTimeout, "http-read-timeout", 30*time.Second, "longest a client may take to send a whole request, body included (a WebSocket is not bound by it once open)")
	fs.Duration(&c.httpWriteTimeout, "http-write-timeout", 30*time.Second, "longest a REST request may take from its headers to the end of its answer (not WebSockets)")
	fs.Int(&c.srv.MaxFrameBytes, "max-frame-bytes", sd.MaxFrameBytes, "largest client WebSocket frame")
	fs.Int(&c.srv.MaxTextBytes, "max-text-bytes", sd.MaxTextBytes, "largest message text (text + caption)")
	fs.Float(&c.srv.SendsPerSecond, "sends-per-second", sd.SendsPerSecond, "sends per device per second, sustained")
	fs.Int(&c.srv.SendBurst, "send-burst", sd.SendBurst, "sends per device in a burst")
	fs.Int(&c.srv.Window, "window", sd.Window, "unacked inbox events in flight per socket")
	fs.Duration(&c.srv.IdleTimeout, "idle-timeout", sd.IdleTimeout, "close sockets silent for this long")
	fs.Int(&c.srv.HistoryLimit, "history-limit", sd.HistoryLimit, "largest history page")
	fs.Duration(&c.srv.PushCooldown, "push-cooldown", 3*time.Second, "after a push to an offline device, how long its next events push no more (one push per burst); negative: push every event")
	fs.Duration(&c.srv.EditWindow, "edit-window", sd.EditWindow, "how long after sending an author may edit a message")
	fs.Duration(&c.srv.DeleteWindow, "delete-window", sd.DeleteWindow, "how long after sending an author (or a group admin) may delete a message for everyone")
	fs.Duration(&c.srv.SweepInterval, "sweep-interval", sd.SweepInterval, "how often the node erases disappearing messages that are due")
	fs.Duration(&c.srv.PresenceBeat, "presence-beat", sd.PresenceBeat, "how often this node tells the others it is alive; a node silent for three beats is dead and its users offline")
	fs.Duration(&c.srv.InboxCheck, "inbox-check", 0, "how often to check that every socket got all of its inbox (the safety net under routing); 0: 2s with --router rabbitmq, off in-process; negative: off")
	fs.String(&c.typingRate, "typing-rate", rateString(sd.TypingRate), "typing frames per device: `PER_SECOND/BURST`")
	fs.String(&c.readRate, "read-rate", rateString(sd.ReadRate), "read frames per device: `PER_SECOND/BURST`")
	fs.String(&c.otherFrameRate, "other-frame-rate", rateString(sd.OtherFrameRate), "other frames per device (ping, presence_sub, undecodable): `PER_SECOND/BURST`")
	fs.Int(&c.srv.LookupsPerUserDay, "lookups-per-user-day", sd.LookupsPerUserDay, "phone numbers one user may look up per 24 h (contact discovery; -1: unlimited)")
	fs.Int(&c.srv.LookupsPerIPDay, "lookups-per-ip-day", sd.LookupsPerIPDay, "phone numbers one client IP may look up per 24 h (-1: unlimited)")
	fs.Int(&c.srv.UploadsPerUserHour, "uploads-per-user-hour", sd.UploadsPerUserHour, "files one user may upload per hour (-1: unlimited)")
	fs.Int(&c.srv.EmailCodesPerUserHour, "email-codes-per-user-hour", sd.EmailCodesPerUserHour, "verification codes one user may have mailed per hour, to all addresses together (-1: unlimited)")
	fs.Bool(&c.srv.WebPushAllowPrivate, "webpush-allow-private", false, "accept Web Push endpoints on loopback and private addresses (a push service on a private network); off, a subscription must name a public host")
	fs.Bool(&c.srv.WebhookAllowPrivate, "webhook-allow-private", false, "let business webhooks (and their verification) go to loopback and private addresses: receivers inside your network")
	fs.Bool(&c.srv.MediaLinkAllowPrivate, "media-link-allow-private", false, "let the business API fetch media links on loopback and private addresses (what it fetches goes to the business's customers: keep it off unless every business is trusted)")
	fs.Duration(&c.srv.WebhookLease, "webhook-lease", time.Minute, "how long a node holds a business's webhook queue without renewing it: after a node dies, another takes its queues over this much later (at least 5s)")
	fs.Duration(&c.srv.WebhookPoll, "webhook-poll", time.Second, "how often a node looks for webhook events it was not woken for (the events other nodes stored)")
	fs.Int(&c.srv.SettingsPerUserHour, "settings-per-user-hour", sd.SettingsPerUserHour, "changes one user may make per hour to privacy, contacts and blocks (-1: unlimited)")
	fs.String(&c.allowedOrigins, "allowed-origins", "", "comma-separated web `origins` (https://chat.example.com) whose pages may open a WebSocket; * allows any. Empty: the server's own origin only")
	fs.String(&c.srv.AdminHost, "admin-host", "", "the host name on which alone the admin dashboard (/admin) and API (/v1/admin) answer, e.g. admin.chat.example.com (point it at the same nodes): an origin of their own, out of the chat client's reach; empty: every host")
	fs.Bool(&c.srv.TrustProxy, "trust-proxy", false, "take client IPs from X-Forwarded-For (behind a load balancer only)")
	fs.Duration(&c.auth.CodeTTL, "code-ttl", ad.CodeTTL, "lifetime of a verification code")
	fs.Int(&c.auth.MaxAttempts, "code-attempts", ad.MaxAttempts, "tries per verification code from one client address")
	fs.Int(&c.auth.MaxAttemptsTotal, "code-attempts-total", ad.MaxAttemptsTotal, "tries per verification code from all addresses")
	fs.Duration(&c.auth.ResendAfter, "code-resend-after", ad.ResendAfter, "wait before another code for the same phone")
	fs.Int(&c.auth.CodesPerPhonePerHour, "codes-per-phone-hour", ad.CodesPerPhonePerHour, "codes per phone in any hour")
	fs.Int(&c.auth.CodesPerPhonePerDay, "codes-per-phone-day", ad.CodesPerPhonePerDay, "codes per phone in any 24 hours")
	fs.Int(&c.auth.CodesPerPhonePerIPPerHour, "codes-per-phone-ip-hour", ad.CodesPerPhonePerIPPerHour, "codes per phone per hour from one client address")
	fs.Int(&c.auth.CodesPerIPPerHour, "codes-per-ip-hour", ad.CodesPerIPPerHour, "codes per client IP per hour (0: unlimited)")
	fs.Int(&c.auth.VerifiesPerIPPerHour, "verifies-per-ip-hour", ad.VerifiesPerIPPerHour, "verify attempts per client IP per hour (0: unlimited)")
	fs.Duration(&c.auth.AccessTTL, "access-ttl", ad.AccessTTL, "lifetime of access tokens")
	fs.Duration(&c.auth.RefreshTTL, "refresh-ttl", ad.RefreshTTL, "lifetime of refresh tokens")
	fs.Duration(&c.auth.RefreshGrace, "refresh-grace", ad.RefreshGrace, "how long a replaced refresh token still gets the same new pair (a retried or concurrent refresh); negative: off")
	fs.String(&c.masterKey, "master-key", "", "32-byte master key (64 hex digits or base64) sealing the token and code keys in the store; give it as TERN_MASTER_KEY or --master-key-file")
	fs.secret("master-key")
	return fs
}

// smsLog says how serve treats --sms-provider log, whose codes anyone
// reading the log can use to sign in as anyone.
type smsLog int

const (
	smsLogOff      smsLog = iota // another provider
	smsLogLoopback               // nobody else reaches the node: fine
	smsLogDev                    // --dev: a development node, by the operator's word
	smsLogExplicit               // asked for by name on a reachable node: allowed, loudly
)

// check validates the configuration as a whole, before anything touches
// the disk or the network, and reports every mistake at once. smsExplicit
// tells whether --sms-provider was given rather than left at its default.
func (c *serveConfig) check(smsExplicit bool) (smsLog, error) {
	var errs []error
	bad := func(format string, a ...any) { errs = append(errs, fmt.Errorf(format, a...)) }
	if _, err := newLogger(c.logFormat, c.logLevel, io.Discard); err != nil {
		errs = append(errs, err)
	}
	checkAddr := func(flag, addr string) {
		if _, _, err := net.SplitHostPort(addr); err != nil {
			bad("--%s %q: want HOST:PORT", flag, addr)
		}
	}
	checkAddr("addr", c.addr)
	if c.adminAddr != "" {
		checkAddr("admin-addr", c.adminAddr)
	}
	if c.metricsAddr != "" {
		checkAddr("metrics-addr", c.metricsAddr)
	}
	if c.srv.NodeID == "" {
		bad("--node-id is empty")
	}

	switch c.storeKind {
	case "embedded":
		if c.dataDir == "" {
			bad("--data-dir is empty")
		}
	case "mongo":
		if c.mongoURI == "" {
			bad("--store mongo needs --mongo-uri (or TERN_MONGO_URI, or --mongo-uri-file)")
		} else if !strings.HasPrefix(c.mongoURI, "mongodb://") && !strings.HasPrefix(c.mongoURI, "mongodb+srv://") {
			bad("--mongo-uri: want a mongodb:// or mongodb+srv:// URI")
		}
		if n, err := strconv.Atoi(c.mongoWC); c.mongoWC != "majority" && (err != nil || n < 1) {
			bad("--mongo-write-concern %q: want majority or a number of nodes (1 or more)", c.mongoWC)
		}
	default:
		bad("--store %q: want embedded or mongo", c.storeKind)
	}
	switch c.routerKind {
	case "inproc":
	case "rabbitmq":
		// The URL may hold a password: messages name the flag only.
		if c.amqpURL == "" {
			bad("--router rabbitmq needs --amqp-url (or TERN_AMQP_URL, or --amqp-url-file)")
		} else if u, err := url.Parse(c.amqpURL); err != nil || (u.Scheme != "amqp" && u.Scheme != "amqps") || u.Host == "" {
			bad("--amqp-url: want amqp://user:pass@host:port/ (or amqps://)")
		}
	default:
		bad("--router %q: want inproc or rabbitmq", c.routerKind)
	}
	c.srv.MediaLimits = map[string]int64{}
	for i, k := range []imaging.Kind{imaging.Image, imaging.Video, imaging.Audio, imaging.Document, imaging.Sticker} {
		if c.mediaLimits[i] <= 0 {
			bad("--max-%s-bytes %d: want a positive size", k, c.mediaLimits[i])
		}
		c.srv.MediaLimits[k.String()] = int64(c.mediaLimits[i])
	}
	switch c.mediaKind {
	case "fs":
		if c.publicURL != "" {
			if u, err := url.Parse(c.publicURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.RawQuery != "" {
				bad("--public-url %q: want http(s)://host[:port][/path]", c.publicURL)
			}
		}
	case "s3":
		if c.s3.Endpoint == "" || c.s3.Bucket == "" || c.s3.AccessKey == "" || c.s3.SecretKey == "" {
			bad("--media s3 needs --s3-endpoint, --s3-bucket, --s3-access-key and --s3-secret-key")
		}
	default:
		bad("--media %q: want fs or s3", c.mediaKind)
	}
	switch c.pushKind {
	case "log":
	case "fcm":
		if c.fcmCredentials == "" {
			bad("--push fcm needs --fcm-credentials (a service account's JSON key file)")
		}
	default:
		bad("--push %q: want log or fcm", c.pushKind)
	}
	for _, r := range []struct {
		flag, v string
		to      *server.Rate
	}{{"typing-rate", c.typingRate, &c.srv.TypingRate}, {"read-rate", c.readRate, &c.srv.ReadRate},
		{"other-frame-rate", c.otherFrameRate, &c.srv.OtherFrameRate}} {
		rate, err := parseRate(r.v)
		if err != nil {
			bad("--%s %q: %v", r.flag, r.v, err)
		}
		*r.to = rate
	}
	for _, o := range strings.Split(c.allowedOrigins, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if u, err := url.Parse(o); o != "*" && (err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "") {
			bad("--allowed-origins: %q is not an origin (want https://host[:port], or *)", o)
			continue
		}
		c.srv.AllowedOrigins = append(c.srv.AllowedOrigins, o)
	}
	if c.masterKey != "" {
		if _, err := decodeMasterKey(c.masterKey); err != nil {
			bad("--master-key: %v", err) // never the value
		}
	}

	mode := smsLogOff
	switch c.smsProvider {
	case "log":
		switch {
		case loopbackAddr(c.addr):
			mode = smsLogLoopback
		case c.dev:
			mode = smsLogDev
		case smsExplicit:
			mode = smsLogExplicit
		default:
			bad("--sms-provider log (the default) would print verification codes to the log, where anyone reading it "+
				"can sign in as anyone, and --addr %s is not a loopback address: set --sms-provider http with "+
				"--sms-http-url for real phones, --dev for a development node, or --sms-provider log explicitly", c.addr)
		}
	case "http":
		if c.smsHTTPURL == "" {
			bad("--sms-provider http needs --sms-http-url")
		} else if u, err := url.Parse(c.smsHTTPURL); err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
			bad("--sms-http-url: want an http:// or https:// URL")
		}
	default:
		bad("--sms-provider %q: want log or http", c.smsProvider)
	}

	if (c.tlsCert == "") != (c.tlsKey == "") {
		bad("--tls-cert and --tls-key go together")
	}
	if c.tlsCert == "" && !c.insecureHTTP && !loopbackAddr(c.addr) {
		bad("refusing plain HTTP on %s: it is not a loopback address; "+
			"set --tls-cert/--tls-key, or --insecure-http behind a TLS-terminating load balancer", c.addr)
	}

	positive := map[string]time.Duration{"shutdown-grace": c.grace, "http-read-timeout": c.httpReadTimeout,
		"http-write-timeout": c.httpWriteTimeout, "idle-timeout": c.srv.IdleTimeout}
	for _, name := range slices.Sorted(maps.Keys(positive)) {
		if positive[name] <= 0 {
			bad("--%s %v: must be positive", name, positive[name])
		}
	}
	atLeastSecond := map[string]time.Duration{"code-ttl": c.auth.CodeTTL, "access-ttl": c.auth.AccessTTL,
		"refresh-ttl": c.auth.RefreshTTL}
	for _, name := range slices.Sorted(maps.Keys(atLeastSecond)) {
		if atLeastSecond[name] < time.Second {
			bad("--%s %v: must be 1s or more", name, atLeastSecond[name])
		}
	}
	if c.drainDelay < 0 || c.auth.ResendAfter < 0 {
		bad("--drain-delay %v, --code-resend-after %v: must not be negative", c.drainDelay, c.auth.ResendAfter)
	}
	positiveInt := map[string]int{"max-frame-bytes": c.srv.MaxFrameBytes, "max-text-bytes": c.srv.MaxTextBytes,
		"send-burst": c.srv.SendBurst, "window": c.srv.Window, "history-limit": c.srv.HistoryLimit,
		"code-attempts": c.auth.MaxAttempts, "codes-per-phone-hour": c.auth.CodesPerPhonePerHour}
	for _, name := range slices.Sorted(maps.Keys(positiveInt)) {
		if positiveInt[name] <= 0 {
			bad("--%s %d: must be positive", name, positiveInt[name])
		}
	}
	if c.srv.SendsPerSecond <= 0 {
		bad("--sends-per-second %v: must be positive", c.srv.SendsPerSecond)
	}
	if c.auth.CodesPerIPPerHour < 0 || c.auth.VerifiesPerIPPerHour < 0 {
		bad("--codes-per-ip-hour %d, --verifies-per-ip-hour %d: must not be negative (0: unlimited)",
			c.auth.CodesPerIPPerHour, c.auth.VerifiesPerIPPerHour)
	}
	if len(errs) > 0 {
		return mode, &usageError{errors.Join(errs...)}
	}
	return mode, nil
}

// metricsOnAPI reports whether /metrics stays on the API port: only for a
// loopback node without TLS (a development node, or one behind a proxy on
// the same machine) when no --metrics-addr moves them. Anywhere else the
// API port faces clients, and metrics (connection counts, error rates,
// the Go runtime's internals) are for operators.
func (c *serveConfig) metricsOnAPI() bool {
	return c.metricsAddr == "" && c.tlsCert == "" && loopbackAddr(c.addr)
}

func hostnameOr(def string) string {
	if h, err := os.Hostname(); err == nil && h != "" {
		return h
	}
	return def
}

func newLogger(format, level string, w io.Writer) (*slog.Logger, error) {
	var lv slog.Level
	if err := lv.UnmarshalText([]byte(level)); err != nil {
		return nil, fmt.Errorf("--log-level %q: %w", level, err)
	}
	opts := &slog.HandlerOptions{Level: lv}
	if format == "auto" {
		format = "json"
		if f, ok := w.(*os.File); ok {
			if st, err := f.Stat(); err == nil && st.Mode()&os.ModeCharDevice != 0 {
				format = "text"
			}
		}
	}
	switch format {
	case "text":
		return slog.New(slog.NewTextHandler(w, opts)), nil
	case "json":
		return slog.New(slog.NewJSONHandler(w, opts)), nil
	}
	return nil, fmt.Errorf("--log-format %q: want text, json or auto", format)
}

func serve(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var c serveConfig
	fs := serveFlags(&c)
	fs.SetOutput(stderr)
	if err := fs.parse(args); err != nil {
		return err
	}
	smsMode, err := c.check(fs.isGiven("sms-provider"))
	if err != nil {
		return err
	}
	log, err := newLogger(c.logFormat, c.logLevel, stderr)
	if err != nil {
		return err
	}
	log = log.With("node", c.srv.NodeID)
	switch {
	case c.srv.InboxCheck < 0:
		c.srv.InboxCheck = 0
	case c.srv.InboxCheck == 0 && c.routerKind == "rabbitmq":
		// Across nodes, an event's publish can die with the node that
		// stored it; in one process it cannot.
		c.srv.InboxCheck = defaultInboxCheck
	}
	c.srv.HideMetrics = !c.metricsOnAPI()
	switch smsMode {
	case smsLogExplicit:
		log.Warn("VERIFICATION CODES ARE WRITTEN TO THIS LOG (--sms-provider log) on a node others can reach: "+
			"whoever reads the log can sign in as any phone number. Use --sms-provider http for real users, "+
			"or --dev to mark a development node", "addr", c.addr)
	case smsLogDev:
		log.Warn("development node (--dev): verification codes are written to this log", "addr", c.addr)
	}

	// The certificate and the listeners first: a wrong file or a taken
	// port stops the node before it creates or opens a data directory.
	var cr *certReloader
	if c.tlsCert != "" {
		if cr, err = newCertReloader(c.tlsCert, c.tlsKey); err != nil {
			return err
		}
	}
	var listeners []net.Listener
	defer func() {
		// Whatever the servers have not closed yet (after a failed start,
		// or the private listeners, whose servers close when ctx ends).
		for _, l := range listeners {
			_ = l.Close()
		}
	}()
	ln, err := listen(ctx, c, cr, log)
	if err != nil {
		return err
	}
	listeners = append(listeners, ln)
	var adminLn, metricsLn net.Listener
	if c.adminAddr != "" {
		if adminLn, err = net.Listen("tcp", c.adminAddr); err != nil {
			return fmt.Errorf("--admin-addr: %w", err)
		}
		listeners = append(listeners, adminLn)
	}
	if c.metricsAddr != "" {
		if metricsLn, err = net.Listen("tcp", c.metricsAddr); err != nil {
			return fmt.Errorf("--metrics-addr: %w", err)
		}
		listeners = append(listeners, metricsLn)
	}

	var sms auth.Sender
	switch c.smsProvider {
	case "log":
		sms = smslog.Sender{Log: log}
	case "http":
		sms = smshttp.New(c.smsHTTPURL, nil)
	}
	var master []byte
	if c.masterKey != "" {
		master, _ = decodeMasterKey(c.masterKey) // checked with the flags
	}
	var mailer mail.Sender
	switch {
	case c.smtpURL != "":
		from := c.smtpFrom
		if from == "" {
			if u, err := url.Parse(c.smtpURL); err == nil {
				from = "tern@" + u.Hostname()
			}
		}
		m, err := smtp.New(c.smtpURL, from, smtp.Options{Log: log})
		if err != nil {
			return err
		}
		mailer = m
	case c.smsProvider == "log":
		mailer = maillog.Sender{Log: log} // codes in the log, like the SMS ones
	}
	var fcmPush push.Notifier = pushlog.Notifier{Log: log}
	if c.pushKind == "fcm" {
		f, err := fcm.New(ctx, fcm.Config{CredentialsFile: c.fcmCredentials, Endpoint: c.fcmEndpoint, Log: log})
		if err != nil {
			return err
		}
		fcmPush = f
	}
	n, err := ternnode.Build(ctx, ternnode.Config{Store: c.storeKind, DataDir: c.dataDir,
		MongoURI: c.mongoURI, MongoDB: c.mongoDB, MongoWriteConcern: c.mongoWC,
		Router: c.routerKind, AMQPURL: c.amqpURL,
		Media: c.mediaKind, MediaDir: c.mediaDir, MediaBaseURL: c.mediaBaseURL(), S3: c.s3,
		Server: c.srv, Auth: c.auth, SMS: sms, Push: fcmPush, WebPushContact: c.webPushContactOr(), Mail: mailer, MasterKey: master,
		SMSName: c.smsProvider, PushName: c.pushKind, MailName: mailName(c),
		Log: log, Version: versionString()})
	if err != nil {
		return err
	}
	defer func() {
		if err := n.Close(); err != nil {
			log.Error("closing the store or router failed", "err", err)
		}
	}()
	st, as, srv := n.Store, n.Auth, n.Server

	metricsAt := "api"
	switch {
	case metricsLn != nil:
		serveHTTP(ctx, metricsLn, metricsMux(srv.MetricsHandler()), c, c.httpWriteTimeout, log)
		metricsAt = metricsLn.Addr().String()
	case c.metricsOnAPI():
	case adminLn != nil:
		metricsAt = "admin"
	default:
		metricsAt = "off"
		log.Warn("metrics are not served: the API port faces clients (TLS or a non-loopback --addr), " +
			"and there is no --metrics-addr or --admin-addr to serve them on")
	}
	if adminLn != nil {
		var metrics http.Handler
		if metricsLn == nil {
			metrics = srv.MetricsHandler()
		}
		serveHTTP(ctx, adminLn, adminHandler(c.adminToken, st, as, srv, metrics, log), c, 0, log)
		log.Info("admin listening", "addr", adminLn.Addr().String(), "admin_api_and_pprof", c.adminToken != "")
	}
	if host, _, _ := net.SplitHostPort(c.addr); c.mediaKind == "fs" && c.publicURL == "" {
		if ip := net.ParseIP(host); host == "" || ip != nil && ip.IsUnspecified() {
			log.Warn("media links will name "+c.mediaBaseURL()+", which clients cannot reach: set --public-url", "addr", c.addr)
		}
	}
	if c.mediaKind == "fs" && c.storeKind == "mongo" && c.mediaDir == "" {
		log.Warn("--media fs under the data dir: other nodes cannot serve this node's files; give every node one shared --media-dir")
	}
	log.Info("tern starting", "version", versionString(), "addr", ln.Addr().String(),
		"store", c.storeKind, "data_dir", c.dataDir, "router", c.routerKind, "sms", c.smsProvider,
		"tls", cr != nil, "metrics", metricsAt)
	err = serveAPI(ctx, srv, ln, c, log)
	log.Info("tern stopped")
	return err
}

// metricsMux serves h at /metrics, and nothing else.
func metricsMux(h http.Handler) http.Handler {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", h)
	return mux
}

// rateString writes a server.Rate as a flag value, PER_SECOND/BURST.
func rateString(r server.Rate) string {
	return strconv.FormatFloat(r.PerSecond, 'f', -1, 64) + "/" + strconv.Itoa(r.Burst)
}

// parseRate reads PER_SECOND/BURST.
func parseRate(s string) (server.Rate, error) {
	rate, burst, ok := strings.Cut(s, "/")
	r, err1 := strconv.ParseFloat(strings.TrimSpace(rate), 64)
	b, err2 := strconv.Atoi(strings.TrimSpace(burst))
	if !ok || err1 != nil || err2 != nil || r <= 0 || b < 1 {
		return server.Rate{}, errors.New("want PER_SECOND/BURST, both positive, e.g. 2/10")
	}
	return server.Rate{PerSecond: r, Burst: b}, nil
}

// decodeMasterKey reads a 32-byte key written as 64 hex digits or base64.
func decodeMasterKey(s string) ([]byte, error) {
	s = strings.TrimSpace(s)
	if k, err := hex.DecodeString(s); err == nil && len(k) == 32 {
		return k, nil
	}
	for _, enc := range []*base64.Encoding{base64.StdEncoding, base64.RawStdEncoding, base64.URLEncoding, base64.RawURLEncoding} {
		if k, err := enc.DecodeString(s); err == nil && len(k) == 32 {
			return k, nil
		}
	}
	return nil, errors.New("want 32 bytes as 64 hex digits or base64 (e.g. openssl rand -hex 32)")
}

// webPushContactOr is --web-push-contact, or else the --public-url when
// it is https, or else postmaster at the public URL's host (push services
// want an address they can reach the operator at; set the flag).
func (c *serveConfig) webPushContactOr() string {
	switch {
	case c.webPushContact == "off":
		return ""
	case c.webPushContact != "":
		return c.webPushContact
	case strings.HasPrefix(c.publicURL, "https://"):
		return c.publicURL
	}
	host := "localhost"
	if u, err := url.Parse(c.publicURL); err == nil && u.Hostname() != "" {
		host = u.Hostname()
	}
	return "mailto:postmaster@" + host
}

// mediaBaseURL is where clients fetch --media fs links: --public-url, or
// this node's own address.
func (c *serveConfig) mediaBaseURL() string {
	if c.publicURL != "" {
		return c.publicURL
	}
	scheme := "http"
	if c.tlsCert != "" {
		scheme = "https"
	}
	return scheme + "://" + c.addr
}

// mailName says what sends mail, for the dashboard.
func mailName(c serveConfig) string {
	switch {
	case c.smtpURL != "":
		return "smtp"
	case c.smsProvider == "log":
		return "log"
	}
	return ""
}
