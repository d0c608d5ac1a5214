package push_test

import (
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"
	"unicode/utf8"

	"github.com/tern-im/tern/push"
	pushlog "github.com/tern-im/tern/push/log"
)

func TestData(t *testing.T) {
	n := push.Notification{Kind: push.KindMessage, ChatID: "c1", MsgID: "m1", From: "u1", Text: "hi"}
	want := map[string]string{"type": "message", "chat_id": "c1", "msg_id": "m1", "sender": "u1", "text": "hi"}
	if got := push.Data(n); !maps.Equal(got, want) {
		t.Errorf("Data = %v, want %v", got, want)
	}
	r := push.Notification{Kind: push.KindReceipt, ChatID: "c1"}
	want = map[string]string{"type": "receipt", "chat_id": "c1"}
	if got := push.Data(r); !maps.Equal(got, want) {
		t.Errorf("Data(receipt) = %v, want %v", got, want)
	}
}

func TestDataCutsText(t *testing.T) {
	long := strings.Repeat("é", push.MaxText) // two bytes each
	got := push.Data(push.Notification{Kind: push.KindMessage, Text: long})[push.KeyText]
	if len(got) > push.MaxText || !utf8.ValidString(got) || !strings.HasPrefix(long, got) || len(got) < push.MaxText-1 {
		t.Errorf("text cut to %d bytes (valid UTF-8: %v)", len(got), utf8.ValidString(got))
	}
}

func TestTruncate(t *testing.T) {
	for _, c := range []struct {
		s    string
		max  int
		want string
	}{
		{"abc", 5, "abc"},
		{"abc", 2, "ab"},
		{"aé", 2, "a"},
		{"a😀b", 4, "a"},
		{"a😀b", 5, "a😀"},
		{"😀", 0, ""},
	} {
		if got := push.Truncate(c.s, c.max); got != c.want {
			t.Errorf("Truncate(%q, %d) = %q, want %q", c.s, c.max, got, c.want)
		}
	}
}

func TestPriorityAndTTL(t *testing.T) {
	msg := push.Notification{Kind: push.KindMessage}
	rcpt := push.Notification{Kind: push.KindReceipt}
	if msg.EffectivePriority() != push.PriorityHigh || !msg.High() {
		t.Errorf("message priority %q", msg.EffectivePriority())
	}
	if rcpt.EffectivePriority() != push.PriorityNormal || rcpt.High() {
		t.Errorf("receipt priority %q", rcpt.EffectivePriority())
	}
	rcpt.Priority = push.PriorityHigh
	if !rcpt.High() {
		t.Error("an explicit priority is not kept")
	}
	if msg.TTL() <= rcpt.TTL() {
		t.Errorf("message TTL %v not above receipt TTL %v", msg.TTL(), rcpt.TTL())
	}
}

func TestCollapseID(t *testing.T) {
	a, b := push.CollapseID("chat-a"), push.CollapseID("chat-b")
	if a == b || a != push.CollapseID("chat-a") {
		t.Errorf("CollapseID not a stable function of the chat: %q %q", a, b)
	}
	for _, id := range []string{a, b, push.CollapseID(strings.Repeat("x", 500))} {
		if len(id) > 32 || strings.Trim(id, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_") != "" {
			t.Errorf("CollapseID %q is not at most 32 URL-safe characters", id)
		}
	}
}

func TestErrors(t *testing.T) {
	cause := errors.New("503")
	err := fmt.Errorf("adapter: %w", push.Temporary(cause, 3*time.Second))
	if !errors.Is(err, push.ErrTemporary) || !errors.Is(err, cause) {
		t.Errorf("%v: not ErrTemporary and its cause", err)
	}
	if errors.Is(err, push.ErrUnregistered) {
		t.Errorf("%v is ErrUnregistered", err)
	}
	if d, ok := push.RetryAfter(err); !ok || d != 3*time.Second {
		t.Errorf("RetryAfter = %v, %v", d, ok)
	}
	if _, ok := push.RetryAfter(push.ErrUnregistered); ok {
		t.Error("ErrUnregistered is temporary")
	}
	if d, ok := push.RetryAfter(push.ErrTemporary); !ok || d != 0 {
		t.Errorf("RetryAfter(ErrTemporary) = %v, %v", d, ok)
	}
}

func TestParseRetryAfter(t *testing.T) {
	now := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC)
	for _, c := range []struct {
		v    string
		want time.Duration
	}{
		{"", 0},
		{"120", 2 * time.Minute},
		{"-5", 0},
		{"soon", 0},
		{now.Add(90 * time.Second).Format(http.TimeFormat), 90 * time.Second},
		{now.Add(-time.Hour).Format(http.TimeFormat), 0},
		{"999999999", 24 * time.Hour},
	} {
		h := http.Header{}
		if c.v != "" {
			h.Set("Retry-After", c.v)
		}
		if got := push.ParseRetryAfter(h, now); got != c.want {
			t.Errorf("ParseRetryAfter(%q) = %v, want %v", c.v, got, c.want)
		}
	}
}

