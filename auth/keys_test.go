package auth

import (
	"bytes"
	"context"
	"encoding/base64"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-im/tern/internal/seal"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
	"github.com/tern-im/tern/wire"
)

// replStore is the embedded store with its secrets in memory, so that a
// test can look at and count them: it counts reads of the key ring.
type replStore struct {
	*embedded.Store
	mu        sync.Mutex
	secrets   map[string][]byte
	ringReads atomic.Int64
}

func newReplStore(t testing.TB) *replStore {
	return &replStore{Store: openStore(t), secrets: map[string][]byte{}}
}

func (s *replStore) Secret(ctx context.Context, name string, fresh []byte) ([]byte, error) {
	if name == secretKeyRing {
		s.ringReads.Add(1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if v, ok := s.secrets[name]; ok {
		return bytes.Clone(v), nil
	}
	s.secrets[name] = bytes.Clone(fresh)
	return bytes.Clone(fresh), nil
}

func (s *replStore) ReplaceSecret(ctx context.Context, name string, old, next []byte) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	v, ok := s.secrets[name]
	switch {
	case !ok:
		return store.ErrNotFound
	case !bytes.Equal(v, old):
		return store.ErrConflict
	}
	s.secrets[name] = bytes.Clone(next)
	return nil
}

// raw is what the store holds under name, nil for nothing.
func (s *replStore) raw(name string) []byte {
	s.mu.Lock()
	defer s.mu.Unlock()
	return bytes.Clone(s.secrets[name])
}

func keyID(t *testing.T, token string) string {
	t.Helper()
	parts := strings.Split(token, ".")
	if len(parts) != 4 || parts[0] != "v2" {
		t.Fatalf("token %q is not v2.<key id>.payload.mac", token)
	}
	return parts[1]
}

// TestRotateKeys: after a rotation on one node, new tokens and codes use
// the new key on every node, and tokens and codes of the old key stay
// valid until they expire.
func TestRotateKeys(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	st := newReplStore(t)
	a := h.newService(t, st, DefaultConfig())
	b := h.newService(t, st, DefaultConfig())
	h.svc = a
	old := h.signIn(t, testPhone(600))
	if id := keyID(t, old.AccessToken); id != "1" {
		t.Fatalf("first key id %s, want 1", id)
	}
	pending := testPhone(601)
	if _, err := a.RequestCode(ctx, pending, "192.0.2.1"); err != nil {
		t.Fatal(err)
	}
	pendingCode := h.sms.lastCode(t, pending)

	id, err := a.RotateKeys(ctx)
	if err != nil || id != 2 {
		t.Fatalf("RotateKeys = %d, %v; want 2", id, err)
	}
	fresh := h.signIn(t, testPhone(602))
	if id := keyID(t, fresh.AccessToken); id != "2" {
		t.Fatalf("key id after rotation %s, want 2", id)
	}
	reads := st.ringReads.Load()
	for name, svc := range map[string]*Service{"a": a, "b": b} {
		for _, tok := range []string{old.AccessToken, fresh.AccessToken} {
			if _, err := svc.Authenticate(ctx, tok); err != nil {
				t.Errorf("node %s, key %s: %v", name, keyID(t, tok), err)
			}
		}
	}
	if n := st.ringReads.Load() - reads; n != 1 {
		t.Errorf("node b read the ring %d times to learn the new key, want 1", n)
	}
	// b learnt the new key from the token and signs with it too.
	h.svc = b
	if id := keyID(t, h.signIn(t, testPhone(603)).AccessToken); id != "2" {
		t.Errorf("node b signs with key %s, want 2", id)
	}
	// A code hashed with the old key still verifies, on either node.
	if _, err := b.Verify(ctx, verifyRequest(pending, pendingCode, "", ""), "192.0.2.1"); err != nil {
		t.Fatalf("code sent before the rotation: %v", err)
	}

	// Old tokens expire as ever; once the retired key is past what it
	// signed could live, the next rotation drops it.
	h.clock.Advance(15 * time.Minute)
	_, err = a.Authenticate(ctx, old.AccessToken)
	wantCode(t, err, wire.CodeUnauthorized)
	h.clock.Advance(10 * time.Minute)
	if id, err := b.RotateKeys(ctx); err != nil || id != 3 {
		t.Fatalf("second RotateKeys = %d, %v", id, err)
	}
	if r := b.ring.Load(); len(r.keys) != 2 || r.keys[0].id != 2 {
		t.Errorf("ring after the second rotation has keys from %d, %d keys; want 2 and 3", r.keys[0].id, len(r.keys))
	}
}

// TestNodePicksUpRotationWithinAMinute: a node that meets no token of the
// new key still moves to it when it rereads the ring.
func TestNodePicksUpRotationWithinAMinute(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	st := newReplStore(t)
	a := h.newService(t, st, DefaultConfig())
	b := h.newService(t, st, DefaultConfig())
	if _, err := a.RotateKeys(ctx); err != nil {
		t.Fatal(err)
	}
	h.svc = b
	if id := keyID(t, h.signIn(t, testPhone(610)).AccessToken); id != "1" {
		t.Fatalf("b signs with %s before rereading, want 1", id)
	}
	h.clock.Advance(time.Minute)
	if id := keyID(t, h.signIn(t, testPhone(611)).AccessToken); id != "2" {
		t.Fatalf("b signs with %s a minute after the rotation, want 2", id)
	}
}

// TestUnknownKeyIDsCostOneReadEach2s: tokens naming keys nobody has make a
// node read the ring at most once per ringRetryEvery, and never for ids it
// already passed.
func TestUnknownKeyIDsCostOneReadEach2s(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	st := newReplStore(t)
	svc := h.newService(t, st, DefaultConfig())
	forged := signAccessToken(&ringKey{id: 99, access: make([]byte, 32)}, Claims{UserID: "u", DeviceID: "d", Expires: h.clock.Now().Add(time.Hour)})
	reads := st.ringReads.Load()
	for i := 0; i < 100; i++ {
		_, err := svc.Authenticate(ctx, forged)
		wantCode(t, err, wire.CodeUnauthorized)
	}
	if n := st.ringReads.Load() - reads; n != 1 {
		t.Errorf("100 tokens of an unknown key cost %d ring reads, want 1", n)
	}
	h.clock.Advance(ringRetryEvery)
	_, err := svc.Authenticate(ctx, forged)
	wantCode(t, err, wire.CodeUnauthorized)
	if n := st.ringReads.Load() - reads; n != 2 {
		t.Errorf("after %v: %d ring reads, want 2", ringRetryEvery, n)
	}
}

func TestConcurrentRotations(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	st := newReplStore(t)
	nodes := []*Service{h.newService(t, st, DefaultConfig()), h.newService(t, st, DefaultConfig()), h.newService(t, st, DefaultConfig())}
	var wg sync.WaitGroup
	ids := make([]uint32, len(nodes))
	for i, n := range nodes {
		wg.Go(func() {
			var err error
			if ids[i], err = n.RotateKeys(ctx); err != nil {
				t.Errorf("node %d: %v", i, err)
			}
		})
	}
	wg.Wait()
	seen := map[uint32]bool{}
	for _, id := range ids {
		seen[id] = true
	}
	if len(seen) != 3 || !seen[2] || !seen[3] || !seen[4] {
		t.Fatalf("concurrent rotations made keys %v, want 2, 3 and 4", ids)
	}
}

// legacyState writes what the version before the key ring left in the
// store: its two secrets, a device with a v1 access token and a pending
// code hashed the old way. It returns the token, the phone and the code.
func legacyState(t *testing.T, h *harness, st Store) (sign, codeKey []byte, token, phone, code string) {
	t.Helper()
	sign = bytes.Repeat([]byte("S"), 32)
	codeKey = bytes.Repeat([]byte("C"), 32)
	for name, v := range map[string][]byte{secretSigningKey: sign, secretCodeKey: codeKey} {
		if _, err := st.Secret(ctx, name, v); err != nil {
			t.Fatal(err)
		}
	}
	now := h.clock.Now()
	u, _, err := st.EnsureUser(ctx, testPhone(620), "uold", now)
	if err != nil {
		t.Fatal(err)
	}
	if err := st.CreateDevice(ctx, store.Device{ID: "dold", UserID: u.ID, CreatedAt: now, RefreshHash: make([]byte, 32), RefreshExpires: now.Add(time.Hour)}); err != nil {
		t.Fatal(err)
	}
	legacy := newRingKey(storedKey{ID: 1, Legacy: true, Sign: sign, Code: codeKey})
	token = signAccessTokenV1(legacy, Claims{UserID: u.ID, DeviceID: "dold", Expires: now.Add(10 * time.Minute)})
	phone, code = testPhone(621), "424242"
	if err := st.PutCode(ctx, store.Code{Phone: phone, Hash: codeMAC(codeKey, phone, code), ExpiresAt: now.Add(5 * time.Minute), SentAt: now}); err != nil {
		t.Fatal(err)
	}
	return sign, codeKey, token, phone, code
}

// TestUpgradeKeepsSessionsAndCodes: the first start of the key ring takes
// over the stored keys: v1 tokens and pending codes stay valid.
func TestUpgradeKeepsSessionsAndCodes(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	st := openStore(t)
	sign, _, token, phone, code := legacyState(t, h, st)
	svc := h.newService(t, st, DefaultConfig())
	if c, err := svc.Authenticate(ctx, token); err != nil || c.DeviceID != "dold" {
		t.Fatalf("v1 token after the upgrade: %+v, %v", c, err)
	}
	if _, err := svc.Verify(ctx, verifyRequest(phone, code, "", ""), "192.0.2.1"); err != nil {
		t.Fatalf("code sent before the upgrade: %v", err)
	}
	if r := svc.ring.Load(); !r.stored.Keys[0].Legacy || !bytes.Equal(r.stored.Keys[0].Sign, sign) {
		t.Error("the ring's first key is not the stored signing key")
	}
	// Without a master key the ring is stored in the clear (documented).
	blob, err := st.Secret(ctx, secretKeyRing, []byte("x"))
	if err != nil || !bytes.HasPrefix(blob, []byte("{")) {
		t.Errorf("ring without a master key = %.20q, %v; want JSON", blob, err)
	}
}

// TestMasterKeySealsKeys: with a master key, the keys from before are
// sealed at the first start and removed from where they were in the clear,
// their tokens and codes still work, and the store is of no use without the
// master key.
func TestMasterKeySealsKeys(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	st := newReplStore(t)
	sign, codeKey, token, phone, code := legacyState(t, h, st)
	master := bytes.Repeat([]byte{7}, 32)
	svc, err := New(ctx, st, h.sms, DefaultConfig(), Options{Now: h.clock.Now, MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	blob := st.raw(secretKeyRing)
	if !bytes.HasPrefix(blob, []byte(seal.Prefix)) {
		t.Fatalf("ring stored as %.30q, want sealed", blob)
	}
	for name, v := range map[string][]byte{secretSigningKey: sign, secretCodeKey: codeKey} {
		if got := st.raw(name); string(got) != legacyMoved {
			t.Errorf("%s holds %q after sealing, want the marker", name, got)
		}
		for _, enc := range [][]byte{v, []byte(base64.StdEncoding.EncodeToString(v))} {
			if bytes.Contains(blob, enc) {
				t.Errorf("the sealed ring shows %s", name)
			}
		}
	}
	if _, err := svc.Authenticate(ctx, token); err != nil {
		t.Fatalf("v1 token after sealing: %v", err)
	}
	if _, err := svc.Verify(ctx, verifyRequest(phone, code, "", ""), "192.0.2.1"); err != nil {
		t.Fatalf("code from before sealing: %v", err)
	}
	if id, err := svc.RotateKeys(ctx); err != nil || id != 2 {
		t.Fatalf("RotateKeys = %d, %v", id, err)
	}
	if !bytes.HasPrefix(st.raw(secretKeyRing), []byte(seal.Prefix)) {
		t.Fatal("ring unsealed by a rotation")
	}

	if _, err := New(ctx, st, h.sms, DefaultConfig(), Options{Now: h.clock.Now}); err == nil {
		t.Error("New without the master key started on a sealed store")
	}
	if _, err := New(ctx, st, h.sms, DefaultConfig(), Options{Now: h.clock.Now, MasterKey: bytes.Repeat([]byte{8}, 32)}); err == nil {
		t.Error("New with another master key started")
	}
	again, err := New(ctx, st, h.sms, DefaultConfig(), Options{Now: h.clock.Now, MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := again.Authenticate(ctx, token); err != nil {
		t.Fatalf("v1 token after a restart: %v", err)
	}
}

// TestMasterKeyAddedLater: a ring stored in the clear is sealed when the
// master key is first given.
func TestMasterKeyAddedLater(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	st := newReplStore(t)
	svc := h.newService(t, st, DefaultConfig())
	h.svc = svc
	s := h.signIn(t, testPhone(630))
	if bytes.HasPrefix(st.raw(secretKeyRing), []byte(seal.Prefix)) {
		t.Fatal("sealed without a master key")
	}
	sealed, err := New(ctx, st, h.sms, DefaultConfig(), Options{Now: h.clock.Now, MasterKey: bytes.Repeat([]byte{9}, 32)})
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.HasPrefix(st.raw(secretKeyRing), []byte(seal.Prefix)) {
		t.Fatal("the ring stayed in the clear")
	}
	if _, err := sealed.Authenticate(ctx, s.AccessToken); err != nil {
		t.Fatal(err)
	}
}

// TestMasterKeyOnFreshStore: a new install seals its ring, and writes no
// key in the clear.
func TestMasterKeyOnFreshStore(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	st := openStore(t)
	master := bytes.Repeat([]byte{1}, 32)
	svc, err := New(ctx, st, h.sms, DefaultConfig(), Options{Now: h.clock.Now, MasterKey: master})
	if err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{secretSigningKey, secretCodeKey} {
		if v, _ := st.Secret(ctx, name, []byte("probe")); string(v) != legacyMoved {
			t.Errorf("%s = %q, want the marker", name, v)
		}
	}
	if v, _ := st.Secret(ctx, secretKeyRing, []byte("probe")); !bytes.HasPrefix(v, []byte(seal.Prefix)) {
		t.Errorf("ring = %.30q, want sealed", v)
	}
	h.svc = svc
	s := h.signIn(t, testPhone(640))
	if _, err := svc.Authenticate(ctx, s.AccessToken); err != nil {
		t.Fatal(err)
	}
	if _, err := New(ctx, st, h.sms, DefaultConfig(), Options{MasterKey: master[:16]}); err == nil {
		t.Error("New accepted a 16-byte master key")
	}
}

// TestV1TokensNeedLegacyKey: on a new install no v1 token verifies, since
// no key ever signed one.
func TestV1TokensNeedLegacyKey(t *testing.T) {
	h := newHarness(t, DefaultConfig())
	s := h.signIn(t, testPhone(650))
	r := h.svc.ring.Load()
	if r.legacyKey() != nil {
		t.Fatal("a new install has a legacy key")
	}
	k := *r.newest()
	k.accessV1 = derive(make([]byte, 32), "tern access token v1")
	c, err := h.svc.Authenticate(ctx, s.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	_, err = h.svc.Authenticate(ctx, signAccessTokenV1(&k, c))
	wantCode(t, err, wire.CodeUnauthorized)
}
