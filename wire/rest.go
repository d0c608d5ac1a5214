package wire

// REST bodies of /v1. Times in these bodies are RFC 3339 UTC strings, except
// inside message objects, which use unix milliseconds like the frames.

// CodeRequest asks for a verification code by SMS.
type CodeRequest struct {
	Phone string `json:"phone"`
}

// CodeResponse says how long the code lives and when another may be asked for.
type CodeResponse struct {
	ExpiresIn  int `json:"expires_in"`
	RetryAfter int `json:"retry_after"`
}

// VerifyRequest trades a code for a new device session.
type VerifyRequest struct {
	Phone      string `json:"phone"`
	Code       string `json:"code"`
	DeviceName string `json:"device_name"`
	Platform   string `json:"platform"`
}

// Session is what verify and refresh answer.
type Session struct {
	UserID       string `json:"user_id"`
	DeviceID     string `json:"device_id"`
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	ExpiresIn    int    `json:"expires_in"`
}

// RefreshRequest rotates a refresh token.
type RefreshRequest struct {
	RefreshToken string `json:"refresh_token"`
}

// Me is the signed-in user's own profile.
type Me struct {
	UserID       string `json:"user_id"`
	Phone        string `json:"phone"`
	Name         string `json:"name"`
	About        string `json:"about"`
	ReadReceipts bool   `json:"read_receipts"`
	// Email is the verified email address; absent for none.
	Email     string `json:"email,omitempty"`
	CreatedAt string `json:"created_at"`
}

// EmailRequest adds an email address: first without a code (one is
// mailed to it), then again with the code.
type EmailRequest struct {
	Email string `json:"email"`
	Code  string `json:"code,omitempty"`
}

// MePatch changes profile fields; absent fields stay as they are.
type MePatch struct {
	Name         *string `json:"name,omitempty"`
	About        *string `json:"about,omitempty"`
	ReadReceipts *bool   `json:"read_receipts,omitempty"`
}

// Privacy is the answer of GET /v1/me/privacy: who sees the user's last
// seen ("everyone", "contacts", "nobody") and online state ("everyone",
// "same_as_last_seen"), whether its read receipts go out, and who may add
// it to groups ("everyone", "contacts").
type Privacy struct {
	LastSeen     string `json:"last_seen"`
	Online       string `json:"online"`
	ReadReceipts bool   `json:"read_receipts"`
	GroupsAdd    string `json:"groups_add"`
}

// PrivacyPatch is the body of PATCH /v1/me/privacy: absent fields stay.
type PrivacyPatch struct {
	LastSeen     *string `json:"last_seen,omitempty"`
	Online       *string `json:"online,omitempty"`
	ReadReceipts *bool   `json:"read_receipts,omitempty"`
	GroupsAdd    *string `json:"groups_add,omitempty"`
}

// ContactsRequest is the body of PUT /v1/contacts: the user's whole
// address book, which replaces the one saved before.
type ContactsRequest struct {
	Phones []string `json:"phones"`
}

// StarredResponse answers GET /v1/starred: the messages you starred that
// you can still see, newest star first, each as in history.
type StarredResponse struct {
	Messages []Message `json:"messages"`
}

// Block is one entry of GET /v1/blocks: a user you block, since ts (unix
// ms).
type Block struct {
	UserID string `json:"user_id"`
	TS     int64  `json:"ts"`
}

// Blocks is the answer of GET /v1/blocks, oldest first.
type Blocks struct {
	Blocks []Block `json:"blocks"`
}

// ReportRequest is the body of POST /v1/reports: a user, optionally a chat
// and up to 5 of the user's messages in it, a reason; block also blocks
// the user.
type ReportRequest struct {
	UserID string   `json:"user_id"`
	ChatID string   `json:"chat_id,omitempty"`
	MsgIDs []string `json:"msg_ids,omitempty"`
	Reason string   `json:"reason"`
	Block  bool     `json:"block,omitempty"`
}

// ReportCreated answers POST /v1/reports.
type ReportCreated struct {
	ReportID string `json:"report_id"`
}

