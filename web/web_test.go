package web_test

import (
	"compress/gzip"
	"io"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/tern-im/tern/web"
)

func TestHandler(t *testing.T) {
	h, err := web.New(web.Options{MediaOrigins: []string{"https://s3.example.com"}})
	if err != nil {
		t.Fatal(err)
	}
	srv := httptest.NewServer(h)
	defer srv.Close()
	// Go's client asks for gzip and unpacks it unless told not to.
	tr := &http.Transport{DisableCompression: true}
	get := func(path string, hdr map[string]string) *http.Response {
		t.Helper()
		req, _ := http.NewRequest(http.MethodGet, srv.URL+path, nil)
		for k, v := range hdr {
			req.Header.Set(k, v)
		}
		res, err := tr.RoundTrip(req)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { res.Body.Close() })
		return res
	}

	res := get("/", nil)
	body, _ := io.ReadAll(res.Body)
	if res.StatusCode != 200 || !strings.Contains(string(body), `src="/assets/js/main.js"`) || res.Header.Get("Content-Type") != "text/html; charset=utf-8" {
		t.Fatalf("GET /: %d %q %s", res.StatusCode, res.Header.Get("Content-Type"), body)
	}
	if strings.Contains(string(body), "<script>") || strings.Contains(string(body), " style=") {
		t.Error("the page has inline script or style, which its CSP forbids")
	}
	csp := res.Header.Get("Content-Security-Policy")
	for _, want := range []string{"default-src 'none'", "script-src 'self'", "style-src 'self'", "frame-ancestors 'none'", "img-src 'self' data: blob: https://s3.example.com"} {
		if !strings.Contains(csp, want) {
			t.Errorf("CSP %q lacks %q", csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-") {
		t.Errorf("CSP allows unsafe code: %q", csp)
	}
	for k, v := range map[string]string{"X-Content-Type-Options": "nosniff", "X-Frame-Options": "DENY", "Referrer-Policy": "no-referrer", "Cache-Control": "no-cache"} {
		if got := res.Header.Get(k); got != v {
			t.Errorf("%s: %q, want %q", k, got, v)
		}
	}

	// Gzipped when asked, and the same bytes unpacked.
	plain := get("/assets/js/chat.js", nil)
	want, _ := io.ReadAll(plain.Body)
	if plain.Header.Get("Content-Encoding") != "" || plain.Header.Get("Content-Type") != "text/javascript; charset=utf-8" {
		t.Fatalf("plain: encoding %q type %q", plain.Header.Get("Content-Encoding"), plain.Header.Get("Content-Type"))
	}
	zres := get("/assets/js/chat.js", map[string]string{"Accept-Encoding": "br, gzip"})
	if zres.Header.Get("Content-Encoding") != "gzip" || zres.Header.Get("Vary") != "Accept-Encoding" {
		t.Fatalf("gzip asked: encoding %q vary %q", zres.Header.Get("Content-Encoding"), zres.Header.Get("Vary"))
	}
	zr, err := gzip.NewReader(zres.Body)
	if err != nil {
		t.Fatal(err)
	}
	got, _ := io.ReadAll(zr)
	if string(got) != string(want) || len(want) == 0 {
		t.Fatalf("gzipped body differs from the plain one (%d vs %d bytes)", len(got), len(want))
	}
	if n, _ := h.Size("/assets/js/chat.js"); n >= len(want) {
		t.Errorf("Size %d is not the gzipped size (plain %d)", n, len(want))
	}
	if res := get("/assets/js/chat.js", map[string]string{"Accept-Encoding": "gzip;q=0"}); res.Header.Get("Content-Encoding") != "" {
		t.Error("gzip;q=0 still got gzip")
	}

	if sw := get("/assets/sw.js", nil); sw.Header.Get("Service-Worker-Allowed") != "/" {
		t.Errorf("sw.js: Service-Worker-Allowed %q, want /", sw.Header.Get("Service-Worker-Allowed"))
	}

	// A reload revalidates: 304 for the same ETag, nothing sent.
	etag := plain.Header.Get("ETag")
	if r := get("/assets/js/chat.js", map[string]string{"If-None-Match": etag}); r.StatusCode != http.StatusNotModified {
		t.Errorf("If-None-Match with the ETag: %d, want 304", r.StatusCode)
	}
	if r := get("/assets/js/chat.js", map[string]string{"If-None-Match": `"other"`}); r.StatusCode != 200 {
		t.Errorf("another ETag: %d, want 200", r.StatusCode)
	}

	for _, p := range []string{"/assets/nope.js", "/assets/../web.go", "/assets/index.html", "/assets/"} {
		if r := get(p, nil); r.StatusCode != http.StatusNotFound {
			t.Errorf("GET %s: %d, want 404", p, r.StatusCode)
		}
	}
	req, _ := http.NewRequest(http.MethodPost, srv.URL+"/", nil)
	if r, err := tr.RoundTrip(req); err != nil || r.StatusCode != http.StatusMethodNotAllowed {
		t.Errorf("POST /: %v %v", r, err)
	} else {
		r.Body.Close()
	}
}

// TestFirstLoadSize keeps the chat client's first load small: every file
// the page loads, as transferred (gzipped), within 150 KiB.
func TestFirstLoadSize(t *testing.T) {
	h, err := web.New(web.Options{})
	if err != nil {
		t.Fatal(err)
	}
	total := 0
	for _, p := range h.Paths() {
		n, _ := h.Size(p)
		total += n
	}
	if total > 150<<10 {
		t.Errorf("the apps' files come to %d bytes gzipped, over 150 KiB", total)
	}
	t.Logf("all files, gzipped: %d bytes", total)
}
