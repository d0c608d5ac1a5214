package push

import (
	"context"
	"crypto/ecdh"
	"crypto/sha256"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
	"unicode/utf8"
)

// Providers, as a device registers them with PUT /v1/devices/current/push.
const (
	ProviderFCM     = "fcm"
	ProviderWebPush = "webpush"
)

// Kinds of wake-up; they match the inbox event kinds of package store.
const (
	KindMessage = "message"
	KindReceipt = "receipt"
)

// Priorities. Only a message is worth waking a dozing device for at once:
// everything else can wait for the device's next maintenance window.
const (
	PriorityHigh   = "high"
	PriorityNormal = "normal"
)

// Time to live of a wake-up while the device is unreachable.
//
// A message stays in the inbox until the device acks it, so a wake-up that
// reaches a phone after three weeks switched off still makes it fetch and
// show the message: messages get FCM's maximum, four weeks. A receipt only
// turns ticks blue; the device sees it on its next connection anyway, so
// waking it for one an hour later is a waste of battery.
const (
	MessageTTL = 28 * 24 * time.Hour
	OtherTTL   = time.Hour
)

// MaxText is the most bytes of message text a payload carries. FCM refuses
// data payloads over 4096 bytes and a Web Push record holds about 4000; a
// preview needs far less than either.
const MaxText = 1024

// Notification asks one device to wake up.
type Notification struct {
	UserID   string
	DeviceID string
	// Provider names the adapter: ProviderFCM, ProviderWebPush, or any other
	// name a Mux is given.
	Provider string
	// Token is the device's push address exactly as stored: the FCM
	// registration token, or for ProviderWebPush the subscription as JSON
	// (see Subscription.Token and ParseSubscription). One string keeps the
	// device record and a durable queue of notifications simple.
	Token  string
	Kind   string // KindMessage, KindReceipt, or another inbox event kind
	ChatID string
	MsgID  string // optional
	From   string // optional: the sender's user id
	// Text is the message text. The caller fills it only when previews are
	// on: with it, the push service (Google, Mozilla, Apple) sees the text.
	Text string
	// Priority is PriorityHigh or PriorityNormal; empty means by Kind (see
	// EffectivePriority).
	Priority string
}

// EffectivePriority is n.Priority, or if it is empty the priority for n's
// kind: high for a message, normal for anything else.
func (n Notification) EffectivePriority() string {
	if n.Priority != "" {
		return n.Priority
	}
	if n.Kind == KindMessage {
		return PriorityHigh
	}
	return PriorityNormal
}

// High reports whether n should wake the device at once.
func (n Notification) High() bool { return n.EffectivePriority() == PriorityHigh }

// TTL is how long a push service should keep n for an unreachable device.
func (n Notification) TTL() time.Duration {
	if n.Kind == KindMessage {
		return MessageTTL
	}
	return OtherTTL
}

// Keys of the data payload.
//
// The sender is "sender", not "from": FCM's API reference forbids "from"
// (and "message_type", "google.*", "gcm.*") as a data key, and on Android
// the "from" of a received message is the FCM sender, not ours.
const (
	KeyType   = "type"
	KeyChatID = "chat_id"
	KeyMsgID  = "msg_id"
	KeySender = "sender"
	KeyText   = "text"
)

// Data is the payload of every push, whatever the provider: FCM sends it
// as the message's data map, Web Push as a JSON object. Empty optional
// fields are left out, and the text is cut to MaxText bytes.
func Data(n Notification) map[string]string {
	d := map[string]string{KeyType: n.Kind, KeyChatID: n.ChatID}
	if n.MsgID != "" {
		d[KeyMsgID] = n.MsgID
	}
	if n.From != "" {
		d[KeySender] = n.From
	}
	if n.Text != "" {
		d[KeyText] = Truncate(n.Text, MaxText)
	}
	return d
}

// Truncate cuts s to at most n bytes without splitting a UTF-8 sequence.
func Truncate(s string, n int) string {
	if len(s) <= n {
		return s
	}
	if n <= 0 {
		return ""
	}
	cut := n
	// Back up over continuation bytes to the start of the rune that
	// straddles the limit, so no half rune is left.
	for cut > 0 && !utf8.RuneStart(s[cut]) {
		cut--
	}
	return s[:cut]
}

