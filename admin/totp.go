package admin

import (
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha1"
	"crypto/subtle"
	"encoding/base32"
	"encoding/binary"
	"fmt"
	"net/url"
	"strings"
	"time"
)

// TOTP as authenticator apps speak it (RFC 6238 with its defaults, the
// only ones every app supports): HMAC-SHA1, 30-second steps, 6 digits.
const (
	totpStep   = 30 * time.Second
	totpDigits = 6
	// totpSkew accepts the step before and after: a phone's clock a little
	// off, or a code typed as it turned.
	totpSkew = 1
)

var b32 = base32.StdEncoding.WithPadding(base32.NoPadding)

// NewTOTPSecret makes a 160-bit secret (RFC 4226's recommended length).
func NewTOTPSecret() ([]byte, error) {
	s := make([]byte, 20)
	if _, err := rand.Read(s); err != nil {
		return nil, fmt.Errorf("admin: totp secret: %w", err)
	}
	return s, nil
}

// TOTPURI is the otpauth:// URI an authenticator app scans (as a QR code)
// or takes typed in.
func TOTPURI(secret []byte, issuer, account string) string {
	q := url.Values{}
	q.Set("secret", b32.EncodeToString(secret))
	q.Set("issuer", issuer)
	q.Set("algorithm", "SHA1")
	q.Set("digits", fmt.Sprint(totpDigits))
	q.Set("period", fmt.Sprint(int(totpStep/time.Second)))
	return "otpauth://totp/" + url.PathEscape(issuer+":"+account) + "?" + q.Encode()
}

// TOTPSecretText is the secret as people type it into an app.
func TOTPSecretText(secret []byte) string { return b32.EncodeToString(secret) }

// totpCode is the code of one time step (RFC 4226's HOTP of the step).
func totpCode(secret []byte, step int64) string {
	var msg [8]byte
	binary.BigEndian.PutUint64(msg[:], uint64(step))
	mac := hmac.New(sha1.New, secret)
	mac.Write(msg[:])
	sum := mac.Sum(nil)
	off := sum[len(sum)-1] & 0x0f
	v := binary.BigEndian.Uint32(sum[off:off+4]) & 0x7fffffff
	return fmt.Sprintf("%0*d", totpDigits, v%1_000_000)
}

// CheckTOTP reports whether code is valid at now, and the time step it
// belongs to. The caller refuses a step at or before the last one it
// accepted for the account, so a code seen over a shoulder cannot be used
// again within its 90 seconds.
func CheckTOTP(secret []byte, code string, now time.Time) (step int64, ok bool) {
	if len(code) != totpDigits {
		return 0, false
	}
	cur := now.Unix() / int64(totpStep/time.Second)
	for d := int64(-totpSkew); d <= totpSkew; d++ {
		if subtle.ConstantTimeCompare([]byte(totpCode(secret, cur+d)), []byte(code)) == 1 {
			return cur + d, true
		}
	}
	return 0, false
}

// ParseTOTPSecret reads a secret as TOTPSecretText writes it (spaces and
// case forgiven, as people copy it).
func ParseTOTPSecret(text string) ([]byte, error) {
	t := strings.ToUpper(strings.ReplaceAll(text, " ", ""))
	b, err := b32.DecodeString(t)
	if err != nil || len(b) < 16 || len(b) > 64 {
		return nil, fmt.Errorf("admin: a TOTP secret is 16 to 64 bytes in base32")
	}
	return b, nil
}

// TOTPCode is the code an authenticator app shows at t (tests, and tools
// that sign in as a script would).
func TOTPCode(secret []byte, t time.Time) string {
	return totpCode(secret, t.Unix()/int64(totpStep/time.Second))
}
