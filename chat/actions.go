package chat

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// DisappearingChoices are the timers a chat may have, in seconds: off,
// 24 hours, 7 days and 90 days (WhatsApp's).
var DisappearingChoices = []int64{0, 86400, 604800, 7776000}

// sendAction stores a message action (a reaction, an edit, a delete for
// everyone): an entry of the chat's log, applied to its target in the same
// atomic step. body is in.Body as JSON.
func (s *Service) sendAction(ctx context.Context, a Actor, in SendInput, body []byte) (Sent, error) {
	if in.ReplyTo != "" {
		return Sent{}, wire.Errorf(wire.CodeBadRequest, "a message action cannot be a reply")
	}
	b := in.Body
	act := &store.Action{Kind: b.Action()}
	switch {
	case b.Reaction != nil:
		act.Target, act.Emoji = b.Reaction.MsgID, b.Reaction.Emoji
	case b.Edit != nil:
		act.Target = b.Edit.MsgID
	case b.Delete != nil:
		act.Target = b.Delete.MsgID
	}
	now := s.now()
	req := store.SendRequest{
		ClientID: in.ClientID,
		Message: store.Message{
			ID:         store.NewID(store.PrefixMessage),
			From:       a.UserID,
			FromDevice: a.DeviceID,
			TS:         now.UnixMilli(),
			Body:       body,
			Kind:       store.KindAction,
		},
		Action:       act,
		EchoToSender: in.Echo,
	}
	if err := s.route(ctx, a, in.To, &req); err != nil {
		return Sent{}, err
	}
	// Read first for the edit's new body and whom the entry is hidden
	// from (neither changes); the store checks the rules against the
	// target as it is in its atomic step.
	target, err := s.st.Message(ctx, req.Message.ChatID, act.Target)
	if errors.Is(err, store.ErrNotFound) {
		return Sent{}, wire.Errorf(wire.CodeNotFound, "no message %s in this chat", act.Target)
	} else if err != nil {
		return Sent{}, err
	}
	if b.Edit != nil {
		// The edit replaces the text (or a media message's caption);
		// everything else of the message stays as it was.
		var nb wire.Body
		if err := json.Unmarshal(target.Body, &nb); err != nil {
			return Sent{}, fmt.Errorf("body of %s: %w", target.ID, err)
		}
		if nb.MediaID != "" {
			nb.Caption = b.Edit.Text
		} else {
			nb.Text = b.Edit.Text
		}
		if act.Body, err = json.Marshal(&nb); err != nil {
			return Sent{}, err
		}
	}
	// The rules run in the store's atomic step only, after its idempotency
	// check: a resend of an edit after the window closed, say, must get
	// its first answer, not "window closed".
	act.Check = func(t *store.Message, g *store.Group) error { return s.mayAct(a, act.Kind, t, g, now) }
	if h := target.HiddenFrom; h != "" && h != a.UserID && req.Kind == store.KindDirect {
		// Acting on a message hidden from the other member (sent while it
		// blocked the actor) must not tell that member of it: the entry is
		// hidden from it too, and reaches only the actor's other devices.
		req.Message.HiddenFrom = h
		devs, err := s.devicesOf(ctx, []string{a.UserID}, a.DeviceID)
		if err != nil {
			return Sent{}, err
		}
		req.Devices = devs
	}
	return s.store(ctx, a, req, in)
}

// mayAct is the rule of who may do what to a message, and until when: it
// runs before the store is asked, and again in its atomic step.
func (s *Service) mayAct(a Actor, kind string, t *store.Message, g *store.Group, now time.Time) error {
	if g != nil {
		mb := g.Member(a.UserID)
		if mb == nil {
			return wire.Errorf(wire.CodeForbidden, "not a member of this group")
		}
		if t.Seq < mb.JoinedSeq {
			// From before the member joined: not its to see.
			return wire.Errorf(wire.CodeNotFound, "no message %s in this chat", t.ID)
		}
	}
	if t.Kind != "" || t.HiddenFrom == a.UserID || t.Expired(now.UnixMilli()) {
		return wire.Errorf(wire.CodeNotFound, "no message %s in this chat", t.ID)
	}
	age := now.Sub(time.UnixMilli(t.TS))
	switch kind {
	case store.ActionEdit:
		if t.From != a.UserID {
			return wire.Errorf(wire.CodeForbidden, "only the author may edit a message")
		}
		if age > s.cfg.EditWindow {
			return wire.Errorf(wire.CodeConflict, "window closed: messages can be edited for %s", s.cfg.EditWindow)
		}
	case store.ActionDelete:
		if t.From != a.UserID && (g == nil || !g.IsAdmin(a.UserID)) {
			return wire.Errorf(wire.CodeForbidden, "only the author or a group admin may delete a message for everyone")
		}
		if age > s.cfg.DeleteWindow {
			return wire.Errorf(wire.CodeConflict, "window closed: messages can be deleted for everyone for %s", s.cfg.DeleteWindow)
		}
	}
	return nil
}

