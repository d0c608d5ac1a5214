package mediatest

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/media"
)

// Run checks the store that open returns against the media.Store
// contract, one subtest per promise. open is called once per subtest, with
// that subtest's t, so it may register cleanups and fail the subtest.
func Run(t *testing.T, open func(t *testing.T) media.Store) {
	t.Helper()
	// A transport of its own, closed at the end, so that tests checking for
	// leaked goroutines (goleak) see no idle connections of the suite's.
	tr := http.DefaultTransport.(*http.Transport).Clone()
	t.Cleanup(tr.CloseIdleConnections)
	s := &suite{open: open, prefix: "mediatest/" + randomHex(t), client: &http.Client{Transport: tr}}
	t.Run("RoundTripSmall", s.roundTripSmall)
	t.Run("RoundTripLarge", s.roundTripLarge)
	t.Run("PutReplaces", s.putReplaces)
	t.Run("OpenMissing", s.openMissing)
	t.Run("InvalidKeys", s.invalidKeys)
	t.Run("Delete", s.delete)
	t.Run("FailedPut", s.failedPut)
	t.Run("ShortReader", s.shortReader)
	t.Run("URL", s.url)
	t.Run("URLRange", s.urlRange)
	t.Run("URLAlteredKey", s.urlAlteredKey)
	t.Run("URLMissing", s.urlMissing)
	t.Run("URLExpires", s.urlExpires)
}

// largeSize is over 5 MiB, the smallest S3 multipart part, and not a
// multiple of any buffer size, so chunking and part boundaries are crossed.
const largeSize = 6<<20 + 12345

// expiringTTL is long enough that a URL whose expiry is counted in whole
// seconds from a truncated timestamp (S3 presigning) still works right
// after it was made, and short enough to keep the suite quick.
const expiringTTL = 2 * time.Second

// expiryDeadline bounds how long the suite waits for an expired URL to be
// refused: far more than expiringTTL, so a slow machine does not flake.
const expiryDeadline = 30 * time.Second

type suite struct {
	open   func(t *testing.T) media.Store
	prefix string
	client *http.Client
}

// key names an object of this Run; every subtest uses its own names.
func (s *suite) key(name string) string {
	return s.prefix + "/" + name
}

// store opens the adapter for one subtest.
func (s *suite) store(t *testing.T) media.Store {
	t.Helper()
	st := s.open(t)
	if st == nil {
		t.Fatal("open returned a nil media.Store")
	}
	return st
}

// cleanup deletes key when the subtest ends, so that a shared bucket does
// not collect the suite's objects. t.Context is already cancelled by then.
func cleanup(t *testing.T, st media.Store, key string) {
	ctx := context.WithoutCancel(t.Context())
	t.Cleanup(func() {
		if err := st.Delete(ctx, key); err != nil {
			t.Errorf("cleanup: Delete(%q): %v", key, err)
		}
	})
}

func put(t *testing.T, st media.Store, key string, data []byte, contentType string) {
	t.Helper()
	cleanup(t, st, key)
	if err := st.Put(t.Context(), key, bytes.NewReader(data), int64(len(data)), contentType); err != nil {
		t.Fatalf("Put(%q, %d bytes, %q): %v", key, len(data), contentType, err)
	}
}

// wantObject opens key and checks its bytes and description.
func wantObject(t *testing.T, st media.Store, key string, data []byte, contentType string) {
	t.Helper()
	rc, obj, err := st.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	got, err := io.ReadAll(rc)
	if cerr := rc.Close(); cerr != nil {
		t.Errorf("Open(%q): Close: %v", key, cerr)
	}
	if err != nil {
		t.Fatalf("Open(%q): reading: %v", key, err)
	}
	if !bytes.Equal(got, data) {
		t.Errorf("Open(%q) read %d bytes %q, want %d bytes %q", key, len(got), abbrev(got), len(data), abbrev(data))
	}
	checkObject(t, key, obj, int64(len(data)), contentType)
}

func checkObject(t *testing.T, key string, obj media.Object, size int64, contentType string) {
	t.Helper()
	if obj.Key != key {
		t.Errorf("Open(%q): Object.Key = %q", key, obj.Key)
	}
	if obj.Size != size {
		t.Errorf("Open(%q): Object.Size = %d, want %d", key, obj.Size, size)
	}
	if obj.ContentType != contentType {
		t.Errorf("Open(%q): Object.ContentType = %q, want %q", key, obj.ContentType, contentType)
	}
}

