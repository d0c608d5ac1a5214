package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"errors"
	"fmt"
	"hash/maphash"
	"log/slog"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-im/tern/mail"
	"github.com/tern-im/tern/store"
)

// Store is what auth needs from a store adapter.
type Store interface {
	store.Users
	store.Devices
	store.Codes
	store.Secrets
	store.Bans
	// Business tells a business's number (signed in to only through the
	// business API) from a person's.
	Business(ctx context.Context, userID string) (store.Business, error)
}

// Sender sends one SMS. Adapters: auth/sms/log, auth/sms/http.
type Sender interface {
	Send(ctx context.Context, to, text string) error
}

// Config holds the limits of sign-in. Zero values take their defaults,
// except that the per-address totals CodesPerIPPerHour and
// VerifiesPerIPPerHour take 0 as "unlimited" (for load tests from one
// address), so start from DefaultConfig to get them limited.
//
// # Limits on codes, and what they leave an attacker
//
// Each limit on sign-in is counted twice: per phone, in the store record of
// the phone's code, which is authoritative across the cluster; and per phone
// and client address (an IPv4 address or an IPv6 /64), in memory on each
// node. The per-phone totals bound guessing: at most MaxAttemptsTotal tries
// per code and at most CodesPerPhonePerDay codes in any 24 hours, so at most
// MaxAttemptsTotal*CodesPerPhonePerDay guesses a day at a 1-in-10^6 code
// (defaults: 20*30 = 600, a 6e-4 chance a day per phone). The per-address
// shares are set well below those totals (MaxAttempts of MaxAttemptsTotal,
// CodesPerPhonePerIPPerHour of CodesPerPhonePerHour), and an address past its
// share is refused before anything is counted in the store, so that no single
// address can spend a phone's totals and lock its owner out.
//
// With the defaults, an attacker with one address can, against one phone:
// guess 5 times per code (a 5e-6 chance); ask for 3 codes an hour, each of
// which goes by SMS to the owner, replaces the pending code (the owner must
// type the newest) and holds off other requests for ResendAfter. It cannot
// burn the owner's code (20 tries) or use up the phone's codes (10 an hour).
// An attacker with many addresses can: burn every code with 4 addresses
// (4*5 = 20 tries), and use up the phone's codes with 4 addresses (4*3 >= 10),
// after which the phone gets one code per 72 minutes until the attack stops;
// so a lock-out costs a few addresses per phone, held for as long as it
// lasts, and guessing stays within the totals above whatever the number of
// addresses. Owner and attacker behind one address (carrier NAT, an office)
// share that address's share.
//
// The per-address counts are per node: with N nodes behind a load balancer
// that does not pin a client address to one node, one address gets up to N
// times its share, still within the per-phone totals; pin by client address
// (or give each node 1/N of the share) to keep the share exact. A restart
// forgets them, and so does a flood of more than 100,000 keys (failing open
// rather than refusing everyone).
type Config struct {
	CodeTTL time.Duration // default 5m
	// MaxAttempts is how many tries one client address gets at one code
	// (per node). Default 5.
	MaxAttempts int
	// MaxAttemptsTotal is how many tries one code survives from all
	// addresses together, counted in the store. Default 20, and never
	// below MaxAttempts.
	MaxAttemptsTotal int
	// ResendAfter is the wait before another code for a phone whose last
	// code is unused and unexpired. Default 60s.
	ResendAfter time.Duration
	// CodesPerPhonePerHour bounds the codes sent to one phone in any hour,
	// from all addresses together (store). Default 10.
	CodesPerPhonePerHour int
	// CodesPerPhonePerDay bounds the codes sent to one phone in any 24
	// hours, from all addresses together (store); it must exceed
	// CodesPerPhonePerHour. Default 30, or twice CodesPerPhonePerHour if
	// that is more. Once a phone has used its hour, it gets another code
	// every max(1h, 24h/(CodesPerPhonePerDay-CodesPerPhonePerHour)).
	CodesPerPhonePerDay int
	// CodesPerPhonePerIPPerHour bounds the codes one client address asks
	// for one phone in an hour (per node). A successful sign-in from the
	// address clears it. Default 3.
	CodesPerPhonePerIPPerHour int
	CodesPerIPPerHour         int           // all phones, per address (node); default 30; 0 = unlimited
	VerifiesPerIPPerHour      int           // all phones, per address (node); default 100; 0 = unlimited
	AccessTTL                 time.Duration // default 15m
	RefreshTTL                time.Duration // default 60 days
	// RefreshGrace is how long after a refresh the refresh token it
	// replaced still answers, with the same new tokens, so that a client
	// retrying a lost answer, or sending a few refreshes at once, is not
	// taken for a thief. Default 30s; negative: no grace.
	RefreshGrace time.Duration
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		CodeTTL:                   5 * time.Minute,
		MaxAttempts:               5,
		MaxAttemptsTotal:          20,
		ResendAfter:               60 * time.Second,
		CodesPerPhonePerHour:      10,
		CodesPerPhonePerDay:       30,
		CodesPerPhonePerIPPerHour: 3,
		CodesPerIPPerHour:         30,
		VerifiesPerIPPerHour:      100,
		AccessTTL:                 15 * time.Minute,
		RefreshTTL:                60 * 24 * time.Hour,
		RefreshGrace:              30 * time.Second,
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
	if c.MaxAttemptsTotal == 0 {
		c.MaxAttemptsTotal = d.MaxAttemptsTotal
	}
	if c.MaxAttemptsTotal < c.MaxAttempts {
		// A total below one address's share would make the share a lie;
		// configurations from before the total existed set only MaxAttempts.
		c.MaxAttemptsTotal = c.MaxAttempts
	}
	if c.ResendAfter == 0 {
		c.ResendAfter = d.ResendAfter
	}
	if c.CodesPerPhonePerHour == 0 {
		c.CodesPerPhonePerHour = d.CodesPerPhonePerHour
	}
	if c.CodesPerPhonePerDay == 0 {
		c.CodesPerPhonePerDay = max(d.CodesPerPhonePerDay, 2*c.CodesPerPhonePerHour)
	}
	if c.CodesPerPhonePerIPPerHour == 0 {
		c.CodesPerPhonePerIPPerHour = d.CodesPerPhonePerIPPerHour
	}
	if c.AccessTTL == 0 {
		c.AccessTTL = d.AccessTTL
	}
	if c.RefreshTTL == 0 {
		c.RefreshTTL = d.RefreshTTL
	}
	if c.RefreshGrace == 0 {
		c.RefreshGrace = d.RefreshGrace
	}
	switch {
	case c.CodeTTL < time.Second, c.ResendAfter < 0, c.AccessTTL < time.Second, c.RefreshTTL < time.Second:
		return c, fmt.Errorf("auth: config: durations must be positive (code ttl %v, resend after %v, access ttl %v, refresh ttl %v)",
			c.CodeTTL, c.ResendAfter, c.AccessTTL, c.RefreshTTL)
	case c.MaxAttempts < 0, c.CodesPerPhonePerHour < 0, c.CodesPerPhonePerDay < 0, c.CodesPerPhonePerIPPerHour < 0,
		c.CodesPerIPPerHour < 0, c.VerifiesPerIPPerHour < 0:
		return c, fmt.Errorf("auth: config: limits must not be negative")
	case c.CodesPerPhonePerDay <= c.CodesPerPhonePerHour:
		// Without room between the two, a phone that used its hour would
		// never get a code again.
		return c, fmt.Errorf("auth: config: codes per phone per day (%d) must exceed codes per phone per hour (%d)",
			c.CodesPerPhonePerDay, c.CodesPerPhonePerHour)
	}
	return c, nil
}

