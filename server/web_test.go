package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"net/http"
	"net/http/cookiejar"
	"strings"
	"testing"

	"github.com/tern-im/tern/server/servertest"
)

// TestWebSession: the web client's sign-in leaves the refresh token in an
// HttpOnly, SameSite=Strict cookie scoped to /v1/auth/web, never in the
// answer; the cookie refreshes (rotating), only with the X-Tern-Web header;
// sign-out revokes the device and clears the cookie.
func TestWebSession(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := t.Context()
	jar, _ := cookiejar.New(nil)
	hc := &http.Client{Jar: jar}
	post := func(path string, body any, hdr map[string]string) (*http.Response, map[string]any) {
		t.Helper()
		var r io.Reader
		if body != nil {
			b, _ := json.Marshal(body)
			r = bytes.NewReader(b)
		}
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+path, r)
		req.Header.Set("Content-Type", "application/json")
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := hc.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res, m
	}
	web := map[string]string{"X-Tern-Web": "1"}
	phone := "+14155550701"
	if res, _ := post("/v1/auth/code", map[string]string{"phone": phone}, nil); res.StatusCode != http.StatusAccepted {
		t.Fatalf("code: %d", res.StatusCode)
	}
	code, err := n.SMS.Code(ctx, phone)
	if err != nil {
		t.Fatal(err)
	}
	verify := map[string]string{"phone": phone, "code": code, "device_name": "Chrome", "platform": "web"}
	if res, _ := post("/v1/auth/web/verify", verify, nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("web verify without the header: %d, want 403", res.StatusCode)
	}
	res, sess := post("/v1/auth/web/verify", verify, web)
	if res.StatusCode != http.StatusOK || sess["access_token"] == nil || sess["device_id"] == nil {
		t.Fatalf("web verify: %d %v", res.StatusCode, sess)
	}
	if _, ok := sess["refresh_token"]; ok {
		t.Fatalf("the refresh token is in the answer: %v", sess)
	}
	ck := cookieNamed(res, "tern_refresh")
	if ck == nil || !ck.HttpOnly || ck.SameSite != http.SameSiteStrictMode || ck.Path != "/v1/auth/web" || ck.MaxAge <= 0 || ck.Value == "" {
		t.Fatalf("refresh cookie: %+v", ck)
	}
	if ck.Secure {
		t.Error("cookie Secure over plain http: a browser would drop it")
	}
	first := ck.Value

	if res, _ := post("/v1/auth/web/refresh", nil, nil); res.StatusCode != http.StatusForbidden {
		t.Fatalf("refresh without the header: %d, want 403", res.StatusCode)
	}
	res, again := post("/v1/auth/web/refresh", nil, web)
	if res.StatusCode != http.StatusOK || again["device_id"] != sess["device_id"] || again["access_token"] == nil {
		t.Fatalf("refresh: %d %v", res.StatusCode, again)
	}
	if ck := cookieNamed(res, "tern_refresh"); ck == nil || ck.Value == first || !ck.HttpOnly {
		t.Fatalf("refresh did not rotate the cookie: %+v", ck)
	}

	// The access token works on the API, and over TLS-terminating
	// proxies the cookie would be Secure (not testable without TLS here).
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+again["access_token"].(string))
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != 200 {
		t.Fatalf("GET /v1/me with the web access token: %v %v", r, err)
	} else {
		r.Body.Close()
	}

	res, _ = post("/v1/auth/web/logout", nil, map[string]string{"X-Tern-Web": "1", "Authorization": "Bearer " + again["access_token"].(string)})
	if res.StatusCode != http.StatusNoContent {
		t.Fatalf("logout: %d", res.StatusCode)
	}
	if ck := cookieNamed(res, "tern_refresh"); ck == nil || ck.MaxAge >= 0 {
		t.Fatalf("logout did not clear the cookie: %+v", ck)
	}
	if res, body := post("/v1/auth/web/refresh", nil, web); res.StatusCode != http.StatusUnauthorized {
		t.Fatalf("refresh after logout: %d %v, want 401", res.StatusCode, body)
	}
	// The device is gone: its access token no longer works.
	req, _ = http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/v1/me", nil)
	req.Header.Set("Authorization", "Bearer "+again["access_token"].(string))
	if r, err := http.DefaultClient.Do(req); err != nil || r.StatusCode != http.StatusUnauthorized {
		t.Fatalf("GET /v1/me after logout: %v %v", r, err)
	} else {
		r.Body.Close()
	}
}

// TestWebClientServed: the node serves the web client at / with its CSP.
func TestWebClientServed(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	req, _ := http.NewRequestWithContext(context.Background(), http.MethodGet, n.URL+"/", nil)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(body), "/assets/js/main.js") || !strings.Contains(res.Header.Get("Content-Security-Policy"), "script-src 'self'") {
		t.Fatalf("GET /: %d %q", res.StatusCode, body)
	}
}

func cookieNamed(res *http.Response, name string) *http.Cookie {
	for _, c := range res.Cookies() {
		if c.Name == name {
			return c
		}
	}
	return nil
}
