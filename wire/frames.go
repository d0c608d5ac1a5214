package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"regexp"
	"strconv"
	"unicode/utf8"
)

// Frame types, client to server.
const (
	TypeSend        = "send"
	TypeAck         = "ack"
	TypeRead        = "read"
	TypeTyping      = "typing"
	TypePresenceSub = "presence_sub"
	TypePing        = "ping"
)

// Frame types, server to client. Frames that carry a cursor are inbox events:
// the server replays them until the device acks them.
const (
	TypeSent     = "sent"
	TypeMessage  = "message"
	TypeReceipt  = "receipt"
	TypePresence = "presence"
	TypeGroup    = "group"
	TypeError    = "error"
	TypePong     = "pong"
)

// Receipt statuses.
const (
	StatusDelivered = "delivered"
	StatusRead      = "read"
)

// Typing states.
const (
	TypingStarted = "typing"
	TypingPaused  = "paused"
)

// Limits the decoder enforces on its own; the server enforces the
// configurable ones (frame size, text length) before and after decoding.
const (
	MaxIDLen      = 128
	MaxPresenceIn = 256
)

// Body is the content of a message: text, or a media reference with an
// optional caption. End-to-end encrypted bodies will add fields here.
type Body struct {
	Text    string `json:"text,omitempty"`
	MediaID string `json:"media_id,omitempty"`
	Caption string `json:"caption,omitempty"`
	// The file's description, which the server fills in from its upload
	// (a client's values are replaced): type, size, hash, dimensions and
	// a small JPEG thumbnail (base64 in JSON).
	MIMEType  string `json:"mime_type,omitempty"`
	Size      int64  `json:"size,omitempty"`
	SHA256    string `json:"sha256,omitempty"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Thumbnail []byte `json:"thumbnail,omitempty"`
	// Forwarded marks a message the sender forwarded from another chat.
	Forwarded bool `json:"forwarded,omitempty"`
	// Card is what a business's message (the business API's interactive
	// and template messages) shows besides its text: a header, a footer,
	// and choices to tap. Only businesses send cards.
	Card *Card `json:"card,omitempty"`
	// Choice is the id of the card choice a reply (reply_to the card's
	// message) taps; the server sets the text to the choice's title.
	Choice string `json:"choice,omitempty"`
	// Group is set only on the chat-log entries of group changes, which
	// the server writes; a client's send may not carry it.
	Group *GroupNote `json:"group,omitempty"`
	// A message action names itself and nothing else (see Action).
	Reaction *ReactionAction `json:"reaction,omitempty"`
	Edit     *EditAction     `json:"edit,omitempty"`
	Delete   *DeleteAction   `json:"delete,omitempty"`
	// Disappearing is set on the entry of a chat's timer change (the
	// server writes it, from PATCH /v1/chats/{chat_id}).
	Disappearing *int64 `json:"disappearing,omitempty"`
	// Deleted marks a message deleted for everyone (and an edit entry
	// whose text went with it); Expired a disappearing message after its
	// time. The server writes both.
	Deleted bool `json:"deleted,omitempty"`
	Expired bool `json:"expired,omitempty"`
}

// MaxChoiceBytes bounds a choice's id: the business API takes ids and
// payloads of up to 1,000 characters, in UTF-8 up to 4,000 bytes.
const MaxChoiceBytes = 4096

// Card is a business message's header, footer and choices: reply
// buttons (up to 3) or a list (a button that opens sections of rows).
// Template names the business's template that made the message, if one
// did.
type Card struct {
	Header   string      `json:"header,omitempty"`
	Footer   string      `json:"footer,omitempty"`
	Buttons  []Choice    `json:"buttons,omitempty"`
	List     *ChoiceList `json:"list,omitempty"`
	Template string      `json:"template,omitempty"`
}

// Choice is a reply button or a list row: the reader taps it to answer.
type Choice struct {
	ID          string `json:"id"`
	Title       string `json:"title"`
	Description string `json:"description,omitempty"`
}

// ChoiceList is a list: Button opens it.
type ChoiceList struct {
	Button   string          `json:"button"`
	Sections []ChoiceSection `json:"sections"`
}

// ChoiceSection is a titled group of a list's rows.
type ChoiceSection struct {
	Title string   `json:"title,omitempty"`
	Rows  []Choice `json:"rows"`
}

// Find returns the choice of id on c.
func (c *Card) Find(id string) (Choice, bool) {
	if c == nil {
		return Choice{}, false
	}
	for _, b := range c.Buttons {
		if b.ID == id {
			return b, true
		}
	}
	if c.List != nil {
		for _, s := range c.List.Sections {
			for _, r := range s.Rows {
				if r.ID == id {
					return r, true
				}
			}
		}
	}
	return Choice{}, false
}

// ReactionAction reacts to MsgID; Emoji "" takes the reaction back.
type ReactionAction struct {
	MsgID string `json:"msg_id"`
	Emoji string `json:"emoji"`
}

// EditAction replaces MsgID's text.
type EditAction struct {
	MsgID string `json:"msg_id"`
	Text  string `json:"text,omitempty"`
}

// DeleteAction deletes MsgID for everyone.
type DeleteAction struct {
	MsgID string `json:"msg_id"`
}

// Action returns the name of the action b is ("" for a message).
func (b *Body) Action() string {
	switch {
	case b.Reaction != nil:
		return "reaction"
	case b.Edit != nil:
		return "edit"
	case b.Delete != nil:
		return "delete"
	case b.Disappearing != nil:
		return "disappearing"
	}
	return ""
}

// MaxEmojiBytes bounds a reaction's emoji (one emoji, however many code
// points its sequence takes).
const MaxEmojiBytes = 64

// ClientFrame is any frame a client sends. It is one flat struct so that a
// frame decodes in a single pass; Type says which fields are meaningful.
type ClientFrame struct {
	Type    string   `json:"type"`
	ID      string   `json:"id,omitempty"`
	To      string   `json:"to,omitempty"`
	Body    *Body    `json:"body,omitempty"`
	ReplyTo string   `json:"reply_to,omitempty"`
	Cursor  int64    `json:"cursor,omitempty"`
	ChatID  string   `json:"chat_id,omitempty"`
	Seq     int64    `json:"seq,omitempty"`
	State   string   `json:"state,omitempty"`
	UserIDs []string `json:"user_ids,omitempty"`
}

// DecodeClientFrame parses and validates one client frame. Errors are *Error
// with code bad_request or unknown_type; the id of the frame, when it could be
// read, is returned along with the error so the answer can name it.
func DecodeClientFrame(data []byte) (ClientFrame, error) {
	var f ClientFrame
	data = bytes.TrimSpace(data)
	if c, ok := fastAck(data); ok {
		return ClientFrame{Type: TypeAck, Cursor: c}, nil
	}
	if !utf8.Valid(data) {
		return f, ErrInvalidUTF8
	}
	if len(data) == 0 || data[0] != '{' {
		return f, Errorf(CodeBadRequest, "frame must be a JSON object")
	}
	if e := checkText(data); e != nil {
		return ClientFrame{ID: PeekID(data)}, e
	}
	if err := json.Unmarshal(data, &f); err != nil {
		// Salvage the id so the error frame can point at the request.
		var probe struct {
			ID any `json:"id"`
		}
		if json.Unmarshal(data, &probe) == nil {
			if s, ok := probe.ID.(string); ok && len(s) <= MaxIDLen {
				f.ID = s
			}
		}
		return ClientFrame{ID: f.ID}, Errorf(CodeBadRequest, "malformed frame: %s", jsonProblem(err))
	}
	if err := f.Validate(); err != nil {
		return f, err
	}
	return f, nil
}

// ackPrefix is how every ack the Go SDK writes begins. Acks are the most
// frequent client frame (two per message), so that exact form skips
// encoding/json; any other spelling takes the general path.
const ackPrefix = `{"type":"ack","cursor":`

func fastAck(data []byte) (int64, bool) {
	if len(data) < len(ackPrefix)+2 || len(data) > len(ackPrefix)+20 ||
		string(data[:len(ackPrefix)]) != ackPrefix || data[len(data)-1] != '}' {
		return 0, false
	}
	digits := data[len(ackPrefix) : len(data)-1]
	if len(digits) == 0 || len(digits) > 18 || digits[0] == '0' {
		return 0, false
	}
	var n int64
	for _, d := range digits {
		if d < '0' || d > '9' {
			return 0, false
		}
		n = n*10 + int64(d-'0')
	}
	return n, true
}

// Validate checks that the frame has what its type requires.
func (f *ClientFrame) Validate() error {
	if len(f.ID) > MaxIDLen {
		return Errorf(CodeBadRequest, "id longer than %d bytes", MaxIDLen)
	}
	switch f.Type {
	case TypeSend:
		if f.ID == "" {
			return Errorf(CodeBadRequest, "send needs an id (the client message id)")
		}
		if f.To == "" || len(f.To) > MaxIDLen {
			return Errorf(CodeBadRequest, "send needs a to (user or group id)")
		}
		if len(f.ReplyTo) > MaxIDLen {
			return Errorf(CodeBadRequest, "reply_to too long")
		}
		return f.Body.Validate()
	case TypeAck:
		if f.Cursor <= 0 {
			return Errorf(CodeBadRequest, "ack needs a positive cursor")
		}
	case TypeRead:
		if f.ChatID == "" || len(f.ChatID) > MaxIDLen {
			return Errorf(CodeBadRequest, "read needs a chat_id")
		}
		if f.Seq <= 0 {
			return Errorf(CodeBadRequest, "read needs a positive seq")
		}
	case TypeTyping:
		if f.ChatID == "" || len(f.ChatID) > MaxIDLen {
			return Errorf(CodeBadRequest, "typing needs a chat_id")
		}
		if f.State != TypingStarted && f.State != TypingPaused {
			return Errorf(CodeBadRequest, "typing state must be %q or %q", TypingStarted, TypingPaused)
		}
	case TypePresenceSub:
		if len(f.UserIDs) > MaxPresenceIn {
			return Errorf(CodeTooLarge, "presence_sub takes at most %d user ids", MaxPresenceIn)
		}
	case TypePing:
	case "":
		return Errorf(CodeBadRequest, "frame has no type")
	default:
		return Errorf(CodeUnknownType, "unknown frame type %q", truncate(f.Type, 32))
	}
	return nil
}

// Validate checks a message body: text, or media with an optional caption,
// valid UTF-8 throughout.
func (b *Body) Validate() error {
	if b == nil {
		return Errorf(CodeBadRequest, "send needs a body")
	}
	if b.Group != nil {
		return Errorf(CodeBadRequest, "body.group is written by the server; use the /v1/groups API")
	}
	if b.Deleted || b.Expired {
		return Errorf(CodeBadRequest, "body.deleted and body.expired are written by the server")
	}
	if b.Disappearing != nil {
		return Errorf(CodeBadRequest, "body.disappearing is written by the server; use PATCH /v1/chats/{chat_id}")
	}
	if n := b.actions(); n > 0 {
		if b.Card != nil || b.Choice != "" {
			return Errorf(CodeBadRequest, "a message action's body holds that action and nothing else")
		}
		return b.validateAction(n)
	}
	if b.Choice != "" && (b.MediaID != "" || b.Card != nil || len(b.Choice) > MaxChoiceBytes) {
		return Errorf(CodeBadRequest, "a choice is a reply with the choice's id and no media or card")
	}
	if b.Text == "" && b.MediaID == "" && b.Choice == "" {
		return Errorf(CodeBadRequest, "body needs text or media_id")
	}
	if b.Text != "" && b.MediaID != "" {
		return Errorf(CodeBadRequest, "body has text and media_id; put the text in caption")
	}
	if b.Caption != "" && b.MediaID == "" {
		return Errorf(CodeBadRequest, "caption needs a media_id")
	}
	if b.MediaID == "" && b.describesFile() {
		return Errorf(CodeBadRequest, "mime_type, size, sha256, width, height and thumbnail describe a media_id's file")
	}
	if e := CheckText("text", b.Text); e != nil {
		return e
	}
	if e := CheckText("caption", b.Caption); e != nil {
		return e
	}
	if len(b.MediaID) > MaxIDLen {
		return Errorf(CodeBadRequest, "media_id too long")
	}
	return nil
}

// Len is the size of the user-visible content, used for the message size limit.
func (b *Body) Len() int {
	n := len(b.Text) + len(b.Caption)
	if c := b.Card; c != nil {
		n += len(c.Header) + len(c.Footer)
		for _, ch := range c.Buttons {
			n += len(ch.ID) + len(ch.Title)
		}
		if c.List != nil {
			n += len(c.List.Button)
			for _, s := range c.List.Sections {
				n += len(s.Title)
				for _, r := range s.Rows {
					n += len(r.ID) + len(r.Title) + len(r.Description)
				}
			}
		}
	}
	if b.Edit != nil {
		n += len(b.Edit.Text)
	}
	return n
}

// describesFile reports whether b has any of the fields the server fills
// in from a media_id's file.
func (b *Body) describesFile() bool {
	return b.MIMEType != "" || b.Size != 0 || b.SHA256 != "" || b.Width != 0 || b.Height != 0 || b.Thumbnail != nil
}

func (b *Body) actions() int {
	n := 0
	for _, set := range []bool{b.Reaction != nil, b.Edit != nil, b.Delete != nil} {
		if set {
			n++
		}
	}
	return n
}

// validateAction checks the body of a message action: one action and
// nothing else.
func (b *Body) validateAction(n int) error {
	if n > 1 || b.Text != "" || b.MediaID != "" || b.Caption != "" || b.Forwarded || b.describesFile() {
		return Errorf(CodeBadRequest, "a message action's body holds that action and nothing else")
	}
	var target string
	switch {
	case b.Reaction != nil:
		target = b.Reaction.MsgID
		if len(b.Reaction.Emoji) > MaxEmojiBytes {
			return Errorf(CodeBadRequest, "reaction emoji longer than %d bytes", MaxEmojiBytes)
		}
		if b.Reaction.Emoji != "" {
			if e := CheckText("reaction emoji", b.Reaction.Emoji); e != nil {
				return e
			}
		}
	case b.Edit != nil:
		target = b.Edit.MsgID
		if b.Edit.Text == "" {
			return Errorf(CodeBadRequest, "edit needs text (delete the message instead)")
		}
		if e := CheckText("edit text", b.Edit.Text); e != nil {
			return e
		}
	case b.Delete != nil:
		target = b.Delete.MsgID
	}
	if target == "" || len(target) > MaxIDLen {
		return Errorf(CodeBadRequest, "%s needs a msg_id", b.Action())
	}
	return nil
}

func jsonProblem(err error) string {
	switch e := err.(type) {
	case *json.SyntaxError:
		return "invalid JSON"
	case *json.UnmarshalTypeError:
		if e.Field != "" {
			return "field " + strconv.Quote(truncate(e.Field, 32)) + " must be " + jsonKind(e.Type)
		}
		return "the body must be " + jsonKind(e.Type)
	default:
		return "invalid JSON"
	}
}

func truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n-- // never cut a character in two
	}
	return s[:n] + "…"
}

// jsonKind names the JSON a Go type decodes from, for error messages.
func jsonKind(t reflect.Type) string {
	if t == nil {
		return "of another type"
	}
	for t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	switch t.Kind() {
	case reflect.String:
		return "a string"
	case reflect.Bool:
		return "true or false"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "an integer"
	case reflect.Float32, reflect.Float64:
		return "a number"
	case reflect.Slice, reflect.Array:
		return "an array"
	case reflect.Struct, reflect.Map:
		return "an object"
	}
	return "of another type"
}

// Message is a chat message as the message frame and the history API show it.
// Type and Cursor are set only on the frame.
type Message struct {
	Type       string `json:"type,omitempty"`
	Cursor     int64  `json:"cursor,omitempty"`
	MsgID      string `json:"msg_id"`
	ChatID     string `json:"chat_id"`
	Seq        int64  `json:"seq"`
	From       string `json:"from"`
	FromDevice string `json:"from_device"`
	TS         int64  `json:"ts"`
	Body       Body   `json:"body"`
	ReplyTo    string `json:"reply_to,omitempty"`
	// The state message actions left on it, and when it disappears.
	EditedTS  int64             `json:"edited_ts,omitempty"`
	Reactions []ReactionSummary `json:"reactions,omitempty"`
	ExpiresTS int64             `json:"expires_ts,omitempty"`
}

// ReactionSummary is who reacted to a message with one emoji.
type ReactionSummary struct {
	Emoji   string   `json:"emoji"`
	UserIDs []string `json:"user_ids"`
}

// Sent answers a send: the message is durable.
type Sent struct {
	Type   string `json:"type"`
	ID     string `json:"id"`
	MsgID  string `json:"msg_id"`
	ChatID string `json:"chat_id"`
	Seq    int64  `json:"seq"`
	TS     int64  `json:"ts"`
}

// Receipt tells a message's author that it was delivered to or read by By.
// In a large group, the receipts of several members for the same messages
// that come together are one event: By is the first of them and UserIDs
// lists them all (By included).
type Receipt struct {
	Type    string   `json:"type"`
	Cursor  int64    `json:"cursor"`
	ChatID  string   `json:"chat_id"`
	MsgIDs  []string `json:"msg_ids"`
	Status  string   `json:"status"`
	By      string   `json:"by"`
	UserIDs []string `json:"user_ids,omitempty"`
	TS      int64    `json:"ts"`
}

// Typing relays a chat member's typing state. It is not stored.
type Typing struct {
	Type   string `json:"type"`
	ChatID string `json:"chat_id"`
	From   string `json:"from"`
	State  string `json:"state"`
}

// Presence tells whether a user is online and when it was last seen.
type Presence struct {
	Type   string `json:"type"`
	UserID string `json:"user_id"`
	Online bool   `json:"online"`
	// LastSeen is RFC 3339 UTC, or null where privacy hides it (or the
	// user never connected).
	LastSeen *string `json:"last_seen"`
}

// ErrorFrame answers a frame that failed. ID names that frame when it had one.
type ErrorFrame struct {
	Type       string `json:"type"`
	ID         string `json:"id,omitempty"`
	Code       string `json:"code"`
	Message    string `json:"message"`
	RetryAfter int    `json:"retry_after,omitempty"`
}

// Pong answers ping, echoing its id.
type Pong struct {
	Type string `json:"type"`
	ID   string `json:"id,omitempty"`
}

// ServerFrame is any frame a server sends, decoded in one pass by clients.
type ServerFrame struct {
	Type       string            `json:"type"`
	Cursor     int64             `json:"cursor,omitempty"`
	ID         string            `json:"id,omitempty"`
	MsgID      string            `json:"msg_id,omitempty"`
	ChatID     string            `json:"chat_id,omitempty"`
	Seq        int64             `json:"seq,omitempty"`
	From       string            `json:"from,omitempty"`
	FromDevice string            `json:"from_device,omitempty"`
	TS         int64             `json:"ts,omitempty"`
	Body       *Body             `json:"body,omitempty"`
	ReplyTo    string            `json:"reply_to,omitempty"`
	EditedTS   int64             `json:"edited_ts,omitempty"`
	Reactions  []ReactionSummary `json:"reactions,omitempty"`
	ExpiresTS  int64             `json:"expires_ts,omitempty"`
	MsgIDs     []string          `json:"msg_ids,omitempty"`
	Status     string            `json:"status,omitempty"`
	By         string            `json:"by,omitempty"`
	State      string            `json:"state,omitempty"`
	UserID     string            `json:"user_id,omitempty"`
	Online     bool              `json:"online,omitempty"`
	LastSeen   *string           `json:"last_seen,omitempty"`
	Change     string            `json:"change,omitempty"`
	UserIDs    []string          `json:"user_ids,omitempty"`
	Group      *Group            `json:"group,omitempty"`
	Code       string            `json:"code,omitempty"`
	Message    string            `json:"message,omitempty"`
	RetryAfter int               `json:"retry_after,omitempty"`
}

// DecodeServerFrame parses one server frame (used by clients).
func DecodeServerFrame(data []byte) (ServerFrame, error) {
	var f ServerFrame
	if fastServerFrame(data, &f) {
		if f.Type == "" {
			return f, Errorf(CodeBadRequest, "server frame has no type")
		}
		return f, nil
	}
	f = ServerFrame{} // the fast path may have written part of it
	if err := json.Unmarshal(data, &f); err != nil {
		return f, Errorf(CodeBadRequest, "malformed server frame: %s", jsonProblem(err))
	}
	if f.Type == "" {
		return f, Errorf(CodeBadRequest, "server frame has no type")
	}
	return f, nil
}

// AsMessage returns the message carried by a message frame.
func (f *ServerFrame) AsMessage() Message {
	m := Message{MsgID: f.MsgID, ChatID: f.ChatID, Seq: f.Seq, From: f.From,
		FromDevice: f.FromDevice, TS: f.TS, ReplyTo: f.ReplyTo, Cursor: f.Cursor, Type: f.Type,
		EditedTS: f.EditedTS, Reactions: f.Reactions, ExpiresTS: f.ExpiresTS}
	if f.Body != nil {
		m.Body = *f.Body
	}
	return m
}

// WebSocket close codes the server uses. 1001 asks the client to reconnect
// (to another node); the 44xx codes tell it not to retry with the same
// credentials.
const (
	CloseGoingAway    = 1001 // server shutting down or draining: reconnect
	CloseTooLarge     = 1009 // frame over the size limit
	CloseUnauthorized = 4401 // device revoked or token no longer valid
	CloseReplaced     = 4409 // the same device connected again elsewhere
	CloseSlowConsumer = 4429 // client did not read fast enough
)

var idField = regexp.MustCompile(`"id"\s*:\s*"([^"\\]{1,128})"`)

// PeekID finds the id of a frame that is too large to decode (only its
// first bytes were kept), so that the too_large answer can name it. A best
// effort: it returns "" when no id is found early in the frame.
func PeekID(prefix []byte) string {
	m := idField.FindSubmatch(prefix)
	if m == nil {
		return ""
	}
	return string(m[1])
}