func wantNotFound(t *testing.T, st media.Store, key string) {
	t.Helper()
	rc, _, err := st.Open(t.Context(), key)
	if err == nil {
		rc.Close()
		t.Fatalf("Open(%q) succeeded, want media.ErrNotFound", key)
	}
	if !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("Open(%q): %v, want media.ErrNotFound", key, err)
	}
}

func (s *suite) roundTripSmall(t *testing.T) {
	st := s.store(t)
	cases := []struct {
		name, contentType string
		data              []byte
	}{
		{"empty", "application/octet-stream", nil},
		{"one", "application/octet-stream", []byte{0}},
		{"text", "text/plain; charset=utf-8", []byte("hello, tern\n")},
		{"image", "image/jpeg", pattern(1, 1000)},
	}
	for _, c := range cases {
		key := s.key("small/" + c.name)
		put(t, st, key, c.data, c.contentType)
		wantObject(t, st, key, c.data, c.contentType)
	}
}

func (s *suite) roundTripLarge(t *testing.T) {
	st := s.store(t)
	key := s.key("large/video")
	cleanup(t, st, key)
	const seed = 42
	// A reader that makes its bytes as it goes and offers nothing but Read,
	// so the adapter has to stream rather than seek, stat or slice.
	if err := st.Put(t.Context(), key, newGen(seed, largeSize), largeSize, "video/mp4"); err != nil {
		t.Fatalf("Put(%q, %d streamed bytes): %v", key, largeSize, err)
	}
	rc, obj, err := st.Open(t.Context(), key)
	if err != nil {
		t.Fatalf("Open(%q): %v", key, err)
	}
	defer rc.Close()
	checkObject(t, key, obj, largeSize, "video/mp4")
	sameStream(t, newGen(seed, largeSize), rc)
}

func (s *suite) putReplaces(t *testing.T) {
	st := s.store(t)
	key := s.key("replace/a")
	put(t, st, key, []byte("the first version, which is longer"), "text/plain")
	newer := pattern(2, 300)
	put(t, st, key, newer, "image/png")
	wantObject(t, st, key, newer, "image/png")
	shorter := []byte("3rd")
	put(t, st, key, shorter, "audio/ogg")
	wantObject(t, st, key, shorter, "audio/ogg")
}

func (s *suite) openMissing(t *testing.T) {
	st := s.store(t)
	wantNotFound(t, st, s.key("missing/never-put"))

	// A key that is a prefix of another (a directory, for a file store) and
	// a key below an existing one are not objects.
	put(t, st, s.key("missing/parent/child"), []byte("child"), "text/plain")
	wantNotFound(t, st, s.key("missing/parent"))
	wantNotFound(t, st, s.key("missing/par"))
	wantNotFound(t, st, s.key("missing/parent/child/grandchild"))
	if err := st.Delete(t.Context(), s.key("missing/parent")); err != nil {
		t.Errorf("Delete of a key that only prefixes another: %v, want nil", err)
	}
	wantObject(t, st, s.key("missing/parent/child"), []byte("child"), "text/plain")
}

func (s *suite) invalidKeys(t *testing.T) {
	st := s.store(t)
	bad := []string{
		"", "../x", "x/../y", "..", ".", "a//b", "/a", "a/", "/", "A", "a.b",
		"a b", "a\\b", "a\x00b", "é", "a?b", "a%2fb",
		strings.Repeat("a", media.MaxKeyLen+1),
	}
	ctx := t.Context()
	for _, key := range bad {
		if media.ValidKey(key) {
			t.Fatalf("suite bug: media.ValidKey(%q) is true", key)
		}
		if err := st.Put(ctx, key, strings.NewReader("x"), 1, "text/plain"); !errors.Is(err, media.ErrInvalidKey) {
			t.Errorf("Put(%q): %v, want media.ErrInvalidKey", key, err)
		}
		rc, _, err := st.Open(ctx, key)
		if err == nil {
			rc.Close()
		}
		if !errors.Is(err, media.ErrInvalidKey) {
			t.Errorf("Open(%q): %v, want media.ErrInvalidKey", key, err)
		}
		if u, _, err := st.URL(ctx, key, time.Minute); !errors.Is(err, media.ErrInvalidKey) {
			t.Errorf("URL(%q) = %q, %v, want media.ErrInvalidKey", key, u, err)
		}
		if err := st.Delete(ctx, key); !errors.Is(err, media.ErrInvalidKey) {
			t.Errorf("Delete(%q): %v, want media.ErrInvalidKey", key, err)
		}
	}
	// The longest valid key is a key.
	long := s.key("long/")
	long += strings.Repeat("k", media.MaxKeyLen-len(long))
	put(t, st, long, []byte("long"), "text/plain")
	wantObject(t, st, long, []byte("long"), "text/plain")
}

