package cloudapi

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
)

// Message types. The same names are used in send requests and in inbound
// webhook messages.
const (
	MessageTypeText        = "text"
	MessageTypeImage       = "image"
	MessageTypeVideo       = "video"
	MessageTypeAudio       = "audio"
	MessageTypeDocument    = "document"
	MessageTypeSticker     = "sticker"
	MessageTypeReaction    = "reaction"
	MessageTypeInteractive = "interactive"
	MessageTypeTemplate    = "template"
	// MessageTypeButton only occurs inbound: a tap on a template's
	// quick-reply button.
	MessageTypeButton = "button"
)

// Interactive message types: button and list are sent; button_reply and
// list_reply come back in webhooks when the user taps.
const (
	InteractiveButton      = "button"
	InteractiveList        = "list"
	InteractiveButtonReply = "button_reply"
	InteractiveListReply   = "list_reply"
)

// RecipientIndividual is the only recipient_type Tern takes.
const RecipientIndividual = "individual"

// Limits the Cloud API enforces on send requests. Lengths count Unicode code
// points.
const (
	MaxTextBody            = 4096
	MaxCaption             = 1024
	MaxInteractiveBody     = 1024
	MaxInteractiveHeader   = 60
	MaxInteractiveFooter   = 60
	MinReplyButtons        = 1
	MaxReplyButtons        = 3
	MaxReplyButtonTitle    = 20
	MaxReplyButtonID       = 256
	MaxListButton          = 20
	MaxListSections        = 10
	MaxListRows            = 10
	MaxListSectionTitle    = 24
	MaxListRowTitle        = 24
	MaxListRowDescription  = 72
	MaxListRowID           = 200
	MaxBizOpaqueData       = 512
	MaxTemplateName        = 512
	MaxTemplateButtonIndex = 9
)

// SendRequest is the body of POST /{version}/{phone_number_id}/messages for a
// message send. After DecodeMessagesBody it is canonical: To is "+digits",
// RecipientType is "individual", Type is set, and only the content object
// matching Type is non-nil.
type SendRequest struct {
	MessagingProduct      string       `json:"messaging_product"`
	RecipientType         string       `json:"recipient_type,omitempty"`
	To                    string       `json:"to"`
	Type                  string       `json:"type,omitempty"`
	Context               *Context     `json:"context,omitempty"`
	Text                  *Text        `json:"text,omitempty"`
	Image                 *Media       `json:"image,omitempty"`
	Video                 *Media       `json:"video,omitempty"`
	Audio                 *Media       `json:"audio,omitempty"`
	Document              *Media       `json:"document,omitempty"`
	Sticker               *Media       `json:"sticker,omitempty"`
	Reaction              *Reaction    `json:"reaction,omitempty"`
	Interactive           *Interactive `json:"interactive,omitempty"`
	Template              *Template    `json:"template,omitempty"`
	BizOpaqueCallbackData string       `json:"biz_opaque_callback_data,omitempty"`

	// ToInput is "to" exactly as the client sent it. The send response
	// echoes it in contacts[].input, which SDKs use to pair responses with
	// recipients.
	ToInput string `json:"-"`
}

// WaID is the recipient's WhatsApp ID: To without the '+'.
func (r SendRequest) WaID() string { return strings.TrimPrefix(r.To, "+") }

// Context makes the message a reply to MessageID.
type Context struct {
	MessageID string `json:"message_id"`
}

// Text is a text message body.
type Text struct {
	Body       string `json:"body"`
	PreviewURL bool   `json:"preview_url,omitempty"`
}

// Media is an image, video, audio, document or sticker to send: exactly one
// of ID (uploaded media) or Link (hosted media).
type Media struct {
	ID       string `json:"id,omitempty"`
	Link     string `json:"link,omitempty"`
	Caption  string `json:"caption,omitempty"`
	Filename string `json:"filename,omitempty"`
}

// Reaction puts Emoji on MessageID; an empty Emoji removes the reaction, so
// the field is always written.
type Reaction struct {
	MessageID string `json:"message_id"`
	Emoji     string `json:"emoji"`
}

