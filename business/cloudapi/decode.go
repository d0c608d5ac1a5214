package cloudapi

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/url"
	"reflect"
	"strings"
	"unicode/utf8"
)

// MessagesBody is a decoded messages-endpoint body: exactly one of Send and
// Read is non-nil.
type MessagesBody struct {
	Send *SendRequest
	Read *ReadRequest
}

// DecodeMessagesBody decodes a POST /messages body. Sends and mark-as-read
// share the path, so the body decides: a non-empty "status" makes it a read
// request. Unknown fields are ignored because SDKs send fields Tern does not
// model; malformed JSON and invalid values are rejected with the Graph error
// an SDK expects.
func DecodeMessagesBody(body []byte) (MessagesBody, *Error) {
	var probe struct {
		Status string `json:"status"`
	}
	if err := json.Unmarshal(body, &probe); err != nil {
		return MessagesBody{}, jsonError(err)
	}
	if probe.Status != "" {
		r, e := DecodeReadRequest(body)
		if e != nil {
			return MessagesBody{}, e
		}
		return MessagesBody{Read: &r}, nil
	}
	s, e := DecodeSendRequest(body)
	if e != nil {
		return MessagesBody{}, e
	}
	return MessagesBody{Send: &s}, nil
}

// DecodeReadRequest decodes and validates a mark-as-read body.
func DecodeReadRequest(body []byte) (ReadRequest, *Error) {
	var r ReadRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return ReadRequest{}, jsonError(err)
	}
	if e := checkProduct(r.MessagingProduct); e != nil {
		return ReadRequest{}, e
	}
	if r.Status != StatusRead {
		return ReadRequest{}, ErrInvalidParameter(fmt.Sprintf("status must be %q, got %q", StatusRead, r.Status))
	}
	if e := checkMessageID("message_id", r.MessageID); e != nil {
		return ReadRequest{}, e
	}
	if r.TypingIndicator != nil && r.TypingIndicator.Type != "text" {
		return ReadRequest{}, ErrInvalidParameter(fmt.Sprintf("typing_indicator.type must be \"text\", got %q", r.TypingIndicator.Type))
	}
	return r, nil
}

// DecodeSendRequest decodes, validates and canonicalises a send body.
func DecodeSendRequest(body []byte) (SendRequest, *Error) {
	var r SendRequest
	if err := json.Unmarshal(body, &r); err != nil {
		return SendRequest{}, jsonError(err)
	}
	return r.canonical()
}

// jsonError turns a decoding failure into the code-100 answer Graph gives
// for a body it cannot read, naming the field when encoding/json knows it.
func jsonError(err error) *Error {
	var te *json.UnmarshalTypeError
	var se *json.SyntaxError
	var e *Error
	switch {
	case errors.As(err, &te):
		field := te.Field
		if field == "" {
			field = "body"
		}
		e = ErrInvalidParameter(fmt.Sprintf("%s must be a JSON %s, got %s", field, jsonKind(te.Type), te.Value))
	case errors.As(err, &se):
		e = ErrInvalidParameter(fmt.Sprintf("request body is not valid JSON: %s (offset %d)", se.Error(), se.Offset))
	default:
		e = ErrInvalidParameter("request body is not valid: " + err.Error())
	}
	return e.withCause(fmt.Errorf("cloudapi: decoding messages body: %w", err))
}

// jsonKind names a Go type as a JSON value kind for error messages.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "value"
	}
	switch t.Kind() {
	case reflect.String:
		return "string"
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64,
		reflect.Float32, reflect.Float64:
		return "number"
	case reflect.Slice, reflect.Array:
		return "array"
	default:
		return "object"
	}
}

func checkProduct(p string) *Error {
	switch p {
	case MessagingProduct:
		return nil
	case "":
		return ErrInvalidParameter("The parameter messaging_product is required.")
	default:
		return ErrInvalidParameter(fmt.Sprintf("messaging_product must be %q, got %q", MessagingProduct, p))
	}
}

func checkMessageID(field, id string) *Error {
	if id == "" {
		return ErrRequiredParameter(field + " is required")
	}
	if !IsMessageID(id) {
		return ErrInvalidParameter(fmt.Sprintf("%s %q is not a WhatsApp message ID", field, id))
	}
	return nil
}

// runes counts code points, the unit the limits are given in.
func runes(s string) int { return utf8.RuneCountInString(s) }

