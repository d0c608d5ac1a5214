package server

import (
	"bytes"
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tern-im/tern/admin"
	"github.com/tern-im/tern/internal/seal"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// The admin API under /v1/admin: what the dashboard at /admin does, and
// what scripts do with an API key. A browser signs in with a username and
// password (and a TOTP code when the account has one) and gets an
// HttpOnly, SameSite=Strict session cookie; every state change must also
// carry the session's CSRF token in X-CSRF-Token. Scripts send
// "Authorization: Bearer <key>" instead, and need no CSRF token (a browser
// never adds that header by itself). Every change is written to the audit
// log: who, what, to what, when, from where.
const (
	adminCookie     = "tern_admin"
	adminCSRFHeader = "X-CSRF-Token"
	adminSessionTTL = 12 * time.Hour
	adminKeyPrefix  = "tak_"
)

// adminActor is who is calling: an admin through a session, or a key.
type adminActor struct {
	admin   store.Admin
	session *store.AdminSession // nil for an API key
	name    string              // for the audit log
}

type adminHandler func(w http.ResponseWriter, r *http.Request, a adminActor)

func (s *Server) adminRoutes(handle func(pattern string, h http.HandlerFunc)) {
	handle("POST /v1/admin/login", s.handleAdminLogin)
	handle("POST /v1/admin/logout", s.adminAuthed(true, s.handleAdminLogout))
	handle("GET /v1/admin/me", s.adminAuthed(false, s.handleAdminMe))
	handle("GET /v1/admin/overview", s.adminAuthed(false, s.handleAdminOverview))
	handle("GET /v1/admin/settings", s.adminAuthed(false, s.handleAdminSettings))
	handle("GET /v1/admin/users", s.adminAuthed(false, s.handleAdminUsers))
	handle("GET /v1/admin/users/{user_id}", s.adminAuthed(false, s.handleAdminUser))
	handle("PUT /v1/admin/users/{user_id}/ban", s.adminAuthed(true, s.handleAdminBan))
	handle("DELETE /v1/admin/users/{user_id}/ban", s.adminAuthed(true, s.handleAdminUnban))
	handle("DELETE /v1/admin/users/{user_id}/devices/{device_id}", s.adminAuthed(true, s.handleAdminRevoke))
	handle("GET /v1/admin/audit", s.adminAuthed(false, s.handleAdminAudit))
	handle("GET /v1/admin/reports", s.adminAuthed(false, s.handleAdminReports))
	handle("POST /v1/admin/reports/{report_id}/{action}", s.adminAuthed(true, s.handleAdminResolveReport))
	handle("GET /v1/admin/groups", s.adminAuthed(false, s.handleAdminGroups))
	handle("GET /v1/admin/groups/{chat_id}", s.adminAuthed(false, s.handleAdminGroup))
	handle("DELETE /v1/admin/groups/{chat_id}", s.adminAuthed(true, s.handleAdminDeleteGroup))
	handle("GET /v1/admin/businesses", s.adminAuthed(false, s.handleAdminBusinesses))
	handle("POST /v1/admin/businesses", s.adminAuthed(true, s.handleAdminNewBusiness))
	handle("PATCH /v1/admin/businesses/{user_id}", s.adminAuthed(true, s.handleAdminPatchBusiness))
	handle("GET /v1/admin/businesses/{user_id}/tokens", s.adminAuthed(false, s.handleAdminBusinessTokens))
	handle("POST /v1/admin/businesses/{user_id}/tokens", s.adminAuthed(true, s.handleAdminNewBusinessToken))
	handle("DELETE /v1/admin/businesses/{user_id}/tokens/{token_id}", s.adminAuthed(true, s.handleAdminDeleteBusinessToken))
	handle("POST /v1/admin/keys", s.adminAuthed(true, s.handleAdminNewKey))
	handle("GET /v1/admin/keys", s.adminAuthed(false, s.handleAdminKeys))
	handle("DELETE /v1/admin/keys/{key_id}", s.adminAuthed(true, s.handleAdminDeleteKey))
	handle("GET /v1/admin/admins", s.adminAuthed(false, s.handleAdminAdmins))
	handle("PUT /v1/admin/admins/{admin_id}/disabled", s.adminAuthed(true, s.handleAdminDisable(true)))
	handle("DELETE /v1/admin/admins/{admin_id}/disabled", s.adminAuthed(true, s.handleAdminDisable(false)))
	handle("POST /v1/admin/me/totp", s.adminAuthed(true, s.handleAdminTOTPNew))
	handle("PUT /v1/admin/me/totp", s.adminAuthed(true, s.handleAdminTOTPSet))
	handle("DELETE /v1/admin/me/totp", s.adminAuthed(true, s.handleAdminTOTPOff))
	handle("PUT /v1/admin/me/password", s.adminAuthed(true, s.handleAdminPassword))
}

// spendTOTPStep records step as used for an admin unless it, or a later
// one, was: false means the code was used already.
func (s *Server) spendTOTPStep(adminID string, step int64) bool {
	for {
		last, loaded := s.totpSteps.LoadOrStore(adminID, step)
		if !loaded {
			return true
		}
		if step <= last.(int64) {
			return false
		}
		if s.totpSteps.CompareAndSwap(adminID, last, step) {
			return true
		}
	}
}

// handleAdminTOTPNew makes a fresh secret for the caller to load into an
// authenticator app; nothing is stored until PUT proves the app has it.
func (s *Server) handleAdminTOTPNew(w http.ResponseWriter, r *http.Request, a adminActor) {
	secret, err := admin.NewTOTPSecret()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, map[string]string{"secret": admin.TOTPSecretText(secret),
		"uri": admin.TOTPURI(secret, "Tern", a.admin.Username)})
}

