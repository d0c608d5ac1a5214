package fcm_test

import (
	"context"
	"errors"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"testing"
	"time"

	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/push/fcm"
	"github.com/tern-im/tern/push/fcm/fcmtest"
)

// notifier is an fcm.Notifier that sends to srv.
func notifier(t *testing.T, srv *fcmtest.Server) *fcm.Notifier {
	t.Helper()
	n, err := fcm.New(t.Context(), fcm.Config{CredentialsFile: srv.CredentialsFile(), Endpoint: srv.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func TestMessage(t *testing.T) {
	f := fcmtest.Start(t)
	n := notifier(t, f)
	err := n.Notify(t.Context(), push.Notification{UserID: "u2", DeviceID: "d2", Provider: push.ProviderFCM,
		Token: "tok-msg", Kind: push.KindMessage, ChatID: "c-42", MsgID: "m-7", From: "u1", Text: "hello there"})
	if err != nil {
		t.Fatal(err)
	}
	got := f.SentTo("tok-msg")
	if len(got) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(got))
	}
	m := got[0]
	if !f.Issued(m.Bearer) {
		t.Errorf("bearer %q was not issued by the token endpoint", m.Bearer)
	}
	if m.Status != http.StatusOK || m.Attempt != 1 {
		t.Errorf("status %d, attempt %d: want 200 at the first attempt", m.Status, m.Attempt)
	}
	want := map[string]string{"type": "message", "chat_id": "c-42", "msg_id": "m-7", "sender": "u1", "text": "hello there"}
	if fmt.Sprint(m.Data) != fmt.Sprint(want) {
		t.Errorf("data = %v, want %v", m.Data, want)
	}
	if m.HasNotification() || len(m.Notification) != 0 {
		t.Errorf("message has a notification block %s: it should be data-only", m.Notification)
	}
	if m.Android.CollapseKey != "c-42" || m.Android.Priority != "high" {
		t.Errorf("android = %+v, want collapse_key c-42, priority high", m.Android)
	}
	if m.Android.TTL != strconv.Itoa(int(push.MessageTTL/time.Second))+"s" {
		t.Errorf("android ttl = %q, want %v", m.Android.TTL, push.MessageTTL)
	}
	h := m.APNS.Headers
	if h["apns-collapse-id"] != "c-42" || h["apns-priority"] != "5" || h["apns-push-type"] != "background" {
		t.Errorf("apns headers = %v", h)
	}
	if exp, err := strconv.ParseInt(h["apns-expiration"], 10, 64); err != nil || exp <= time.Now().Unix() {
		t.Errorf("apns-expiration = %q, want a time to come", h["apns-expiration"])
	}
	if m.APNS.Aps["content-available"] != float64(1) {
		t.Errorf("aps = %v, want content-available 1", m.APNS.Aps)
	}
}

func TestReceiptAndNoPreview(t *testing.T) {
	f := fcmtest.Start(t)
	n := notifier(t, f)
	ctx := t.Context()
	if err := n.Notify(ctx, push.Notification{Token: "tok-rcpt", Kind: push.KindReceipt, ChatID: "c-1", MsgID: "m-1"}); err != nil {
		t.Fatal(err)
	}
	// A message without preview: no text in the payload.
	if err := n.Notify(ctx, push.Notification{Token: "tok-quiet", Kind: push.KindMessage, ChatID: "c-1", MsgID: "m-2", From: "u1"}); err != nil {
		t.Fatal(err)
	}
	r := f.SentTo("tok-rcpt")[0]
	if r.Data["type"] != "receipt" || r.Android.Priority != "normal" || r.APNS.Headers["apns-priority"] != "5" {
		t.Errorf("receipt: data %v, android %+v, apns %v", r.Data, r.Android, r.APNS.Headers)
	}
	if r.Android.TTL != strconv.Itoa(int(push.OtherTTL/time.Second))+"s" {
		t.Errorf("receipt ttl = %q, want %v", r.Android.TTL, push.OtherTTL)
	}
	q := f.SentTo("tok-quiet")[0]
	if _, ok := q.Data["text"]; ok {
		t.Errorf("payload without preview has text: %v", q.Data)
	}
	if q.Data["msg_id"] != "m-2" || q.Data["sender"] != "u1" || q.Android.Priority != "high" {
		t.Errorf("message without preview: data %v, android %+v", q.Data, q.Android)
	}
}

func TestBatch(t *testing.T) {
	f := fcmtest.Start(t)
	n := notifier(t, f)
	// Over SendEach's 500, so it takes two calls; a few fail in between.
	const size = 523
	ns := make([]push.Notification, size)
	for i := range ns {
		ns[i] = push.Notification{Token: fmt.Sprintf("tok-%03d", i), Kind: push.KindMessage, ChatID: fmt.Sprintf("c-%d", i%7), MsgID: fmt.Sprintf("m-%d", i)}
	}
	ns[3].Token = "gone-3"
	ns[510].Token = "gone-510"
	ns[77].Token = ""
	errs := n.NotifyAll(t.Context(), ns)
	if len(errs) != size {
		t.Fatalf("%d results for %d notifications", len(errs), size)
	}
	for i, err := range errs {
		switch i {
		case 3, 510, 77:
			if !errors.Is(err, push.ErrUnregistered) {
				t.Errorf("%d (%q): %v, want ErrUnregistered", i, ns[i].Token, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		got := f.SentTo(ns[i].Token)
		if len(got) != 1 {
			t.Errorf("%s: %d requests, want 1", ns[i].Token, len(got))
			continue
		}
		m := got[0]
		if m.Data["msg_id"] != ns[i].MsgID || m.Android.CollapseKey != ns[i].ChatID || !f.Issued(m.Bearer) {
			t.Errorf("%s: got %+v", ns[i].Token, m)
		}
	}
	if got := f.SentTo(""); len(got) != 0 {
		t.Errorf("an empty token was sent")
	}
}

func TestErrorMapping(t *testing.T) {
	f := fcmtest.Start(t)
	n := notifier(t, f)
	notify := func(tok string) error {
		return n.Notify(t.Context(), push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c"})
	}
	for _, tok := range []string{"gone-1", "badtoken", ""} {
		if err := notify(tok); !errors.Is(err, push.ErrUnregistered) || errors.Is(err, push.ErrTemporary) {
			t.Errorf("%q: %v, want ErrUnregistered", tok, err)
		}
	}
	// A sender id mismatch is what credentials of the wrong project get
	// for every token: a failure, not a reason to forget the token.
	for _, tok := range []string{"badmsg", "mismatch"} {
		err := notify(tok)
		if err == nil || errors.Is(err, push.ErrUnregistered) || errors.Is(err, push.ErrTemporary) {
			t.Errorf("%s: %v, want a permanent error", tok, err)
		}
	}
	err := notify("quota")
	if d, ok := push.RetryAfter(err); !ok || d != 30*time.Second {
		t.Errorf("quota: %v (retry after %v), want ErrTemporary after 30s", err, d)
	}
	if got := len(f.SentTo("quota")); got != 1 {
		t.Errorf("quota: %d requests: the SDK retries only 503", got)
	}
}

func TestRetriesUnavailable(t *testing.T) {
	t.Parallel()
	f := fcmtest.Start(t)
	n := notifier(t, f)
	if err := n.Notify(t.Context(), push.Notification{Token: "flaky", Kind: push.KindMessage, ChatID: "c"}); err != nil {
		t.Fatalf("flaky: %v, want delivered after retries", err)
	}
	if got := len(f.SentTo("flaky")); got != 3 {
		t.Errorf("flaky: %d requests, want 3 (two 503s, then success)", got)
	}
}

func TestUnavailableGivesUp(t *testing.T) {
	t.Parallel()
	f := fcmtest.Start(t)
	n := notifier(t, f)
	// The SDK's own backoff is about 7 s in all; the deadline only keeps a
	// hang from lasting the whole test run.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err := n.Notify(ctx, push.Notification{Token: "down", Kind: push.KindMessage, ChatID: "c"})
	if !errors.Is(err, push.ErrTemporary) || errors.Is(err, push.ErrUnregistered) {
		t.Fatalf("down: %v, want ErrTemporary", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("down: gave up only at the deadline: %v", err)
	}
	if got := len(f.SentTo("down")); got != 5 {
		t.Errorf("down: %d requests, want 5 (the SDK's 4 retries)", got)
	}
}

func TestCancelledIsTemporary(t *testing.T) {
	f := fcmtest.Start(t)
	n := notifier(t, f)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := n.Notify(ctx, push.Notification{Token: "tok", Kind: push.KindMessage, ChatID: "c"})
	if !errors.Is(err, push.ErrTemporary) {
		t.Errorf("cancelled: %v, want ErrTemporary", err)
	}
}

func TestNewRefusesBadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, path := range map[string]string{
		"missing":       filepath.Join(dir, "nope.json"),
		"not json":      write("bad.json", "{"),
		"user creds":    write("user.json", `{"type":"authorized_user","project_id":"p"}`),
		"external":      write("ext.json", `{"type":"external_account","project_id":"p"}`),
		"no project id": write("noproj.json", `{"type":"service_account"}`),
		"no file":       "",
	} {
		if _, err := fcm.New(t.Context(), fcm.Config{CredentialsFile: path}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f := fcmtest.Start(t)
	if _, err := fcm.New(t.Context(), fcm.Config{CredentialsFile: f.CredentialsFile(), Endpoint: "fcm.local/v1"}); err == nil {
		t.Errorf("an endpoint without scheme: accepted")
	}
}

func TestProgrammedFailures(t *testing.T) {
	f := fcmtest.Start(t)
	n := notifier(t, f)
	notify := func(tok string) error {
		return n.Notify(t.Context(), push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c"})
	}
	// Any token can be made to fail, and recovers once the failures are
	// used up.
	f.FailNext("tok-a", http.StatusNotFound, 1)
	if err := notify("tok-a"); !errors.Is(err, push.ErrUnregistered) {
		t.Errorf("tok-a, 404: %v, want ErrUnregistered", err)
	}
	if err := notify("tok-a"); err != nil {
		t.Errorf("tok-a after its failure: %v", err)
	}
	f.Fail("tok-b", fcmtest.Failure{Status: http.StatusTooManyRequests, Times: 2, RetryAfter: 90 * time.Second})
	for range 2 {
		if d, ok := push.RetryAfter(notify("tok-b")); !ok || d != 90*time.Second {
			t.Errorf("tok-b, 429: retry after %v (temporary %v), want 90s", d, ok)
		}
	}
	if err := notify("tok-b"); err != nil {
		t.Errorf("tok-b after its failures: %v", err)
	}
	// 500 is not retried by the SDK, and an override beats a token's own
	// behaviour until it is removed.
	f.FailNext("gone-1", http.StatusInternalServerError, fcmtest.Always)
	for range 2 {
		if err := notify("gone-1"); !errors.Is(err, push.ErrTemporary) || errors.Is(err, push.ErrUnregistered) {
			t.Errorf("gone-1, 500: %v, want ErrTemporary", err)
		}
	}
	f.FailNext("gone-1", 0, 0)
	if err := notify("gone-1"); !errors.Is(err, push.ErrUnregistered) {
		t.Errorf("gone-1 without override: %v, want ErrUnregistered", err)
	}
	for tok, want := range map[string][]int{"tok-a": {404, 200}, "tok-b": {429, 429, 200}, "gone-1": {500, 500, 404}} {
		var got []int
		for _, m := range f.SentTo(tok) {
			got = append(got, m.Status)
		}
		if fmt.Sprint(got) != fmt.Sprint(want) || f.Attempts(tok) != len(want) {
			t.Errorf("%s: statuses %v (%d attempts), want %v", tok, got, f.Attempts(tok), want)
		}
	}
	if got := len(f.Delivered()); got != 2 {
		t.Errorf("%d delivered, want 2", got)
	}
}

func TestWaitSent(t *testing.T) {
	f := fcmtest.Start(t)
	n := notifier(t, f)
	done := make(chan []error)
	go func() {
		done <- n.NotifyAll(context.Background(), []push.Notification{
			{Token: "tok-1", Kind: push.KindMessage, ChatID: "c"},
			{Token: "gone-2", Kind: push.KindMessage, ChatID: "c"},
			{Token: "tok-3", Kind: push.KindReceipt, ChatID: "c"},
		})
	}()
	sent := f.WaitSent(t, 3, 30*time.Second)
	delivered := f.WaitDelivered(t, 2, 30*time.Second)
	errs := <-done
	if len(sent) != 3 || len(delivered) != 2 {
		t.Errorf("sent %d, delivered %d: want 3 and 2", len(sent), len(delivered))
	}
	for _, m := range delivered {
		if m.Token == "gone-2" || m.Status != http.StatusOK {
			t.Errorf("delivered: %+v", m)
		}
	}
	if errs[0] != nil || !errors.Is(errs[1], push.ErrUnregistered) || errs[2] != nil {
		t.Errorf("NotifyAll: %v", errs)
	}
	got := f.WaitFor(t, time.Second, func(ms []fcmtest.Message) bool { return len(ms) == 3 })
	if len(got) != 3 || len(f.Sent()) != 3 {
		t.Errorf("WaitFor gave %d, Sent %d", len(got), len(f.Sent()))
	}
}
