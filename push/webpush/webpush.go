package webpush

import (
	"bytes"
	"context"
	"crypto/ecdh"
	"crypto/rand"
	"encoding/base64"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"time"

	wp "github.com/SherClockHolmes/webpush-go"

	"github.com/tern-im/tern/internal/safehttp"
	"github.com/tern-im/tern/push"
)

// maxPayload is the most plaintext bytes webpush-go fits in its single
// 4096-byte record: 4096 less the 16-byte tag, the 86-byte header (salt,
// record size, key length, 65-byte key) and the padding delimiter.
const maxPayload = 4096 - 16 - 86 - 1

// defaultConcurrency is how many requests NotifyAll has in flight when the
// Config says nothing: enough to hide a push service's latency, few enough
// not to look like a flood to it.
const defaultConcurrency = 16

// VAPIDKeys is a VAPID key pair (RFC 8292), each key base64url without
// padding: Public is the uncompressed P-256 point (65 bytes) that browsers
// get as applicationServerKey, Private the 32-byte scalar.
type VAPIDKeys struct {
	Public  string
	Private string
}

// GenerateKeys makes a new VAPID key pair.
func GenerateKeys() (VAPIDKeys, error) {
	k, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		return VAPIDKeys{}, fmt.Errorf("webpush: generating VAPID keys: %w", err)
	}
	return VAPIDKeys{
		Public:  base64.RawURLEncoding.EncodeToString(k.PublicKey().Bytes()),
		Private: base64.RawURLEncoding.EncodeToString(k.Bytes()),
	}, nil
}

// Config configures a Notifier.
type Config struct {
	VAPID VAPIDKeys
	// Subscriber is the contact that push services may use to reach the
	// operator: an email address (with or without "mailto:") or an https
	// URL. It goes into every VAPID token.
	Subscriber string
	// HTTPClient sends the requests. If nil, a client with a 30-second
	// timeout that follows no redirects: an endpoint comes from a browser,
	// and a redirect must not send the node somewhere else.
	HTTPClient *http.Client
	// Concurrency caps NotifyAll's requests in flight; 0 means 16.
	Concurrency int
	// Log gets a debug line per send; nil discards.
	Log *slog.Logger
}

// Notifier sends wake-ups to browsers. It is safe for concurrent use.
type Notifier struct {
	vapid       VAPIDKeys
	subscriber  string
	client      *http.Client
	concurrency int
	log         *slog.Logger
}

var (
	_ push.Notifier = (*Notifier)(nil)
	_ push.Batcher  = (*Notifier)(nil)
)

