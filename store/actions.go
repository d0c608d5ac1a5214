package store

import (
	"bytes"
	"encoding/json"
	"fmt"
	"slices"
	"strconv"
)

// KindAction is the Message.Kind of a message action's chat-log entry: a
// reaction, an edit, a delete for everyone or a change of the chat's
// disappearing timer. It reaches devices as a message event, but is not a
// message: it gets no receipts and does not count as unread.
const KindAction = "action"

// Action kinds.
const (
	ActionReaction     = "reaction"
	ActionEdit         = "edit"
	ActionDelete       = "delete"
	ActionDisappearing = "disappearing"
)

// Bodies the store writes over a message's own.
var (
	// DeletedBody is the body of a message deleted for everyone.
	DeletedBody = json.RawMessage(`{"deleted":true}`)
	// ExpiredBody is the body of a disappearing message after its time.
	ExpiredBody = json.RawMessage(`{"expired":true}`)
)

// ErasedEditBody is the body an edit entry of msgID keeps once its target
// is deleted or expires: the edit's text was the message's, and goes with
// it.
func ErasedEditBody(msgID string) json.RawMessage {
	b := append([]byte(`{"edit":{"msg_id":`), strconv.Quote(msgID)...)
	return append(b, `},"deleted":true}`...)
}

// Action is what a SendRequest does to its chat besides adding its entry.
// The store applies it in the send's atomic step, with the entry, so that
// every device converges on the same state in seq order; see ApplyAction.
type Action struct {
	Kind   string // one of the Action kinds
	Target string // the message id acted on (not for ActionDisappearing)
	// Emoji is a reaction's; "" takes the user's reaction back.
	Emoji string
	// Body is an edit's new message body (a JSON object).
	Body json.RawMessage
	// Seconds is the disappearing timer from this entry on (0: off).
	Seconds int64
	// Check runs in the atomic step against the target as stored and, in
	// a group, the group (nil in a direct chat): the caller's rules (who
	// may edit or delete, and until when). Its error stores nothing and is
	// returned unwrapped. It may run more than once and must not have side
	// effects.
	Check func(target *Message, g *Group) error
}

// MaxEmojiBytes bounds a reaction: one emoji, however many code points its
// sequence takes (a family with skin tones is some 40 bytes).
const MaxEmojiBytes = 64

// Validate checks what needs no stored state.
func (a *Action) Validate() error {
	switch a.Kind {
	case ActionReaction:
		if len(a.Emoji) > MaxEmojiBytes {
			return fmt.Errorf("%w: reaction emoji over %d bytes", ErrInvalid, MaxEmojiBytes)
		}
	case ActionEdit:
		if !json.Valid(a.Body) || len(bytes.TrimSpace(a.Body)) == 0 || bytes.TrimSpace(a.Body)[0] != '{' {
			return fmt.Errorf("%w: an edit's body must be a JSON object", ErrInvalid)
		}
	case ActionDelete:
	case ActionDisappearing:
		if a.Seconds < 0 {
			return fmt.Errorf("%w: disappearing seconds below 0", ErrInvalid)
		}
		return nil
	default:
		return fmt.Errorf("%w: action kind %q", ErrInvalid, a.Kind)
	}
	if a.Target == "" {
		return fmt.Errorf("%w: %s without a target message", ErrInvalid, a.Kind)
	}
	return nil
}

// Reaction is one user's reaction to a message.
type Reaction struct {
	UserID string
	Emoji  string
}

// MaxEdits bounds the edits of one message: each is remembered on it, and
// a delete rewrites them all in one step.
const MaxEdits = 100

// ApplyAction changes target, the message act names, as act stored as
// entry (its Seq assigned) says; both adapters run it in the send's atomic
// step, after act.Check. It is a state setter: applied again to its own
// result it changes nothing, so an adapter that completes a send a dead
// node left half done may run it twice. It returns whether target changed
// (the adapter writes it back) and the seqs of edit entries whose bodies
// must become ErasedEditBody (a delete erases the edits' text with the
// message's).
//
// The target must be a message of entry's chat that entry's author can
// see (ErrNotFound otherwise: another entry kind, expired, or hidden from
// the author), and a deleted message takes no reactions or edits
// (ErrConflict). An entry hidden from a user who can see the target (its
// author is blocked by that user) is stored but changes nothing: that
// user's view of the chat must not move, or it would learn of the entry.
//
// Two rules for the adapters go with it: in a group, an action's entry
// goes only to the members who can see its target (joined at or before
// its seq); and a timer change (ActionDisappearing) hidden from someone
// does not change the chat's timer (see TimerChange).
func ApplyAction(target, entry *Message, act *Action) (applied bool, erase []int64, err error) {
	erase, err = applyAction(target, entry, act)
	if err != nil || entry.HiddenFrom != "" && entry.HiddenFrom != target.HiddenFrom {
		return false, nil, err
	}
	return true, erase, nil
}