// Interactive is a reply-buttons or list message.
type Interactive struct {
	Type   string             `json:"type"`
	Header *InteractiveHeader `json:"header,omitempty"`
	Body   InteractiveText    `json:"body"`
	Footer *InteractiveText   `json:"footer,omitempty"`
	Action InteractiveAction  `json:"action"`
}

// InteractiveHeader is an interactive message's header. Tern only takes
// text headers.
type InteractiveHeader struct {
	Type string `json:"type"`
	Text string `json:"text,omitempty"`
}

// InteractiveText is the body or footer of an interactive message.
type InteractiveText struct {
	Text string `json:"text"`
}

// InteractiveAction holds Buttons for a button message, or Button (the label
// of the button that opens the list) and Sections for a list message.
type InteractiveAction struct {
	Button   string        `json:"button,omitempty"`
	Buttons  []ReplyButton `json:"buttons,omitempty"`
	Sections []Section     `json:"sections,omitempty"`
}

// ReplyButton is one quick-reply button.
type ReplyButton struct {
	Type  string `json:"type"`
	Reply Reply  `json:"reply"`
}

// Reply is a reply button's ID and label. The same shape comes back in a
// button_reply webhook.
type Reply struct {
	ID    string `json:"id"`
	Title string `json:"title"`
}

// Section is one titled group of list rows.
type Section struct {
	Title string `json:"title,omitempty"`
	Rows  []Row  `json:"rows"`
}

// Row is one selectable list entry.
type Row struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// Template is a template message: the approved template Name in
// Language.Code, with Components filling its placeholders.
type Template struct {
	Name       string      `json:"name"`
	Language   Language    `json:"language"`
	Components []Component `json:"components,omitempty"`
}

// Language selects the template translation.
type Language struct {
	Code string `json:"code"`
}

// Component fills one part of a template. SubType and Index only apply to
// buttons.
type Component struct {
	Type       string       `json:"type"`
	SubType    string       `json:"sub_type,omitempty"`
	Index      *ButtonIndex `json:"index,omitempty"`
	Parameters []Parameter  `json:"parameters"`
}

// Template component types and button sub-types.
const (
	ComponentHeader   = "header"
	ComponentBody     = "body"
	ComponentButton   = "button"
	ButtonQuickReply  = "quick_reply"
	ButtonURL         = "url"
	ParameterText     = "text"
	ParameterPayload  = "payload"
	ParameterImage    = "image"
	ParameterVideo    = "video"
	ParameterDocument = "document"
)

// ButtonIndex is a template button's position. Meta documents it as a
// string ("0") but SDKs send both strings and numbers, so both are read; it
// is written as a string.
type ButtonIndex int

// MarshalJSON writes the index as a decimal string.
func (i ButtonIndex) MarshalJSON() ([]byte, error) {
	return []byte(`"` + strconv.Itoa(int(i)) + `"`), nil
}

// UnmarshalJSON reads a JSON number or a string holding a decimal integer.
func (i *ButtonIndex) UnmarshalJSON(b []byte) error {
	s := string(b)
	if len(b) > 0 && b[0] == '"' {
		if err := json.Unmarshal(b, &s); err != nil {
			return fmt.Errorf("button index: %w", err)
		}
	}
	n, err := strconv.Atoi(s)
	if err != nil {
		return fmt.Errorf("button index %q: %w", s, err)
	}
	*i = ButtonIndex(n)
	return nil
}

// Parameter is one template parameter. Only the field named by Type is used.
type Parameter struct {
	Type     string `json:"type"`
	Text     string `json:"text,omitempty"`
	Payload  string `json:"payload,omitempty"`
	Image    *Media `json:"image,omitempty"`
	Video    *Media `json:"video,omitempty"`
	Document *Media `json:"document,omitempty"`
}

// ReadRequest is the other body the messages endpoint takes: mark an inbound
// message (and those before it) as read, optionally showing a typing
// indicator.
type ReadRequest struct {
	MessagingProduct string           `json:"messaging_product"`
	Status           string           `json:"status"`
	MessageID        string           `json:"message_id"`
	TypingIndicator  *TypingIndicator `json:"typing_indicator,omitempty"`
}

// TypingIndicator asks for the typing bubble; "text" is the only type.
type TypingIndicator struct {
	Type string `json:"type"`
}

// StatusRead is the status value of a mark-as-read request and of a read
// receipt webhook.
const StatusRead = "read"
