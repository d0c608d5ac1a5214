package server

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/multipart"
	"net/http"
	"os"
	"strings"
	"time"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/media/imaging"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// maxUploadOverhead is what a multipart body may hold besides the file:
// boundaries, part headers, a short field or two.
const maxUploadOverhead = 64 << 10

// handleUpload takes a file (the raw body with its Content-Type, or the
// multipart field "file"), checks its kind, type and size by its bytes,
// strips an image's metadata and makes its thumbnail, stores it and
// answers its media object. The file passes through UploadDir, never
// whole through memory. ?kind= says what the client sends (image, video,
// audio, document, sticker); without it, the type decides.
func (s *Server) handleUpload(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	if s.media == nil {
		s.writeErr(w, r, wire.Errorf(wire.CodeUnsupported, "this server keeps no media"))
		return
	}
	var kind imaging.Kind
	if k := r.URL.Query().Get("kind"); k != "" {
		var err error
		if kind, err = imaging.ParseKind(k); err != nil {
			s.writeErr(w, r, wire.Errorf(wire.CodeBadRequest, "kind %q: want image, video, audio, document or sticker", k))
			return
		}
	}
	limit := s.uploadLimit(kind)
	if kind == 0 {
		limit = s.maxUploadLimit()
	}
	if r.ContentLength > limit+maxUploadOverhead {
		// Said up front: refused before a byte of it is read.
		s.writeErr(w, r, wire.Errorf(wire.CodeTooLarge, "upload over %d bytes", limit))
		return
	}
	if wait := s.uploadsByUser.take(c.UserID, 1, time.Now()); wait > 0 {
		s.writeErr(w, r, rateLimited(wait, "uploads this hour"))
		return
	}
	// The listener's read and write timeouts are for JSON requests; a
	// file on a slow uplink needs longer.
	defer extendDeadlines(w, transferTime(limit), true)()
	r.Body = http.MaxBytesReader(w, r.Body, limit+maxUploadOverhead)
	src, declared, err := uploadPart(r)
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	f, err := s.receive(r.Context(), c.UserID, src, declared, kind, limit)
	if err != nil {
		s.uploadsByUser.give(c.UserID, 1) // nothing was stored
	}
	s.writeMedia(w, r, http.StatusCreated, &f, err)
}

// handleMedia answers a file's media object with a fresh URL, to its
// uploader and the members of the chats it was sent to.
func (s *Server) handleMedia(w http.ResponseWriter, r *http.Request, c auth.Claims) {
	if s.media == nil {
		s.writeErr(w, r, wire.Errorf(wire.CodeUnsupported, "this server keeps no media"))
		return
	}
	f, err := s.chat.Media(r.Context(), claimsActor(c), r.PathValue("media_id"), r.URL.Query().Get("chat_id"))
	s.writeMedia(w, r, http.StatusOK, &f, err)
}

// writeMedia answers f's media object with a link made now, or err.
func (s *Server) writeMedia(w http.ResponseWriter, r *http.Request, status int, f *store.MediaFile, err error) {
	var out wire.Media
	if err == nil {
		out, err = s.mediaObject(r.Context(), f)
	}
	if err != nil {
		s.writeErr(w, r, err)
		return
	}
	writeJSON(w, status, out)
}

// minTransferRate is the slowest link an upload or a download is given
// time for (a poor mobile uplink): a 100 MiB document gets 13 minutes.
const minTransferRate = 128 << 10 // bytes per second

// transferTime is how long n bytes may take at minTransferRate, plus the
// listener's usual 30 seconds.
func transferTime(n int64) time.Duration {
	return 30*time.Second + time.Duration(n/minTransferRate)*time.Second
}

// maxUploadLimit is the largest upload of any kind.
func (s *Server) maxUploadLimit() int64 {
	var n int64
	for k := imaging.Image; k <= imaging.Sticker; k++ {
		n = max(n, s.uploadLimit(k))
	}
	return n
}

