package s3

import (
	"bytes"
	"context"
	"errors"
	"io"
	"net/http"
	"net/url"
	"os"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/minio/minio-go/v7"

	"github.com/tern-im/tern/media"
	"github.com/tern-im/tern/media/mediatest"
	"github.com/tern-im/tern/media/s3/s3test"
)

// TestMain stops the versitygw server, if the tests started one, and
// removes its directory.
func TestMain(m *testing.M) {
	code := m.Run()
	s3test.Stop()
	os.Exit(code)
}

// options returns the Options of cfg, with the test's prefix.
func options(cfg s3test.Config) Options {
	return Options{
		Endpoint:  cfg.Endpoint,
		AccessKey: cfg.AccessKey,
		SecretKey: cfg.SecretKey,
		Region:    cfg.Region,
		Bucket:    cfg.Bucket,
		Prefix:    cfg.Prefix,
	}
}

// open opens a Store on a bucket (or prefix) of t's own, closed when t
// ends, before s3test empties the bucket.
func open(t *testing.T) (*Store, s3test.Config) {
	t.Helper()
	cfg := s3test.New(t)
	st, err := Open(t.Context(), options(cfg))
	if err != nil {
		t.Fatalf("Open(%s, bucket %s): %v", s3test.Label(), cfg.Bucket, err)
	}
	t.Cleanup(st.Close)
	return st, cfg
}

func TestConformance(t *testing.T) {
	mediatest.Run(t, func(t *testing.T) media.Store {
		st, _ := open(t)
		return st
	})
}

// TestRoundTripAndURL is the path of a file through Tern in one test: put,
// open, and fetched by a client on its URL, whole and by range.
func TestRoundTripAndURL(t *testing.T) {
	st, _ := open(t)
	ctx := t.Context()
	data := []byte("0123456789abcdefghij")
	if err := st.Put(ctx, "photos/a", bytes.NewReader(data), int64(len(data)), "image/webp"); err != nil {
		t.Fatal(err)
	}
	rc, obj, err := st.Open(ctx, "photos/a")
	if err != nil {
		t.Fatal(err)
	}
	got, err := io.ReadAll(rc)
	rc.Close()
	if err != nil || !bytes.Equal(got, data) || obj != (media.Object{Key: "photos/a", Size: 20, ContentType: "image/webp"}) {
		t.Fatalf("Open = %q, %+v, %v", got, obj, err)
	}
	if _, _, err := st.Open(ctx, "photos/b"); !errors.Is(err, media.ErrNotFound) {
		t.Fatalf("Open of a missing key: %v, want media.ErrNotFound", err)
	}

	u, _, err := st.URL(ctx, "photos/a", time.Hour)
	if err != nil {
		t.Fatal(err)
	}
	if status, body, h := get(t, u, ""); status != http.StatusOK || !bytes.Equal(body, data) || h.Get("Content-Type") != "image/webp" {
		t.Fatalf("GET %s: %d %q %q", u, status, body, h.Get("Content-Type"))
	}
	if status, body, _ := get(t, u, "bytes=3-6"); status != http.StatusPartialContent || string(body) != "3456" {
		t.Fatalf("GET %s, Range bytes=3-6: %d %q, want 206 \"3456\"", u, status, body)
	}
}

// TestURLTampered checks that the signature covers what makes a URL
// worth having: the object, the expiry, and the signature itself.
func TestURLTampered(t *testing.T) {
	st, _ := open(t)
	ctx := t.Context()
	for _, k := range []string{"doc/mine", "doc/other"} {
		if err := st.Put(ctx, k, strings.NewReader(k), int64(len(k)), "text/plain"); err != nil {
			t.Fatal(err)
		}
	}
	raw, _, err := st.URL(ctx, "doc/mine", time.Minute)
	if err != nil {
		t.Fatal(err)
	}
	if status, _, _ := get(t, raw, ""); status != http.StatusOK {
		t.Fatalf("GET of the untouched URL: %d", status)
	}
	alter := func(f func(u *url.URL, q url.Values)) string {
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		q := u.Query()
		f(u, q)
		u.RawQuery = q.Encode()
		return u.String()
	}
	cases := map[string]string{
		"other key": alter(func(u *url.URL, _ url.Values) {
			u.Path = strings.Replace(u.Path, "doc/mine", "doc/other", 1)
		}),
		"longer expiry": alter(func(_ *url.URL, q url.Values) { q.Set("X-Amz-Expires", "604800") }),
		"later date": alter(func(_ *url.URL, q url.Values) {
			d, _ := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
			q.Set("X-Amz-Date", d.Add(time.Hour).Format("20060102T150405Z"))
		}),
		"other signature": alter(func(_ *url.URL, q url.Values) {
			sig := []byte(q.Get("X-Amz-Signature"))
			sig[0] = "01"[sig[0]&1^1]
			q.Set("X-Amz-Signature", string(sig))
		}),
		"no signature": alter(func(_ *url.URL, q url.Values) { q.Del("X-Amz-Signature") }),
	}
	for name, u := range cases {
		if u == raw {
			t.Fatalf("%s: the URL did not change", name)
		}
		status, body, _ := get(t, u, "")
		if status < 400 || status > 499 || bytes.Equal(body, []byte("doc/other")) || bytes.Equal(body, []byte("doc/mine")) {
			t.Errorf("%s: GET %s: %d %.100q, want a 4xx refusal", name, u, status, body)
		}
	}
}