func (s *suite) delete(t *testing.T) {
	st := s.store(t)
	key := s.key("delete/a")
	other := s.key("delete/b")
	put(t, st, key, []byte("to be deleted"), "text/plain")
	put(t, st, other, []byte("to be kept"), "text/plain")
	if err := st.Delete(t.Context(), key); err != nil {
		t.Fatalf("Delete(%q): %v", key, err)
	}
	wantNotFound(t, st, key)
	if err := st.Delete(t.Context(), key); err != nil {
		t.Errorf("Delete(%q) again: %v, want nil", key, err)
	}
	if err := st.Delete(t.Context(), s.key("delete/never-put")); err != nil {
		t.Errorf("Delete of a key never put: %v, want nil", err)
	}
	wantObject(t, st, other, []byte("to be kept"), "text/plain")

	// A deleted key can be used again.
	put(t, st, key, []byte("again"), "image/gif")
	wantObject(t, st, key, []byte("again"), "image/gif")
}

// errReader is what a failing reader returns; adapters need not wrap it
// (an HTTP client may not), so the suite only checks that Put failed.
var errReader = errors.New("mediatest: reader failed on purpose")

func (s *suite) failedPut(t *testing.T) {
	st := s.store(t)
	const size = 256 << 10
	failing := func() io.Reader {
		return io.MultiReader(io.LimitReader(newGen(7, size), size/2), failReader{})
	}

	key := s.key("failed/new")
	cleanup(t, st, key)
	if err := st.Put(t.Context(), key, failing(), size, "video/mp4"); err == nil {
		t.Fatalf("Put(%q) with a reader failing halfway returned nil", key)
	}
	wantNotFound(t, st, key)

	// Over an existing object: the old one may stay, whole, or be gone;
	// half of the new one must never show.
	key = s.key("failed/existing")
	old := []byte("the old object")
	put(t, st, key, old, "text/plain")
	if err := st.Put(t.Context(), key, failing(), size, "video/mp4"); err == nil {
		t.Fatalf("Put(%q) with a reader failing halfway returned nil", key)
	}
	rc, _, err := st.Open(t.Context(), key)
	switch {
	case errors.Is(err, media.ErrNotFound):
	case err != nil:
		t.Fatalf("Open(%q) after a failed Put: %v", key, err)
	default:
		rc.Close()
		wantObject(t, st, key, old, "text/plain")
	}

	// The key still takes a good Put.
	put(t, st, key, []byte("fine"), "text/plain")
	wantObject(t, st, key, []byte("fine"), "text/plain")
}

// shortReader checks that size is taken as exact: a reader that ends early
// must not leave a truncated object behind, as a client that vanished
// mid-upload would.
func (s *suite) shortReader(t *testing.T) {
	st := s.store(t)
	key := s.key("short/a")
	cleanup(t, st, key)
	if err := st.Put(t.Context(), key, strings.NewReader("only 19 bytes here."), 100, "text/plain"); err == nil {
		t.Fatalf("Put(%q) of 19 bytes announced as 100 returned nil", key)
	}
	wantNotFound(t, st, key)
}

func (s *suite) url(t *testing.T) {
	st := s.store(t)
	key := s.key("url/a")
	data := pattern(3, 5000)
	const ct = "application/pdf"
	put(t, st, key, data, ct)

	const ttl = time.Hour
	before := time.Now()
	u, expires, err := st.URL(t.Context(), key, ttl)
	after := time.Now()
	if err != nil {
		t.Fatalf("URL(%q): %v", key, err)
	}
	checkExpires(t, expires, before, after, ttl)
	// Twice: a URL is not single-use.
	for range 2 {
		resp := s.get(t, u, nil)
		if resp.status != http.StatusOK {
			t.Fatalf("GET %s: status %d (%q), want 200", u, resp.status, abbrev(resp.body))
		}
		if !bytes.Equal(resp.body, data) {
			t.Fatalf("GET %s: %d bytes %q, want %d bytes %q", u, len(resp.body), abbrev(resp.body), len(data), abbrev(data))
		}
		if got := resp.header.Get("Content-Type"); got != ct {
			t.Errorf("GET %s: Content-Type %q, want %q", u, got, ct)
		}
	}
}

