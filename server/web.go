package server

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/wire"
)

// The web client's sessions. A browser gets its refresh token as an
// HttpOnly cookie, not in the answer: a script in the page (an injected
// one too) never holds more than a 15-minute access token. The cookie is
// SameSite=Strict and scoped to these endpoints, which also want the
// X-Tern-Web header: another site can neither send the cookie nor set the
// header without a CORS preflight, which this server never grants.
const (
	webCookie     = "tern_refresh"
	webCookiePath = "/v1/auth/web"
	webHeader     = "X-Tern-Web"
)

// webSession is wire.Session without the refresh token.
type webSession struct {
	UserID      string `json:"user_id"`
	DeviceID    string `json:"device_id"`
	AccessToken string `json:"access_token"`
	ExpiresIn   int    `json:"expires_in"`
}

// webOnly refuses requests that did not come from the web client's script.
func webOnly(h http.HandlerFunc) http.HandlerFunc {
	return func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get(webHeader) != "1" {
			writeError(w, wire.Errorf(wire.CodeForbidden, "the web session endpoints need the %s: 1 header", webHeader))
			return
		}
		h(w, r)
	}
}

func (s *Server) setWebSession(w http.ResponseWriter, r *http.Request, sess wire.Session) {
	http.SetCookie(w, &http.Cookie{
		Name: webCookie, Value: sess.RefreshToken, Path: webCookiePath,
		MaxAge:   int(s.auth.RefreshTTL() / time.Second),
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureRequest(r),
	})
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, webSession{UserID: sess.UserID, DeviceID: sess.DeviceID,
		AccessToken: sess.AccessToken, ExpiresIn: sess.ExpiresIn})
}

func (s *Server) clearWebSession(w http.ResponseWriter, r *http.Request) {
	http.SetCookie(w, &http.Cookie{Name: webCookie, Value: "", Path: webCookiePath, MaxAge: -1,
		HttpOnly: true, SameSite: http.SameSiteStrictMode, Secure: s.secureRequest(r)})
}

// secureRequest is whether the browser reached us over https (directly, or
// through a proxy we trust that says so): a Secure cookie set over plain
// http is dropped by browsers, except on localhost.
func (s *Server) secureRequest(r *http.Request) bool {
	if r.TLS != nil {
		return true
	}
	return s.cfg.TrustProxy && r.Header.Get("X-Forwarded-Proto") == "https"
}

func (s *Server) handleWebRefresh(w http.ResponseWriter, r *http.Request) {
	c, err := r.Cookie(webCookie)
	if err != nil || c.Value == "" {
		writeError(w, wire.Errorf(wire.CodeUnauthorized, "no web session: sign in"))
		return
	}
	sess, err := s.auth.Refresh(r.Context(), c.Value)
	if err != nil {
		if e := (*wire.Error)(nil); errors.As(err, &e) && e.Code == wire.CodeUnauthorized {
			s.clearWebSession(w, r)
		}
		s.writeErr(w, r, err)
		return
	}
	s.setWebSession(w, r, sess)
}

// handleWebLogout revokes the device and forgets the cookie. The device is
// the one of the bearer token; without one (it expired in a sleeping tab)
// the cookie's refresh token says which, through a refresh.
func (s *Server) handleWebLogout(w http.ResponseWriter, r *http.Request) {
	var claims auth.Claims
	if hdr := r.Header.Get("Authorization"); len(hdr) > 7 && strings.EqualFold(hdr[:7], "bearer ") {
		// A bad token leaves claims empty: the cookie may still name it.
		claims, _ = s.auth.Authenticate(r.Context(), strings.TrimSpace(hdr[7:]))
	}
	if claims.DeviceID == "" {
		if c, cerr := r.Cookie(webCookie); cerr == nil && c.Value != "" {
			sess, err := s.auth.Refresh(r.Context(), c.Value)
			var we *wire.Error
			switch {
			case err == nil:
				claims = auth.Claims{UserID: sess.UserID, DeviceID: sess.DeviceID}
			case errors.As(err, &we) && we.Code != wire.CodeUnavailable && we.Code != wire.CodeInternal:
				// A dead or banned session: nothing left to revoke.
			default:
				// The store did not answer: keep the cookie, so that the
				// browser can try again rather than leave a live device.
				s.writeErr(w, r, err)
				return
			}
		}
	}
	s.clearWebSession(w, r)
	if claims.DeviceID == "" {
		// Nothing to revoke that we can name: the browser forgets anyway.
		w.WriteHeader(http.StatusNoContent)
		return
	}
	if err := s.auth.Revoke(r.Context(), claims.UserID, claims.DeviceID); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}
