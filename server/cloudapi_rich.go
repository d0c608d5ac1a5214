package server

import (
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tern-im/tern/business/cloudapi"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// Interactive and template messages (issue 13): both become a text (or a
// file with a caption) and a wire.Card, the header, footer and choices
// Tern's clients show; a customer's tap is a reply naming the choice
// (wire.Body.Choice), which reaches the business as the Cloud API's
// button_reply, list_reply or template button message.

// bizInteractiveBody is the body of an interactive message: its text and
// a card.
func bizInteractiveBody(in *cloudapi.Interactive) *wire.Body {
	card := &wire.Card{}
	if in.Header != nil {
		card.Header = in.Header.Text
	}
	if in.Footer != nil {
		card.Footer = in.Footer.Text
	}
	switch in.Type {
	case cloudapi.InteractiveButton:
		for _, b := range in.Action.Buttons {
			card.Buttons = append(card.Buttons, wire.Choice{ID: b.Reply.ID, Title: b.Reply.Title})
		}
	case cloudapi.InteractiveList:
		l := &wire.ChoiceList{Button: in.Action.Button}
		for _, s := range in.Action.Sections {
			sec := wire.ChoiceSection{Title: s.Title}
			for _, r := range s.Rows {
				sec.Rows = append(sec.Rows, wire.Choice{ID: r.ID, Title: r.Title, Description: r.Description})
			}
			l.Sections = append(l.Sections, sec)
		}
		card.List = l
	}
	return &wire.Body{Text: in.Body.Text, Card: card}
}

// renderTemplate fills in the business's template for one send: 132001
// if it has no such template in that language, 132000 if the parameters
// do not fit it. It depends on nothing but the business and the request,
// so that its refusals are the same whatever number the send is to.
func (s *Server) renderTemplate(ctx context.Context, b store.Business, t *cloudapi.Template) (cloudapi.Rendered, *cloudapi.Error) {
	rec, err := s.st.Template(ctx, b.UserID, t.Name, t.Language.Code)
	if errors.Is(err, store.ErrNotFound) {
		return cloudapi.Rendered{}, cloudapi.ErrTemplateNotFound("template name (" + t.Name + ") does not exist in " + t.Language.Code)
	}
	if err != nil {
		s.log.Error("business: template lookup failed", "err", err)
		return cloudapi.Rendered{}, cloudapi.NewError(2, "Service temporarily unavailable", "")
	}
	var def cloudapi.TemplateDef
	if err := json.Unmarshal(rec.Components, &def.Components); err != nil {
		s.log.Error("business: a stored template does not decode", "business", b.UserID, "name", t.Name, "err", err)
		return cloudapi.Rendered{}, cloudapi.NewError(2, "Service temporarily unavailable", "")
	}
	return def.Render(t)
}

// templateBody is the message of a rendered template named name: its
// text, its card, and a media header's file (a link is fetched now).
func (s *Server) templateBody(ctx context.Context, b store.Business, name string, r cloudapi.Rendered) (*wire.Body, *cloudapi.Error) {
	text := r.Body
	if len(r.Links) > 0 {
		text += "\n\n" + strings.Join(r.Links, "\n")
	}
	card := &wire.Card{Header: r.Header, Footer: r.Footer, Template: name}
	for _, q := range r.QuickReplies {
		card.Buttons = append(card.Buttons, wire.Choice{ID: q.ID, Title: q.Title})
	}
	if r.HeaderMedia == nil {
		return &wire.Body{Text: text, Card: card}, nil
	}
	body, gerr := s.bizMediaBody(ctx, b, r.HeaderKind, r.HeaderMedia)
	if gerr != nil {
		return nil, gerr
	}
	body.Caption, body.Card = text, card
	return body, nil
}

// templateID is a template's id as Graph shows it (numeric): derived
// from the business, name and language, so nothing more is kept.
func templateID(userID, name, language string) string {
	h := sha256.Sum256([]byte(userID + "\x00" + name + "\x00" + language))
	return strconv.FormatUint(binary.BigEndian.Uint64(h[:8])%1e15+1e15, 10)
}

// templateJSON is a template as the Graph API lists it.
func templateJSON(t store.Template) map[string]any {
	var comps any = json.RawMessage(t.Components)
	if len(t.Components) == 0 {
		comps = []any{}
	}
	return map[string]any{"id": templateID(t.UserID, t.Name, t.Language), "name": t.Name, "language": t.Language,
		"status": t.Status, "category": t.Category, "components": comps}
}

// handleTemplateCreate registers a template: `POST
// /{waba_id}/message_templates`. Tern reviews nothing: a template that
// passes the checks is APPROVED at once; registering a name and language
// again replaces that template.
func (s *Server) handleTemplateCreate(w http.ResponseWriter, r *http.Request, b store.Business) {
	body, err := io.ReadAll(io.LimitReader(r.Body, maxBizBody+1))
	if err != nil || len(body) > maxBizBody {
		writeGraph(w, cloudapi.ErrInvalidParameter("the request body could not be read, or is over 64 KiB"))
		return
	}
	def, gerr := cloudapi.DecodeTemplateDef(body)
	if gerr != nil {
		writeGraph(w, gerr)
		return
	}
	comps, err := json.Marshal(def.Components)
	if err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	t := store.Template{UserID: b.UserID, Name: def.Name, Language: def.Language, Category: def.Category,
		Status: cloudapi.StatusApproved, Components: comps, CreatedAt: time.Now().UTC()}
	if err := s.st.PutTemplate(r.Context(), t); err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, map[string]string{"id": templateID(b.UserID, t.Name, t.Language), "status": t.Status, "category": t.Category})
}

