package auth

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/tern-im/tern/internal/seal"
	"github.com/tern-im/tern/store"
)

// The keys that sign access tokens, hash codes and derive refresh secrets
// form a ring: a list of keys with ids, kept as one secret in the store
// (secretKeyRing) that every node reads. The newest key signs and hashes;
// the older ones still verify what they signed until that has expired, so
// rotating keys logs nobody out. RotateKeys appends a key and drops the ones
// retired long enough ago that nothing they signed is still valid.
//
// A node picks up a rotation from another node when it meets a token or
// code naming a key id newer than its newest (at most one store read per
// ringRetryEvery, however many such tokens arrive), and in any case within
// ringMaxAge, when it reads the ring again before signing.

const (
	secretKeyRing = "auth-key-ring"
	ringFormat    = 1

	// legacyMoved is what the pre-ring secrets hold once the ring has
	// taken them over (or, on a new install, instead of them). It is
	// shorter than the 16 bytes a binary from before the ring requires of
	// a key, so that such a binary refuses to start rather than sign with
	// it.
	legacyMoved = "moved:key-ring"

	// A ring sealed under the master key is in internal/seal's format; a
	// ring in the clear is JSON and starts with '{'.
	masterKeySize = 32
	keySize       = 32

	ringMaxAge     = time.Minute
	ringRetryEvery = 2 * time.Second
	// clockSkew is how far apart the clocks of two nodes may be; a key
	// is kept that much longer than what it signed can live.
	clockSkew   = 5 * time.Minute
	rotateTries = 5
)

// storedRing is the ring as the store holds it (as JSON, sealed or not).
type storedRing struct {
	Format int         `json:"format"`
	Keys   []storedKey `json:"keys"` // ascending ids, consecutive
}

type storedKey struct {
	ID      uint32    `json:"id"`
	Created time.Time `json:"created"`
	// Legacy marks the key made of the two secrets of the version before
	// the ring: only it verifies v1 access tokens and 32-byte code hashes.
	Legacy bool   `json:"legacy,omitempty"`
	Sign   []byte `json:"sign"` // root of the token and refresh keys
	Code   []byte `json:"code"` // HMAC key of code hashes
}

// ringKey is one key of the ring with the keys derived from it for each
// use, so that no key ever serves two purposes.
type ringKey struct {
	id        uint32
	legacy    bool
	access    []byte // HMAC key of v2 access tokens
	accessV1  []byte // HMAC key of v1 access tokens; legacy only
	code      []byte // HMAC key of code hashes
	successor []byte // HMAC key deriving a refresh secret's successor
}

// keyRing is an immutable snapshot of the ring.
type keyRing struct {
	stored storedRing
	keys   []*ringKey // as stored.Keys; never empty
	blob   []byte     // as read from the store
	sealed bool
	loaded time.Time // when it was read
}

func (r *keyRing) newest() *ringKey { return r.keys[len(r.keys)-1] }

func (r *keyRing) byID(id uint32) *ringKey {
	first := r.keys[0].id
	if id < first || id-first >= uint32(len(r.keys)) {
		return nil
	}
	return r.keys[id-first]
}

func (r *keyRing) legacyKey() *ringKey {
	if k := r.keys[0]; k.legacy {
		return k
	}
	return nil
}

func newRingKey(k storedKey) *ringKey {
	rk := &ringKey{
		id:        k.ID,
		legacy:    k.Legacy,
		access:    derive(k.Sign, "tern access token v2"),
		code:      bytes.Clone(k.Code),
		successor: derive(k.Sign, "tern refresh successor v1"),
	}
	if k.Legacy {
		// The derivation of the version before the ring, so that its
		// tokens keep verifying.
		rk.accessV1 = derive(k.Sign, "tern access token v1")
	}
	return rk
}

func randomKey() []byte {
	k := make([]byte, keySize)
	rand.Read(k)
	return k
}

// codeHash is the stored form of a code: the key id, then the HMAC of
// phone and code under the key. The id tells which key to check it with
// after a rotation.
func (k *ringKey) codeHash(phone, code string) []byte {
	out := binary.BigEndian.AppendUint32(make([]byte, 0, 4+sha256.Size), k.id)
	return append(out, codeMAC(k.code, phone, code)...)
}

