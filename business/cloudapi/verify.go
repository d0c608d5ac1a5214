package cloudapi

import (
	"bytes"
	"crypto/rand"
	"crypto/subtle"
	"errors"
	"fmt"
	"math/big"
	"net/http"
	"net/url"
	"strconv"
)

// Query parameters of a webhook verification request.
const (
	QueryMode        = "hub.mode"
	QueryVerifyToken = "hub.verify_token"
	QueryChallenge   = "hub.challenge"
	ModeSubscribe    = "subscribe"
)

// Errors the verification helpers wrap, so callers can tell a bad callback URL,
// a receiver that refused, and one that echoed the wrong thing apart.
var (
	ErrVerificationRefused  = errors.New("callback refused the verification request")
	ErrChallengeMismatch    = errors.New("callback did not echo the challenge")
	ErrInvalidCallbackURL   = errors.New("callback URL must be an absolute http or https URL")
	errEmptyVerifyToken     = errors.New("verify token is empty")
	errChallengeUnavailable = errors.New("cannot draw a challenge")
)

// AnswerVerification is the receiver side of the handshake: given the query
// of the GET, it returns the HTTP status and body to answer. A receiver must
// echo hub.challenge with 200 only when hub.mode is "subscribe" and
// hub.verify_token is the token it configured; anything else gets 403, so a
// stranger cannot subscribe the URL to their own app.
func AnswerVerification(q url.Values, verifyToken string) (status int, body string) {
	if verifyToken == "" || q.Get(QueryMode) != ModeSubscribe {
		return http.StatusForbidden, ""
	}
	if subtle.ConstantTimeCompare([]byte(q.Get(QueryVerifyToken)), []byte(verifyToken)) != 1 {
		return http.StatusForbidden, ""
	}
	return http.StatusOK, q.Get(QueryChallenge)
}

// challengeMin and challengeMax bound NewChallenge. Meta documents the
// challenge as an int and receivers parse it as one (often 32-bit), so Tern
// draws ten-digit values that fit an int32.
const (
	challengeMin = 1_000_000_000
	challengeMax = 1<<31 - 1
)

// NewChallenge draws a random hub.challenge value.
func NewChallenge() (string, error) {
	n, err := rand.Int(rand.Reader, big.NewInt(challengeMax-challengeMin+1))
	if err != nil {
		return "", fmt.Errorf("cloudapi: %w: %w", errChallengeUnavailable, err)
	}
	return strconv.FormatInt(challengeMin+n.Int64(), 10), nil
}

// VerificationURL is the GET Tern sends to check a business's callback URL:
// callbackURL with hub.mode, hub.verify_token and hub.challenge added to
// whatever query it already has.
func VerificationURL(callbackURL, verifyToken, challenge string) (string, error) {
	if verifyToken == "" {
		return "", fmt.Errorf("cloudapi: %w", errEmptyVerifyToken)
	}
	u, err := url.Parse(callbackURL)
	if err != nil {
		return "", fmt.Errorf("cloudapi: %w: %w", ErrInvalidCallbackURL, err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Opaque != "" {
		return "", fmt.Errorf("cloudapi: %w: %q", ErrInvalidCallbackURL, callbackURL)
	}
	q := u.Query()
	q.Set(QueryMode, ModeSubscribe)
	q.Set(QueryVerifyToken, verifyToken)
	q.Set(QueryChallenge, challenge)
	u.RawQuery = q.Encode()
	return u.String(), nil
}

// CheckVerificationAnswer checks the receiver's answer to VerificationURL:
// status 200 and a body equal to the challenge. Surrounding whitespace is
// forgiven because frameworks often append a newline.
func CheckVerificationAnswer(status int, body []byte, challenge string) error {
	if status != http.StatusOK {
		return fmt.Errorf("cloudapi: %w: HTTP %d", ErrVerificationRefused, status)
	}
	if got := bytes.TrimSpace(body); challenge == "" || !bytes.Equal(got, []byte(challenge)) {
		const maxShown = 64
		if len(got) > maxShown {
			got = got[:maxShown]
		}
		return fmt.Errorf("cloudapi: %w: got %q", ErrChallengeMismatch, got)
	}
	return nil
}