// codeRefill is how often a phone that used up its codes gets another one.
// With the burst of CodesPerPhonePerHour and one more code per codeRefill,
// no hour sees more than CodesPerPhonePerHour codes (codeRefill >= 1h) and
// no 24 hours more than CodesPerPhonePerDay.
func (c Config) codeRefill() time.Duration {
	return max(time.Hour, 24*time.Hour/time.Duration(c.CodesPerPhonePerDay-c.CodesPerPhonePerHour))
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
	// MasterKey, when set, must be 32 bytes: the signing and code keys are
	// then kept in the store sealed with AES-256-GCM under it, and keys
	// found there in the clear (from before it was set) are sealed at
	// start. It is never stored; every node needs the same one, and
	// without it a node cannot start on a sealed store. When nil, the store
	// holds the keys in the clear: anyone with a copy of the store or of
	// its backups can then sign access tokens for any device that exists.
	MasterKey []byte
	// Mail sends email verification codes and new-device notices; nil:
	// users cannot add an email (RequestEmailCode answers unsupported).
	Mail mail.Sender
}

// Claims is what a valid access token says.
type Claims struct {
	UserID, DeviceID string
	Expires          time.Time
}

// Secret names in the store, from before the key ring (keys.go). Every
// node read the same ones, so any node could check a code or token another
// node issued; the ring took them over as its first key.
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
	mail     mail.Sender // nil: no email
	cfg      Config
	log      *slog.Logger
	now      func() time.Time
	onRevoke func(userID, deviceID string)

	master []byte // seals the key ring in the store; nil: clear

	// ring holds the signing and code keys (keys.go); ringMu serialises
	// reading it again from the store, and ringTried is when that was last
	// tried, so that a flood of tokens naming unknown keys costs the store
	// one read per ringRetryEvery.
	ring      atomic.Pointer[keyRing]
	ringMu    sync.Mutex
	ringTried time.Time

	codesByIP      *ipLimiter
	verifiesByIP   *ipLimiter
	codesByPhoneIP *ipLimiter // codes per phone and address
	triesByPhoneIP *ipLimiter // tries per code and address

	seed   maphash.Seed
	phones [phoneStripes]sync.Mutex
}

