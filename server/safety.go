package server

import (
	"net/http"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/chat"
	"github.com/tern-im/tern/wire"
)

func (s *Server) handleBlocks(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	list, err := s.chat.Blocks(r.Context(), claimsActor(c))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := wire.Blocks{Blocks: make([]wire.Block, 0, len(list))}
	for _, b := range list {
		out.Blocks = append(out.Blocks, wire.Block{UserID: b.UserID, TS: b.TS})
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handleBlock(on bool) func(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	return func(w http.ResponseWriter, r *http.Request, c auth.Claims) {
		if !s.takeSetting(w, r, c) {
			return
		}
		if err := s.chat.SetBlock(r.Context(), claimsActor(c), r.PathValue("user_id"), on); err != nil {
			s.settingsByUser.give(c.UserID, 1) // a refused block changed nothing
			s.writeErr(w, r, err)
			return
		}
		s.presence.recheck(c.UserID, r.PathValue("user_id"))
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) handleReport(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var req wire.ReportRequest
	if err := decode(w, r, &req); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if req.UserID == "" {
		s.writeErr(w, r, wire.Errorf(wire.CodeBadRequest, "user_id is missing"))
		return
	}
	id, err := s.chat.Report(r.Context(), claimsActor(c), chat.ReportInput{UserID: req.UserID, ChatID: req.ChatID,
		MsgIDs: req.MsgIDs, Reason: req.Reason, Block: req.Block})
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	if req.Block {
		s.presence.recheck(c.UserID, req.UserID)
	}
	writeJSON(w, http.StatusCreated, wire.ReportCreated{ReportID: id})
}

func (s *Server) handleDeleteForMe(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	if err := s.chat.DeleteForMe(r.Context(), claimsActor(c), r.PathValue("chat_id"), r.PathValue("msg_id")); err != nil {
		s.writeErr(w, r, err)
		return
	}
	w.WriteHeader(http.StatusNoContent)
}

func (s *Server) handleStar(on bool) func(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	return func(w http.ResponseWriter, r *http.Request, c auth.Claims) {
		if err := s.chat.SetStar(r.Context(), claimsActor(c), r.PathValue("chat_id"), r.PathValue("msg_id"), on); err != nil {
			s.writeErr(w, r, err)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}
}

func (s *Server) handleStarred(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	msgs, err := s.chat.Starred(r.Context(), claimsActor(c))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	out := wire.StarredResponse{Messages: make([]wire.Message, 0, len(msgs))}
	for i := range msgs {
		out.Messages = append(out.Messages, wireMessage(&msgs[i]))
	}
	writeJSON(w, http.StatusOK, out)
}

func (s *Server) handlePatchChat(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	var p wire.ChatPatch
	if err := decode(w, r, &p); err != nil {
		s.writeErr(w, r, err)
		return
	}
	if p.DisappearingSeconds == nil {
		s.writeErr(w, r, wire.Errorf(wire.CodeBadRequest, "nothing to change: disappearing_seconds is the one setting"))
		return
	}
	chatID := r.PathValue("chat_id")
	m, err := s.chat.SetDisappearing(r.Context(), claimsActor(c), chatID, *p.DisappearingSeconds)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ChatSettings{ChatID: chatID, DisappearingSeconds: *p.DisappearingSeconds,
		MsgID: m.ID, Seq: m.Seq, TS: m.TS})
}

func (s *Server) handleChatSettings(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	chatID := r.PathValue("chat_id")
	n, err := s.chat.Disappearing(r.Context(), claimsActor(c), chatID)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, wire.ChatSettings{ChatID: chatID, DisappearingSeconds: n})
}
