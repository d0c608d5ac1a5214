package chat

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"slices"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// members returns the members of a chat userID may act in, or forbidden /
// not_found. Direct chats are known from their id alone, so a user may
// type in one before its first message.
func (s *Service) members(ctx context.Context, userID, chatID string) ([]string, error) {
	if a, b, ok := store.DirectChatMembers(chatID); ok {
		if userID != a && userID != b {
			return nil, wire.Errorf(wire.CodeForbidden, "not a member of this chat")
		}
		if a == b {
			return []string{a}, nil
		}
		return []string{a, b}, nil
	}
	if !isGroup(chatID) {
		return nil, wire.Errorf(wire.CodeNotFound, "no such chat")
	}
	if _, err := s.member(ctx, chatID, userID); err != nil {
		return nil, s.groupErr(err)
	}
	c, err := s.st.Chat(ctx, chatID)
	if err != nil {
		return nil, s.groupErr(err)
	}
	return c.Members, nil
}

// Ack removes the actor's device's inbox events up to cursor and routes the
// delivered receipts it causes.
func (s *Service) Ack(ctx context.Context, a Actor, cursor int64) (receipts int, err error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	ds, err := s.st.Ack(ctx, a.DeviceID, cursor)
	if err != nil {
		return 0, err
	}
	s.d.Dispatch(ctx, ds, nil)
	return len(ds), nil
}

// Read marks chatID read up to seq for the actor's user and routes the read
// receipts. A user who turned read receipts off sends none in direct
// chats; in groups they always flow (WhatsApp's rule).
func (s *Service) Read(ctx context.Context, a Actor, chatID string, seq int64) (receipts int, err error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	if _, err := s.members(ctx, a.UserID, chatID); err != nil {
		return 0, err
	}
	notify := true
	if !isGroup(chatID) {
		u, err := s.st.User(ctx, a.UserID)
		if err != nil {
			return 0, err
		}
		notify = !u.HideReadReceipts
	}
	ds, err := s.st.MarkRead(ctx, a.UserID, chatID, seq, s.now().UnixMilli(), notify)
	if err != nil {
		if errors.Is(err, store.ErrNotFound) {
			return 0, wire.Errorf(wire.CodeNotFound, "no such chat")
		}
		return 0, s.groupErr(err)
	}
	s.d.Dispatch(ctx, ds, nil)
	return len(ds), nil
}

// Typing tells the other members of chatID that the actor is typing.
func (s *Service) Typing(ctx context.Context, a Actor, chatID, state string) error {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	members, err := s.members(ctx, a.UserID, chatID)
	if err != nil {
		return err
	}
	if !isGroup(chatID) {
		// Typing never crosses a block, either way; the typist is not
		// told, and learns nothing either of whether the chat exists
		// (messages hidden by the block made it).
		for _, u := range members {
			if u == a.UserID {
				continue
			}
			if blocked, err := s.eitherBlocks(ctx, a.UserID, u); err != nil || blocked {
				return err
			}
		}
		// Only into a chat that exists: a direct chat id names its
		// members, but before its first message nobody asked to hear from
		// the other.
		if _, err := s.st.Chat(ctx, chatID); errors.Is(err, store.ErrNotFound) {
			return wire.Errorf(wire.CodeNotFound, "no such chat")
		} else if err != nil {
			return err
		}
	}
	others := make([]string, 0, len(members))
	for _, u := range members {
		if u != a.UserID {
			others = append(others, u)
		}
	}
	frame, err := json.Marshal(wire.Typing{Type: wire.TypeTyping, ChatID: chatID, From: a.UserID, State: state})
	if err != nil {
		return err
	}
	s.d.Typing(ctx, others, frame)
	return nil
}

