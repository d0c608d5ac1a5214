package embedded

import (
	"encoding/binary"
	"strings"
)

// Bucket names. Short, because bbolt stores a bucket's name in its parent's
// page; the layout is described in doc.go.
var (
	bktUsers       = []byte("users")   // userID -> JSON store.User
	bktPhones      = []byte("phones")  // phone -> userID
	bktDevices     = []byte("devices") // deviceID -> JSON store.Device
	bktUserDevices = []byte("udev")    // userID 0x00 deviceID -> empty
	bktCodes       = []byte("codes")   // phone -> JSON store.Code
	bktSecrets     = []byte("secrets") // name -> secret
	bktChats       = []byte("chats")   // chatID -> JSON chatMeta (rarely written)
	bktChatSeq     = []byte("chatseq") // chatID -> lastSeq u64 | lastTS i64 (written by every send)
	bktMembers     = []byte("members") // userID 0x00 chatID -> readSeq u64 | deliveredSeq u64
	bktLog         = []byte("log")     // chatID 0x00 seq u64 -> binary message
	bktIdem        = []byte("idem")    // deviceID 0x00 clientID -> seq u64 | chatID
	bktInbox       = []byte("inbox")   // deviceID 0x00 cursor u64 -> binary event
	bktHeads       = []byte("heads")   // deviceID -> last cursor u64
)

var allBuckets = [][]byte{
	bktUsers, bktPhones, bktDevices, bktUserDevices, bktCodes, bktSecrets,
	bktChats, bktChatSeq, bktMembers, bktLog, bktIdem, bktInbox, bktHeads,
}

// sep ends the first part of a compound key. Ids are server-made base32
// strings, so a 0x00 cannot occur inside one, and a prefix scan over
// "id 0x00" can never run into the keys of a longer id that shares the prefix.
const sep = 0x00

// validID reports whether id can be the leading part of a compound key.
func validID(id string) bool {
	return id != "" && !strings.ContainsRune(id, sep)
}

// prefix returns id 0x00, the common start of all keys of id in a
// compound-key bucket.
func prefix(id string) []byte {
	b := make([]byte, 0, len(id)+1+8)
	b = append(b, id...)
	return append(b, sep)
}

// seqKey returns id 0x00 n with n big-endian, so that byte order is numeric
// order and range scans walk a chat log or an inbox in seq / cursor order.
func seqKey(id string, n int64) []byte {
	return binary.BigEndian.AppendUint64(prefix(id), uint64(n))
}

// pairKey returns a 0x00 b.
func pairKey(a, b string) []byte {
	k := make([]byte, 0, len(a)+1+len(b))
	k = append(k, a...)
	k = append(k, sep)
	return append(k, b...)
}

// seqOf returns the trailing big-endian number of a key made by seqKey.
func seqOf(k []byte) int64 {
	return int64(binary.BigEndian.Uint64(k[len(k)-8:]))
}

func u64(b []byte) int64 {
	if len(b) < 8 {
		return 0
	}
	return int64(binary.BigEndian.Uint64(b))
}

func putU64(n int64) []byte {
	return binary.BigEndian.AppendUint64(make([]byte, 0, 8), uint64(n))
}

// chatSeq is the hot part of a chat: rewritten by every send, so it is kept
// apart from the chat's member list and encoded in fixed 16 bytes.
type chatSeq struct {
	LastSeq int64
	LastTS  int64
}

func decodeChatSeq(b []byte) chatSeq {
	if len(b) < 16 {
		return chatSeq{}
	}
	return chatSeq{LastSeq: u64(b[0:8]), LastTS: u64(b[8:16])}
}

func (c chatSeq) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[0:8], uint64(c.LastSeq))
	binary.BigEndian.PutUint64(b[8:16], uint64(c.LastTS))
	return b
}

// member is one user's marks in one chat. DeliveredSeq is the watermark that
// makes delivered receipts once per message and reader however many of the
// reader's devices ack.
type member struct {
	ReadSeq      int64
	DeliveredSeq int64
}

func decodeMember(b []byte) member {
	if len(b) < 16 {
		return member{}
	}
	return member{ReadSeq: u64(b[0:8]), DeliveredSeq: u64(b[8:16])}
}

func (m member) encode() []byte {
	b := make([]byte, 16)
	binary.BigEndian.PutUint64(b[0:8], uint64(m.ReadSeq))
	binary.BigEndian.PutUint64(b[8:16], uint64(m.DeliveredSeq))
	return b
}
