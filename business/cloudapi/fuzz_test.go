package cloudapi_test

import (
	"encoding/json"
	"reflect"
	"testing"
	"unicode/utf8"

	"github.com/tern-im/tern/business/cloudapi"
)

// fuzzSeeds are valid bodies of every kind, so the fuzzer starts from deep
// inside the accepted space rather than from syntax errors.
func fuzzSeeds(t testing.TB) []string {
	return []string{
		js(t, text("héllo 👋")),
		js(t, send(obj{"to": "1 (555) 123-4567", "text": obj{"body": "x", "preview_url": true}, "context": obj{"message_id": wamid}, "biz_opaque_callback_data": "o"})),
		js(t, media("image", obj{"link": "https://example.com/a.png", "caption": "c"})),
		js(t, media("document", obj{"id": "1", "filename": "f.pdf"})),
		js(t, media("audio", obj{"id": "1"})),
		js(t, send(obj{"type": "reaction", "reaction": obj{"message_id": wamid, "emoji": "👍🏽"}})),
		js(t, buttonMsg(func(in obj) { in["header"] = obj{"type": "text", "text": "h"}; in["footer"] = obj{"text": "f"} })),
		js(t, listMsg([]any{section("A", rows("a", 2)), section("B", rows("b", 3))}, nil)),
		js(t, tmpl(obj{"type": "header", "parameters": []any{obj{"type": "image", "image": obj{"id": "1"}}}},
			obj{"type": "body", "parameters": []any{textParam("a")}},
			obj{"type": "button", "sub_type": "quick_reply", "index": 0, "parameters": []any{obj{"type": "payload", "payload": "p"}}})),
		`{"messaging_product":"whatsapp","status":"read","message_id":"` + wamid + `","typing_indicator":{"type":"text"}}`,
		`{"messaging_product":"whatsapp","to":"+15551234567","text":{"body":"a\u0000\ud800b"}}`,
		`{"MESSAGING_PRODUCT":"whatsapp","To":"15551234567","TEXT":{"Body":"case"}}`,
		`{`, `[]`, `null`,
	}
}

func FuzzDecodeMessagesBody(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		b, e := cloudapi.DecodeMessagesBody(data)
		if e != nil {
			if b.Send != nil || b.Read != nil {
				t.Fatalf("error %v with a value %+v", e, b)
			}
			if e.HTTPStatus() != 400 {
				t.Fatalf("decoding error %v has status %d", e, e.HTTPStatus())
			}
			if _, err := json.Marshal(e); err != nil {
				t.Fatalf("error does not encode: %v", err)
			}
			return
		}
		if (b.Send == nil) == (b.Read == nil) {
			t.Fatalf("want exactly one of Send and Read: %+v", b)
		}
		if b.Send != nil {
			s := b.Send
			if s.MessagingProduct != "whatsapp" || s.RecipientType != "individual" || s.To == "" || s.To[0] != '+' {
				t.Fatalf("not canonical: %+v", s)
			}
			if n := utf8.RuneCountInString(s.BizOpaqueCallbackData); n > cloudapi.MaxBizOpaqueData {
				t.Fatalf("biz_opaque_callback_data of %d runes accepted", n)
			}
			if s.Text != nil && utf8.RuneCountInString(s.Text.Body) > cloudapi.MaxTextBody {
				t.Fatalf("text body over limit accepted")
			}
			contents := 0
			for _, p := range []any{s.Text, s.Image, s.Video, s.Audio, s.Document, s.Sticker, s.Reaction, s.Interactive, s.Template} {
				if !reflect.ValueOf(p).IsNil() {
					contents++
				}
			}
			if contents != 1 {
				t.Fatalf("%d content objects for type %q", contents, s.Type)
			}
		}
		assertRoundTrip(t, b)
	})
}

func FuzzMarshalASCII(f *testing.F) {
	for _, s := range []string{"", "héllo 👋", "<a>&/b", "\x00\x1f\u2028\u2029", "\xff\xfe", "𝄞", "\xed\xa0\x80"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		v := map[string]any{"k" + s: s, "list": []any{s, 1.5, true, nil}, "nested": map[string]string{s: s}}
		std, err := json.Marshal(v)
		if err != nil {
			t.Fatal(err)
		}
		var want any
		if err := json.Unmarshal(std, &want); err != nil {
			t.Fatal(err)
		}
		for name, marshal := range map[string]func(any) ([]byte, error){"ascii": cloudapi.MarshalASCII, "meta": cloudapi.MarshalMeta} {
			out, err := marshal(v)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			if !isASCII(out) {
				t.Fatalf("%s: non-ASCII output %q", name, out)
			}
			var got any
			if err := json.Unmarshal(out, &got); err != nil {
				t.Fatalf("%s: output %q does not parse: %v", name, out, err)
			}
			if !reflect.DeepEqual(got, want) {
				t.Fatalf("%s: decodes to %#v, want %#v", name, got, want)
			}
			if utf8.ValidString(s) {
				var back string
				_ = json.Unmarshal(mustField(t, out, "list", 0), &back)
				if back != s {
					t.Fatalf("%s: %q came back as %q", name, s, back)
				}
			}
		}
	})
}

// mustField extracts the raw JSON at doc[key][index].
func mustField(t *testing.T, doc []byte, key string, index int) []byte {
	t.Helper()
	var m map[string]json.RawMessage
	if err := json.Unmarshal(doc, &m); err != nil {
		t.Fatal(err)
	}
	var arr []json.RawMessage
	if err := json.Unmarshal(m[key], &arr); err != nil || len(arr) <= index {
		t.Fatalf("no %s[%d] in %s: %v", key, index, doc, err)
	}
	return arr[index]
}
