package store

import (
	"crypto/rand"
	"encoding/base32"
	"encoding/binary"
	"time"
)

var idEncoding = base32.NewEncoding("0123456789abcdefghijklmnopqrstuv").WithPadding(base32.NoPadding)

// ID prefixes: the first byte of an id tells what it names, so that a send's
// "to" can be told apart as a user or a group without a lookup.
const (
	PrefixUser    = "u"
	PrefixDevice  = "d"
	PrefixMessage = "m"
	PrefixGroup   = "g"
	PrefixDirect  = "c"
	PrefixReport  = "r"
)

// NewID returns prefix followed by 26 characters: 6 bytes of milliseconds
// (ids sort by creation time, which keeps B-tree inserts local) and 10
// random bytes.
func NewID(prefix string) string {
	var b [16]byte
	ms := uint64(time.Now().UnixMilli())
	binary.BigEndian.PutUint16(b[0:2], uint16(ms>>32))
	binary.BigEndian.PutUint32(b[2:6], uint32(ms))
	if _, err := rand.Read(b[6:]); err != nil {
		panic("store: crypto/rand failed: " + err.Error())
	}
	return prefix + idEncoding.EncodeToString(b[:])
}

// DirectChatID is the id of the direct chat between users a and b; the same
// for both orders, so a first message needs no lookup.
func DirectChatID(a, b string) string {
	if b < a {
		a, b = b, a
	}
	return PrefixDirect + a + "." + b
}

// DirectChatMembers returns the two user ids a direct chat id was made from
// (the same id twice for a chat with oneself).
func DirectChatMembers(chatID string) (a, b string, ok bool) {
	if len(chatID) < 2 || chatID[:1] != PrefixDirect {
		return "", "", false
	}
	rest := chatID[1:]
	for i := 0; i < len(rest); i++ {
		if rest[i] == '.' {
			a, b = rest[:i], rest[i+1:]
			if a == "" || b == "" || b < a {
				return "", "", false
			}
			return a, b, true
		}
	}
	return "", "", false
}

// IDBytes returns the 16 bytes NewID(prefix) encoded in id, and false for
// an id of any other form (a different prefix, length or alphabet, or a
// non-canonical last character): adapters use it to store ids compactly,
// and must keep another form for the ids it refuses.
func IDBytes(id, prefix string) (b [16]byte, ok bool) {
	if len(id) != len(prefix)+26 || id[:len(prefix)] != prefix {
		return b, false
	}
	n, err := idEncoding.Decode(b[:], []byte(id[len(prefix):]))
	if err != nil || n != 16 || idEncoding.EncodeToString(b[:]) != id[len(prefix):] {
		return b, false
	}
	return b, true
}

// IDFromBytes is the id with prefix whose bytes IDBytes returns as b.
func IDFromBytes(prefix string, b [16]byte) string {
	return prefix + idEncoding.EncodeToString(b[:])
}