// handleAdminTOTPSet turns the second factor on with {secret, code}: the
// code shows the app holds the secret. Only a signed-in browser may, not
// an API key: a key must not be able to lock its owner out.
func (s *Server) handleAdminTOTPSet(w http.ResponseWriter, r *http.Request, a adminActor) {
	var req struct {
		Secret   string `json:"secret"`
		Code     string `json:"code"`
		Password string `json:"password"`
	}
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	// The password again: a session left open, or stolen, must not be
	// able to lock its owner out with a factor only the thief holds.
	if !s.checkOwnPassword(w, r, a, req.Password, "totp") {
		return
	}
	secret, err := admin.ParseTOTPSecret(req.Secret)
	if err != nil {
		writeError(w, wire.Errorf(wire.CodeBadRequest, "%v", err))
		return
	}
	step, ok := admin.CheckTOTP(secret, strings.TrimSpace(req.Code), time.Now())
	if !ok {
		writeError(w, wire.Errorf(wire.CodeInvalidCode, "the code does not match: check the app's clock and try the next code"))
		return
	}
	if a.admin.TOTPSecret, err = s.sealTOTP(a.admin.ID, secret); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.st.UpdateAdmin(r.Context(), a.admin); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.spendTOTPStep(a.admin.ID, step)
	s.audit(r.Context(), a.name, "totp_enabled", a.admin.ID, "", clientIP(r, s.cfg.TrustProxy))
	w.WriteHeader(http.StatusNoContent)
}

// CreateAdmin makes an admin account (tern admin create, through the
// node's ops listener). The username is kept lower-case.
func (s *Server) CreateAdmin(ctx context.Context, username, password string) (store.Admin, error) {
	username, ok := adminUsername(username)
	if !ok {
		return store.Admin{}, wire.Errorf(wire.CodeBadRequest, "a username has 2 to 64 of a-z, 0-9 and . _ - @")
	}
	hash, err := admin.HashPassword(password)
	if err != nil {
		if errors.Is(err, admin.ErrWeakPassword) {
			return store.Admin{}, wire.Errorf(wire.CodeBadRequest, "%v", err)
		}
		return store.Admin{}, fmt.Errorf("server: create admin: %w", err)
	}
	a := store.Admin{ID: store.NewID("a"), Username: username, PasswordHash: hash, CreatedAt: time.Now().UTC()}
	if err := s.st.CreateAdmin(ctx, a); err != nil {
		if errors.Is(err, store.ErrConflict) {
			return store.Admin{}, wire.Errorf(wire.CodeConflict, "the username %s is taken", username)
		}
		return store.Admin{}, fmt.Errorf("server: create admin: %w", err)
	}
	s.audit(ctx, "ops", "create_admin", a.ID, username, "")
	return a, nil
}

// adminUsername normalises a username and says whether it is one an
// account can have; anything else is refused before it is counted, logged
// or hashed.
func adminUsername(raw string) (string, bool) {
	u := strings.ToLower(strings.TrimSpace(raw))
	ok := len(u) >= 2 && len(u) <= 64 && !strings.ContainsFunc(u, func(r rune) bool {
		return !(r >= 'a' && r <= 'z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-' || r == '@')
	})
	return u, ok
}

