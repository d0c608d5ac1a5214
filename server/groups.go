package server

import (
	"net/http"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/chat"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// The group endpoints decode, call chat and encode: the rules are there.

func claimsActor(c auth.Claims) chat.Actor { return chat.Actor{UserID: c.UserID, DeviceID: c.DeviceID} }

func (s *Server) writeGroup(w http.ResponseWriter, status int, g *store.Group, notAdded []string) {
	out := wireGroup(g)
	out.NotAdded = notAdded
	writeJSON(w, status, out)
}

func (s *Server) handleCreateGroup(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var req wire.CreateGroupRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	g, notAdded, err := s.chat.CreateGroup(r.Context(), claimsActor(c),
		chat.NewGroup{Name: req.Name, Description: req.Description, Members: req.Members})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.writeGroup(w, http.StatusCreated, &g, notAdded)
}

func (s *Server) handleGroup(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	g, err := s.chat.Group(r.Context(), claimsActor(c), r.PathValue("chat_id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.writeGroup(w, http.StatusOK, &g, nil)
}

func (s *Server) handlePatchGroup(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var p wire.GroupPatch
	if err := decode(w, r, &p); err != nil {
		s.writeErr(w, r, err)
		return
	}
	cp := chat.GroupPatch{Name: p.Name, Description: p.Description}
	if p.Settings != nil {
		cp.EditInfo, cp.Send = p.Settings.EditInfo, p.Settings.Send
	}
	g, err := s.chat.UpdateGroup(r.Context(), claimsActor(c), r.PathValue("chat_id"), cp)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.writeGroup(w, http.StatusOK, &g, nil)
}

func (s *Server) handleAddMembers(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var req wire.AddMembersRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	g, notAdded, err := s.chat.AddMembers(r.Context(), claimsActor(c), r.PathValue("chat_id"), req.UserIDs)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	s.writeGroup(w, http.StatusOK, &g, notAdded)
}

func (s *Server) handleRemoveMember(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	_, err := s.chat.RemoveMember(r.Context(), claimsActor(c), r.PathValue("chat_id"), r.PathValue("user_id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleAdmin(admin bool) func(http.ResponseWriter, *http.Request, auth.Claims) {
	return func(w http.ResponseWriter, r *http.Request, c auth.Claims) {
		g, err := s.chat.SetAdmin(r.Context(), claimsActor(c), r.PathValue("chat_id"), r.PathValue("user_id"), admin)
		if err != nil {
			s.writeErr(w, r, err)
			return
		}
		s.writeGroup(w, http.StatusOK, &g, nil)
	}
}
