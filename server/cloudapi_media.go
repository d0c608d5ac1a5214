package server

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/tern-im/tern/business/cloudapi"
	"github.com/tern-im/tern/chat"
	"github.com/tern-im/tern/internal/safehttp"
	"github.com/tern-im/tern/media"
	"github.com/tern-im/tern/media/imaging"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// The Cloud API's media (issue 13; docs/protocol.md, "Business API").
// Uploads go through the pipeline of POST /v1/media (s.receive: the bytes
// name the type, images lose their metadata) as the business's user, so a
// business's file is a Tern file like any other: chat.Send shares it to
// the chat it is sent to, the collector deletes it once no message
// carries it. A media object's id is Tern's media id.
//
// Hashes: GET /{media_id} answers sha256 in hex, as Graph does there; the
// webhooks' media objects carry the same digest in standard base64, as
// Meta's do (cloudapi.WebhookSHA256).

// defaultGraphVersion names the download URL of a media object asked for
// without a version in its path.
const defaultGraphVersion = "v23.0"

// Link fetches: the whole fetch, and the redirects followed (each one's
// address checked again as it is dialled).
const (
	linkTimeout          = 30 * time.Second
	maxLinkFetches       = 8 // media links fetched at a time per node
	maxLinkFetchesPerBiz = 2 // and per business
	linkSlotWait         = 5 * time.Second
	maxLinkRedirects     = 5
)

// handleBizUpload is POST /{phone_number_id}/media: a multipart form with
// messaging_product, file and type, in any order. The file streams into
// the upload pipeline as it arrives; the bytes decide its type and kind
// (type only settles what they leave open, as a part's Content-Type does
// on POST /v1/media). Answers {"id": media id}.
func (s *Server) handleBizUpload(w http.ResponseWriter, r *http.Request, b store.Business) {
	if s.media == nil {
		writeGraph(w, cloudapi.ErrMediaUpload("this server keeps no media"))
		return
	}
	limit := s.maxUploadLimit()
	if r.ContentLength > limit+maxUploadOverhead {
		// Said up front: refused before a byte of it is read.
		writeGraph(w, cloudapi.ErrInvalidParameter(fmt.Sprintf("upload over %d bytes", limit)))
		return
	}
	if wait := s.uploadsByUser.take(b.UserID, 1, time.Now()); wait > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(int(wait/time.Second)+1))
		writeGraph(w, cloudapi.ErrRateLimitIssues())
		return
	}
	defer extendDeadlines(w, transferTime(limit), true)()
	r.Body = http.MaxBytesReader(w, r.Body, limit+maxUploadOverhead)
	ctx := r.Context()
	var f store.MediaFile
	stored := false
	_, err := cloudapi.ReadMediaUpload(r.Body, r.Header.Get("Content-Type"), func(src io.Reader, u cloudapi.MediaUpload) error {
		declared := u.FileType
		if u.Type != "" {
			declared = u.Type // the Cloud API's own declaration, when it came first
		}
		var err error
		f, err = s.receive(ctx, b.UserID, src, declared, 0, limit)
		stored = err == nil
		return err
	})
	if err != nil {
		if stored {
			s.dropUpload(ctx, f) // its id was never answered: nobody can hold it
		}
		s.uploadsByUser.give(b.UserID, 1)
		writeGraph(w, s.mediaGraphErr(r.URL.Path, "", err, cloudapi.ErrInvalidParameter))
		return
	}
	writeJSON(w, http.StatusOK, cloudapi.MediaIDResponse{ID: f.ID})
}

// handleBizMedia is GET /{media_id}: the file's description and the URL
// of its bytes, which, like Meta's, needs the bearer token.
func (s *Server) handleBizMedia(w http.ResponseWriter, r *http.Request, b store.Business) {
	f, ok := s.bizFile(w, r, b)
	if !ok {
		return
	}
	writeJSON(w, http.StatusOK, cloudapi.NewMediaURLResponse(f.ID, s.bizContentURL(r, f.ID), f.MIME, f.SHA256, f.Size))
}