// audit appends to the audit log; a failure is logged, not returned: the
// action itself is done.
func (s *Server) audit(ctx context.Context, actor, action, target, detail, ip string) {
	now := time.Now().UnixMilli()
	// Ordered by time, then by this node's count (two actions in one
	// millisecond keep their order), then a random part for uniqueness
	// across nodes.
	id := fmt.Sprintf("l%013d.%06d.%s", now, s.auditSeq.Add(1)%1_000_000, rand.Text()[:8])
	e := store.AuditEntry{ID: id, TS: now, Actor: actor, Action: action, Target: target, Detail: detail, IP: ip}
	if err := s.st.AppendAudit(ctx, e); err != nil {
		s.log.Error("admin: audit log write failed", "action", action, "target", target, "err", err)
	}
}

// adminAuthed resolves the caller; change says the request changes state,
// which a cookie session must prove with its CSRF token.
func (s *Server) adminAuthed(change bool, h adminHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		ctx := r.Context()
		if hdr := r.Header.Get("Authorization"); len(hdr) > 7 && strings.EqualFold(hdr[:7], "bearer ") {
			a, key, err := s.adminByKey(ctx, strings.TrimSpace(hdr[7:]))
			if err != nil {
				s.writeErr(w, r, err)
				return
			}
			h(w, r, adminActor{admin: a, name: "key:" + key.ID + "(" + a.Username + ")"})
			return
		}
		c, err := r.Cookie(adminCookie)
		if err != nil || c.Value == "" {
			writeError(w, wire.Errorf(wire.CodeUnauthorized, "sign in to the admin dashboard"))
			return
		}
		sess, err := s.st.AdminSession(ctx, admin.Digest(c.Value), time.Now())
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, wire.Errorf(wire.CodeUnauthorized, "the admin session ended; sign in again"))
			return
		}
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		if change && !constantEqual(r.Header.Get(adminCSRFHeader), sess.CSRF) {
			writeError(w, wire.Errorf(wire.CodeForbidden, "missing or wrong %s", adminCSRFHeader))
			return
		}
		a, err := s.st.Admin(ctx, sess.AdminID)
		if err != nil || a.Disabled {
			writeError(w, wire.Errorf(wire.CodeUnauthorized, "the admin account is gone or disabled"))
			return
		}
		h(w, r, adminActor{admin: a, session: &sess, name: a.Username})
	}
}

func constantEqual(a, b string) bool {
	return a != "" && admin.Digest(a) == admin.Digest(b)
}

// adminByKey checks an API key "tak_<id>.<secret>".
func (s *Server) adminByKey(ctx context.Context, key string) (store.Admin, store.APIKey, error) {
	bad := wire.Errorf(wire.CodeUnauthorized, "invalid API key")
	id, secret, ok := strings.Cut(strings.TrimPrefix(key, adminKeyPrefix), ".")
	if !strings.HasPrefix(key, adminKeyPrefix) || !ok || id == "" || secret == "" {
		return store.Admin{}, store.APIKey{}, bad
	}
	k, err := s.st.APIKey(ctx, id)
	if errors.Is(err, store.ErrNotFound) {
		return store.Admin{}, store.APIKey{}, bad
	}
	if err != nil {
		return store.Admin{}, store.APIKey{}, err
	}
	if admin.Digest(secret) != string(k.Hash) {
		return store.Admin{}, store.APIKey{}, bad
	}
	a, err := s.st.Admin(ctx, k.AdminID)
	if err != nil || a.Disabled {
		return store.Admin{}, store.APIKey{}, bad
	}
	return a, k, nil
}

// takeAdminLogin spends one sign-in try of the pair, the address and the
// account, all or none; the wait is the longest of those that are spent.
func (s *Server) takeAdminLogin(pair, addr, user string, now time.Time) time.Duration {
	if wait := s.adminLogins.take(pair, 1, now); wait > 0 {
		return wait
	}
	if wait := s.adminLoginsIP.take(addr, 1, now); wait > 0 {
		s.adminLogins.give(pair, 1)
		return wait
	}
	if wait := s.adminLoginsAll.take(user, 1, now); wait > 0 {
		s.adminLogins.give(pair, 1)
		s.adminLoginsIP.give(addr, 1)
		return wait
	}
	return 0
}

