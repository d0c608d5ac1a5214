package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"strconv"
	"strings"
	"time"
	"unicode"
	"unicode/utf8"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

const (
	codeDigits    = 6
	maxDeviceName = 64
	defaultDevice = "device"
)

// Platforms a device may declare.
const (
	PlatformIOS     = "ios"
	PlatformAndroid = "android"
	PlatformWeb     = "web"
	PlatformDesktop = "desktop"
	PlatformOther   = "other"
)

// RequestCode sends a new verification code to phone by SMS. clientIP is the
// address the request came from, for the per-address limit.
func (s *Service) RequestCode(ctx context.Context, phone, clientIP string) (wire.CodeResponse, error) {
	if strings.TrimSpace(phone) == "" {
		return wire.CodeResponse{}, wire.Errorf(wire.CodeBadRequest, "phone is required")
	}
	phone, err := NormalizePhone(phone)
	if err != nil {
		return wire.CodeResponse{}, err
	}
	code := newCode()
	rec, prev, err := s.reserveCode(ctx, phone, code, clientIP)
	if err != nil {
		return wire.CodeResponse{}, err
	}
	text := fmt.Sprintf("Your Tern code is %s. It expires in %s.", code, humanDuration(s.cfg.CodeTTL))
	if err := s.sms.Send(ctx, phone, text); err != nil {
		s.log.WarnContext(ctx, "auth: sms send failed", "phone", maskPhone(phone), "err", err)
		s.unreserveCode(ctx, rec, prev, clientIP)
		return wire.CodeResponse{}, wire.Errorf(wire.CodeUnavailable, "could not send the code, try again")
	}
	s.log.InfoContext(ctx, "auth: code sent", "phone", maskPhone(phone), "window_count", rec.WindowCount)
	return wire.CodeResponse{
		ExpiresIn:  ceilSeconds(s.cfg.CodeTTL),
		RetryAfter: ceilSeconds(s.cfg.ResendAfter),
	}, nil
}

// reserveCode checks the limits and stores the new code before it is sent,
// so that the code works the moment the SMS arrives. It returns the stored
// record and the one it replaced (nil for none).
//
// The phone's codes are a leaky bucket kept in the record: WindowCount codes
// as of WindowStart, one leaking out every Config.codeRefill. Up to
// CodesPerPhonePerHour codes go at once; then one per codeRefill.
func (s *Service) reserveCode(ctx context.Context, phone, code, clientIP string) (store.Code, *store.Code, error) {
	mu := s.phoneLock(phone)
	mu.Lock()
	defer mu.Unlock()
	now := s.now()

	var prev *store.Code
	old, err := s.st.Code(ctx, phone)
	switch {
	case err == nil:
		prev = &old
	case errors.Is(err, store.ErrNotFound):
	default:
		return store.Code{}, nil, fmt.Errorf("auth: load code: %w", err)
	}

	rec := store.Code{
		Phone:       phone,
		Hash:        s.keys(ctx).newest().codeHash(phone, code),
		ExpiresAt:   now.Add(s.cfg.CodeTTL),
		SentAt:      now,
		WindowStart: now,
		WindowCount: 1,
	}
	if prev != nil {
		// An unused code blocks a new one for ResendAfter, but not past its
		// own expiry: with nothing left to type in, waiting helps nobody.
		resendAt := prev.SentAt.Add(s.cfg.ResendAfter)
		if prev.ExpiresAt.Before(resendAt) {
			resendAt = prev.ExpiresAt
		}
		if now.Before(resendAt) && !now.Before(prev.SentAt) {
			return store.Code{}, nil, rateLimited(resendAt.Sub(now), "a code was sent recently; wait before asking for another")
		}
		level, since := s.codeBucket(*prev, now)
		if level >= s.cfg.CodesPerPhonePerHour {
			return store.Code{}, nil, rateLimited(since.Add(s.cfg.codeRefill()).Sub(now), "too many codes for %s", codeSubject(phone))
		}
		rec.WindowStart, rec.WindowCount = since, level+1
	}
	// The shares of this address are counted after the phone's totals
	// were checked and before they are spent, so that a request refused
	// for the phone uses up nothing of the address, and an address past
	// its share spends nothing of the phone's, which is what keeps one
	// address from locking a phone's owner out.
	key := phoneIPKey(phone, clientIP)
	if ok, wait := s.codesByPhoneIP.takeKey(key, now); !ok {
		return store.Code{}, nil, rateLimited(wait, "too many codes for %s from this address", codeSubject(phone))
	}
	if ok, wait := s.codesByIP.take(clientIP, now); !ok {
		s.codesByPhoneIP.giveKey(key, now)
		return store.Code{}, nil, rateLimited(wait, "too many codes requested from this address")
	}
	if err := s.st.PutCode(ctx, rec); err != nil {
		s.codesByPhoneIP.giveKey(key, now)
		return store.Code{}, nil, fmt.Errorf("auth: store code: %w", err)
	}
	return rec, prev, nil
}