// codeMAC binds the code to the phone, so that a hash copied to another
// record does not match, and keys it with a server secret, so that a copy
// of the store cannot be brute-forced over the 10^6 possible codes.
func codeMAC(key []byte, phone, code string) []byte {
	m := hmac.New(sha256.New, key)
	m.Write([]byte(phone))
	m.Write([]byte{0})
	m.Write([]byte(code))
	return m.Sum(nil)
}

// successorOf is the refresh secret that replaces secret on deviceID. It
// is derived rather than drawn so that a repeated refresh with the same
// token can be answered with the same new token without storing it.
func (k *ringKey) successorOf(deviceID string, secret []byte) []byte {
	m := hmac.New(sha256.New, k.successor)
	m.Write([]byte(deviceID))
	m.Write([]byte{0})
	m.Write(secret)
	return m.Sum(nil)
}

// findSuccessor returns the successor of secret whose SHA-256 is want,
// trying every key of the ring (the newest first), because the node that
// rotated may have had a newer or an older ring than this one.
func (r *keyRing) findSuccessor(deviceID string, secret, want []byte) ([]byte, bool) {
	if len(want) != sha256.Size {
		return nil, false
	}
	for i := len(r.keys) - 1; i >= 0; i-- {
		next := r.keys[i].successorOf(deviceID, secret)
		h := sha256.Sum256(next)
		if subtle.ConstantTimeCompare(h[:], want) == 1 {
			return next, true
		}
	}
	return nil, false
}

// rotated returns the ring with a new key appended and the keys dropped
// that were retired (followed by a newer key) more than retention ago.
func (sr storedRing) rotated(now time.Time, retention time.Duration) storedRing {
	keys := append([]storedKey(nil), sr.Keys...)
	last := keys[len(keys)-1]
	keys = append(keys, storedKey{ID: last.ID + 1, Created: now.UTC(), Sign: randomKey(), Code: randomKey()})
	drop := 0
	for drop < len(keys)-1 && now.Sub(keys[drop+1].Created) >= retention {
		drop++
	}
	return storedRing{Format: ringFormat, Keys: keys[drop:]}
}

// retention is how long a key is kept after a newer one took over: as long
// as anything it signed or hashed can be valid, plus the time a node may
// go on signing with it before it rereads the ring, plus clock skew.
func (s *Service) retention() time.Duration {
	return max(s.cfg.AccessTTL, s.cfg.CodeTTL, s.cfg.RefreshGrace) + ringMaxAge + clockSkew
}

func encodeRing(sr storedRing, master []byte) ([]byte, error) {
	plain, err := json.Marshal(sr)
	if err != nil {
		return nil, fmt.Errorf("auth: encode key ring: %w", err)
	}
	if master == nil {
		return plain, nil
	}
	return seal.Seal(master, secretKeyRing, plain)
}

func decodeRing(blob, master []byte) (*keyRing, error) {
	r := &keyRing{blob: blob}
	plain := blob
	if seal.IsSealed(blob) {
		if master == nil {
			return nil, errors.New("auth: the key ring in the store is sealed: start with its master key")
		}
		var err error
		if plain, err = seal.Open(master, secretKeyRing, blob); err != nil {
			return nil, err
		}
		r.sealed = true
	}
	if err := json.Unmarshal(plain, &r.stored); err != nil {
		return nil, fmt.Errorf("auth: decode key ring: %w", err)
	}
	if r.stored.Format != ringFormat || len(r.stored.Keys) == 0 {
		return nil, fmt.Errorf("auth: key ring format %d with %d keys: not one this version reads", r.stored.Format, len(r.stored.Keys))
	}
	for i, k := range r.stored.Keys {
		if k.ID == 0 || (i > 0 && k.ID != r.stored.Keys[i-1].ID+1) || len(k.Sign) < 16 || len(k.Code) < 16 || (k.Legacy && i > 0) {
			return nil, fmt.Errorf("auth: key ring: key %d (id %d) is malformed", i, k.ID)
		}
		r.keys = append(r.keys, newRingKey(k))
	}
	return r, nil
}