type adminLoginRequest struct {
	Username string `json:"username"`
	Password string `json:"password"`
	TOTP     string `json:"totp"`
}

type adminMe struct {
	AdminID   string `json:"admin_id"`
	Username  string `json:"username"`
	CSRFToken string `json:"csrf_token"`
	TOTP      bool   `json:"totp"`
}

func (s *Server) handleAdminLogin(w http.ResponseWriter, r *http.Request) {
	// A form on another site can post text/plain that reads as JSON: only
	// a script of this origin sends application/json (a CORS preflight
	// would be needed from elsewhere, and this server grants none).
	if ct := r.Header.Get("Content-Type"); !strings.HasPrefix(ct, "application/json") || r.Header.Get("Sec-Fetch-Site") == "cross-site" {
		writeError(w, wire.Errorf(wire.CodeForbidden, "sign in from the dashboard (a JSON request of this origin)"))
		return
	}
	var req adminLoginRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	ctx := r.Context()
	ip := clientIP(r, s.cfg.TrustProxy)
	addr := addressKey(ip)
	user, valid := adminUsername(req.Username)
	if !valid {
		writeError(w, wire.Errorf(wire.CodeUnauthorized, "wrong username, password or code"))
		return
	}
	now := time.Now()
	// Per account and address (a guesser elsewhere cannot lock the owner
	// out), per address, and per account from everywhere, much higher.
	pair := user + "|" + addr
	// Counted before the hash, so that parallel tries cannot all pass the
	// check; a success clears the pair's count.
	if wait := s.takeAdminLogin(pair, addr, user, now); wait > 0 {
		s.writeErr(w, r, rateLimited(wait, "too many failed sign-ins"))
		return
	}
	// An Argon2 hash takes 64 MiB: a few at a time, or a burst of sign-ins
	// would take the node's memory.
	select {
	case s.hashSlots <- struct{}{}:
		defer func() { <-s.hashSlots }()
	case <-ctx.Done():
		return
	case <-time.After(5 * time.Second):
		writeError(w, wire.Errorf(wire.CodeUnavailable, "too many sign-ins at once; try again"))
		return
	}
	fail := func(why string) {
		s.audit(ctx, user, "login_failed", "", why, ip)
		// One answer for every cause: which part was wrong is not told.
		writeError(w, wire.Errorf(wire.CodeUnauthorized, "wrong username, password or code"))
	}
	a, err := s.st.AdminByUsername(ctx, user)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		s.writeErr(w, r, err)
		return
	}
	if err != nil || a.Disabled {
		// Hash anyway: the time taken does not tell which usernames exist.
		_, _ = admin.CheckPassword(s.dummyHash, req.Password)
		fail("no such account")
		return
	}
	if ok, err := admin.CheckPassword(a.PasswordHash, req.Password); err != nil || !ok {
		fail("password")
		return
	}
	if len(a.TOTPSecret) > 0 {
		secret, err := s.openTOTP(ctx, &a)
		if err != nil {
			// Refused like a wrong code: a different answer would tell
			// that the password was right.
			s.log.Error("admin: the second factor cannot be checked", "admin", a.Username, "err", err)
			fail("totp")
			return
		}
		step, ok := admin.CheckTOTP(secret, strings.TrimSpace(req.TOTP), now)
		// A code is good once: one seen over a shoulder, or replayed from
		// a captured request, is refused for its remaining 90 s (per node:
		// another node has its own record).
		if !ok || !s.spendTOTPStep(a.ID, step) {
			fail("totp")
			return
		}
	}
	s.adminLogins.reset(pair)
	token, err := admin.NewToken()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	csrf, err := admin.NewToken()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	sess := store.AdminSession{ID: admin.Digest(token), AdminID: a.ID, CSRF: csrf, IP: ip,
		CreatedAt: now.UTC(), ExpiresAt: now.Add(adminSessionTTL).UTC()}
	if err := s.st.PutAdminSession(ctx, sess); err != nil {
		s.writeErr(w, r, err)
		return
	}
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: token, Path: "/", MaxAge: int(adminSessionTTL / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureRequest(r)})
	s.audit(ctx, a.Username, "login", a.ID, "", ip)
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, adminMe{AdminID: a.ID, Username: a.Username, CSRFToken: csrf, TOTP: len(a.TOTPSecret) > 0})
}

