package cloudapi_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tern-im/tern/business/cloudapi"
)

const wamid = "wamid.HBgLMTY1MDM4Nzk0MzkVAgARGBJDQjZCMzlEQUE4OTJBMTE4RTUA"

// obj is a JSON object under construction.
type obj = map[string]any

// js encodes v, failing the test on error.
func js(t testing.TB, v any) string {
	t.Helper()
	b, err := json.Marshal(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

// send returns a send body: messaging_product and to, plus fields.
func send(fields obj) obj {
	b := obj{"messaging_product": "whatsapp", "to": "+15551234567"}
	for k, v := range fields {
		if v == nil {
			delete(b, k)
			continue
		}
		b[k] = v
	}
	return b
}

func text(body string) obj { return send(obj{"type": "text", "text": obj{"body": body}}) }

func media(kind string, m obj) obj { return send(obj{"type": kind, kind: m}) }

func buttons(n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = obj{"type": "reply", "reply": obj{"id": "id" + string(rune('a'+i)), "title": "Title " + string(rune('A'+i))}}
	}
	return out
}

func buttonMsg(mod func(in obj)) obj {
	in := obj{
		"type":   "button",
		"body":   obj{"text": "Pick one"},
		"action": obj{"buttons": buttons(2)},
	}
	if mod != nil {
		mod(in)
	}
	return send(obj{"type": "interactive", "interactive": in})
}

// rows returns n rows with ids prefix0..prefixN.
func rows(prefix string, n int) []any {
	out := make([]any, n)
	for i := range out {
		out[i] = obj{"id": prefix + strings.Repeat("x", i), "title": "Row"}
	}
	return out
}

func listMsg(sections []any, mod func(action obj)) obj {
	action := obj{"button": "Options", "sections": sections}
	if mod != nil {
		mod(action)
	}
	return send(obj{"type": "interactive", "interactive": obj{
		"type":   "list",
		"body":   obj{"text": "Choose"},
		"action": action,
	}})
}

func section(title string, r []any) obj {
	s := obj{"rows": r}
	if title != "" {
		s["title"] = title
	}
	return s
}

func tmpl(components ...any) obj {
	t := obj{"name": "order_update", "language": obj{"code": "en_US"}}
	if len(components) > 0 {
		t["components"] = components
	}
	return send(obj{"type": "template", "template": t})
}

func textParam(s string) obj { return obj{"type": "text", "text": s} }

type decodeCase struct {
	name  string
	body  string
	code  int // 0: accepted
	check func(t *testing.T, b cloudapi.MessagesBody)
}

func runDecodeCases(t *testing.T, cases []decodeCase) {
	t.Helper()
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			b, e := cloudapi.DecodeMessagesBody([]byte(c.body))
			if c.code != 0 {
				if e == nil {
					t.Fatalf("accepted %s, want error %d", c.body, c.code)
				}
				if e.Code != c.code {
					t.Fatalf("code %d (%v), want %d", e.Code, e, c.code)
				}
				if got := e.HTTPStatus(); got != 400 {
					t.Errorf("HTTPStatus %d, want 400", got)
				}
				return
			}
			if e != nil {
				t.Fatalf("rejected: %v", e)
			}
			if (b.Send == nil) == (b.Read == nil) {
				t.Fatalf("want exactly one of Send and Read, got %+v", b)
			}
			assertRoundTrip(t, b)
			if c.check != nil {
				c.check(t, b)
			}
		})
	}
}

