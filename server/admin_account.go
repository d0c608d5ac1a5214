package server

import (
	"context"
	"errors"
	"fmt"
	"net/http"

	"github.com/tern-im/tern/admin"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// An admin's own account: a new password, the second factor turned off;
// and the operator's way back in (ResetAdmin, through the node's admin
// listener) when the password or the authenticator is lost.

// checkOwnPassword answers the request and returns false unless the
// caller is a dashboard session that gave its account's password: API
// keys never change the account they act for, and a session left open
// must not be enough either.
func (s *Server) checkOwnPassword(w http.ResponseWriter, r *http.Request, a adminActor, password, what string) bool {
	if a.session == nil {
		writeError(w, wire.Errorf(wire.CodeForbidden, "sign in to the dashboard to %s", what))
		return false
	}
	if ok, err := admin.CheckPassword(a.admin.PasswordHash, password); err != nil || !ok {
		s.audit(r.Context(), a.name, what+"_refused", a.admin.ID, "password", clientIP(r, s.cfg.TrustProxy))
		writeError(w, wire.Errorf(wire.CodeForbidden, "the password is wrong"))
		return false
	}
	return true
}

// handleAdminPassword changes the caller's password; every other session
// of the account ends.
func (s *Server) handleAdminPassword(w http.ResponseWriter, r *http.Request, a adminActor) {
	var req struct {
		Password    string `json:"password"`
		NewPassword string `json:"new_password"`
	}
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !s.checkOwnPassword(w, r, a, req.Password, "change_password") {
		return
	}
	hash, err := admin.HashPassword(req.NewPassword)
	if errors.Is(err, admin.ErrWeakPassword) {
		writeError(w, wire.Errorf(wire.CodeBadRequest, "%v", err))
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	a.admin.PasswordHash = hash
	if err := s.st.UpdateAdmin(r.Context(), a.admin); err != nil {
		s.writeErr(w, r, err)
		return
	}
	// The others end (one may be whoever learnt the old password); this
	// one goes on.
	if err := s.st.DeleteAdminSessions(r.Context(), a.admin.ID); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.st.PutAdminSession(r.Context(), *a.session); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "password_changed", a.admin.ID, "", clientIP(r, s.cfg.TrustProxy))
	w.WriteHeader(http.StatusNoContent)
}

// handleAdminTOTPOff turns the caller's second factor off, with the
// password.
func (s *Server) handleAdminTOTPOff(w http.ResponseWriter, r *http.Request, a adminActor) {
	var req struct {
		Password string `json:"password"`
	}
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if !s.checkOwnPassword(w, r, a, req.Password, "totp_off") {
		return
	}
	a.admin.TOTPSecret = nil
	if err := s.st.UpdateAdmin(r.Context(), a.admin); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "totp_disabled", a.admin.ID, "", clientIP(r, s.cfg.TrustProxy))
	w.WriteHeader(http.StatusNoContent)
}

// ResetAdmin gives an account a new password and takes its second factor
// off, enables it, and ends its sessions (tern admin reset, through the
// node's admin listener: for an admin who lost either).
func (s *Server) ResetAdmin(ctx context.Context, username, password string) (store.Admin, error) {
	username, ok := adminUsername(username)
	if !ok {
		return store.Admin{}, wire.Errorf(wire.CodeNotFound, "no such admin")
	}
	a, err := s.st.AdminByUsername(ctx, username)
	if errors.Is(err, store.ErrNotFound) {
		return store.Admin{}, wire.Errorf(wire.CodeNotFound, "no admin %s", username)
	}
	if err != nil {
		return store.Admin{}, fmt.Errorf("server: reset admin: %w", err)
	}
	hash, err := admin.HashPassword(password)
	if errors.Is(err, admin.ErrWeakPassword) {
		return store.Admin{}, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	if err != nil {
		return store.Admin{}, fmt.Errorf("server: reset admin: %w", err)
	}
	a.PasswordHash, a.TOTPSecret, a.Disabled = hash, nil, false
	if err := s.st.UpdateAdmin(ctx, a); err != nil {
		return store.Admin{}, fmt.Errorf("server: reset admin: %w", err)
	}
	if err := s.st.DeleteAdminSessions(ctx, a.ID); err != nil {
		return store.Admin{}, fmt.Errorf("server: reset admin: %w", err)
	}
	s.audit(ctx, "ops", "reset_admin", a.ID, username, "")
	return a, nil
}