// actionErr maps what the store says of an action's target.
func actionErr(err error, act *store.Action) error {
	var we *wire.Error
	switch {
	case errors.As(err, &we):
		return we
	case errors.Is(err, store.ErrNotMember):
		return wire.Errorf(wire.CodeForbidden, "not a member of this group")
	case errors.Is(err, store.ErrNotFound):
		return wire.Errorf(wire.CodeNotFound, "no message %s in this chat", act.Target)
	case errors.Is(err, store.ErrConflict):
		return wire.Errorf(wire.CodeConflict, "message %s was deleted", act.Target)
	}
	return err
}

// SetDisappearing sets chatID's disappearing timer: messages sent after it
// carry expires_ts and are erased when due. Any member of a direct chat may
// set it; in a group, who may edit the group's info. The change is an entry
// of the chat's log, returned.
func (s *Service) SetDisappearing(ctx context.Context, a Actor, chatID string, seconds int64) (store.Message, error) {
	if !slices.Contains(DisappearingChoices, seconds) {
		return store.Message{}, wire.Errorf(wire.CodeBadRequest, "disappearing_seconds must be one of %v", DisappearingChoices)
	}
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	to := chatID
	if x, y, ok := store.DirectChatMembers(chatID); ok {
		switch a.UserID {
		case x:
			to = y
		case y:
			to = x
		default:
			return store.Message{}, wire.Errorf(wire.CodeForbidden, "not a member of this chat")
		}
	} else if !isGroup(chatID) {
		return store.Message{}, wire.Errorf(wire.CodeNotFound, "no such chat")
	}
	body, err := json.Marshal(wire.Body{Disappearing: &seconds})
	if err != nil {
		return store.Message{}, err
	}
	req := store.SendRequest{
		Message: store.Message{
			ID:         store.NewID(store.PrefixMessage),
			From:       a.UserID,
			FromDevice: a.DeviceID,
			TS:         s.now().UnixMilli(),
			Body:       body,
			Kind:       store.KindAction,
		},
		Action: &store.Action{Kind: store.ActionDisappearing, Seconds: seconds},
	}
	if err := s.route(ctx, a, to, &req); err != nil {
		return store.Message{}, err
	}
	if req.Kind == store.KindGroup {
		req.Check = func(g *store.Group) error {
			if g.Settings.EditInfo == store.AllowAdmins && !g.IsAdmin(a.UserID) {
				return wire.Errorf(wire.CodeForbidden, "only admins may change this group's disappearing messages")
			}
			return nil
		}
	}
	res, err := s.st.Send(ctx, req)
	s.d.Dispatch(ctx, res.Deliveries, nil)
	if err != nil {
		if req.Kind == store.KindGroup {
			return store.Message{}, s.groupErr(err)
		}
		return store.Message{}, err
	}
	return res.Message, nil
}

// Disappearing returns chatID's disappearing timer, to a member.
func (s *Service) Disappearing(ctx context.Context, a Actor, chatID string) (int64, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if _, err := s.members(ctx, a.UserID, chatID); err != nil {
		return 0, err
	}
	return s.st.Disappearing(ctx, chatID)
}

// Sweep erases the disappearing messages due by now, in batches, until
// none is left or ctx ends; it returns how many it erased.
func (s *Service) Sweep(ctx context.Context) (int, error) {
	const batch = 256
	total := 0
	for {
		sctx, cancel := s.storeCtx(ctx)
		n, err := s.st.ExpireDue(sctx, s.now().UnixMilli(), batch)
		cancel()
		total += n
		if err != nil || n < batch {
			return total, err
		}
	}
}

// RunSweeper sweeps every interval until ctx ends. Every node of a cluster
// may run one: erasing is idempotent.
func (s *Service) RunSweeper(ctx context.Context, interval time.Duration) {
	t := time.NewTicker(interval)
	defer t.Stop()
	for {
		if n, err := s.Sweep(ctx); err != nil && ctx.Err() == nil {
			s.log.Warn("chat: erasing disappearing messages", "err", err)
		} else if n > 0 {
			s.log.Debug("chat: erased disappearing messages", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}
