package server

import (
	"bytes"
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

const maxBodyBytes = 1 << 20

// Profile limits, in characters.
const (
	maxNameLen   = 64
	maxAboutLen  = 140
	maxLookup    = 1000
	maxPushToken = 4096
)

// MetricsHandler serves the node's Prometheus metrics, for a listener of
// the caller's (the API port serves them too unless Config.HideMetrics).
func (s *Server) MetricsHandler() http.Handler {
	return promhttp.HandlerFor(s.reg, promhttp.HandlerOpts{})
}

func (s *Server) routes() http.Handler {
	mux := http.NewServeMux()
	handle := func(pattern string, h http.HandlerFunc) {
		route := pattern[strings.IndexByte(pattern, ' ')+1:]
		mux.Handle(pattern, s.instrument(route, h))
	}
	handle("POST /v1/auth/code", s.handleCode)
	handle("POST /v1/auth/verify", s.handleVerify(writeSession))
	handle("POST /v1/auth/refresh", s.handleRefresh)
	handle("POST /v1/auth/logout", s.authed(s.handleLogout))
	handle("POST /v1/auth/web/verify", webOnly(s.handleVerify(s.setWebSession)))
	handle("POST /v1/auth/web/refresh", webOnly(s.handleWebRefresh))
	handle("POST /v1/auth/web/logout", webOnly(s.handleWebLogout))
	handle("GET /v1/me", s.authed(s.handleMe))
	handle("PATCH /v1/me", s.authed(s.handlePatchMe))
	handle("PUT /v1/me/email", s.authed(s.handleEmail))
	handle("DELETE /v1/me/email", s.authed(s.handleDeleteEmail))
	handle("GET /v1/users/{id}", s.authed(s.handleUser))
	handle("GET /v1/me/privacy", s.authed(s.handlePrivacy))
	handle("PATCH /v1/me/privacy", s.authed(s.handlePatchPrivacy))
	handle("PUT /v1/contacts", s.authed(s.handleContacts))
	handle("GET /v1/blocks", s.authed(s.handleBlocks))
	handle("PUT /v1/blocks/{user_id}", s.authed(s.handleBlock(true)))
	handle("DELETE /v1/blocks/{user_id}", s.authed(s.handleBlock(false)))
	handle("POST /v1/reports", s.authed(s.handleReport))
	handle("POST /v1/media", s.authed(s.handleUpload))
	handle("GET /v1/media/{media_id}", s.authed(s.handleMedia))
	if h, ok := s.media.(interface {
		Handler() http.Handler
		Path() string
	}); ok {
		mux.Handle(h.Path(), s.mediaFiles(h.Handler()))
	}
	handle("POST /v1/contacts/lookup", s.authed(s.handleLookup))
	handle("GET /v1/devices", s.authed(s.handleDevices))
	handle("DELETE /v1/devices/{id}", s.authed(s.handleDeleteDevice))
	handle("PUT /v1/devices/current/push", s.authed(s.handlePush))
	handle("DELETE /v1/devices/current/push", s.authed(s.handleDeletePush))
	handle("GET /v1/push/vapid", s.handleVAPID)
	handle("GET /v1/chats", s.authed(s.handleChats))
	handle("GET /v1/chats/{chat_id}", s.authed(s.handleChatSettings))
	handle("PATCH /v1/chats/{chat_id}", s.authed(s.handlePatchChat))
	handle("GET /v1/chats/{chat_id}/messages", s.authed(s.handleHistory))
	handle("GET /v1/chats/{chat_id}/messages/{msg_id}/receipts", s.authed(s.handleMessageReceipts))
	handle("DELETE /v1/chats/{chat_id}/messages/{msg_id}", s.authed(s.handleDeleteForMe))
	handle("PUT /v1/chats/{chat_id}/messages/{msg_id}/star", s.authed(s.handleStar(true)))
	handle("DELETE /v1/chats/{chat_id}/messages/{msg_id}/star", s.authed(s.handleStar(false)))
	handle("GET /v1/starred", s.authed(s.handleStarred))
	handle("POST /v1/groups", s.authed(s.handleCreateGroup))
	handle("GET /v1/groups/{chat_id}", s.authed(s.handleGroup))
	handle("PATCH /v1/groups/{chat_id}", s.authed(s.handlePatchGroup))
	handle("POST /v1/groups/{chat_id}/members", s.authed(s.handleAddMembers))
	handle("DELETE /v1/groups/{chat_id}/members/{user_id}", s.authed(s.handleRemoveMember))
	handle("PUT /v1/groups/{chat_id}/admins/{user_id}", s.authed(s.handleAdmin(true)))
	handle("DELETE /v1/groups/{chat_id}/admins/{user_id}", s.authed(s.handleAdmin(false)))
	s.adminRoutes(handle)
	handle("GET /healthz", s.handleHealth)
	handle("GET /readyz", s.handleReady)
	if !s.cfg.HideMetrics {
		mux.Handle("GET /metrics", s.MetricsHandler())
	}
	// The socket is long-lived: it is not timed like a request.
	mux.HandleFunc("GET /v1/ws", s.serveWS)
	// The web client: its page and its files.
	mux.Handle("GET /{$}", s.web)
	mux.Handle("GET /assets/", s.web)
	mux.Handle("GET /admin", s.web)
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if s.cfg.AdminHost != "" && s.adminHostRoute(w, r) {
			return
		}
		if h, ok := s.businessRoute(r); ok {
			h.ServeHTTP(w, r)
			return
		}
		if h, pattern := mux.Handler(r); pattern == "" {
			// No route. The mux's own answer is plain text: a 404, or a
			// 405 with Allow for a path that takes other methods. Say the
			// same in the API's JSON error shape.
			rec := &statusRecorder{header: http.Header{}}
			h.ServeHTTP(rec, r)
			if rec.code == http.StatusMethodNotAllowed {
				w.Header().Set("Allow", rec.header.Get("Allow"))
				writeError(w, wire.Errorf(wire.CodeMethodNotAllowed, "%s is not allowed on %s; allowed: %s",
					r.Method, r.URL.Path, rec.header.Get("Allow")))
				return
			}
			writeError(w, wire.Errorf(wire.CodeNotFound, "no such endpoint: %s %s", r.Method, r.URL.Path))
			return
		}
		mux.ServeHTTP(w, r)
	})
}