// New checks the configuration and builds a Notifier.
func New(cfg Config) (*Notifier, error) {
	priv, err := push.DecodeKey(cfg.VAPID.Private)
	if err != nil {
		return nil, fmt.Errorf("webpush: VAPID private key: %w", err)
	}
	key, err := ecdh.P256().NewPrivateKey(priv)
	if err != nil {
		return nil, fmt.Errorf("webpush: VAPID private key: %w", err)
	}
	pub, err := push.DecodeKey(cfg.VAPID.Public)
	if err != nil {
		return nil, fmt.Errorf("webpush: VAPID public key: %w", err)
	}
	// A mismatched pair signs tokens that every push service refuses; say
	// so now rather than on every send.
	if !bytes.Equal(pub, key.PublicKey().Bytes()) {
		return nil, errors.New("webpush: VAPID public key does not match the private key")
	}
	sub := strings.TrimSpace(cfg.Subscriber)
	if sub == "" {
		return nil, errors.New("webpush: no subscriber contact")
	}
	if !strings.HasPrefix(sub, "https:") {
		// webpush-go adds "mailto:" to anything that is not an https URL.
		sub = strings.TrimPrefix(sub, "mailto:")
		if !strings.Contains(sub, "@") {
			return nil, fmt.Errorf("webpush: subscriber %q is neither an email address nor an https URL", cfg.Subscriber)
		}
	}
	client := cfg.HTTPClient
	if client == nil {
		client = &http.Client{
			Timeout:       30 * time.Second,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	conc := cfg.Concurrency
	if conc <= 0 {
		conc = defaultConcurrency
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	// The library wants the keys in its own forms; normalise them so that
	// padded or standard-alphabet input works too.
	vapid := VAPIDKeys{
		Public:  base64.RawURLEncoding.EncodeToString(pub),
		Private: base64.RawURLEncoding.EncodeToString(priv),
	}
	return &Notifier{vapid: vapid, subscriber: sub, client: client, concurrency: conc, log: log}, nil
}

// Notify implements push.Notifier. n.Token is the subscription's JSON.
func (w *Notifier) Notify(ctx context.Context, n push.Notification) error {
	err := w.send(ctx, n)
	w.log.DebugContext(ctx, "webpush", "device", n.DeviceID, "kind", n.Kind, "err", err)
	return err
}

// NotifyAll implements push.Batcher: Web Push has no batch request, so it
// sends up to Config.Concurrency at once.
func (w *Notifier) NotifyAll(ctx context.Context, ns []push.Notification) []error {
	errs := make([]error, len(ns))
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(w.concurrency, len(ns)) {
		wg.Go(func() {
			for i := range next {
				errs[i] = w.Notify(ctx, ns[i])
			}
		})
	}
	for i := range ns {
		next <- i
	}
	close(next)
	wg.Wait()
	return errs
}

func (w *Notifier) send(ctx context.Context, n push.Notification) error {
	sub, err := push.ParseSubscription(n.Token)
	if err != nil {
		return fmt.Errorf("webpush: %w: %w", push.ErrUnregistered, err)
	}
	payload, err := encode(push.Data(n))
	if err != nil {
		return fmt.Errorf("webpush: %w", err)
	}
	urgency := wp.UrgencyNormal
	if n.High() {
		urgency = wp.UrgencyHigh
	}
	resp, err := wp.SendNotificationWithContext(ctx, payload,
		&wp.Subscription{Endpoint: sub.Endpoint, Keys: wp.Keys{P256dh: sub.Keys.P256dh, Auth: sub.Keys.Auth}},
		&wp.Options{
			HTTPClient:      w.client,
			Subscriber:      w.subscriber,
			Topic:           push.CollapseID(n.ChatID),
			TTL:             int(n.TTL() / time.Second),
			Urgency:         urgency,
			VAPIDPublicKey:  w.vapid.Public,
			VAPIDPrivateKey: w.vapid.Private,
		})
	if err != nil {
		if errors.Is(err, safehttp.ErrForbiddenAddress) {
			// The endpoint's name leads to a loopback or private address
			// now (it passed the check when it was registered): it will
			// never be a push service we may reach, so trying it again
			// would only knock on that address every backoff.
			return fmt.Errorf("webpush: %w: %w", push.ErrUnregistered, err)
		}
		var ue *url.Error
		if ctx.Err() != nil || errors.As(err, &ue) {
			return push.Temporary(fmt.Errorf("webpush: %w", err), 0)
		}
		return fmt.Errorf("webpush: %w", err)
	}
	defer resp.Body.Close()
	// Keep a little of the answer for the error, and drain the rest so the
	// connection can be reused.
	head, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	status := fmt.Errorf("webpush: push service answered %s: %s", resp.Status, bytes.TrimSpace(head))
	switch {
	case resp.StatusCode == http.StatusNotFound || resp.StatusCode == http.StatusGone:
		return fmt.Errorf("%w: %w", push.ErrUnregistered, status)
	case resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500:
		return push.Temporary(status, push.ParseRetryAfter(resp.Header, time.Now()))
	}
	return status
}

// encode gives the payload as JSON, shortening the text until it fits one
// record: JSON escaping can make a text of push.MaxText bytes several times
// longer.
func encode(data map[string]string) ([]byte, error) {
	for {
		var b bytes.Buffer
		enc := json.NewEncoder(&b)
		enc.SetEscapeHTML(false)
		if err := enc.Encode(data); err != nil {
			return nil, err
		}
		out := bytes.TrimSuffix(b.Bytes(), []byte("\n"))
		text := data[push.KeyText]
		if len(out) <= maxPayload {
			return out, nil
		}
		if text == "" {
			return nil, fmt.Errorf("payload of %d bytes is over %d", len(out), maxPayload)
		}
		if t := push.Truncate(text, len(text)/2); t != "" {
			data[push.KeyText] = t
		} else {
			delete(data, push.KeyText)
		}
	}
}