// History returns a page of chatID's log, newest first, to a member: in a
// group only from the entry that added the member.
func (s *Service) History(ctx context.Context, a Actor, chatID string, before int64, limit int) (msgs []store.Message, nextBefore int64, err error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	from, err := s.readFrom(ctx, a, chatID)
	if err != nil {
		return nil, 0, err
	}
	if limit <= 0 {
		limit = s.cfg.DefaultHistLimit
	}
	limit = min(limit, s.cfg.MaxHistoryLimit)
	if before != 0 && before <= from {
		return nil, 0, nil
	}
	msgs, err = s.st.History(ctx, chatID, before, limit)
	if err != nil && !errors.Is(err, store.ErrNotFound) {
		return nil, 0, err
	}
	full := len(msgs) == limit
	for i, m := range msgs {
		if m.Seq < from {
			msgs, full = msgs[:i], false
			break
		}
	}
	if n := len(msgs); full && msgs[n-1].Seq > from {
		nextBefore = msgs[n-1].Seq
	}
	msgs = visible(msgs, a.UserID)
	// A disappearing message is gone at its time, whether or not the
	// sweeper has erased it yet.
	now := s.now().UnixMilli()
	msgs = slices.DeleteFunc(msgs, func(m store.Message) bool { return m.Expired(now) })
	if from > 1 {
		// Actions on messages from before the member joined are not its
		// to see either (the store does not deliver them to it).
		var err error
		if msgs, err = s.dropEarlyActions(ctx, chatID, msgs, from); err != nil {
			return nil, 0, err
		}
	}
	if len(msgs) > 0 {
		mine, err := s.st.HiddenSeqs(ctx, a.UserID, chatID, msgs[len(msgs)-1].Seq, msgs[0].Seq)
		if err != nil {
			return nil, 0, err
		}
		msgs = slices.DeleteFunc(msgs, func(m store.Message) bool { return mine[m.Seq] })
	}
	return msgs, nextBefore, nil
}

// dropEarlyActions drops, in place, the action entries of msgs whose
// target is older than from.
func (s *Service) dropEarlyActions(ctx context.Context, chatID string, msgs []store.Message, from int64) ([]store.Message, error) {
	out := msgs[:0]
	for _, m := range msgs {
		if id := actionTarget(&m); id != "" {
			t, err := s.st.Message(ctx, chatID, id)
			if err != nil && !errors.Is(err, store.ErrNotFound) {
				return nil, err
			}
			if err == nil && t.Seq < from {
				continue
			}
		}
		out = append(out, m)
	}
	return out, nil
}

// actionTarget returns the message id an action entry acts on ("" for
// other entries).
func actionTarget(m *store.Message) string {
	if m.Kind != store.KindAction {
		return ""
	}
	var b wire.Body
	if json.Unmarshal(m.Body, &b) != nil {
		return ""
	}
	switch {
	case b.Reaction != nil:
		return b.Reaction.MsgID
	case b.Edit != nil:
		return b.Edit.MsgID
	case b.Delete != nil:
		return b.Delete.MsgID
	}
	return ""
}

// readFrom answers forbidden or not_found when the actor may not read
// chatID, else the first seq of it the actor may see: in a group the entry
// that added it, else 1. History, message info and reports share it.
func (s *Service) readFrom(ctx context.Context, a Actor, chatID string) (int64, error) {
	if isGroup(chatID) {
		m, err := s.member(ctx, chatID, a.UserID)
		if err != nil {
			return 0, s.groupErr(err)
		}
		return max(m.JoinedSeq, 1), nil
	}
	if _, err := s.members(ctx, a.UserID, chatID); err != nil {
		return 0, err
	}
	return 1, nil
}

// visible drops the messages hidden from userID (sent while it blocked
// their author), in place.
func visible(msgs []store.Message, userID string) []store.Message {
	return slices.DeleteFunc(msgs, func(m store.Message) bool { return m.HiddenFrom == userID })
}

// hiddenScan bounds how far back a chat list looks for the last message a
// user may see when the chat's last ones are hidden from it.
const hiddenScan = 100

