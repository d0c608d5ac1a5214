package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// Access tokens are "v1." + base64url(payload) + "." + base64url(mac), with
// mac = HMAC-SHA256(accessKey, "v1." + base64url(payload)). The version is
// inside the MAC so that a future format cannot be confused with this one.
const (
	accessPrefix = "v1."
	// maxTokenLen bounds the work done on hostile input; real tokens are
	// about 150 bytes.
	maxTokenLen     = 1024
	maxIDLen        = 128
	refreshSecretSz = 32
)

var b64 = base64.RawURLEncoding.Strict()

type accessPayload struct {
	U string `json:"u"`
	D string `json:"d"`
	E int64  `json:"e"` // unix seconds
}

func signAccessToken(key []byte, c Claims) string {
	p, err := json.Marshal(accessPayload{U: c.UserID, D: c.DeviceID, E: c.Expires.Unix()})
	if err != nil {
		// Two strings and an integer always marshal.
		panic("auth: marshal token payload: " + err.Error())
	}
	signed := accessPrefix + b64.EncodeToString(p)
	return signed + "." + b64.EncodeToString(accessMAC(key, signed))
}

func accessMAC(key []byte, signed string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

var errBadToken = errors.New("auth: malformed or forged token")

// parseAccessToken checks the token's form and MAC and returns its claims;
// it does not check expiry or the device. The MAC is checked before the
// payload is decoded, so nothing a forger wrote reaches the JSON decoder.
func parseAccessToken(key []byte, token string) (Claims, error) {
	if len(token) > maxTokenLen || !strings.HasPrefix(token, accessPrefix) || !tokenChars(token) {
		return Claims{}, errBadToken
	}
	dot := strings.LastIndexByte(token, '.')
	if dot < len(accessPrefix) {
		return Claims{}, errBadToken
	}
	signed, macText := token[:dot], token[dot+1:]
	payloadText := signed[len(accessPrefix):]
	if payloadText == "" || strings.IndexByte(payloadText, '.') >= 0 {
		return Claims{}, errBadToken
	}
	mac, err := b64.DecodeString(macText)
	if err != nil || len(mac) != sha256.Size {
		return Claims{}, errBadToken
	}
	if !hmac.Equal(mac, accessMAC(key, signed)) {
		return Claims{}, errBadToken
	}
	raw, err := b64.DecodeString(payloadText)
	if err != nil {
		return Claims{}, errBadToken
	}
	var p accessPayload
	if err := json.Unmarshal(raw, &p); err != nil || p.U == "" || p.D == "" || p.E <= 0 {
		return Claims{}, errBadToken
	}
	return Claims{UserID: p.U, DeviceID: p.D, Expires: time.Unix(p.E, 0)}, nil
}

// refreshToken is "deviceID.secret": the device id finds the record in one
// read, and only SHA-256(secret) is stored, so a copy of the store cannot be
// used to refresh. A plain hash suffices because the secret has 256 bits.
type refreshToken struct {
	deviceID string
	secret   []byte
}

func (r refreshToken) String() string {
	return r.deviceID + "." + b64.EncodeToString(r.secret)
}

func parseRefreshToken(token string) (refreshToken, error) {
	if len(token) > maxTokenLen || !tokenChars(token) {
		return refreshToken{}, errBadToken
	}
	dot := strings.LastIndexByte(token, '.')
	if dot <= 0 || dot > maxIDLen {
		return refreshToken{}, errBadToken
	}
	secret, err := b64.DecodeString(token[dot+1:])
	if err != nil || len(secret) != refreshSecretSz {
		return refreshToken{}, errBadToken
	}
	return refreshToken{deviceID: token[:dot], secret: secret}, nil
}

// tokenChars reports whether t holds only base64url characters and dots.
// The base64 decoder skips CR and LF, which would give one token several
// accepted spellings.
func tokenChars(t string) bool {
	for i := 0; i < len(t); i++ {
		c := t[i]
		if !(c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' || c >= '0' && c <= '9' || c == '-' || c == '_' || c == '.') {
			return false
		}
	}
	return true
}

func (s *Service) newRefresh(deviceID string) (refreshToken, []byte) {
	secret := make([]byte, refreshSecretSz)
	rand.Read(secret)
	h := sha256.Sum256(secret)
	return refreshToken{deviceID: deviceID, secret: secret}, h[:]
}

func (s *Service) session(userID, deviceID, refresh string, now time.Time) wire.Session {
	c := Claims{UserID: userID, DeviceID: deviceID, Expires: now.Add(s.cfg.AccessTTL)}
	return wire.Session{
		UserID:       userID,
		DeviceID:     deviceID,
		AccessToken:  signAccessToken(s.accessKey, c),
		RefreshToken: refresh,
		ExpiresIn:    int(s.cfg.AccessTTL / time.Second),
	}
}

// Authenticate checks an access token: its signature, its expiry and that
// its device still exists and belongs to its user. Every failure is
// unauthorized, without saying which check failed.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Claims, error) {
	c, err := parseAccessToken(s.accessKey, accessToken)
	if err != nil {
		return Claims{}, errUnauthorized("invalid access token")
	}
	if !s.now().Before(c.Expires) {
		return Claims{}, errUnauthorized("access token expired")
	}
	d, err := s.st.Device(ctx, c.DeviceID)
	if errors.Is(err, store.ErrNotFound) {
		return Claims{}, errUnauthorized("device signed out")
	}
	if err != nil {
		return Claims{}, fmt.Errorf("auth: load device: %w", err)
	}
	if d.UserID != c.UserID {
		return Claims{}, errUnauthorized("invalid access token")
	}
	return c, nil
}

