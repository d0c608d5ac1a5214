package main

import (
	"context"
	"crypto/tls"
	"fmt"
	"log/slog"
	"net"
	"os"
	"os/signal"
	"sync"
	"syscall"
)

// listen opens the public listener: TLS when a certificate is configured,
// plain HTTP only on a loopback address or with --insecure-http, so that a
// node never serves tokens in clear text by accident.
func listen(ctx context.Context, c serveConfig, log *slog.Logger) (net.Listener, error) {
	if (c.tlsCert == "") != (c.tlsKey == "") {
		return nil, fmt.Errorf("--tls-cert and --tls-key go together")
	}
	if c.tlsCert == "" && !c.insecureHTTP && !loopbackAddr(c.addr) {
		return nil, fmt.Errorf("refusing plain HTTP on %s: it is not a loopback address; "+
			"set --tls-cert/--tls-key, or --insecure-http behind a TLS-terminating load balancer", c.addr)
	}
	ln, err := net.Listen("tcp", c.addr)
	if err != nil {
		return nil, fmt.Errorf("listen: %w", err)
	}
	if c.tlsCert == "" {
		// Nothing to reload, but SIGHUP's default action would end the
		// process without a drain (and systemd's reload sends it).
		onSIGHUP(ctx, func() { log.Info("SIGHUP: no TLS certificate to reload; ignored") })
		return ln, nil
	}
	cr, err := newCertReloader(c.tlsCert, c.tlsKey)
	if err != nil {
		_ = ln.Close()
		return nil, err
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
