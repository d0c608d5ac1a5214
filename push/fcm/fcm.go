package fcm

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	firebase "firebase.google.com/go/v4"
	"firebase.google.com/go/v4/errorutils"
	"firebase.google.com/go/v4/messaging"
	"google.golang.org/api/option"

	"github.com/tern-im/tern/push"
)

// maxBatch is the most messages SendEach takes in one call.
const maxBatch = 500

// maxCollapseID is the longest apns-collapse-id APNs accepts, in bytes.
const maxCollapseID = 64

// Config configures a Notifier.
type Config struct {
	// CredentialsFile is the path of a service-account JSON key file
	// (--fcm-credentials); the project id is taken from it.
	CredentialsFile string
	// Endpoint, if set, replaces https://fcm.googleapis.com/v1
	// (--fcm-endpoint): messages go to Endpoint+"/projects/ID/messages:send".
	Endpoint string
	// Log gets a debug line per send; nil discards.
	Log *slog.Logger
}

// Notifier sends wake-ups through FCM. It is safe for concurrent use.
type Notifier struct {
	client *messaging.Client
	log    *slog.Logger
}

var (
	_ push.Notifier = (*Notifier)(nil)
	_ push.Batcher  = (*Notifier)(nil)
)

// New reads the service account and builds the client. It makes no
// request: the first OAuth token is fetched with the first send.
func New(ctx context.Context, cfg Config) (*Notifier, error) {
	if cfg.CredentialsFile == "" {
		return nil, errors.New("fcm: no credentials file")
	}
	key, err := os.ReadFile(cfg.CredentialsFile)
	if err != nil {
		return nil, fmt.Errorf("fcm: reading credentials: %w", err)
	}
	// The Google libraries take any kind of credential file, some of which
	// run programs or fetch from URLs of the file's choosing: accept only a
	// service account.
	var sa struct {
		Type      string `json:"type"`
		ProjectID string `json:"project_id"`
	}
	if err := json.Unmarshal(key, &sa); err != nil {
		return nil, fmt.Errorf("fcm: credentials %s: %w", cfg.CredentialsFile, err)
	}
	if sa.Type != "service_account" {
		return nil, fmt.Errorf("fcm: credentials %s: type %q, want service_account", cfg.CredentialsFile, sa.Type)
	}
	if sa.ProjectID == "" {
		return nil, fmt.Errorf("fcm: credentials %s: no project_id", cfg.CredentialsFile)
	}
	opts := []option.ClientOption{option.WithCredentialsJSON(key)}
	if cfg.Endpoint != "" {
		if u, err := url.Parse(cfg.Endpoint); err != nil || (u.Scheme != "https" && u.Scheme != "http") || u.Host == "" {
			return nil, fmt.Errorf("fcm: endpoint %q is not an http(s) URL", cfg.Endpoint)
		}
		opts = append(opts, option.WithEndpoint(strings.TrimRight(cfg.Endpoint, "/")))
	}
	// The OAuth token source keeps the context it is built with and fetches
	// every later token under it: it must outlive New's caller.
	ctx = context.WithoutCancel(ctx)
	app, err := firebase.NewApp(ctx, &firebase.Config{ProjectID: sa.ProjectID}, opts...)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	client, err := app.Messaging(ctx)
	if err != nil {
		return nil, fmt.Errorf("fcm: %w", err)
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	return &Notifier{client: client, log: log}, nil
}

// Notify implements push.Notifier.
func (f *Notifier) Notify(ctx context.Context, n push.Notification) error {
	if n.Token == "" {
		return fmt.Errorf("fcm: %w: empty token", push.ErrUnregistered)
	}
	_, err := f.client.Send(ctx, message(n, time.Now()))
	err = classify(ctx, err)
	f.log.DebugContext(ctx, "fcm push", "device", n.DeviceID, "kind", n.Kind, "err", err)
	return err
}

// NotifyAll implements push.Batcher with SendEach, 500 at a time; the SDK
// sends each one as its own request, up to 50 at once.
func (f *Notifier) NotifyAll(ctx context.Context, ns []push.Notification) []error {
	errs := make([]error, len(ns))
	now := time.Now()
	var msgs []*messaging.Message
	var idx []int
	flush := func() {
		if len(msgs) == 0 {
			return
		}
		res, err := f.client.SendEach(ctx, msgs)
		for j, i := range idx {
			switch {
			case err != nil:
				// Only a message the SDK refuses to send fails the whole
				// call; message never builds one.
				errs[i] = fmt.Errorf("fcm: %w", err)
			case res.Responses[j].Success:
			default:
				errs[i] = classify(ctx, res.Responses[j].Error)
			}
		}
		f.log.DebugContext(ctx, "fcm push batch", "size", len(msgs), "err", err)
		msgs, idx = msgs[:0], idx[:0]
	}
	for i, n := range ns {
		if n.Token == "" {
			errs[i] = fmt.Errorf("fcm: %w: empty token", push.ErrUnregistered)
			continue
		}
		msgs = append(msgs, message(n, now))
		idx = append(idx, i)
		if len(msgs) == maxBatch {
			flush()
		}
	}
	flush()
	return errs
}

// message builds the FCM message for n: data only, so that the app, not
// the system tray, decides what to show once it has synced.
func message(n push.Notification, now time.Time) *messaging.Message {
	ttl := n.TTL()
	priority := "normal"
	if n.High() {
		priority = "high"
	}
	collapse := n.ChatID
	if len(collapse) > maxCollapseID {
		collapse = push.CollapseID(n.ChatID)
	}
	return &messaging.Message{
		Token: n.Token,
		Data:  push.Data(n),
		Android: &messaging.AndroidConfig{
			CollapseKey: n.ChatID,
			Priority:    priority,
			TTL:         &ttl,
		},
		APNS: &messaging.APNSConfig{
			// A data-only push is a background push to APNs, and FCM
			// allows only apns-priority 5 for those (APNs itself requires
			// 5 with apns-push-type background), so iOS gets no faster
			// wake for a message here; that needs a visible alert with
			// mutable-content and a notification service extension in
			// the app.
			Headers: map[string]string{
				"apns-collapse-id": collapse,
				"apns-priority":    "5",
				"apns-push-type":   "background",
				"apns-expiration":  strconv.FormatInt(now.Add(ttl).Unix(), 10),
			},
			Payload: &messaging.APNSPayload{Aps: &messaging.Aps{ContentAvailable: true}},
		},
	}
}

// classify sorts an SDK error into push.ErrUnregistered, push.ErrTemporary
// or a permanent error.
func classify(ctx context.Context, err error) error {
	if err == nil {
		return nil
	}
	if ctx.Err() != nil || errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return push.Temporary(fmt.Errorf("fcm: %w", err), 0)
	}
	// A sender id mismatch is not taken for a gone token: credentials of
	// the wrong Firebase project answer it for every token, and would make
	// the node forget them all.
	if messaging.IsUnregistered(err) || (messaging.IsInvalidArgument(err) && blamesToken(err)) {
		return fmt.Errorf("fcm: %w: %w", push.ErrUnregistered, err)
	}
	resp := errorutils.HTTPResponse(err)
	if resp == nil {
		// The SDK reports a failed connection, a timeout or a failed
		// token fetch with these codes and no response; it has retried
		// them already.
		if errorutils.IsUnavailable(err) || errorutils.IsDeadlineExceeded(err) || errorutils.IsUnknown(err) {
			return push.Temporary(fmt.Errorf("fcm: %w", err), 0)
		}
		return fmt.Errorf("fcm: %w", err)
	}
	if resp.StatusCode == http.StatusTooManyRequests || resp.StatusCode >= 500 ||
		messaging.IsQuotaExceeded(err) || messaging.IsUnavailable(err) || messaging.IsInternal(err) {
		return push.Temporary(fmt.Errorf("fcm: %w", err), push.ParseRetryAfter(resp.Header, time.Now()))
	}
	return fmt.Errorf("fcm: %w", err)
}

// blamesToken tells whether an INVALID_ARGUMENT answer is about the
// registration token (malformed, or from another app) rather than the
// message, which FCM says in a BadRequest field violation on
// message.token.
func blamesToken(err error) bool {
	resp := errorutils.HTTPResponse(err)
	if resp == nil || resp.Body == nil {
		return false
	}
	body, rerr := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if rerr != nil {
		return false
	}
	var e struct {
		Error struct {
			Message string `json:"message"`
			Details []struct {
				Type       string `json:"@type"`
				Violations []struct {
					Field string `json:"field"`
				} `json:"fieldViolations"`
			} `json:"details"`
		} `json:"error"`
	}
	if json.Unmarshal(body, &e) != nil {
		return false
	}
	for _, d := range e.Error.Details {
		for _, v := range d.Violations {
			if v.Field == "message.token" {
				return true
			}
		}
	}
	return strings.Contains(strings.ToLower(e.Error.Message), "registration token")
}
