package business

import (
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"math/big"
	"strings"
)

// TokenPrefix starts every business API token: a token found in a log or
// a repository says what it is.
const TokenPrefix = "tbt_"

// Defaults of a new business: the Cloud API's default throughput, and the
// customer-service window on.
const (
	DefaultRatePerSecond = 80
	MaxRatePerSecond     = 1000
)

// NewNumericID returns a random 15-digit id without a leading zero: the
// shape of Meta's phone_number_id and WABA ids, which SDKs and the
// systems behind them may store as numbers.
func NewNumericID() string {
	lo := new(big.Int).Exp(big.NewInt(10), big.NewInt(14), nil)
	span := new(big.Int).Mul(lo, big.NewInt(9))
	n, err := rand.Int(rand.Reader, span)
	if err != nil {
		panic("business: crypto/rand failed: " + err.Error()) // it never does on supported systems
	}
	return n.Add(n, lo).String()
}

// NewAppSecret returns a webhook signing secret, as hex (Meta's app
// secrets are 32 hex digits; this one is 64).
func NewAppSecret() string {
	var b [32]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}

// NewToken returns an API token and its parts: id is public (it names
// the token in lists), digest is what the store keeps.
func NewToken() (token, id string, digest []byte) {
	id = strings.ToLower(rand.Text()[:16])
	secret := rand.Text()
	return TokenPrefix + id + "." + secret, id, Digest(secret)
}

// ErrMalformedToken is a bearer value that is not a business token.
var ErrMalformedToken = errors.New("business: not a business API token")

// ParseToken splits a token into its id and secret.
func ParseToken(token string) (id, secret string, err error) {
	rest, ok := strings.CutPrefix(token, TokenPrefix)
	if !ok {
		return "", "", ErrMalformedToken
	}
	id, secret, ok = strings.Cut(rest, ".")
	if !ok || id == "" || secret == "" || len(id) > 64 || len(secret) > 128 {
		return "", "", ErrMalformedToken
	}
	return id, secret, nil
}

// Digest is what the store keeps of a token's secret: a copy of the store
// does not act for any business.
func Digest(secret string) []byte {
	d := sha256.Sum256([]byte(secret))
	return d[:]
}

// CheckToken reports whether secret is the one digest was made from.
func CheckToken(digest []byte, secret string) bool {
	return subtle.ConstantTimeCompare(digest, Digest(secret)) == 1
}

// A message's Cloud API id names its chat and its Tern id, so that a
// mark-read or a reply, which give only the id, lead back to the message
// without a lookup table.
const messageIDPrefix = "wamid."

// MessageID is the Cloud API id of message msgID of chatID.
func MessageID(chatID, msgID string) string {
	return messageIDPrefix + base64.RawURLEncoding.EncodeToString([]byte(chatID+"/"+msgID))
}

// ParseMessageID returns the chat and message a MessageID names.
func ParseMessageID(id string) (chatID, msgID string, ok bool) {
	rest, ok := strings.CutPrefix(id, messageIDPrefix)
	if !ok {
		return "", "", false
	}
	raw, err := base64.RawURLEncoding.DecodeString(rest)
	if err != nil {
		return "", "", false
	}
	chatID, msgID, ok = strings.Cut(string(raw), "/")
	return chatID, msgID, ok && chatID != "" && msgID != ""
}