// CollapseID is a short, stable, URL-safe stand-in for a chat id (24
// characters), for headers that limit length or characters, such as the
// Web Push Topic (at most 32 URL-safe characters). It also keeps the chat
// id itself from the push service.
func CollapseID(chatID string) string {
	sum := sha256.Sum256([]byte(chatID))
	return base64.RawURLEncoding.EncodeToString(sum[:18])
}

// Notifier sends wake-ups.
//
// Notify's error, if any, says what the caller should do: errors.Is
// ErrUnregistered means the token is gone for good (forget it), errors.Is
// ErrTemporary means try again later (see RetryAfter); anything else is a
// permanent failure of this one notification (a bad message or bad
// credentials) that trying again will not fix.
type Notifier interface {
	Notify(ctx context.Context, n Notification) error
}

// Batcher is a Notifier that can send many notifications in one go.
// NotifyAll returns one error per notification, in the same order (nil for
// each that was sent).
type Batcher interface {
	Notifier
	NotifyAll(ctx context.Context, ns []Notification) []error
}

// NotifyAll sends ns with n, in one batch if n is a Batcher and one at a
// time otherwise. It returns one error per notification, in order.
func NotifyAll(ctx context.Context, n Notifier, ns []Notification) []error {
	if b, ok := n.(Batcher); ok {
		errs := b.NotifyAll(ctx, ns)
		if len(errs) != len(ns) {
			// A batcher that breaks its contract must not make the caller
			// drop or misattribute results.
			bad := fmt.Errorf("push: batcher returned %d results for %d notifications", len(errs), len(ns))
			errs = make([]error, len(ns))
			for i := range errs {
				errs[i] = bad
			}
		}
		return errs
	}
	errs := make([]error, len(ns))
	for i := range ns {
		errs[i] = n.Notify(ctx, ns[i])
	}
	return errs
}

// Errors.
var (
	// ErrUnregistered: the token or subscription will never work again
	// (the app was uninstalled, the subscription expired, the token is
	// malformed or belongs to another sender). The caller forgets it.
	ErrUnregistered = errors.New("push: token not registered")
	// ErrTemporary: the push service could not take the notification now
	// (rate limited, overloaded, unreachable) even after the adapter's own
	// retries; the caller tries again later. See TemporaryError.
	ErrTemporary = errors.New("push: temporary failure")
	// ErrUnknownProvider: a Mux has no notifier for the provider.
	ErrUnknownProvider = errors.New("push: unknown provider")
)

// TemporaryError is an ErrTemporary with the delay the push service asked
// for. errors.Is(err, ErrTemporary) holds for it, and so does errors.Is for
// whatever it wraps.
type TemporaryError struct {
	// RetryAfter is the wait the service asked for (Retry-After); zero if
	// it said nothing.
	RetryAfter time.Duration
	Err        error
}

// Temporary wraps err as a TemporaryError.
func Temporary(err error, retryAfter time.Duration) error {
	return &TemporaryError{RetryAfter: retryAfter, Err: err}
}

func (e *TemporaryError) Error() string {
	if e.RetryAfter > 0 {
		return fmt.Sprintf("%v: %v (retry after %v)", ErrTemporary, e.Err, e.RetryAfter)
	}
	return fmt.Sprintf("%v: %v", ErrTemporary, e.Err)
}

// Unwrap gives both ErrTemporary and the cause, so that errors.Is finds
// either.
func (e *TemporaryError) Unwrap() []error { return []error{ErrTemporary, e.Err} }

// RetryAfter is the delay a temporary error asks for, and whether err is
// temporary at all.
func RetryAfter(err error) (time.Duration, bool) {
	var te *TemporaryError
	if errors.As(err, &te) {
		return te.RetryAfter, true
	}
	return 0, errors.Is(err, ErrTemporary)
}

// ParseRetryAfter reads an HTTP Retry-After value, in seconds or as a date;
// zero if it is absent, malformed or past. It caps the wait at a day, so
// that a bogus header cannot park a notification for years.
func ParseRetryAfter(h http.Header, now time.Time) time.Duration {
	const maxWait = 24 * time.Hour
	v := strings.TrimSpace(h.Get("Retry-After"))
	var d time.Duration
	if s, err := strconv.ParseInt(v, 10, 64); err == nil {
		d = time.Duration(min(max(s, 0), int64(maxWait/time.Second))) * time.Second
	} else if t, err := http.ParseTime(v); err == nil {
		d = t.Sub(now)
	}
	return min(max(d, 0), maxWait)
}

