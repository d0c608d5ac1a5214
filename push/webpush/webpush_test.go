package webpush_test

import (
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/internal/safehttp"
	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/push/webpush"
	"github.com/tern-im/tern/push/webpush/webpushtest"
)

func newNotifier(t *testing.T, cfg webpush.Config, r *webpushtest.Receiver) *webpush.Notifier {
	t.Helper()
	cfg.HTTPClient = r.Client() // trusts the receiver's test certificate
	n, err := webpush.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// receiver starts a receiver that expects keys and the subscriber
// ops@tern.test.
func receiver(t *testing.T, keys webpush.VAPIDKeys) *webpushtest.Receiver {
	t.Helper()
	r := webpushtest.Start(t)
	r.ExpectVAPID(keys.Public)
	r.ExpectSubscriber("mailto:ops@tern.test")
	return r
}

func setup(t *testing.T) (*webpush.Notifier, *webpushtest.Receiver) {
	t.Helper()
	keys, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := receiver(t, keys)
	return newNotifier(t, webpush.Config{VAPID: keys, Subscriber: "ops@tern.test"}, r), r
}

func TestMessageIsDecryptable(t *testing.T) {
	n, r := setup(t)
	sub := r.NewSubscription(t)
	err := n.Notify(t.Context(), push.Notification{UserID: "u2", DeviceID: "d2", Provider: push.ProviderWebPush,
		Token: sub.Token(), Kind: push.KindMessage, ChatID: "c-42", MsgID: "m-7", From: "u1", Text: "héllo <there> & \"you\""})
	if err != nil {
		t.Fatal(err)
	}
	got := r.ReceivedBy(sub)
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("deliveries %v, want 1 that decrypts", got)
	}
	d := got[0]
	want := map[string]string{"type": "message", "chat_id": "c-42", "msg_id": "m-7", "sender": "u1", "text": "héllo <there> & \"you\""}
	if fmt.Sprint(d.Payload) != fmt.Sprint(want) {
		t.Errorf("payload %v, want %v", d.Payload, want)
	}
	h := d.Header
	if h.Get("Content-Encoding") != "aes128gcm" || h.Get("Urgency") != "high" || d.Urgency != "high" ||
		h.Get("TTL") != strconv.Itoa(int(push.MessageTTL/time.Second)) || d.TTL != h.Get("TTL") {
		t.Errorf("headers %v", h)
	}
	topic := h.Get("Topic")
	if topic != push.CollapseID("c-42") || len(topic) > 32 || d.Topic != topic {
		t.Errorf("Topic %q, want %q", topic, push.CollapseID("c-42"))
	}
	if d.Endpoint != sub.Endpoint || d.Status != http.StatusCreated || r.Attempts(sub) != 1 {
		t.Errorf("push to %s answered %d after %d attempts", d.Endpoint, d.Status, r.Attempts(sub))
	}
}