func TestSubscription(t *testing.T) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	rand.Read(auth)
	s := push.Subscription{Endpoint: "https://push.example/send/abc",
		Keys: push.SubscriptionKeys{
			P256dh: base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
			Auth:   base64.RawURLEncoding.EncodeToString(auth),
		}}
	got, err := push.ParseSubscription(s.Token())
	if err != nil || got != s {
		t.Fatalf("ParseSubscription(Token()) = %+v, %v", got, err)
	}
	// Padded keys, as some libraries write them, are fine too.
	padded := s
	padded.Keys.Auth = base64.URLEncoding.EncodeToString(auth)
	if _, err := push.ParseSubscription(padded.Token()); err != nil {
		t.Errorf("padded auth: %v", err)
	}
	for name, bad := range map[string]func(*push.Subscription){
		"http endpoint":  func(s *push.Subscription) { s.Endpoint = "http://push.example/x" },
		"no endpoint":    func(s *push.Subscription) { s.Endpoint = "" },
		"short auth":     func(s *push.Subscription) { s.Keys.Auth = "AAAA" },
		"not a point":    func(s *push.Subscription) { s.Keys.P256dh = base64.RawURLEncoding.EncodeToString(auth) },
		"not base64 key": func(s *push.Subscription) { s.Keys.P256dh = "!!" },
		"off the curve": func(s *push.Subscription) {
			p := append([]byte{4}, make([]byte, 64)...)
			p[64] = 1
			s.Keys.P256dh = base64.RawURLEncoding.EncodeToString(p)
		},
	} {
		b := s
		bad(&b)
		if _, err := push.ParseSubscription(b.Token()); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	if _, err := push.ParseSubscription("fcm-token"); err == nil {
		t.Error("a non-JSON token parsed as a subscription")
	}
}

// recorder is a Batcher that records what it got and fails the tokens it
// is told to.
type recorder struct {
	mu      sync.Mutex
	single  []string
	batches [][]string
	fail    map[string]error
}

func (r *recorder) Notify(_ context.Context, n push.Notification) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.single = append(r.single, n.Token)
	return r.fail[n.Token]
}

func (r *recorder) NotifyAll(_ context.Context, ns []push.Notification) []error {
	r.mu.Lock()
	defer r.mu.Unlock()
	var tokens []string
	errs := make([]error, len(ns))
	for i, n := range ns {
		tokens = append(tokens, n.Token)
		errs[i] = r.fail[n.Token]
	}
	r.batches = append(r.batches, tokens)
	return errs
}

// single hides the Batcher of a notifier.
type single struct{ push.Notifier }

func TestMux(t *testing.T) {
	ctx := context.Background()
	gone := fmt.Errorf("x: %w", push.ErrUnregistered)
	fcm := &recorder{fail: map[string]error{"f2": gone}}
	web := &recorder{fail: map[string]error{}}
	m := push.Mux{push.ProviderFCM: fcm, push.ProviderWebPush: single{web}, "log": pushlog.Notifier{Log: slog.New(slog.DiscardHandler)}}

	if err := m.Notify(ctx, push.Notification{Provider: "fcm", Token: "f1"}); err != nil {
		t.Fatal(err)
	}
	if err := m.Notify(ctx, push.Notification{Provider: "fcm", Token: "f2"}); !errors.Is(err, push.ErrUnregistered) {
		t.Errorf("Notify f2 = %v, want ErrUnregistered", err)
	}
	for _, p := range []string{"apns", ""} {
		if err := m.Notify(ctx, push.Notification{Provider: p, Token: "x"}); !errors.Is(err, push.ErrUnknownProvider) {
			t.Errorf("provider %q: %v, want ErrUnknownProvider", p, err)
		}
	}

	fcm.single, web.single = nil, nil
	ns := []push.Notification{
		{Provider: "webpush", Token: "w1"},
		{Provider: "fcm", Token: "f1"},
		{Provider: "nope", Token: "n1"},
		{Provider: "fcm", Token: "f2"},
		{Provider: "webpush", Token: "w2"},
		{Provider: "fcm", Token: "f3"},
		{Provider: "log", Kind: push.KindMessage},
	}
	errs := m.NotifyAll(ctx, ns)
	if len(errs) != len(ns) {
		t.Fatalf("%d errors for %d notifications", len(errs), len(ns))
	}
	for i, err := range errs {
		switch ns[i].Token {
		case "f2":
			if !errors.Is(err, push.ErrUnregistered) {
				t.Errorf("f2: %v", err)
			}
		case "n1":
			if !errors.Is(err, push.ErrUnknownProvider) || !strings.Contains(err.Error(), "nope") {
				t.Errorf("n1: %v", err)
			}
		default:
			if err != nil {
				t.Errorf("%s: %v", ns[i].Token, err)
			}
		}
	}
	if len(fcm.batches) != 1 || strings.Join(fcm.batches[0], ",") != "f1,f2,f3" || len(fcm.single) != 0 {
		t.Errorf("fcm got batches %v and singles %v, want one batch f1,f2,f3", fcm.batches, fcm.single)
	}
	if len(web.batches) != 0 || strings.Join(web.single, ",") != "w1,w2" {
		t.Errorf("webpush (no batcher) got batches %v and singles %v, want w1,w2 one at a time", web.batches, web.single)
	}
}

// short is a broken Batcher: it returns fewer results than notifications.
type short struct{ recorder }

func (s *short) NotifyAll(context.Context, []push.Notification) []error { return nil }

func TestNotifyAllGuardsBrokenBatcher(t *testing.T) {
	errs := push.NotifyAll(context.Background(), &short{}, make([]push.Notification, 3))
	if len(errs) != 3 || errs[0] == nil || errs[2] == nil {
		t.Errorf("errs = %v, want 3 errors", errs)
	}
}