// handleBizMediaContent is GET /{media_id}/content: the file's bytes,
// fenced in as media/fs serves them (nosniff, a sandbox, an attachment),
// since they come from the API's own origin.
func (s *Server) handleBizMediaContent(w http.ResponseWriter, r *http.Request, b store.Business) {
	f, ok := s.bizFile(w, r, b)
	if !ok {
		return
	}
	ctx := r.Context()
	rc, obj, err := s.media.Open(ctx, f.Key)
	if errors.Is(err, media.ErrNotFound) {
		s.log.Warn("business media: a record without its object", "media_id", f.ID)
		writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, f.ID))
		return
	}
	if err != nil {
		s.log.Error("business media: opening a file failed", "media_id", f.ID, "err", err)
		writeGraph(w, serviceUnavailable())
		return
	}
	defer rc.Close()
	size := f.Size
	if obj.Size > 0 {
		size = obj.Size
	}
	ct := f.MIME
	if ct == "" {
		ct = "application/octet-stream"
	}
	h := w.Header()
	h.Set("Content-Type", ct)
	h.Set("Content-Length", strconv.FormatInt(size, 10))
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Content-Security-Policy", "sandbox")
	h.Set("Content-Disposition", "attachment")
	h.Set("Cache-Control", "private, no-store")
	defer extendDeadlines(w, transferTime(size), false)()
	w.WriteHeader(http.StatusOK)
	if _, err := io.Copy(w, rc); err != nil && ctx.Err() == nil {
		s.log.Warn("business media: a download broke off", "media_id", f.ID, "err", err)
	}
}

// handleBizMediaDelete is DELETE /{media_id}, of the business's own
// uploads. A file no message carries goes now (claimed, then its bytes,
// then its record, as the collector deletes); one that messages carry
// stays for their readers, and the collector deletes it once none does.
// Either way the answer is Graph's {"success": true}.
func (s *Server) handleBizMediaDelete(w http.ResponseWriter, r *http.Request, b store.Business) {
	id := r.PathValue("media_id")
	if s.media == nil || !bizPhoneMatches(r, b) {
		writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, id))
		return
	}
	ctx := context.WithoutCancel(r.Context()) // not left halfway by a client that hangs up
	f, err := s.st.MediaFile(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && f.Owner != b.UserID {
		writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, id))
		return
	}
	if err != nil {
		s.log.Error("business media: lookup failed", "media_id", id, "err", err)
		writeGraph(w, serviceUnavailable())
		return
	}
	// Listed since its upload (or since its last message went): any time
	// up to now, on this node's clock or the uploader's.
	before := s.chat.Now()
	if f.CreatedAt.After(before) {
		before = f.CreatedAt
	}
	claimed, err := s.st.ClaimMediaFile(ctx, id, before.Add(time.Millisecond))
	if err != nil {
		s.log.Error("business media: claiming a file to delete failed", "media_id", id, "err", err)
		writeGraph(w, serviceUnavailable())
		return
	}
	if claimed {
		// From the claim on the file is gone to readers and senders; a
		// step that fails here is finished by the collector.
		if err := s.media.Delete(ctx, f.Key); err != nil {
			s.log.Warn("business media: deleting a file's bytes failed; the collector will", "media_id", id, "err", err)
		} else if err := s.st.DeleteMediaFile(ctx, id); err != nil {
			s.log.Warn("business media: deleting a file's record failed; the collector will", "media_id", id, "err", err)
		}
	}
	writeJSON(w, http.StatusOK, cloudapi.SuccessResponse{Success: true})
}

// bizFile is the file a media path names, if the business may fetch it:
// its own upload, or a file shared to one of its chats (a customer's).
// Anything else is answered 100/33, as a file that does not exist.
func (s *Server) bizFile(w http.ResponseWriter, r *http.Request, b store.Business) (store.MediaFile, bool) {
	id := r.PathValue("media_id")
	if s.media == nil || !bizPhoneMatches(r, b) {
		writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, id))
		return store.MediaFile{}, false
	}
	f, err := s.chat.Media(r.Context(), chat.Actor{UserID: b.UserID, DeviceID: b.DeviceID}, id, "")
	if err != nil {
		var we *wire.Error
		if errors.As(err, &we) && we.Code == wire.CodeNotFound {
			writeGraph(w, cloudapi.ErrObjectNotFound(r.Method, id))
		} else {
			s.log.Error("business media: lookup failed", "media_id", id, "err", err)
			writeGraph(w, serviceUnavailable())
		}
		return store.MediaFile{}, false
	}
	return f, true
}

