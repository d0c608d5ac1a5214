package cloudapi

import (
	"bytes"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"strings"
	"unicode/utf16"
	"unicode/utf8"
)

// SignatureHeader is the header that carries Sign's output on webhook POSTs.
const SignatureHeader = "X-Hub-Signature-256"

const signaturePrefix = "sha256="

// marshalNoHTML is json.Marshal without HTML escaping. Meta leaves <, > and &
// as they are, and a custom MarshalJSON that escaped them would smuggle
// \u003c into MarshalASCII output, which compacting never undoes.
func marshalNoHTML(v any) ([]byte, error) {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	if err := enc.Encode(v); err != nil {
		return nil, err
	}
	return bytes.TrimSuffix(buf.Bytes(), []byte{'\n'}), nil
}

// MarshalASCII encodes v as compact JSON whose bytes are all ASCII: every
// non-ASCII rune becomes \uXXXX with lowercase hex, and runes above U+FFFF
// become a UTF-16 surrogate pair. Meta signs "an escaped unicode version of
// the payload, with lowercase hex digits", and receivers written against Meta
// sometimes re-escape the decoded body before checking the signature; sending
// the escaped form keeps those receivers working.
//
// <, > and & are not escaped, and neither is '/'; see MarshalMeta for the
// byte-for-byte Meta form.
func MarshalASCII(v any) ([]byte, error) {
	raw, err := marshalNoHTML(v)
	if err != nil {
		return nil, fmt.Errorf("cloudapi: encoding JSON: %w", err)
	}
	return escapeNonASCII(raw), nil
}

// MarshalMeta is MarshalASCII with '/' also escaped as "\/". Webhook bodies
// captured from Meta carry "image\/jpeg" and "https:\/\/…" (json_encode's
// defaults), so this is the form that matches Meta byte for byte, for
// receivers that re-encode before verifying the signature.
func MarshalMeta(v any) ([]byte, error) {
	b, err := MarshalASCII(v)
	if err != nil {
		return nil, err
	}
	// encoding/json never writes "\/" and JSON has no '/' outside strings,
	// so every '/' here is a literal slash inside a string.
	return bytes.ReplaceAll(b, []byte{'/'}, []byte{'\\', '/'}), nil
}

// escapeNonASCII rewrites every non-ASCII rune of valid JSON as \u escapes.
// Non-ASCII bytes can only occur inside strings, where a \u escape means the
// same rune, so the document decodes to the same value.
func escapeNonASCII(b []byte) []byte {
	n := 0
	for _, c := range b {
		if c >= utf8.RuneSelf {
			n++
		}
	}
	if n == 0 {
		return b
	}
	const hexDigits = "0123456789abcdef"
	out := make([]byte, 0, len(b)+n*6)
	put := func(r rune) {
		out = append(out, '\\', 'u',
			hexDigits[r>>12&0xf], hexDigits[r>>8&0xf], hexDigits[r>>4&0xf], hexDigits[r&0xf])
	}
	for i := 0; i < len(b); {
		c := b[i]
		if c < utf8.RuneSelf {
			out = append(out, c)
			i++
			continue
		}
		r, size := utf8.DecodeRune(b[i:])
		i += size
		if r > 0xffff {
			hi, lo := utf16.EncodeRune(r)
			put(hi)
			put(lo)
			continue
		}
		// encoding/json already replaced invalid UTF-8 with U+FFFD, so
		// RuneError here is a real U+FFFD and is escaped like any other.
		put(r)
	}
	return out
}

// Sign returns the X-Hub-Signature-256 value for body: "sha256=" and the
// lowercase hex HMAC-SHA256 of the exact bytes sent, keyed by the app secret.
func Sign(appSecret, body []byte) string {
	mac := hmac.New(sha256.New, appSecret)
	mac.Write(body)
	return signaturePrefix + hex.EncodeToString(mac.Sum(nil))
}

// VerifySignature reports whether header is Sign(appSecret, body). It
// compares in constant time, and fails closed on an empty secret because an
// unset secret is a misconfiguration, not a key.
func VerifySignature(appSecret, body []byte, header string) bool {
	if len(appSecret) == 0 {
		return false
	}
	hexSig, ok := strings.CutPrefix(header, signaturePrefix)
	if !ok || len(hexSig) != 2*sha256.Size {
		return false
	}
	got, err := hex.DecodeString(hexSig)
	if err != nil {
		return false
	}
	mac := hmac.New(sha256.New, appSecret)
	mac.Write(body)
	return hmac.Equal(got, mac.Sum(nil))
}

// randomToken returns n random bytes as unpadded URL-safe base64.
// crypto/rand.Read never fails (since Go 1.24 it aborts the process instead),
// so there is no error to return.
func randomToken(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return base64.RawURLEncoding.EncodeToString(b)
}

// NewTraceID returns a random fbtrace_id. Support tickets quote it, so each
// error answer should carry a fresh one that the server also logs.
func NewTraceID() string { return randomToken(16) }
