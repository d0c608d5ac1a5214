package chat

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// SendInput is a message to store: the fields of a send frame.
type SendInput struct {
	ClientID string // the client's id of the message: its idempotency key
	To       string // a user id (direct chat) or a group's chat id
	Body     *wire.Body
	ReplyTo  string
	// Echo puts the message in the sending device's own inbox too (a
	// business's API device: store.SendRequest.EchoToSender).
	Echo bool
	// Business says the sender is a business's API, which alone may
	// send cards (wire.Card).
	Business bool
	// MsgID, if set, is the new message's id (store.PrefixMessage +
	// store.NewID): a caller that keeps something under the id before
	// the message exists (a business's callback data, which its first
	// status webhook carries) chooses it.
	MsgID string
}

// Sent is a stored message. Duplicate says the client id was seen before
// and Message is the first send's.
type Sent struct {
	Message   store.Message
	Duplicate bool
	// SenderCursor is store.SendResult.SenderCursor: a cursor of the
	// sending device's inbox with nothing for it.
	SenderCursor int64
}

// Send stores a message and routes it to every device of every recipient
// and the sender's other devices. When it returns without error the message
// is durable and published: the caller may answer sent.
func (s *Service) Send(ctx context.Context, a Actor, in SendInput) (Sent, error) {
	if in.Body == nil {
		return Sent{}, wire.Errorf(wire.CodeBadRequest, "send needs a body")
	}
	if in.Body.Len() > s.cfg.MaxTextBytes {
		return Sent{}, wire.Errorf(wire.CodeTooLarge, "message text over %d bytes", s.cfg.MaxTextBytes)
	}
	if err := in.Body.Validate(); err != nil {
		return Sent{}, err
	}
	if in.Body.Card != nil && !in.Business {
		return Sent{}, wire.Errorf(wire.CodeBadRequest, "body.card is sent by businesses only")
	}
	if in.Body.Choice != "" && in.ReplyTo == "" {
		return Sent{}, wire.Errorf(wire.CodeBadRequest, "a choice replies to the card's message: set reply_to")
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	var uploaded time.Time // the file's, if the message carries one
	if in.Body.MediaID != "" && in.Body.Action() == "" {
		// The file's description comes from its upload, never from the
		// client, and only a file the sender may fetch can be sent.
		f, err := s.Media(ctx, a, in.Body.MediaID, "")
		if err != nil {
			return Sent{}, err
		}
		b := *in.Body
		describe(&b, &f)
		in.Body = &b
		uploaded = f.CreatedAt
	}
	body, err := json.Marshal(in.Body)
	if err != nil {
		return Sent{}, err
	}
	if in.Body.Action() != "" {
		return s.sendAction(ctx, a, in, body)
	}

	id := in.MsgID
	if id == "" {
		id = store.NewID(store.PrefixMessage)
	}
	req := store.SendRequest{
		ClientID: in.ClientID,
		Message: store.Message{
			ID:         id,
			From:       a.UserID,
			FromDevice: a.DeviceID,
			TS:         s.now().UnixMilli(),
			Body:       body,
			ReplyTo:    in.ReplyTo,
		},
		EchoToSender: in.Echo,
	}
	if err := s.route(ctx, a, in.To, &req); err != nil {
		return Sent{}, err
	}
	if req.Kind == store.KindGroup {
		req.Check = func(g *store.Group) error { return maySend(g, a.UserID) }
	}
	if in.ReplyTo != "" {
		// A reply quotes a message of its own chat, or none: an id from
		// elsewhere would show others a quote of what they cannot see.
		t, err := s.st.Message(ctx, req.Message.ChatID, in.ReplyTo)
		if errors.Is(err, store.ErrNotFound) ||
			err == nil && (t.Kind != "" || t.Expired(req.Message.TS) || t.HiddenFrom == a.UserID) {
			return Sent{}, wire.Errorf(wire.CodeNotFound, "reply_to: no message %s in this chat", in.ReplyTo)
		} else if err != nil {
			return Sent{}, err
		}
		if in.Body.Choice != "" {
			if req.Message.Body, err = choose(t, in.Body); err != nil {
				return Sent{}, err
			}
		}
	}
	if id := in.Body.MediaID; id != "" {
		if err := s.shareMedia(ctx, a, &req, id); err != nil {
			return Sent{}, err
		}
		sent, err := s.store(ctx, a, req, in)
		if refused(err) || err == nil && sent.Message.ID != req.Message.ID {
			// No message has this id (refused, or a resend whose first
			// send carries the file under its own id): its reference
			// goes, and a file nothing else carries gets an upload's
			// grace again, for the client to send it anew.
			rctx, cancel := s.storeCtx(context.WithoutCancel(ctx))
			if rerr := s.st.ReleaseMediaFile(rctx, id, req.Message.ID, uploaded); rerr != nil {
				s.log.Warn("chat: releasing the file of a send not stored; it is kept", "media_id", id, "err", rerr)
			}
			cancel()
		}
		return sent, err
	}
	return s.store(ctx, a, req, in)
}

// refused reports whether err says a send was not stored, rather than
// that it may have been (a timeout, an outage).
func refused(err error) bool {
	var we *wire.Error
	return errors.As(err, &we) && we.Code != wire.CodeUnavailable && we.Code != wire.CodeInternal
}

// shareMedia records that req's message carries file id, before it is
// stored: whoever sees the message may fetch its file, and the file stays
// until the message goes (deleted for everyone, expired). What would refuse
// the send is checked first, so that a refused send shares nothing; a
// group's rules can still change before the store's own check, which then
// leaves a share of a file nobody was sent (its members may fetch it).
func (s *Service) shareMedia(ctx context.Context, a Actor, req *store.SendRequest, id string) error {
	if req.Kind == store.KindGroup {
		g, err := s.st.Group(ctx, req.Message.ChatID)
		if err != nil {
			return s.groupErr(err)
		}
		if err := maySend(&g, a.UserID); err != nil {
			return err
		}
	}
	return s.st.ShareMediaFile(ctx, id, req.Message.ChatID, req.Message.ID)
}

// route fills in req's chat: a group's id, or a direct chat's members and
// target devices.
func (s *Service) route(ctx context.Context, a Actor, to string, req *store.SendRequest) error {
	switch {
	case isGroup(to):
		req.Message.ChatID = to
		req.Kind = store.KindGroup
		// Refused early when plainly not a member, so that a non-member
		// learns nothing from a reply_to probe; the store checks again in
		// its atomic step.
		if _, err := s.member(ctx, to, a.UserID); err != nil {
			return s.groupErr(err)
		}
		return nil
	case len(to) > 1 && to[:1] == store.PrefixUser:
		return s.direct(ctx, a, to, req)
	}
	return wire.Errorf(wire.CodeNotFound, "no such user or group")
}

// store stores req, routes its events and answers the send in.
func (s *Service) store(ctx context.Context, a Actor, req store.SendRequest, in SendInput) (Sent, error) {
	body := req.Message.Body
	res, err := s.st.Send(ctx, req)
	if err != nil {
		// Events it placed to complete another send are stored: route them.
		s.d.Dispatch(ctx, res.Deliveries, nil)
		if req.Action != nil {
			return Sent{}, actionErr(err, req.Action)
		}
		if req.Kind == store.KindGroup {
			return Sent{}, s.groupErr(err)
		}
		return Sent{}, err
	}
	m := &res.Message
	if res.Duplicate && (m.ChatID != req.Message.ChatID || !changed(m) && (!bytes.Equal(m.Body, body) || m.ReplyTo != in.ReplyTo)) {
		// The id was the key of another message: answering that one's
		// sent would tell the client this one is stored.
		s.d.Dispatch(ctx, res.Deliveries, nil)
		return Sent{}, wire.Errorf(wire.CodeConflict, "id %q was used for another message (recipient, body or reply differ); use a new id", in.ClientID)
	}
	// Routed before the answer: once the client has sent, it will not
	// write the send again, so a node that died between the answer and the
	// publish would leave a connected recipient waiting for its next event.
	// The other way round, a node that dies before answering is asked
	// again, and the duplicate pokes the targets (below).
	s.d.Dispatch(ctx, res.Deliveries, nil)
	if res.Duplicate {
		// A resend usually means the first attempt's answer was lost, maybe
		// with the node that stored it before it published: poke the
		// targets so that their holders read the inbox.
		if members, err := s.members(ctx, a.UserID, m.ChatID); err == nil {
			s.d.Poke(ctx, members, a.DeviceID)
		}
	}
	return Sent{Message: res.Message, Duplicate: res.Duplicate, SenderCursor: res.SenderCursor}, nil
}

// changed reports whether actions or expiry rewrote m since it was sent:
// its body is no longer what its sender sent, and a resend cannot be told
// from another message by it.
func changed(m *store.Message) bool {
	return m.Deleted || m.EditedTS != 0 || m.ExpiresTS != 0 ||
		m.Kind == store.KindAction && bytes.Contains(m.Body, []byte(`"deleted":true`))
}

// direct fills in a direct chat's members and target devices.
func (s *Service) direct(ctx context.Context, a Actor, to string, req *store.SendRequest) error {
	if _, err := s.st.User(ctx, to); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.CodeNotFound, "no such user")
		}
		return err
	}
	members := []string{a.UserID, to}
	if to == a.UserID {
		members = members[:1]
	}
	receivers := members
	if to != a.UserID {
		if mine, err := s.st.Blocked(ctx, a.UserID, to); err != nil {
			return err
		} else if mine && !takesBack(req.Action) {
			return wire.Errorf(wire.CodeForbidden, "you blocked this user: unblock to send")
		}
		theirs, err := s.st.Blocked(ctx, to, a.UserID)
		if err != nil {
			return err
		}
		if theirs {
			// Answered sent like any message, so that blocking is not
			// revealed; only the sender's other devices get it, and it
			// is left out of the addressee's history and chat list.
			req.Message.HiddenFrom = to
			receivers = members[:1]
		}
	}
	skip := a.DeviceID
	if req.EchoToSender {
		skip = ""
	}
	targets, err := s.devicesOf(ctx, receivers, skip)
	if err != nil {
		return err
	}
	req.Message.ChatID = store.DirectChatID(a.UserID, to)
	req.Kind = store.KindDirect
	req.Members = members
	req.Devices = targets
	return nil
}

