package main

import (
	"context"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"os"
	"time"

	"github.com/tern-im/tern/auth"
	smshttp "github.com/tern-im/tern/auth/sms/http"
	smslog "github.com/tern-im/tern/auth/sms/log"
	"github.com/tern-im/tern/push"
	pushlog "github.com/tern-im/tern/push/log"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/routing/inproc"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
)

type serveConfig struct {
	addr, dataDir, logFormat, logLevel string
	storeKind, routerKind, pushKind    string
	smsProvider, smsHTTPURL            string
	debugAddr                          string
	grace                              time.Duration
	srv                                server.Config
	auth                               auth.Config
}

func serveFlags(c *serveConfig) *flagSet {
	fs := newFlagSet("tern serve", "TERN_")
	sd, ad := server.DefaultConfig(), auth.DefaultConfig()
	fs.String(&c.addr, "addr", "127.0.0.1:8080", "address to listen on")
	fs.String(&c.dataDir, "data-dir", "./data", "directory of the embedded store")
	fs.String(&c.logFormat, "log-format", "auto", "log format: text, json, or auto (text on a terminal)")
	fs.String(&c.logLevel, "log-level", "info", "log level: debug, info, warn, error")
	fs.String(&c.storeKind, "store", "embedded", "store engine: embedded")
	fs.String(&c.routerKind, "router", "inproc", "router between nodes: inproc")
	fs.String(&c.pushKind, "push", "log", "push provider for offline devices: log")
	fs.String(&c.smsProvider, "sms-provider", "log", "how verification codes are sent: log (printed) or http (a gateway)")
	fs.String(&c.smsHTTPURL, "sms-http-url", "", "gateway URL for --sms-provider http; receives POST {to, text}")
	fs.String(&c.srv.NodeID, "node-id", hostnameOr("node-1"), "this node's name in logs, metrics and routing")
	fs.String(&c.debugAddr, "debug-addr", "", "serve Go pprof profiles on this address (keep it on loopback); empty: off")
	fs.Duration(&c.grace, "shutdown-grace", 15*time.Second, "how long a shutdown waits for in-flight work")
	fs.Int(&c.srv.MaxFrameBytes, "max-frame-bytes", sd.MaxFrameBytes, "largest client WebSocket frame")
	fs.Int(&c.srv.MaxTextBytes, "max-text-bytes", sd.MaxTextBytes, "largest message text (text + caption)")
	fs.Float(&c.srv.SendsPerSecond, "sends-per-second", sd.SendsPerSecond, "sends per device per second, sustained")
	fs.Int(&c.srv.SendBurst, "send-burst", sd.SendBurst, "sends per device in a burst")
	fs.Int(&c.srv.Window, "window", sd.Window, "unacked inbox events in flight per socket")
	fs.Duration(&c.srv.IdleTimeout, "idle-timeout", sd.IdleTimeout, "close sockets silent for this long")
	fs.Int(&c.srv.HistoryLimit, "history-limit", sd.HistoryLimit, "largest history page")
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

	var st store.Store
	switch c.storeKind {
	case "embedded":
		es, err := embedded.Open(ctx, c.dataDir, embedded.Options{Log: log})
		if err != nil {
			return err
		}
		st = es
	default:
		return fmt.Errorf("--store %q: this build supports embedded", c.storeKind)
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
	default:
		return fmt.Errorf("--router %q: this build supports inproc", c.routerKind)
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
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return fmt.Errorf("listen: %w", err)
	}
	if c.debugAddr != "" {
		if err := serveDebug(ctx, c.debugAddr, log); err != nil {
			_ = ln.Close()
			return err
		}
	}
	log.Info("tern starting", "version", versionString(), "addr", ln.Addr().String(),
		"store", c.storeKind, "data_dir", c.dataDir, "router", c.routerKind, "sms", c.smsProvider)
	err = srv.Run(ctx, ln, c.grace)
	log.Info("tern stopped")
	return err
}

// serveDebug serves pprof on its own listener, never on the public one.
func serveDebug(ctx context.Context, addr string, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--debug-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	log.Info("pprof listening", "addr", ln.Addr().String())
	return nil
}
