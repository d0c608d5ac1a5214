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
	"strconv"
	"strings"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// Access tokens are "v2." + key id + "." + base64url(payload) + "." +
// base64url(mac), with mac = HMAC-SHA256 under the access key of that ring
// key of everything before the last dot. The key id is in decimal without
// leading zeros (one spelling per token) and outside the payload, because
// the key must be known before the MAC is checked and nothing unchecked is
// decoded. The version and key id are inside the MAC, so that neither can
// be swapped.
//
// Tokens of the version before the key ring are "v1." + base64url(payload)
// + "." + base64url(mac), signed by the ring's legacy key; they verify while
// that key is in the ring, which outlasts them.
const (
	accessPrefix   = "v2."
	accessPrefixV1 = "v1."
	// maxTokenLen bounds the work done on hostile input; real tokens are
	// about 150 bytes.
	maxTokenLen     = 1024
	maxIDLen        = 128
	maxKeyIDDigits  = 10 // 2^32-1
	refreshSecretSz = 32
)

var b64 = base64.RawURLEncoding.Strict()

type accessPayload struct {
	U string `json:"u"`
	D string `json:"d"`
	E int64  `json:"e"` // unix seconds
}

func marshalPayload(c Claims) string {
	p, err := json.Marshal(accessPayload{U: c.UserID, D: c.DeviceID, E: c.Expires.Unix()})
	if err != nil {
		// Two strings and an integer always marshal.
		panic("auth: marshal token payload: " + err.Error())
	}
	return b64.EncodeToString(p)
}

// signAccessToken signs c with ring key k.
func signAccessToken(k *ringKey, c Claims) string {
	signed := accessPrefix + strconv.FormatUint(uint64(k.id), 10) + "." + marshalPayload(c)
	return signed + "." + b64.EncodeToString(accessMAC(k.access, signed))
}

func accessMAC(key []byte, signed string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(signed))
	return m.Sum(nil)
}

var errBadToken = errors.New("auth: malformed or forged token")

// accessParts is an access token split up, before its MAC is checked.
type accessParts struct {
	v1      bool
	keyID   uint32 // v2 only
	signed  string // what the MAC covers
	payload string
	mac     []byte
}

// splitAccessToken checks an access token's form and splits it.
func splitAccessToken(token string) (accessParts, error) {
	if len(token) > maxTokenLen || !tokenChars(token) {
		return accessParts{}, errBadToken
	}
	var p accessParts
	rest, ok := strings.CutPrefix(token, accessPrefix)
	if !ok {
		if rest, ok = strings.CutPrefix(token, accessPrefixV1); !ok {
			return accessParts{}, errBadToken
		}
		p.v1 = true
	}
	if !p.v1 {
		idText, after, ok := strings.Cut(rest, ".")
		if !ok || !canonicalKeyID(idText) {
			return accessParts{}, errBadToken
		}
		id, err := strconv.ParseUint(idText, 10, 32)
		if err != nil || id == 0 {
			return accessParts{}, errBadToken
		}
		p.keyID, rest = uint32(id), after
	}
	payload, macText, ok := strings.Cut(rest, ".")
	if !ok || payload == "" || strings.IndexByte(macText, '.') >= 0 {
		return accessParts{}, errBadToken
	}
	mac, err := b64.DecodeString(macText)
	if err != nil || len(mac) != sha256.Size {
		return accessParts{}, errBadToken
	}
	p.signed, p.payload, p.mac = token[:len(token)-len(macText)-1], payload, mac
	return p, nil
}

