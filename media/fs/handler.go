package fs

import (
	"crypto/hmac"
	"errors"
	"mime"
	"net/http"
	"strconv"
	"strings"
	"time"

	"github.com/tern-im/tern/media"
)

// Handler serves the URLs that URL makes: GET and HEAD of FilesPath + key
// with a valid, unexpired signature. Mount it at FilesPath, e.g.
// mux.Handle(fs.FilesPath, store.Handler()); it reads the key from the
// request's whole path, so it must not sit behind http.StripPrefix.
func (s *Store) Handler() http.Handler {
	return http.HandlerFunc(s.serve)
}

func (s *Store) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodGet && r.Method != http.MethodHead {
		w.Header().Set("Allow", "GET, HEAD")
		http.Error(w, "method not allowed", http.StatusMethodNotAllowed)
		return
	}
	key, ok := strings.CutPrefix(r.URL.Path, FilesPath)
	if !ok {
		http.NotFound(w, r)
		return
	}
	// The signature is checked before the key or the file, so that without
	// a URL from Tern nobody learns which keys exist.
	q := r.URL.Query()
	exps, sigs := q["exp"], q["sig"]
	if len(exps) != 1 || len(sigs) != 1 || !hmac.Equal([]byte(sigs[0]), []byte(s.sign(key, exps[0]))) {
		forbidden(w, "invalid link")
		return
	}
	exp, err := strconv.ParseInt(exps[0], 10, 64)
	if err != nil {
		// Only a URL signed with this secret gets here, and URL writes
		// exp in decimal; a bad one means the secret signed something else.
		forbidden(w, "invalid link")
		return
	}
	left := time.Unix(exp, 0).Sub(s.now())
	if left <= 0 {
		forbidden(w, "link expired")
		return
	}
	if !media.ValidKey(key) {
		http.NotFound(w, r)
		return
	}
	o, err := s.open(r.Context(), key)
	if errors.Is(err, media.ErrNotFound) {
		http.NotFound(w, r)
		return
	}
	if err != nil {
		if r.Context().Err() == nil {
			s.log.Error("media/fs: cannot serve a file", "key", key, "err", err)
		}
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	defer o.Close()

	h := w.Header()
	ct := o.obj.ContentType
	if ct == "" {
		ct = "application/octet-stream"
	}
	h.Set("Content-Type", ct)
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Cache-Control", "private, max-age="+strconv.FormatInt(int64(left/time.Second), 10))
	if !inline(ct) {
		h.Set("Content-Disposition", "attachment")
	}
	// Every Put writes a new version, so that a download resumed with
	// If-Range across a replacement starts over rather than splicing two.
	h.Set("ETag", `"`+o.version+`"`)
	http.ServeContent(w, r, "", o.modTime, o.SectionReader)
}

// forbidden answers 403 with a short reason: the holder of a link learns
// that it is bad or too old, and nothing about the object.
func forbidden(w http.ResponseWriter, msg string) {
	w.Header().Set("Cache-Control", "no-store")
	http.Error(w, msg, http.StatusForbidden)
}

// inline reports whether a browser may render a file of type ct in place:
// images, video and audio, which cannot run script. SVG is an image that
// can, so it is downloaded like a document.
func inline(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	if err != nil {
		return false
	}
	if mt == "image/svg+xml" {
		return false
	}
	major, _, _ := strings.Cut(mt, "/")
	return major == "image" || major == "video" || major == "audio"
}