func (s *suite) urlRange(t *testing.T) {
	st := s.store(t)
	key := s.key("url/range")
	data := pattern(4, 100)
	put(t, st, key, data, "video/mp4")
	u, _, err := st.URL(t.Context(), key, time.Hour)
	if err != nil {
		t.Fatalf("URL(%q): %v", key, err)
	}
	resp := s.get(t, u, http.Header{"Range": {"bytes=10-19"}})
	if resp.status != http.StatusPartialContent {
		t.Fatalf("GET %s with Range bytes=10-19: status %d, want 206", u, resp.status)
	}
	if !bytes.Equal(resp.body, data[10:20]) {
		t.Errorf("GET with Range bytes=10-19: %x, want %x", resp.body, data[10:20])
	}
	if got, want := resp.header.Get("Content-Range"), "bytes 10-19/100"; got != want {
		t.Errorf("GET with Range bytes=10-19: Content-Range %q, want %q", got, want)
	}
}

func (s *suite) urlAlteredKey(t *testing.T) {
	st := s.store(t)
	mine, theirs := s.key("url/alter-mine"), s.key("url/alter-them")
	put(t, st, mine, []byte("my object"), "text/plain")
	secret := []byte("their object, which the URL for mine must not reach")
	put(t, st, theirs, secret, "text/plain")

	u, _, err := st.URL(t.Context(), mine, time.Hour)
	if err != nil {
		t.Fatalf("URL(%q): %v", mine, err)
	}
	if resp := s.get(t, u, nil); resp.status != http.StatusOK {
		t.Fatalf("GET %s (unaltered): status %d, want 200", u, resp.status)
	}
	altered := swapKey(t, u, mine, theirs)
	resp := s.get(t, altered, nil)
	if bytes.Contains(resp.body, secret) {
		t.Fatalf("GET %s (URL of %q altered to %q) served the other object", altered, mine, theirs)
	}
	if resp.status < 400 || resp.status > 499 {
		t.Errorf("GET %s (URL of %q altered to %q): status %d, want 4xx", altered, mine, theirs, resp.status)
	}
}

func (s *suite) urlMissing(t *testing.T) {
	st := s.store(t)
	key := s.key("url/missing")
	u, _, err := st.URL(t.Context(), key, time.Hour)
	if err != nil {
		t.Fatalf("URL(%q) of a missing object: %v (URL need not check existence)", key, err)
	}
	if resp := s.get(t, u, nil); resp.status < 400 || resp.status > 499 {
		t.Errorf("GET %s of a missing object: status %d, want 4xx", u, resp.status)
	}
}

