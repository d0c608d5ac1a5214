package main

import (
	"context"
	"crypto/tls"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"os"
	"os/signal"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/wire"
)

// HTTP timeouts that need no flag. ReadHeaderTimeout bounds a client that
// opens connections and sends its headers slowly (one goroutine and one
// descriptor each while it waits); httpIdleTimeout closes keep-alive
// connections that nobody uses.
const (
	readHeaderTimeout = 10 * time.Second
	httpIdleTimeout   = 120 * time.Second
)

// listen opens the public listener, serving TLS with cr's certificate when
// there is one. check has already refused plain HTTP on anything but
// loopback without --insecure-http, so that a node never serves tokens in
// clear text by accident.
func listen(ctx context.Context, c serveConfig, cr *certReloader, log *slog.Logger) (net.Listener, error) {
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if cr == nil {
		// Nothing to reload, but SIGHUP's default action would end the
		// process without a drain (and systemd's reload sends it).
		onSIGHUP(ctx, func() { log.Info("SIGHUP: no TLS certificate to reload; ignored") })
		return ln, nil
	}
	onSIGHUP(ctx, func() {
		// A bad new file keeps the old certificate in service.
		if err := cr.reload(); err != nil {
			log.Error("TLS certificate reload failed; keeping the old one", "err", err)
			return
		}
		log.Info("TLS certificate reloaded", "cert", cr.certFile)
	})
	return tls.NewListener(ln, tlsConfig(cr.get)), nil
}

// serveAPI serves srv's API on ln until ctx ends, then stops as
// server.Run does: /readyz answers 503 and new sockets are refused, after
// the drain delay the listener closes and requests in flight finish, then
// every socket is closed with 1001, all within the shutdown grace.
//
// It is server.Run with the http.Server's timeouts set, which Run does not
// let its caller choose: without ReadTimeout a client sending a body one
// byte at a time holds a connection and a goroutine for as long as it
// likes, and without WriteTimeout so does one that never reads its answer.
func serveAPI(ctx context.Context, srv *server.Server, ln net.Listener, c serveConfig, log *slog.Logger) error {
	var draining atomic.Bool
	hs := &http.Server{
		Handler:           apiHandler(srv.Handler(), &draining),
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       c.httpReadTimeout,
		WriteTimeout:      c.httpWriteTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	errc := make(chan error, 1)
	go func() { errc <- hs.Serve(ln) }()
	log.Info("listening", "addr", ln.Addr().String())
	select {
	case err := <-errc:
		srv.Shutdown(context.Background())
		return fmt.Errorf("serve: %w", err)
	case <-ctx.Done():
	}
	draining.Store(true)
	if c.drainDelay > 0 {
		log.Info("draining: /readyz is 503, closing sockets after the drain delay", "delay", c.drainDelay)
		time.Sleep(c.drainDelay)
	}
	sctx, cancel := context.WithTimeout(context.Background(), c.grace)
	defer cancel()
	herr := hs.Shutdown(sctx)
	srv.Shutdown(sctx)
	if herr != nil && !errors.Is(herr, context.DeadlineExceeded) {
		return fmt.Errorf("shutdown: %w", herr)
	}
	return nil
}

// apiHandler puts h behind what serveAPI adds to the server's own handler:
// the drain answers, and WebSocket upgrades freed from the request
// deadlines.
func apiHandler(h http.Handler, draining *atomic.Bool) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if draining.Load() && (r.URL.Path == "/readyz" || r.URL.Path == "/v1/ws") {
			// What the server answers once it drains itself (Shutdown);
			// until then this keeps load balancers and new sockets away
			// while the sockets it holds keep working.
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(wire.ErrorBody{Error: wire.Errorf(wire.CodeUnavailable, "draining")})
			return
		}
		if r.URL.Path == "/v1/ws" && r.ContentLength == 0 && len(r.TransferEncoding) == 0 &&
			websocket.IsWebSocketUpgrade(r) {
			// The upgrade hijacks the connection, and the deadlines that
			// ReadTimeout and WriteTimeout put on it for this request
			// would cut the socket if they stayed: Hijack's documentation
			// leaves clearing them to the caller (Go 1.26 happens to, and
			// gorilla/websocket clears only the write deadline it set for
			// the handshake). From the upgrade on, the session sets its
			// own deadlines (--idle-timeout for reads, a write timeout per
			// frame). Only for a request without a body: one with a body
			// must not escape ReadTimeout this way.
			rc := http.NewResponseController(w)
			_ = rc.SetReadDeadline(time.Time{})
			_ = rc.SetWriteDeadline(time.Time{})
		}
		h.ServeHTTP(w, r)
	})
}

// loopbackAddr reports whether addr (host:port) listens on loopback only.
func loopbackAddr(addr string) bool {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return false
	}
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// tlsConfig allows TLS 1.2 with ECDHE and AEAD ciphers only, and TLS 1.3.
func tlsConfig(getCert func(*tls.ClientHelloInfo) (*tls.Certificate, error)) *tls.Config {
	return &tls.Config{
		MinVersion:     tls.VersionTLS12,
		GetCertificate: getCert,
		CipherSuites: []uint16{
			tls.TLS_ECDHE_ECDSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_RSA_WITH_AES_128_GCM_SHA256,
			tls.TLS_ECDHE_ECDSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_RSA_WITH_AES_256_GCM_SHA384,
			tls.TLS_ECDHE_ECDSA_WITH_CHACHA20_POLY1305_SHA256,
			tls.TLS_ECDHE_RSA_WITH_CHACHA20_POLY1305_SHA256,
		},
		NextProtos: []string{"http/1.1"},
	}
}

// certReloader serves the current certificate and swaps it on SIGHUP, so a
// renewed certificate takes effect without dropping a socket.
type certReloader struct {
	certFile, keyFile string
	mu                sync.RWMutex
	cert              *tls.Certificate
}

func newCertReloader(certFile, keyFile string) (*certReloader, error) {
	cr := &certReloader{certFile: certFile, keyFile: keyFile}
	if err := cr.reload(); err != nil {
		return nil, err
	}
	return cr, nil
}

func (cr *certReloader) reload() error {
	cert, err := tls.LoadX509KeyPair(cr.certFile, cr.keyFile)
	if err != nil {
		return fmt.Errorf("load TLS certificate: %w", err)
	}
	cr.mu.Lock()
	cr.cert = &cert
	cr.mu.Unlock()
	return nil
}

func (cr *certReloader) get(*tls.ClientHelloInfo) (*tls.Certificate, error) {
	cr.mu.RLock()
	defer cr.mu.RUnlock()
	return cr.cert, nil
}

// onSIGHUP calls f on every SIGHUP until ctx ends. The handler is in place
// when it returns, so no SIGHUP from then on takes the default action.
func onSIGHUP(ctx context.Context, f func()) {
	hup := make(chan os.Signal, 1)
	signal.Notify(hup, syscall.SIGHUP)
	go func() {
		defer signal.Stop(hup)
		for {
			select {
			case <-ctx.Done():
				return
			case <-hup:
				f()
			}
		}
	}()
}