// TestURLExpiry checks that ttl is clamped to what S3 allows and that the
// expiry returned is the one signed.
func TestURLExpiry(t *testing.T) {
	st, _ := open(t)
	for _, c := range []struct {
		ttl  time.Duration
		secs int64
	}{
		{-time.Hour, 1},
		{0, 1},
		{1500 * time.Millisecond, 1},
		{time.Hour, 3600},
		{7 * 24 * time.Hour, 604800},
		{30 * 24 * time.Hour, 604800},
	} {
		before := time.Now().Truncate(time.Second)
		raw, expires, err := st.URL(t.Context(), "a/b", c.ttl)
		after := time.Now()
		if err != nil {
			t.Fatalf("URL(ttl %v): %v", c.ttl, err)
		}
		u, err := url.Parse(raw)
		if err != nil {
			t.Fatal(err)
		}
		secs, _ := strconv.ParseInt(u.Query().Get("X-Amz-Expires"), 10, 64)
		if secs != c.secs {
			t.Errorf("URL(ttl %v): X-Amz-Expires %d, want %d", c.ttl, secs, c.secs)
		}
		d := time.Duration(c.secs) * time.Second
		if expires.Before(before.Add(d)) || expires.After(after.Add(d)) {
			t.Errorf("URL(ttl %v) made in [%v, %v]: expires %v", c.ttl, before, after, expires)
		}
	}
}

func TestOpenCreatesBucket(t *testing.T) {
	cfg := s3test.New(t)
	if cfg.Shared {
		t.Skipf("%s is set: the tests use a shared bucket and may not create one", s3test.EnvBucket)
	}
	client := s3test.Client(t, cfg)
	ctx := t.Context()
	if ok, err := client.BucketExists(ctx, cfg.Bucket); err != nil || ok {
		t.Fatalf("BucketExists(%s) before Open = %v, %v; want a fresh bucket name", cfg.Bucket, ok, err)
	}
	// Several nodes starting at once: all must come up, whichever
	// creates the bucket.
	const nodes = 8
	var wg sync.WaitGroup
	errs := make([]error, nodes)
	for i := range nodes {
		wg.Go(func() {
			st, err := Open(ctx, options(cfg))
			if err == nil {
				st.Close()
			}
			errs[i] = err
		})
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		t.Fatalf("concurrent Open of a missing bucket: %v", err)
	}
	if ok, err := client.BucketExists(ctx, cfg.Bucket); err != nil || !ok {
		t.Fatalf("BucketExists(%s) after Open = %v, %v", cfg.Bucket, ok, err)
	}
	// And a bucket that exists is simply used.
	st, err := Open(ctx, options(cfg))
	if err != nil {
		t.Fatalf("Open of an existing bucket: %v", err)
	}
	st.Close()
}

func TestPrefix(t *testing.T) {
	cfg := s3test.New(t)
	ctx := t.Context()
	stores := map[string]*Store{}
	for _, p := range []string{"tern/one", "tern/two/"} { // a slash at the end is dropped
		o := options(cfg)
		o.Prefix = cfg.Prefix + p
		st, err := Open(ctx, o)
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(st.Close)
		if err := st.Put(ctx, "k", strings.NewReader(p), int64(len(p)), "text/plain"); err != nil {
			t.Fatal(err)
		}
		stores[p] = st
	}
	for p, st := range stores {
		rc, _, err := st.Open(ctx, "k")
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(rc)
		rc.Close()
		if string(b) != p {
			t.Errorf("store with Prefix %q reads %q", p, b)
		}
	}
	client := s3test.Client(t, cfg)
	for _, name := range []string{"tern/one/k", "tern/two/k"} {
		if _, err := client.StatObject(ctx, cfg.Bucket, cfg.Prefix+name, minio.StatObjectOptions{}); err != nil {
			t.Errorf("object %s: %v", cfg.Prefix+name, err)
		}
	}
}