func (s *suite) urlExpires(t *testing.T) {
	st := s.store(t)
	key := s.key("url/expires")
	data := []byte("short-lived")
	put(t, st, key, data, "text/plain")

	before := time.Now()
	u, expires, err := st.URL(t.Context(), key, expiringTTL)
	after := time.Now()
	if err != nil {
		t.Fatalf("URL(%q, %v): %v", key, expiringTTL, err)
	}
	checkExpires(t, expires, before, after, expiringTTL)
	resp := s.get(t, u, nil)
	if resp.status != http.StatusOK || !bytes.Equal(resp.body, data) {
		t.Fatalf("GET %s right after URL: status %d, %q; want 200, %q", u, resp.status, abbrev(resp.body), data)
	}

	deadline := time.Now().Add(expiryDeadline)
	for {
		resp := s.get(t, u, nil)
		if resp.status >= 400 && resp.status <= 499 {
			return
		}
		if resp.status != http.StatusOK || !bytes.Equal(resp.body, data) {
			t.Fatalf("GET %s while waiting for expiry: status %d, %q; want 200 with the object or 4xx", u, resp.status, abbrev(resp.body))
		}
		if time.Now().After(deadline) {
			t.Fatalf("GET %s still served %v after URL(ttl %v) was made", u, time.Since(before), expiringTTL)
		}
		select {
		case <-t.Context().Done():
			t.Fatal(t.Context().Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// checkExpires allows a second either way of [before, after] + ttl, since
// adapters count expiry in whole seconds.
func checkExpires(t *testing.T, expires, before, after time.Time, ttl time.Duration) {
	t.Helper()
	lo, hi := before.Add(ttl-time.Second), after.Add(ttl+time.Second)
	if expires.Before(lo) || expires.After(hi) {
		t.Errorf("URL(ttl %v) made between %v and %v returned expires %v, want about now+ttl",
			ttl, before.Format(time.RFC3339Nano), after.Format(time.RFC3339Nano), expires.Format(time.RFC3339Nano))
	}
}

type response struct {
	status int
	header http.Header
	body   []byte
}

// get fetches u as a client holding only the URL would: no credentials,
// no cookies.
func (s *suite) get(t *testing.T, u string, header http.Header) response {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	for k, v := range header {
		req.Header[k] = v
	}
	resp, err := s.client.Do(req)
	if err != nil {
		t.Fatalf("GET %s: %v", u, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatalf("GET %s: reading the body: %v", u, err)
	}
	return response{status: resp.StatusCode, header: resp.Header, body: body}
}

// swapKey replaces the key in u's path, where a signed URL carries it, by
// another key, leaving the query (the signature) as it was.
func swapKey(t *testing.T, u, from, to string) string {
	t.Helper()
	parsed, err := url.Parse(u)
	if err != nil {
		t.Fatalf("URL %q does not parse: %v", u, err)
	}
	p := parsed.EscapedPath()
	for _, f := range []string{from, url.PathEscape(from)} {
		i := strings.LastIndex(p, f)
		if i < 0 {
			continue
		}
		t2 := to
		if f != from {
			t2 = url.PathEscape(to)
		}
		parsed.RawPath = p[:i] + t2 + p[i+len(f):]
		if parsed.Path, err = url.PathUnescape(parsed.RawPath); err != nil {
			t.Fatalf("altering %q: %v", u, err)
		}
		return parsed.String()
	}
	t.Fatalf("URL %q does not carry key %q in its path; the suite cannot alter it", u, from)
	return ""
}

// sameStream compares two streams without holding either in memory and
// reports the first offset where they differ.
func sameStream(t *testing.T, want, got io.Reader) {
	t.Helper()
	wb, gb := bufio.NewReaderSize(want, 64<<10), bufio.NewReaderSize(got, 64<<10)
	w, g := make([]byte, 32<<10), make([]byte, 32<<10)
	var off int64
	for {
		nw, errW := io.ReadFull(wb, w)
		ng, errG := io.ReadFull(gb, g)
		if errW != nil && errW != io.EOF && errW != io.ErrUnexpectedEOF {
			t.Fatalf("reading the expected stream: %v", errW)
		}
		if errG != nil && errG != io.EOF && errG != io.ErrUnexpectedEOF {
			t.Fatalf("reading the object at offset %d: %v", off+int64(ng), errG)
		}
		n := min(nw, ng)
		if i := firstDiff(w[:n], g[:n]); i >= 0 {
			t.Fatalf("object differs from what was put at offset %d", off+int64(i))
		}
		off += int64(n)
		if ng < nw {
			t.Fatalf("object has fewer bytes than were put: it ends at offset %d", off)
		}
		if ng > nw {
			t.Fatalf("object has more bytes than the %d that were put", off)
		}
		if nw < len(w) {
			return
		}
	}
}

func firstDiff(a, b []byte) int {
	for i := range a {
		if a[i] != b[i] {
			return i
		}
	}
	return -1
}

// gen yields n pseudo-random bytes from seed, the same for the same seed,
// made as they are read.
type gen struct {
	state uint64
	left  int64
}

func newGen(seed uint64, n int64) *gen {
	return &gen{state: seed, left: n}
}

func (g *gen) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	for i := range p {
		// A 64-bit LCG; its high byte has no short period.
		g.state = g.state*6364136223846793005 + 1442695040888963407
		p[i] = byte(g.state >> 56)
	}
	g.left -= int64(len(p))
	return len(p), nil
}

func pattern(seed uint64, n int) []byte {
	b := make([]byte, n)
	if _, err := io.ReadFull(newGen(seed, int64(n)), b); err != nil {
		panic(err)
	}
	return b
}

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errReader }

func randomHex(t *testing.T) string {
	t.Helper()
	b := make([]byte, 8)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return hex.EncodeToString(b)
}

// abbrev keeps failure messages short when objects are large.
func abbrev(b []byte) string {
	if len(b) <= 64 {
		return string(b)
	}
	return fmt.Sprintf("%s...(%d more)", b[:64], len(b)-64)
}