// statusRecorder keeps the status and headers of a response and drops its
// body.
type statusRecorder struct {
	header http.Header
	code   int
}

func (r *statusRecorder) Header() http.Header         { return r.header }
func (r *statusRecorder) Write(b []byte) (int, error) { return len(b), nil }
func (r *statusRecorder) WriteHeader(code int)        { r.code = code }

type statusWriter struct {
	http.ResponseWriter
	code int
}

func (w *statusWriter) WriteHeader(code int) {
	w.code = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (an upload
// extends its deadlines through it).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func (s *Server) instrument(route string, h http.HandlerFunc) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		t0 := time.Now()
		sw := &statusWriter{ResponseWriter: w, code: 200}
		h(sw, r)
		s.metrics.httpSeconds.WithLabelValues(route).Observe(time.Since(t0).Seconds())
		s.metrics.httpRequests.WithLabelValues(route, strconv.Itoa(sw.code)).Inc()
	})
}

type authedHandler func(w http.ResponseWriter, r *http.Request, c auth.Claims)

func (s *Server) authed(h authedHandler) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		hdr := r.Header.Get("Authorization")
		if len(hdr) < 8 || !strings.EqualFold(hdr[:7], "bearer ") {
			writeError(w, wire.Errorf(wire.CodeUnauthorized, "missing bearer token"))
			return
		}
		c, err := s.auth.Authenticate(r.Context(), strings.TrimSpace(hdr[7:]))
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		h(w, r, c)
	}
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

func writeError(w http.ResponseWriter, e *wire.Error) {
	if e.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(e.RetryAfter))
	}
	writeJSON(w, wire.HTTPStatus(e.Code), wire.ErrorBody{Error: e})
}

