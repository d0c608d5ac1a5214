package server

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"
	"unicode/utf8"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// FuzzAppendString: the hand-written encoder produces JSON that decodes to
// the input (with invalid UTF-8 replaced, as encoding/json does).
func FuzzAppendString(f *testing.F) {
	for _, s := range []string{"", "plain", "quote\"back\\slash", "ctl\x00\x1f\n\r\t", "ünï😀", "\xff\xfe", "\u2028\u2029", "<&>"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		b := appendString(nil, s)
		var got string
		if err := json.Unmarshal(b, &got); err != nil {
			t.Fatalf("invalid JSON %q for %q: %v", b, s, err)
		}
		want := strings.ToValidUTF8(s, "\ufffd")
		if !utf8.ValidString(s) {
			// encoding/json replaces each invalid byte; compare with it.
			var ref string
			rb, _ := json.Marshal(s)
			_ = json.Unmarshal(rb, &ref)
			want = ref
		}
		if got != want {
			t.Fatalf("round trip %q -> %q, want %q", s, got, want)
		}
	})
}

func TestRenderedFramesDecode(t *testing.T) {
	m := &store.Message{ID: "m1", ChatID: "cA.B", Seq: 7, From: "uA", FromDevice: "dA", TS: 1700000000000,
		Body: json.RawMessage(`{"text":"hé \"there\""}`), ReplyTo: "m0\n"}
	f, err := wire.DecodeServerFrame(eventFrame(wire.TypeMessage, 42, messageTail(m)))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != "message" || f.Cursor != 42 || f.MsgID != "m1" || f.Seq != 7 || f.Body.Text != `hé "there"` ||
		f.ReplyTo != "m0\n" || f.TS != m.TS || f.FromDevice != "dA" {
		t.Fatalf("decoded %+v", f)
	}
	r := &store.Receipt{ChatID: "c", MsgIDs: []string{"a", "b"}, Status: "read", By: "uB", TS: 5}
	f, err = wire.DecodeServerFrame(renderEvent(&store.Event{Cursor: 3, Kind: store.EventReceipt, Receipt: r}, nil))
	if err != nil {
		t.Fatal(err)
	}
	if f.Type != "receipt" || f.Cursor != 3 || len(f.MsgIDs) != 2 || f.Status != "read" || f.By != "uB" || f.UserIDs != nil {
		t.Fatalf("decoded %+v", f)
	}
	// A coalesced receipt lists every reader, by first.
	r = &store.Receipt{ChatID: "g", MsgIDs: []string{"a"}, Status: "delivered", By: "uB", Others: []string{"uC", "u\"D"}, TS: 5}
	f, err = wire.DecodeServerFrame(renderEvent(&store.Event{Cursor: 4, Kind: store.EventReceipt, Receipt: r}, nil))
	if err != nil || f.By != "uB" || !slices.Equal(f.UserIDs, []string{"uB", "uC", `u"D`}) {
		t.Fatalf("coalesced receipt: %+v %v", f, err)
	}
	f, err = wire.DecodeServerFrame(renderEvent(&store.Event{Cursor: 9, Kind: "future"}, nil))
	if err != nil || f.Type != "future" || f.Cursor != 9 {
		t.Fatalf("unknown kind: %+v %v", f, err)
	}
	var s wire.Sent
	if err := json.Unmarshal(sentFrame("c\"1", m), &s); err != nil || s.ID != "c\"1" || s.Seq != 7 || s.Type != "sent" {
		t.Fatalf("sent: %+v %v", s, err)
	}
}

func BenchmarkMessageFrame(b *testing.B) {
	m := &store.Message{ID: store.NewID("m"), ChatID: store.DirectChatID(store.NewID("u"), store.NewID("u")), Seq: 7,
		From: store.NewID("u"), FromDevice: store.NewID("d"), TS: 1700000000000,
		Body: json.RawMessage(`{"text":"a typical short chat message"}`)}
	b.ReportAllocs()
	for i := 0; i < b.N; i++ {
		_ = eventFrame(wire.TypeMessage, int64(i), messageTail(m))
	}
}
