package embedded

import (
	"encoding/binary"
	"strings"
)

// Tables. Pebble has one ordered keyspace; the first byte of a key says
// which kind of record it is. The numbers are the on-disk format: never
// reuse or renumber one. The layout is described in doc.go.
const (
	tUsers       byte = 1  // userID -> JSON store.User
	tPhones      byte = 2  // phone -> userID
	tDevices     byte = 3  // deviceID -> JSON store.Device
	tUserDevices byte = 4  // userID 0x00 deviceID -> empty
	tCodes       byte = 5  // phone -> JSON store.Code
	tSecrets     byte = 6  // name -> secret
	tChats       byte = 7  // chatID -> JSON chatMeta (rarely written)
	tChatSeq     byte = 8  // chatID -> lastSeq u64 | lastTS i64 (written by every send)
	tMembers     byte = 9  // userID 0x00 chatID -> readSeq u64 | deliveredSeq u64 [| group membership]
	tLog         byte = 10 // chatID 0x00 seq u64 -> binary message
	tIdem        byte = 11 // deviceID 0x00 clientID -> seq u64 | chatID
	tInbox       byte = 12 // deviceID 0x00 cursor u64 -> binary event (before feeds; migrated by feed.go)
	tHeads       byte = 13 // deviceID -> last cursor u64 (before feeds) | acked feed cursor u64 | userID
	tMsgIDs      byte = 14 // msgID -> seq u64 | chatID (messages stored since it came)
	tGroups      byte = 15 // chatID -> binary group (groups.go)
	tMarks       byte = 16 // chatID 0x00 userID 0x00 kind seq u64 -> ts i64 (marks.go)
	tFeed        byte = 17 // userID 0x00 cursor u64 -> feed entry (feed.go)
	tFeedTrim    byte = 18 // userID -> cursor u64: the feed's entries up to it are deleted
	tChatNums    byte = 19 // chatID -> number uvarint
	tChatIDs     byte = 20 // number u64 -> chatID
	// tFeedLast names the writer cache's record of a feed's last cursor;
	// nothing is stored under it.
	tFeedLast byte = 21
	// tMsgHeads names the writer cache's records of recent messages'
	// heads (chat number u64, seq u64 -> id, chat, author): nothing is
	// stored under it either.
	tMsgHeads  byte = 22
	tContacts  byte = 23 // userID 0x00 phone -> empty: the user's address book
	tBlocks    byte = 24 // userID 0x00 target -> ts varint: whom the user blocks
	tReports   byte = 25 // old layout: ts u64 reportID -> JSON store.Report; moved to tReportIDs by reports.go
	tHidden    byte = 26 // userID 0x00 chatID 0x00 seq u64 -> empty: deleted for me
	tStars     byte = 27 // userID 0x00 chatID 0x00 seq u64 -> ts varint, msgID: starred
	tReportIDs byte = 28 // reportID -> JSON store.Report (rare, read by admins; ids sort by time)
	tExpiry    byte = 29 // expiresTS u64 chatID 0x00 seq u64 -> empty: disappearing messages due
	// Media files (media.go).
	tMedia         byte = 30 // fileID -> listed-since u64, JSON mediaRecord
	tMediaShares   byte = 31 // fileID 0x00 chatID -> empty: the chats the file was shared to
	tMediaUnshared byte = 32 // listed-since u64 fileID -> empty: files no message carries, for the collector
	// The push queue (pushes.go).
	tPushes  byte = 33 // deviceID -> JSON pushRecord: the device's queued push, its last push's time
	tPushDue byte = 34 // due u64 deviceID -> lease end u64 or empty: queued pushes, for claims
	// The messages that carry a media file (media.go).
	tMediaRefs byte = 35 // fileID 0x00 msgID -> chatID
	// The admin dashboard (admin.go).
	tAdmins        byte = 36 // adminID -> JSON store.Admin
	tAdminNames    byte = 37 // username -> adminID: usernames are unique
	tAdminSessions byte = 38 // sessionID -> JSON store.AdminSession
	tAdminSessIdx  byte = 39 // adminID 0x00 sessionID -> empty: an admin's sessions
	tAPIKeys       byte = 40 // keyID -> JSON store.APIKey
	tAdminKeys     byte = 41 // adminID 0x00 keyID -> empty: an admin's API keys
	tAudit         byte = 42 // entryID -> JSON store.AuditEntry (ids sort by time)
	tBans          byte = 43 // userID -> JSON store.Ban
	tBanTimes      byte = 44 // ts u64 (sign-flipped) userID -> empty: bans by time
	// What each node last reported about itself (nodes.go).
	tNodeReports byte = 45 // nodeID -> at (unix ms u64), body
	// The business API (business.go).
	tBusinesses       byte = 46 // userID -> JSON store.Business
	tBusinessPhoneIDs byte = 47 // phone_number_id -> userID: phone number ids are unique
	tBusinessWABAs    byte = 48 // WABA id -> userID: WABA ids are unique
	tBusinessTokens   byte = 49 // tokenID -> JSON store.BusinessToken
	tBusinessTokenIdx byte = 50 // userID 0x00 tokenID -> empty: a business's tokens
	tWindows          byte = 51 // businessID 0x00 customerID -> ts u64: the customer's last message to the business
	tTemplates        byte = 52 // userID 0x00 name 0x00 language -> JSON store.Template
	// Leases (leases.go).
	tLeases byte = 53 // name -> until (unix ms u64), holder
	// The business API's callback data (business.go).
	tCallbackData byte = 54 // businessID 0x00 msgID -> at u64 (sign-flipped), data: a sent message's biz_opaque_callback_data
	tCallbackAt   byte = 55 // at u64 (sign-flipped) businessID 0x00 msgID -> empty: callback data by time, for pruning
)

