package server

import (
	"bytes"
	"encoding/json"
	"strconv"
	"unicode/utf8"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// Frames are rendered by hand on the hot path: a message is rendered once
// (messageTail) and each device's frame only prefixes its own cursor, instead
// of running encoding/json once per recipient.

// messageTail renders everything of a message frame after the cursor.
func messageTail(m *store.Message) []byte {
	b := make([]byte, 0, 160+len(m.Body))
	b = append(b, `"msg_id":`...)
	b = appendString(b, m.ID)
	b = append(b, `,"chat_id":`...)
	b = appendString(b, m.ChatID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, m.Seq, 10)
	b = append(b, `,"from":`...)
	b = appendString(b, m.From)
	b = append(b, `,"from_device":`...)
	b = appendString(b, m.FromDevice)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, m.TS, 10)
	b = append(b, `,"body":`...)
	if len(m.Body) == 0 {
		b = append(b, "{}"...)
	} else {
		b = append(b, m.Body...)
	}
	if m.ReplyTo != "" {
		b = append(b, `,"reply_to":`...)
		b = appendString(b, m.ReplyTo)
	}
	if m.EditedTS != 0 {
		b = append(b, `,"edited_ts":`...)
		b = strconv.AppendInt(b, m.EditedTS, 10)
	}
	if len(m.Reactions) > 0 {
		b = append(b, `,"reactions":`...)
		b = append(b, marshalFrame(reactionSummary(m.Reactions))...)
	}
	if m.ExpiresTS != 0 {
		b = append(b, `,"expires_ts":`...)
		b = strconv.AppendInt(b, m.ExpiresTS, 10)
	}
	return append(b, '}')
}

// reactionSummary groups reactions by emoji, in the order each emoji was
// first given.
func reactionSummary(rs []store.Reaction) []wire.ReactionSummary {
	var out []wire.ReactionSummary
	for _, r := range rs {
		i := 0
		for i < len(out) && out[i].Emoji != r.Emoji {
			i++
		}
		if i == len(out) {
			out = append(out, wire.ReactionSummary{Emoji: r.Emoji})
		}
		out[i].UserIDs = append(out[i].UserIDs, r.UserID)
	}
	return out
}

// eventFrame prefixes a rendered tail with the frame type and cursor.
func eventFrame(typ string, cursor int64, tail []byte) []byte {
	b := make([]byte, 0, 40+len(tail))
	b = append(b, `{"type":"`...)
	b = append(b, typ...)
	b = append(b, `","cursor":`...)
	b = strconv.AppendInt(b, cursor, 10)
	b = append(b, ',')
	return append(b, tail...)
}

func receiptTail(r *store.Receipt) []byte {
	b := make([]byte, 0, 96+len(r.MsgIDs)*30)
	b = append(b, `"chat_id":`...)
	b = appendString(b, r.ChatID)
	b = append(b, `,"msg_ids":[`...)
	for i, id := range r.MsgIDs {
		if i > 0 {
			b = append(b, ',')
		}
		b = appendString(b, id)
	}
	b = append(b, `],"status":`...)
	b = appendString(b, r.Status)
	b = append(b, `,"by":`...)
	b = appendString(b, r.By)
	if len(r.Others) > 0 {
		b = append(b, `,"user_ids":[`...)
		b = appendString(b, r.By)
		for _, u := range r.Others {
			b = append(b, ',')
			b = appendString(b, u)
		}
		b = append(b, ']')
	}
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, r.TS, 10)
	return append(b, '}')
}

// groupTail renders everything of a group event's frame after the cursor:
// the change named by the entry's body and g, the group after it (null
// when unknown).
func groupTail(m *store.Message, g *store.Group) []byte {
	var b wire.Body
	// The body is the server's own JSON; a body that does not parse still
	// yields a frame, so that the cursor advances.
	_ = json.Unmarshal(m.Body, &b)
	f := wire.GroupFrame{ChatID: m.ChatID, Seq: m.Seq, By: m.From, TS: m.TS}
	if b.Group != nil {
		f.Change, f.By, f.UserIDs = b.Group.Change, b.Group.By, b.Group.UserIDs
	}
	if g != nil {
		wg := wireGroup(g)
		f.Group = &wg
	}
	full := marshalFrame(f)
	// The frame's leading "type" and "cursor" are the prefix eventFrame
	// writes per device: cut them off.
	i := bytes.Index(full, []byte(`"chat_id":`))
	return full[i:]
}

