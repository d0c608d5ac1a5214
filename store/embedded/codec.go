package embedded

import (
	"encoding/binary"
	"errors"
	"fmt"

	"github.com/tern-im/tern/store"
)

// The chat log and the inboxes hold most of the bytes and see most of the
// traffic, so their records use a compact binary form instead of JSON: a
// format byte, then length-prefixed strings and varints. A typical message
// is a fifth smaller than its JSON and encodes plus decodes several times
// faster (BenchmarkCodec), which matters on the single writer goroutine.
// Rarely written records (users, devices, codes, chat metadata) stay JSON,
// where readability beats speed.
//
// A message is always the last thing in its record, so that fields added
// later can follow it as optional trailers: a record written before a field
// existed simply ends earlier, and decodes with the field's zero value.
// Kind is the first such trailer. It is written only when it is not empty,
// which also keeps every ordinary message byte for byte what it was.

const (
	// formatV1 starts every binary record, so that the format can change
	// without rewriting a database: a decoder branches on it.
	formatV1 byte = 1
	// formatV2 starts a message record with a HiddenFrom trailer.
	formatV2 byte = 2
	// formatV3 starts a message record with the state message actions
	// and disappearing timers leave (edited, deleted, reactions, edit
	// entries, expiry) after the Kind and HiddenFrom trailers.
	formatV3 byte = 3

	evMessage byte = 1
	evReceipt byte = 2
)

var errCorrupt = errors.New("store/embedded: corrupt record")

// appendMessage appends the binary form of m to b.
func appendMessage(b []byte, m *store.Message) []byte {
	if hasState(m) {
		b = append(b, formatV3)
		b = appendBody(b, m)
		b = appendString(b, m.Kind)
		b = appendString(b, m.HiddenFrom)
		b = binary.AppendVarint(b, m.EditedTS)
		b = binary.AppendVarint(b, m.ExpiresTS)
		var flags byte
		if m.Deleted {
			flags |= 1
		}
		b = append(b, flags)
		b = binary.AppendUvarint(b, uint64(len(m.Reactions)))
		for _, r := range m.Reactions {
			b = appendString(b, r.UserID)
			b = appendString(b, r.Emoji)
		}
		b = binary.AppendUvarint(b, uint64(len(m.EditSeqs)))
		for _, seq := range m.EditSeqs {
			b = binary.AppendUvarint(b, uint64(seq))
		}
		return b
	}
	if m.HiddenFrom != "" {
		// Rare (a blocked author): its own format, with both trailers,
		// keeps every other record as it was.
		b = append(b, formatV2)
		b = appendBody(b, m)
		b = appendString(b, m.Kind)
		return appendString(b, m.HiddenFrom)
	}
	b = append(b, formatV1)
	b = appendBody(b, m)
	if m.Kind != "" {
		b = appendString(b, m.Kind)
	}
	return b
}

// appendBody appends the fields every message record has.
func appendBody(b []byte, m *store.Message) []byte {
	b = appendString(b, m.ID)
	b = appendString(b, m.ChatID)
	b = binary.AppendUvarint(b, uint64(m.Seq))
	b = appendString(b, m.From)
	b = appendString(b, m.FromDevice)
	b = binary.AppendVarint(b, m.TS)
	b = appendString(b, m.ReplyTo)
	b = binary.AppendUvarint(b, uint64(len(m.Body)))
	return append(b, m.Body...)
}

func messageSize(m *store.Message) int {
	n := 1 + 6*binary.MaxVarintLen64 + len(m.ID) + len(m.ChatID) + len(m.From) +
		len(m.FromDevice) + len(m.ReplyTo) + len(m.Body) + len(m.Kind) + len(m.HiddenFrom) + 4*binary.MaxVarintLen64
	if hasState(m) {
		n += 1 + 4*binary.MaxVarintLen64 + len(m.EditSeqs)*binary.MaxVarintLen64
		for _, r := range m.Reactions {
			n += 2*binary.MaxVarintLen64 + len(r.UserID) + len(r.Emoji)
		}
	}
	return n
}

// hasState reports whether m needs formatV3: most messages never do, and
// keep their shorter records.
func hasState(m *store.Message) bool {
	return m.EditedTS != 0 || m.ExpiresTS != 0 || m.Deleted || len(m.Reactions) > 0 || len(m.EditSeqs) > 0
}

// encodeMessage returns the log record of m.
func encodeMessage(m *store.Message) []byte {
	return appendMessage(make([]byte, 0, messageSize(m)), m)
}