// User is another user's public profile.
type User struct {
	UserID string `json:"user_id"`
	Name   string `json:"name"`
	About  string `json:"about"`
}

// LookupRequest asks which phone numbers belong to users.
type LookupRequest struct {
	Phones []string `json:"phones"`
}

// Contact is a phone number that belongs to a user.
type Contact struct {
	Phone  string `json:"phone"`
	UserID string `json:"user_id"`
	Name   string `json:"name"`
}

// LookupResponse lists the phones that matched; the others are omitted.
type LookupResponse struct {
	Contacts []Contact `json:"contacts"`
}

// Device is one signed-in phone or browser.
type Device struct {
	DeviceID  string `json:"device_id"`
	Name      string `json:"name"`
	Platform  string `json:"platform"`
	CreatedAt string `json:"created_at"`
	LastSeen  string `json:"last_seen,omitempty"`
	Current   bool   `json:"current"`
	Online    bool   `json:"online"`
}

// DevicesResponse lists the user's devices.
type DevicesResponse struct {
	Devices []Device `json:"devices"`
}

// PushRequest registers the current device's push address: an FCM (or
// APNs) token, or a Web Push subscription.
type PushRequest struct {
	Provider     string            `json:"provider"`
	Token        string            `json:"token,omitempty"`
	Subscription *PushSubscription `json:"subscription,omitempty"`
}

// PushSubscription is a browser's Web Push subscription, as its
// PushSubscription.toJSON() gives it.
type PushSubscription struct {
	Endpoint string               `json:"endpoint"`
	Keys     PushSubscriptionKeys `json:"keys"`
}

// PushSubscriptionKeys are a subscription's keys, base64url.
type PushSubscriptionKeys struct {
	P256DH string `json:"p256dh"`
	Auth   string `json:"auth"`
}

// VAPIDResponse answers GET /v1/push/vapid: the key a browser subscribes
// with (applicationServerKey), base64url.
type VAPIDResponse struct {
	PublicKey string `json:"public_key"`
}

// Chat is one entry of the chat list.
type Chat struct {
	ChatID      string   `json:"chat_id"`
	Kind        string   `json:"kind"`
	Title       string   `json:"title"`
	Members     []string `json:"members"`
	LastMessage *Message `json:"last_message"`
	UnreadCount int64    `json:"unread_count"`
	ReadSeq     int64    `json:"read_seq"`
	LastSeq     int64    `json:"last_seq"`
}

// ChatsResponse is the chat list, most recent activity first.
type ChatsResponse struct {
	Chats []Chat `json:"chats"`
}

// HistoryResponse is one page of a chat's history, newest first. NextBefore
// is the before value of the next (older) page, 0 when there is none.
type HistoryResponse struct {
	Messages   []Message `json:"messages"`
	NextBefore int64     `json:"next_before"`
}

// Chat kinds.
const (
	KindDirect = "direct"
	KindGroup  = "group"
)

// ChatPatch changes a chat's settings (PATCH /v1/chats/{chat_id}).
type ChatPatch struct {
	DisappearingSeconds *int64 `json:"disappearing_seconds"`
}

// ChatSettings are a chat's settings. After a change, MsgID, Seq and TS
// name the chat-log entry that made it.
type ChatSettings struct {
	ChatID              string `json:"chat_id"`
	DisappearingSeconds int64  `json:"disappearing_seconds"`
	MsgID               string `json:"msg_id,omitempty"`
	Seq                 int64  `json:"seq,omitempty"`
	TS                  int64  `json:"ts,omitempty"`
}

// Media is an uploaded file as POST /v1/media and GET /v1/media/{media_id}
// answer it: URL fetches its bytes without a token until ExpiresTS (unix
// ms).
type Media struct {
	MediaID   string `json:"media_id"`
	URL       string `json:"url"`
	ExpiresTS int64  `json:"expires_ts"`
	Size      int64  `json:"size"`
	MIMEType  string `json:"mime_type"`
	SHA256    string `json:"sha256"`
	Kind      string `json:"kind"`
	Width     int    `json:"width,omitempty"`
	Height    int    `json:"height,omitempty"`
	Thumbnail []byte `json:"thumbnail,omitempty"`
}
