package embedded

import (
	"bytes"
	"encoding/binary"
	"encoding/json"
	"reflect"
	"testing"

	"github.com/tern-im/tern/store"
)

func sampleMessage() store.Message {
	return store.Message{
		ID:         store.NewID(store.PrefixMessage),
		ChatID:     store.DirectChatID(store.NewID(store.PrefixUser), store.NewID(store.PrefixUser)),
		Seq:        123456,
		From:       store.NewID(store.PrefixUser),
		FromDevice: store.NewID(store.PrefixDevice),
		TS:         1767225600123,
		Body:       json.RawMessage(`{"text":"The quick brown fox jumps over the lazy dog, and then some more text to make a typical chat message."}`),
		ReplyTo:    store.NewID(store.PrefixMessage),
	}
}

func TestCodecRoundTrip(t *testing.T) {
	m := sampleMessage()
	got, err := decodeMessage(encodeMessage(&m))
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("message round trip: %+v, %v", got, err)
	}
	empty := store.Message{ID: "m", ChatID: "c", From: "u", FromDevice: "d"}
	if got, err := decodeMessage(encodeMessage(&empty)); err != nil || !reflect.DeepEqual(got, empty) {
		t.Fatalf("sparse message round trip: %+v, %v", got, err)
	}
	ev, err := decodeEvent(encodeMessageEvent(&m))
	if err != nil || ev.Kind != store.EventMessage || ev.Receipt != nil || !reflect.DeepEqual(*ev.Message, m) {
		t.Fatalf("message event round trip: %+v, %v", ev, err)
	}
	r := store.Receipt{ChatID: m.ChatID, MsgIDs: []string{"m1", "m2"}, Status: store.StatusRead, By: m.From, TS: -5}
	ev, err = decodeEvent(encodeReceiptEvent(&r))
	if err != nil || ev.Kind != store.EventReceipt || ev.Message != nil || !reflect.DeepEqual(*ev.Receipt, r) {
		t.Fatalf("receipt event round trip: %+v, %v", ev, err)
	}
	mh, err := messageHead(encodeMessage(&m))
	if err != nil || mh != (msgHead{id: m.ID, chatID: m.ChatID, seq: m.Seq, from: m.From}) {
		t.Fatalf("messageHead = %+v, %v", mh, err)
	}

	g := m
	g.Kind = store.EventGroup
	got, err = decodeMessage(encodeMessage(&g))
	if err != nil || !reflect.DeepEqual(got, g) {
		t.Fatalf("group entry round trip: %+v, %v", got, err)
	}
	ev, err = decodeEvent(encodeMessageEvent(&g))
	if err != nil || ev.Kind != store.EventGroup || !reflect.DeepEqual(*ev.Message, g) {
		t.Fatalf("group event round trip: %+v, %v", ev, err)
	}
	if mh, err := messageHead(encodeMessage(&g)); err != nil || !mh.group || mh.id != g.ID {
		t.Fatalf("messageHead of a group entry = %+v, %v", mh, err)
	}
}

// TestCodecReadsRecordsWithoutKind: the log and inbox records written
// before Message.Kind existed (formatV1 ending at the body) still decode,
// as ordinary messages; an ordinary message is still encoded that way.
func TestCodecReadsRecordsWithoutKind(t *testing.T) {
	m := sampleMessage()
	// The encoding of before Kind, spelled out.
	var old []byte
	old = append(old, formatV1)
	for _, f := range []string{m.ID, m.ChatID} {
		old = appendString(old, f)
	}
	old = binary.AppendUvarint(old, uint64(m.Seq))
	old = appendString(old, m.From)
	old = appendString(old, m.FromDevice)
	old = binary.AppendVarint(old, m.TS)
	old = appendString(old, m.ReplyTo)
	old = appendString(old, string(m.Body))
	if !bytes.Equal(encodeMessage(&m), old) {
		t.Fatal("an ordinary message is no longer encoded as before Kind existed")
	}
	got, err := decodeMessage(old)
	if err != nil || !reflect.DeepEqual(got, m) || got.Kind != "" {
		t.Fatalf("old log record: %+v, %v", got, err)
	}
	ev, err := decodeEvent(append([]byte{evMessage}, old...))
	if err != nil || ev.Kind != store.EventMessage || !reflect.DeepEqual(*ev.Message, m) {
		t.Fatalf("old inbox record: %+v, %v", ev, err)
	}
	if mh, err := messageHead(old); err != nil || mh.group || mh.from != m.From {
		t.Fatalf("messageHead of an old record = %+v, %v", mh, err)
	}
	// A Kind written empty would be a second encoding of the same message.
	if _, err := decodeMessage(append(old, 0)); err == nil {
		t.Fatal("a record with an empty Kind decoded")
	}
}