// assertRoundTrip re-encodes an accepted body and checks it decodes to the
// same value (ToInput aside, which becomes the canonical number).
func assertRoundTrip(t testing.TB, b cloudapi.MessagesBody) {
	t.Helper()
	for _, marshal := range []func(any) ([]byte, error){json.Marshal, cloudapi.MarshalASCII, cloudapi.MarshalMeta} {
		var v any = b.Read
		if b.Send != nil {
			v = b.Send
		}
		enc, err := marshal(v)
		if err != nil {
			t.Fatalf("re-encoding: %v", err)
		}
		b2, e := cloudapi.DecodeMessagesBody(enc)
		if e != nil {
			t.Fatalf("re-encoded body %s rejected: %v", enc, e)
		}
		if b.Send != nil {
			if b2.Send == nil {
				t.Fatalf("re-encoded send %s decoded as %+v", enc, b2)
			}
			s1, s2 := *b.Send, *b2.Send
			if s2.ToInput != s1.To {
				t.Errorf("second ToInput %q, want canonical %q", s2.ToInput, s1.To)
			}
			s1.ToInput, s2.ToInput = "", ""
			if !reflect.DeepEqual(s1, s2) {
				t.Fatalf("round trip changed the request:\n first %+v\nsecond %+v\n  body %s", s1, s2, enc)
			}
			continue
		}
		if b2.Read == nil || !reflect.DeepEqual(*b.Read, *b2.Read) {
			t.Fatalf("round trip changed the read request: %+v vs %+v", b.Read, b2.Read)
		}
	}
}

func sendOf(t *testing.T, b cloudapi.MessagesBody) cloudapi.SendRequest {
	t.Helper()
	if b.Send == nil {
		t.Fatalf("not a send: %+v", b)
	}
	return *b.Send
}

func TestDecodeEnvelope(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "text canonical", body: js(t, text("hi")), check: func(t *testing.T, b cloudapi.MessagesBody) {
			s := sendOf(t, b)
			if s.To != "+15551234567" || s.ToInput != "+15551234567" || s.RecipientType != "individual" || s.Type != "text" || s.Text.Body != "hi" {
				t.Errorf("got %+v", s)
			}
			if s.WaID() != "15551234567" {
				t.Errorf("WaID %q", s.WaID())
			}
		}},
		{name: "type defaults to text", body: js(t, send(obj{"text": obj{"body": "hi"}})), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if s := sendOf(t, b); s.Type != "text" {
				t.Errorf("type %q", s.Type)
			}
		}},
		{name: "no type and no text", body: js(t, send(obj{"image": obj{"id": "1"}})), code: 131008},
		{name: "to without plus", body: js(t, send(obj{"to": "15551234567", "text": obj{"body": "x"}})), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if s := sendOf(t, b); s.To != "+15551234567" || s.ToInput != "15551234567" {
				t.Errorf("to %q input %q", s.To, s.ToInput)
			}
		}},
		{name: "to with separators", body: js(t, send(obj{"to": "+1 (555) 123-4567", "text": obj{"body": "x"}})), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if s := sendOf(t, b); s.To != "+15551234567" || s.ToInput != "+1 (555) 123-4567" {
				t.Errorf("to %q input %q", s.To, s.ToInput)
			}
		}},
		{name: "to letters", body: js(t, send(obj{"to": "+1555abc4567", "text": obj{"body": "x"}})), code: 100},
		{name: "to national", body: js(t, send(obj{"to": "0555123456", "text": obj{"body": "x"}})), code: 100},
		{name: "to 6 digits", body: js(t, send(obj{"to": "+123456", "text": obj{"body": "x"}})), code: 100},
		{name: "to 7 digits", body: js(t, send(obj{"to": "+1234567", "text": obj{"body": "x"}}))},
		{name: "to 15 digits", body: js(t, send(obj{"to": "+123456789012345", "text": obj{"body": "x"}}))},
		{name: "to 16 digits", body: js(t, send(obj{"to": "+1234567890123456", "text": obj{"body": "x"}})), code: 100},
		{name: "to plus inside", body: js(t, send(obj{"to": "1+5551234567", "text": obj{"body": "x"}})), code: 100},
		{name: "to missing", body: js(t, send(obj{"to": nil, "text": obj{"body": "x"}})), code: 131008},
		{name: "product missing", body: js(t, send(obj{"messaging_product": nil, "text": obj{"body": "x"}})), code: 100},
		{name: "product wrong", body: js(t, send(obj{"messaging_product": "sms", "text": obj{"body": "x"}})), code: 100},
		{name: "recipient individual", body: js(t, send(obj{"recipient_type": "individual", "text": obj{"body": "x"}}))},
		{name: "recipient group", body: js(t, send(obj{"recipient_type": "group", "text": obj{"body": "x"}})), code: 100},
		{name: "unknown fields ignored", body: js(t, send(obj{"type": "text", "text": obj{"body": "x", "extra": true}, "sdk_version": "9.9", "recipient": obj{"a": []any{1}}})), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if s := sendOf(t, b); s.Text.Body != "x" {
				t.Errorf("got %+v", s)
			}
		}},
		{name: "other content dropped", body: js(t, send(obj{"type": "text", "text": obj{"body": "x"}, "image": obj{"id": "1"}, "reaction": obj{"message_id": wamid}})), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if s := sendOf(t, b); s.Image != nil || s.Reaction != nil {
				t.Errorf("kept content not matching type: %+v", s)
			}
		}},
		{name: "unknown type", body: js(t, send(obj{"type": "hologram"})), code: 100},
		{name: "location unsupported", body: js(t, send(obj{"type": "location", "location": obj{"latitude": 1}})), code: 131051},
		{name: "opaque 512", body: js(t, send(obj{"text": obj{"body": "x"}, "biz_opaque_callback_data": strings.Repeat("a", 512)}))},
		{name: "opaque 513", body: js(t, send(obj{"text": obj{"body": "x"}, "biz_opaque_callback_data": strings.Repeat("a", 513)})), code: 131009},
		{name: "context", body: js(t, send(obj{"text": obj{"body": "x"}, "context": obj{"message_id": wamid}})), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if s := sendOf(t, b); s.Context == nil || s.Context.MessageID != wamid {
				t.Errorf("context %+v", s.Context)
			}
		}},
		{name: "context empty", body: js(t, send(obj{"text": obj{"body": "x"}, "context": obj{}})), code: 131008},
		{name: "context bad id", body: js(t, send(obj{"text": obj{"body": "x"}, "context": obj{"message_id": "123"}})), code: 100},
	})
}

