package store

import (
	"context"
	"encoding/json"
	"errors"
	"slices"
	"time"
)

// Errors adapters return; callers test with errors.Is.
var (
	ErrNotFound = errors.New("store: not found")
	ErrConflict = errors.New("store: conflict")
)

// User is an account, created by the first successful phone verification.
type User struct {
	ID    string
	Phone string // E.164
	Name  string
	About string
	// HideReadReceipts stops this user's read receipts from reaching others
	// (a privacy setting; the zero value sends them).
	HideReadReceipts bool
	Privacy          Privacy
	// Email is the user's verified email address ("" for none): new
	// device notices go there.
	Email     string
	CreatedAt time.Time
}

// ProfilePatch is a change of a user's profile and settings: nil fields
// are left alone.
type ProfilePatch struct {
	Name, About                 *string
	HideReadReceipts            *bool
	LastSeen, Online, GroupsAdd *string
	Email                       *string // verified before it is set
}

// Apply sets the fields of p on u.
func (p *ProfilePatch) Apply(u *User) {
	set := func(dst *string, v *string) {
		if v != nil {
			*dst = *v
		}
	}
	set(&u.Name, p.Name)
	set(&u.About, p.About)
	set(&u.Email, p.Email)
	set(&u.Privacy.LastSeen, p.LastSeen)
	set(&u.Privacy.Online, p.Online)
	set(&u.Privacy.GroupsAdd, p.GroupsAdd)
	if p.HideReadReceipts != nil {
		u.HideReadReceipts = *p.HideReadReceipts
	}
}

// Privacy is who may see a user's last seen and online state, and who may
// add it to groups. "" means the default, Everyone.
type Privacy struct {
	LastSeen  string // Everyone, Contacts or Nobody
	Online    string // Everyone or SameAsLastSeen
	GroupsAdd string // Everyone or Contacts
}

// Privacy values.
const (
	Everyone       = "everyone"
	Contacts       = "contacts"
	Nobody         = "nobody"
	SameAsLastSeen = "same_as_last_seen"
)

// Device is one signed-in phone or browser of a user.
type Device struct {
	ID        string
	UserID    string
	Name      string
	Platform  string
	CreatedAt time.Time
	LastSeen  time.Time
	// RefreshHash is the SHA-256 of the current refresh secret and
	// PrevRefreshHash of the one it replaced: presenting that one again means
	// the token was copied, and the device is revoked.
	RefreshHash     []byte
	PrevRefreshHash []byte
	RefreshExpires  time.Time
	PushProvider    string
	PushToken       string
}

// Code is the pending verification of a phone number. Only a hash of the
// code is kept.
type Code struct {
	Phone     string
	Hash      []byte
	ExpiresAt time.Time
	Attempts  int       // wrong tries against this code
	SentAt    time.Time // when the last code was sent
	// WindowStart and WindowCount count the codes sent in the current hour.
	WindowStart time.Time
	WindowCount int
}

// Chat is a conversation: a direct chat between two users (or a user and
// itself) or a group (Title is its name, Members its user ids).
type Chat struct {
	ID        string
	Kind      string // "direct" or "group"
	Title     string
	Members   []string // user ids
	LastSeq   int64
	CreatedAt time.Time
}

// HasMember reports whether userID is in the chat.
func (c *Chat) HasMember(userID string) bool {
	for _, m := range c.Members {
		if m == userID {
			return true
		}
	}
	return false
}

// Message is an entry of a chat log. Body is the validated JSON object of the
// wire body; the store does not interpret it.
type Message struct {
	ID         string
	ChatID     string
	Seq        int64
	From       string
	FromDevice string
	TS         int64 // unix milliseconds
	Body       json.RawMessage
	ReplyTo    string
	// Kind is "" for a message, EventGroup for the entry of a group
	// change (Body {"group": {...}}) and KindAction for a message action's;
	// entries of either kind get no receipts and are not unread.
	Kind string
	// HiddenFrom is the user of a direct chat who never sees this message:
	// it was sent while that user blocked its author. It is in the log for
	// the author's history, and nowhere for HiddenFrom (no inbox event;
	// history and chat lists leave it out).
	HiddenFrom string
	// The state message actions left (see ApplyAction): when it was last
	// edited (unix ms, 0: never), whether it was deleted for everyone
	// (Body is then DeletedBody), its reactions in the order given, and
	// the seqs of its edit entries, whose text goes if it is deleted.
	EditedTS  int64
	Deleted   bool
	Reactions []Reaction
	EditSeqs  []int64
	// ExpiresTS is when a disappearing message goes (unix ms, 0: never);
	// the store sets it from the chat's timer when it stores the entry.
	ExpiresTS int64
}