// canonicalKeyID reports whether s is a key id in its one spelling.
func canonicalKeyID(s string) bool {
	if s == "" || len(s) > maxKeyIDDigits || s[0] == '0' {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

// claims checks the MAC under key and only then decodes the payload, so
// that nothing a forger wrote reaches the JSON decoder. It does not check
// expiry or the device.
func (p accessParts) claims(key []byte) (Claims, error) {
	if key == nil || !hmac.Equal(p.mac, accessMAC(key, p.signed)) {
		return Claims{}, errBadToken
	}
	raw, err := b64.DecodeString(p.payload)
	if err != nil {
		return Claims{}, errBadToken
	}
	var pl accessPayload
	if err := json.Unmarshal(raw, &pl); err != nil || pl.U == "" || pl.D == "" || pl.E <= 0 {
		return Claims{}, errBadToken
	}
	return Claims{UserID: pl.U, DeviceID: pl.D, Expires: time.Unix(pl.E, 0)}, nil
}

// parseAccessToken checks token against the keys of r, as they are: it
// reads no newer ring (Authenticate does).
func parseAccessToken(r *keyRing, token string) (Claims, error) {
	p, err := splitAccessToken(token)
	if err != nil {
		return Claims{}, err
	}
	return p.claims(r.accessKey(p))
}

// accessKey is the key that checks p, nil if r has none.
func (r *keyRing) accessKey(p accessParts) []byte {
	if p.v1 {
		if k := r.legacyKey(); k != nil {
			return k.accessV1
		}
		return nil
	}
	if k := r.byID(p.keyID); k != nil {
		return k.access
	}
	return nil
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

// session signs an access token for a session whose refresh token was
// issued at issued. A repeated refresh answers with the issue time of the
// first, which makes its access token the same as the first one's (signed
// by the same key), rather than one that outlives it.
func (s *Service) session(ctx context.Context, userID, deviceID, refresh string, issued, now time.Time) wire.Session {
	exp := issued.Add(s.cfg.AccessTTL)
	if !now.Before(exp) {
		exp = now.Add(s.cfg.AccessTTL)
	}
	c := Claims{UserID: userID, DeviceID: deviceID, Expires: exp}
	return wire.Session{
		UserID:       userID,
		DeviceID:     deviceID,
		AccessToken:  signAccessToken(s.keys(ctx).newest(), c),
		RefreshToken: refresh,
		ExpiresIn:    max(1, int(exp.Sub(now)/time.Second)),
	}
}

// Authenticate checks an access token: its signature, its expiry and that
// its device still exists and belongs to its user. Every failure is
// unauthorized, without saying which check failed.
func (s *Service) Authenticate(ctx context.Context, accessToken string) (Claims, error) {
	p, err := splitAccessToken(accessToken)
	if err != nil {
		return Claims{}, errUnauthorized("invalid access token")
	}
	var key []byte
	if p.v1 {
		key = s.keys(ctx).accessKey(p)
	} else if k := s.keyByID(ctx, p.keyID); k != nil {
		key = k.access
	}
	c, err := p.claims(key)
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
// makes the token presented stale.
//
// The new refresh secret is derived from the old one (successorOf), so the
// same token presented again within Config.RefreshGrace of its rotation,
// by a client retrying a lost answer or racing itself, gets the same new
// tokens. Presented later, or a token older than that one, it means two
// parties hold it: the device is revoked, so a thief's copy and the owner's
// both stop working and the owner signs in again. Within the grace a thief
// holding the old token gets what the owner got, which it could have had by
// refreshing first; the next rotation by either leaves the other with a
// stale token and revokes the device when that is used.
//
// The time of the last rotation is not stored; it is RefreshExpires minus
// RefreshTTL, which is exact while RefreshTTL is unchanged. Right after a
// change of RefreshTTL a retry may therefore miss its grace and revoke.
func (s *Service) Refresh(ctx context.Context, token string) (wire.Session, error) {
	if token == "" {
		return wire.Session{}, wire.Errorf(wire.CodeBadRequest, "refresh_token is required")
	}
	rt, err := parseRefreshToken(token)
	if err != nil {
		return wire.Session{}, errUnauthorized("invalid refresh token")
	}
	d, err := s.st.Device(ctx, rt.deviceID)
	if errors.Is(err, store.ErrNotFound) {
		return wire.Session{}, errUnauthorized("invalid refresh token")
	}
	if err != nil {
		return wire.Session{}, fmt.Errorf("auth: load device: %w", err)
	}
	if err := s.checkBan(ctx, d.UserID); err != nil {
		return wire.Session{}, err
	}
	sum := sha256.Sum256(rt.secret)
	h := sum[:]
	for try := 0; ; try++ {
		now := s.now()
		switch {
		case len(d.RefreshHash) > 0 && hmac.Equal(h, d.RefreshHash):
			if !now.Before(d.RefreshExpires) {
				return wire.Session{}, errUnauthorized("refresh token expired; sign in again")
			}
			next := s.keys(ctx).newest().successorOf(d.ID, rt.secret)
			nextHash := sha256.Sum256(next)
			err := s.st.RotateRefresh(ctx, d.ID, d.RefreshHash, nextHash[:], now.Add(s.cfg.RefreshTTL))
			switch {
			case err == nil:
				return s.session(ctx, d.UserID, d.ID, refreshToken{d.ID, next}.String(), now, now), nil
			case errors.Is(err, store.ErrConflict) && try == 0:
				// Another refresh with this token rotated first: read the
				// device again, and answer as a repeat (the case below).
				d, err = s.st.Device(ctx, rt.deviceID)
				if errors.Is(err, store.ErrNotFound) {
					return wire.Session{}, errUnauthorized("invalid refresh token")
				}
				if err != nil {
					return wire.Session{}, fmt.Errorf("auth: load device: %w", err)
				}
				continue
			case errors.Is(err, store.ErrConflict), errors.Is(err, store.ErrNotFound):
				// Rotated twice meanwhile, or the device was revoked.
				return wire.Session{}, errUnauthorized("invalid refresh token")
			default:
				return wire.Session{}, fmt.Errorf("auth: rotate refresh token: %w", err)
			}

		case len(d.PrevRefreshHash) > 0 && hmac.Equal(h, d.PrevRefreshHash):
			rotated := d.RefreshExpires.Add(-s.cfg.RefreshTTL)
			if !s.inRefreshGrace(rotated, now) {
				return wire.Session{}, s.refreshReused(ctx, d)
			}
			r := s.keys(ctx)
			next, ok := r.findSuccessor(d.ID, rt.secret, d.RefreshHash)
			if !ok {
				// The node that rotated may know a newer key than this one.
				next, ok = s.reread(ctx, r).findSuccessor(d.ID, rt.secret, d.RefreshHash)
			}
			if !ok {
				// The current token is not derived from this one (an older
				// version rotated it): there is nothing to repeat, and
				// within the grace this is no proof of theft either.
				return wire.Session{}, errUnauthorized("refresh token already used")
			}
			if !now.Before(d.RefreshExpires) {
				return wire.Session{}, errUnauthorized("refresh token expired; sign in again")
			}
			return s.session(ctx, d.UserID, d.ID, refreshToken{d.ID, next}.String(), rotated, now), nil

		default:
			// The token before the previous one derives the previous one:
			// a replay from further back, whatever the time.
			if _, ok := s.keys(ctx).findSuccessor(d.ID, rt.secret, d.PrevRefreshHash); ok {
				return wire.Session{}, s.refreshReused(ctx, d)
			}
			return wire.Session{}, errUnauthorized("invalid refresh token")
		}
	}
}

// inRefreshGrace reports whether now is within the grace of a rotation at
// rotated; a rotation stamped ahead of this node's clock (by a node whose
// clock is ahead) counts as recent, but only within the grace, so that a
// broken clock does not give a token an open-ended second life.
func (s *Service) inRefreshGrace(rotated, now time.Time) bool {
	g := s.cfg.RefreshGrace
	return g > 0 && now.Sub(rotated) < g && rotated.Sub(now) < g
}

// refreshReused revokes d, whose stale refresh token was presented, and
// returns the error for the caller.
func (s *Service) refreshReused(ctx context.Context, d store.Device) error {
	s.log.WarnContext(ctx, "auth: refresh token reused; revoking device", "user", d.UserID, "device", d.ID)
	if err := s.deleteDevice(ctx, d.UserID, d.ID); err != nil && !errors.Is(err, store.ErrNotFound) {
		return fmt.Errorf("auth: revoke device after refresh token reuse: %w", err)
	}
	return errUnauthorized("refresh token already used; the device was signed out")
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

// RefreshTTL is how long a refresh token lives unused: a web session's
// cookie lives as long.
func (s *Service) RefreshTTL() time.Duration { return s.cfg.RefreshTTL }
