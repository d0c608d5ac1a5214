package wire

import (
	"bytes"
	"encoding/json"
	"reflect"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// encoding/json is lenient in three ways that let a client say one thing
// and the server store another: it replaces invalid UTF-8 and lone UTF-16
// surrogates (\ud800) with U+FFFD, and it matches object keys without
// regard to case ({"TYPE":"send"} is a send). CheckJSON refuses all three
// before anything is decoded, so that what is stored is what was sent and
// the protocol has one spelling.

// ErrInvalidUTF8 is CheckJSON's error for bytes that are not UTF-8; a
// WebSocket peer is closed with 1007 for it, as RFC 6455 asks.
var ErrInvalidUTF8 = Errorf(CodeBadRequest, "not valid UTF-8")

// CheckJSON checks raw JSON text before it is decoded: valid UTF-8, no
// escaped lone surrogate, and no object key that differs only in case from
// a field name of the protocol. It does not check the syntax beyond what
// it needs (the decoder does). Keys the protocol does not know are left to
// the decoder, which ignores them: newer clients may send fields an older
// server does not know.
func CheckJSON(data []byte) *Error {
	if !utf8.Valid(data) {
		return ErrInvalidUTF8
	}
	return checkText(data)
}

// checkText is CheckJSON on data known to be UTF-8.
func checkText(data []byte) *Error {
	inString, isKey := false, false
	depthKey := []bool{} // per open container: is it an object
	keys := [][]string{} // per open container: the keys seen in it
	expectKey := false
	start := 0
	for i := 0; i < len(data); i++ {
		c := data[i]
		if inString {
			switch c {
			case '\\':
				if i+1 < len(data) && data[i+1] == 'u' {
					r, n, ok := surrogateEscape(data[i:])
					if !ok {
						return Errorf(CodeBadRequest, "a string holds an unpaired UTF-16 surrogate (\\u%04x)", r)
					}
					i += n - 1
					continue
				}
				i++ // the escaped byte
			case '"':
				inString = false
				if isKey {
					k, e := checkKey(data[start:i])
					if e != nil {
						return e
					}
					// encoding/json lets the last of two equal keys win;
					// a checker reading the first would be misled.
					if top := len(keys) - 1; top >= 0 {
						for _, seen := range keys[top] {
							if seen == k {
								return Errorf(CodeBadRequest, "key %q appears twice in one object", truncate(k, 32))
							}
						}
						keys[top] = append(keys[top], k)
					}
				}
			}
			continue
		}
		switch c {
		case '"':
			inString, start = true, i+1
			isKey = expectKey
			expectKey = false
		case '{':
			depthKey = append(depthKey, true)
			keys = append(keys, nil)
			expectKey = true
		case '[':
			depthKey = append(depthKey, false)
			keys = append(keys, nil)
		case '}', ']':
			if len(depthKey) > 0 {
				depthKey = depthKey[:len(depthKey)-1]
				keys = keys[:len(keys)-1]
			}
		case ',':
			expectKey = len(depthKey) > 0 && depthKey[len(depthKey)-1]
		case ':':
			expectKey = false
		}
	}
	return nil
}

// surrogateEscape reads a \uXXXX escape at the start of b (and its pair if
// it is a high surrogate). It returns the code unit, the bytes read, and
// false if it is a surrogate without its pair. Malformed escapes are left
// to the decoder (ok, 2 bytes).
func surrogateEscape(b []byte) (rune, int, bool) {
	r, ok := hex4(b)
	if !ok {
		return 0, 2, true
	}
	switch {
	case r < 0xd800 || r > 0xdfff:
		return r, 6, true
	case r >= 0xdc00:
		return r, 6, false // a low surrogate first
	}
	if len(b) >= 12 && b[6] == '\\' && b[7] == 'u' {
		if r2, ok := hex4(b[6:]); ok && r2 >= 0xdc00 && r2 <= 0xdfff &&
			utf16.DecodeRune(r, r2) != utf8.RuneError {
			return r, 12, true
		}
	}
	return r, 6, false
}

func hex4(b []byte) (rune, bool) {
	if len(b) < 6 {
		return 0, false
	}
	var r rune
	for _, c := range b[2:6] {
		switch {
		case c >= '0' && c <= '9':
			r = r<<4 | rune(c-'0')
		case c >= 'a' && c <= 'f':
			r = r<<4 | rune(c-'a'+10)
		case c >= 'A' && c <= 'F':
			r = r<<4 | rune(c-'A'+10)
		default:
			return 0, false
		}
	}
	return r, true
}

// checkKey returns the key as encoding/json reads it (escapes decoded)
// and refuses one that matches a protocol field name the way encoding/json
// matches (Unicode simple case folding: "ſeq" is "seq") without being it.
func checkKey(raw []byte) (string, *Error) {
	k := string(raw)
	if bytes.IndexByte(raw, '\\') >= 0 {
		if err := json.Unmarshal(append(append([]byte{'"'}, raw...), '"'), &k); err != nil {
			return "", nil // malformed: the decoder says so
		}
	}
	if _, exact := fieldNames[k]; exact || utf8.RuneCountInString(k) > maxFieldName {
		return k, nil
	}
	for _, name := range fieldNames {
		if strings.EqualFold(k, name) {
			return "", Errorf(CodeBadRequest, "unknown field %q: keys are case-sensitive (did you mean %q?)", truncate(k, 32), name)
		}
	}
	return k, nil
}

// maxFieldName bounds the protocol's field names, so that longer keys are
// known not to be one without looking.
const maxFieldName = 32

// fieldNames holds each JSON field name of the protocol's request types. Built once from the struct tags; never
// written after.
var fieldNames = collectFieldNames(
	ClientFrame{}, Body{}, CodeRequest{}, VerifyRequest{}, RefreshRequest{},
	MePatch{}, LookupRequest{}, PushRequest{}, EmailRequest{},
)

func collectFieldNames(vs ...any) map[string]string {
	out := map[string]string{}
	var walk func(t reflect.Type)
	walk = func(t reflect.Type) {
		for t.Kind() == reflect.Pointer || t.Kind() == reflect.Slice {
			t = t.Elem()
		}
		if t.Kind() != reflect.Struct {
			return
		}
		for i := range t.NumField() {
			f := t.Field(i)
			name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
			if name == "-" {
				continue
			}
			if name == "" {
				name = f.Name
			}
			if len(name) <= maxFieldName {
				out[name] = name
			}
			walk(f.Type)
		}
	}
	for _, v := range vs {
		walk(reflect.TypeOf(v))
	}
	return out
}

// DecodeJSON checks data with CheckJSON and decodes it into v, answering
// a problem in terms a client can act on (which field, what it must be).
func DecodeJSON(data []byte, v any) *Error {
	if e := CheckJSON(data); e != nil {
		return e
	}
	if err := json.Unmarshal(data, v); err != nil {
		return Errorf(CodeBadRequest, "malformed JSON body: %s", jsonProblem(err))
	}
	return nil
}