// mediaFiles serves the links of a media store that serves its own
// (media/fs), with time for a large file on a slow link.
func (s *Server) mediaFiles(h http.Handler) http.Handler {
	limit := s.maxUploadLimit()
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		defer extendDeadlines(w, transferTime(limit), false)()
		h.ServeHTTP(w, r)
	})
}

// extendDeadlines gives the request's connection d to write its answer
// (and to read its body, if read), and returns what clears them again
// once the request is done: a listener with its own timeouts sets them
// afresh for the next request, and one without (server.Run) must not
// keep these for the next request on the connection.
func extendDeadlines(w http.ResponseWriter, d time.Duration, read bool) func() {
	rc := http.NewResponseController(w)
	if read {
		_ = rc.SetReadDeadline(time.Now().Add(d))
	}
	_ = rc.SetWriteDeadline(time.Now().Add(d + 30*time.Second))
	return func() {
		if read {
			_ = rc.SetReadDeadline(time.Time{})
		}
		_ = rc.SetWriteDeadline(time.Time{})
	}
}

func (s *Server) uploadLimit(k imaging.Kind) int64 {
	if n, ok := s.cfg.MediaLimits[k.String()]; ok && n > 0 {
		return n
	}
	return k.MaxSize()
}

// uploadPart returns the file of an upload and its declared type.
func uploadPart(r *http.Request) (io.Reader, string, error) {
	ct := r.Header.Get("Content-Type")
	mt, params, err := mime.ParseMediaType(ct)
	if err != nil || mt != "multipart/form-data" {
		return r.Body, ct, nil
	}
	mr := multipart.NewReader(r.Body, params["boundary"])
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			return nil, "", wire.Errorf(wire.CodeBadRequest, `multipart upload without a "file" part`)
		}
		if err != nil {
			return nil, "", uploadErr(err)
		}
		if p.FormName() == "file" {
			return p, p.Header.Get("Content-Type"), nil
		}
	}
}

// uploadErr names what went wrong with reading an upload.
func uploadErr(err error) error {
	var mb *http.MaxBytesError
	if errors.As(err, &mb) {
		return wire.Errorf(wire.CodeTooLarge, "upload over %d bytes", mb.Limit-maxUploadOverhead)
	}
	return wire.Errorf(wire.CodeBadRequest, "reading the upload: %v", err)
}