func TestDecodeMalformed(t *testing.T) {
	for _, body := range []string{
		``, `{`, `{"messaging_product":"whatsapp",`, `[]`, `"text"`, `42`, `{} {}`,
		`{"messaging_product":"whatsapp","to":15551234567,"text":{"body":"x"}}`,
		`{"messaging_product":"whatsapp","to":"+15551234567","text":"hello"}`,
		`{"messaging_product":"whatsapp","to":"+15551234567","text":{"body":"x","preview_url":"yes"}}`,
		`{"status":1}`,
		`{"messaging_product":"whatsapp","to":"+15551234567","type":"template","template":{"name":"n","language":{"code":"en"},"components":[{"type":"button","sub_type":"url","index":"x","parameters":[{"type":"text","text":"a"}]}]}}`,
	} {
		t.Run(body, func(t *testing.T) {
			_, e := cloudapi.DecodeMessagesBody([]byte(body))
			if e == nil || e.Code != 100 {
				t.Fatalf("got %v, want code 100", e)
			}
			if errors.Unwrap(e) == nil {
				t.Errorf("decoding error lost its cause")
			}
		})
	}
}

func TestDecodeMalformedKeepsCause(t *testing.T) {
	_, e := cloudapi.DecodeMessagesBody([]byte(`{"messaging_product":`))
	var se *json.SyntaxError
	if !errors.As(e, &se) {
		t.Fatalf("errors.As(*json.SyntaxError) failed on %v", e)
	}
	_, e = cloudapi.DecodeMessagesBody([]byte(`{"messaging_product":"whatsapp","to":1}`))
	var te *json.UnmarshalTypeError
	if !errors.As(e, &te) || !strings.Contains(e.Details, "to") {
		t.Fatalf("type error not kept or field not named: %v", e)
	}
}

func TestDecodeText(t *testing.T) {
	runDecodeCases(t, []decodeCase{
		{name: "body 4096", body: js(t, text(strings.Repeat("a", 4096)))},
		{name: "body 4097", body: js(t, text(strings.Repeat("a", 4097))), code: 131009},
		{name: "body 4096 two-byte runes", body: js(t, text(strings.Repeat("é", 4096)))},
		{name: "body 4097 two-byte runes", body: js(t, text(strings.Repeat("é", 4097))), code: 131009},
		{name: "body empty", body: js(t, text("")), code: 131008},
		{name: "text missing", body: js(t, send(obj{"type": "text"})), code: 131008},
		{name: "preview_url", body: js(t, send(obj{"type": "text", "text": obj{"body": "https://tern.im", "preview_url": true}})), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if s := sendOf(t, b); !s.Text.PreviewURL {
				t.Error("preview_url lost")
			}
		}},
	})
}