// openRing reads the ring at start, creating it if this is the first start
// of this version: from the secrets of the version before, if there are
// any, so that their tokens and pending codes stay valid, else from new
// random keys. With a master key, it then seals what it finds in the clear.
func (s *Service) openRing(ctx context.Context) (*keyRing, error) {
	sign, err := s.legacySecret(ctx, secretSigningKey)
	if err != nil {
		return nil, err
	}
	code, err := s.legacySecret(ctx, secretCodeKey)
	if err != nil {
		return nil, err
	}
	first := storedKey{ID: 1, Created: s.now().UTC(), Legacy: sign != nil, Sign: sign, Code: code}
	if first.Sign == nil {
		first.Sign = randomKey()
	}
	if first.Code == nil {
		first.Code = randomKey()
	}
	fresh, err := encodeRing(storedRing{Format: ringFormat, Keys: []storedKey{first}}, s.master)
	if err != nil {
		return nil, err
	}
	r, err := s.readRing(ctx, fresh)
	if err != nil {
		return nil, err
	}
	if s.master == nil {
		return r, nil
	}
	if r, err = s.sealRing(ctx, r); err != nil {
		return nil, err
	}
	s.retireLegacy(ctx, r, secretSigningKey, sign, func(k storedKey) []byte { return k.Sign })
	s.retireLegacy(ctx, r, secretCodeKey, code, func(k storedKey) []byte { return k.Code })
	return r, nil
}

// legacySecret returns the secret called name of the version before the
// ring, or nil if there is none. Secret creates what it does not find; the
// marker it is given instead of a key makes sure no unsealed key is created.
func (s *Service) legacySecret(ctx context.Context, name string) ([]byte, error) {
	v, err := s.st.Secret(ctx, name, []byte(legacyMoved))
	if err != nil {
		return nil, fmt.Errorf("auth: load secret %s: %w", name, err)
	}
	if string(v) == legacyMoved {
		return nil, nil
	}
	if len(v) < 16 {
		return nil, fmt.Errorf("auth: secret %s is too short (%d bytes)", name, len(v))
	}
	return v, nil
}

// readRing reads the stored ring, storing fresh first if there is none.
func (s *Service) readRing(ctx context.Context, fresh []byte) (*keyRing, error) {
	blob, err := s.st.Secret(ctx, secretKeyRing, fresh)
	if err != nil {
		return nil, fmt.Errorf("auth: load key ring: %w", err)
	}
	r, err := decodeRing(blob, s.master)
	if err != nil {
		return nil, err
	}
	r.loaded = s.now()
	return r, nil
}

// sealRing replaces a ring stored in the clear with the same ring sealed.
func (s *Service) sealRing(ctx context.Context, r *keyRing) (*keyRing, error) {
	for range rotateTries {
		if r.sealed {
			return r, nil
		}
		blob, err := encodeRing(r.stored, s.master)
		if err != nil {
			return nil, err
		}
		err = s.st.ReplaceSecret(ctx, secretKeyRing, r.blob, blob)
		switch {
		case err == nil:
			s.log.InfoContext(ctx, "auth: key ring sealed under the master key")
		case errors.Is(err, store.ErrConflict):
			// Another node sealed or rotated it meanwhile: read again.
		default:
			return nil, fmt.Errorf("auth: seal key ring: %w", err)
		}
		if r, err = s.readRing(ctx, r.blob); err != nil {
			return nil, err
		}
	}
	return nil, fmt.Errorf("auth: seal key ring: it kept changing: %w", store.ErrConflict)
}

// retireLegacy overwrites a pre-ring secret, which is stored in the clear,
// with the marker, once the sealed ring holds it or has dropped it.
func (s *Service) retireLegacy(ctx context.Context, r *keyRing, name string, v []byte, field func(storedKey) []byte) {
	if v == nil || !r.sealed {
		return
	}
	if first := r.stored.Keys[0]; first.Legacy && !bytes.Equal(field(first), v) {
		// Not the key the ring took over: leave it for a person to look at.
		s.log.WarnContext(ctx, "auth: a secret from before the key ring differs from the ring's; left in place", "secret", name)
		return
	}
	err := s.st.ReplaceSecret(ctx, name, v, []byte(legacyMoved))
	if err != nil && !errors.Is(err, store.ErrConflict) {
		// The ring is sealed and works; the clear copy is a leftover that
		// the next start tries again to remove.
		s.log.WarnContext(ctx, "auth: could not remove a key stored in the clear", "secret", name, "err", err)
	}
}

