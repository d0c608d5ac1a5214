package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"os"
	"time"

	"github.com/tern-im/tern/auth"
	smshttp "github.com/tern-im/tern/auth/sms/http"
	smslog "github.com/tern-im/tern/auth/sms/log"
	"github.com/tern-im/tern/push"
	pushlog "github.com/tern-im/tern/push/log"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/routing/inproc"
	"github.com/tern-im/tern/routing/rabbitmq"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
	"github.com/tern-im/tern/store/mongo"
)

type serveConfig struct {
	addr, dataDir, logFormat, logLevel string
	storeKind, routerKind, pushKind    string
	mongoURI, mongoDB, mongoWC         string
	amqpURL                            string
	smsProvider, smsHTTPURL            string
	tlsCert, tlsKey                    string
	insecureHTTP                       bool
	adminAddr, adminToken              string
	grace, drainDelay                  time.Duration
	srv                                server.Config
	auth                               auth.Config
}

// defaultInboxCheck is --inbox-check with a broker: well inside the few
// seconds in which a connected device must see a message answered sent.
const defaultInboxCheck = 2 * time.Second

func serveFlags(c *serveConfig) *flagSet {
	fs := newFlagSet("tern serve", "TERN_")
	sd, ad := server.DefaultConfig(), auth.DefaultConfig()
	fs.String(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.String(&c.dataDir, "data-dir", "./data", "directory of the embedded store")
	fs.String(&c.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal)")
	fs.String(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.String(&c.storeKind, "store", "embedded", "store engine: embedded (under --data-dir) or mongo")
	fs.String(&c.mongoURI, "mongo-uri", "", "MongoDB connection string for --store mongo")
	fs.String(&c.mongoDB, "mongo-db", "tern", "MongoDB database for --store mongo")
	fs.String(&c.mongoWC, "mongo-write-concern", "majority", "MongoDB write concern: majority or a number of nodes")
	fs.String(&c.routerKind, "router", "inproc", "router between nodes: inproc (one node) or rabbitmq")
	fs.String(&c.amqpURL, "amqp-url", "", "RabbitMQ URL for --router rabbitmq, amqp://user:pass@host:5672/")
	fs.String(&c.tlsCert, "tls-cert", "", "serve HTTPS and WSS with this certificate (PEM; reloaded on SIGHUP)")
	fs.String(&c.tlsKey, "tls-key", "", "private key of --tls-cert (PEM)")
	fs.Bool(&c.insecureHTTP, "insecure-http", false, "allow plain HTTP on a non-loopback address (behind a TLS-terminating load balancer)")
	fs.String(&c.adminAddr, "admin-addr", "", "serve pprof and the admin API (backup) on this address; keep it private. Empty: off")
	fs.String(&c.adminToken, "admin-token", "", "bearer token the admin API requires; empty: admin API off (pprof still served)")
	fs.Duration(&c.drainDelay, "drain-delay", 0, "on SIGTERM, keep serving with /readyz at 503 this long before closing sockets (let the load balancer notice)")
	fs.String(&c.pushKind, "push", "log", "push provider for offline devices: log")
	fs.String(&c.smsProvider, "sms-provider", "log", "how verification codes are sent: log (printed) or http (a gateway)")
	fs.String(&c.smsHTTPURL, "sms-http-url", "", "gateway URL for --sms-provider http; receives POST {to, text}")
	fs.String(&c.srv.NodeID, "node-id", hostnameOr("node-1"), "this node's name in logs, metrics and routing")
	fs.Duration(&c.grace, "shutdown-grace", 15*time.Second, "how long a shutdown waits for in-flight work")
	fs.Int(&c.srv.MaxFrameBytes, "max-frame-bytes", sd.MaxFrameBytes, "largest client WebSocket frame")
	fs.Int(&c.srv.MaxTextBytes, "max-text-bytes", sd.MaxTextBytes, "largest message text (text + caption)")
	fs.Float(&c.srv.SendsPerSecond, "sends-per-second", sd.SendsPerSecond, "sends per device per second, sustained")
	fs.Int(&c.srv.SendBurst, "send-burst", sd.SendBurst, "sends per device in a burst")
	fs.Int(&c.srv.Window, "window", sd.Window, "unacked inbox events in flight per socket")
	fs.Duration(&c.srv.IdleTimeout, "idle-timeout", sd.IdleTimeout, "close sockets silent for this long")
	fs.Int(&c.srv.HistoryLimit, "history-limit", sd.HistoryLimit, "largest history page")
	fs.Duration(&c.srv.InboxCheck, "inbox-check", 0, "how often to check that every socket got all of its inbox (the safety net under routing); 0: 2s with --router rabbitmq, off in-process; negative: off")
	fs.Bool(&c.srv.TrustProxy, "trust-proxy", false, "take client IPs from X-Forwarded-For (behind a load balancer only)")
	fs.Duration(&c.auth.CodeTTL, "code-ttl", ad.CodeTTL, "lifetime of a verification code")
	fs.Int(&c.auth.MaxAttempts, "code-attempts", ad.MaxAttempts, "tries per verification code")
	fs.Duration(&c.auth.ResendAfter, "code-resend-after", ad.ResendAfter, "wait before another code for the same phone")
	fs.Int(&c.auth.CodesPerPhonePerHour, "codes-per-phone-hour", ad.CodesPerPhonePerHour, "codes per phone per hour")
	fs.Int(&c.auth.CodesPerIPPerHour, "codes-per-ip-hour", ad.CodesPerIPPerHour, "codes per client IP per hour (0: unlimited)")
	fs.Int(&c.auth.VerifiesPerIPPerHour, "verifies-per-ip-hour", ad.VerifiesPerIPPerHour, "verify attempts per client IP per hour (0: unlimited)")
	fs.Duration(&c.auth.AccessTTL, "access-ttl", ad.AccessTTL, "lifetime of access tokens")
	fs.Duration(&c.auth.RefreshTTL, "refresh-ttl", ad.RefreshTTL, "lifetime of refresh tokens")
	return fs
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

func serve(ctx context.Context, args []string, stderr io.Writer) error {
	var c serveConfig
	fs := serveFlags(&c)
	fs.SetOutput(stderr)
	if err := fs.parse(args); err != nil {
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

	var st store.Store
	switch c.storeKind {
	case "embedded":
		es, err := embedded.Open(ctx, c.dataDir, embedded.Options{Log: log})
		if err != nil {
			return err
		}
		st = es
	case "mongo":
		if c.mongoURI == "" {
			return fmt.Errorf("--store mongo needs --mongo-uri")
		}
		ms, err := mongo.Open(ctx, mongo.Config{URI: c.mongoURI, Database: c.mongoDB,
			WriteConcern: c.mongoWC, Log: log})
		if err != nil {
			return err
		}
		st = ms
	default:
		return fmt.Errorf("--store %q: want embedded or mongo", c.storeKind)
	}
	defer func() {
		if err := st.Close(); err != nil {
			log.Error("store close failed", "err", err)
		}
	}()

	var router routing.Router
	switch c.routerKind {
	case "inproc":
		router = inproc.New()
	case "rabbitmq":
		if c.amqpURL == "" {
			return fmt.Errorf("--router rabbitmq needs --amqp-url")
		}
		rr, err := rabbitmq.New(ctx, rabbitmq.Config{URL: c.amqpURL, NodeID: c.srv.NodeID, Log: log})
		if err != nil {
			return err
		}
		router = rr
	default:
		return fmt.Errorf("--router %q: want inproc or rabbitmq", c.routerKind)
	}
	defer router.Close()

	var pusher push.Notifier
	switch c.pushKind {
	case "log":
		pusher = pushlog.Notifier{Log: log}
	default:
		return fmt.Errorf("--push %q: this build supports log", c.pushKind)
	}

	var sms auth.Sender
	switch c.smsProvider {
	case "log":
		sms = smslog.Sender{Log: log}
	case "http":
		if c.smsHTTPURL == "" {
			return fmt.Errorf("--sms-provider http needs --sms-http-url")
		}
		sms = smshttp.New(c.smsHTTPURL, nil)
	default:
		return fmt.Errorf("--sms-provider %q: want log or http", c.smsProvider)
	}

	// The server closes revoked devices' sockets; auth learns of it
	// through OnRevoke, set before the server exists.
	var srv *server.Server
	as, err := auth.New(ctx, st, sms, c.auth, auth.Options{Log: log,
		OnRevoke: func(userID, deviceID string) {
			if srv != nil {
				srv.DeviceRevoked(userID, deviceID)
			}
		}})
	if err != nil {
		return err
	}
	srv, err = server.New(c.srv, server.Deps{Store: st, Router: router, Push: pusher, Auth: as,
		Log: log, Version: versionString()})
	if err != nil {
		return err
	}
	ln, err := listen(ctx, c, log)
	if err != nil {
		return err
	}
	if c.adminAddr != "" {
		if err := serveAdmin(ctx, c.adminAddr, c.adminToken, st, log); err != nil {
			_ = ln.Close()
			return err
		}
	}
	log.Info("tern starting", "version", versionString(), "addr", ln.Addr().String(),
		"store", c.storeKind, "data_dir", c.dataDir, "router", c.routerKind, "sms", c.smsProvider,
		"tls", c.tlsCert != "")
	err = srv.Run(ctx, ln, server.RunOptions{Grace: c.grace, DrainDelay: c.drainDelay})
	log.Info("tern stopped")
	return err
}
