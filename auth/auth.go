package auth

import (
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"time"

	"github.com/tern-im/tern/store"
)

// Store is what auth needs from a store adapter.
type Store interface {
	store.Users
	store.Devices
	store.Codes
	store.Secrets
}

// Sender sends one SMS. Adapters: auth/sms/log, auth/sms/http.
type Sender interface {
	Send(ctx context.Context, to, text string) error
}

// Config holds the limits of sign-in. Zero durations and zero
// MaxAttempts / CodesPerPhonePerHour take their defaults; the per-IP limits
// take 0 as "unlimited" (for load tests from one address), so start from
// DefaultConfig to get them limited.
type Config struct {
	CodeTTL              time.Duration // default 5m
	MaxAttempts          int           // tries per code, default 5
	ResendAfter          time.Duration // default 60s
	CodesPerPhonePerHour int           // default 5
	CodesPerIPPerHour    int           // default 30; 0 = unlimited
	VerifiesPerIPPerHour int           // default 100; 0 = unlimited
	AccessTTL            time.Duration // default 15m
	RefreshTTL           time.Duration // default 60 days
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		CodeTTL:              5 * time.Minute,
		MaxAttempts:          5,
		ResendAfter:          60 * time.Second,
		CodesPerPhonePerHour: 5,
		CodesPerIPPerHour:    30,
		VerifiesPerIPPerHour: 100,
		AccessTTL:            15 * time.Minute,
		RefreshTTL:           60 * 24 * time.Hour,
	}
}

func (c Config) withDefaults() (Config, error) {
	d := DefaultConfig()
	if c.CodeTTL == 0 {
		c.CodeTTL = d.CodeTTL
	}
	if c.MaxAttempts == 0 {
		c.MaxAttempts = d.MaxAttempts
	}
	if c.ResendAfter == 0 {
		c.ResendAfter = d.ResendAfter
	}
	if c.CodesPerPhonePerHour == 0 {
		c.CodesPerPhonePerHour = d.CodesPerPhonePerHour
	}
	if c.AccessTTL == 0 {
		c.AccessTTL = d.AccessTTL
	}
	if c.RefreshTTL == 0 {
		c.RefreshTTL = d.RefreshTTL
	}
	switch {
	case c.CodeTTL < time.Second, c.ResendAfter < 0, c.AccessTTL < time.Second, c.RefreshTTL < time.Second:
		return c, fmt.Errorf("auth: config: durations must be positive (code ttl %v, resend after %v, access ttl %v, refresh ttl %v)",
			c.CodeTTL, c.ResendAfter, c.AccessTTL, c.RefreshTTL)
	case c.MaxAttempts < 0, c.CodesPerPhonePerHour < 0, c.CodesPerIPPerHour < 0, c.VerifiesPerIPPerHour < 0:
		return c, fmt.Errorf("auth: config: limits must not be negative")
	}
	return c, nil
}

// Options are the collaborators of a Service that are not configuration.
type Options struct {
	Log *slog.Logger
	// Now is the clock; nil means time.Now. Tests move it instead of sleeping.
	Now func() time.Time
	// OnRevoke is called after a device was deleted (by Revoke or by refresh
	// token reuse), so that the server can close its socket at once. It runs
	// on the caller's goroutine, once per deletion, and should not block.
	OnRevoke func(userID, deviceID string)
}

// Claims is what a valid access token says.
type Claims struct {
	UserID, DeviceID string
	Expires          time.Time
}

// Secret names in the store. Every node reads the same ones, so any node can
// check a code or token another node issued.
const (
	secretSigningKey = "token-signing-key"
	secretCodeKey    = "code-hash-key"
)

// phoneStripes serialise code requests per phone on this node, so that two
// simultaneous requests cannot both pass the resend check. A fixed array
// keeps memory bounded whatever the number of phones.
const phoneStripes = 256

// Service is phone sign-in and device sessions. It is safe for concurrent use.
type Service struct {
	st       Store
	sms      Sender
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	onRevoke func(userID, deviceID string)

	codeKey   []byte // HMAC key of stored code hashes
	accessKey []byte // HMAC key of access tokens

	codesByIP    *ipLimiter
	verifiesByIP *ipLimiter

	seed   maphash.Seed
	phones [phoneStripes]sync.Mutex
}

// New returns a Service on st. It loads the signing and code keys from the
// store, creating them on first start.
func New(ctx context.Context, st Store, sms Sender, cfg Config, opts Options) (*Service, error) {
	if st == nil || sms == nil {
		return nil, errors.New("auth: New needs a store and an SMS sender")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	s := &Service{
		st:       st,
		sms:      sms,
		cfg:      cfg,
		log:      opts.Log,
		now:      opts.Now,
		onRevoke: opts.OnRevoke,
		seed:     maphash.MakeSeed(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	signing, err := loadSecret(ctx, st, secretSigningKey)
	if err != nil {
		return nil, err
	}
	// The stored key may one day sign more than access tokens; deriving a
	// per-purpose key keeps those uses from ever being confused.
	s.accessKey = derive(signing, "tern access token v1")
	if s.codeKey, err = loadSecret(ctx, st, secretCodeKey); err != nil {
		return nil, err
	}
	s.codesByIP = newIPLimiter(cfg.CodesPerIPPerHour, time.Hour, defaultLimiterCap)
	s.verifiesByIP = newIPLimiter(cfg.VerifiesPerIPPerHour, time.Hour, defaultLimiterCap)
	return s, nil
}

func loadSecret(ctx context.Context, st Store, name string) ([]byte, error) {
	fresh := make([]byte, 32)
	rand.Read(fresh)
	key, err := st.Secret(ctx, name, fresh)
	if err != nil {
		return nil, fmt.Errorf("auth: load secret %s: %w", name, err)
	}
	if len(key) < 16 {
		return nil, fmt.Errorf("auth: secret %s is too short (%d bytes)", name, len(key))
	}
	return key, nil
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func (s *Service) phoneLock(phone string) *sync.Mutex {
	return &s.phones[maphash.String(s.seed, phone)%phoneStripes]
}
