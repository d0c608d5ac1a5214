package server

import (
	"net/http"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/wire"
)

// handleMessageReceipts answers message info: the rules (who may ask,
// who is listed) are chat.MessageInfo's.
func (s *Server) handleMessageReceipts(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	marks, err := s.chat.MessageInfo(r.Context(), claimsActor(c), r.PathValue("chat_id"), r.PathValue("msg_id"))
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	// Never null: a message nobody else can get answers an empty list.
	out := wire.ReceiptsResponse{Receipts: make([]wire.MessageReceipt, 0, len(marks))}
	for _, m := range marks {
		out.Receipts = append(out.Receipts, wire.MessageReceipt{
			UserID:      m.UserID,
			DeliveredTS: optTS(m.DeliveredTS),
			ReadTS:      optTS(m.ReadTS),
		})
	}
	writeJSON(w, http.StatusOK, out)
}

// optTS is a time that may not have happened yet: 0 is null on the wire.
func optTS(ms int64) *int64 {
	if ms == 0 {
		return nil
	}
	return &ms
}