// bizPhoneMatches checks the ?phone_number_id= SDKs may send with a media
// id: if given, it must be the business's.
func bizPhoneMatches(r *http.Request, b store.Business) bool {
	p := r.URL.Query().Get("phone_number_id")
	return p == "" || p == b.PhoneNumberID
}

// bizContentURL is where media id's bytes are, on the host and scheme
// the request came by, with the request's Graph version.
func (s *Server) bizContentURL(r *http.Request, id string) string {
	scheme := "http"
	if s.secureRequest(r) {
		scheme = "https"
	}
	v := r.PathValue("version")
	if v == "" {
		v = defaultGraphVersion
	}
	return (&url.URL{Scheme: scheme, Host: r.Host, Path: "/" + v + "/" + id + "/content"}).String()
}

// bizMediaBody is the body of a media send (kind is the Cloud API's
// type: image, video, audio, document, sticker), by uploaded id or link.
// The file is the business's own: an upload of its (of another kind, a
// copy made as this one, which its bytes must fit: a PNG sent as a
// document, a WebP as a sticker), or the link's bytes, fetched now. A
// sticker is image/webp, as the Cloud API wants; audio and stickers carry
// no caption; a document's filename has nowhere to go in a Tern message.
func (s *Server) bizMediaBody(ctx context.Context, b store.Business, kind string, m *cloudapi.Media) (*wire.Body, *cloudapi.Error) {
	k, err := imaging.ParseKind(kind)
	if err != nil || m == nil {
		return nil, cloudapi.ErrUnsupportedMessageType()
	}
	if s.media == nil {
		return nil, cloudapi.ErrMediaUpload("this server keeps no media")
	}
	var f store.MediaFile
	var gerr *cloudapi.Error
	if m.ID != "" {
		f, gerr = s.bizOwnFile(ctx, b, kind, m.ID, k)
	} else {
		f, gerr = s.bizLinkFile(ctx, b, m.Link, k)
	}
	if gerr != nil {
		return nil, gerr
	}
	body := &wire.Body{MediaID: f.ID}
	if k != imaging.Audio && k != imaging.Sticker {
		body.Caption = m.Caption
	}
	return body, nil
}

// bizOwnFile is upload id of the business's, as kind k.
func (s *Server) bizOwnFile(ctx context.Context, b store.Business, field, id string, k imaging.Kind) (store.MediaFile, *cloudapi.Error) {
	notOwn := cloudapi.ErrParameterValueNotValid(field + ".id " + strconv.Quote(id) + " is not media this business uploaded")
	f, err := s.st.MediaFile(ctx, id)
	if errors.Is(err, store.ErrNotFound) || err == nil && f.Owner != b.UserID {
		return store.MediaFile{}, notOwn
	}
	if err != nil {
		s.log.Error("business media: lookup failed", "media_id", id, "err", err)
		return store.MediaFile{}, serviceUnavailable()
	}
	if k == imaging.Sticker && baseMIME(f.MIME) != "image/webp" {
		return store.MediaFile{}, cloudapi.ErrMediaUpload("a sticker is image/webp; media " + id + " is " + f.MIME)
	}
	if f.Kind == k.String() {
		return f, nil
	}
	limit := s.uploadLimit(k)
	if f.Size > limit {
		return store.MediaFile{}, cloudapi.ErrMediaUpload(fmt.Sprintf("media %s is %d bytes, over the %d of a %s", id, f.Size, limit, k))
	}
	rc, _, err := s.media.Open(ctx, f.Key)
	if errors.Is(err, media.ErrNotFound) {
		return store.MediaFile{}, notOwn
	}
	if err != nil {
		s.log.Error("business media: opening a file failed", "media_id", id, "err", err)
		return store.MediaFile{}, serviceUnavailable()
	}
	defer rc.Close()
	g, err := s.receive(ctx, b.UserID, rc, f.MIME, k, limit)
	if err != nil {
		return store.MediaFile{}, s.mediaGraphErr("media "+id, "media "+id+" as "+k.String()+": ", err, cloudapi.ErrMediaUpload)
	}
	return g, nil
}

