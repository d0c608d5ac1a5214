package chat

import (
	"context"
	"errors"
	"strings"
	"unicode/utf8"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// Limits of a report.
const (
	MaxReportMessages = 5
	MaxReasonBytes    = 1000
)

// SetBlock blocks (on) or unblocks target for the actor. While it lasts,
// target's direct messages to the actor are answered sent and never
// delivered, presence and typing do not cross it either way, and target
// cannot add the actor to groups (Send, Typing, newMembers, the server's
// presence).
func (s *Service) SetBlock(ctx context.Context, a Actor, target string, on bool) error {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if target == a.UserID {
		return wire.Errorf(wire.CodeBadRequest, "you cannot block yourself")
	}
	if !isUserID(target) {
		return wire.Errorf(wire.CodeNotFound, "no such user")
	}
	err := s.st.SetBlock(ctx, a.UserID, target, on, s.now().UnixMilli())
	if errors.Is(err, store.ErrNotFound) {
		return wire.Errorf(wire.CodeNotFound, "no such user")
	}
	return err
}

// Blocks lists whom the actor blocks, oldest first.
func (s *Service) Blocks(ctx context.Context, a Actor) ([]store.Block, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	return s.st.Blocks(ctx, a.UserID)
}

// ReportInput is a report as a user files it.
type ReportInput struct {
	UserID string
	ChatID string
	MsgIDs []string
	Reason string
	Block  bool
}

// Report keeps a report about another user, with copies of the messages
// it names (which must be the reported user's, in a chat the actor can
// read, as the actor sees them), and blocks that user if asked.
func (s *Service) Report(ctx context.Context, a Actor, in ReportInput) (string, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	in.Reason = strings.TrimSpace(in.Reason)
	switch {
	case in.Reason == "":
		return "", wire.Errorf(wire.CodeBadRequest, "a report needs a reason")
	case len(in.Reason) > MaxReasonBytes || !utf8.ValidString(in.Reason):
		return "", wire.Errorf(wire.CodeBadRequest, "reason must be UTF-8 of at most %d bytes", MaxReasonBytes)
	case in.UserID == a.UserID:
		return "", wire.Errorf(wire.CodeBadRequest, "you cannot report yourself")
	case len(in.MsgIDs) > MaxReportMessages:
		return "", wire.Errorf(wire.CodeTooLarge, "a report names at most %d messages", MaxReportMessages)
	case len(in.MsgIDs) > 0 && in.ChatID == "":
		return "", wire.Errorf(wire.CodeBadRequest, "msg_ids need their chat_id")
	}
	if !isUserID(in.UserID) {
		return "", wire.Errorf(wire.CodeNotFound, "no such user")
	}
	if _, err := s.st.User(ctx, in.UserID); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return "", wire.Errorf(wire.CodeNotFound, "no such user")
		}
		return "", err
	}
	r := store.Report{ID: store.NewID(store.PrefixReport), By: a.UserID, UserID: in.UserID,
		ChatID: in.ChatID, Reason: in.Reason, TS: s.now().UnixMilli()}
	if in.ChatID != "" {
		from, err := s.readFrom(ctx, a, in.ChatID)
		if err != nil {
			return "", err
		}
		for _, id := range store.Unique(in.MsgIDs) {
			m, err := s.st.Message(ctx, in.ChatID, id)
			if errors.Is(err, store.ErrNotFound) || (err == nil && (m.Seq < from || m.HiddenFrom == a.UserID || m.Expired(r.TS))) {
				return "", wire.Errorf(wire.CodeNotFound, "no message %q in this chat", truncate(id, 40))
			}
			if err != nil {
				return "", err
			}
			if m.From != in.UserID {
				return "", wire.Errorf(wire.CodeBadRequest, "message %q is not by the reported user", truncate(id, 40))
			}
			r.Messages = append(r.Messages, m)
		}
	}
	if err := s.st.AddReport(ctx, r); err != nil {
		return "", err
	}
	if in.Block {
		if err := s.st.SetBlock(ctx, a.UserID, in.UserID, true, r.TS); err != nil {
			return "", err
		}
	}
	s.log.Info("report filed", "report", r.ID, "by", a.UserID, "user", in.UserID, "messages", len(r.Messages))
	return r.ID, nil
}

func isUserID(id string) bool {
	return len(id) > 1 && len(id) <= wire.MaxIDLen && id[:1] == store.PrefixUser
}

// MaxStarred bounds the starred list.
const MaxStarred = 500

// seenMessage returns message msgID of chatID as the actor may see it, or
// forbidden / not_found: not a member, before it joined, hidden from it by
// a block or deleted for it, or the entry of a group change.
func (s *Service) seenMessage(ctx context.Context, a Actor, chatID, msgID string) (store.Message, error) {
	from, err := s.readFrom(ctx, a, chatID)
	if err != nil {
		return store.Message{}, err
	}
	m, err := s.st.Message(ctx, chatID, msgID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (m.Seq < from || m.HiddenFrom == a.UserID || m.Kind != "" || m.Expired(s.now().UnixMilli()))) {
		return store.Message{}, wire.Errorf(wire.CodeNotFound, "no such message")
	}
	if err != nil {
		return store.Message{}, err
	}
	mine, err := s.st.HiddenSeqs(ctx, a.UserID, chatID, m.Seq, m.Seq)
	if err != nil {
		return store.Message{}, err
	}
	if mine[m.Seq] {
		return store.Message{}, wire.Errorf(wire.CodeNotFound, "no such message")
	}
	return m, nil
}

// DeleteForMe hides a message from the actor's history, on all its
// devices; the others still see it.
func (s *Service) DeleteForMe(ctx context.Context, a Actor, chatID, msgID string) error {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	m, err := s.seenMessage(ctx, a, chatID, msgID)
	if err != nil {
		return err
	}
	if err := s.st.HideMessage(ctx, a.UserID, chatID, m.Seq); err != nil {
		return err
	}
	// Stars of a message deleted for me go with it.
	return s.st.SetStar(ctx, a.UserID, store.Star{ChatID: chatID, Seq: m.Seq, MsgID: m.ID}, false)
}

// SetStar stars or unstars a message for the actor.
func (s *Service) SetStar(ctx context.Context, a Actor, chatID, msgID string, on bool) error {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	m, err := s.seenMessage(ctx, a, chatID, msgID)
	if err != nil {
		return err
	}
	return s.st.SetStar(ctx, a.UserID, store.Star{ChatID: chatID, Seq: m.Seq, MsgID: m.ID, TS: s.now().UnixMilli()}, on)
}

// Starred lists the messages the actor starred that it can still see,
// newest star first.
func (s *Service) Starred(ctx context.Context, a Actor) ([]store.Message, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	stars, err := s.st.Starred(ctx, a.UserID, MaxStarred)
	if err != nil {
		return nil, err
	}
	out := make([]store.Message, 0, len(stars))
	for _, st := range stars {
		m, err := s.seenMessage(ctx, a, st.ChatID, st.MsgID)
		var we *wire.Error
		if errors.As(err, &we) {
			continue // no longer a member, or gone: not listed
		}
		if err != nil {
			return nil, err
		}
		out = append(out, m)
	}
	return out, nil
}