// writeErr answers with err's wire code; anything that is not a protocol
// error is logged and answered as internal, without its details.
func (s *Server) writeErr(w http.ResponseWriter, r *http.Request, err error) {
	we := asWireError(err)
	if we.Code == wire.CodeInternal {
		s.log.Error("request failed", "method", r.Method, "path", r.URL.Path, "err", err)
	}
	writeError(w, we)
}

// decode reads a JSON body into v, refusing bodies over maxBodyBytes,
// invalid UTF-8, unpaired surrogates and keys in the wrong case (see
// wire.CheckJSON) before decoding.
func decode(w http.ResponseWriter, r *http.Request, v any) error {
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, maxBodyBytes))
	if err != nil {
		var mbe *http.MaxBytesError
		if errors.As(err, &mbe) {
			return wire.Errorf(wire.CodeTooLarge, "body over %d bytes", maxBodyBytes)
		}
		return wire.Errorf(wire.CodeBadRequest, "reading the body: %v", err)
	}
	if len(bytes.TrimSpace(data)) == 0 {
		return wire.Errorf(wire.CodeBadRequest, "body is empty; expected a JSON object")
	}
	if e := wire.DecodeJSON(data, v); e != nil {
		return e
	}
	return nil
}

func clientIP(r *http.Request, trustProxy bool) string {
	if trustProxy {
		// The rightmost entry is the one our load balancer added; entries
		// to its left came from the client and can be forged (proxies that
		// append, like AWS ALB, keep whatever the client sent). A proxy
		// may append a header line rather than a value: the last line.
		if vs := r.Header.Values("X-Forwarded-For"); len(vs) > 0 {
			xff := vs[len(vs)-1]
			if i := strings.LastIndexByte(xff, ','); i >= 0 {
				xff = xff[i+1:]
			}
			if ip := strings.TrimSpace(xff); ip != "" {
				return ip
			}
		}
	}
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		return r.RemoteAddr
	}
	return host
}

func (s *Server) handleCode(w http.ResponseWriter, r *http.Request) {
	var req wire.CodeRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	res, err := s.auth.RequestCode(r.Context(), req.Phone, clientIP(r, s.cfg.TrustProxy))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusAccepted, res)
}

// handleVerify signs in with a code; answer hands out the new session (as
// JSON to apps, as a cookie and an access token to the web client).
func (s *Server) handleVerify(answer func(http.ResponseWriter, *http.Request, wire.Session)) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		var req wire.VerifyRequest
		if err := decode(w, r, &req); err != nil {
			s.writeErr(w, r, err)
			return
		}
		sess, err := s.auth.Verify(r.Context(), req, clientIP(r, s.cfg.TrustProxy))
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		answer(w, r, sess)
	}
}

func writeSession(w http.ResponseWriter, _ *http.Request, sess wire.Session) {
	writeJSON(w, http.StatusOK, sess)
}

func (s *Server) handleRefresh(w http.ResponseWriter, r *http.Request) {
	var req wire.RefreshRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	res, err := s.auth.Refresh(r.Context(), req.RefreshToken)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, res)
}

func (s *Server) handleLogout(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	if err := s.auth.Revoke(r.Context(), c.UserID, c.DeviceID); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) me(ctx context.Context, userID string) (wire.Me, error) {
	u, err := s.st.User(ctx, userID)
	if err != nil {
		return wire.Me{}, err
	}
	return wire.Me{UserID: u.ID, Phone: u.Phone, Name: u.Name, About: u.About,
		ReadReceipts: !u.HideReadReceipts, Email: u.Email, CreatedAt: rfc3339(u.CreatedAt)}, nil
}

