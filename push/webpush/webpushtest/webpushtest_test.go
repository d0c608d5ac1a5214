package webpushtest_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/push/webpush/webpushtest"
)

// recorder is a testing.TB that keeps Errorf and Fatalf to itself.
type recorder struct {
	testing.TB
	mu     sync.Mutex
	errors []string
}

func (r *recorder) Helper() {}

func (r *recorder) Errorf(format string, args ...any) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.errors = append(r.errors, fmt.Sprintf(format, args...))
}

func (r *recorder) Fatalf(format string, args ...any) { r.Errorf(format, args...) }

func (r *recorder) got() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]string(nil), r.errors...)
}

func TestWaitTimesOut(t *testing.T) {
	r := webpushtest.Start(t)
	sub := r.NewSubscription(t)
	rec := &recorder{TB: t}
	if got := r.WaitReceivedBy(rec, sub, 1, 50*time.Millisecond); got != nil {
		t.Errorf("WaitReceivedBy gave %v with nothing sent", got)
	}
	if got := r.WaitReceived(rec, 2, 10*time.Millisecond); got != nil {
		t.Errorf("WaitReceived gave %v with nothing sent", got)
	}
	if e := rec.got(); len(e) != 2 || !strings.Contains(e[0], "0 pushes of 1 to "+sub.Endpoint) || !strings.Contains(e[1], "0 pushes of 2") {
		t.Errorf("reported %q", e)
	}
}

func TestSubscriptionsAndStrayRequests(t *testing.T) {
	rec := &recorder{TB: t}
	r := webpushtest.Start(rec)
	a, b := r.NewSubscription(t), r.NewSubscription(t)
	if a.Endpoint == b.Endpoint || a.Keys == b.Keys || !strings.HasPrefix(a.Endpoint, r.URL()+"/") {
		t.Errorf("subscriptions %+v and %+v", a, b)
	}
	if err := a.Validate(); err != nil {
		t.Error(err)
	}
	client := r.Client()
	// A push with no VAPID is answered 401, recorded and reported.
	resp, err := client.Post(a.Endpoint, "application/octet-stream", strings.NewReader("x"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	got := r.ReceivedBy(a)
	if resp.StatusCode != http.StatusUnauthorized || len(got) != 1 || got[0].Err == nil || len(rec.got()) != 1 {
		t.Errorf("push without VAPID: status %d, received %v, reported %q", resp.StatusCode, got, rec.got())
	}
	// So is anything but a POST to a subscription it made, but that is
	// not recorded.
	for _, u := range []string{r.URL() + "/push/nope", r.URL() + "/"} {
		resp, err := client.Post(u, "application/octet-stream", nil)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
	}
	resp, err = client.Get(b.Endpoint)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if e := rec.got(); len(e) != 4 || len(r.Received()) != 1 || r.Attempts(a) != 1 || r.Attempts(b) != 0 {
		t.Errorf("reported %q, received %v", e, r.Received())
	}
}

func TestFailChecksStatus(t *testing.T) {
	r := webpushtest.Start(t)
	sub := r.NewSubscription(t)
	defer func() {
		if recover() == nil {
			t.Error("FailNext with status 201 did not panic")
		}
	}()
	r.FailNext(sub, http.StatusCreated, 1)
}