// checkLen rejects an over-long value with 131009, Graph's answer for a
// value out of range.
func checkLen(field, s string, max int) *Error {
	if n := runes(s); n > max {
		return ErrParameterValueNotValid(fmt.Sprintf("%s must be at most %d characters, got %d", field, max, n))
	}
	return nil
}

// checkRequired combines presence and length for required strings.
func checkRequired(field, s string, max int) *Error {
	if s == "" {
		return ErrRequiredParameter(field + " is required")
	}
	return checkLen(field, s, max)
}

// normalizePhone accepts digits with an optional leading '+' and the
// separators people type (spaces, '-', parentheses), and returns "+digits".
// A leading 0 means a national number without country code, which the API
// cannot route.
func normalizePhone(s string) (string, bool) {
	s = strings.TrimSpace(s)
	var b strings.Builder
	b.Grow(len(s) + 1)
	b.WriteByte('+')
	digits := 0
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c >= '0' && c <= '9':
			if digits == 0 && c == '0' {
				return "", false
			}
			b.WriteByte(c)
			digits++
		case c == '+' && i == 0:
		case c == ' ' || c == '-' || c == '(' || c == ')':
		default:
			return "", false
		}
	}
	// E.164 numbers have at most 15 digits; fewer than 7 cannot carry a
	// country code and a subscriber number.
	if digits < 7 || digits > 15 {
		return "", false
	}
	return b.String(), true
}

// validLink accepts absolute http(s) URLs with a host: the server must be
// able to fetch the media.
func validLink(s string) bool {
	u, err := url.Parse(s)
	if err != nil {
		return false
	}
	return (u.Scheme == "http" || u.Scheme == "https") && u.Host != "" && u.Opaque == ""
}

// canonical validates r and returns it in canonical form.
func (r SendRequest) canonical() (SendRequest, *Error) {
	if e := checkProduct(r.MessagingProduct); e != nil {
		return SendRequest{}, e
	}
	switch r.RecipientType {
	case "", RecipientIndividual:
	default:
		return SendRequest{}, ErrInvalidParameter(fmt.Sprintf("recipient_type must be %q, got %q", RecipientIndividual, r.RecipientType))
	}
	if r.To == "" {
		return SendRequest{}, ErrRequiredParameter("to is required")
	}
	to, ok := normalizePhone(r.To)
	if !ok {
		return SendRequest{}, ErrInvalidParameter(fmt.Sprintf("to %q is not a phone number in international format", r.To))
	}
	typ := r.Type
	if typ == "" {
		if r.Text == nil {
			return SendRequest{}, ErrRequiredParameter("type is required")
		}
		typ = MessageTypeText
	}
	out := SendRequest{
		MessagingProduct:      MessagingProduct,
		RecipientType:         RecipientIndividual,
		To:                    to,
		ToInput:               r.To,
		Type:                  typ,
		BizOpaqueCallbackData: r.BizOpaqueCallbackData,
	}
	if r.Context != nil {
		if e := checkMessageID("context.message_id", r.Context.MessageID); e != nil {
			return SendRequest{}, e
		}
		out.Context = &Context{MessageID: r.Context.MessageID}
	}
	if e := checkLen("biz_opaque_callback_data", r.BizOpaqueCallbackData, MaxBizOpaqueData); e != nil {
		return SendRequest{}, e
	}

	var e *Error
	switch typ {
	case MessageTypeText:
		out.Text, e = canonicalText(r.Text)
	case MessageTypeImage:
		out.Image, e = canonicalMedia(typ, typ, r.Image)
	case MessageTypeVideo:
		out.Video, e = canonicalMedia(typ, typ, r.Video)
	case MessageTypeAudio:
		out.Audio, e = canonicalMedia(typ, typ, r.Audio)
	case MessageTypeDocument:
		out.Document, e = canonicalMedia(typ, typ, r.Document)
	case MessageTypeSticker:
		out.Sticker, e = canonicalMedia(typ, typ, r.Sticker)
	case MessageTypeReaction:
		out.Reaction, e = canonicalReaction(r.Reaction)
	case MessageTypeInteractive:
		out.Interactive, e = canonicalInteractive(r.Interactive)
	case MessageTypeTemplate:
		out.Template, e = canonicalTemplate(r.Template)
	case "location", "contacts":
		// Real Cloud API types that Tern does not carry (yet).
		e = ErrUnsupportedMessageType()
	default:
		e = ErrInvalidParameter(fmt.Sprintf("type %q is not a message type; use text, image, video, audio, document, sticker, reaction, interactive or template", typ))
	}
	if e != nil {
		return SendRequest{}, e
	}
	return out, nil
}

