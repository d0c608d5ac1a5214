package rabbitmq

import (
	"encoding/binary"
	"errors"

	"github.com/tern-im/tern/routing"
)

// errBadBody reports a message body that is not an encoded envelope.
var errBadBody = errors.New("rabbitmq: malformed envelope body")

// encode lays an envelope out as its kind byte, its cursor as a signed
// varint and its frame. JSON would cost a copy of the frame with escaping
// for every envelope; this costs one allocation.
func encode(env routing.Envelope) []byte {
	b := make([]byte, 0, 1+binary.MaxVarintLen64+len(env.Frame))
	b = append(b, env.Kind)
	b = binary.AppendVarint(b, env.Cursor)
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
	if rest := b[1+n:]; len(rest) > 0 {
		env.Frame = rest
	}
	return env, nil
}