// receive checks, cleans and stores one upload, and records it.
func (s *Server) receive(ctx context.Context, owner string, src io.Reader, declared string, kind imaging.Kind, limit int64) (store.MediaFile, error) {
	raw, err := os.CreateTemp(s.cfg.UploadDir, "tern-upload-*")
	if err != nil {
		return store.MediaFile{}, fmt.Errorf("upload: %w", err)
	}
	defer func() { raw.Close(); os.Remove(raw.Name()) }()
	n, err := io.Copy(raw, io.LimitReader(src, limit+1))
	switch {
	case err != nil:
		return store.MediaFile{}, uploadErr(err)
	case n > limit:
		return store.MediaFile{}, wire.Errorf(wire.CodeTooLarge, "upload over %d bytes", limit)
	case n == 0:
		return store.MediaFile{}, wire.Errorf(wire.CodeBadRequest, "the upload is empty")
	}
	head := make([]byte, min(n, imaging.HeadLen))
	if _, err := raw.ReadAt(head, 0); err != nil {
		return store.MediaFile{}, fmt.Errorf("upload: %w", err)
	}
	sniffAs := kind
	if sniffAs == 0 {
		sniffAs = imaging.Document // accepts any type: the type decides the kind below
	}
	typ, err := imaging.Sniff(head, declared, sniffAs)
	if err != nil {
		return store.MediaFile{}, wire.Errorf(wire.CodeBadRequest, "%v", err)
	}
	if kind == 0 {
		kind = kindOf(typ)
		if kind == imaging.Document && strings.HasPrefix(typ, "image/") {
			// A picture this server cannot clean (HEIC, TIFF, ...) would
			// keep its EXIF, GPS included: only as an explicit document.
			return store.MediaFile{}, wire.Errorf(wire.CodeBadRequest,
				"%s cannot be sent as an image (its metadata cannot be removed); send it with kind=document", typ)
		}
	}
	if n > s.uploadLimit(kind) {
		return store.MediaFile{}, wire.Errorf(wire.CodeTooLarge, "%s over %d bytes", kind, s.uploadLimit(kind))
	}
	f := store.MediaFile{ID: store.NewID(store.PrefixMedia), Owner: owner, Kind: kind.String(), MIME: typ, Size: n,
		CreatedAt: s.chat.Now().UTC()}
	f.Key = "m/" + f.ID
	body := raw
	if kind == imaging.Image || kind == imaging.Sticker {
		clean, err := os.CreateTemp(s.cfg.UploadDir, "tern-upload-*")
		if err != nil {
			return store.MediaFile{}, fmt.Errorf("upload: %w", err)
		}
		defer func() { clean.Close(); os.Remove(clean.Name()) }()
		res, err := s.processImage(ctx, clean, raw, n, typ, kind)
		switch {
		case errors.Is(err, imaging.ErrTooManyPixels):
			return store.MediaFile{}, wire.Errorf(wire.CodeTooLarge, "%v", err)
		case errors.Is(err, imaging.ErrInvalidImage), errors.Is(err, imaging.ErrUnsupportedType):
			return store.MediaFile{}, wire.Errorf(wire.CodeBadRequest, "%v", err)
		case err != nil:
			return store.MediaFile{}, fmt.Errorf("upload: %w", err)
		}
		f.Size, f.Width, f.Height, f.Thumbnail = res.Size, res.Width, res.Height, res.Thumbnail
		if len(f.Thumbnail) > maxThumbnail {
			f.Thumbnail = nil // every message carrying the file would carry it
		}
		body = clean
	}
	// The hash takes a pass of its own over the file (local disk, most
	// likely still in the page cache) so that Put gets the file as an
	// io.ReaderAt: media/s3 then uploads the parts of a large file from
	// their offsets, in parallel, rather than buffering 16 MiB per upload,
	// which a reader that hashes as it goes would make it do.
	h := sha256.New()
	if _, err := io.CopyN(h, io.NewSectionReader(body, 0, f.Size), f.Size); err != nil {
		return store.MediaFile{}, fmt.Errorf("upload: hashing the file: %w", err)
	}
	f.SHA256 = hex.EncodeToString(h.Sum(nil))
	if err := s.media.Put(ctx, f.Key, io.NewSectionReader(body, 0, f.Size), f.Size, f.MIME); err != nil {
		return store.MediaFile{}, fmt.Errorf("upload: %w", err)
	}
	if err := s.st.CreateMediaFile(ctx, f); err != nil {
		if derr := s.media.Delete(context.WithoutCancel(ctx), f.Key); derr != nil {
			s.log.Warn("upload: an object without a record stays", "key", f.Key, "err", derr)
		}
		return store.MediaFile{}, fmt.Errorf("upload: %w", err)
	}
	return f, nil
}

// kindOf is the kind of a file sent without one: what its type says.
func kindOf(typ string) imaging.Kind {
	for _, k := range []imaging.Kind{imaging.Image, imaging.Video, imaging.Audio} {
		if k.Accepts(typ) {
			return k
		}
	}
	return imaging.Document
}

// mediaObject is f as the API answers it, with a URL made now.
func (s *Server) mediaObject(ctx context.Context, f *store.MediaFile) (wire.Media, error) {
	url, exp, err := s.media.URL(ctx, f.Key, s.cfg.MediaURLTTL)
	if err != nil {
		return wire.Media{}, fmt.Errorf("media %s: %w", f.ID, err)
	}
	return wire.Media{MediaID: f.ID, URL: url, ExpiresTS: exp.UnixMilli(), Size: f.Size, MIMEType: f.MIME,
		SHA256: f.SHA256, Kind: f.Kind, Width: f.Width, Height: f.Height, Thumbnail: f.Thumbnail}, nil
}

