package rabbitmq

import (
	"encoding/binary"
	"errors"

	"github.com/tern-im/tern/routing"
)

// errBadBody reports a message body that is not an encoded envelope.
var errBadBody = errors.New("rabbitmq: malformed envelope body")

// encode lays an envelope out as its kind byte, its cursor as a signed
// varint, for KindUsers its users (a uvarint count, then each as a uvarint
// length and its bytes), and its frame. JSON would cost a copy of the frame
// with escaping for every envelope; this costs one allocation.
func encode(env routing.Envelope) []byte {
	n := 1 + binary.MaxVarintLen64 + len(env.Frame)
	if routing.HasUsers(env.Kind) {
		n += binary.MaxVarintLen64
		for _, u := range env.Users {
			n += binary.MaxVarintLen64 + len(u)
		}
	}
	b := make([]byte, 0, n)
	b = append(b, env.Kind)
	b = binary.AppendVarint(b, env.Cursor)
	if routing.HasUsers(env.Kind) {
		b = binary.AppendUvarint(b, uint64(len(env.Users)))
		for _, u := range env.Users {
			b = binary.AppendUvarint(b, uint64(len(u)))
			b = append(b, u...)
		}
	}
	return append(b, env.Frame...)
}

// decode is the inverse of encode. The frame aliases b.
func decode(b []byte) (routing.Envelope, error) {
	if len(b) < 2 {
		return routing.Envelope{}, errBadBody
	}
	cursor, n := binary.Varint(b[1:])
	if n <= 0 {
		return routing.Envelope{}, errBadBody
	}
	env := routing.Envelope{Kind: b[0], Cursor: cursor}
	rest := b[1+n:]
	if routing.HasUsers(env.Kind) {
		count, n := binary.Uvarint(rest)
		// Each user takes at least one byte: a count beyond what is left
		// is a lie, not a reason to allocate.
		if n <= 0 || count > uint64(len(rest)) {
			return routing.Envelope{}, errBadBody
		}
		rest = rest[n:]
		env.Users = make([]string, 0, count)
		for range count {
			l, n := binary.Uvarint(rest)
			if n <= 0 || l > uint64(len(rest)-n) {
				return routing.Envelope{}, errBadBody
			}
			env.Users = append(env.Users, string(rest[n:n+int(l)]))
			rest = rest[n+int(l):]
		}
	}
	if len(rest) > 0 {
		env.Frame = rest
	}
	return env, nil
}
