package server

import (
	"context"
	"errors"
	"net/http"
	"strings"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// The dashboard's groups and reports: list and look into groups, delete
// one (every member removed at once), and work through the reports queue
// (dismiss a report, or ban the reported user and close the report).

// adminGroup is a group as the dashboard lists it: the wire group, and
// its members' names and phones, which members see through their own
// address books but an operator needs at a glance.
type adminGroup struct {
	wire.Group
	People map[string]adminPerson `json:"people,omitempty"`
}

type adminPerson struct {
	Phone string `json:"phone"`
	Name  string `json:"name"`
}

const adminGroupsPage = 50

func (s *Server) handleAdminGroups(w http.ResponseWriter, r *http.Request, _ adminActor) {
	q := strings.TrimSpace(r.URL.Query().Get("q"))
	after := r.URL.Query().Get("after")
	if len(q) > 200 || len(after) > 200 {
		writeError(w, wire.Errorf(wire.CodeBadRequest, "q and after are at most 200 bytes"))
		return
	}
	gs, err := s.st.ListGroups(r.Context(), q, after, adminGroupsPage)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]wire.Group, len(gs))
	for i := range gs {
		out[i] = wireGroup(&gs[i])
	}
	next := ""
	if len(gs) == adminGroupsPage {
		next = gs[len(gs)-1].ChatID
	}
	writeJSON(w, http.StatusOK, map[string]any{"groups": out, "next_after": next})
}

func (s *Server) handleAdminGroup(w http.ResponseWriter, r *http.Request, a adminActor) {
	g, err := s.st.Group(r.Context(), r.PathValue("chat_id"))
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, wire.Errorf(wire.CodeNotFound, "no such group"))
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := adminGroup{Group: wireGroup(&g), People: map[string]adminPerson{}}
	for _, m := range g.Members {
		if u, err := s.st.User(r.Context(), m.UserID); err == nil {
			out.People[u.ID] = adminPerson{Phone: u.Phone, Name: u.Name}
		}
	}
	s.audit(r.Context(), a.name, "view_group", g.ChatID, "", clientIP(r, s.cfg.TrustProxy))
	writeJSON(w, http.StatusOK, out)
}

// handleAdminDeleteGroup deletes a group: its members are removed in one
// change that reaches all their devices.
func (s *Server) handleAdminDeleteGroup(w http.ResponseWriter, r *http.Request, a adminActor) {
	id := r.PathValue("chat_id")
	if _, err := s.st.Group(r.Context(), id); errors.Is(err, store.ErrNotFound) {
		writeError(w, wire.Errorf(wire.CodeNotFound, "no such group"))
		return
	}
	g, err := s.chat.DeleteGroup(r.Context(), id)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "delete_group", id, g.Name, clientIP(r, s.cfg.TrustProxy))
	w.WriteHeader(http.StatusNoContent)
}

// userGroups lists the groups userID is in, for the user's page.
func (s *Server) userGroups(ctx context.Context, userID string) ([]adminGroupRef, error) {
	chats, err := s.st.Chats(ctx, userID)
	if err != nil {
		return nil, err
	}
	var out []adminGroupRef
	for _, c := range chats {
		if c.Chat.Kind == "group" {
			out = append(out, adminGroupRef{ChatID: c.Chat.ID, Name: c.Chat.Title, Members: len(c.Chat.Members)})
		}
	}
	return out, nil
}

type adminGroupRef struct {
	ChatID  string `json:"chat_id"`
	Name    string `json:"name"`
	Members int    `json:"members"`
}

const adminReportsPage = 100

func (s *Server) handleAdminReports(w http.ResponseWriter, r *http.Request, _ adminActor) {
	q := r.URL.Query()
	open := q.Get("status") != "all"
	rs, err := s.st.Reports(r.Context(), open, q.Get("before"), adminReportsPage)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := make([]map[string]any, 0, len(rs))
	for _, rp := range rs {
		msgs := make([]wire.Message, 0, len(rp.Messages))
		for _, m := range rp.Messages {
			msgs = append(msgs, wireMessage(&m))
		}
		o := map[string]any{"report_id": rp.ID, "reporter": rp.By, "user_id": rp.UserID,
			"chat_id": rp.ChatID, "reason": rp.Reason, "ts": rp.TS, "messages": msgs}
		if u, err := s.st.User(r.Context(), rp.UserID); err == nil {
			o["user"] = adminPerson{Phone: u.Phone, Name: u.Name}
		}
		if rp.Resolution != "" {
			o["resolution"], o["resolved_by"], o["resolved_ts"] = rp.Resolution, rp.ResolvedBy, rp.ResolvedTS
		}
		out = append(out, o)
	}
	next := ""
	if len(rs) == adminReportsPage {
		next = rs[len(rs)-1].ID
	}
	writeJSON(w, http.StatusOK, map[string]any{"reports": out, "next_before": next})
}

// handleAdminResolveReport closes a report: "dismiss" leaves the user be;
// "ban" bans the reported user (signed out everywhere) first.
func (s *Server) handleAdminResolveReport(w http.ResponseWriter, r *http.Request, a adminActor) {
	id, action := r.PathValue("report_id"), r.PathValue("action")
	if action != "dismiss" && action != "ban" {
		writeError(w, wire.Errorf(wire.CodeNotFound, "no such endpoint: a report is resolved with /dismiss or /ban"))
		return
	}
	reason, ok := s.readBanReason(w, r)
	if !ok {
		return
	}
	rp, err := s.st.Report(r.Context(), id)
	if errors.Is(err, store.ErrNotFound) {
		writeError(w, wire.Errorf(wire.CodeNotFound, "no such report"))
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if rp.Resolution != "" {
		writeError(w, wire.Errorf(wire.CodeConflict, "the report was %s by %s already", rp.Resolution, rp.ResolvedBy))
		return
	}
	ip := clientIP(r, s.cfg.TrustProxy)
	resolution := "dismissed"
	if action == "ban" {
		resolution = "banned"
		if reason == "" {
			reason = "report " + id + ": " + rp.Reason
			if len(reason) > 1000 {
				reason = strings.ToValidUTF8(reason[:1000], "")
			}
		}
		if err := s.adminBan(r, a, rp.UserID, reason); err != nil {
			s.writeErr(w, r, err)
			return
		}
	}
	err = s.st.ResolveReport(r.Context(), id, resolution, a.name, time.Now().UnixMilli())
	if errors.Is(err, store.ErrConflict) {
		// Another admin got there first; a ban made above stands, and is
		// in the log.
		writeError(w, wire.Errorf(wire.CodeConflict, "another admin resolved the report meanwhile"))
		return
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.audit(r.Context(), a.name, "report_"+resolution, id, "user "+rp.UserID, ip)
	w.WriteHeader(http.StatusNoContent)
}
