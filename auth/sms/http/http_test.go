package http

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	nethttp "net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"
)

func TestSendPostsJSON(t *testing.T) {
	type got struct {
		method, ctype string
		body          map[string]any
	}
	ch := make(chan got, 1)
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		raw, _ := io.ReadAll(r.Body)
		var m map[string]any
		if err := json.Unmarshal(raw, &m); err != nil {
			t.Errorf("body %q is not JSON: %v", raw, err)
		}
		ch <- got{r.Method, r.Header.Get("Content-Type"), m}
		w.WriteHeader(nethttp.StatusAccepted)
	}))
	defer srv.Close()

	if err := New(srv.URL+"/sms", nil).Send(context.Background(), "+12025550143", "Your Tern code is 123456."); err != nil {
		t.Fatal(err)
	}
	g := <-ch
	if g.method != nethttp.MethodPost || g.ctype != "application/json" {
		t.Errorf("request = %s with Content-Type %q", g.method, g.ctype)
	}
	if len(g.body) != 2 || g.body["to"] != "+12025550143" || g.body["text"] != "Your Tern code is 123456." {
		t.Errorf("body = %v", g.body)
	}
}

func TestSendFailures(t *testing.T) {
	release := make(chan struct{})
	srv := httptest.NewServer(nethttp.HandlerFunc(func(w nethttp.ResponseWriter, r *nethttp.Request) {
		_, _ = io.Copy(io.Discard, r.Body)
		if strings.HasSuffix(r.URL.Path, "/slow") {
			select {
			case <-r.Context().Done():
			case <-release:
			}
			return
		}
		nethttp.Error(w, "echo: Your Tern code is 123456", nethttp.StatusBadGateway)
	}))
	defer srv.Close()
	defer close(release) // runs before srv.Close, which waits for handlers

	err := New(srv.URL+"/x?key=SECRET", nil).Send(context.Background(), "+12025550143", "Your Tern code is 123456.")
	if err == nil || !strings.Contains(err.Error(), "502") {
		t.Fatalf("Send = %v, want an error naming status 502", err)
	}
	if strings.Contains(err.Error(), "123456") || strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error %q leaks the code or the URL's key", err)
	}

	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	err = New(srv.URL+"/slow?key=SECRET", nil).Send(ctx, "+12025550143", "x")
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("Send past the deadline = %v, want context.DeadlineExceeded", err)
	}
	if strings.Contains(err.Error(), "SECRET") {
		t.Errorf("error %q leaks the URL's key", err)
	}

	if err := New("http://127.0.0.1:1/", nil).Send(context.Background(), "+1", "x"); err == nil {
		t.Fatal("Send to a closed port succeeded")
	}
}