func canonicalText(t *Text) (*Text, *Error) {
	if t == nil {
		return nil, ErrRequiredParameter("text is required")
	}
	if e := checkRequired("text.body", t.Body, MaxTextBody); e != nil {
		return nil, e
	}
	c := *t
	return &c, nil
}

// canonicalMedia checks one media object: field names it in errors, kind
// (a media message type) decides which of caption and filename it may carry.
func canonicalMedia(field, kind string, m *Media) (*Media, *Error) {
	if m == nil {
		return nil, ErrRequiredParameter(field + " is required")
	}
	switch {
	case m.ID == "" && m.Link == "":
		return nil, ErrRequiredParameter(field + ".id or " + field + ".link is required")
	case m.ID != "" && m.Link != "":
		return nil, ErrInvalidParameter(field + " takes either id or link, not both")
	case m.Link != "" && !validLink(m.Link):
		return nil, ErrParameterValueNotValid(fmt.Sprintf("%s.link %q is not an http or https URL", field, m.Link))
	}
	if m.Caption != "" {
		if kind == MessageTypeAudio || kind == MessageTypeSticker {
			return nil, ErrInvalidParameter(field + ".caption is not supported for " + kind)
		}
		if e := checkLen(field+".caption", m.Caption, MaxCaption); e != nil {
			return nil, e
		}
	}
	if m.Filename != "" && kind != MessageTypeDocument {
		return nil, ErrInvalidParameter(field + ".filename is only supported for documents")
	}
	c := *m
	return &c, nil
}

func canonicalReaction(r *Reaction) (*Reaction, *Error) {
	if r == nil {
		return nil, ErrRequiredParameter("reaction is required")
	}
	if e := checkMessageID("reaction.message_id", r.MessageID); e != nil {
		return nil, e
	}
	if r.Emoji != "" && !IsSingleEmoji(r.Emoji) {
		return nil, ErrParameterValueNotValid(fmt.Sprintf("reaction.emoji %q is not a single emoji", r.Emoji))
	}
	c := *r
	return &c, nil
}

func canonicalInteractive(in *Interactive) (*Interactive, *Error) {
	if in == nil {
		return nil, ErrRequiredParameter("interactive is required")
	}
	switch in.Type {
	case InteractiveButton, InteractiveList:
	case "":
		return nil, ErrRequiredParameter("interactive.type is required")
	default:
		return nil, ErrInvalidParameter(fmt.Sprintf("interactive.type %q is not supported; use button or list", in.Type))
	}
	out := &Interactive{Type: in.Type, Body: in.Body}
	if e := checkRequired("interactive.body.text", in.Body.Text, MaxInteractiveBody); e != nil {
		return nil, e
	}
	if h := in.Header; h != nil {
		if h.Type != "text" {
			return nil, ErrInvalidParameter(fmt.Sprintf("interactive.header.type %q is not supported; use text", h.Type))
		}
		if e := checkRequired("interactive.header.text", h.Text, MaxInteractiveHeader); e != nil {
			return nil, e
		}
		out.Header = &InteractiveHeader{Type: h.Type, Text: h.Text}
	}
	if f := in.Footer; f != nil {
		if e := checkRequired("interactive.footer.text", f.Text, MaxInteractiveFooter); e != nil {
			return nil, e
		}
		out.Footer = &InteractiveText{Text: f.Text}
	}
	var e *Error
	if in.Type == InteractiveButton {
		out.Action, e = canonicalButtons(in.Action)
	} else {
		out.Action, e = canonicalList(in.Action)
	}
	if e != nil {
		return nil, e
	}
	return out, nil
}