// Mux is a Notifier that hands each notification to the notifier for its
// Provider, such as Mux{ProviderFCM: fcmNotifier, ProviderWebPush: wp}.
// A provider it has no notifier for, including none, gets
// ErrUnknownProvider. It is not to be changed once in use.
type Mux map[string]Notifier

// Notify implements Notifier.
func (m Mux) Notify(ctx context.Context, n Notification) error {
	to, ok := m[n.Provider]
	if !ok {
		return fmt.Errorf("%w %q", ErrUnknownProvider, n.Provider)
	}
	return to.Notify(ctx, n)
}

// NotifyAll implements Batcher: it groups ns by provider and sends the
// groups concurrently, each as one batch where its notifier is a Batcher.
func (m Mux) NotifyAll(ctx context.Context, ns []Notification) []error {
	errs := make([]error, len(ns))
	groups := map[string][]int{}
	for i, n := range ns {
		if _, ok := m[n.Provider]; !ok {
			errs[i] = fmt.Errorf("%w %q", ErrUnknownProvider, n.Provider)
			continue
		}
		groups[n.Provider] = append(groups[n.Provider], i)
	}
	var wg sync.WaitGroup
	for provider, idx := range groups {
		wg.Go(func() {
			batch := make([]Notification, len(idx))
			for j, i := range idx {
				batch[j] = ns[i]
			}
			// Each goroutine writes only its own indexes of errs.
			for j, err := range NotifyAll(ctx, m[provider], batch) {
				errs[idx[j]] = err
			}
		})
	}
	wg.Wait()
	return errs
}

// Subscription is a browser's Web Push subscription, as PushSubscription
// gives it and PUT /v1/devices/current/push takes it.
type Subscription struct {
	Endpoint string           `json:"endpoint"`
	Keys     SubscriptionKeys `json:"keys"`
}

// SubscriptionKeys are a subscription's encryption keys (RFC 8291).
type SubscriptionKeys struct {
	P256dh string `json:"p256dh"` // the browser's P-256 public key, base64url
	Auth   string `json:"auth"`   // its 16-byte authentication secret, base64url
}

// Token is s as a Notification.Token: compact JSON.
func (s Subscription) Token() string {
	b, _ := json.Marshal(s) // only strings inside: it cannot fail
	return string(b)
}

// Validate checks that s can be pushed to: an https endpoint, a P-256
// public key and a 16-byte secret.
func (s Subscription) Validate() error {
	u, err := url.Parse(s.Endpoint)
	if err != nil || u.Scheme != "https" || u.Host == "" {
		return fmt.Errorf("push: subscription endpoint %q is not an https URL", s.Endpoint)
	}
	key, err := DecodeKey(s.Keys.P256dh)
	if err == nil {
		// Checks the point is on the curve, not just its length.
		_, err = ecdh.P256().NewPublicKey(key)
	}
	if err != nil {
		return errors.New("push: subscription p256dh is not an uncompressed P-256 public key")
	}
	auth, err := DecodeKey(s.Keys.Auth)
	if err != nil || len(auth) != 16 {
		return errors.New("push: subscription auth is not a 16-byte secret")
	}
	return nil
}

// ParseSubscription reads and validates a subscription from its JSON, as
// in a Notification.Token.
func ParseSubscription(token string) (Subscription, error) {
	var s Subscription
	if err := json.Unmarshal([]byte(token), &s); err != nil {
		return Subscription{}, fmt.Errorf("push: subscription is not JSON: %w", err)
	}
	return s, s.Validate()
}

// DecodeKey decodes base64url with or without padding; browsers give keys
// without it, but some libraries add it, and some use the standard
// alphabet.
func DecodeKey(s string) ([]byte, error) {
	s = strings.TrimRight(s, "=")
	if b, err := base64.RawURLEncoding.DecodeString(s); err == nil {
		return b, nil
	}
	return base64.RawStdEncoding.DecodeString(s)
}
