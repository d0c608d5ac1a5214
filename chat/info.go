package chat

import (
	"context"
	"errors"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// MessageInfo returns, to the author of message msgID in chatID, when each
// reader got it and read it (0: not yet): the other member of a direct
// chat (nobody in a chat with oneself), or the group's current members
// who were in it when it was sent, in joining order.
//
// Refusals, in the order they are checked: a chat the actor is not in is
// forbidden (a group that does not exist, or an id that names no chat, is
// not_found, as for History); a message that is not in the chat, or that
// the actor cannot see (sent before it joined the group), is not_found, and
// so is the entry of a group change, which is no message and has no
// receipts; a message of someone else is forbidden.
func (s *Service) MessageInfo(ctx context.Context, a Actor, chatID, msgID string) ([]store.Marks, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	from, err := s.readFrom(ctx, a, chatID)
	if err != nil {
		return nil, err
	}
	m, err := s.st.Message(ctx, chatID, msgID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && (m.Seq < from || m.Kind == store.EventGroup)) {
		return nil, wire.Errorf(wire.CodeNotFound, "no such message")
	}
	if err != nil {
		return nil, err
	}
	if m.From != a.UserID {
		return nil, wire.Errorf(wire.CodeForbidden, "only the author of a message may see its receipts")
	}
	readers, err := s.readers(ctx, chatID, &m)
	if err != nil || len(readers) == 0 {
		return []store.Marks{}, err
	}
	marks, err := s.st.MessageMarks(ctx, chatID, m.Seq, readers)
	if err != nil {
		return nil, err
	}
	for i := range marks {
		// A message can be read without any device of the reader acking
		// it (read through history, or the ack still on its way): it was
		// delivered by the time it was read.
		if r := marks[i].ReadTS; r != 0 && (marks[i].DeliveredTS == 0 || marks[i].DeliveredTS > r) {
			marks[i].DeliveredTS = r
		}
	}
	return marks, nil
}

// readers returns who m is for, besides its author. In a group, members
// who joined after m never got it; listing them would show a "delivered"
// from their first ack of a later message, which moves their mark past m.
func (s *Service) readers(ctx context.Context, chatID string, m *store.Message) ([]string, error) {
	if !isGroup(chatID) {
		x, y, _ := store.DirectChatMembers(chatID)
		switch {
		case x == y:
			return nil, nil
		case x == m.From:
			return []string{y}, nil
		}
		return []string{x}, nil
	}
	g, err := s.st.Group(ctx, chatID)
	if err != nil {
		return nil, s.groupErr(err)
	}
	out := make([]string, 0, len(g.Members))
	for _, mem := range g.Members {
		if mem.UserID != m.From && mem.JoinedSeq <= m.Seq {
			out = append(out, mem.UserID)
		}
	}
	return out, nil
}