// TestMultipart puts objects over the part size, which go up as
// multipart uploads, and checks that a reader of the wrong length fails
// there too, including at the one place minio-go drops a reader's error:
// with the bytes that fill the last part.
func TestMultipart(t *testing.T) {
	st, _ := open(t)
	st.partSize = 5 << 20 // S3's smallest part, to keep the test quick
	ctx := t.Context()
	size := int64(2*st.partSize + 1234)
	if err := st.Put(ctx, "video/ok", newGen(1, size), size, "video/mp4"); err != nil {
		t.Fatalf("Put of %d bytes: %v", size, err)
	}
	rc, obj, err := st.Open(ctx, "video/ok")
	if err != nil {
		t.Fatal(err)
	}
	defer rc.Close()
	if obj.Size != size {
		t.Errorf("Size = %d, want %d", obj.Size, size)
	}
	if err := sameBytes(newGen(1, size), rc); err != nil {
		t.Error(err)
	}

	whole := int64(2 * st.partSize)
	for name, c := range map[string]struct {
		r    io.Reader
		size int64
		want error
	}{
		"longer, at a part boundary":  {newGen(2, whole+1), whole, errTooLong},
		"shorter, at a part boundary": {newGen(3, whole), whole + 1, io.ErrUnexpectedEOF},
		"shorter, within a part":      {newGen(4, whole-10), whole, io.ErrUnexpectedEOF},
		"failing at the end":          {io.MultiReader(newGen(5, whole), failReader{}), whole, errFail},
	} {
		key := "video/" + strings.ReplaceAll(strings.ReplaceAll(name, " ", "-"), ",", "")
		err := st.Put(ctx, key, c.r, c.size, "video/mp4")
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Put: %v, want %v", name, err, c.want)
		}
		if rc, _, err := st.Open(ctx, key); !errors.Is(err, media.ErrNotFound) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("%s: Open after the failed Put: %v, want media.ErrNotFound", name, err)
		}
	}
}

// TestReaderAt puts files as the server does, an *os.File or an
// io.SectionReader of one, which minio-go reads at offsets, parts in
// parallel: what is stored is the size bytes from the reader's position,
// and a reader of the wrong length fails and leaves nothing, in one PUT
// and in a multipart upload.
func TestReaderAt(t *testing.T) {
	st, _ := open(t)
	st.partSize = 5 << 20 // S3's smallest part, to keep the test quick
	ctx := t.Context()
	size := int64(3*st.partSize + 1234) // four parts: as many as go up at once
	file := func(seed byte, n int64) *os.File {
		f, err := os.CreateTemp(t.TempDir(), "body-*")
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { f.Close() })
		if _, err := io.Copy(f, newGen(seed, n)); err != nil {
			t.Fatal(err)
		}
		if _, err := f.Seek(0, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		return f
	}
	check := func(key string, want io.Reader, size int64) {
		t.Helper()
		rc, obj, err := st.Open(ctx, key)
		if err != nil {
			t.Fatal(err)
		}
		defer rc.Close()
		if obj.Size != size {
			t.Errorf("%s: Size = %d, want %d", key, obj.Size, size)
		}
		if err := sameBytes(want, rc); err != nil {
			t.Errorf("%s: %v", key, err)
		}
	}

	if err := st.Put(ctx, "video/section", io.NewSectionReader(file(1, size), 0, size), size, "video/mp4"); err != nil {
		t.Fatalf("Put of a section of %d bytes: %v", size, err)
	}
	check("video/section", newGen(1, size), size)

	// An *os.File is read from its position, as Read would, not from 0.
	f := file(2, size+100)
	if _, err := f.Seek(100, io.SeekStart); err != nil {
		t.Fatal(err)
	}
	if err := st.Put(ctx, "video/file", f, size, "video/mp4"); err != nil {
		t.Fatalf("Put of a file from offset 100: %v", err)
	}
	want := newGen(2, size+100)
	if _, err := io.CopyN(io.Discard, want, 100); err != nil {
		t.Fatal(err)
	}
	check("video/file", want, size)

	// One PUT.
	small := int64(100 << 10)
	if err := st.Put(ctx, "photo/file", file(3, small), small, "image/webp"); err != nil {
		t.Fatalf("Put of a file of %d bytes: %v", small, err)
	}
	check("photo/file", newGen(3, small), small)

	whole := int64(2 * st.partSize)
	for name, c := range map[string]struct {
		r    io.Reader
		size int64
		want error
	}{
		"short file":                 {file(4, size-10), size, io.ErrUnexpectedEOF},
		"short file, at a part end":  {file(5, whole), whole + 1, io.ErrUnexpectedEOF},
		"short section":              {io.NewSectionReader(file(6, size), 0, size-1), size, io.ErrUnexpectedEOF},
		"long file":                  {file(7, size+1), size, errTooLong},
		"long file, at a part end":   {file(8, whole+1), whole, errTooLong},
		"short file, one put":        {file(9, small-1), small, io.ErrUnexpectedEOF},
		"long file, one put":         {file(10, small+1), small, errTooLong},
		"long file, empty":           {file(11, 1), 0, errTooLong},
		"failing midway, from 7 mib": {io.NewSectionReader(failAt{strings.Repeat("x", int(size)), 7 << 20}, 0, size), size, errFail},
	} {
		key := "video/" + strings.ReplaceAll(strings.ReplaceAll(name, " ", "-"), ",", "")
		err := st.Put(ctx, key, c.r, c.size, "video/mp4")
		if !errors.Is(err, c.want) {
			t.Errorf("%s: Put: %v, want %v", name, err, c.want)
		}
		if rc, _, err := st.Open(ctx, key); !errors.Is(err, media.ErrNotFound) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("%s: Open after the failed Put: %v, want media.ErrNotFound", name, err)
		}
	}
}