// TestCodecHiddenMessage: a message hidden from a blocker has a record of
// its own format, read back whole, and its head reads like any other's.
func TestCodecHiddenMessage(t *testing.T) {
	m := sampleMessage()
	m.HiddenFrom = "u-blocker"
	b := encodeMessage(&m)
	if b[0] != formatV2 {
		t.Fatalf("hidden message record starts with %d", b[0])
	}
	got, err := decodeMessage(b)
	if err != nil || !reflect.DeepEqual(got, m) {
		t.Fatalf("decoded %+v, %v; want %+v", got, err, m)
	}
	if mh, err := messageHead(b); err != nil || mh.id != m.ID || mh.from != m.From || mh.group {
		t.Fatalf("messageHead = %+v, %v", mh, err)
	}
	ev, err := decodeEvent(encodeMessageEvent(&m))
	if err != nil || !reflect.DeepEqual(*ev.Message, m) {
		t.Fatalf("as an event: %+v, %v", ev, err)
	}
	m.HiddenFrom = ""
	if plain := encodeMessage(&m); plain[0] != formatV1 {
		t.Fatal("an ordinary message changed format")
	}
}

// stateMessage is a message with everything actions leave on it.
func stateMessage() store.Message {
	m := sampleMessage()
	m.Kind = store.KindAction
	m.EditedTS, m.ExpiresTS = 1700000000123, 1700000060000
	m.Reactions = []store.Reaction{{UserID: "u-1", Emoji: "👍"}, {UserID: "u-2", Emoji: "❤️"}}
	m.EditSeqs = []int64{7, 300}
	return m
}

// TestCodecStateMessage: the state of message actions round-trips in its
// own format; a message without it keeps the old one.
func TestCodecStateMessage(t *testing.T) {
	for _, m := range []store.Message{stateMessage(), {ID: "m", ChatID: "c", Seq: 1, From: "u", FromDevice: "d", Deleted: true, Body: store.DeletedBody}} {
		b := encodeMessage(&m)
		if b[0] != formatV3 {
			t.Fatalf("record starts with %d, want %d", b[0], formatV3)
		}
		got, err := decodeMessage(b)
		if err != nil || !reflect.DeepEqual(got, m) {
			t.Fatalf("decoded %+v, %v; want %+v", got, err, m)
		}
		if mh, err := messageHead(b); err != nil || mh.id != m.ID || mh.group != (m.Kind != "") {
			t.Fatalf("messageHead = %+v, %v", mh, err)
		}
		for n := range len(b) {
			if _, err := decodeMessage(b[:n]); err == nil {
				t.Fatalf("truncated record (%d of %d bytes) decoded", n, len(b))
			}
		}
	}
	// A V3 record without any state is not the one encoding of its message.
	m := sampleMessage()
	b := append([]byte{formatV3}, appendBody(nil, &m)...)
	b = append(appendString(appendString(b, ""), ""), 0, 0, 0, 0, 0)
	if _, err := decodeMessage(b); err == nil {
		t.Fatal("a stateless V3 record decoded")
	}
}

func TestCodecRejectsCorrupt(t *testing.T) {
	m := sampleMessage()
	b := encodeMessageEvent(&m)
	for n := range len(b) {
		if _, err := decodeEvent(b[:n]); err == nil {
			t.Fatalf("truncated event (%d of %d bytes) decoded", n, len(b))
		}
	}
	if _, err := decodeEvent(append(b, 0)); err == nil {
		t.Fatal("event with a trailing byte decoded")
	}
	if _, err := decodeEvent([]byte{9, formatV1}); err == nil {
		t.Fatal("event of unknown kind decoded")
	}
}

