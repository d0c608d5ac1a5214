package admin

import (
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"fmt"
)

// NewToken makes a 256-bit random token, URL-safe: a session cookie, a
// CSRF token, or an API key's secret part.
func NewToken() (string, error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", fmt.Errorf("admin: token: %w", err)
	}
	return base64.RawURLEncoding.EncodeToString(b), nil
}

// Digest is what the store keeps of a token: a leaked copy of the store
// then signs nobody in. Tokens are random and long, so a plain SHA-256
// suffices (no password hashing needed).
func Digest(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}