func TestReceiptAndNoPreview(t *testing.T) {
	n, r := setup(t)
	sub := r.NewSubscription(t)
	tok := sub.Token()
	ctx := t.Context()
	if err := n.Notify(ctx, push.Notification{Token: tok, Kind: push.KindReceipt, ChatID: "c-1", MsgID: "m-1"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c-1", MsgID: "m-2", From: "u1"}); err != nil {
		t.Fatal(err)
	}
	got := r.ReceivedBy(sub)
	if len(got) != 2 || got[0].Err != nil || got[1].Err != nil {
		t.Fatalf("deliveries %v", got)
	}
	rc, msg := got[0], got[1]
	if rc.Payload["type"] != "receipt" || rc.Urgency != "normal" ||
		rc.TTL != strconv.Itoa(int(push.OtherTTL/time.Second)) {
		t.Errorf("receipt: %v", rc)
	}
	if _, ok := msg.Payload["text"]; ok || msg.Payload["msg_id"] != "m-2" || msg.Urgency != "high" {
		t.Errorf("message without preview: %v", msg)
	}
	if rc.Topic != msg.Topic {
		t.Errorf("two pushes for one chat have topics %q and %q", rc.Topic, msg.Topic)
	}
}

func TestLongTextFits(t *testing.T) {
	n, r := setup(t)
	sub := r.NewSubscription(t)
	// Control characters take six bytes each in JSON: the text must be cut
	// further than push.MaxText to fit one record.
	text := strings.Repeat("\x01", push.MaxText)
	if err := n.Notify(t.Context(), push.Notification{Token: sub.Token(), Kind: push.KindMessage, ChatID: "c", Text: text}); err != nil {
		t.Fatal(err)
	}
	got := r.ReceivedBy(sub)
	if len(got) != 1 || got[0].Err != nil {
		t.Fatalf("deliveries %v", got)
	}
	if s := got[0].Payload["text"]; s == "" || !strings.HasPrefix(text, s) {
		t.Errorf("text of %d bytes arrived as %d bytes", len(text), len(s))
	}
}

func TestErrorMapping(t *testing.T) {
	n, r := setup(t)
	ctx := t.Context()
	notify := func(tok string) error {
		return n.Notify(ctx, push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c"})
	}
	failing := func(f webpushtest.Failure) push.Subscription {
		sub := r.NewSubscription(t)
		r.Fail(sub, f)
		return sub
	}
	gone := r.NewSubscription(t)
	r.Gone(gone)
	missing := failing(webpushtest.Failure{Status: http.StatusNotFound, Times: webpushtest.Always})
	for name, sub := range map[string]push.Subscription{"gone": gone, "missing": missing} {
		if err := notify(sub.Token()); !errors.Is(err, push.ErrUnregistered) || errors.Is(err, push.ErrTemporary) {
			t.Errorf("%s: %v, want ErrUnregistered", name, err)
		}
	}
	busy := failing(webpushtest.Failure{Status: http.StatusServiceUnavailable, Times: webpushtest.Always, RetryAfter: 2 * time.Minute})
	err := notify(busy.Token())
	if d, ok := push.RetryAfter(err); !ok || d != 2*time.Minute || errors.Is(err, push.ErrUnregistered) {
		t.Errorf("busy: %v (retry after %v), want ErrTemporary after 2m", err, d)
	}
	slow := failing(webpushtest.Failure{Status: http.StatusTooManyRequests, Times: webpushtest.Always})
	if err := notify(slow.Token()); !errors.Is(err, push.ErrTemporary) {
		t.Errorf("slow: %v, want ErrTemporary", err)
	}
	bad := failing(webpushtest.Failure{Status: http.StatusBadRequest, Times: webpushtest.Always})
	err = notify(bad.Token())
	if err == nil || errors.Is(err, push.ErrTemporary) || errors.Is(err, push.ErrUnregistered) {
		t.Errorf("bad: %v, want a permanent error", err)
	}
	if got := r.Received(); len(got) != 0 {
		t.Errorf("failed pushes were received: %v", got)
	}
	for name, sub := range map[string]push.Subscription{"gone": gone, "missing": missing, "busy": busy, "slow": slow, "bad": bad} {
		if got := r.Attempts(sub); got != 1 {
			t.Errorf("%s: %d attempts, want 1", name, got)
		}
	}
	// Subscriptions that can never work are dropped without a request.
	plain := r.NewSubscription(t)
	insecure := strings.Replace(plain.Token(), "https://", "http://", 1)
	for name, tok := range map[string]string{"fcm token": "dGhpcyBpcyBub3QgSlNPTg", "http endpoint": insecure, "empty": ""} {
		if err := notify(tok); !errors.Is(err, push.ErrUnregistered) {
			t.Errorf("%s: %v, want ErrUnregistered", name, err)
		}
	}
	if got := r.ReceivedBy(plain); len(got) != 0 || r.Attempts(plain) != 0 {
		t.Errorf("an http endpoint was pushed to")
	}
}

func TestFailNextRecovers(t *testing.T) {
	n, r := setup(t)
	sub := r.NewSubscription(t)
	r.FailNext(sub, http.StatusServiceUnavailable, 2)
	notify := func() error {
		return n.Notify(t.Context(), push.Notification{Token: sub.Token(), Kind: push.KindMessage, ChatID: "c"})
	}
	for i := range 2 {
		if err := notify(); !errors.Is(err, push.ErrTemporary) {
			t.Errorf("attempt %d: %v, want ErrTemporary", i+1, err)
		}
	}
	if err := notify(); err != nil {
		t.Errorf("after two failures: %v", err)
	}
	if got := r.ReceivedBy(sub); len(got) != 1 || got[0].Err != nil || r.Attempts(sub) != 3 {
		t.Errorf("deliveries %v after %d attempts, want 1 after 3", got, r.Attempts(sub))
	}
}

func TestVAPIDChecked(t *testing.T) {
	keys, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	other, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := receiver(t, other)
	r.ReportErrors(false)
	n := newNotifier(t, webpush.Config{VAPID: keys, Subscriber: "ops@tern.test"}, r)
	sub := r.NewSubscription(t)
	notify := func() error {
		return n.Notify(t.Context(), push.Notification{Token: sub.Token(), Kind: push.KindMessage, ChatID: "c"})
	}
	// The wrong key is refused as a push service would, with 403: a
	// permanent error.
	if err := notify(); err == nil || errors.Is(err, push.ErrTemporary) || errors.Is(err, push.ErrUnregistered) {
		t.Errorf("wrong VAPID key: %v, want a permanent error", err)
	}
	// The right key with the wrong contact: 401.
	r.ExpectVAPID(keys.Public)
	r.ExpectSubscriber("mailto:someone@tern.test")
	if err := notify(); err == nil {
		t.Errorf("wrong VAPID sub: accepted")
	}
	r.ExpectSubscriber("mailto:ops@tern.test")
	if err := notify(); err != nil {
		t.Errorf("right VAPID key and sub: %v", err)
	}
	got := r.ReceivedBy(sub)
	if len(got) != 3 || got[0].Status != http.StatusForbidden || got[0].Err == nil ||
		got[1].Status != http.StatusUnauthorized || got[1].Err == nil || got[2].Err != nil || got[2].Payload == nil {
		t.Errorf("deliveries %v", got)
	}
}

func TestUnreachableIsTemporary(t *testing.T) {
	n, r := setup(t)
	tok := r.NewSubscription(t).Token()
	r.Close()
	err := n.Notify(t.Context(), push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c"})
	if !errors.Is(err, push.ErrTemporary) {
		t.Errorf("closed server: %v, want ErrTemporary", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := n.Notify(ctx, push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c"}); !errors.Is(err, push.ErrTemporary) {
		t.Errorf("cancelled: %v, want ErrTemporary", err)
	}
}

// TestForbiddenAddressIsUnregistered: an endpoint that the node's client
// refuses to dial (here loopback, as a name that resolves to a private
// address after it was registered would be) is dropped for good, not
// retried: no request reaches it.
func TestForbiddenAddressIsUnregistered(t *testing.T) {
	keys, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := receiver(t, keys)
	n, err := webpush.New(webpush.Config{VAPID: keys, Subscriber: "ops@tern.test", HTTPClient: safehttp.NewClient(safehttp.Options{})})
	if err != nil {
		t.Fatal(err)
	}
	sub := r.NewSubscription(t)
	err = n.Notify(t.Context(), push.Notification{Token: sub.Token(), Kind: push.KindMessage, ChatID: "c"})
	if !errors.Is(err, push.ErrUnregistered) || errors.Is(err, push.ErrTemporary) || !errors.Is(err, safehttp.ErrForbiddenAddress) {
		t.Errorf("loopback endpoint: %v, want ErrUnregistered (and not temporary)", err)
	}
	if got := r.Attempts(sub); got != 0 {
		t.Errorf("%d requests reached the loopback endpoint, want none", got)
	}
}

func TestNotifyAll(t *testing.T) {
	keys, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := receiver(t, keys)
	// mailto: given or not, the token's sub is the same.
	n := newNotifier(t, webpush.Config{VAPID: keys, Subscriber: "mailto:ops@tern.test", Concurrency: 4}, r)
	ns := make([]push.Notification, 30)
	subs := make([]push.Subscription, len(ns))
	for i := range ns {
		subs[i] = r.NewSubscription(t)
		ns[i] = push.Notification{Token: subs[i].Token(), Kind: push.KindMessage,
			ChatID: fmt.Sprint("c", i%3), MsgID: fmt.Sprint("m", i)}
	}
	r.Gone(subs[11])
	done := make(chan []error, 1)
	go func() { done <- n.NotifyAll(context.Background(), ns) }()
	if got := r.WaitReceived(t, len(ns)-1, 30*time.Second); len(got) != len(ns)-1 {
		t.Errorf("received %d pushes, want %d", len(got), len(ns)-1)
	}
	errs := <-done
	if len(errs) != len(ns) {
		t.Fatalf("%d results for %d notifications", len(errs), len(ns))
	}
	for i, err := range errs {
		if i == 11 {
			if !errors.Is(err, push.ErrUnregistered) {
				t.Errorf("11: %v, want ErrUnregistered", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		got := r.WaitReceivedBy(t, subs[i], 1, time.Second)
		if len(got) != 1 || got[0].Err != nil || got[0].Payload["msg_id"] != ns[i].MsgID {
			t.Errorf("b%d: deliveries %v", i, got)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	a, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	b, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("GenerateKeys made the same pair twice")
	}
	pub, _ := base64.RawURLEncoding.DecodeString(a.Public)
	priv, _ := base64.RawURLEncoding.DecodeString(a.Private)
	if len(pub) != 65 || pub[0] != 4 || len(priv) != 32 {
		t.Errorf("key sizes %d/%d, want 65 (uncompressed) and 32", len(pub), len(priv))
	}
	padded := webpush.VAPIDKeys{Public: base64.URLEncoding.EncodeToString(pub), Private: base64.URLEncoding.EncodeToString(priv)}
	if _, err := webpush.New(webpush.Config{VAPID: padded, Subscriber: "https://tern.test/contact"}); err != nil {
		t.Errorf("padded keys, https contact: %v", err)
	}
	for name, cfg := range map[string]webpush.Config{
		"mismatched pair": {VAPID: webpush.VAPIDKeys{Public: a.Public, Private: b.Private}, Subscriber: "ops@tern.test"},
		"no private key":  {VAPID: webpush.VAPIDKeys{Public: a.Public}, Subscriber: "ops@tern.test"},
		"no subscriber":   {VAPID: a},
		"bad subscriber":  {VAPID: a, Subscriber: "ops"},
	} {
		if _, err := webpush.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
