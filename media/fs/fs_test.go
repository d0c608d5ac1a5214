package fs_test

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/base64"
	"errors"
	"io"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/media"
	"github.com/tern-im/tern/media/fs"
	"github.com/tern-im/tern/media/mediatest"
)

var testSecret = []byte("0123456789abcdef0123456789abcdef")

// serve mounts st the way Tern does, on a ServeMux at fs.FilesPath.
func serve(st *fs.Store) *http.ServeMux {
	mux := http.NewServeMux()
	mux.Handle(fs.FilesPath, st.Handler())
	return mux
}

func newStore(t *testing.T, opts fs.Options) *fs.Store {
	t.Helper()
	if opts.Dir == "" {
		opts.Dir = t.TempDir()
	}
	if opts.Secret == nil {
		opts.Secret = testSecret
	}
	if opts.BaseURL == "" {
		opts.BaseURL = "http://media.test"
	}
	st, err := fs.New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { st.Close() })
	return st
}

func TestConformance(t *testing.T) {
	mediatest.Run(t, func(t *testing.T) media.Store {
		// The server exists before the store, which needs its address; the
		// store's handler joins the running mux as Tern mounts it.
		mux := http.NewServeMux()
		srv := httptest.NewServer(mux)
		t.Cleanup(srv.Close)
		st := newStore(t, fs.Options{BaseURL: srv.URL})
		mux.Handle(fs.FilesPath, st.Handler())
		return st
	})
}

// clock is a settable Options.Now.
type clock struct {
	mu  sync.Mutex
	now time.Time
}

func (c *clock) Now() time.Time {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.now
}

func (c *clock) set(t time.Time) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.now = t
}

func put(t *testing.T, st *fs.Store, key string, data []byte, ct string) {
	t.Helper()
	if err := st.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), ct); err != nil {
		t.Fatalf("Put(%q): %v", key, err)
	}
}

func do(h http.Handler, method, target string, header http.Header) *httptest.ResponseRecorder {
	req := httptest.NewRequest(method, target, nil)
	for k, v := range header {
		req.Header[k] = v
	}
	rec := httptest.NewRecorder()
	h.ServeHTTP(rec, req)
	return rec
}