// keys returns the ring to sign with, reading it again from the store when
// it is older than ringMaxAge, so that a node that never meets a token of
// another node's newer key still moves on to that key before the old one is
// dropped. A failed read keeps the keys in hand.
func (s *Service) keys(ctx context.Context) *keyRing {
	r := s.ring.Load()
	now := s.now()
	if age := now.Sub(r.loaded); age < ringMaxAge && age >= 0 {
		return r
	}
	if !s.ringMu.TryLock() {
		// Someone is reading it: the current ring will do meanwhile.
		return r
	}
	defer s.ringMu.Unlock()
	if since := now.Sub(s.ringTried); since < ringRetryEvery && since >= 0 {
		return s.ring.Load()
	}
	return s.reloadLocked(ctx, now)
}

// keyByID returns the key with id, reading the ring again if id is newer
// than the newest key known here (another node rotated). Ids at or below the
// newest that are not in the ring were dropped, and no read would help.
func (s *Service) keyByID(ctx context.Context, id uint32) *ringKey {
	r := s.keys(ctx)
	if k := r.byID(id); k != nil || id <= r.newest().id {
		return k
	}
	return s.reread(ctx, r).byID(id)
}

// reread reads the ring again when seen, the ring in place when the caller
// looked, lacked a key that another node may have added. It does not read
// if another caller replaced seen meanwhile, nor within ringRetryEvery of
// the last try, so that a flood of requests naming keys nobody has costs
// the store one read per ringRetryEvery.
func (s *Service) reread(ctx context.Context, seen *keyRing) *keyRing {
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	if cur := s.ring.Load(); cur != seen {
		return cur
	}
	now := s.now()
	if since := now.Sub(s.ringTried); since < ringRetryEvery && since >= 0 {
		return seen
	}
	return s.reloadLocked(ctx, now)
}

// reloadLocked reads the ring from the store; ringMu is held.
func (s *Service) reloadLocked(ctx context.Context, now time.Time) *keyRing {
	s.ringTried = now
	cur := s.ring.Load()
	r, err := s.readRing(ctx, cur.blob)
	if err != nil {
		s.log.WarnContext(ctx, "auth: reread key ring", "err", err)
		return cur
	}
	return s.install(r)
}

// install makes r the ring unless the one in place is newer (a rotation on
// this node finished while r was being read), and returns the ring in place.
func (s *Service) install(r *keyRing) *keyRing {
	for {
		cur := s.ring.Load()
		if cur != nil && cur.newest().id > r.newest().id {
			return cur
		}
		if s.ring.CompareAndSwap(cur, r) {
			return r
		}
	}
}

// RotateKeys adds a new key to the stored ring and returns its id. From
// then on this node signs tokens and hashes codes with it, and the other
// nodes do once they read the ring again (within about a minute, or at the
// first token of the new key they meet). Tokens and codes of older keys stay
// valid until they expire; keys retired longer ago than that are dropped
// from the ring. (The store's ReplaceSecret makes
// concurrent rotations on several nodes safe: one wins each step.)
func (s *Service) RotateKeys(ctx context.Context) (uint32, error) {
	s.ringMu.Lock()
	defer s.ringMu.Unlock()
	for range rotateTries {
		now := s.now()
		cur, err := s.readRing(ctx, s.ring.Load().blob)
		if err != nil {
			return 0, err
		}
		next := cur.stored.rotated(now, s.retention())
		blob, err := encodeRing(next, s.master)
		if err != nil {
			return 0, err
		}
		err = s.st.ReplaceSecret(ctx, secretKeyRing, cur.blob, blob)
		if errors.Is(err, store.ErrConflict) {
			continue // another node rotated meanwhile; rotate on top of it
		}
		if err != nil {
			return 0, fmt.Errorf("auth: rotate keys: %w", err)
		}
		r, err := decodeRing(blob, s.master)
		if err != nil {
			return 0, err
		}
		r.loaded, s.ringTried = now, now
		id := s.install(r).newest().id
		s.log.InfoContext(ctx, "auth: keys rotated", "key_id", id, "keys", len(r.keys))
		return id, nil
	}
	return 0, fmt.Errorf("auth: rotate keys: the ring kept changing: %w", store.ErrConflict)
}