// handleEmail adds an email address in two steps: without a code, one is
// mailed to the address (202, as POST /v1/auth/code answers); with it, the
// address becomes the user's (200, the profile).
func (s *Server) handleEmail(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var req wire.EmailRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	ip := clientIP(r, s.cfg.TrustProxy)
	if req.Code == "" {
		// auth bounds the codes per address and per client IP; this bounds
		// them per user, over all the addresses it names.
		if wait := s.emailCodesByUser.take(c.UserID, 1, time.Now()); wait > 0 {
			s.writeErr(w, r, rateLimited(wait, "verification emails this hour; wait before asking for another"))
			return
		}
		resp, err := s.auth.RequestEmailCode(r.Context(), c.UserID, req.Email, ip)
		if err != nil {
			// Nothing was mailed.
			s.emailCodesByUser.give(c.UserID, 1)
			s.writeErr(w, r, err)
			return
		}
		writeJSON(w, http.StatusAccepted, resp)
		return
	}
	if _, err := s.auth.VerifyEmail(r.Context(), c.UserID, req.Email, req.Code, ip); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.handleMe(w, r, c)
}

// handleDeleteEmail removes the user's email address: no more notices.
func (s *Server) handleDeleteEmail(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	none := ""
	if _, err := s.st.UpdateProfile(r.Context(), c.UserID, store.ProfilePatch{Email: &none}); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleMe(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	me, err := s.me(r.Context(), c.UserID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, me)
}

func (s *Server) handlePatchMe(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var p wire.MePatch
	if err := decode(w, r, &p); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if p.Name != nil {
		*p.Name = strings.TrimSpace(*p.Name)
		if e := wire.CheckName("name", *p.Name, maxNameLen); e != nil {
			s.writeErr(w, r, e)
			return
		}
	}
	if p.About != nil {
		*p.About = strings.TrimSpace(*p.About)
		if e := wire.CheckName("about", *p.About, maxAboutLen); e != nil {
			s.writeErr(w, r, e)
			return
		}
	}
	patch := store.ProfilePatch{Name: p.Name, About: p.About}
	if p.ReadReceipts != nil {
		patch.HideReadReceipts = new(!*p.ReadReceipts)
	}
	if _, err := s.st.UpdateProfile(r.Context(), c.UserID, patch); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.handleMe(w, r, c)
}

func (s *Server) handleUser(w http.ResponseWriter, r *http.Request, _ auth.Claims) {
	u, err := s.st.User(r.Context(), r.PathValue("id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.User{UserID: u.ID, Name: u.Name, About: u.About})
}

func (s *Server) handleLookup(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var req wire.LookupRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if len(req.Phones) > maxLookup {
		s.writeErr(w, r, wire.Errorf(wire.CodeTooLarge, "at most %d phones per lookup", maxLookup))
		return
	}
	// Clients send numbers as the address book has them; answer in the
	// form they were asked, so the client can match them.
	asked := make(map[string]string, len(req.Phones))
	norm := make([]string, 0, len(req.Phones))
	for _, p := range req.Phones {
		n, err := auth.NormalizePhone(p)
		if err != nil {
			continue
		}
		if _, dup := asked[n]; !dup {
			asked[n] = p
			norm = append(norm, n)
		}
	}
	// Both quotas or neither: a refused lookup spends nothing.
	now := time.Now()
	if wait := s.lookupsByUser.take(c.UserID, len(norm), now); wait > 0 {
		s.writeErr(w, r, rateLimited(wait, "contact lookups today"))
		return
	}
	if wait := s.lookupsByIP.take(addressKey(clientIP(r, s.cfg.TrustProxy)), len(norm), now); wait > 0 {
		s.lookupsByUser.give(c.UserID, len(norm))
		s.writeErr(w, r, rateLimited(wait, "contact lookups from this address today"))
		return
	}
	users, err := s.st.UsersByPhones(r.Context(), norm)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := wire.LookupResponse{Contacts: make([]wire.Contact, 0, len(users))}
	for _, u := range users {
		out.Contacts = append(out.Contacts, wire.Contact{Phone: asked[u.Phone], UserID: u.ID, Name: u.Name})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDevices(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	ds, err := s.st.UserDevices(r.Context(), c.UserID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := wire.DevicesResponse{Devices: make([]wire.Device, 0, len(ds))}
	for _, d := range ds {
		out.Devices = append(out.Devices, wire.Device{DeviceID: d.ID, Name: d.Name, Platform: d.Platform,
			CreatedAt: rfc3339(d.CreatedAt), LastSeen: rfc3339(d.LastSeen),
			Current: d.ID == c.DeviceID, Online: s.onlineAnywhere(r.Context(), d.ID)})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleDeleteDevice(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	if err := s.auth.Revoke(r.Context(), c.UserID, r.PathValue("id")); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handlePush(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var req wire.PushRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	token := req.Token
	switch req.Provider {
	case push.ProviderFCM, "apns", "log":
		if req.Subscription != nil {
			s.writeErr(w, r, wire.Errorf(wire.CodeBadRequest, "provider %s takes a token, not a subscription", req.Provider))
			return
		}
	case push.ProviderWebPush:
		if s.vapid == "" {
			s.writeErr(w, r, wire.Errorf(wire.CodeUnsupported, "this server does not send Web Push"))
			return
		}
		if req.Subscription == nil || req.Token != "" {
			s.writeErr(w, r, wire.Errorf(wire.CodeBadRequest, "provider webpush takes a subscription {endpoint, keys: {p256dh, auth}}, not a token"))
			return
		}
		sub := push.Subscription{Endpoint: req.Subscription.Endpoint,
			Keys: push.SubscriptionKeys{P256dh: req.Subscription.Keys.P256DH, Auth: req.Subscription.Keys.Auth}}
		if err := sub.Validate(); err != nil {
			s.writeErr(w, r, wire.Errorf(wire.CodeBadRequest, "%s", strings.TrimPrefix(err.Error(), "push: ")))
			return
		}
		if err := s.checkEndpoint(r.Context(), sub.Endpoint); err != nil {
			s.writeErr(w, r, err)
			return
		}
		token = sub.Token()
	default:
		s.writeErr(w, r, wire.Errorf(wire.CodeBadRequest, "provider must be fcm, webpush, apns or log"))
		return
	}
	if token == "" || len(token) > maxPushToken {
		s.writeErr(w, r, wire.Errorf(wire.CodeBadRequest, "token must be 1 to %d bytes", maxPushToken))
		return
	}
	if err := s.st.SetPush(r.Context(), c.DeviceID, req.Provider, token); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleDeletePush forgets the current device's push address: it is not
// woken any more.
func (s *Server) handleDeletePush(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	if err := s.st.SetPush(r.Context(), c.DeviceID, "", ""); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

// handleVAPID answers the key browsers subscribe to Web Push with; it is
// public (a page asks for it before the user signs in, to subscribe right
// after).
func (s *Server) handleVAPID(w http.ResponseWriter, r *http.Request) {
	if s.vapid == "" {
		s.writeErr(w, r, wire.Errorf(wire.CodeUnsupported, "this server does not send Web Push"))
		return
	}
	writeJSON(w, http.StatusOK, wire.VAPIDResponse{PublicKey: s.vapid})
}

func (s *Server) handleChats(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	sums, err := s.chat.Chats(r.Context(), claimsActor(c))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := wire.ChatsResponse{Chats: make([]wire.Chat, 0, len(sums))}
	for _, cs := range sums {
		wc := wire.Chat{ChatID: cs.Chat.ID, Kind: cs.Chat.Kind, Title: cs.Chat.Title,
			Members: cs.Chat.Members, UnreadCount: cs.Unread, ReadSeq: cs.ReadSeq, LastSeq: cs.Chat.LastSeq}
		if cs.Last != nil {
			m := wireMessage(cs.Last)
			wc.LastMessage = &m
		}
		if wc.Kind == wire.KindDirect && wc.Title == "" {
			wc.Title = s.directTitle(r.Context(), c.UserID, cs.Chat.Members)
		}
		out.Chats = append(out.Chats, wc)
	}
	writeJSON(w, http.StatusOK, out)
}

// directTitle names a direct chat after the other member, as apps show it.
func (s *Server) directTitle(ctx context.Context, self string, members []string) string {
	peer := self
	for _, m := range members {
		if m != self {
			peer = m
		}
	}
	u, err := s.st.User(ctx, peer)
	if err != nil {
		return ""
	}
	return u.Name
}

func (s *Server) handleHistory(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	before, err := queryInt(r, "before", 0)
	limit, err2 := queryInt(r, "limit", 50)
	if err = cmp.Or(err, err2); err != nil {
		// Others' chats are refused first, whatever else is wrong.
		if merr := s.chat.CheckMember(r.Context(), claimsActor(c), r.PathValue("chat_id")); merr != nil {
			err = merr
		}
		s.writeErr(w, r, err)
		return
	}
	if limit <= 0 || limit > int64(s.cfg.HistoryLimit) {
		limit = int64(s.cfg.HistoryLimit)
	}
	msgs, next, err := s.chat.History(r.Context(), claimsActor(c), r.PathValue("chat_id"), before, int(limit))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := wire.HistoryResponse{Messages: make([]wire.Message, 0, len(msgs)), NextBefore: next}
	for i := range msgs {
		out.Messages = append(out.Messages, wireMessage(&msgs[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func queryInt(r *http.Request, name string, def int64) (int64, error) {
	v := r.URL.Query().Get(name)
	if v == "" {
		return def, nil
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil || n < 0 {
		return 0, wire.Errorf(wire.CodeBadRequest, "%s must be a non-negative integer", name)
	}
	return n, nil
}

func (s *Server) handleHealth(w http.ResponseWriter, _ *http.Request) {
	writeJSON(w, http.StatusOK, map[string]string{"status": "ok", "node": s.cfg.NodeID})
}

func (s *Server) handleReady(w http.ResponseWriter, r *http.Request) {
	if s.draining.Load() {
		writeError(w, wire.Errorf(wire.CodeUnavailable, "draining"))
		return
	}
	ctx, cancel := context.WithTimeout(r.Context(), 2*time.Second)
	defer cancel()
	if err := s.st.Ping(ctx); err != nil {
		writeError(w, wire.Errorf(wire.CodeUnavailable, "store unavailable"))
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"status": "ready", "node": s.cfg.NodeID})
}

func rfc3339(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339)
}

// originAllowed reports whether a WebSocket upgrade's Origin may connect:
// no Origin (not a browser), the server's own origin, or one configured.
// Without it any web page a signed-in user visits could open a socket with
// a token it got hold of, and read their messages.
func (s *Server) originAllowed(r *http.Request) bool {
	origin := r.Header.Get("Origin")
	if origin == "" {
		return true
	}
	for _, o := range s.cfg.AllowedOrigins {
		if o == "*" || strings.EqualFold(o, origin) {
			return true
		}
	}
	u, err := url.Parse(origin)
	return err == nil && u.Host != "" && strings.EqualFold(u.Host, r.Host)
}

// addressKey is what a per-address quota counts by: an IPv4 address, or
// the /64 of an IPv6 one (a single host is usually given a whole /64).
func addressKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil || a.Is4() || a.Is4In6() {
		return ip
	}
	p, err := a.Prefix(64)
	if err != nil {
		return ip
	}
	return p.String()
}

// adminHostRoute keeps the dashboard on its own origin when AdminHost is
// set: /admin and /v1/admin answer only for that host, and that host's /
// leads to /admin instead of the chat client. A flaw in the chat client
// then cannot reach the admin API: another origin's scripts can neither
// read its answers nor send the CSRF header without a CORS grant, which
// it never gives. It reports whether it answered the request.
func (s *Server) adminHostRoute(w http.ResponseWriter, r *http.Request) bool {
	host := r.Host
	if h, _, err := net.SplitHostPort(host); err == nil {
		host = h
	}
	onAdminHost := strings.EqualFold(host, s.cfg.AdminHost)
	adminPath := r.URL.Path == "/admin" || r.URL.Path == "/v1/admin" || strings.HasPrefix(r.URL.Path, "/v1/admin/")
	switch {
	case adminPath && !onAdminHost:
		writeError(w, wire.Errorf(wire.CodeNotFound, "the admin dashboard and API are served on %s", s.cfg.AdminHost))
		return true
	case onAdminHost && r.URL.Path == "/":
		http.Redirect(w, r, "/admin", http.StatusFound)
		return true
	}
	return false
}