// codeBucket returns the phone's codes still in the bucket at now and the
// time from which the next one leaks out.
func (s *Service) codeBucket(prev store.Code, now time.Time) (int, time.Time) {
	level, since := prev.WindowCount, prev.WindowStart
	if now.Before(since) {
		// Stamped by a node whose clock is ahead, or the clock stepped
		// back: count from now, so a wrong clock cannot block for longer
		// than one refill.
		since = now
	}
	refill := s.cfg.codeRefill()
	leaked := now.Sub(since) / refill
	if leaked >= time.Duration(level) {
		return 0, now
	}
	return level - int(leaked), since.Add(leaked * refill)
}

// unreserveCode undoes reserveCode after the SMS could not be sent, so that
// a gateway failure neither uses up the phone's codes nor makes the user
// wait ResendAfter for a code that never arrived. The address stays counted
// in its total over all phones: that bounds how hard one source can hammer a
// failing gateway.
func (s *Service) unreserveCode(ctx context.Context, rec store.Code, prev *store.Code, clientIP string) {
	mu := s.phoneLock(rec.Phone)
	mu.Lock()
	defer mu.Unlock()
	s.codesByPhoneIP.giveKey(phoneIPKey(rec.Phone, clientIP), s.now())
	cur, err := s.st.Code(ctx, rec.Phone)
	if err != nil || !hmac.Equal(cur.Hash, rec.Hash) {
		// Gone or replaced meanwhile (by another node): the newer state wins.
		return
	}
	if prev != nil {
		err = s.st.PutCode(ctx, *prev)
	} else {
		err = s.st.DeleteCode(ctx, rec.Phone)
		if errors.Is(err, store.ErrNotFound) {
			err = nil
		}
	}
	if err != nil {
		s.log.WarnContext(ctx, "auth: undo code after failed sms", "phone", maskPhone(rec.Phone), "err", err)
	}
}