func (s *Server) handleAdminLogout(w http.ResponseWriter, r *http.Request, a adminActor) {
	if a.session != nil {
		if err := s.st.DeleteAdminSession(r.Context(), a.session.ID); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	http.SetCookie(w, &http.Cookie{Name: adminCookie, Value: "", Path: "/", MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureRequest(r)})
	s.audit(r.Context(), a.name, "logout", a.admin.ID, "", clientIP(r, s.cfg.TrustProxy))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdminMe(w http.ResponseWriter, r *http.Request, a adminActor) {
	me := adminMe{AdminID: a.admin.ID, Username: a.admin.Username, TOTP: len(a.admin.TOTPSecret) > 0}
	if a.session != nil {
		me.CSRFToken = a.session.CSRF
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, me)
}

type adminUser struct {
	UserID    string          `json:"user_id"`
	Phone     string          `json:"phone"`
	Name      string          `json:"name"`
	CreatedAt string          `json:"created_at"`
	Ban       *adminBan       `json:"ban,omitempty"`
	Devices   []wire.Device   `json:"devices,omitempty"`
	Groups    []adminGroupRef `json:"groups,omitempty"`
}

type adminBan struct {
	Reason string `json:"reason"`
	By     string `json:"by"`
	TS     int64  `json:"ts"`
}

func (s *Server) handleAdminUsers(w http.ResponseWriter, r *http.Request, a adminActor) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	var users []store.User
	var err error
	if q == "" {
		// No query: the banned, newest first, as the moderation view.
		bans, berr := s.st.Banned(r.Context(), 100)
		if berr != nil {
			s.writeErr(w, r, berr)
			return
		}
		for _, b := range bans {
			if u, uerr := s.st.User(r.Context(), b.UserID); uerr == nil {
				users = append(users, u)
			}
		}
	} else if users, err = s.st.SearchUsers(r.Context(), q, 100); err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]adminUser, 0, len(users))
	for _, u := range users {
		out = append(out, s.adminUserOf(r.Context(), u))
	}
	writeJSON(w, http.StatusOK, map[string]any{"users": out})
}

func (s *Server) adminUserOf(ctx context.Context, u store.User) adminUser {
	au := adminUser{UserID: u.ID, Phone: u.Phone, Name: u.Name, CreatedAt: rfc3339(u.CreatedAt)}
	if b, err := s.st.BanOf(ctx, u.ID); err == nil {
		au.Ban = &adminBan{Reason: b.Reason, By: b.By, TS: b.TS}
	}
	return au
}