// takesBack reports whether act only takes something of the sender's
// back (a delete for everyone, a reaction removed): a block must not keep
// what the blocker regrets in the other's chat.
func takesBack(act *store.Action) bool {
	return act != nil && (act.Kind == store.ActionDelete || act.Kind == store.ActionReaction && act.Emoji == "")
}

// devicesOf lists the devices of users, but skip.
func (s *Service) devicesOf(ctx context.Context, users []string, skip string) ([]string, error) {
	var out []string
	for _, uid := range users {
		ds, err := s.st.UserDevices(ctx, uid)
		if err != nil {
			return nil, err
		}
		for _, d := range ds {
			if d.ID != skip {
				out = append(out, d.ID)
			}
		}
	}
	return out, nil
}

// maySend is the group rule for sending, run in the store's atomic step.
func maySend(g *store.Group, userID string) error {
	if g.Settings.Send == store.AllowAdmins && !g.IsAdmin(userID) {
		return wire.Errorf(wire.CodeForbidden, "only admins may send to this group")
	}
	return nil
}

// choose is the body of a reply that taps choice b.Choice of the card on
// message t: its text is the choice's title, whatever the client wrote,
// so that the business reads what the customer saw.
func choose(t store.Message, b *wire.Body) ([]byte, error) {
	var tb wire.Body
	if err := json.Unmarshal(t.Body, &tb); err != nil || tb.Card == nil {
		return nil, wire.Errorf(wire.CodeBadRequest, "choice: message %s has no card", t.ID)
	}
	c, ok := tb.Card.Find(b.Choice)
	if !ok {
		return nil, wire.Errorf(wire.CodeBadRequest, "choice: message %s has no choice %q", t.ID, b.Choice)
	}
	out := *b
	out.Text = c.Title
	return json.Marshal(&out)
}