// Refresh trades a refresh token for a new session of the same device and
// makes the token presented stale. Presenting a stale token again means two
// parties hold it: the device is revoked, so a thief's copy and the
// owner's both stop working and the owner signs in again.
func (s *Service) Refresh(ctx context.Context, token string) (wire.Session, error) {
	if token == "" {
		return wire.Session{}, wire.Errorf(wire.CodeBadRequest, "refresh_token is required")
	}
	rt, err := parseRefreshToken(token)
	if err != nil {
		return wire.Session{}, errUnauthorized("invalid refresh token")
	}
	now := s.now()
	d, err := s.st.Device(ctx, rt.deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Session{}, errUnauthorized("invalid refresh token")
	}
	if err != nil {
		return wire.Session{}, fmt.Errorf("auth: load device: %w", err)
	}
	sum := sha256.Sum256(rt.secret)
	h := sum[:]
	switch {
	case len(d.RefreshHash) > 0 && hmac.Equal(h, d.RefreshHash):
		if !now.Before(d.RefreshExpires) {
			return wire.Session{}, errUnauthorized("refresh token expired; sign in again")
		}
		next, nextHash := s.newRefresh(d.ID)
		err := s.st.RotateRefresh(ctx, d.ID, d.RefreshHash, nextHash, now.Add(s.cfg.RefreshTTL))
		if errors.Is(err, store.ErrConflict) || errors.Is(err, store.ErrNotFound) {
			// Another refresh with this token won the race, or the
			// device was revoked meanwhile. Not treated as reuse: a
			// client retrying a request lost in flight looks the same.
			return wire.Session{}, errUnauthorized("invalid refresh token")
		}
		if err != nil {
			return wire.Session{}, fmt.Errorf("auth: rotate refresh token: %w", err)
		}
		return s.session(d.UserID, d.ID, next.String(), now), nil

	case len(d.PrevRefreshHash) > 0 && hmac.Equal(h, d.PrevRefreshHash):
		s.log.WarnContext(ctx, "auth: refresh token reused; revoking device", "user", d.UserID, "device", d.ID)
		if err := s.deleteDevice(ctx, d.UserID, d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
			return wire.Session{}, fmt.Errorf("auth: revoke device after refresh token reuse: %w", err)
		}
		return wire.Session{}, errUnauthorized("refresh token already used; the device was signed out")

	default:
		return wire.Session{}, errUnauthorized("invalid refresh token")
	}
}

// Revoke signs deviceID out if it belongs to userID; another user's device
// is not_found, so that ids cannot be probed.
func (s *Service) Revoke(ctx context.Context, userID, deviceID string) error {
	if userID == "" || deviceID == "" {
		return wire.Errorf(wire.CodeBadRequest, "user and device are required")
	}
	d, err := s.st.Device(ctx, deviceID)
	if errors.Is(err, store.ErrNotFound) || (err == nil && d.UserID != userID) {
		return wire.Errorf(wire.CodeNotFound, "no such device")
	}
	if err != nil {
		return fmt.Errorf("auth: load device: %w", err)
	}
	err = s.deleteDevice(ctx, userID, deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Errorf(wire.CodeNotFound, "no such device")
	}
	if err != nil {
		return fmt.Errorf("auth: delete device: %w", err)
	}
	s.log.InfoContext(ctx, "auth: device revoked", "user", userID, "device", deviceID)
	return nil
}

// deleteDevice deletes and, only if this call deleted it, reports the
// revocation, so that a socket is closed once however many paths race.
func (s *Service) deleteDevice(ctx context.Context, userID, deviceID string) error {
	if err := s.st.DeleteDevice(ctx, deviceID); err != nil {
		return err
	}
	if s.onRevoke != nil {
		s.onRevoke(userID, deviceID)
	}
	return nil
}
