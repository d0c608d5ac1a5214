package auth

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"regexp"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/store/embedded"
	"github.com/tern-im/tern/wire"
)

// outbox records the SMS a Service sends, and can be told to fail.
type outbox struct {
	mu   sync.Mutex
	msgs []sentSMS
	fail error
}

type sentSMS struct{ to, text string }

func (o *outbox) Send(ctx context.Context, to, text string) error {
	o.mu.Lock()
	defer o.mu.Unlock()
	if o.fail != nil {
		return o.fail
	}
	o.msgs = append(o.msgs, sentSMS{to, text})
	return nil
}

func (o *outbox) setFail(err error) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.fail = err
}

func (o *outbox) count() int {
	o.mu.Lock()
	defer o.mu.Unlock()
	return len(o.msgs)
}

var codeInText = regexp.MustCompile(`\b(\d{6})\b`)

// lastCode is the code of the last SMS sent to phone.
func (o *outbox) lastCode(t *testing.T, phone string) string {
	t.Helper()
	o.mu.Lock()
	defer o.mu.Unlock()
	for i := len(o.msgs) - 1; i >= 0; i-- {
		if o.msgs[i].to == phone {
			m := codeInText.FindStringSubmatch(o.msgs[i].text)
			if m == nil {
				t.Fatalf("SMS to %s has no 6-digit code: %q", phone, o.msgs[i].text)
			}
			return m[1]
		}
	}
	t.Fatalf("no SMS was sent to %s", phone)
	return ""
}

// clock is a settable time source, so tests move time instead of sleeping.
type clock struct {
	mu sync.Mutex
	t  time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.t
}

func (c *clock) Advance(d time.Duration) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.t = c.t.Add(d)
}

// revocations records OnRevoke calls.
type revocations struct {
	mu    sync.Mutex
	calls []string
}

func (r *revocations) record(userID, deviceID string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.calls = append(r.calls, userID+"/"+deviceID)
}

func (r *revocations) list() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.calls...)
}

type harness struct {
	svc     *Service
	st      *embedded.Store
	sms     *outbox
	clock   *clock
	revoked *revocations
}

func openStore(t testing.TB) *embedded.Store {
	t.Helper()
	st, err := embedded.Open(context.Background(), t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatalf("open store: %v", err)
	}
	t.Cleanup(func() {
		if err := st.Close(); err != nil {
			t.Errorf("close store: %v", err)
		}
	})
	return st
}

func newHarness(t testing.TB, cfg Config) *harness {
	t.Helper()
	h := &harness{
		st:      openStore(t),
		sms:     &outbox{},
		clock:   &clock{t: time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)},
		revoked: &revocations{},
	}
	h.svc = h.newService(t, h.st, cfg)
	return h
}

func (h *harness) newService(t testing.TB, st Store, cfg Config) *Service {
	t.Helper()
	svc, err := New(context.Background(), st, h.sms, cfg, Options{Now: h.clock.Now, OnRevoke: h.revoked.record})
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return svc
}

// signIn requests a code for phone and verifies it.
func (h *harness) signIn(t *testing.T, phone string) wire.Session {
	t.Helper()
	ctx := context.Background()
	if _, err := h.svc.RequestCode(ctx, phone, "192.0.2.1"); err != nil {
		t.Fatalf("RequestCode(%s): %v", phone, err)
	}
	s, err := h.svc.Verify(ctx, wire.VerifyRequest{Phone: phone, Code: h.sms.lastCode(t, phone), DeviceName: "test", Platform: "web"}, "192.0.2.1")
	if err != nil {
		t.Fatalf("Verify(%s): %v", phone, err)
	}
	return s
}

// wantCode fails unless err is a *wire.Error with code.
func wantCode(t *testing.T, err error, code string) *wire.Error {
	t.Helper()
	var we *wire.Error
	if !errors.As(err, &we) {
		t.Fatalf("error = %v (%T), want *wire.Error %s", err, err, code)
	}
	if we.Code != code {
		t.Fatalf("error code = %s (%v), want %s", we.Code, we, code)
	}
	if code == wire.CodeRateLimited && we.RetryAfter <= 0 {
		t.Fatalf("rate_limited without retry_after: %v", we)
	}
	return we
}

// testPhone returns distinct valid UK mobile numbers in E.164 form.
func testPhone(i int) string { return fmt.Sprintf("+447911%06d", i) }

// wrongCode is a well-formed code that differs from code.
func wrongCode(code string) string {
	if code == "000000" {
		return "000001"
	}
	return "000000"
}

func verifyRequest(phone, code, name, platform string) wire.VerifyRequest {
	return wire.VerifyRequest{Phone: phone, Code: code, DeviceName: name, Platform: platform}
}

// wireCode is err's wire code, "" when it is not a *wire.Error.
func wireCode(err error) string {
	var we *wire.Error
	if errors.As(err, &we) {
		return we.Code
	}
	return ""
}

// signAccessTokenV1 signs c as the version before the key ring did, with
// the ring's legacy key.
func signAccessTokenV1(k *ringKey, c Claims) string {
	signed := accessPrefixV1 + marshalPayload(c)
	return signed + "." + b64.EncodeToString(accessMAC(k.accessV1, signed))
}

// fixedRing is a ring of n keys with fixed bytes; with legacy, the first is
// the legacy key.
func fixedRing(t testing.TB, legacy bool, n int) *keyRing {
	t.Helper()
	sr := storedRing{Format: ringFormat}
	for i := 1; i <= n; i++ {
		sr.Keys = append(sr.Keys, storedKey{
			ID:      uint32(i),
			Created: time.Date(2026, 1, i, 0, 0, 0, 0, time.UTC),
			Legacy:  legacy && i == 1,
			Sign:    bytes.Repeat([]byte{byte(i)}, 32),
			Code:    bytes.Repeat([]byte{byte(100 + i)}, 32),
		})
	}
	blob, err := encodeRing(sr, nil)
	if err != nil {
		t.Fatal(err)
	}
	r, err := decodeRing(blob, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}