func TestURLFormat(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	st := newStore(t, fs.Options{BaseURL: "https://tern.example.com/", Now: clk.Now})
	u, exp, err := st.URL(t.Context(), "u/42/photo", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	m := hmac.New(sha256.New, testSecret)
	m.Write([]byte("u/42/photo\n1700003600"))
	want := "https://tern.example.com/media/files/u/42/photo?exp=1700003600&sig=" + base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	if u != want {
		t.Errorf("URL = %q\nwant  %q", u, want)
	}
	if !exp.Equal(time.Unix(1_700_003_600, 0)) {
		t.Errorf("expires = %v, want %v", exp, time.Unix(1_700_003_600, 0))
	}

	// A fraction of a second rounds up: the URL lasts at least ttl.
	clk.set(time.Unix(1_700_000_000, 500_000_000))
	_, exp, err = st.URL(t.Context(), "k", time.Second)
	if err != nil {
		t.Fatal(err)
	}
	if want := time.Unix(1_700_000_002, 0); !exp.Equal(want) {
		t.Errorf("expires = %v, want %v", exp, want)
	}

	for _, ttl := range []time.Duration{0, -time.Second} {
		if _, _, err := st.URL(t.Context(), "k", ttl); err == nil {
			t.Errorf("URL with ttl %v succeeded", ttl)
		}
	}
}

func TestHandlerHeaders(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	st := newStore(t, fs.Options{Now: clk.Now})
	h := serve(st)
	cases := []struct {
		ct, wantCT string
		attachment bool
	}{
		{"image/jpeg", "image/jpeg", false},
		{"video/mp4", "video/mp4", false},
		{"audio/ogg; codecs=opus", "audio/ogg; codecs=opus", false},
		{"IMAGE/PNG", "IMAGE/PNG", false},
		{"text/html; charset=utf-8", "text/html; charset=utf-8", true},
		{"image/svg+xml", "image/svg+xml", true},
		{"application/pdf", "application/pdf", true},
		{"not a type", "not a type", true},
		{"", "application/octet-stream", true},
	}
	data := []byte("<html><script>alert(1)</script></html>")
	for i, c := range cases {
		key := "h/" + strconv.Itoa(i)
		put(t, st, key, data, c.ct)
		u, _, err := st.URL(t.Context(), key, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			rec := do(h, method, u, nil)
			if rec.Code != http.StatusOK {
				t.Fatalf("%s %q: status %d %q", method, c.ct, rec.Code, rec.Body)
			}
			hd := rec.Header()
			want := map[string]string{
				"Content-Type":            c.wantCT,
				"X-Content-Type-Options":  "nosniff",
				"Content-Security-Policy": "sandbox",
				"Cache-Control":           "private, max-age=3600",
				"Content-Length":          strconv.Itoa(len(data)),
				"Content-Disposition":     "",
			}
			if c.attachment {
				want["Content-Disposition"] = "attachment"
			}
			for k, v := range want {
				if got := hd.Get(k); got != v {
					t.Errorf("%s of type %q: %s = %q, want %q", method, c.ct, k, got, v)
				}
			}
			wantBody := data
			if method == http.MethodHead {
				wantBody = nil
			}
			if !bytes.Equal(rec.Body.Bytes(), wantBody) {
				t.Errorf("%s of type %q: body %q, want %q", method, c.ct, rec.Body, wantBody)
			}
		}
	}

	// max-age counts down to the expiry.
	u, _, err := st.URL(t.Context(), "h/0", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clk.set(time.Unix(1_700_000_000+3599, 0))
	rec := do(h, http.MethodGet, u, nil)
	if rec.Code != http.StatusOK || rec.Header().Get("Cache-Control") != "private, max-age=1" {
		t.Errorf("a second before expiry: status %d, Cache-Control %q; want 200, max-age=1", rec.Code, rec.Header().Get("Cache-Control"))
	}
	clk.set(time.Unix(1_700_000_000+3600, 0))
	rec = do(h, http.MethodGet, u, nil)
	if rec.Code != http.StatusForbidden {
		t.Errorf("at expiry: status %d, want 403", rec.Code)
	}
}

func TestHandlerConditional(t *testing.T) {
	st := newStore(t, fs.Options{})
	h := serve(st)
	data := bytes.Repeat([]byte("0123456789"), 10)
	put(t, st, "c/a", data, "video/mp4")
	u, _, err := st.URL(t.Context(), "c/a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	rec := do(h, http.MethodGet, u, nil)
	etag, lm := rec.Header().Get("ETag"), rec.Header().Get("Last-Modified")
	if etag == "" || lm == "" {
		t.Fatalf("no ETag (%q) or Last-Modified (%q)", etag, lm)
	}
	if rec := do(h, http.MethodGet, u, http.Header{"If-None-Match": {etag}}); rec.Code != http.StatusNotModified {
		t.Errorf("If-None-Match: status %d, want 304", rec.Code)
	}
	if rec := do(h, http.MethodGet, u, http.Header{"If-Modified-Since": {lm}}); rec.Code != http.StatusNotModified {
		t.Errorf("If-Modified-Since: status %d, want 304", rec.Code)
	}
	rec = do(h, http.MethodGet, u, http.Header{"Range": {"bytes=95-"}, "If-Range": {etag}})
	if rec.Code != http.StatusPartialContent || rec.Body.String() != "56789" {
		t.Errorf("Range with a matching If-Range: status %d, body %q; want 206, %q", rec.Code, rec.Body, "56789")
	}
	if rec.Header().Get("Content-Security-Policy") != "sandbox" || rec.Header().Get("X-Content-Type-Options") != "nosniff" {
		t.Errorf("206 lacks the protective headers: %v", rec.Header())
	}
	// A replaced object has another ETag, so a resumed download starts over
	// rather than splicing two versions.
	put(t, st, "c/a", bytes.Repeat([]byte("x"), 100), "video/mp4")
	rec = do(h, http.MethodGet, u, http.Header{"Range": {"bytes=95-"}, "If-Range": {etag}})
	if rec.Code != http.StatusOK || rec.Body.Len() != 100 {
		t.Errorf("Range with a stale If-Range: status %d, %d bytes; want 200, 100", rec.Code, rec.Body.Len())
	}
	if rec := do(h, http.MethodGet, u, http.Header{"Range": {"bytes=200-300"}}); rec.Code != http.StatusRequestedRangeNotSatisfiable {
		t.Errorf("Range past the end: status %d, want 416", rec.Code)
	}
}

func TestHandlerRefuses(t *testing.T) {
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	st := newStore(t, fs.Options{Now: clk.Now})
	h := serve(st)
	secret := []byte("SECRET BYTES")
	put(t, st, "r/a", secret, "text/plain")
	put(t, st, "r/b", secret, "text/plain")
	good, _, err := st.URL(t.Context(), "r/a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(h, http.MethodGet, good, nil); rec.Code != http.StatusOK {
		t.Fatalf("good URL: status %d", rec.Code)
	}
	parsed, err := url.Parse(good)
	if err != nil {
		t.Fatal(err)
	}
	exp, sig := parsed.Query().Get("exp"), parsed.Query().Get("sig")
	otherSig := func() string {
		m := hmac.New(sha256.New, []byte("another secret of thirty-two by"))
		m.Write([]byte("r/a\n" + exp))
		return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
	}()
	flipped := []byte(sig)
	flipped[5] ^= 'A' ^ 'B'
	if flipped[5] == sig[5] {
		t.Fatal("test bug: sig unchanged")
	}
	base := "http://media.test" + fs.FilesPath
	forbidden := map[string]string{
		"later exp":        base + "r/a?exp=" + strconv.Itoa(1_700_000_000+7200) + "&sig=" + sig,
		"exp with a sign":  base + "r/a?exp=%2B" + exp + "&sig=" + sig,
		"flipped sig":      base + "r/a?exp=" + exp + "&sig=" + string(flipped),
		"sig with padding": base + "r/a?exp=" + exp + "&sig=" + sig + "%3D",
		"truncated sig":    base + "r/a?exp=" + exp + "&sig=" + sig[:len(sig)-1],
		"other secret":     base + "r/a?exp=" + exp + "&sig=" + otherSig,
		"other key":        base + "r/b?exp=" + exp + "&sig=" + sig,
		"key prefix":       base + "r?exp=" + exp + "&sig=" + sig,
		"no sig":           base + "r/a?exp=" + exp,
		"no exp":           base + "r/a?sig=" + sig,
		"empty sig":        base + "r/a?exp=" + exp + "&sig=",
		"two exps":         good + "&exp=" + exp,
		"two sigs":         good + "&sig=" + sig,
		"no query":         base + "r/a",
		"missing key":      base + "r/zzz?exp=" + exp + "&sig=" + sig,
		"empty key":        base + "?exp=" + exp + "&sig=" + sig,
	}
	for name, target := range forbidden {
		for _, method := range []string{http.MethodGet, http.MethodHead} {
			rec := do(h, method, target, nil)
			if rec.Code != http.StatusForbidden {
				t.Errorf("%s (%s %s): status %d, want 403", name, method, target, rec.Code)
			}
			if bytes.Contains(rec.Body.Bytes(), secret) {
				t.Errorf("%s: served the object", name)
			}
			if method == http.MethodGet {
				if ct := rec.Header().Get("Content-Type"); !strings.HasPrefix(ct, "text/plain") {
					t.Errorf("%s: Content-Type %q, want text/plain", name, ct)
				}
				if n := rec.Body.Len(); n == 0 || n > 64 {
					t.Errorf("%s: body %q, want a short reason", name, rec.Body)
				}
			}
		}
	}

	// Expired, with the clock: refused once exp is reached, for good.
	clk.set(time.Unix(1_700_000_000+3600, 0))
	rec := do(h, http.MethodGet, good, nil)
	if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "expired") {
		t.Errorf("expired: status %d, body %q; want 403 saying expired", rec.Code, rec.Body)
	}
	clk.set(time.Unix(1_700_000_000, 0))

	// A signed URL for a key with no object.
	missing, _, err := st.URL(t.Context(), "r/missing", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if rec := do(h, http.MethodGet, missing, nil); rec.Code != http.StatusNotFound {
		t.Errorf("signed URL of a missing object: status %d, want 404", rec.Code)
	}

	for _, method := range []string{http.MethodPost, http.MethodPut, http.MethodDelete, http.MethodPatch, http.MethodOptions} {
		rec := do(h, method, good, nil)
		if rec.Code != http.StatusMethodNotAllowed {
			t.Errorf("%s: status %d, want 405", method, rec.Code)
		}
		if allow := rec.Header().Get("Allow"); allow != "GET, HEAD" {
			t.Errorf("%s: Allow %q, want %q", method, allow, "GET, HEAD")
		}
	}
	// The object is still there after all that.
	if rec := do(h, http.MethodGet, good, nil); rec.Code != http.StatusOK || !bytes.Equal(rec.Body.Bytes(), secret) {
		t.Errorf("good URL afterwards: status %d", rec.Code)
	}
}

func TestHandlerOutsidePrefix(t *testing.T) {
	st := newStore(t, fs.Options{})
	rec := do(st.Handler(), http.MethodGet, "http://media.test/elsewhere/x", nil)
	if rec.Code != http.StatusNotFound {
		t.Errorf("path outside %s: status %d, want 404", fs.FilesPath, rec.Code)
	}
}

func TestLayout(t *testing.T) {
	dir := t.TempDir()
	st := newStore(t, fs.Options{Dir: dir})
	// A key and a longer key below it are both objects.
	put(t, st, "x", []byte("x"), "text/plain")
	put(t, st, "x/y", []byte("xy"), "text/plain")
	for key, want := range map[string]string{"x": "x", "x/y": "xy"} {
		rc, obj, err := st.Open(t.Context(), key)
		if err != nil {
			t.Fatalf("Open(%q): %v", key, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if string(got) != want || obj.Size != int64(len(want)) {
			t.Errorf("Open(%q) = %q (size %d), want %q", key, got, obj.Size, want)
		}
	}
	for _, name := range []string{"x.obj", filepath.Join("x", "y.obj")} {
		info, err := os.Stat(filepath.Join(dir, name))
		if err != nil {
			t.Fatalf("object file: %v", err)
		}
		if perm := info.Mode().Perm(); perm&0o077 != 0 {
			t.Errorf("%s has mode %v; media is private", name, perm)
		}
	}
	tmpEmpty(t, dir)
}

// tmpEmpty checks that no Put left a temporary file behind.
func tmpEmpty(t *testing.T, dir string) {
	t.Helper()
	entries, err := os.ReadDir(filepath.Join(dir, ".tmp"))
	if err != nil {
		t.Fatal(err)
	}
	for _, e := range entries {
		t.Errorf("temporary file left behind: %s", e.Name())
	}
}

var errBoom = errors.New("boom")

type failAfter struct {
	n int
}

func (f *failAfter) Read(p []byte) (int, error) {
	if f.n <= 0 {
		return 0, errBoom
	}
	n := min(len(p), f.n)
	for i := range p[:n] {
		p[i] = 'z'
	}
	f.n -= n
	return n, nil
}

func TestFailedPuts(t *testing.T) {
	dir := t.TempDir()
	st := newStore(t, fs.Options{Dir: dir})
	old := []byte("old and whole")
	put(t, st, "f/a", old, "text/plain")

	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	cases := map[string]struct {
		ctx  context.Context
		r    io.Reader
		size int64
		ct   string
		want error
	}{
		"reader fails":    {t.Context(), &failAfter{n: 100 << 10}, 1 << 20, "video/mp4", errBoom},
		"reader short":    {t.Context(), strings.NewReader("short"), 10, "text/plain", io.ErrUnexpectedEOF},
		"reader long":     {t.Context(), strings.NewReader("longer than said"), 4, "text/plain", nil},
		"cancelled":       {ctx, strings.NewReader("x"), 1, "text/plain", context.Canceled},
		"negative size":   {t.Context(), strings.NewReader(""), -1, "text/plain", nil},
		"newline in type": {t.Context(), strings.NewReader("x"), 1, "text/plain\nX-Evil: 1", nil},
		"non-ASCII type":  {t.Context(), strings.NewReader("x"), 1, "text/plain; charset=é", nil},
		"type too long":   {t.Context(), strings.NewReader("x"), 1, "text/" + strings.Repeat("x", 300), nil},
	}
	for name, c := range cases {
		err := st.Put(c.ctx, "f/a", c.r, c.size, c.ct)
		if err == nil {
			t.Errorf("%s: Put succeeded", name)
			continue
		}
		if c.want != nil && !errors.Is(err, c.want) {
			t.Errorf("%s: Put: %v, want %v", name, err, c.want)
		}
		rc, obj, err := st.Open(t.Context(), "f/a")
		if err != nil {
			t.Fatalf("%s: the old object is gone: %v", name, err)
		}
		got, _ := io.ReadAll(rc)
		rc.Close()
		if !bytes.Equal(got, old) || obj.ContentType != "text/plain" {
			t.Errorf("%s: the old object became %q (%q)", name, got, obj.ContentType)
		}
		if err := st.Put(c.ctx, "f/new", c.r, c.size, c.ct); err == nil {
			t.Errorf("%s: Put of a new key succeeded", name)
		}
	}
	if _, _, err := st.Open(t.Context(), "f/new"); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("Open of a key whose Puts all failed: %v, want ErrNotFound", err)
	}
	tmpEmpty(t, dir)
}

// cancelAfter is a context that is cancelled after n checks of Err: the
// Put gets some way into its reader before it sees the cancellation.
func cancelAfter(t *testing.T, n int) context.Context {
	ctx, cancel := context.WithCancel(t.Context())
	t.Cleanup(cancel)
	return &countdown{Context: ctx, cancel: cancel, n: n}
}

type countdown struct {
	context.Context
	cancel context.CancelFunc
	mu     sync.Mutex
	n      int
}

func (c *countdown) Err() error {
	c.mu.Lock()
	c.n--
	if c.n <= 0 {
		c.cancel()
	}
	c.mu.Unlock()
	return c.Context.Err()
}

// oneByte hands out a byte per Read, so a Put makes many reads.
type oneByte struct{ r io.Reader }

func (o oneByte) Read(p []byte) (int, error) {
	if len(p) == 0 {
		return 0, nil
	}
	return o.r.Read(p[:1])
}

func TestCancelledMidRead(t *testing.T) {
	st := newStore(t, fs.Options{})
	err := st.Put(cancelAfter(t, 10), "m/a", oneByte{strings.NewReader(strings.Repeat("y", 100))}, 100, "text/plain")
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Put with a context cancelled mid-read: %v, want context.Canceled", err)
	}
	if _, _, err := st.Open(t.Context(), "m/a"); !errors.Is(err, media.ErrNotFound) {
		t.Errorf("Open after a cancelled Put: %v, want ErrNotFound", err)
	}
}

func TestReaderSurvivesReplace(t *testing.T) {
	st := newStore(t, fs.Options{})
	old := bytes.Repeat([]byte("old "), 10000)
	put(t, st, "s/a", old, "text/plain")
	rc, _, err := st.Open(t.Context(), "s/a")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	put(t, st, "s/a", []byte("new"), "text/plain")
	if err := st.Delete(t.Context(), "s/a"); err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	if err != nil {
		t.Fatal(err)
	}
	if !bytes.Equal(got, old) {
		t.Errorf("a reader opened before a replace read %d bytes, want the old %d", len(got), len(old))
	}
}

func TestNoEscape(t *testing.T) {
	outside := t.TempDir()
	if err := os.WriteFile(filepath.Join(outside, "secret.obj"), []byte("tern-media/1 0123456789abcdef0123456789abcdef text/plain\nsecret"), 0o600); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	if err := os.Symlink(outside, filepath.Join(dir, "evil")); err != nil {
		t.Skipf("no symlinks here: %v", err)
	}
	st := newStore(t, fs.Options{Dir: dir})
	if rc, _, err := st.Open(t.Context(), "evil/secret"); err == nil {
		rc.Close()
		t.Error("Open followed a symlink out of Dir")
	}
	if err := st.Put(t.Context(), "evil/planted", strings.NewReader("x"), 1, "text/plain"); err == nil {
		t.Error("Put followed a symlink out of Dir")
	}
	if _, err := os.Stat(filepath.Join(outside, "planted.obj")); err == nil {
		t.Error("Put wrote outside Dir")
	}
	if err := st.Delete(t.Context(), "evil/secret"); err == nil {
		t.Error("Delete followed a symlink out of Dir")
	}
	if _, err := os.Stat(filepath.Join(outside, "secret.obj")); err != nil {
		t.Errorf("Delete removed a file outside Dir: %v", err)
	}
	tmpEmpty(t, dir)
}

func TestCorruptFile(t *testing.T) {
	dir := t.TempDir()
	st := newStore(t, fs.Options{Dir: dir})
	for name, content := range map[string]string{
		"nomagic":   "just bytes",
		"noline":    "tern-media/1 0123456789abcdef0123456789abcdef text/plain",
		"noversion": "tern-media/1 text/plain\nbytes",
		"empty":     "",
	} {
		if err := os.WriteFile(filepath.Join(dir, name+".obj"), []byte(content), 0o600); err != nil {
			t.Fatal(err)
		}
		_, _, err := st.Open(t.Context(), name)
		if err == nil || errors.Is(err, media.ErrNotFound) {
			t.Errorf("Open of a corrupt file %q: %v, want an error other than ErrNotFound", content, err)
		}
		u, _, err := st.URL(t.Context(), name, time.Hour)
		if err != nil {
			t.Fatal(err)
		}
		if rec := do(serve(st), http.MethodGet, u, nil); rec.Code != http.StatusInternalServerError {
			t.Errorf("GET of a corrupt file %q: status %d, want 500", content, rec.Code)
		}
	}
}

func TestSweep(t *testing.T) {
	dir := t.TempDir()
	tmp := filepath.Join(dir, ".tmp")
	if err := os.MkdirAll(tmp, 0o700); err != nil {
		t.Fatal(err)
	}
	for _, name := range []string{"put-stale", "put-fresh"} {
		if err := os.WriteFile(filepath.Join(tmp, name), []byte("partial"), 0o600); err != nil {
			t.Fatal(err)
		}
	}
	longAgo := time.Now().Add(-2 * time.Hour)
	if err := os.Chtimes(filepath.Join(tmp, "put-stale"), longAgo, longAgo); err != nil {
		t.Fatal(err)
	}
	newStore(t, fs.Options{Dir: dir})
	if _, err := os.Stat(filepath.Join(tmp, "put-stale")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("stale temporary file: %v, want it removed", err)
	}
	if _, err := os.Stat(filepath.Join(tmp, "put-fresh")); err != nil {
		t.Errorf("fresh temporary file (a Put in progress): %v, want it kept", err)
	}
}

func TestNewRefuses(t *testing.T) {
	for name, opts := range map[string]fs.Options{
		"no dir":          {Secret: testSecret, BaseURL: "http://x"},
		"short secret":    {Dir: t.TempDir(), Secret: testSecret[:31], BaseURL: "http://x"},
		"no base URL":     {Dir: t.TempDir(), Secret: testSecret},
		"relative base":   {Dir: t.TempDir(), Secret: testSecret, BaseURL: "/media"},
		"other scheme":    {Dir: t.TempDir(), Secret: testSecret, BaseURL: "ftp://x"},
		"base with query": {Dir: t.TempDir(), Secret: testSecret, BaseURL: "http://x/?a=b"},
	} {
		if st, err := fs.New(opts); err == nil {
			st.Close()
			t.Errorf("%s: New succeeded", name)
		}
	}
}

// TestSecretCopied: the caller may reuse or zero its slice.
func TestSecretCopied(t *testing.T) {
	secret := bytes.Clone(testSecret)
	clk := &clock{now: time.Unix(1_700_000_000, 0)}
	st := newStore(t, fs.Options{Secret: secret, Now: clk.Now})
	put(t, st, "k", []byte("v"), "text/plain")
	u, _, err := st.URL(t.Context(), "k", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	clear(secret)
	if rec := do(serve(st), http.MethodGet, u, nil); rec.Code != http.StatusOK {
		t.Errorf("after the caller cleared its secret: status %d, want 200", rec.Code)
	}
}
