package wire

import "unicode/utf8"

// Server frame keys the fast path knows, as bits of a set: a key seen twice
// sends the frame to encoding/json, whose handling of repeats (the last
// wins, objects merge) the fast path does not copy.
const (
	kType = 1 << iota
	kCursor
	kID
	kMsgID
	kChatID
	kSeq
	kFrom
	kFromDevice
	kTS
	kBody
	kReplyTo
	kEditedTS
	kExpiresTS
	kMsgIDs
	kStatus
	kBy
	kState
	kUserID
	kOnline
	kLastSeen
	kChange
	kUserIDs
	kCode
	kMessage
	kRetryAfter
)

// fastServerFrame decodes the frames a client gets by the thousand
// (messages, receipts, sent, presence) without reflection: in the group
// benchmark, encoding/json was a third of the load generator's CPU. It
// takes flat objects of plain strings (no escapes, valid UTF-8), small
// non-negative integers, booleans, string arrays and a body of text
// fields, and gives up (false, f partly written) on anything else: an
// unknown or repeated key, a key in another case, null, a float, a
// reaction or group object. The caller then decodes the frame with
// encoding/json, so the fast path answers only where both agree
// (FuzzDecodeServerFrame checks that they do).
func fastServerFrame(data []byte, f *ServerFrame) bool {
	// One copy of the frame backs every string field: one allocation
	// instead of one per field (a receipt lists hundreds of user ids).
	s := fscan{b: data, text: string(data)}
	if !s.object(func(k []byte) (uint32, bool) { return s.field(k, f) }) {
		return false
	}
	s.space()
	return s.i == len(s.b)
}

// object reads an object whose values field decodes, one key at a time;
// field returns the key's bit, and a key seen twice gives up.
func (s *fscan) object(field func(k []byte) (bit uint32, ok bool)) bool {
	if !s.next('{') {
		return false
	}
	if s.next('}') {
		return true
	}
	var seen uint32
	for {
		k, ok := s.key()
		if !ok {
			return false
		}
		bit, ok := field(k)
		if !ok || seen&bit != 0 {
			return false
		}
		seen |= bit
		if !s.next(',') {
			return s.next('}')
		}
	}
}

// field decodes the value of key k into f and returns k's bit.
func (s *fscan) field(k []byte, f *ServerFrame) (uint32, bool) {
	var ok bool
	switch string(k) {
	case "type":
		f.Type, ok = s.str()
		return kType, ok
	case "cursor":
		f.Cursor, ok = s.int()
		return kCursor, ok
	case "id":
		f.ID, ok = s.str()
		return kID, ok
	case "msg_id":
		f.MsgID, ok = s.str()
		return kMsgID, ok
	case "chat_id":
		f.ChatID, ok = s.str()
		return kChatID, ok
	case "seq":
		f.Seq, ok = s.int()
		return kSeq, ok
	case "from":
		f.From, ok = s.str()
		return kFrom, ok
	case "from_device":
		f.FromDevice, ok = s.str()
		return kFromDevice, ok
	case "ts":
		f.TS, ok = s.int()
		return kTS, ok
	case "body":
		f.Body = &Body{}
		return kBody, s.body(f.Body)
	case "reply_to":
		f.ReplyTo, ok = s.str()
		return kReplyTo, ok
	case "edited_ts":
		f.EditedTS, ok = s.int()
		return kEditedTS, ok
	case "expires_ts":
		f.ExpiresTS, ok = s.int()
		return kExpiresTS, ok
	case "msg_ids":
		f.MsgIDs, ok = s.strs()
		return kMsgIDs, ok
	case "status":
		f.Status, ok = s.str()
		return kStatus, ok
	case "by":
		f.By, ok = s.str()
		return kBy, ok
	case "state":
		f.State, ok = s.str()
		return kState, ok
	case "user_id":
		f.UserID, ok = s.str()
		return kUserID, ok
	case "online":
		f.Online, ok = s.bool()
		return kOnline, ok
	case "last_seen":
		var v string
		v, ok = s.str()
		f.LastSeen = &v
		return kLastSeen, ok
	case "change":
		f.Change, ok = s.str()
		return kChange, ok
	case "user_ids":
		f.UserIDs, ok = s.strs()
		return kUserIDs, ok
	case "code":
		f.Code, ok = s.str()
		return kCode, ok
	case "message":
		f.Message, ok = s.str()
		return kMessage, ok
	case "retry_after":
		var n int64
		n, ok = s.int()
		f.RetryAfter = int(n)
		return kRetryAfter, ok
	}
	return 0, false
}