// FuzzDecodeEvent checks that no input makes the inbox decoder panic or
// allocate without bound, and that what it accepts encodes back to itself.
func FuzzDecodeEvent(f *testing.F) {
	m := sampleMessage()
	f.Add(encodeMessageEvent(&m))
	g := m
	g.Kind = store.EventGroup
	f.Add(encodeMessageEvent(&g))
	st := stateMessage()
	f.Add(encodeMessageEvent(&st))
	f.Add(encodeReceiptEvent(&store.Receipt{ChatID: "c", MsgIDs: []string{"a", "b"}, Status: "read", By: "u", TS: 1}))
	f.Add([]byte{evReceipt, formatV1, 0, 0, 0, 0, 0xff, 0xff, 0xff, 0xff, 0x0f})
	f.Add(encodeReceiptEvent(&store.Receipt{ChatID: "g", MsgIDs: []string{"a"}, Status: "delivered", By: "u1", Others: []string{"u2", "u3"}, TS: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := decodeEvent(b)
		if err != nil {
			return
		}
		var again []byte
		switch ev.Kind {
		case store.EventMessage, store.EventGroup:
			again = encodeMessageEvent(ev.Message)
		case store.EventReceipt:
			again = encodeReceiptEvent(ev.Receipt)
		}
		ev2, err := decodeEvent(again)
		if err != nil || !reflect.DeepEqual(ev, ev2) {
			t.Fatalf("re-encoded event differs: %+v / %+v, %v", ev, ev2, err)
		}
	})
}

// FuzzDecodeMessage does the same for chat log records.
func FuzzDecodeMessage(f *testing.F) {
	m := sampleMessage()
	f.Add(encodeMessage(&m))
	h := m
	h.HiddenFrom = "u-blocker"
	f.Add(encodeMessage(&h))
	m.Kind = store.EventGroup
	f.Add(encodeMessage(&m))
	st := stateMessage()
	f.Add(encodeMessage(&st))
	f.Fuzz(func(t *testing.T, b []byte) {
		if _, err := messageHead(b); err != nil {
			_ = err // the head decoder only has to not panic
		}
		m, err := decodeMessage(b)
		if err != nil {
			return
		}
		m2, err := decodeMessage(encodeMessage(&m))
		if err != nil || !reflect.DeepEqual(m, m2) {
			t.Fatalf("re-encoded message differs: %+v / %+v, %v", m, m2, err)
		}
	})
}

// BenchmarkCodec compares the binary log record with JSON of the same
// message, the alternative it replaces.
func BenchmarkCodec(b *testing.B) {
	m := sampleMessage()
	bin, _ := json.Marshal(m)
	b.Run("binary", func(b *testing.B) {
		b.ReportAllocs()
		var n int
		for b.Loop() {
			enc := encodeMessage(&m)
			n = len(enc)
			if _, err := decodeMessage(enc); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(n), "bytes/record")
	})
	b.Run("json", func(b *testing.B) {
		b.ReportAllocs()
		for b.Loop() {
			enc, err := json.Marshal(m)
			if err != nil {
				b.Fatal(err)
			}
			var got store.Message
			if err := json.Unmarshal(enc, &got); err != nil {
				b.Fatal(err)
			}
		}
		b.ReportMetric(float64(len(bin)), "bytes/record")
	})
}

// FuzzDecodeFeedEntry checks the feed entry decoder the same way: no panic,
// and what it accepts encodes back to an entry that decodes the same.
func FuzzDecodeFeedEntry(f *testing.F) {
	m := sampleMessage()
	f.Add(encodeRef(7, 42, ""))
	f.Add(encodeRef(1<<40, 1, "d123"))
	f.Add(append(appendString([]byte{fOnly}, "d1"), encodeMessageEvent(&m)...))
	f.Add([]byte{fNone})
	f.Add(encodeReceiptEvent(&store.Receipt{ChatID: "c", MsgIDs: []string{"a"}, Status: "read", By: "u", TS: 1}))
	f.Fuzz(func(t *testing.T, b []byte) {
		e, err := decodeFeedEntry(b)
		if err != nil {
			return
		}
		var again []byte
		switch {
		case e.none:
			again = []byte{fNone}
		case e.only != "":
			again = append(appendString([]byte{fOnly}, e.only), e.event...)
		case e.event != nil:
			again = e.event
		default:
			again = encodeRef(e.chat, e.seq, e.skip)
		}
		e2, err := decodeFeedEntry(again)
		if err != nil || !reflect.DeepEqual(e, e2) {
			t.Fatalf("re-encoded entry differs: %+v / %+v, %v", e, e2, err)
		}
	})
}