func TestDecodeMedia(t *testing.T) {
	var cases []decodeCase
	for _, kind := range []string{"image", "video", "audio", "document", "sticker"} {
		captioned := kind == "image" || kind == "video" || kind == "document"
		cases = append(cases,
			decodeCase{name: kind + " id", body: js(t, media(kind, obj{"id": "1013859600285441"})), check: func(t *testing.T, b cloudapi.MessagesBody) {
				s := sendOf(t, b)
				m := map[string]*cloudapi.Media{"image": s.Image, "video": s.Video, "audio": s.Audio, "document": s.Document, "sticker": s.Sticker}[kind]
				if m == nil || m.ID != "1013859600285441" || s.Type != kind {
					t.Errorf("got %+v", s)
				}
			}},
			decodeCase{name: kind + " link", body: js(t, media(kind, obj{"link": "https://cdn.example.com/a/b.bin?x=1"}))},
			decodeCase{name: kind + " http link", body: js(t, media(kind, obj{"link": "http://cdn.example.com/b"}))},
			decodeCase{name: kind + " id and link", body: js(t, media(kind, obj{"id": "1", "link": "https://example.com/x"})), code: 100},
			decodeCase{name: kind + " neither", body: js(t, media(kind, obj{})), code: 131008},
			decodeCase{name: kind + " missing", body: js(t, send(obj{"type": kind})), code: 131008},
			decodeCase{name: kind + " ftp link", body: js(t, media(kind, obj{"link": "ftp://example.com/x"})), code: 131009},
			decodeCase{name: kind + " relative link", body: js(t, media(kind, obj{"link": "/x/y.png"})), code: 131009},
			decodeCase{name: kind + " not a url", body: js(t, media(kind, obj{"link": "https//nope"})), code: 131009},
		)
		if captioned {
			cases = append(cases,
				decodeCase{name: kind + " caption 1024", body: js(t, media(kind, obj{"id": "1", "caption": strings.Repeat("c", 1024)}))},
				decodeCase{name: kind + " caption 1025", body: js(t, media(kind, obj{"id": "1", "caption": strings.Repeat("c", 1025)})), code: 131009},
			)
		} else {
			cases = append(cases,
				decodeCase{name: kind + " caption refused", body: js(t, media(kind, obj{"id": "1", "caption": "c"})), code: 100})
		}
		if kind == "document" {
			cases = append(cases, decodeCase{name: "document filename", body: js(t, media(kind, obj{"id": "1", "filename": "invoice.pdf"})), check: func(t *testing.T, b cloudapi.MessagesBody) {
				if s := sendOf(t, b); s.Document.Filename != "invoice.pdf" {
					t.Errorf("filename %q", s.Document.Filename)
				}
			}})
		} else {
			cases = append(cases, decodeCase{name: kind + " filename refused", body: js(t, media(kind, obj{"id": "1", "filename": "a.pdf"})), code: 100})
		}
	}
	runDecodeCases(t, cases)
}

func TestDecodeReaction(t *testing.T) {
	reaction := func(emoji any) string {
		r := obj{"message_id": wamid}
		if emoji != nil {
			r["emoji"] = emoji
		}
		return js(t, send(obj{"type": "reaction", "reaction": r}))
	}
	cases := []decodeCase{
		{name: "remove", body: reaction(""), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if s := sendOf(t, b); s.Reaction.Emoji != "" || s.Reaction.MessageID != wamid {
				t.Errorf("got %+v", s.Reaction)
			}
		}},
		{name: "emoji absent means remove", body: reaction(nil)},
		{name: "no message id", body: js(t, send(obj{"type": "reaction", "reaction": obj{"emoji": "👍"}})), code: 131008},
		{name: "bad message id", body: js(t, send(obj{"type": "reaction", "reaction": obj{"message_id": "x", "emoji": "👍"}})), code: 100},
		{name: "reaction missing", body: js(t, send(obj{"type": "reaction"})), code: 131008},
	}
	for _, e := range []string{"👍", "👍🏽", "\u2764\ufe0f", "\u2764", "👨\u200d👩\u200d👧", "🏳\ufe0f\u200d🌈", "🇫🇷", "1\ufe0f\u20e3", "#\u20e3",
		"🏴\U000e0067\U000e0062\U000e0073\U000e0063\U000e0074\U000e007f", "👩🏾\u200d💻", "\u00a9\ufe0f", "⭐"} {
		cases = append(cases, decodeCase{name: "emoji " + e, body: reaction(e)})
	}
	for _, e := range []string{"👍👍", "ok", "a", "🇫", "👍 ", " 👍", "1", "\u200d👍", "👍\u200d", "🏴\U000e0067\U000e0062", strings.Repeat("👍\u200d", 20) + "👍"} {
		cases = append(cases, decodeCase{name: "not one emoji " + e, body: reaction(e), code: 131009})
	}
	runDecodeCases(t, cases)
}