// Event kinds.
const (
	EventMessage = "message"
	EventReceipt = "receipt"
)

// Receipt statuses.
const (
	StatusDelivered = "delivered"
	StatusRead      = "read"
)

// Receipt tells an author that By got (delivered) or saw (read) MsgIDs.
// Others, if set, are more readers it speaks for (a coalesced receipt,
// see CoalesceReceiptsAbove): each of them got or saw MsgIDs too.
type Receipt struct {
	ChatID string
	MsgIDs []string
	Status string
	By     string
	Others []string
	TS     int64
}

// CoalesceReceiptsAbove is the group size above which an adapter may
// coalesce receipts: those of several members for one message that it
// stores together (one batch of acks) become one receipt, with one reader
// in By and the rest in Others. A message to a large group would otherwise
// bring its author one receipt event per member and device, as many as
// the message's own deliveries. Smaller groups and direct chats get one
// receipt per reader.
const CoalesceReceiptsAbove = 32

// Event is an entry of a device inbox. Exactly one of Message and Receipt is
// set, as Kind says: Message for EventMessage and EventGroup, Receipt for
// EventReceipt.
type Event struct {
	Cursor  int64
	Kind    string
	Message *Message
	Receipt *Receipt
}

// Delivery is an event that was appended to DeviceID's inbox and should now be
// routed to the node holding that device.
type Delivery struct {
	DeviceID string
	Event    Event
}

// SendRequest stores one message. Message.ID, ChatID, From, FromDevice, TS
// and Body are set by the caller; Seq is assigned by the store.
type SendRequest struct {
	ClientID string // idempotency key, scoped to Message.FromDevice
	Message  Message
	// Kind and Members describe the chat; the store creates it on first use
	// (direct chats are created by their first message).
	Kind    string
	Members []string
	// Devices are the inboxes that get the message: every device of every
	// recipient and the sender's other devices. For KindGroup the store
	// ignores Members and Devices and resolves them itself (see Groups).
	Devices []string
	// Check, for KindGroup, runs against the group inside the send's
	// atomic step, after the store made sure the sender is a member: the
	// caller's rules (who may send) on the state the message is stored
	// in. Its error stores nothing and is returned unwrapped. It may run
	// more than once and must not have side effects.
	Check func(g *Group) error
	// Action, if set, makes the entry a message action (Message.Kind must
	// then be KindAction): the store applies it with the entry, in one
	// atomic step (see Action and ApplyAction).
	Action *Action
	// EchoToSender puts the message in the sending device's own inbox
	// too (Devices must then name it): a business's API device reads its
	// own sends there, in order with the rest, as "sent" statuses.
	// SenderCursor is then 0.
	EchoToSender bool
}

// Unique returns ids without repeats, keeping the first of each in place.
// Adapters use it on SendRequest.Members and Devices, which callers may
// repeat (a user messaging itself lists its devices once per role).
func Unique(ids []string) []string {
	out := make([]string, 0, len(ids))
	if len(ids) <= 16 { // a direct chat: a scan beats a map
		for _, id := range ids {
			if !slices.Contains(out, id) {
				out = append(out, id)
			}
		}
		return out
	}
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		if !seen[id] {
			seen[id] = true
			out = append(out, id)
		}
	}
	return out
}

// SendResult is the stored message and the inbox events to route. On a
// duplicate it is the first send's message. Deliveries may also hold events
// the call placed to complete earlier sends that a dead node left half done
// (an adapter shared by several nodes does that); a Send that fails may
// still return those, and the caller routes them like any other.
type SendResult struct {
	Message    Message
	Duplicate  bool
	Deliveries []Delivery
	// SenderCursor, if not 0, is a cursor of the sending device's inbox
	// that holds nothing for it: an adapter that keeps one inbox per user
	// gives the sender's own message a cursor there, which every device of
	// the user but the sending one reads. Its session can count the cursor
	// as sent, and need not read its inbox to find it empty.
	SenderCursor int64
}

// ChatSummary is a chat as one member sees it in the chat list.
type ChatSummary struct {
	Chat    Chat
	Last    *Message
	ReadSeq int64
	Unread  int64 // messages from others after ReadSeq
}