// TestSinglePutLength checks the single-PUT path the same way.
func TestSinglePutLength(t *testing.T) {
	st, _ := open(t)
	ctx := t.Context()
	for name, c := range map[string]struct {
		r    io.Reader
		size int64
		want error
	}{
		"longer":           {strings.NewReader("12345"), 4, errTooLong},
		"shorter":          {strings.NewReader("123"), 4, io.ErrUnexpectedEOF},
		"longer than none": {strings.NewReader("1"), 0, errTooLong},
		"failing":          {io.MultiReader(strings.NewReader("1234"), failReader{}), 4, errFail},
	} {
		key := "s/" + strings.ReplaceAll(name, " ", "-")
		if err := st.Put(ctx, key, c.r, c.size, "text/plain"); !errors.Is(err, c.want) {
			t.Errorf("%s: Put: %v, want %v", name, err, c.want)
		}
		if rc, _, err := st.Open(ctx, key); !errors.Is(err, media.ErrNotFound) {
			if err == nil {
				rc.Close()
			}
			t.Errorf("%s: Open after the failed Put: %v, want media.ErrNotFound", name, err)
		}
	}
	if err := st.Put(ctx, "s/neg", strings.NewReader(""), -1, "text/plain"); err == nil {
		t.Error("Put with size -1 succeeded")
	}
}

func TestOpenOptions(t *testing.T) {
	good := Options{Endpoint: "http://127.0.0.1:1", AccessKey: "a", SecretKey: "s", Bucket: "media"}
	for name, f := range map[string]func(o *Options){
		"no endpoint":       func(o *Options) { o.Endpoint = "" },
		"endpoint scheme":   func(o *Options) { o.Endpoint = "ftp://127.0.0.1:1" },
		"endpoint path":     func(o *Options) { o.Endpoint = "http://127.0.0.1:1/media" },
		"endpoint host":     func(o *Options) { o.Endpoint = "127.0.0.1:9000" },
		"no access key":     func(o *Options) { o.AccessKey = "" },
		"no secret key":     func(o *Options) { o.SecretKey = "" },
		"no bucket":         func(o *Options) { o.Bucket = "" },
		"bucket uppercase":  func(o *Options) { o.Bucket = "Media" },
		"prefix uppercase":  func(o *Options) { o.Prefix = "Tern" },
		"prefix dots":       func(o *Options) { o.Prefix = "a/../b" },
		"prefix empty part": func(o *Options) { o.Prefix = "a//b" },
	} {
		o := good
		f(&o)
		// The port is closed: an Options check that let this through
		// would fail on the connection instead, after minio-go's retries.
		ctx, cancel := context.WithCancel(t.Context())
		cancel()
		if st, err := Open(ctx, o); err == nil || errors.Is(err, context.Canceled) {
			if st != nil {
				st.Close()
			}
			t.Errorf("%s: Open(%+v) = %v, want an Options error", name, o, err)
		}
	}
}

// get fetches u as a client would, with a Range header unless rng is "".
func get(t *testing.T, u, rng string) (int, []byte, http.Header) {
	t.Helper()
	req, err := http.NewRequestWithContext(t.Context(), http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	if rng != "" {
		req.Header.Set("Range", rng)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	return resp.StatusCode, body, resp.Header
}