// renderEvent renders an inbox event as its frame; g is the group of a
// group event (nil: rendered without it).
func renderEvent(ev *store.Event, g *store.Group) []byte {
	switch {
	case ev.Kind == store.EventGroup && ev.Message != nil:
		return eventFrame(wire.TypeGroup, ev.Cursor, groupTail(ev.Message, g))
	case ev.Message != nil:
		return eventFrame(wire.TypeMessage, ev.Cursor, messageTail(ev.Message))
	case ev.Receipt != nil:
		return eventFrame(wire.TypeReceipt, ev.Cursor, receiptTail(ev.Receipt))
	default:
		// An event kind this node does not know (a newer node wrote it):
		// deliver a frame clients ignore, so the cursor still advances.
		b := append([]byte(`{"type":`), appendString(nil, ev.Kind)...)
		b = append(b, `,"cursor":`...)
		b = strconv.AppendInt(b, ev.Cursor, 10)
		return append(b, '}')
	}
}

func sentFrame(id string, m *store.Message) []byte {
	b := make([]byte, 0, 128)
	b = append(b, `{"type":"sent","id":`...)
	b = appendString(b, id)
	b = append(b, `,"msg_id":`...)
	b = appendString(b, m.ID)
	b = append(b, `,"chat_id":`...)
	b = appendString(b, m.ChatID)
	b = append(b, `,"seq":`...)
	b = strconv.AppendInt(b, m.Seq, 10)
	b = append(b, `,"ts":`...)
	b = strconv.AppendInt(b, m.TS, 10)
	return append(b, '}')
}

func errorFrame(id string, e *wire.Error) []byte {
	b, _ := json.Marshal(wire.ErrorFrame{Type: wire.TypeError, ID: id, Code: e.Code,
		Message: e.Message, RetryAfter: e.RetryAfter})
	return b
}

func marshalFrame(v any) []byte {
	b, err := json.Marshal(v)
	if err != nil {
		// Only our own frame structs reach here; they always marshal.
		panic("server: frame does not marshal: " + err.Error())
	}
	return b
}

// wireMessage converts a stored message to its REST form.
func wireMessage(m *store.Message) wire.Message {
	w := wire.Message{MsgID: m.ID, ChatID: m.ChatID, Seq: m.Seq, From: m.From,
		FromDevice: m.FromDevice, TS: m.TS, ReplyTo: m.ReplyTo, EditedTS: m.EditedTS,
		Reactions: reactionSummary(m.Reactions), ExpiresTS: m.ExpiresTS}
	_ = json.Unmarshal(m.Body, &w.Body)
	return w
}

const hexDigits = "0123456789abcdef"

// appendString appends s as a JSON string, escaping what RFC 8259 requires
// and replacing invalid UTF-8 like encoding/json does.
func appendString(b []byte, s string) []byte {
	b = append(b, '"')
	start := 0
	for i := 0; i < len(s); {
		c := s[i]
		if c < utf8.RuneSelf {
			if c >= 0x20 && c != '"' && c != '\\' {
				i++
				continue
			}
			b = append(b, s[start:i]...)
			switch c {
			case '"', '\\':
				b = append(b, '\\', c)
			case '\n':
				b = append(b, '\\', 'n')
			case '\r':
				b = append(b, '\\', 'r')
			case '\t':
				b = append(b, '\\', 't')
			default:
				b = append(b, '\\', 'u', '0', '0', hexDigits[c>>4], hexDigits[c&0xf])
			}
			i++
			start = i
			continue
		}
		r, size := utf8.DecodeRuneInString(s[i:])
		if r == utf8.RuneError && size == 1 {
			b = append(b, s[start:i]...)
			b = append(b, `\ufffd`...)
			i += size
			start = i
			continue
		}
		// U+2028 and U+2029 break JavaScript string literals.
		if r == '\u2028' || r == '\u2029' {
			b = append(b, s[start:i]...)
			b = append(b, '\\', 'u', '2', '0', '2', hexDigits[r&0xf])
			i += size
			start = i
			continue
		}
		i += size
	}
	b = append(b, s[start:]...)
	return append(b, '"')
}

// wireGroup is the group object of the REST API and group events.
func wireGroup(g *store.Group) wire.Group {
	out := wire.Group{ChatID: g.ChatID, Name: g.Name, Description: g.Description,
		Members:   make([]wire.GroupMember, len(g.Members)),
		Settings:  wire.GroupSettings{EditInfo: g.Settings.EditInfo, Send: g.Settings.Send},
		CreatedBy: g.CreatedBy, CreatedAt: rfc3339(g.CreatedAt)}
	for i, m := range g.Members {
		out.Members[i] = wire.GroupMember{UserID: m.UserID, Role: m.Role, JoinedAt: rfc3339(m.JoinedAt)}
	}
	return out
}