// Users stores accounts.
type Users interface {
	// EnsureUser returns the user with this phone, creating it with id
	// newID when there is none; created tells which happened.
	EnsureUser(ctx context.Context, phone, newID string, now time.Time) (u User, created bool, err error)
	User(ctx context.Context, id string) (User, error)
	UserByPhone(ctx context.Context, phone string) (User, error)
	// UsersByPhones returns the users among phones; unknown phones are skipped.
	UsersByPhones(ctx context.Context, phones []string) ([]User, error)
	// UpdateProfile applies p to the user id in one atomic step and
	// returns the user after it; ErrNotFound if there is none. Fields p
	// leaves nil stay as they are, so that two changes of different
	// fields made at once both take.
	UpdateProfile(ctx context.Context, id string, p ProfilePatch) (User, error)
}

// AddressBooks keeps the phone numbers each user saved: the user's
// contacts are the users with those numbers (privacy's "contacts").
type AddressBooks interface {
	// SetContacts replaces userID's address book with phones (E.164).
	SetContacts(ctx context.Context, userID string, phones []string) error
	// HasContact reports whether userID saved phone.
	HasContact(ctx context.Context, userID, phone string) (bool, error)
}

// Block is one user blocked by another, since TS (unix ms).
type Block struct {
	UserID string
	TS     int64
}

// Blocks keeps who blocked whom.
type Blocks interface {
	// SetBlock blocks (on) or unblocks (off) target for userID; blocking
	// again keeps the first time. Unknown users are ErrNotFound.
	SetBlock(ctx context.Context, userID, target string, on bool, ts int64) error
	// Blocks lists the users userID blocks, oldest first.
	Blocks(ctx context.Context, userID string) ([]Block, error)
	// Blocked reports whether userID blocks target: a point lookup.
	Blocked(ctx context.Context, userID, target string) (bool, error)
}

// Star is a message a user starred, at TS (unix ms).
type Star struct {
	ChatID string
	Seq    int64
	MsgID  string
	TS     int64
}

// UserMarks keeps what a user did to messages for itself alone: deleted
// for me (hidden from its history) and starred.
type UserMarks interface {
	// HideMessage hides message seq of chatID from userID's history.
	HideMessage(ctx context.Context, userID, chatID string, seq int64) error
	// HiddenSeqs returns which of the seqs in [from, to] of chatID userID
	// hid.
	HiddenSeqs(ctx context.Context, userID, chatID string, from, to int64) (map[int64]bool, error)
	// SetStar stars (on) or unstars a message for userID; starring again
	// keeps the first time.
	SetStar(ctx context.Context, userID string, s Star, on bool) error
	// Starred lists up to limit of userID's stars, newest first.
	Starred(ctx context.Context, userID string, limit int) ([]Star, error)
}

// Report is a user's complaint about another user, kept for the admin
// dashboard with copies of the messages it points at (they may be edited
// or deleted later; the report keeps what was reported).
type Report struct {
	ID       string
	By       string // the reporting user
	UserID   string // the reported user
	ChatID   string // optional
	Messages []Message
	Reason   string
	TS       int64 // unix ms
	// Resolution is "" while the report is open, "dismissed" or "banned"
	// once an admin resolved it (ResolveReport).
	Resolution string
	ResolvedBy string // the admin's username
	ResolvedTS int64  // unix ms
}

// Reports keeps reports.
type Reports interface {
	// AddReport stores r; its ID must be new.
	AddReport(ctx context.Context, r Report) error
	// Report returns the report id; ErrNotFound if there is none.
	Report(ctx context.Context, id string) (Report, error)
	// Reports lists up to limit reports with ids below before ("" for the
	// newest), newest first (limit below 1: all); with openOnly only those
	// not resolved. Report ids come from NewID(PrefixReport), so they sort
	// by creation time: "newest" is by id.
	Reports(ctx context.Context, openOnly bool, before string, limit int) ([]Report, error)
	// ResolveReport closes report id with resolution ("dismissed" or
	// "banned"; anything else, or an empty by, is an ErrInvalid error), by
	// an admin, at ts (unix ms). ErrNotFound if there is no such report;
	// ErrConflict if it is already resolved (of two admins resolving at
	// once exactly one succeeds).
	ResolveReport(ctx context.Context, id, resolution, by string, ts int64) error
}

// Devices stores device sessions.
type Devices interface {
	CreateDevice(ctx context.Context, d Device) error
	Device(ctx context.Context, id string) (Device, error)
	UserDevices(ctx context.Context, userID string) ([]Device, error)
	// RotateRefresh replaces the refresh hash if the current one is oldHash,
	// keeping oldHash as PrevRefreshHash; ErrConflict otherwise.
	RotateRefresh(ctx context.Context, deviceID string, oldHash, newHash []byte, expires time.Time) error
	TouchDevice(ctx context.Context, id string, lastSeen time.Time) error
	SetPush(ctx context.Context, id, provider, token string) error
	// DeleteDevice removes the device and its inbox; ErrNotFound if absent.
	DeleteDevice(ctx context.Context, id string) error
}

