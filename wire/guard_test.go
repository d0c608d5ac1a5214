package wire

import (
	"encoding/json"
	"strings"
	"testing"
	"unicode/utf8"
)

func TestCheckJSON(t *testing.T) {
	for _, tc := range []struct {
		in, want string // want: a fragment of the message, "" for no error
	}{
		{`{"type":"ping"}`, ""},
		{`{"type":"send","body":{"text":"\ud83d\ude00"}}`, ""},
		{`{"type":"send","body":{"text":"\u00e9\"Type\""}}`, ""}, // a value, not a key
		{`{"future_field":{"Whatever":1}}`, ""},                  // unknown keys are the decoder's
		{`{"list":["TYPE",{"x":1}]}`, ""},
		{`{"TYPE":"ping"}`, `did you mean "type"`},
		{`{"type":"send","body":{"Text":"x"}}`, `did you mean "text"`},
		{`{"user_ids":[],"User_IDs":[]}`, `did you mean "user_ids"`},
		{`{"a":[{"b":1},{"CURSOR":2}]}`, `did you mean "cursor"`},
		{`{"\u0054YPE":"send"}`, `did you mean "type"`},    // an escaped key
		{`{"\u017feq":5}`, `did you mean "seq"`},           // ſ folds to s
		{"{\"\u212aind\":1}", ""},                          // Kelvin sign: not a protocol field
		{`{"type":"ping","type":"send"}`, "appears twice"}, // the last would win
		{`{"a":{"id":1},"b":{"id":2}}`, ""},                // equal keys in two objects
		{`{"t":"\ud800"}`, "surrogate"},
		{`{"t":"\ud800\u0041"}`, "surrogate"},
		{`{"t":"\udc00\ud800"}`, "surrogate"},
		{`{"t":"x\uDBFF"}`, "surrogate"},
		{"{\"t\":\"\xff\"}", "UTF-8"},
		{"{\"t\":\"\xed\xa0\x80\"}", "UTF-8"}, // a surrogate in raw UTF-8
	} {
		e := CheckJSON([]byte(tc.in))
		switch {
		case tc.want == "" && e != nil:
			t.Errorf("CheckJSON(%s) = %v, want nil", tc.in, e)
		case tc.want != "" && (e == nil || !strings.Contains(e.Message, tc.want)):
			t.Errorf("CheckJSON(%s) = %v, want an error mentioning %q", tc.in, e, tc.want)
		}
	}
}

// FuzzCheckJSON: whatever CheckJSON lets through decodes to exactly what
// was written: no U+FFFD appears that the input did not spell, and no key
// binds to a field in another case.
func FuzzCheckJSON(f *testing.F) {
	for _, s := range []string{`{"type":"send","id":"1","to":"u1","body":{"text":"hi \ud83d\ude00"}}`,
		`{"TYPE":"x"}`, `{"t":"\ud800"}`, "{\"t\":\"\xff\"}", `{"a":["\\u00"]}`, `{"text":"\ufffd"}`} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		if CheckJSON(data) != nil {
			return
		}
		var v any
		if json.Unmarshal(data, &v) != nil {
			return
		}
		spelled := strings.Contains(string(data), "\ufffd") || strings.Contains(strings.ToLower(string(data)), `\ufffd`)
		var walk func(any)
		walk = func(v any) {
			switch x := v.(type) {
			case string:
				if !utf8.ValidString(x) || (strings.ContainsRune(x, utf8.RuneError) && !spelled) {
					t.Fatalf("%q passed the check but decodes to %q", data, x)
				}
			case []any:
				for _, e := range x {
					walk(e)
				}
			case map[string]any:
				for k, e := range x {
					walk(k)
					for _, name := range fieldNames {
						if name != k && strings.EqualFold(k, name) {
							t.Fatalf("%q passed the check with key %q for field %q", data, k, name)
						}
					}
					walk(e)
				}
			}
		}
		walk(v)
	})
}

func TestCheckNameAndText(t *testing.T) {
	for _, tc := range []struct {
		s          string
		name, text bool // accepted as a name, as message text
	}{
		{"Alice", true, true},
		{"", true, true},
		{"Zoë 🌍", true, true},
		{"\u202bשלום\u202c", false, true}, // embedding: not in names
		{"מרים\u200f", true, true},        // RLM is fine
		{"evil\u202egnp.exe", false, true},
		{"a\x00b", false, false},
		{"a\x1b[31mred", false, false},
		{"two\nlines", false, true},
		{"tab\there", false, true},
		{"\u200b\u200b", false, false},
		{"\u3164", false, true},
		{"   ", false, false},
		{"a\u0085b", false, false},     // C1
		{"Bob\u2028Evil", false, true}, // a line separator is a line break
	} {
		if got := CheckName("name", tc.s, 64) == nil; got != tc.name {
			t.Errorf("CheckName(%q) accepted = %v, want %v", tc.s, got, tc.name)
		}
		if got := CheckText("text", tc.s) == nil; got != tc.text {
			t.Errorf("CheckText(%q) accepted = %v, want %v", tc.s, got, tc.text)
		}
	}
}