// Verify trades a correct code for a new device of the phone's user,
// creating the user on first sign-in.
func (s *Service) Verify(ctx context.Context, req wire.VerifyRequest, clientIP string) (wire.Session, error) {
	if strings.TrimSpace(req.Phone) == "" || strings.TrimSpace(req.Code) == "" {
		return wire.Session{}, wire.Errorf(wire.CodeBadRequest, "phone and code are required")
	}
	name, platform, werr := deviceFields(req.DeviceName, req.Platform)
	if werr != nil {
		return wire.Session{}, werr
	}
	now := s.now()
	if ok, wait := s.verifiesByIP.take(clientIP, now); !ok {
		return wire.Session{}, rateLimited(wait, "too many verification attempts from this address")
	}
	phone, err := NormalizePhone(req.Phone)
	if err != nil {
		return wire.Session{}, err
	}
	code := strings.TrimSpace(req.Code)
	if err := s.checkCode(ctx, phone, code, clientIP, now); err != nil {
		return wire.Session{}, err
	}
	// The phone is settled for this address: its share of codes starts
	// again, as the phone's own count does (the record is gone).
	s.codesByPhoneIP.forget(phoneIPKey(phone, clientIP))

	u, created, err := s.st.EnsureUser(ctx, phone, store.NewID(store.PrefixUser), now)
	if err != nil {
		return wire.Session{}, fmt.Errorf("auth: ensure user: %w", err)
	}
	if err := s.checkBan(ctx, u.ID); err != nil {
		return wire.Session{}, err
	}
	refresh, secretHash := s.newRefresh(store.NewID(store.PrefixDevice))
	d := store.Device{
		ID:             refresh.deviceID,
		UserID:         u.ID,
		Name:           name,
		Platform:       platform,
		CreatedAt:      now,
		LastSeen:       now,
		RefreshHash:    secretHash,
		RefreshExpires: now.Add(s.cfg.RefreshTTL),
	}
	if err := s.st.CreateDevice(ctx, d); err != nil {
		return wire.Session{}, fmt.Errorf("auth: create device: %w", err)
	}
	// Again, now that the device exists: a ban made since the check above
	// either listed this device when it revoked the user's devices, or is
	// seen here.
	if err := s.checkBan(ctx, u.ID); err != nil {
		if derr := s.deleteDevice(ctx, u.ID, d.ID); derr != nil && !errors.Is(derr, store.ErrNotFound) {
			return wire.Session{}, fmt.Errorf("auth: dropping a banned user's new device: %w", derr)
		}
		return wire.Session{}, err
	}
	s.log.InfoContext(ctx, "auth: signed in", "user", u.ID, "device", d.ID, "new_user", created, "platform", platform)
	s.noticeNewDevice(u, d, clientIP)
	return s.session(ctx, u.ID, d.ID, refresh.String(), now, now), nil
}

// checkCode consumes one try of phone's pending code and, when code is right,
// the code itself.
func (s *Service) checkCode(ctx context.Context, phone, code, clientIP string, now time.Time) error {
	rec, err := s.st.Code(ctx, phone)
	if errors.Is(err, store.ErrNotFound) {
		return noCodePending(phone)
	}
	if err != nil {
		return fmt.Errorf("auth: load code: %w", err)
	}
	if werr := s.codeUsable(rec, now); werr != nil {
		return werr
	}
	// This address's tries at this code are counted before the code's
	// total in the store, and an address past its share is refused before
	// that total is touched: guesses from one address cannot burn the code
	// for its owner.
	if ok, _ := s.triesByPhoneIP.takeKey(tryKey(phone, clientIP, rec), now); !ok {
		return wire.Errorf(wire.CodeInvalidCode, "too many wrong tries; request a new code")
	}
	// Count the try before comparing, atomically in the store, so that
	// parallel guesses cannot exceed MaxAttemptsTotal between a read and a
	// write.
	rec, err = s.st.CountAttempt(ctx, phone)
	if errors.Is(err, store.ErrNotFound) {
		return noCodePending(phone)
	}
	if err != nil {
		return fmt.Errorf("auth: count attempt: %w", err)
	}
	// CountAttempt answered the record after the increment; Attempts is
	// the number of tries including this one.
	rec.Attempts--
	if werr := s.codeUsable(rec, now); werr != nil {
		return werr
	}
	// A malformed code is still a try: it costs nothing to count, and the
	// format must not become a way around the attempt limit.
	if !validCodeFormat(code) || !s.codeMatches(ctx, rec.Hash, phone, code) {
		return wire.Errorf(wire.CodeInvalidCode, "wrong code")
	}
	if err := s.st.DeleteCode(ctx, phone); err != nil {
		if errors.Is(err, store.ErrNotFound) {
			// A concurrent verification of the same code won; the code
			// is single-use, so this one gets nothing.
			return wire.Errorf(wire.CodeInvalidCode, "code already used")
		}
		return fmt.Errorf("auth: consume code: %w", err)
	}
	return nil
}

// codeSubject names what the code of key verifies, for error messages:
// email codes share this code path under keys of their own (emailKey).
func codeSubject(key string) string {
	if strings.HasPrefix(key, emailKeyPrefix) {
		return "this email address"
	}
	return "this phone number"
}

func noCodePending(key string) *wire.Error {
	return wire.Errorf(wire.CodeInvalidCode, "no code is pending for %s; request one", codeSubject(key))
}