// Codes stores pending phone verifications.
type Codes interface {
	PutCode(ctx context.Context, c Code) error
	Code(ctx context.Context, phone string) (Code, error)
	// CountAttempt atomically adds one wrong-or-right try and returns the
	// record after it.
	CountAttempt(ctx context.Context, phone string) (Code, error)
	// DeleteCode removes the code; ErrNotFound if it was already gone, which
	// makes a code single-use under concurrent verifications.
	DeleteCode(ctx context.Context, phone string) error
}

// Messages stores chats, their logs and device inboxes.
type Messages interface {
	Send(ctx context.Context, req SendRequest) (SendResult, error)
	// Inbox returns up to limit unacked events with cursor > after, and the
	// last cursor ever assigned to the device (0 for none). When the page
	// is full (limit events), head may instead be any cursor from the
	// page's last one up: the caller reads again from there anyway, and a
	// store need not look past the page to say it.
	Inbox(ctx context.Context, deviceID string, after int64, limit int) (events []Event, head int64, err error)
	// Heads returns, for each of the devices that has an inbox, the last
	// cursor Inbox would report as its head; a node compares them with
	// what it sent its sessions, to catch an event whose routing was lost.
	Heads(ctx context.Context, deviceIDs []string) (map[string]int64, error)
	// Ack removes the device's events up to cursor. For messages it acked
	// that were written by others and not yet delivered to its user, it
	// appends delivered receipts to every device of their authors and
	// returns them.
	Ack(ctx context.Context, deviceID string, cursor int64) ([]Delivery, error)
	// MarkRead moves userID's read mark in chatID up to seq (capped at the
	// chat's last seq). With notify, read receipts for the messages of others
	// it covers go to their authors' devices and are returned.
	MarkRead(ctx context.Context, userID, chatID string, seq, ts int64, notify bool) ([]Delivery, error)
	Chat(ctx context.Context, chatID string) (Chat, error)
	Chats(ctx context.Context, userID string) ([]ChatSummary, error)
	// Message returns the message msgID of chatID: ErrNotFound if there is
	// none, or it is in another chat, or not committed yet.
	Message(ctx context.Context, chatID, msgID string) (Message, error)
	// History returns up to limit messages with seq < before (before 0: the
	// newest), newest first.
	History(ctx context.Context, chatID string, before int64, limit int) ([]Message, error)
	// MessageMarks returns, for each of userIDs in order, when its
	// delivered and read marks in chatID first reached seq (0: not yet):
	// the "message info" of the message at seq. A delivered mark moves when
	// a device of the user acks a message of another; a read mark when
	// MarkRead moves it with notify (a hidden read is never recorded).
	MessageMarks(ctx context.Context, chatID string, seq int64, userIDs []string) ([]Marks, error)
	// ExpireDue turns up to limit disappearing messages whose ExpiresTS is
	// at or before now (unix ms) into tombstones (see Expire) and returns
	// how many it did; fewer than limit means none is left due.
	ExpireDue(ctx context.Context, now int64, limit int) (int, error)
	// Disappearing returns chatID's disappearing timer in seconds (0:
	// off; also for a chat not created yet).
	Disappearing(ctx context.Context, chatID string) (int64, error)
}

// Marks is when one reader's delivered and read marks in a chat first
// reached a message, in unix milliseconds; 0 means not yet.
type Marks struct {
	UserID      string
	DeliveredTS int64
	ReadTS      int64
}

// Secrets keeps server-wide secrets (the token signing key) so that every
// node of a cluster shares them without configuration.
type Secrets interface {
	// Secret returns the secret called name, storing fresh first if there is
	// none yet.
	Secret(ctx context.Context, name string, fresh []byte) ([]byte, error)
	// ReplaceSecret sets the secret called name to next if it is old now,
	// byte for byte: ErrConflict if it is something else, ErrNotFound if
	// there is none. Of concurrent replacements of one value exactly one
	// succeeds (key rotation, sealing keys under a master key).
	ReplaceSecret(ctx context.Context, name string, old, next []byte) error
}

// Store is everything an adapter provides. Consumers take the narrowest
// interface they need.
type Store interface {
	Users
	AddressBooks
	Blocks
	Reports
	UserMarks
	Devices
	Codes
	Messages
	Groups
	Secrets
	MediaFiles
	Pushes
	Admins
	Bans
	UserSearch
	GroupList
	NodeReports
	Leases
	Businesses
	// Ping reports whether the store can serve (for /readyz).
	Ping(ctx context.Context) error
	// Close flushes and releases the store.
	Close() error
}