// sep ends the first part of a compound key. Ids are server-made base32
// strings, so a 0x00 cannot occur inside one, and a prefix scan over
// "id 0x00" can never run into the keys of a longer id that shares the prefix.
const sep = 0x00

// validID reports whether id can be the leading part of a compound key.
func validID(id string) bool {
	return id != "" && !strings.ContainsRune(id, sep)
}

// key returns the key of id in table t.
func key(t byte, id string) []byte {
	b := make([]byte, 0, 1+len(id))
	b = append(b, t)
	return append(b, id...)
}

// prefix returns t id 0x00, the common start of all keys of id in a
// compound-key table. Its capacity leaves room for a trailing number.
func prefix(t byte, id string) []byte {
	b := make([]byte, 0, 1+len(id)+1+8)
	b = append(b, t)
	b = append(b, id...)
	return append(b, sep)
}

// prefixEnd returns the smallest key above every key that starts with p, a
// key made by prefix: the separator byte plus one. It is the exclusive upper
// bound of an iterator over p.
func prefixEnd(p []byte) []byte {
	end := append([]byte(nil), p...)
	end[len(end)-1] = sep + 1
	return end
}

// seqKey returns t id 0x00 n with n big-endian, so that byte order is numeric
// order and range scans walk a chat log or an inbox in seq / cursor order.
func seqKey(t byte, id string, n int64) []byte {
	return binary.BigEndian.AppendUint64(prefix(t, id), uint64(n))
}