func canonicalButtons(a InteractiveAction) (InteractiveAction, *Error) {
	if a.Button != "" || len(a.Sections) > 0 {
		return InteractiveAction{}, ErrInvalidParameter("interactive.action.button and sections are only for list messages")
	}
	if n := len(a.Buttons); n < MinReplyButtons || n > MaxReplyButtons {
		return InteractiveAction{}, ErrParameterValueNotValid(fmt.Sprintf("Invalid buttons count. Min allowed buttons: %d, Max allowed buttons: %d, got %d", MinReplyButtons, MaxReplyButtons, n))
	}
	ids := make(map[string]bool, len(a.Buttons))
	titles := make(map[string]bool, len(a.Buttons))
	out := make([]ReplyButton, len(a.Buttons))
	for i, b := range a.Buttons {
		field := fmt.Sprintf("interactive.action.buttons[%d]", i)
		switch b.Type {
		case "reply":
		case "":
			return InteractiveAction{}, ErrRequiredParameter(field + ".type is required")
		default:
			return InteractiveAction{}, ErrInvalidParameter(fmt.Sprintf("%s.type %q is not supported; use reply", field, b.Type))
		}
		if e := checkRequired(field+".reply.id", b.Reply.ID, MaxReplyButtonID); e != nil {
			return InteractiveAction{}, e
		}
		if e := checkRequired(field+".reply.title", b.Reply.Title, MaxReplyButtonTitle); e != nil {
			return InteractiveAction{}, e
		}
		// The webhook reports a tap by id and the user sees titles, so
		// either repeating would make two buttons indistinguishable.
		if ids[b.Reply.ID] {
			return InteractiveAction{}, ErrParameterValueNotValid(fmt.Sprintf("%s.reply.id %q is not unique", field, b.Reply.ID))
		}
		if titles[b.Reply.Title] {
			return InteractiveAction{}, ErrParameterValueNotValid(fmt.Sprintf("%s.reply.title %q is not unique", field, b.Reply.Title))
		}
		ids[b.Reply.ID], titles[b.Reply.Title] = true, true
		out[i] = b
	}
	return InteractiveAction{Buttons: out}, nil
}

func canonicalList(a InteractiveAction) (InteractiveAction, *Error) {
	if len(a.Buttons) > 0 {
		return InteractiveAction{}, ErrInvalidParameter("interactive.action.buttons is only for button messages")
	}
	if e := checkRequired("interactive.action.button", a.Button, MaxListButton); e != nil {
		return InteractiveAction{}, e
	}
	if n := len(a.Sections); n < 1 || n > MaxListSections {
		return InteractiveAction{}, ErrParameterValueNotValid(fmt.Sprintf("interactive.action.sections must have 1 to %d sections, got %d", MaxListSections, n))
	}
	total := 0
	for _, s := range a.Sections {
		total += len(s.Rows)
	}
	if total > MaxListRows {
		return InteractiveAction{}, ErrParameterValueNotValid(fmt.Sprintf("a list takes at most %d rows across all sections, got %d", MaxListRows, total))
	}
	ids := make(map[string]bool, total)
	out := make([]Section, len(a.Sections))
	for i, s := range a.Sections {
		field := fmt.Sprintf("interactive.action.sections[%d]", i)
		if s.Title == "" && len(a.Sections) > 1 {
			return InteractiveAction{}, ErrRequiredParameter(field + ".title is required when a list has more than one section")
		}
		if e := checkLen(field+".title", s.Title, MaxListSectionTitle); e != nil {
			return InteractiveAction{}, e
		}
		if len(s.Rows) == 0 {
			return InteractiveAction{}, ErrRequiredParameter(field + ".rows is required")
		}
		rows := make([]Row, len(s.Rows))
		for j, r := range s.Rows {
			rf := fmt.Sprintf("%s.rows[%d]", field, j)
			if e := checkRequired(rf+".id", r.ID, MaxListRowID); e != nil {
				return InteractiveAction{}, e
			}
			if e := checkRequired(rf+".title", r.Title, MaxListRowTitle); e != nil {
				return InteractiveAction{}, e
			}
			if e := checkLen(rf+".description", r.Description, MaxListRowDescription); e != nil {
				return InteractiveAction{}, e
			}
			if ids[r.ID] {
				return InteractiveAction{}, ErrParameterValueNotValid(fmt.Sprintf("%s.id %q is not unique", rf, r.ID))
			}
			ids[r.ID] = true
			rows[j] = r
		}
		out[i] = Section{Title: s.Title, Rows: rows}
	}
	return InteractiveAction{Button: a.Button, Sections: out}, nil
}