func (s *Server) handleAdminUser(w http.ResponseWriter, r *http.Request, a adminActor) {
	u, err := s.st.User(r.Context(), r.PathValue("user_id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, wire.Errorf(wire.CodeNotFound, "no such user"))
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	au := s.adminUserOf(r.Context(), u)
	devs, err := s.st.UserDevices(r.Context(), u.ID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	for _, d := range devs {
		au.Devices = append(au.Devices, wire.Device{DeviceID: d.ID, Name: d.Name, Platform: d.Platform,
			CreatedAt: rfc3339(d.CreatedAt), LastSeen: rfc3339(d.LastSeen), Online: s.onlineAnywhere(r.Context(), d.ID)})
	}
	if au.Groups, err = s.userGroups(r.Context(), u.ID); err != nil {
		s.writeErr(w, r, err)
		return
	}
	// Looking is an action too: who read whose account is on record.
	s.audit(r.Context(), a.name, "view_user", u.ID, "", clientIP(r, s.cfg.TrustProxy))
	writeJSON(w, http.StatusOK, au)
}

func (s *Server) handleAdminBan(w http.ResponseWriter, r *http.Request, a adminActor) {
	reason, ok := s.readBanReason(w, r)
	if !ok {
		return
	}
	if err := s.adminBan(r, a, r.PathValue("user_id"), reason); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// readBanReason reads the optional {reason} of a ban; false: it answered
// the request with the error.
func (s *Server) readBanReason(w http.ResponseWriter, r *http.Request) (string, bool) {
	var req struct {
		Reason string `json:"reason"`
	}
	if r.ContentLength != 0 {
		if err := decode(w, r, &req); err != nil {
			s.writeErr(w, r, err)
			return "", false
		}
	}
	if len(req.Reason) > 1000 {
		writeError(w, wire.Errorf(wire.CodeTooLarge, "reason over 1000 bytes"))
		return "", false
	}
	return req.Reason, true
}

// adminBan bans uid and writes it to the audit log.
func (s *Server) adminBan(r *http.Request, a adminActor, uid, reason string) error {
	if err := s.auth.Ban(r.Context(), store.Ban{UserID: uid, Reason: reason, By: a.name}); err != nil {
		var we *wire.Error
		if !errors.As(err, &we) {
			// The ban may be stored with some devices not yet revoked:
			// log the attempt; a retry finishes it.
			s.audit(r.Context(), a.name, "ban_incomplete", uid, reason, clientIP(r, s.cfg.TrustProxy))
		}
		return err
	}
	s.audit(r.Context(), a.name, "ban", uid, reason, clientIP(r, s.cfg.TrustProxy))
	return nil
}

func (s *Server) handleAdminUnban(w http.ResponseWriter, r *http.Request, a adminActor) {
	uid := r.PathValue("user_id")
	if err := s.auth.Unban(r.Context(), uid); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "unban", uid, "", clientIP(r, s.cfg.TrustProxy))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdminRevoke(w http.ResponseWriter, r *http.Request, a adminActor) {
	uid, did := r.PathValue("user_id"), r.PathValue("device_id")
	if err := s.auth.Revoke(r.Context(), uid, did); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "revoke_device", uid, did, clientIP(r, s.cfg.TrustProxy))
	w.WriteHeader(http.StatusNoContent)
}

type adminAuditEntry struct {
	ID     string `json:"id"`
	TS     int64  `json:"ts"`
	Actor  string `json:"actor"`
	Action string `json:"action"`
	Target string `json:"target,omitempty"`
	Detail string `json:"detail,omitempty"`
	IP     string `json:"ip,omitempty"`
}

func (s *Server) handleAdminAudit(w http.ResponseWriter, r *http.Request, a adminActor) {
	limit := 100
	if v := r.URL.Query().Get("limit"); v != "" {
		n, err := strconv.Atoi(v)
		if err != nil || n < 1 || n > 500 {
			writeError(w, wire.Errorf(wire.CodeBadRequest, "limit is 1 to 500"))
			return
		}
		limit = n
	}
	es, err := s.st.Audit(r.Context(), r.URL.Query().Get("before"), limit)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]adminAuditEntry, 0, len(es))
	for _, e := range es {
		out = append(out, adminAuditEntry(e))
	}
	next := ""
	if len(es) == limit {
		next = es[len(es)-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"entries": out, "next_before": next})
}

// handleAdminNewKey makes an API key for the caller; its secret is shown
// this once.
func (s *Server) handleAdminNewKey(w http.ResponseWriter, r *http.Request, a adminActor) {
	if a.session == nil {
		// A leaked key must not be able to make more of itself.
		writeError(w, wire.Errorf(wire.CodeForbidden, "API keys are made from a dashboard session"))
		return
	}
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if req.Name == "" || len(req.Name) > 100 {
		writeError(w, wire.Errorf(wire.CodeBadRequest, "name is 1 to 100 bytes"))
		return
	}
	secret, err := admin.NewToken()
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	k := store.APIKey{ID: store.NewID("k"), AdminID: a.admin.ID, Name: req.Name, Hash: []byte(admin.Digest(secret)), CreatedAt: time.Now().UTC()}
	if err := s.st.PutAPIKey(r.Context(), k); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "create_api_key", k.ID, req.Name, clientIP(r, s.cfg.TrustProxy))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]string{"key_id": k.ID, "key": adminKeyPrefix + k.ID + "." + secret})
}

// handleAdminKeys lists the caller's API keys (never their secrets).
func (s *Server) handleAdminKeys(w http.ResponseWriter, r *http.Request, a adminActor) {
	ks, err := s.st.APIKeys(r.Context(), a.admin.ID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]map[string]string, 0, len(ks))
	for _, k := range ks {
		out = append(out, map[string]string{"key_id": k.ID, "name": k.Name, "created_at": rfc3339(k.CreatedAt)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"keys": out})
}