// maxThumbnail bounds a thumbnail kept with a file: a photo's is 3 to 12
// KiB, and only a picture made to defeat JPEG (noise) comes out larger.
const maxThumbnail = 16 << 10

// stickerPixels bounds a sticker's picture (512 × 512 is the norm): a
// small file may claim many pixels, and decoding allocates for all of them.
const stickerPixels = 1024 * 1024

// processImage cleans an image upload, at most cap(s.imaging) at a time:
// decoding takes memory in proportion to the pixels (a 50-megapixel
// picture needs hundreds of MB), which the upload limits do not bound.
func (s *Server) processImage(ctx context.Context, w io.Writer, r io.ReaderAt, n int64, typ string, kind imaging.Kind) (imaging.Result, error) {
	select {
	case s.imaging <- struct{}{}:
		defer func() { <-s.imaging }()
	case <-ctx.Done():
		return imaging.Result{}, wire.Errorf(wire.CodeUnavailable, "the upload was canceled while waiting for its turn")
	}
	var opt imaging.Options
	if kind == imaging.Sticker {
		opt.MaxPixels = stickerPixels
	}
	return imaging.Process(w, r, n, typ, opt)
}

// collectPage is how many files one collection round takes at a time;
// collectPages bounds the pages of a round.
const (
	collectPage  = 100
	collectPages = 10
)

// collectMedia deletes the files no message carries: uploads never sent
// within MediaGrace, and at once those whose last message was deleted for
// everyone or expired (the store lists them as idle since the zero time).
// Each is claimed first (ClaimMediaFile): the store checks that it is
// still listed and carried by no message, and from then on refuses to
// share it, so that a forward racing the deletion is answered not_found
// instead of being stored with a file about to go. Then the object goes,
// then the record, so that a record never names a missing object for
// longer than a failed delete (and a claimed record stays listed, for the
// next round to finish). Every node runs it; the deletes are idempotent.
// A listed file that a message carries again (a release that raced a
// send) is not claimed, and is shared again to take it off the list.
func (s *Server) collectMedia() {
	ctx, cancel := context.WithTimeout(s.ctx, time.Minute)
	defer cancel()
	before := s.chat.Now().Add(-s.cfg.MediaGrace)
	for range collectPages {
		files, err := s.st.UnsharedMediaFiles(ctx, before, collectPage)
		if err != nil {
			if ctx.Err() == nil {
				s.log.Warn("media: listing the files no message carries", "err", err)
			}
			return
		}
		done := 0
		for _, f := range files {
			claimed, err := s.st.ClaimMediaFile(ctx, f.ID, before)
			if err != nil {
				s.log.Warn("media: claiming a file no message carries", "media_id", f.ID, "err", err)
				continue
			}
			if !claimed {
				// Carried again, shared or released since the list was
				// read, or another node's to delete.
				refs, err := s.st.MediaFileRefs(ctx, f.ID, 1)
				if err == nil && len(refs) > 0 {
					if err := s.st.ShareMediaFile(ctx, f.ID, refs[0].ChatID, refs[0].MsgID); err == nil {
						done++
					}
				}
				continue
			}
			if err := s.media.Delete(ctx, f.Key); err != nil {
				s.log.Warn("media: deleting a file no message carries", "media_id", f.ID, "err", err)
				continue
			}
			if err := s.st.DeleteMediaFile(ctx, f.ID); err != nil {
				s.log.Warn("media: deleting the record of a file no message carries", "media_id", f.ID, "err", err)
				continue
			}
			done++
		}
		if len(files) < collectPage || done == 0 {
			return // all of it, or a page that fails: the next round tries again
		}
	}
}