// TimerChange returns the disappearing timer an entry with act sets, and
// whether it sets one.
func TimerChange(entry *Message, act *Action) (seconds int64, ok bool) {
	if act == nil || act.Kind != ActionDisappearing || entry.HiddenFrom != "" {
		return 0, false
	}
	return act.Seconds, true
}

func applyAction(target, entry *Message, act *Action) (erase []int64, err error) {
	switch {
	case target.Kind != "" || target.ChatID != entry.ChatID:
		return nil, fmt.Errorf("%w: %s is not a message of %s", ErrNotFound, target.ID, entry.ChatID)
	case target.HiddenFrom != "" && target.HiddenFrom == entry.From:
		return nil, fmt.Errorf("%w: message %s", ErrNotFound, target.ID)
	case target.Expired(entry.TS) || target.ExpiresTS != 0 && bytes.Equal(target.Body, ExpiredBody):
		// The second: a sweeper whose clock runs ahead of this node's.
		return nil, fmt.Errorf("%w: message %s expired", ErrNotFound, target.ID)
	}
	if target.Deleted {
		if act.Kind == ActionDelete {
			return nil, nil // deleted is deleted
		}
		return nil, fmt.Errorf("%w: message %s was deleted", ErrConflict, target.ID)
	}
	switch act.Kind {
	case ActionReaction:
		target.Reactions = slices.DeleteFunc(target.Reactions, func(r Reaction) bool { return r.UserID == entry.From })
		if act.Emoji != "" {
			target.Reactions = append(target.Reactions, Reaction{UserID: entry.From, Emoji: act.Emoji})
		}
	case ActionEdit:
		if len(target.EditSeqs) >= MaxEdits && !slices.Contains(target.EditSeqs, entry.Seq) {
			return nil, fmt.Errorf("%w: message %s was edited %d times", ErrConflict, target.ID, MaxEdits)
		}
		target.Body = act.Body
		target.EditedTS = max(target.EditedTS, entry.TS)
		if !slices.Contains(target.EditSeqs, entry.Seq) {
			target.EditSeqs = append(target.EditSeqs, entry.Seq)
		}
	case ActionDelete:
		erase = target.EditSeqs
		target.Body, target.Deleted = DeletedBody, true
		target.EditedTS, target.Reactions, target.EditSeqs = 0, nil, nil
	default:
		return nil, fmt.Errorf("%w: action kind %q has no target", ErrInvalid, act.Kind)
	}
	return erase, nil
}

// Expire turns m into the tombstone of an expired disappearing message:
// what it said, its reactions and its edits' text go; its place in the
// log stays, so that inbox events that refer to it still resolve. It
// returns the seqs of edit entries to erase, as ApplyAction does.
func Expire(m *Message) (erase []int64) {
	erase = m.EditSeqs
	m.Body, m.ReplyTo, m.Reactions, m.EditSeqs, m.EditedTS = ExpiredBody, "", nil, nil, 0
	return erase
}

// Expired reports whether m is a disappearing message past its time at
// now (unix ms).
func (m *Message) Expired(now int64) bool { return m.ExpiresTS != 0 && m.ExpiresTS <= now }

// ExpiryOf is when an entry sent at ts in a chat whose disappearing timer
// is seconds expires (0: never). Timer changes themselves never expire:
// they say why later messages vanish.
func ExpiryOf(m *Message, act *Action, seconds int64) int64 {
	if seconds <= 0 || act != nil && act.Kind == ActionDisappearing {
		return 0
	}
	return m.TS + seconds*1000
}

// MaxClientID bounds a send's idempotency key, which adapters make part of
// a key: long keys bloat indexes.
const MaxClientID = 512

// CheckSend checks what every adapter requires of a SendRequest regardless
// of stored state (ErrInvalid otherwise); adapters add their own id rules.
func CheckSend(req *SendRequest) error {
	m := &req.Message
	switch {
	case m.ID == "":
		return fmt.Errorf("%w: message id", ErrInvalid)
	case len(req.ClientID) > MaxClientID:
		return fmt.Errorf("%w: client id (too long)", ErrInvalid)
	case req.Action == nil && m.Kind != "":
		// Group entries are written with their change, by WriteGroup.
		return fmt.Errorf("%w: message kind %q", ErrInvalid, m.Kind)
	case req.Action != nil && m.Kind != KindAction:
		return fmt.Errorf("%w: an action's entry must be of kind %q", ErrInvalid, KindAction)
	case m.ExpiresTS != 0 || m.Deleted || m.EditedTS != 0 || len(m.Reactions) > 0 || len(m.EditSeqs) > 0:
		return fmt.Errorf("%w: a new entry with the state of an old one", ErrInvalid)
	}
	if req.Action != nil {
		return req.Action.Validate()
	}
	return nil
}