// bizLinkFile fetches link and keeps its bytes as the business's upload
// of kind k. The fetch reaches public addresses only (unless
// MediaLinkAllowPrivate, a switch of its own apart from the webhooks'
// requests), checked on the address dialled, redirects included; it
// takes at most linkTimeout and the kind's size limit.
func (s *Server) bizLinkFile(ctx context.Context, b store.Business, link string, k imaging.Kind) (store.MediaFile, *cloudapi.Error) {
	limit := s.uploadLimit(k)
	ctx, cancel := context.WithTimeout(ctx, linkTimeout)
	defer cancel()
	// A few at a time per node, and fewer per business, so that one
	// business's stalling links do not hold up the others': each fetch
	// holds a connection out, a temporary file and up to linkTimeout.
	if !s.takeLinkSlot(b.UserID) {
		return store.MediaFile{}, cloudapi.ErrMediaUpload(fmt.Sprintf("%d media links of this business are being fetched already: send again when one is done, or upload the file once and send it by id", maxLinkFetchesPerBiz))
	}
	defer s.giveLinkSlot(b.UserID)
	wait := time.NewTimer(linkSlotWait)
	defer wait.Stop()
	select {
	case s.linkFetches <- struct{}{}:
		defer func() { <-s.linkFetches }()
	case <-wait.C:
		return store.MediaFile{}, cloudapi.ErrMediaUpload(fmt.Sprintf("too many media links are being fetched; none freed up within %v", linkSlotWait))
	case <-ctx.Done():
		return store.MediaFile{}, cloudapi.ErrMediaUpload("the send was canceled while waiting to fetch its link")
	}
	client := safehttp.NewClient(safehttp.Options{Timeout: linkTimeout, AllowPrivate: s.cfg.MediaLinkAllowPrivate})
	defer client.CloseIdleConnections()
	resp, gerr := getLink(ctx, client, link)
	if gerr != nil {
		return store.MediaFile{}, gerr
	}
	defer resp.Body.Close()
	if resp.ContentLength > limit {
		return store.MediaFile{}, cloudapi.ErrMediaUpload(fmt.Sprintf("the link's file is %d bytes, over the %d of a %s", resp.ContentLength, limit, k))
	}
	f, err := s.receive(ctx, b.UserID, resp.Body, resp.Header.Get("Content-Type"), k, limit)
	if err != nil {
		if ctx.Err() != nil {
			return store.MediaFile{}, cloudapi.ErrMediaUpload(fmt.Sprintf("the link's file did not arrive within %v", linkTimeout))
		}
		return store.MediaFile{}, s.mediaGraphErr("a link", "the link's file: ", err, cloudapi.ErrMediaUpload)
	}
	if k == imaging.Sticker && baseMIME(f.MIME) != "image/webp" {
		s.dropUpload(ctx, f)
		return store.MediaFile{}, cloudapi.ErrMediaUpload("a sticker is image/webp; the link's file is " + f.MIME)
	}
	return f, nil
}

// takeLinkSlot counts a link fetch of business userID, unless it has
// maxLinkFetchesPerBiz going.
func (s *Server) takeLinkSlot(userID string) bool {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	if s.linkBusy[userID] >= maxLinkFetchesPerBiz {
		return false
	}
	if s.linkBusy == nil {
		s.linkBusy = map[string]int{}
	}
	s.linkBusy[userID]++
	return true
}

func (s *Server) giveLinkSlot(userID string) {
	s.linkMu.Lock()
	defer s.linkMu.Unlock()
	if s.linkBusy[userID]--; s.linkBusy[userID] <= 0 {
		delete(s.linkBusy, userID)
	}
}

// getLink GETs link, following redirects to http and https URLs; the
// answer is a 200's.
func getLink(ctx context.Context, client *http.Client, link string) (*http.Response, *cloudapi.Error) {
	for hop := 0; ; hop++ {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
		if err != nil {
			return nil, cloudapi.ErrParameterValueNotValid("link " + strconv.Quote(link) + " is not a URL")
		}
		req.Header.Set("User-Agent", "Tern (business media link)")
		resp, err := client.Do(req)
		switch {
		case errors.Is(err, safehttp.ErrForbiddenAddress):
			return nil, cloudapi.ErrMediaUpload("the link's host " + req.URL.Hostname() + " is not on the public internet")
		case ctx.Err() != nil:
			return nil, cloudapi.ErrMediaUpload(fmt.Sprintf("the link did not answer within %v", linkTimeout))
		case err != nil:
			return nil, cloudapi.ErrMediaUpload("the link could not be fetched: " + err.Error())
		}
		switch resp.StatusCode {
		case http.StatusOK:
			return resp, nil
		case http.StatusMovedPermanently, http.StatusFound, http.StatusSeeOther, http.StatusTemporaryRedirect, http.StatusPermanentRedirect:
			loc := resp.Header.Get("Location")
			resp.Body.Close()
			next, err := req.URL.Parse(loc)
			switch {
			case hop == maxLinkRedirects:
				return nil, cloudapi.ErrMediaUpload(fmt.Sprintf("the link redirects more than %d times", maxLinkRedirects))
			case loc == "" || err != nil || next.Scheme != "http" && next.Scheme != "https" || next.Host == "":
				return nil, cloudapi.ErrMediaUpload("the link redirects to " + strconv.Quote(loc) + ", not an http or https URL")
			}
			link = next.String()
		default:
			resp.Body.Close()
			return nil, cloudapi.ErrMediaUpload("the link answered " + resp.Status)
		}
	}
}

