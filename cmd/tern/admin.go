package main

import (
	"context"
	"crypto/subtle"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"
)

// backuper is a store that can stream a consistent snapshot while serving
// (the embedded store; MongoDB is backed up with its own tools).
type backuper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// serveAdmin serves pprof and, with a token, the admin API on their own
// listener, never on the public one.
func serveAdmin(ctx context.Context, addr, token string, st any, log *slog.Logger) error {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("--admin-addr: %w", err)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("/debug/pprof/", pprof.Index)
	mux.HandleFunc("/debug/pprof/cmdline", pprof.Cmdline)
	mux.HandleFunc("/debug/pprof/profile", pprof.Profile)
	mux.HandleFunc("/debug/pprof/symbol", pprof.Symbol)
	mux.HandleFunc("/debug/pprof/trace", pprof.Trace)
	mux.HandleFunc("GET /admin/v1/backup", func(w http.ResponseWriter, r *http.Request) {
		if !adminAuthorized(r, token) {
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		b, ok := st.(backuper)
		if !ok {
			http.Error(w, "this store is backed up with its own tools (mongodump)", http.StatusNotImplemented)
			return
		}
		w.Header().Set("Content-Type", "application/x-tar")
		w.Header().Set("Content-Disposition", `attachment; filename="tern-backup.tar"`)
		n, err := b.Backup(r.Context(), w)
		if err != nil {
			log.Error("backup failed", "err", err, "bytes", n)
			// The status went with the first byte: break the connection
			// instead of ending the stream cleanly, so the client sees
			// the failure (and tern backup checks the stream too).
			panic(http.ErrAbortHandler)
		}
		log.Info("backup streamed", "bytes", n)
	})
	hs := &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = hs.Serve(ln) }()
	go func() {
		<-ctx.Done()
		_ = hs.Close()
	}()
	log.Info("admin listening", "addr", ln.Addr().String(), "admin_api", token != "")
	return nil
}

func adminAuthorized(r *http.Request, token string) bool {
	if token == "" {
		return false
	}
	h := r.Header.Get("Authorization")
	if len(h) < 7 || !strings.EqualFold(h[:7], "bearer ") {
		return false
	}
	return subtle.ConstantTimeCompare([]byte(strings.TrimSpace(h[7:])), []byte(token)) == 1
}
