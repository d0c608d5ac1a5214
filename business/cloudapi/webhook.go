package cloudapi

import (
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Webhook envelope constants.
const (
	ObjectWhatsAppBusinessAccount = "whatsapp_business_account"
	FieldMessages                 = "messages"
)

// Delivery statuses reported in webhooks. StatusRead is declared with the
// read request.
const (
	StatusSent      = "sent"
	StatusDelivered = "delivered"
	StatusFailed    = "failed"
)

var errNotMediaType = errors.New("not a media message type")

// WebhookPayload is the body of a webhook POST.
type WebhookPayload struct {
	Object string         `json:"object"`
	Entry  []WebhookEntry `json:"entry"`
}

// WebhookEntry groups changes for one WhatsApp Business Account (ID is the
// WABA ID).
type WebhookEntry struct {
	ID      string          `json:"id"`
	Changes []WebhookChange `json:"changes"`
}

// WebhookChange is one change; Field is "messages" for everything here.
type WebhookChange struct {
	Value WebhookValue `json:"value"`
	Field string       `json:"field"`
}

// WebhookValue carries inbound messages or statuses for one business phone
// number.
type WebhookValue struct {
	MessagingProduct string           `json:"messaging_product"`
	Metadata         Metadata         `json:"metadata"`
	Contacts         []WebhookContact `json:"contacts,omitempty"`
	Messages         []InboundMessage `json:"messages,omitempty"`
	Statuses         []Status         `json:"statuses,omitempty"`
	Errors           []WebhookError   `json:"errors,omitempty"`
}

// Metadata names the business phone number the change concerns.
type Metadata struct {
	DisplayPhoneNumber string `json:"display_phone_number"`
	PhoneNumberID      string `json:"phone_number_id"`
}

// WebhookContact is the sender of inbound messages.
type WebhookContact struct {
	Profile Profile `json:"profile"`
	WaID    string  `json:"wa_id"`
}

// Profile is the sender's WhatsApp profile.
type Profile struct {
	Name string `json:"name"`
}

// InboundMessage is a message a user sent to the business. Field order
// follows Meta's payloads (context first, then from, id, timestamp, type).
type InboundMessage struct {
	Context     *InboundContext     `json:"context,omitempty"`
	From        string              `json:"from"`
	ID          string              `json:"id"`
	Timestamp   string              `json:"timestamp"`
	Type        string              `json:"type"`
	Text        *InboundText        `json:"text,omitempty"`
	Image       *InboundMedia       `json:"image,omitempty"`
	Video       *InboundMedia       `json:"video,omitempty"`
	Audio       *InboundMedia       `json:"audio,omitempty"`
	Document    *InboundMedia       `json:"document,omitempty"`
	Sticker     *InboundMedia       `json:"sticker,omitempty"`
	Reaction    *Reaction           `json:"reaction,omitempty"`
	Interactive *InboundInteractive `json:"interactive,omitempty"`
	Button      *InboundButton      `json:"button,omitempty"`
	Errors      []WebhookError      `json:"errors,omitempty"`
}

// InboundContext is set when the user replied to, or tapped a button on,
// message ID sent by From.
type InboundContext struct {
	From string `json:"from"`
	ID   string `json:"id"`
}

// InboundText is the body of an inbound text message.
type InboundText struct {
	Body string `json:"body"`
}

// InboundMedia describes received media. The bytes are fetched separately by
// ID; SHA256 (standard base64) lets the receiver check them.
type InboundMedia struct {
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
	MimeType string `json:"mime_type"`
	SHA256   string `json:"sha256"`
	ID       string `json:"id"`
	Voice    *bool  `json:"voice,omitempty"`
	Animated *bool  `json:"animated,omitempty"`
}

// InboundInteractive is the user's choice on an interactive message.
type InboundInteractive struct {
	Type        string     `json:"type"`
	ButtonReply *Reply     `json:"button_reply,omitempty"`
	ListReply   *ListReply `json:"list_reply,omitempty"`
}

// ListReply is the list row the user picked.
type ListReply struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// InboundButton is a tap on a template quick-reply button: Payload is the
// payload the business set, Text the button label.
type InboundButton struct {
	Payload string `json:"payload"`
	Text    string `json:"text"`
}

// Status reports what happened to a message the business sent.
type Status struct {
	ID                    string         `json:"id"`
	Status                string         `json:"status"`
	Timestamp             string         `json:"timestamp"`
	RecipientID           string         `json:"recipient_id"`
	BizOpaqueCallbackData string         `json:"biz_opaque_callback_data,omitempty"`
	Errors                []WebhookError `json:"errors,omitempty"`
}

// WebhookError is an error as webhooks carry it: the title on its own
// rather than inside a "(#code)" message.
type WebhookError struct {
	Code      int               `json:"code"`
	Title     string            `json:"title"`
	Message   string            `json:"message,omitempty"`
	ErrorData *WebhookErrorData `json:"error_data,omitempty"`
	Href      string            `json:"href,omitempty"`
}

// WebhookErrorData holds the details of a WebhookError.
type WebhookErrorData struct {
	Details string `json:"details"`
}

// WebhookErrorFrom converts an API error to its webhook form.
func WebhookErrorFrom(e *Error) WebhookError {
	w := WebhookError{Code: e.Code, Title: e.Title(), Message: e.Title()}
	if e.Details != "" {
		w.ErrorData = &WebhookErrorData{Details: e.Details}
	}
	return w
}

// Timestamp formats t as webhooks do: Unix seconds as a decimal string.
func Timestamp(t time.Time) string { return strconv.FormatInt(t.Unix(), 10) }

// waID strips the '+' that WhatsApp IDs never carry in webhooks.
func waID(phone string) string { return strings.TrimPrefix(phone, "+") }

// NewMessagesPayload wraps inbound messages from one contact into the POST
// body for WABA wabaID.
func NewMessagesPayload(wabaID string, md Metadata, contact WebhookContact, msgs ...InboundMessage) WebhookPayload {
	contact.WaID = waID(contact.WaID)
	return wrap(wabaID, WebhookValue{
		MessagingProduct: MessagingProduct,
		Metadata:         md,
		Contacts:         []WebhookContact{contact},
		Messages:         msgs,
	})
}

// NewStatusPayload wraps status updates into the POST body for WABA wabaID.
func NewStatusPayload(wabaID string, md Metadata, statuses ...Status) WebhookPayload {
	return wrap(wabaID, WebhookValue{
		MessagingProduct: MessagingProduct,
		Metadata:         md,
		Statuses:         statuses,
	})
}

func wrap(wabaID string, v WebhookValue) WebhookPayload {
	return WebhookPayload{
		Object: ObjectWhatsAppBusinessAccount,
		Entry: []WebhookEntry{{
			ID:      wabaID,
			Changes: []WebhookChange{{Value: v, Field: FieldMessages}},
		}},
	}
}

func inbound(from, id string, at time.Time, typ string) InboundMessage {
	return InboundMessage{From: waID(from), ID: id, Timestamp: Timestamp(at), Type: typ}
}

// NewInboundText builds an inbound text message.
func NewInboundText(from, id string, at time.Time, body string) InboundMessage {
	m := inbound(from, id, at, MessageTypeText)
	m.Text = &InboundText{Body: body}
	return m
}

// NewInboundMedia builds an inbound image, video, audio, document or
// sticker message; kind is the message type.
func NewInboundMedia(from, id string, at time.Time, kind string, media InboundMedia) (InboundMessage, error) {
	m := inbound(from, id, at, kind)
	p := &media
	switch kind {
	case MessageTypeImage:
		m.Image = p
	case MessageTypeVideo:
		m.Video = p
	case MessageTypeAudio:
		m.Audio = p
	case MessageTypeDocument:
		m.Document = p
	case MessageTypeSticker:
		m.Sticker = p
	default:
		return InboundMessage{}, fmt.Errorf("cloudapi: inbound media of type %q: %w", kind, errNotMediaType)
	}
	return m, nil
}

// NewInboundReaction builds an inbound reaction to messageID; an empty emoji
// means the user removed their reaction.
func NewInboundReaction(from, id string, at time.Time, messageID, emoji string) InboundMessage {
	m := inbound(from, id, at, MessageTypeReaction)
	m.Reaction = &Reaction{MessageID: messageID, Emoji: emoji}
	return m
}

// NewInboundButtonReply builds the message sent when the user taps a reply
// button.
func NewInboundButtonReply(from, id string, at time.Time, reply Reply) InboundMessage {
	m := inbound(from, id, at, MessageTypeInteractive)
	m.Interactive = &InboundInteractive{Type: InteractiveButtonReply, ButtonReply: &reply}
	return m
}

// NewInboundListReply builds the message sent when the user picks a list
// row.
func NewInboundListReply(from, id string, at time.Time, reply ListReply) InboundMessage {
	m := inbound(from, id, at, MessageTypeInteractive)
	m.Interactive = &InboundInteractive{Type: InteractiveListReply, ListReply: &reply}
	return m
}

// NewInboundButton builds the message sent when the user taps a template
// quick-reply button.
func NewInboundButton(from, id string, at time.Time, payload, text string) InboundMessage {
	m := inbound(from, id, at, MessageTypeButton)
	m.Button = &InboundButton{Payload: payload, Text: text}
	return m
}

// WithContext marks m as a reply to (or a tap on) message id sent by from.
func (m InboundMessage) WithContext(from, id string) InboundMessage {
	m.Context = &InboundContext{From: waID(from), ID: id}
	return m
}

// NewStatus builds a sent, delivered or read status for message id.
func NewStatus(id, status string, at time.Time, recipient string) Status {
	return Status{ID: id, Status: status, Timestamp: Timestamp(at), RecipientID: waID(recipient)}
}

// NewFailedStatus builds a failed status carrying the error that stopped
// delivery.
func NewFailedStatus(id string, at time.Time, recipient string, cause *Error) Status {
	s := NewStatus(id, StatusFailed, at, recipient)
	if cause != nil {
		s.Errors = []WebhookError{WebhookErrorFrom(cause)}
	}
	return s
}
