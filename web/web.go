package web

import (
	"bytes"
	"compress/gzip"
	"crypto/sha256"
	"embed"
	"encoding/base64"
	"fmt"
	"io/fs"
	"mime"
	"net/http"
	"net/url"
	"path"
	"strconv"
	"strings"
)

//go:embed static
var static embed.FS

// Options are what the apps need to know about the node that serves them.
type Options struct {
	// MediaOrigins are origins other than the node's own that media URLs
	// point at (an S3 endpoint, "https://s3.example.com"): the page may
	// load images and files from them, nothing else.
	MediaOrigins []string
}

// asset is one file, read and compressed once at start.
type asset struct {
	body, gz     []byte
	ctype        string
	etag, etagGz string // each encoding is its own representation, with its own validator
}

// Handler serves the apps: GET / is the chat client's page, GET /admin the
// admin dashboard's, GET /assets/… their scripts, styles and icons.
type Handler struct {
	assets map[string]*asset // by URL path
	csp    string
}

// New reads the embedded files. It fails only on a broken build.
func New(o Options) (*Handler, error) {
	h := &Handler{assets: map[string]*asset{}}
	err := fs.WalkDir(static, "static", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		body, err := static.ReadFile(p)
		if err != nil {
			return err
		}
		url := "/assets/" + strings.TrimPrefix(p, "static/")
		switch p {
		case "static/index.html":
			url = "/"
		case "static/admin.html":
			url = "/admin"
		}
		a := &asset{body: body, ctype: mime.TypeByExtension(path.Ext(p))}
		if a.ctype == "" {
			a.ctype = "application/octet-stream"
		}
		sum := sha256.Sum256(body)
		a.etag = `"` + base64.RawURLEncoding.EncodeToString(sum[:12]) + `"`
		var buf bytes.Buffer
		zw, _ := gzip.NewWriterLevel(&buf, gzip.BestCompression)
		if _, err := zw.Write(body); err != nil {
			return err
		}
		if err := zw.Close(); err != nil {
			return err
		}
		if buf.Len() < len(body) {
			a.gz = buf.Bytes()
			a.etagGz = a.etag[:len(a.etag)-1] + `-gz"`
		}
		h.assets[url] = a
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("web: reading the embedded apps: %w", err)
	}
	if h.assets["/"] == nil {
		return nil, fmt.Errorf("web: the embedded apps have no index.html")
	}
	media := ""
	for _, origin := range o.MediaOrigins {
		u, err := url.Parse(origin)
		if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.Path != "" || u.RawQuery != "" ||
			strings.ContainsAny(origin, " ;,'\"") {
			return nil, fmt.Errorf("web: media origin %q: want scheme://host[:port]", origin)
		}
		media += " " + u.Scheme + "://" + u.Host
	}
	// connect-src 'self' covers the same origin's ws: and wss: in every
	// browser that implements CSP level 3.
	h.csp = "default-src 'none'; script-src 'self'; style-src 'self'; connect-src 'self'; " +
		"img-src 'self' data: blob:" + media + "; media-src 'self' blob:" + media + "; " +
		"font-src 'self'; manifest-src 'self'; worker-src 'self'; " +
		"base-uri 'none'; form-action 'self'; frame-ancestors 'none'"
	return h, nil
}

// Size is what the browser transfers for one path (gzipped when that is
// smaller), and whether the path is served: for tests and benchmarks.
func (h *Handler) Size(path string) (int, bool) {
	a := h.assets[path]
	if a == nil {
		return 0, false
	}
	if a.gz != nil {
		return len(a.gz), true
	}
	return len(a.body), true
}

// Paths lists every path served.
func (h *Handler) Paths() []string {
	out := make([]string, 0, len(h.assets))
	for p := range h.assets {
		out = append(out, p)
	}
	return out
}

func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	a := h.assets[r.URL.Path]
	hd := w.Header()
	hd.Set("Content-Security-Policy", h.csp)
	hd.Set("X-Content-Type-Options", "nosniff")
	hd.Set("Referrer-Policy", "no-referrer")
	hd.Set("X-Frame-Options", "DENY")
	hd.Set("Cross-Origin-Opener-Policy", "same-origin")
	if a == nil {
		hd.Set("Content-Type", "text/plain; charset=utf-8")
		w.WriteHeader(http.StatusNotFound)
		_, _ = w.Write([]byte("not found\n"))
		return
	}
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		hd.Set("Allow", "GET, HEAD")
		w.WriteHeader(http.StatusMethodNotAllowed)
		return
	}
	// Revalidated on every load (a 304 costs one round trip): a node that
	// was upgraded serves its new scripts at once, never a mix of versions
	// out of a cache.
	hd.Set("Cache-Control", "no-cache")
	gz := a.gz != nil && acceptsGzip(r.Header.Get("Accept-Encoding"))
	etag := a.etag
	if gz {
		etag = a.etagGz
	}
	hd.Set("ETag", etag)
	hd.Set("Vary", "Accept-Encoding")
	if match := r.Header.Get("If-None-Match"); match != "" && strings.Contains(match, etag) {
		w.WriteHeader(http.StatusNotModified)
		return
	}
	hd.Set("Content-Type", a.ctype)
	if r.URL.Path == "/assets/sw.js" {
		// The worker lives with the other files but serves the whole
		// site: its notifications open chats at /.
		hd.Set("Service-Worker-Allowed", "/")
	}
	body := a.body
	if gz {
		hd.Set("Content-Encoding", "gzip")
		body = a.gz
	}
	hd.Set("Content-Length", strconv.Itoa(len(body)))
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// acceptsGzip is whether an Accept-Encoding list takes gzip (not "gzip;q=0").
func acceptsGzip(ae string) bool {
	for _, part := range strings.Split(ae, ",") {
		name, params, _ := strings.Cut(strings.TrimSpace(part), ";")
		if !strings.EqualFold(strings.TrimSpace(name), "gzip") {
			continue
		}
		q := strings.ReplaceAll(params, " ", "")
		return q != "q=0" && q != "q=0.0" && q != "q=0.00" && q != "q=0.000"
	}
	return false
}