// handleTemplates lists the business's templates (?name= one of them),
// all on one page: a business has tens, not thousands.
func (s *Server) handleTemplates(w http.ResponseWriter, r *http.Request, b store.Business) {
	ts, err := s.st.Templates(r.Context(), b.UserID)
	if err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	name := r.URL.Query().Get("name")
	data := []map[string]any{}
	for _, t := range ts {
		if name == "" || t.Name == name {
			data = append(data, templateJSON(t))
		}
	}
	writeJSON(w, http.StatusOK, map[string]any{"data": data, "paging": map[string]any{"cursors": map[string]string{}}})
}

// handleTemplateDelete deletes a template in every language: `DELETE
// /{waba_id}/message_templates?name=N`.
func (s *Server) handleTemplateDelete(w http.ResponseWriter, r *http.Request, b store.Business) {
	name := r.URL.Query().Get("name")
	if name == "" {
		writeGraph(w, cloudapi.ErrRequiredParameter("name is required"))
		return
	}
	ts, err := s.st.Templates(r.Context(), b.UserID)
	if err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	found := false
	for _, t := range ts {
		found = found || t.Name == name
	}
	if !found {
		writeGraph(w, cloudapi.ErrTemplateNotFound("template name ("+name+") does not exist"))
		return
	}
	if err := s.st.DeleteTemplate(r.Context(), b.UserID, name); err != nil {
		s.writeGraphErr(w, r, err)
		return
	}
	writeJSON(w, http.StatusOK, cloudapi.SuccessResponse{Success: true})
}

// inboundChoice is a customer's tap on a card, as the Cloud API tells
// it: a template's quick reply is a "button" message (its payload), an
// interactive message's a button_reply or list_reply.
func inboundChoice(from, id string, at time.Time, quoted *wire.Body, choice string) (cloudapi.InboundMessage, bool) {
	c, ok := quoted.Card.Find(choice)
	if !ok {
		return cloudapi.InboundMessage{}, false
	}
	switch {
	case quoted.Card.Template != "":
		return cloudapi.NewInboundButton(from, id, at, c.ID, c.Title), true
	case quoted.Card.List != nil:
		return cloudapi.NewInboundListReply(from, id, at, cloudapi.ListReply{ID: c.ID, Title: c.Title, Description: c.Description}), true
	}
	return cloudapi.NewInboundButtonReply(from, id, at, cloudapi.Reply{ID: c.ID, Title: c.Title}), true
}