// inboundMedia is a customer's media message as the Cloud API's webhook
// says it; ok false if body carries no file. The kind is the file's (a
// photo sent as a document is a document), from its record while it has
// one, else from its type.
func (s *Server) inboundMedia(ctx context.Context, b store.Business, body *wire.Body) (kind string, m cloudapi.InboundMedia, ok bool) {
	if body == nil || body.MediaID == "" {
		return "", cloudapi.InboundMedia{}, false
	}
	m = cloudapi.InboundMedia{ID: body.MediaID, MimeType: body.MIMEType, SHA256: cloudapi.WebhookSHA256(body.SHA256), Caption: body.Caption}
	k := kindOf(body.MIMEType)
	if f, err := s.st.MediaFile(ctx, body.MediaID); err == nil {
		if fk, err := imaging.ParseKind(f.Kind); err == nil {
			k = fk
		}
		if m.MimeType == "" {
			m.MimeType = f.MIME
		}
		if m.SHA256 == "" {
			m.SHA256 = cloudapi.WebhookSHA256(f.SHA256)
		}
	}
	if k == imaging.Audio || k == imaging.Sticker {
		m.Caption = "" // the Cloud API's audio and stickers have none
	}
	return k.String(), m, true
}

// mediaGraphErr answers a failed upload, copy or link fetch (what
// ReadMediaUpload and s.receive return) in Graph's shape: over a size
// limit is tooLarge's, what the bytes are (their type, a broken image)
// 131053, with prefix before the details; what is not the caller's doing
// is logged (what names the file or the link) and answered as a service
// error.
func (s *Server) mediaGraphErr(what, prefix string, err error, tooLarge func(string) *cloudapi.Error) *cloudapi.Error {
	var mb *http.MaxBytesError
	var ge *cloudapi.Error
	var we *wire.Error
	switch {
	case errors.As(err, &mb):
		return tooLarge(fmt.Sprintf("%supload over %d bytes", prefix, mb.Limit-maxUploadOverhead))
	case errors.As(err, &ge):
		return ge
	case errors.As(err, &we) && we.Code == wire.CodeTooLarge:
		return tooLarge(prefix + we.Message)
	case errors.As(err, &we) && (we.Code == wire.CodeBadRequest || we.Code == wire.CodeUnsupported):
		return cloudapi.ErrMediaUpload(prefix + we.Message)
	}
	s.log.Error("business media: storing a file failed", "what", what, "err", err)
	return serviceUnavailable()
}

// dropUpload deletes a file just stored whose id nobody was given (its
// upload failed after all): nothing can share it, so no claim is needed.
// What fails here the collector deletes after the grace of an upload
// never sent.
func (s *Server) dropUpload(ctx context.Context, f store.MediaFile) {
	ctx = context.WithoutCancel(ctx)
	if err := s.media.Delete(ctx, f.Key); err != nil {
		s.log.Warn("business media: deleting a failed upload's bytes failed", "media_id", f.ID, "err", err)
		return
	}
	if err := s.st.DeleteMediaFile(ctx, f.ID); err != nil {
		s.log.Warn("business media: deleting a failed upload's record failed", "media_id", f.ID, "err", err)
	}
}

// serviceUnavailable is Graph's answer to a failure of the server's own.
func serviceUnavailable() *cloudapi.Error {
	return cloudapi.NewError(cloudapi.CodeAPIService, "Service temporarily unavailable", "")
}

// baseMIME is a MIME type without parameters, in lower case.
func baseMIME(t string) string {
	t, _, _ = strings.Cut(t, ";")
	return strings.ToLower(strings.TrimSpace(t))
}