// New returns a Service on st. It loads the key ring from the store,
// creating it on first start from the keys of an older version if there are
// any, so that their tokens and codes stay valid.
func New(ctx context.Context, st Store, sms Sender, cfg Config, opts Options) (*Service, error) {
	if st == nil || sms == nil {
		return nil, errors.New("auth: New needs a store and an SMS sender")
	}
	cfg, err := cfg.withDefaults()
	if err != nil {
		return nil, err
	}
	if opts.MasterKey != nil && len(opts.MasterKey) != masterKeySize {
		return nil, fmt.Errorf("auth: the master key must be %d bytes, not %d", masterKeySize, len(opts.MasterKey))
	}
	s := &Service{
		st:       st,
		sms:      sms,
		mail:     opts.Mail,
		cfg:      cfg,
		log:      opts.Log,
		now:      opts.Now,
		onRevoke: opts.OnRevoke,
		master:   bytes.Clone(opts.MasterKey),
		seed:     maphash.MakeSeed(),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	if s.now == nil {
		s.now = time.Now
	}
	r, err := s.openRing(ctx)
	if err != nil {
		return nil, err
	}
	s.ring.Store(r)
	s.codesByIP = newIPLimiter(cfg.CodesPerIPPerHour, time.Hour, defaultLimiterCap)
	s.verifiesByIP = newIPLimiter(cfg.VerifiesPerIPPerHour, time.Hour, defaultLimiterCap)
	s.codesByPhoneIP = newIPLimiter(cfg.CodesPerPhonePerIPPerHour, time.Hour, defaultLimiterCap)
	// A code lives CodeTTL from its sending, which is before its first try,
	// so a window of CodeTTL from the first try outlives the code.
	s.triesByPhoneIP = newIPLimiter(cfg.MaxAttempts, cfg.CodeTTL, defaultLimiterCap)
	return s, nil
}

func derive(key []byte, label string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(label))
	return m.Sum(nil)
}

func (s *Service) phoneLock(phone string) *sync.Mutex {
	return &s.phones[maphash.String(s.seed, phone)%phoneStripes]
}

// Config returns the limits the service runs with, defaults filled in
// (the admin dashboard shows them).
func (s *Service) Config() Config { return s.cfg }