func TestDecodeInteractiveButtons(t *testing.T) {
	setButtons := func(bs ...any) func(obj) {
		return func(in obj) { in["action"] = obj{"buttons": bs} }
	}
	button := func(id, title string) obj { return obj{"type": "reply", "reply": obj{"id": id, "title": title}} }
	runDecodeCases(t, []decodeCase{
		{name: "two buttons", body: js(t, buttonMsg(nil)), check: func(t *testing.T, b cloudapi.MessagesBody) {
			in := sendOf(t, b).Interactive
			if in.Type != "button" || len(in.Action.Buttons) != 2 || in.Action.Buttons[1].Reply.ID != "idb" {
				t.Errorf("got %+v", in)
			}
		}},
		{name: "one button", body: js(t, buttonMsg(func(in obj) { in["action"] = obj{"buttons": buttons(1)} }))},
		{name: "three buttons", body: js(t, buttonMsg(func(in obj) { in["action"] = obj{"buttons": buttons(3)} }))},
		{name: "zero buttons", body: js(t, buttonMsg(func(in obj) { in["action"] = obj{"buttons": []any{}} })), code: 131009},
		{name: "four buttons", body: js(t, buttonMsg(func(in obj) { in["action"] = obj{"buttons": buttons(4)} })), code: 131009},
		{name: "title 20", body: js(t, buttonMsg(setButtons(button("a", strings.Repeat("t", 20)))))},
		{name: "title 21", body: js(t, buttonMsg(setButtons(button("a", strings.Repeat("t", 21))))), code: 131009},
		{name: "title 20 emoji", body: js(t, buttonMsg(setButtons(button("a", strings.Repeat("👍", 20)))))},
		{name: "title empty", body: js(t, buttonMsg(setButtons(button("a", "")))), code: 131008},
		{name: "id 256", body: js(t, buttonMsg(setButtons(button(strings.Repeat("i", 256), "t"))))},
		{name: "id 257", body: js(t, buttonMsg(setButtons(button(strings.Repeat("i", 257), "t")))), code: 131009},
		{name: "id empty", body: js(t, buttonMsg(setButtons(button("", "t")))), code: 131008},
		{name: "duplicate ids", body: js(t, buttonMsg(setButtons(button("a", "One"), button("a", "Two")))), code: 131009},
		{name: "duplicate titles", body: js(t, buttonMsg(setButtons(button("a", "Same"), button("b", "Same")))), code: 131009},
		{name: "button type url", body: js(t, buttonMsg(setButtons(obj{"type": "url", "reply": obj{"id": "a", "title": "t"}}))), code: 100},
		{name: "button type missing", body: js(t, buttonMsg(setButtons(obj{"reply": obj{"id": "a", "title": "t"}}))), code: 131008},
		{name: "sections on buttons", body: js(t, buttonMsg(func(in obj) {
			in["action"] = obj{"buttons": buttons(1), "sections": []any{section("", rows("r", 1))}}
		})), code: 100},
		{name: "empty sections on buttons", body: js(t, buttonMsg(func(in obj) {
			in["action"] = obj{"buttons": buttons(1), "sections": []any{}}
		}))},
		{name: "body 1024", body: js(t, buttonMsg(func(in obj) { in["body"] = obj{"text": strings.Repeat("b", 1024)} }))},
		{name: "body 1025", body: js(t, buttonMsg(func(in obj) { in["body"] = obj{"text": strings.Repeat("b", 1025)} })), code: 131009},
		{name: "body missing", body: js(t, buttonMsg(func(in obj) { delete(in, "body") })), code: 131008},
		{name: "header 60", body: js(t, buttonMsg(func(in obj) { in["header"] = obj{"type": "text", "text": strings.Repeat("h", 60)} })), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if h := sendOf(t, b).Interactive.Header; h == nil || len(h.Text) != 60 {
				t.Errorf("header %+v", h)
			}
		}},
		{name: "header 61", body: js(t, buttonMsg(func(in obj) { in["header"] = obj{"type": "text", "text": strings.Repeat("h", 61)} })), code: 131009},
		{name: "header image", body: js(t, buttonMsg(func(in obj) { in["header"] = obj{"type": "image", "image": obj{"id": "1"}} })), code: 100},
		{name: "header empty text", body: js(t, buttonMsg(func(in obj) { in["header"] = obj{"type": "text"} })), code: 131008},
		{name: "footer 60", body: js(t, buttonMsg(func(in obj) { in["footer"] = obj{"text": strings.Repeat("f", 60)} }))},
		{name: "footer 61", body: js(t, buttonMsg(func(in obj) { in["footer"] = obj{"text": strings.Repeat("f", 61)} })), code: 131009},
		{name: "footer empty", body: js(t, buttonMsg(func(in obj) { in["footer"] = obj{} })), code: 131008},
		{name: "interactive type missing", body: js(t, buttonMsg(func(in obj) { delete(in, "type") })), code: 131008},
		{name: "interactive type product", body: js(t, buttonMsg(func(in obj) { in["type"] = "product" })), code: 100},
		{name: "interactive missing", body: js(t, send(obj{"type": "interactive"})), code: 131008},
	})
}

