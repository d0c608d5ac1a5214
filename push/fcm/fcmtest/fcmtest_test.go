package fcmtest_test

import (
	"fmt"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/push/fcm/fcmtest"
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
	srv := fcmtest.Start(t)
	rec := &recorder{TB: t}
	start := time.Now()
	if got := srv.WaitSent(rec, 1, 50*time.Millisecond); got != nil {
		t.Errorf("WaitSent gave %v with nothing sent", got)
	}
	if e := rec.got(); len(e) != 1 || !strings.Contains(e[0], "0 sends of 1") {
		t.Errorf("WaitSent reported %q", e)
	}
	if d := time.Since(start); d < 50*time.Millisecond || d > 10*time.Second {
		t.Errorf("WaitSent took %v for a 50ms timeout", d)
	}
}

func TestReportsUnissuedBearer(t *testing.T) {
	rec := &recorder{TB: t}
	srv := fcmtest.Start(rec)
	req, err := http.NewRequest(http.MethodPost, srv.Endpoint()+"/projects/"+fcmtest.ProjectID+"/messages:send",
		strings.NewReader(`{"message":{"token":"tok","data":{"a":"b"}}}`))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Authorization", "Bearer forged")
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Errorf("forged bearer: status %d, want 401", resp.StatusCode)
	}
	if e := rec.got(); len(e) != 1 || !strings.Contains(e[0], "forged") {
		t.Errorf("forged bearer reported as %q", e)
	}
	sent := srv.Sent()
	if len(sent) != 1 || sent[0].Bearer != "forged" || sent[0].Status != http.StatusUnauthorized || sent[0].Data["a"] != "b" || srv.Issued("forged") {
		t.Errorf("sent %+v", sent)
	}
	// Anything but the two endpoints is a mistake too.
	resp, err = http.Get(srv.URL() + "/v1/projects/other/messages:send")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if e := rec.got(); len(e) != 2 || resp.StatusCode != http.StatusNotFound {
		t.Errorf("unexpected request: status %d, reported %q", resp.StatusCode, e)
	}
}

func TestFailChecksStatus(t *testing.T) {
	srv := fcmtest.Start(t)
	defer func() {
		if recover() == nil {
			t.Error("Fail with status 200 did not panic")
		}
	}()
	srv.FailNext("tok", http.StatusOK, 1)
}