// hiddenPages bounds the pages of hiddenScan messages a chat list reads
// back through for one chat.
const hiddenPages = 10

// Chats lists the actor's chats. A chat whose last message is hidden from
// the actor (a block, deleted for it) or disappeared shows the last one it
// may see, and counts only those as unread.
func (s *Service) Chats(ctx context.Context, a Actor) ([]store.ChatSummary, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	sums, err := s.st.Chats(ctx, a.UserID)
	if err != nil {
		return nil, err
	}
	out := sums[:0]
	resort := false
	now := s.now().UnixMilli()
	for i := range sums {
		sum := &sums[i]
		if sum.Last == nil {
			out = append(out, *sum)
			continue
		}
		mine, err := s.st.HiddenSeqs(ctx, a.UserID, sum.Chat.ID, sum.Last.Seq, sum.Last.Seq)
		if err != nil {
			return nil, err
		}
		if sum.Last.HiddenFrom != a.UserID && !mine[sum.Last.Seq] && !sum.Last.Expired(now) {
			out = append(out, *sum)
			continue
		}
		sum.Last, sum.Unread = nil, 0
		onlyBlocked, whole := true, false
		// Page back until a message the user may see: a blocked user who
		// wrote hiddenScan messages since must not push the chat out of
		// the blocker's list. hiddenPages bounds the work of one chat.
		before := int64(0)
		for range hiddenPages {
			page, err := s.st.History(ctx, sum.Chat.ID, before, hiddenScan)
			if err != nil {
				return nil, err
			}
			if len(page) < hiddenScan {
				whole = true
			}
			if len(page) == 0 {
				break
			}
			before = page[len(page)-1].Seq
			if mine, err = s.st.HiddenSeqs(ctx, a.UserID, sum.Chat.ID, page[len(page)-1].Seq, page[0].Seq); err != nil {
				return nil, err
			}
			for _, m := range page {
				if m.HiddenFrom == a.UserID {
					continue
				}
				onlyBlocked = false
				if mine[m.Seq] || m.Expired(now) {
					continue
				}
				if sum.Last == nil {
					last := m
					sum.Last = &last
				}
				if m.Seq > sum.ReadSeq && m.From != a.UserID {
					sum.Unread++
				}
			}
			if sum.Last != nil || whole {
				break
			}
		}
		if onlyBlocked && !whole && sum.ReadSeq > 0 {
			// Not all of it was read, but the user read some of it: the
			// chat was known to it before the messages hidden from it.
			onlyBlocked = false
		}
		if sum.Last != nil {
			// Its place in the list and its last seq are those of what
			// the user sees.
			sum.Chat.LastSeq = sum.Last.Seq
			resort = true
		}
		if !onlyBlocked {
			// A chat of nothing but messages hidden by a block is not
			// listed: that it exists would tell of them. One whose
			// messages you deleted for yourself stays, empty.
			out = append(out, *sum)
		}
	}
	if resort {
		slices.SortStableFunc(out, func(x, y store.ChatSummary) int { return cmp.Compare(activity(&y), activity(&x)) })
	}
	return out, nil
}

// activity is when a chat last had something to show: its last message,
// else its creation.
func activity(c *store.ChatSummary) int64 {
	if c.Last != nil {
		return c.Last.TS
	}
	return c.Chat.CreatedAt.UnixMilli()
}

// CheckMember answers nil if the actor may read chatID, else the error
// every other call about that chat would answer.
func (s *Service) CheckMember(ctx context.Context, a Actor, chatID string) error {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	_, err := s.members(ctx, a.UserID, chatID)
	return err
}

// eitherBlocks reports whether a blocks b or b blocks a.
func (s *Service) eitherBlocks(ctx context.Context, a, b string) (bool, error) {
	if blocked, err := s.st.Blocked(ctx, a, b); err != nil || blocked {
		return blocked, err
	}
	return s.st.Blocked(ctx, b, a)
}