// pairKey returns t a 0x00 b.
func pairKey(t byte, a, b string) []byte {
	k := make([]byte, 0, 1+len(a)+1+len(b))
	k = append(k, t)
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

// chatSeq is the hot part of a chat: rewritten by every send, so it is kept
// apart from the chat's member list and encoded in fixed 16 bytes.
// Disappear, the chat's disappearing timer in seconds, is read by every
// send too; it takes 8 more bytes only in a chat that has one.
type chatSeq struct {
	LastSeq   int64
	LastTS    int64
	Disappear int64
}

func decodeChatSeq(b []byte) chatSeq {
	if len(b) < 16 {
		return chatSeq{}
	}
	c := chatSeq{LastSeq: u64(b[0:8]), LastTS: u64(b[8:16])}
	if len(b) >= 24 {
		c.Disappear = u64(b[16:24])
	}
	return c
}

func (c chatSeq) encode() []byte {
	n := 16
	if c.Disappear != 0 {
		n = 24
	}
	b := make([]byte, n)
	binary.BigEndian.PutUint64(b[0:8], uint64(c.LastSeq))
	binary.BigEndian.PutUint64(b[8:16], uint64(c.LastTS))
	if c.Disappear != 0 {
		binary.BigEndian.PutUint64(b[16:24], uint64(c.Disappear))
	}
	return b
}

// expiryKey is the key of message seq of chatID in tExpiry: in order of
// the time it is due, so that the sweeper reads only what is.
func expiryKey(due int64, chatID string, seq int64) []byte {
	b := make([]byte, 0, 1+8+len(chatID)+1+8)
	b = append(b, tExpiry)
	b = binary.BigEndian.AppendUint64(b, uint64(due))
	b = append(b, chatID...)
	b = append(b, sep)
	return binary.BigEndian.AppendUint64(b, uint64(seq))
}

// parseExpiryKey is expiryKey's inverse.
func parseExpiryKey(k []byte) (due int64, chatID string, seq int64, ok bool) {
	if len(k) < 1+8+1+1+8 || k[0] != tExpiry || k[len(k)-9] != sep {
		return 0, "", 0, false
	}
	return u64(k[1:9]), string(k[9 : len(k)-9]), u64(k[len(k)-8:]), true
}

// head is the state of one inbox, created with its device and deleted with
// it. The inbox holds exactly the cursors Acked+1 .. Last: appends take
// Last+1 and acks remove from the front, so the keys are dense and nothing
// ever needs to look below Acked+1. That is what keeps reads and acks off
// the deletion tombstones of acked events, which an LSM keeps until
// compaction drops them. The owner is here too because every ack needs it,
// and this record is read by every ack anyway.
type head struct {
	Last  int64  // the last cursor assigned (0 for none)
	Acked int64  // every cursor up to here is acked and deleted
	User  string // the device's user; "" when there is no such device
}

func decodeHead(b []byte) head {
	if len(b) < 16 {
		return head{}
	}
	return head{Last: u64(b[0:8]), Acked: u64(b[8:16]), User: string(b[16:])}
}

func (h head) encode() []byte {
	b := make([]byte, 16, 16+len(h.User))
	binary.BigEndian.PutUint64(b[0:8], uint64(h.Last))
	binary.BigEndian.PutUint64(b[8:16], uint64(h.Acked))
	return append(b, h.User...)
}

// member is one user's marks in one chat. DeliveredSeq is the watermark that
// makes delivered receipts once per message and reader however many of the
// reader's devices ack.
//
// In a group the record goes on with the user's membership (role and
// joining, groupMember), so that Member is one point read. Acks and read
// marks rewrite the record without looking at that part: they carry it
// over as it is, in Group.
type member struct {
	ReadSeq      int64
	DeliveredSeq int64
	Group        []byte // the membership's encoding; empty in a direct chat
}

// decodeMember parses a members record; Group aliases b.
func decodeMember(b []byte) member {
	if len(b) < 16 {
		return member{}
	}
	return member{ReadSeq: u64(b[0:8]), DeliveredSeq: u64(b[8:16]), Group: b[16:]}
}

func (m member) encode() []byte {
	b := make([]byte, 16, 16+len(m.Group))
	binary.BigEndian.PutUint64(b[0:8], uint64(m.ReadSeq))
	binary.BigEndian.PutUint64(b[8:16], uint64(m.DeliveredSeq))
	return append(b, m.Group...)
}