// handleAdminDeleteKey revokes a key. Any admin may revoke any key: after
// a leak, whoever notices first acts.
func (s *Server) handleAdminDeleteKey(w http.ResponseWriter, r *http.Request, a adminActor) {
	id := r.PathValue("key_id")
	if _, err := s.st.APIKey(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		writeError(w, wire.Errorf(wire.CodeNotFound, "no such key"))
		return
	} else if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.st.DeleteAPIKey(r.Context(), id); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "delete_api_key", id, "", clientIP(r, s.cfg.TrustProxy))
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdminAdmins(w http.ResponseWriter, r *http.Request, a adminActor) {
	as, err := s.st.Admins(r.Context())
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]map[string]any, 0, len(as))
	for _, ad := range as {
		out = append(out, map[string]any{"admin_id": ad.ID, "username": ad.Username, "disabled": ad.Disabled,
			"totp": len(ad.TOTPSecret) > 0, "created_at": rfc3339(ad.CreatedAt)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"admins": out})
}

// handleAdminDisable disables (or enables) another admin's account; a
// disabled account's sessions end and its keys stop working at once.
// Only from a dashboard session, and never one's own account (the last
// admin must not lock everyone out).
func (s *Server) handleAdminDisable(disable bool) adminHandler {
	return func(w http.ResponseWriter, r *http.Request, a adminActor) {
		if a.session == nil {
			writeError(w, wire.Errorf(wire.CodeForbidden, "accounts are disabled from a dashboard session"))
			return
		}
		id := r.PathValue("admin_id")
		if id == a.admin.ID {
			writeError(w, wire.Errorf(wire.CodeBadRequest, "you cannot disable your own account"))
			return
		}
		target, err := s.st.Admin(r.Context(), id)
		if errors.Is(err, store.ErrNotFound) {
			writeError(w, wire.Errorf(wire.CodeNotFound, "no such admin"))
			return
		}
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		target.Disabled = disable
		if err := s.st.UpdateAdmin(r.Context(), target); err != nil {
			s.writeErr(w, r, err)
			return
		}
		action := "enable_admin"
		if disable {
			action = "disable_admin"
			if err := s.st.DeleteAdminSessions(r.Context(), id); err != nil {
				s.writeErr(w, r, err)
				return
			}
		}
		s.audit(r.Context(), a.name, action, id, target.Username, clientIP(r, s.cfg.TrustProxy))
		w.WriteHeader(http.StatusNoContent)
	}
}

// totpSealName binds a sealed second factor to its account: copied to
// another account's record, it does not open.
func totpSealName(adminID string) string { return "admin-totp:" + adminID }

// sealTOTP seals a TOTP secret under the node's master key, if it has
// one: a copy of the store then holds no second factors.
func (s *Server) sealTOTP(adminID string, secret []byte) ([]byte, error) {
	return s.sealSecret(totpSealName(adminID), secret)
}

// openTOTP returns a's TOTP secret in the clear. One stored before the
// node had a master key is sealed now, on its first use since.
func (s *Server) openTOTP(ctx context.Context, a *store.Admin) ([]byte, error) {
	if seal.IsSealed(a.TOTPSecret) {
		if s.master == nil {
			return nil, fmt.Errorf("server: %s's second factor is sealed, and this node has no master key (--master-key)", a.Username)
		}
		secret, err := seal.Open(s.master, totpSealName(a.ID), a.TOTPSecret)
		if err != nil {
			return nil, fmt.Errorf("server: open %s's second factor (another master key?): %w", a.Username, err)
		}
		return secret, nil
	}
	secret := a.TOTPSecret
	if s.master != nil {
		s.sealStoredTOTP(ctx, a.ID, secret)
	}
	return secret, nil
}

// sealStoredTOTP seals an account's clear second factor in its record.
// The record is read again just before: a sign-in's copy is seconds old
// (the password hash takes time), and writing it back whole could undo
// what happened meanwhile (the account disabled, the password changed).
// The store has no compare-and-set of accounts, so a change within the
// round trip between this read and write could still be lost; that
// window is a store round trip, and the next sign-in seals it anyway.
func (s *Server) sealStoredTOTP(ctx context.Context, adminID string, clear []byte) {
	fresh, err := s.st.Admin(ctx, adminID)
	if err != nil || !bytes.Equal(fresh.TOTPSecret, clear) {
		return
	}
	if fresh.TOTPSecret, err = s.sealTOTP(adminID, clear); err != nil {
		return
	}
	if err := s.st.UpdateAdmin(ctx, fresh); err != nil {
		s.log.Warn("admin: sealing a second factor failed; it stays as it was", "admin", fresh.Username, "err", err)
	}
}
