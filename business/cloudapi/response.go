package cloudapi

import "strings"

// MessagingProduct is the only messaging_product value the Cloud API takes
// or sends.
const MessagingProduct = "whatsapp"

// message_status values in a send response. Meta only sets the field for
// some template sends; Tern leaves it empty unless it holds a message back.
const (
	MessageStatusAccepted                 = "accepted"
	MessageStatusHeldForQualityAssessment = "held_for_quality_assessment"
	MessageStatusPaused                   = "paused"
)

// SendResponse is the body answered to a successful send.
type SendResponse struct {
	MessagingProduct string            `json:"messaging_product"`
	Contacts         []ResponseContact `json:"contacts"`
	Messages         []ResponseMessage `json:"messages"`
}

// ResponseContact echoes the recipient as the client wrote it (Input) next
// to the WhatsApp ID it resolved to (WaID, digits without '+'). SDKs match
// the two to tell which recipient a response belongs to.
type ResponseContact struct {
	Input string `json:"input"`
	WaID  string `json:"wa_id"`
}

// ResponseMessage carries the new message ID.
type ResponseMessage struct {
	ID            string `json:"id"`
	MessageStatus string `json:"message_status,omitempty"`
}

// NewSendResponse builds the answer to req for the message stored as id.
func NewSendResponse(req SendRequest, id string) SendResponse {
	input := req.ToInput
	if input == "" {
		input = req.To
	}
	return SendResponse{
		MessagingProduct: MessagingProduct,
		Contacts:         []ResponseContact{{Input: input, WaID: req.WaID()}},
		Messages:         []ResponseMessage{{ID: id}},
	}
}

// SuccessResponse is {"success":true}, the answer to mark-as-read and to
// other Graph calls that have nothing else to say.
type SuccessResponse struct {
	Success bool `json:"success"`
}

// messageIDPrefix starts every WhatsApp message ID; SDKs and business code
// sometimes check for it.
const messageIDPrefix = "wamid."

// maxMessageIDLen bounds IsMessageID so an ID cannot be used to smuggle an
// arbitrarily long key into storage. Meta's own IDs are well under 100 bytes.
const maxMessageIDLen = 256

// NewMessageID returns a fresh message ID: "wamid." and 24 random bytes as
// URL-safe base64. The randomness makes IDs unguessable, so knowing one
// message's ID tells nothing about another's.
func NewMessageID() string { return messageIDPrefix + randomToken(24) }

// IsMessageID reports whether s has the shape of a WhatsApp message ID:
// "wamid." then base64 characters (standard or URL-safe, '=' padding
// allowed), as both Meta's IDs and NewMessageID's are.
func IsMessageID(s string) bool {
	rest, ok := strings.CutPrefix(s, messageIDPrefix)
	if !ok || rest == "" || len(s) > maxMessageIDLen {
		return false
	}
	for i := 0; i < len(rest); i++ {
		c := rest[i]
		switch {
		case c >= 'A' && c <= 'Z', c >= 'a' && c <= 'z', c >= '0' && c <= '9':
		case c == '-' || c == '_' || c == '+' || c == '/' || c == '=':
		default:
			return false
		}
	}
	return true
}