func TestDecodeInteractiveList(t *testing.T) {
	one := []any{section("", rows("r", 3))}
	tenSections := make([]any, 10)
	for i := range tenSections {
		tenSections[i] = section("S"+strings.Repeat("s", i), rows("r"+strings.Repeat("s", i)+"-", 1))
	}
	elevenSections := append(append([]any{}, tenSections...), section("extra", rows("e", 1)))
	row := func(r obj) []any { return []any{section("", []any{r})} }
	runDecodeCases(t, []decodeCase{
		{name: "one section", body: js(t, listMsg(one, nil)), check: func(t *testing.T, b cloudapi.MessagesBody) {
			a := sendOf(t, b).Interactive.Action
			if a.Button != "Options" || len(a.Sections) != 1 || len(a.Sections[0].Rows) != 3 || a.Buttons != nil {
				t.Errorf("got %+v", a)
			}
		}},
		{name: "button 20", body: js(t, listMsg(one, func(a obj) { a["button"] = strings.Repeat("b", 20) }))},
		{name: "button 21", body: js(t, listMsg(one, func(a obj) { a["button"] = strings.Repeat("b", 21) })), code: 131009},
		{name: "button missing", body: js(t, listMsg(one, func(a obj) { delete(a, "button") })), code: 131008},
		{name: "no sections", body: js(t, listMsg([]any{}, nil)), code: 131009},
		{name: "ten sections", body: js(t, listMsg(tenSections, nil))},
		{name: "eleven sections", body: js(t, listMsg(elevenSections, nil)), code: 131009},
		{name: "ten rows across sections", body: js(t, listMsg([]any{section("A", rows("a", 4)), section("B", rows("b", 6))}, nil))},
		{name: "eleven rows across sections", body: js(t, listMsg([]any{section("A", rows("a", 5)), section("B", rows("b", 6))}, nil)), code: 131009},
		{name: "eleven rows one section", body: js(t, listMsg([]any{section("", rows("a", 11))}, nil)), code: 131009},
		{name: "section without rows", body: js(t, listMsg([]any{section("A", []any{})}, nil)), code: 131008},
		{name: "untitled among several", body: js(t, listMsg([]any{section("A", rows("a", 1)), section("", rows("b", 1))}, nil)), code: 131008},
		{name: "section title 24", body: js(t, listMsg([]any{section(strings.Repeat("s", 24), rows("a", 1))}, nil))},
		{name: "section title 25", body: js(t, listMsg([]any{section(strings.Repeat("s", 25), rows("a", 1))}, nil)), code: 131009},
		{name: "row title 24", body: js(t, listMsg(row(obj{"id": "r", "title": strings.Repeat("t", 24)}), nil))},
		{name: "row title 25", body: js(t, listMsg(row(obj{"id": "r", "title": strings.Repeat("t", 25)}), nil)), code: 131009},
		{name: "row title missing", body: js(t, listMsg(row(obj{"id": "r"}), nil)), code: 131008},
		{name: "row description 72", body: js(t, listMsg(row(obj{"id": "r", "title": "t", "description": strings.Repeat("d", 72)}), nil))},
		{name: "row description 73", body: js(t, listMsg(row(obj{"id": "r", "title": "t", "description": strings.Repeat("d", 73)}), nil)), code: 131009},
		{name: "row id 200", body: js(t, listMsg(row(obj{"id": strings.Repeat("i", 200), "title": "t"}), nil))},
		{name: "row id 201", body: js(t, listMsg(row(obj{"id": strings.Repeat("i", 201), "title": "t"}), nil)), code: 131009},
		{name: "row id missing", body: js(t, listMsg(row(obj{"title": "t"}), nil)), code: 131008},
		{name: "duplicate row ids across sections", body: js(t, listMsg([]any{section("A", rows("a", 1)), section("B", rows("a", 1))}, nil)), code: 131009},
		{name: "buttons on list", body: js(t, listMsg(one, func(a obj) { a["buttons"] = buttons(1) })), code: 100},
	})
}

