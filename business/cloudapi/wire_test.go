package cloudapi_test

import (
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/tern-im/tern/business/cloudapi"
)

func isASCII(b []byte) bool {
	for _, c := range b {
		if c >= 0x80 {
			return false
		}
	}
	return true
}

func TestMarshalASCII(t *testing.T) {
	cases := []struct {
		name string
		in   any
		want string
		meta string // MarshalMeta output; empty means same as want
	}{
		{name: "latin and emoji", in: "héllo 👋", want: `"h\u00e9llo \ud83d\udc4b"`},
		{name: "lowercase hex", in: "ÄÖÅ", want: `"\u00c4\u00d6\u00c5"`},
		{name: "cjk", in: "日本", want: `"\u65e5\u672c"`},
		{name: "astral plane", in: "𝄞", want: `"\ud834\udd1e"`},
		{name: "html left alone", in: "<b>&</b>", want: `"<b>&</b>"`, meta: `"<b>&<\/b>"`},
		{name: "slash", in: "image/jpeg", want: `"image/jpeg"`, meta: `"image\/jpeg"`},
		{name: "line separator", in: "a\u2028b", want: `"a\u2028b"`},
		{name: "control", in: "a\x01\n", want: `"a\u0001\n"`},
		{name: "invalid utf8 becomes U+FFFD", in: "a\xffb", want: `"a\ufffdb"`},
		{name: "keys escaped too", in: map[string]int{"ключ": 1}, want: `{"\u043a\u043b\u044e\u0447":1}`},
		{name: "nested", in: obj{"text": obj{"body": "café 🇫🇷"}}, want: `{"text":{"body":"caf\u00e9 \ud83c\uddeb\ud83c\uddf7"}}`},
		{name: "ascii untouched", in: obj{"a": []int{1, 2}, "b": nil}, want: `{"a":[1,2],"b":null}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := cloudapi.MarshalASCII(c.in)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Errorf("MarshalASCII got %s want %s", got, c.want)
			}
			meta, err := cloudapi.MarshalMeta(c.in)
			if err != nil {
				t.Fatal(err)
			}
			wantMeta := c.meta
			if wantMeta == "" {
				wantMeta = c.want
			}
			if string(meta) != wantMeta {
				t.Errorf("MarshalMeta got %s want %s", meta, wantMeta)
			}
			std, _ := json.Marshal(c.in)
			for _, out := range [][]byte{got, meta} {
				if !isASCII(out) {
					t.Errorf("non-ASCII output %q", out)
				}
				var a, b any
				if err := json.Unmarshal(out, &a); err != nil {
					t.Fatalf("output does not parse: %v", err)
				}
				_ = json.Unmarshal(std, &b)
				if !reflect.DeepEqual(a, b) {
					t.Errorf("decodes to %#v, encoding/json's to %#v", a, b)
				}
			}
		})
	}
}

func TestMarshalASCIIRoundTripString(t *testing.T) {
	in := "héllo 👋 — “quotes” / <tags> & 𝄞 \u2029 end"
	for _, marshal := range []func(any) ([]byte, error){cloudapi.MarshalASCII, cloudapi.MarshalMeta} {
		b, err := marshal(in)
		if err != nil {
			t.Fatal(err)
		}
		var out string
		if err := json.Unmarshal(b, &out); err != nil || out != in {
			t.Fatalf("round trip %q -> %s -> %q (%v)", in, b, out, err)
		}
	}
}

func TestMarshalASCIIError(t *testing.T) {
	_, err := cloudapi.MarshalASCII(obj{"c": make(chan int)})
	var ute *json.UnsupportedTypeError
	if !errors.As(err, &ute) {
		t.Fatalf("want wrapped *json.UnsupportedTypeError, got %v", err)
	}
}

// TestMarshalMetaMatchesMetaBytes decodes a body in the exact form Meta
// sends (escaped non-ASCII with lowercase hex, escaped slashes, '+' and '&'
// left alone; synthetic values) and checks re-encoding gives the same bytes.
func TestMarshalMetaMatchesMetaBytes(t *testing.T) {
	const body = `{"object":"whatsapp_business_account","entry":[{"id":"100000000000001","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550000001","phone_number_id":"100000000000002"},"contacts":[{"profile":{"name":"Z\u00f6e"},"wa_id":"15550000002"}],"messages":[{"from":"15550000002","id":"wamid.HBgLMTU1NTAwMDAwMDIVAgASGBQzQUI0NkE4NjM1QTU2NjVGOURGQgA=","timestamp":"1706462045","type":"image","image":{"caption":"Un caf\u00e9 & \ud83c\udf70","mime_type":"image\/jpeg","sha256":"hgAkC3q+WZRfX+5GNvi+Drwn\/Xq4zWveuUIELCQtPxE=","id":"923699576041120"}}]},"field":"messages"}]}]}`
	var p cloudapi.WebhookPayload
	if err := json.Unmarshal([]byte(body), &p); err != nil {
		t.Fatal(err)
	}
	got, err := cloudapi.MarshalMeta(p)
	if err != nil {
		t.Fatal(err)
	}
	if string(got) != body {
		t.Fatalf("got  %s\nwant %s", got, body)
	}
	// The signature Meta would send is over these bytes, so a receiver that
	// re-escapes the decoded body the documented way gets the same result.
	if !cloudapi.VerifySignature([]byte("s3cret"), got, cloudapi.Sign([]byte("s3cret"), []byte(body))) {
		t.Error("signature over re-encoded bytes differs")
	}
}

func TestSignRFC4231(t *testing.T) {
	// RFC 4231, test case 2.
	key := []byte("Jefe")
	data := []byte("what do ya want for nothing?")
	const want = "sha256=5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843"
	if got := cloudapi.Sign(key, data); got != want {
		t.Fatalf("got %s want %s", got, want)
	}
	// And against the standard library, for a body that is not ASCII.
	body := []byte(`{"text":{"body":"héllo"}}`)
	mac := hmac.New(sha256.New, []byte("app-secret"))
	mac.Write(body)
	if got := cloudapi.Sign([]byte("app-secret"), body); got != "sha256="+hex.EncodeToString(mac.Sum(nil)) {
		t.Fatalf("Sign disagrees with crypto/hmac: %s", got)
	}
}

func TestVerifySignature(t *testing.T) {
	secret := []byte("Jefe")
	body := []byte("what do ya want for nothing?")
	good := cloudapi.Sign(secret, body)
	hexPart := strings.TrimPrefix(good, "sha256=")
	cases := []struct {
		name   string
		secret []byte
		body   []byte
		header string
		want   bool
	}{
		{"valid", secret, body, good, true},
		{"uppercase hex", secret, body, "sha256=" + strings.ToUpper(hexPart), true},
		{"wrong secret", []byte("jefe"), body, good, false},
		{"wrong body", secret, []byte("what do ya want for nothing!"), good, false},
		{"body with trailing newline", secret, append(append([]byte{}, body...), '\n'), good, false},
		{"sha1 prefix", secret, body, "sha1=" + hexPart, false},
		{"no prefix", secret, body, hexPart, false},
		{"uppercase prefix", secret, body, "SHA256=" + hexPart, false},
		{"truncated", secret, body, good[:len(good)-2], false},
		{"extended", secret, body, good + "00", false},
		{"not hex", secret, body, "sha256=" + strings.Repeat("zz", 32), false},
		{"empty header", secret, body, "", false},
		{"empty secret", nil, body, cloudapi.Sign(nil, body), false},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			if got := cloudapi.VerifySignature(c.secret, c.body, c.header); got != c.want {
				t.Errorf("got %v want %v", got, c.want)
			}
		})
	}
}