// decodeMessage parses a log record. The result owns its memory: an
// iterator's value changes when it moves.
func decodeMessage(b []byte) (store.Message, error) {
	d := decoder{b: b}
	m := d.message()
	if d.err != nil {
		return store.Message{}, d.err
	}
	if len(d.b) != 0 {
		return store.Message{}, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return m, nil
}

// encodeMessageEvent returns the inbox record of a message event: the whole
// message, so that replaying an inbox needs no second lookup per event.
func encodeMessageEvent(m *store.Message) []byte {
	b := make([]byte, 0, 1+messageSize(m))
	return appendMessage(append(b, evMessage), m)
}

func encodeReceiptEvent(r *store.Receipt) []byte {
	n := 2 + 5*binary.MaxVarintLen64 + len(r.ChatID) + len(r.Status) + len(r.By)
	for _, id := range r.MsgIDs {
		n += binary.MaxVarintLen64 + len(id)
	}
	for _, u := range r.Others {
		n += binary.MaxVarintLen64 + len(u)
	}
	b := make([]byte, 0, n)
	b = append(b, evReceipt, formatV1)
	b = appendString(b, r.ChatID)
	b = appendString(b, r.Status)
	b = appendString(b, r.By)
	b = binary.AppendVarint(b, r.TS)
	b = binary.AppendUvarint(b, uint64(len(r.MsgIDs)))
	for _, id := range r.MsgIDs {
		b = appendString(b, id)
	}
	// Others is an optional trailer: a receipt of one reader ends here, as
	// every receipt did before coalescing.
	if len(r.Others) > 0 {
		b = binary.AppendUvarint(b, uint64(len(r.Others)))
		for _, u := range r.Others {
			b = appendString(b, u)
		}
	}
	return b
}

// decodeEvent parses an inbox record; the caller sets Cursor from the key.
func decodeEvent(b []byte) (store.Event, error) {
	if len(b) == 0 {
		return store.Event{}, fmt.Errorf("%w: empty event", errCorrupt)
	}
	d := decoder{b: b[1:]}
	var ev store.Event
	switch b[0] {
	case evMessage:
		m := d.message()
		ev = store.Event{Kind: store.EventMessage, Message: &m}
		if m.Kind == store.EventGroup {
			ev.Kind = store.EventGroup
		}
	case evReceipt:
		r := d.receipt()
		ev = store.Event{Kind: store.EventReceipt, Receipt: &r}
	default:
		return store.Event{}, fmt.Errorf("%w: event kind %d", errCorrupt, b[0])
	}
	if d.err != nil {
		return store.Event{}, d.err
	}
	if len(d.b) != 0 {
		return store.Event{}, fmt.Errorf("%w: %d trailing bytes", errCorrupt, len(d.b))
	}
	return ev, nil
}

func appendString(b []byte, s string) []byte {
	b = binary.AppendUvarint(b, uint64(len(s)))
	return append(b, s...)
}

// decoder reads fields in order and remembers the first error, so that a
// record decodes with straight-line code and one check at the end.
type decoder struct {
	b   []byte
	err error
}

func (d *decoder) fail(what string) {
	if d.err == nil {
		d.err = fmt.Errorf("%w: bad %s", errCorrupt, what)
	}
	d.b = nil
}

func (d *decoder) uvarint(what string) uint64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Uvarint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

func (d *decoder) varint(what string) int64 {
	if d.err != nil {
		return 0
	}
	v, n := binary.Varint(d.b)
	if n <= 0 {
		d.fail(what)
		return 0
	}
	d.b = d.b[n:]
	return v
}

// raw returns the next length-prefixed field, still aliasing the input.
func (d *decoder) raw(what string) []byte {
	n := d.uvarint(what)
	if d.err != nil {
		return nil
	}
	if n > uint64(len(d.b)) {
		d.fail(what)
		return nil
	}
	v := d.b[:n]
	d.b = d.b[n:]
	return v
}

func (d *decoder) str(what string) string { return string(d.raw(what)) }

func (d *decoder) format(what string) {
	if d.err != nil {
		return
	}
	if len(d.b) == 0 || d.b[0] != formatV1 {
		d.fail(what + " format")
		return
	}
	d.b = d.b[1:]
}

func (d *decoder) message() store.Message {
	var f byte
	if len(d.b) > 0 {
		f = d.b[0]
	}
	v2, v3 := f == formatV2, f == formatV3
	if v2 || v3 {
		d.b = d.b[1:]
	} else {
		d.format("message")
	}
	var m store.Message
	m.ID = d.str("id")
	m.ChatID = d.str("chat id")
	seq := d.uvarint("seq")
	if seq > 1<<63-1 {
		d.fail("seq")
	}
	m.Seq = int64(seq)
	m.From = d.str("from")
	m.FromDevice = d.str("from device")
	m.TS = d.varint("ts")
	m.ReplyTo = d.str("reply to")
	if body := d.raw("body"); len(body) > 0 {
		m.Body = append([]byte(nil), body...)
	}
	switch {
	case v3:
		m.Kind = d.str("kind")
		m.HiddenFrom = d.str("hidden from")
		m.EditedTS = d.varint("edited ts")
		m.ExpiresTS = d.varint("expires ts")
		if len(d.b) == 0 {
			d.fail("flags")
			return m
		}
		m.Deleted = d.b[0]&1 != 0
		d.b = d.b[1:]
		n := d.uvarint("reaction count")
		// Each takes at least two length bytes: a corrupt count cannot
		// allocate beyond the input.
		if n > uint64(len(d.b)) {
			d.fail("reaction count")
			return m
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			m.Reactions = append(m.Reactions, store.Reaction{UserID: d.str("reaction user"), Emoji: d.str("reaction emoji")})
		}
		n = d.uvarint("edit count")
		if n > uint64(len(d.b)) {
			d.fail("edit count")
			return m
		}
		for i := uint64(0); i < n && d.err == nil; i++ {
			m.EditSeqs = append(m.EditSeqs, int64(d.uvarint("edit seq")))
		}
		if d.err == nil && !hasState(&m) {
			d.fail("state") // one encoding per message
		}
	case v2:
		m.Kind = d.str("kind")
		m.HiddenFrom = d.str("hidden from")
		if m.HiddenFrom == "" {
			d.fail("hidden from") // one encoding per message
		}
	case len(d.b) > 0:
		m.Kind = d.str("kind")
		if m.Kind == "" {
			d.fail("kind") // never written empty: one encoding per message
		}
	}
	return m
}

func (d *decoder) receipt() store.Receipt {
	d.format("receipt")
	var r store.Receipt
	r.ChatID = d.str("chat id")
	r.Status = d.str("status")
	r.By = d.str("by")
	r.TS = d.varint("ts")
	n := d.uvarint("msg id count")
	// Every id takes at least its one length byte, which bounds n by the
	// input and keeps a corrupt count from allocating without limit.
	if n > uint64(len(d.b)) {
		d.fail("msg id count")
		return r
	}
	r.MsgIDs = make([]string, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.MsgIDs = append(r.MsgIDs, d.str("msg id"))
	}
	if d.err != nil || len(d.b) == 0 {
		return r
	}
	n = d.uvarint("reader count")
	if n == 0 || n > uint64(len(d.b)) {
		d.fail("reader count")
		return r
	}
	r.Others = make([]string, 0, n)
	for i := uint64(0); i < n && d.err == nil; i++ {
		r.Others = append(r.Others, d.str("reader"))
	}
	return r
}

// msgHead is what an ack or a read mark needs to know about a message.
type msgHead struct {
	id, chatID string
	seq        int64
	from       string
	// group marks an entry that is not a message (a group change, a
	// message action), which gets no receipts and is not unread.
	group bool
	// hiddenFrom is store.Message.HiddenFrom: that user sends no receipts
	// for it.
	hiddenFrom string
}

// messageHead decodes a message's head without copying its body; the
// fields it skips to reach Kind are only sliced.
func messageHead(b []byte) (msgHead, error) {
	d := decoder{b: b}
	var f byte
	if len(d.b) > 0 {
		f = d.b[0]
	}
	v2, v3 := f == formatV2, f == formatV3
	if v2 || v3 {
		d.b = d.b[1:]
	} else {
		d.format("message")
	}
	var h msgHead
	h.id = d.str("id")
	h.chatID = d.str("chat id")
	h.seq = int64(d.uvarint("seq"))
	h.from = d.str("from")
	d.raw("from device")
	d.varint("ts")
	d.raw("reply to")
	d.raw("body")
	if len(d.b) > 0 {
		h.group = len(d.raw("kind")) > 0
	}
	if v2 || v3 {
		h.hiddenFrom = string(d.raw("hidden from"))
	}
	return h, d.err
}