func canonicalTemplate(t *Template) (*Template, *Error) {
	if t == nil {
		return nil, ErrRequiredParameter("template is required")
	}
	if e := checkRequired("template.name", t.Name, MaxTemplateName); e != nil {
		return nil, e
	}
	if t.Language.Code == "" {
		return nil, ErrRequiredParameter("template.language.code is required")
	}
	out := &Template{Name: t.Name, Language: t.Language}
	if len(t.Components) > 0 {
		out.Components = make([]Component, len(t.Components))
	}
	for i, c := range t.Components {
		cc, e := canonicalComponent(fmt.Sprintf("template.components[%d]", i), c)
		if e != nil {
			return nil, e
		}
		out.Components[i] = cc
	}
	return out, nil
}

func canonicalComponent(field string, c Component) (Component, *Error) {
	switch c.Type {
	case ComponentHeader, ComponentBody:
		if c.SubType != "" || c.Index != nil {
			return Component{}, ErrInvalidParameter(field + ": sub_type and index are only for button components")
		}
	case ComponentButton:
		switch c.SubType {
		case ButtonQuickReply, ButtonURL:
		case "":
			return Component{}, ErrRequiredParameter(field + ".sub_type is required for button components")
		default:
			return Component{}, ErrInvalidParameter(fmt.Sprintf("%s.sub_type %q is not supported; use quick_reply or url", field, c.SubType))
		}
		if c.Index == nil {
			return Component{}, ErrRequiredParameter(field + ".index is required for button components")
		}
		if *c.Index < 0 || *c.Index > MaxTemplateButtonIndex {
			return Component{}, ErrParameterValueNotValid(fmt.Sprintf("%s.index must be 0 to %d, got %d", field, MaxTemplateButtonIndex, *c.Index))
		}
	case "":
		return Component{}, ErrRequiredParameter(field + ".type is required")
	default:
		return Component{}, ErrInvalidParameter(fmt.Sprintf("%s.type %q is not supported; use header, body or button", field, c.Type))
	}
	if len(c.Parameters) == 0 {
		return Component{}, ErrRequiredParameter(field + ".parameters is required")
	}
	out := Component{Type: c.Type, SubType: c.SubType, Parameters: make([]Parameter, len(c.Parameters))}
	if c.Index != nil {
		idx := *c.Index
		out.Index = &idx
	}
	for i, p := range c.Parameters {
		cp, e := canonicalParameter(fmt.Sprintf("%s.parameters[%d]", field, i), c, p)
		if e != nil {
			return Component{}, e
		}
		out.Parameters[i] = cp
	}
	return out, nil
}

// canonicalParameter keeps only the field Type names, and only where the
// component can take it: media in headers, payloads on quick-reply buttons,
// text everywhere else.
func canonicalParameter(field string, c Component, p Parameter) (Parameter, *Error) {
	misplaced := func() (Parameter, *Error) {
		return Parameter{}, ErrInvalidParameter(fmt.Sprintf("%s: a %s parameter does not fit a %s component", field, p.Type, c.Type))
	}
	switch p.Type {
	case ParameterText:
		if c.SubType == ButtonQuickReply {
			return misplaced()
		}
		if p.Text == "" {
			return Parameter{}, ErrRequiredParameter(field + ".text is required")
		}
		return Parameter{Type: p.Type, Text: p.Text}, nil
	case ParameterPayload:
		if c.SubType != ButtonQuickReply {
			return misplaced()
		}
		if p.Payload == "" {
			return Parameter{}, ErrRequiredParameter(field + ".payload is required")
		}
		return Parameter{Type: p.Type, Payload: p.Payload}, nil
	case ParameterImage, ParameterVideo, ParameterDocument:
		if c.Type != ComponentHeader {
			return misplaced()
		}
		src := map[string]*Media{ParameterImage: p.Image, ParameterVideo: p.Video, ParameterDocument: p.Document}[p.Type]
		m, e := canonicalMedia(field+"."+p.Type, p.Type, src)
		if e != nil {
			return Parameter{}, e
		}
		out := Parameter{Type: p.Type}
		switch p.Type {
		case ParameterImage:
			out.Image = m
		case ParameterVideo:
			out.Video = m
		default:
			out.Document = m
		}
		return out, nil
	case "":
		return Parameter{}, ErrRequiredParameter(field + ".type is required")
	default:
		return Parameter{}, ErrInvalidParameter(fmt.Sprintf("%s.type %q is not supported; use text, payload, image, video or document", field, p.Type))
	}
}
