package main

import (
	"context"
	"crypto/subtle"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/pprof"
	"strings"
	"time"

	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// backuper is a store that can stream a consistent snapshot while serving
// (the embedded store; MongoDB is backed up with its own tools).
type backuper interface {
	Backup(ctx context.Context, w io.Writer) (int64, error)
}

// adminHandler is what the admin listener serves: pprof and the admin API
// (backup), both behind the admin token, and the metrics when serve put
// them here (metrics nil otherwise). pprof needs the token as much as the
// backup does: its goroutine dumps show what every connection is doing,
// and a CPU profile or an execution trace slows the node while it runs,
// which anyone reaching the port could repeat without end. Without a
// token both are off.
func adminHandler(token string, st any, keys keyRotator, admins adminCreator, metrics http.Handler, log *slog.Logger) http.Handler {
	mux := http.NewServeMux()
	if metrics != nil {
		mux.Handle("GET /metrics", metrics)
	}
	admin := func(h http.HandlerFunc) http.Handler {
		if token == "" {
			return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				http.Error(w, "the admin API and pprof are off: this node has no --admin-token", http.StatusNotFound)
			})
		}
		return requireToken(token, h)
	}
	// No /debug/pprof/cmdline: it prints the command line, secrets given
	// as flags included, and no profile needs it. (pprof.Index answers it
	// 404, "Unknown profile".)
	mux.Handle("/debug/pprof/", admin(pprof.Index))
	mux.Handle("/debug/pprof/profile", admin(pprof.Profile))
	mux.Handle("/debug/pprof/symbol", admin(pprof.Symbol))
	mux.Handle("/debug/pprof/trace", admin(pprof.Trace))
	mux.Handle("GET /admin/v1/backup", admin(func(w http.ResponseWriter, r *http.Request) {
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
	}))
	mux.Handle("POST /admin/v1/keys/rotate", admin(func(w http.ResponseWriter, r *http.Request) {
		id, err := keys.RotateKeys(r.Context())
		if err != nil {
			log.Error("key rotation failed", "err", err)
			http.Error(w, "key rotation failed; see the node's log", http.StatusInternalServerError)
			return
		}
		log.Info("signing keys rotated", "key_id", id)
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, "{\"key_id\":%d}\n", id)
	}))
	// The first dashboard account is made here (tern admin create): whoever
	// holds the node's admin token runs the node anyway.
	account := func(do func(ctx context.Context, username, password string) (store.Admin, error), done string, status int) http.Handler {
		return admin(func(w http.ResponseWriter, r *http.Request) {
			var req struct {
				Username string `json:"username"`
				Password string `json:"password"`
			}
			if err := json.NewDecoder(io.LimitReader(r.Body, 8192)).Decode(&req); err != nil {
				http.Error(w, "want a JSON body {username, password}", http.StatusBadRequest)
				return
			}
			a, err := do(r.Context(), req.Username, req.Password)
			if err != nil {
				var we *wire.Error
				if errors.As(err, &we) {
					http.Error(w, we.Message, wire.HTTPStatus(we.Code))
					return
				}
				log.Error("admin account: "+done+" failed", "err", err)
				http.Error(w, done+" failed; see the node's log", http.StatusInternalServerError)
				return
			}
			log.Info("admin account "+done, "username", a.Username)
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(map[string]string{"admin_id": a.ID, "username": a.Username})
		})
	}
	// The first dashboard account is made here (tern admin create), and
	// one whose password or authenticator is lost is reset here (tern
	// admin reset): whoever holds the node's admin token runs the node
	// anyway.
	mux.Handle("POST /admin/v1/admins", account(admins.CreateAdmin, "created", http.StatusCreated))
	mux.Handle("POST /admin/v1/admins/reset", account(admins.ResetAdmin, "reset", http.StatusOK))
	// Businesses (tern business create): the answer holds the first API
	// token and the webhook secret, shown this once.
	mux.Handle("POST /admin/v1/businesses", admin(func(w http.ResponseWriter, r *http.Request) {
		var req struct {
			Phone       string `json:"phone"`
			Name        string `json:"name"`
			WebhookURL  string `json:"webhook_url"`
			VerifyToken string `json:"verify_token"`
		}
		if err := json.NewDecoder(io.LimitReader(r.Body, 8192)).Decode(&req); err != nil {
			http.Error(w, "want a JSON body {phone, name, webhook_url?, verify_token?}", http.StatusBadRequest)
			return
		}
		b, err := admins.CreateBusiness(r.Context(), server.NewBusiness{Phone: req.Phone, Name: req.Name,
			WebhookURL: req.WebhookURL, VerifyToken: req.VerifyToken})
		if err != nil {
			var we *wire.Error
			if errors.As(err, &we) {
				http.Error(w, we.Message, wire.HTTPStatus(we.Code))
				return
			}
			log.Error("creating a business failed", "err", err)
			http.Error(w, "creating the business failed; see the node's log", http.StatusInternalServerError)
			return
		}
		log.Info("business created", "user", b.UserID, "phone_number_id", b.PhoneNumberID)
		w.Header().Set("Content-Type", "application/json")
		w.Header().Set("Cache-Control", "no-store")
		w.WriteHeader(http.StatusCreated)
		_ = json.NewEncoder(w).Encode(b)
	}))
	return mux
}

// adminCreator makes dashboard accounts (server.Server.CreateAdmin).
type adminCreator interface {
	CreateAdmin(ctx context.Context, username, password string) (store.Admin, error)
	ResetAdmin(ctx context.Context, username, password string) (store.Admin, error)
	CreateBusiness(ctx context.Context, nb server.NewBusiness) (server.BusinessCreated, error)
}

// keyRotator adds a signing key (auth.Service.RotateKeys).
type keyRotator interface {
	RotateKeys(ctx context.Context) (uint32, error)
}

func requireToken(token string, h http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if !adminAuthorized(r, token) {
			w.Header().Set("WWW-Authenticate", `Bearer realm="tern admin"`)
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		h.ServeHTTP(w, r)
	})
}

// serveHTTP serves h on ln until ctx ends: the admin and the metrics
// listeners. Both are private (loopback, or a network only Prometheus and
// operators reach), but still get header and body deadlines, so that a
// stuck client cannot pile up connections. writeTimeout 0 means none,
// which the admin listener needs: a backup streams for as long as the
// store is large, and pprof refuses a profile longer than WriteTimeout.
func serveHTTP(ctx context.Context, ln net.Listener, h http.Handler, c serveConfig, writeTimeout time.Duration, log *slog.Logger) {
	hs := &http.Server{
		Handler:           h,
		ReadHeaderTimeout: readHeaderTimeout,
		ReadTimeout:       c.httpReadTimeout,
		WriteTimeout:      writeTimeout,
		IdleTimeout:       httpIdleTimeout,
		ErrorLog:          slog.NewLogLogger(log.Handler(), slog.LevelWarn),
	}
	go func() { _ = hs.Serve(ln) }()
	context.AfterFunc(ctx, func() { _ = hs.Close() })
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
