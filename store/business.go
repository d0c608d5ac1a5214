package store

import (
	"context"
	"time"
)

// The business API's records (docs/architecture.md, "Business API"). A
// business is a Tern user like any other as far as chats go; what makes it
// one is this record beside the user, which the API's requests and
// webhooks are resolved through. Package business owns the rules (token
// secrets, sealing, the Cloud API's shapes); the store keeps records and
// answers lookups, and holds the uniqueness that must hold across nodes.

// Business is a Tern user that a company's systems speak for through the
// business API, in the shape of the WhatsApp Cloud API.
type Business struct {
	// UserID is the Tern user people chat with, and the record's key: a
	// user is a business at most once.
	UserID string
	// DeviceID is the business's one device, which never holds a socket:
	// its inbox is the webhook queue, so that the chat core delivers to a
	// business as to anyone.
	DeviceID string
	// PhoneNumberID is the Cloud API's phone_number_id, which every send
	// names in its URL: unique among businesses.
	PhoneNumberID string
	// WABAID is the WhatsApp Business Account id, which templates are
	// registered under: unique among businesses.
	WABAID string
	Name   string // display name
	// AppSecret signs the webhooks (X-Hub-Signature-256). Package server
	// seals it (internal/seal) when the node has a master key, so that a
	// copy of the store cannot forge them.
	AppSecret  []byte
	WebhookURL string
	// VerifyToken is sent in the webhook's verification request, for the
	// business's endpoint to check that the request is Tern's.
	VerifyToken string
	// WebhookVerifiedAt is when WebhookURL last passed the verification
	// handshake; the zero time: it has not been verified.
	WebhookVerifiedAt time.Time
	// WindowRule enforces the 24-hour customer-service window: free-form
	// messages only to customers who wrote within the last 24 hours.
	WindowRule bool
	// RatePerSecond caps the messages per second this number may send,
	// shared among the live nodes.
	RatePerSecond int
	CreatedAt     time.Time
}

// BusinessToken is an API token of a business. ID is the token's public
// part, by which a request finds it; Hash is a digest of its secret part,
// never the secret: a copy of the store does not speak for a business.
type BusinessToken struct {
	ID        string
	UserID    string // the business's
	Name      string
	Hash      []byte
	CreatedAt time.Time
}

// Template is a registered message template (the Cloud API's
// message_templates): what a business may send outside the 24-hour
// window. Components is its JSON as registered; the store does not
// interpret it.
type Template struct {
	UserID     string // the business's
	Name       string
	Language   string // e.g. "en_US": one template has a version per language
	Category   string
	Status     string
	Components []byte
	CreatedAt  time.Time
}

// Businesses keeps the business API's records: the businesses, their API
// tokens, their customers' service windows, their templates and the
// callback data of the messages they send.
type Businesses interface {
	// CreateBusiness stores b. A taken b.UserID, b.PhoneNumberID or
	// b.WABAID is ErrConflict, also between concurrent calls on any
	// nodes: requests are routed by those ids, so two businesses must
	// never share one.
	CreateBusiness(ctx context.Context, b Business) error
	// Business returns userID's record; ErrNotFound if userID is no
	// business (the answer for most users).
	Business(ctx context.Context, userID string) (Business, error)
	// BusinessByPhoneNumberID resolves the phone_number_id of a request's
	// URL; ErrNotFound if no business has it.
	BusinessByPhoneNumberID(ctx context.Context, id string) (Business, error)
	// BusinessByWABA resolves a WABA id (template requests); ErrNotFound
	// if no business has it.
	BusinessByWABA(ctx context.Context, id string) (Business, error)
	// UpdateBusiness replaces b.UserID's record (ErrNotFound if there is
	// none). The ids and CreatedAt are kept as stored, whatever b says:
	// requests and the webhook queue are routed by the ids, which must
	// not move under them, and the unique indexes then never change after
	// CreateBusiness.
	UpdateBusiness(ctx context.Context, b Business) error
	// ListBusinesses lists up to limit businesses (limit below 1: 50) with
	// user ids above after ("" for the first), ordered by user id: pages
	// for the admin dashboard and the CLI.
	ListBusinesses(ctx context.Context, after string, limit int) ([]Business, error)

	// PutBusinessToken stores t, replacing a token of the same id.
	PutBusinessToken(ctx context.Context, t BusinessToken) error
	// BusinessToken returns the token id; ErrNotFound if there is none
	// (never issued, or revoked).
	BusinessToken(ctx context.Context, id string) (BusinessToken, error)
	// BusinessTokens lists a business's tokens, oldest first.
	BusinessTokens(ctx context.Context, userID string) ([]BusinessToken, error)
	// DeleteBusinessToken revokes a token; no token is not an error, so
	// that a revocation can be repeated.
	DeleteBusinessToken(ctx context.Context, id string) error

	// RaiseWindow records that customerID wrote to the business at ts
	// (unix ms, above 0): the stored time becomes the larger of it and ts.
	// Windows are raised from more than one place (the webhook queue's
	// reader, the customer's send path) in any order, so a late, lower ts
	// must change nothing.
	RaiseWindow(ctx context.Context, businessID, customerID string, ts int64) error
	// Window returns the last time RaiseWindow recorded for the pair, 0
	// if none: the customer never wrote, so the window is closed.
	Window(ctx context.Context, businessID, customerID string) (int64, error)

	// PutTemplate stores t, replacing the template of the same (UserID,
	// Name, Language): registering a language again updates it.
	PutTemplate(ctx context.Context, t Template) error
	// Template returns one language of a template; ErrNotFound if the
	// business has none of that name and language.
	Template(ctx context.Context, userID, name, language string) (Template, error)
	// Templates lists a business's templates ordered by name, then
	// language.
	Templates(ctx context.Context, userID string) ([]Template, error)
	// DeleteTemplate deletes the template name in every language, as the
	// Cloud API's delete by name does; none is not an error.
	DeleteTemplate(ctx context.Context, userID, name string) error

	// PutCallbackData keeps data, the biz_opaque_callback_data a business
	// attached to message msgID it sent (the Cloud API caps it at 512
	// characters), replacing any: the API returns it in every status
	// webhook of the message, which is made long after the send, by
	// whichever node sees the status change. at is when the message was
	// sent, which PruneCallbackData goes by. msgID may be any non-empty
	// string (a Cloud API id holds '/').
	PutCallbackData(ctx context.Context, businessID, msgID, data string, at time.Time) error
	// CallbackData returns what PutCallbackData kept for the business's
	// message; ErrNotFound if nothing (most messages carry none).
	CallbackData(ctx context.Context, businessID, msgID string) (string, error)
	// PruneCallbackData deletes up to limit records put with at before
	// before, oldest first, and returns how many it deleted (limit below
	// 1: none). Statuses stop coming once a message is read or old, and
	// without pruning the records would grow with every message a
	// business ever sent; fewer than limit means none older is left, as
	// far as a concurrent prune on another node lets it say.
	PruneCallbackData(ctx context.Context, before time.Time, limit int) (int, error)
}