// body decodes a body of text fields only.
func (s *fscan) body(b *Body) bool {
	return s.object(func(k []byte) (uint32, bool) {
		var ok bool
		switch string(k) {
		case "text":
			b.Text, ok = s.str()
			return 1, ok
		case "media_id":
			b.MediaID, ok = s.str()
			return 2, ok
		case "caption":
			b.Caption, ok = s.str()
			return 4, ok
		case "forwarded":
			b.Forwarded, ok = s.bool()
			return 8, ok
		case "deleted":
			b.Deleted, ok = s.bool()
			return 16, ok
		case "expired":
			b.Expired, ok = s.bool()
			return 32, ok
		}
		return 0, false
	})
}

// fscan reads JSON tokens from b at i.
type fscan struct {
	b    []byte
	text string // b as a string
	i    int
}

func (s *fscan) space() {
	for s.i < len(s.b) {
		switch s.b[s.i] {
		case ' ', '\t', '\n', '\r':
			s.i++
		default:
			return
		}
	}
}

// next consumes c after optional space, if it is there.
func (s *fscan) next(c byte) bool {
	s.space()
	if s.i < len(s.b) && s.b[s.i] == c {
		s.i++
		return true
	}
	return false
}

// raw reads a string without escapes or control characters, in valid
// UTF-8 (encoding/json replaces invalid bytes), and returns where its
// bytes are.
func (s *fscan) raw() (start, end int, ok bool) {
	s.space()
	if s.i >= len(s.b) || s.b[s.i] != '"' {
		return 0, 0, false
	}
	start = s.i + 1
	for j := start; j < len(s.b); j++ {
		switch c := s.b[j]; {
		case c == '"':
			if !utf8.Valid(s.b[start:j]) {
				return 0, 0, false
			}
			s.i = j + 1
			return start, j, true
		case c == '\\' || c < 0x20:
			return 0, 0, false
		}
	}
	return 0, 0, false
}

func (s *fscan) key() ([]byte, bool) {
	start, end, ok := s.raw()
	return s.b[start:end], ok && s.next(':')
}

func (s *fscan) str() (string, bool) {
	start, end, ok := s.raw()
	return s.text[start:end], ok
}

// int reads a non-negative integer of at most 18 digits (no overflow).
func (s *fscan) int() (int64, bool) {
	s.space()
	start := s.i
	var n int64
	for s.i < len(s.b) && s.b[s.i] >= '0' && s.b[s.i] <= '9' {
		n = n*10 + int64(s.b[s.i]-'0')
		s.i++
	}
	digits := s.i - start
	if digits == 0 || digits > 18 || digits > 1 && s.b[start] == '0' {
		return 0, false
	}
	if s.i < len(s.b) {
		switch s.b[s.i] {
		case '.', 'e', 'E':
			return 0, false
		}
	}
	return n, true
}

func (s *fscan) bool() (bool, bool) {
	s.space()
	rest := s.b[s.i:]
	switch {
	case len(rest) >= 4 && string(rest[:4]) == "true":
		s.i += 4
		return true, true
	case len(rest) >= 5 && string(rest[:5]) == "false":
		s.i += 5
		return false, true
	}
	return false, false
}

// strs reads an array of strings; [] gives an empty, non-nil slice, as
// encoding/json does.
func (s *fscan) strs() ([]string, bool) {
	if !s.next('[') {
		return nil, false
	}
	out := []string{}
	if s.next(']') {
		return out, true
	}
	for {
		v, ok := s.str()
		if !ok {
			return nil, false
		}
		out = append(out, v)
		if s.next(',') {
			continue
		}
		return out, s.next(']')
	}
}