func TestDecodeTemplate(t *testing.T) {
	quick := func(index any) obj {
		c := obj{"type": "button", "sub_type": "quick_reply", "parameters": []any{obj{"type": "payload", "payload": "YES"}}}
		if index != nil {
			c["index"] = index
		}
		return c
	}
	body := obj{"type": "body", "parameters": []any{textParam("Ana"), textParam("#1234")}}
	runDecodeCases(t, []decodeCase{
		{name: "no components", body: js(t, tmpl()), check: func(t *testing.T, b cloudapi.MessagesBody) {
			tp := sendOf(t, b).Template
			if tp.Name != "order_update" || tp.Language.Code != "en_US" || tp.Components != nil {
				t.Errorf("got %+v", tp)
			}
		}},
		{name: "empty components", body: js(t, send(obj{"type": "template", "template": obj{"name": "n", "language": obj{"code": "en"}, "components": []any{}}})), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if c := sendOf(t, b).Template.Components; c != nil {
				t.Errorf("empty components kept as %#v", c)
			}
		}},
		{name: "body params", body: js(t, tmpl(body)), check: func(t *testing.T, b cloudapi.MessagesBody) {
			c := sendOf(t, b).Template.Components
			if len(c) != 1 || len(c[0].Parameters) != 2 || c[0].Parameters[1].Text != "#1234" {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "header image", body: js(t, tmpl(obj{"type": "header", "parameters": []any{obj{"type": "image", "image": obj{"link": "https://example.com/a.png"}}}}, body))},
		{name: "header document", body: js(t, tmpl(obj{"type": "header", "parameters": []any{obj{"type": "document", "document": obj{"id": "9", "filename": "a.pdf"}}}}))},
		{name: "header text", body: js(t, tmpl(obj{"type": "header", "parameters": []any{textParam("Hi")}}))},
		{name: "quick reply index string", body: js(t, tmpl(quick("0"))), check: func(t *testing.T, b cloudapi.MessagesBody) {
			c := sendOf(t, b).Template.Components[0]
			if c.Index == nil || *c.Index != 0 || c.Parameters[0].Payload != "YES" {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "quick reply index number", body: js(t, tmpl(quick(9))), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if c := sendOf(t, b).Template.Components[0]; c.Index == nil || *c.Index != 9 {
				t.Errorf("got %+v", c)
			}
		}},
		{name: "url button", body: js(t, tmpl(obj{"type": "button", "sub_type": "url", "index": "1", "parameters": []any{textParam("track/123")}}))},
		{name: "index 10", body: js(t, tmpl(quick(10))), code: 131009},
		{name: "index negative", body: js(t, tmpl(quick("-1"))), code: 131009},
		{name: "index missing", body: js(t, tmpl(quick(nil))), code: 131008},
		{name: "sub_type missing", body: js(t, tmpl(obj{"type": "button", "index": "0", "parameters": []any{obj{"type": "payload", "payload": "x"}}})), code: 131008},
		{name: "sub_type flow", body: js(t, tmpl(obj{"type": "button", "sub_type": "flow", "index": "0", "parameters": []any{obj{"type": "payload", "payload": "x"}}})), code: 100},
		{name: "index on body", body: js(t, tmpl(obj{"type": "body", "index": "0", "parameters": []any{textParam("a")}})), code: 100},
		{name: "payload in body", body: js(t, tmpl(obj{"type": "body", "parameters": []any{obj{"type": "payload", "payload": "x"}}})), code: 100},
		{name: "text in quick reply", body: js(t, tmpl(obj{"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": []any{textParam("a")}})), code: 100},
		{name: "image in body", body: js(t, tmpl(obj{"type": "body", "parameters": []any{obj{"type": "image", "image": obj{"id": "1"}}}})), code: 100},
		{name: "footer component", body: js(t, tmpl(obj{"type": "footer", "parameters": []any{textParam("a")}})), code: 100},
		{name: "component type missing", body: js(t, tmpl(obj{"parameters": []any{textParam("a")}})), code: 131008},
		{name: "parameters missing", body: js(t, tmpl(obj{"type": "body"})), code: 131008},
		{name: "parameter text empty", body: js(t, tmpl(obj{"type": "body", "parameters": []any{textParam("")}})), code: 131008},
		{name: "parameter currency", body: js(t, tmpl(obj{"type": "body", "parameters": []any{obj{"type": "currency"}}})), code: 100},
		{name: "header media both", body: js(t, tmpl(obj{"type": "header", "parameters": []any{obj{"type": "video", "video": obj{"id": "1", "link": "https://e.com/v"}}}})), code: 100},
		{name: "name missing", body: js(t, send(obj{"type": "template", "template": obj{"language": obj{"code": "en"}}})), code: 131008},
		{name: "language missing", body: js(t, send(obj{"type": "template", "template": obj{"name": "n"}})), code: 131008},
		{name: "template missing", body: js(t, send(obj{"type": "template"})), code: 131008},
	})
}

func TestDecodeRead(t *testing.T) {
	read := func(fields obj) string {
		b := obj{"messaging_product": "whatsapp", "status": "read", "message_id": wamid}
		for k, v := range fields {
			if v == nil {
				delete(b, k)
				continue
			}
			b[k] = v
		}
		return js(t, b)
	}
	runDecodeCases(t, []decodeCase{
		{name: "mark read", body: read(nil), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if b.Read == nil || b.Send != nil || b.Read.MessageID != wamid || b.Read.TypingIndicator != nil {
				t.Errorf("got %+v", b)
			}
		}},
		{name: "with typing indicator", body: read(obj{"typing_indicator": obj{"type": "text"}}), check: func(t *testing.T, b cloudapi.MessagesBody) {
			if b.Read == nil || b.Read.TypingIndicator == nil || b.Read.TypingIndicator.Type != "text" {
				t.Errorf("got %+v", b.Read)
			}
		}},
		{name: "extra send fields ignored", body: read(obj{"to": "+15551234567", "type": "text"})},
		{name: "typing indicator audio", body: read(obj{"typing_indicator": obj{"type": "audio"}}), code: 100},
		{name: "typing indicator empty", body: read(obj{"typing_indicator": obj{}}), code: 100},
		{name: "status delivered", body: read(obj{"status": "delivered"}), code: 100},
		{name: "message id missing", body: read(obj{"message_id": nil}), code: 131008},
		{name: "message id bad", body: read(obj{"message_id": "abc"}), code: 100},
		{name: "product missing", body: read(obj{"messaging_product": nil}), code: 100},
	})
}