// tryKey names one code (by its sending time and the tail of its hash) as
// tried from one address, so that a new code starts a new count.
func tryKey(phone, clientIP string, rec store.Code) string {
	tail := rec.Hash[max(0, len(rec.Hash)-8):]
	return phoneIPKey(phone, clientIP) + "|" + strconv.FormatInt(rec.SentAt.UnixNano(), 36) + "|" + hex.EncodeToString(tail)
}

// codeUsable tells why rec, with rec.Attempts tries already made, cannot be
// tried again.
func (s *Service) codeUsable(rec store.Code, now time.Time) *wire.Error {
	if len(rec.Hash) == 0 {
		return noCodePending(rec.Phone)
	}
	if !now.Before(rec.ExpiresAt) {
		return wire.Errorf(wire.CodeCodeExpired, "the code has expired; request a new one")
	}
	if rec.Attempts >= s.cfg.MaxAttemptsTotal {
		return wire.Errorf(wire.CodeInvalidCode, "too many wrong tries; request a new code")
	}
	return nil
}

// codeMatches compares code with the stored hash want, under the ring key
// want names (a code sent before a rotation is checked with the key it was
// hashed with), in constant time. A 32-byte hash is from before the ring
// and is checked with its legacy key.
func (s *Service) codeMatches(ctx context.Context, want []byte, phone, code string) bool {
	var k *ringKey
	switch len(want) {
	case sha256.Size:
		k = s.keys(ctx).legacyKey()
	case 4 + sha256.Size:
		k = s.keyByID(ctx, binary.BigEndian.Uint32(want))
		want = want[4:]
	}
	if k == nil {
		return false
	}
	return subtle.ConstantTimeCompare(want, codeMAC(k.code, phone, code)) == 1
}

// newCode draws a uniform 6-digit code. Values at or above the largest
// multiple of 10^6 below 2^32 are redrawn, because taking them modulo 10^6
// would make low codes slightly likelier.
func newCode() string {
	const space = 1_000_000
	const limit = (1 << 32) / space * space
	var b [4]byte
	for {
		rand.Read(b[:])
		if v := binary.BigEndian.Uint32(b[:]); v < limit {
			return fmt.Sprintf("%0*d", codeDigits, v%space)
		}
	}
}

// validCodeFormat reports whether code is exactly six ASCII digits.
func validCodeFormat(code string) bool {
	if len(code) != codeDigits {
		return false
	}
	for i := 0; i < len(code); i++ {
		if code[i] < '0' || code[i] > '9' {
			return false
		}
	}
	return true
}

// deviceFields validates and defaults the device a verification creates.
func deviceFields(name, platform string) (string, string, *wire.Error) {
	name = strings.TrimSpace(name)
	if name == "" {
		name = defaultDevice
	}
	if !utf8.ValidString(name) || utf8.RuneCountInString(name) > maxDeviceName {
		return "", "", wire.Errorf(wire.CodeBadRequest, "device_name must be valid text of at most %d characters", maxDeviceName)
	}
	for _, r := range name {
		if unicode.IsControl(r) {
			return "", "", wire.Errorf(wire.CodeBadRequest, "device_name must not contain control characters")
		}
	}
	switch p := strings.ToLower(strings.TrimSpace(platform)); p {
	case "":
		platform = PlatformOther
	case PlatformIOS, PlatformAndroid, PlatformWeb, PlatformDesktop, PlatformOther:
		platform = p
	default:
		return "", "", wire.Errorf(wire.CodeBadRequest, "platform must be one of ios, android, web, desktop, other")
	}
	return name, platform, nil
}

// humanDuration writes the code lifetime for the SMS text.
func humanDuration(d time.Duration) string {
	switch {
	case d >= time.Minute && d%time.Minute == 0:
		if d == time.Minute {
			return "1 minute"
		}
		return fmt.Sprintf("%d minutes", d/time.Minute)
	case d >= time.Minute:
		return fmt.Sprintf("%d minutes", (d+time.Minute-1)/time.Minute)
	default:
		return fmt.Sprintf("%d seconds", ceilSeconds(d))
	}
}
