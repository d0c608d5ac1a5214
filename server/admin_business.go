package server

import (
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// The admin API's side of the business API: make businesses, see them,
// change their settings, and manage their API tokens. Every change is in
// the audit log.

type adminBusiness struct {
	UserID        string `json:"user_id"`
	Name          string `json:"name"`
	Phone         string `json:"phone"`
	PhoneNumberID string `json:"phone_number_id"`
	WABAID        string `json:"waba_id"`
	WebhookURL    string `json:"webhook_url,omitempty"`
	WebhookOK     bool   `json:"webhook_verified"`
	WindowRule    bool   `json:"window_rule"`
	RatePerSecond int    `json:"rate_per_second"`
	CreatedAt     string `json:"created_at"`
	// WebhookFailing is set while the node holding the business's queue
	// retries a POST that failed.
	WebhookFailing *hookFailure `json:"webhook_failing,omitempty"`
}

func (s *Server) adminBusinessOf(r *http.Request, b store.Business, failing map[string]hookFailure) adminBusiness {
	out := adminBusiness{UserID: b.UserID, Name: b.Name, PhoneNumberID: b.PhoneNumberID, WABAID: b.WABAID,
		WebhookURL: b.WebhookURL, WebhookOK: !b.WebhookVerifiedAt.IsZero(), WindowRule: b.WindowRule,
		RatePerSecond: b.RatePerSecond, CreatedAt: rfc3339(b.CreatedAt)}
	if u, err := s.st.User(r.Context(), b.UserID); err == nil {
		out.Phone = u.Phone
	}
	if f, ok := failing[b.UserID]; ok {
		out.WebhookFailing = &f
	}
	return out
}

func (s *Server) handleAdminBusinesses(w http.ResponseWriter, r *http.Request, _ adminActor) {
	bs, err := s.st.ListBusinesses(r.Context(), r.URL.Query().Get("after"), 100)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]adminBusiness, 0, len(bs))
	failing := s.webhookFailures(r.Context())
	for _, b := range bs {
		out = append(out, s.adminBusinessOf(r, b, failing))
	}
	next := ""
	if len(bs) == 100 {
		next = bs[len(bs)-1].UserID
	}
	writeJSON(w, http.StatusOK, map[string]any{"businesses": out, "next_after": next})
}

// handleAdminNewBusiness is tern business create through the admin API.
func (s *Server) handleAdminNewBusiness(w http.ResponseWriter, r *http.Request, a adminActor) {
	var req struct {
		Phone       string `json:"phone"`
		Name        string `json:"name"`
		WebhookURL  string `json:"webhook_url"`
		VerifyToken string `json:"verify_token"`
	}
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	b, err := s.CreateBusiness(r.Context(), NewBusiness{Phone: req.Phone, Name: req.Name, WebhookURL: req.WebhookURL,
		VerifyToken: req.VerifyToken, By: a.name, IP: clientIP(r, s.cfg.TrustProxy)})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, b)
}

func (s *Server) adminLoadBusiness(w http.ResponseWriter, r *http.Request) (store.Business, bool) {
	b, err := s.st.Business(r.Context(), r.PathValue("user_id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, wire.Errorf(wire.CodeNotFound, "no such business"))
		return b, false
	}
	if err != nil {
		s.writeErr(w, r, err)
		return b, false
	}
	return b, true
}

// handleAdminPatchBusiness changes a business's settings: the 24-hour
// rule and its rate.
func (s *Server) handleAdminPatchBusiness(w http.ResponseWriter, r *http.Request, a adminActor) {
	var req struct {
		WindowRule    *bool `json:"window_rule"`
		RatePerSecond *int  `json:"rate_per_second"`
	}
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	b, ok := s.adminLoadBusiness(w, r)
	if !ok {
		return
	}
	var changed []string
	if req.WindowRule != nil {
		b.WindowRule = *req.WindowRule
		changed = append(changed, "window_rule")
	}
	if req.RatePerSecond != nil {
		if *req.RatePerSecond < 1 || *req.RatePerSecond > business.MaxRatePerSecond {
			writeError(w, wire.Errorf(wire.CodeBadRequest, "rate_per_second is 1 to %d", business.MaxRatePerSecond))
			return
		}
		b.RatePerSecond = *req.RatePerSecond
		changed = append(changed, "rate_per_second")
	}
	if err := s.st.UpdateBusiness(r.Context(), b); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "business_settings", b.UserID, strings.Join(changed, ","), clientIP(r, s.cfg.TrustProxy))
	writeJSON(w, http.StatusOK, s.adminBusinessOf(r, b, s.webhookFailures(r.Context())))
}

func (s *Server) handleAdminBusinessTokens(w http.ResponseWriter, r *http.Request, _ adminActor) {
	b, ok := s.adminLoadBusiness(w, r)
	if !ok {
		return
	}
	ts, err := s.st.BusinessTokens(r.Context(), b.UserID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]map[string]string, 0, len(ts))
	for _, t := range ts {
		out = append(out, map[string]string{"token_id": t.ID, "name": t.Name, "created_at": rfc3339(t.CreatedAt)})
	}
	writeJSON(w, http.StatusOK, map[string]any{"tokens": out})
}

// handleAdminNewBusinessToken makes an API token; it is shown this once.
func (s *Server) handleAdminNewBusinessToken(w http.ResponseWriter, r *http.Request, a adminActor) {
	var req struct {
		Name string `json:"name"`
	}
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	name := strings.TrimSpace(req.Name)
	if e := wire.CheckName("name", name, 100); e != nil || name == "" {
		writeError(w, wire.Errorf(wire.CodeBadRequest, "a token needs a name of 1 to 100 characters"))
		return
	}
	b, ok := s.adminLoadBusiness(w, r)
	if !ok {
		return
	}
	token, err := s.newBusinessToken(r.Context(), b.UserID, name)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	id, _, _ := business.ParseToken(token)
	s.audit(r.Context(), a.name, "create_business_token", b.UserID, id+" "+name, clientIP(r, s.cfg.TrustProxy))
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusCreated, map[string]string{"token_id": id, "access_token": token, "created_at": rfc3339(time.Now())})
}

func (s *Server) handleAdminDeleteBusinessToken(w http.ResponseWriter, r *http.Request, a adminActor) {
	b, ok := s.adminLoadBusiness(w, r)
	if !ok {
		return
	}
	t, err := s.st.BusinessToken(r.Context(), r.PathValue("token_id"))
	if errors.Is(err, store.ErrNotFound) || err == nil && t.UserID != b.UserID {
		writeError(w, wire.Errorf(wire.CodeNotFound, "no such token of this business"))
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if err := s.st.DeleteBusinessToken(r.Context(), t.ID); err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "revoke_business_token", b.UserID, t.ID, clientIP(r, s.cfg.TrustProxy))
	w.WriteHeader(http.StatusNoContent)
}
