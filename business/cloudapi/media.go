package cloudapi

import (
	"bufio"
	"bytes"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"strings"
)

// The media endpoints: POST /{phone_number_id}/media uploads a file (a
// multipart form), GET /{media_id} describes it with a URL to download it
// from (with the bearer token), DELETE /{media_id} deletes it.

// Upload form fields.
const (
	UploadFieldFile             = "file"
	UploadFieldType             = "type"
	UploadFieldMessagingProduct = "messaging_product"
)

// maxUploadField bounds an upload's form field other than the file: a
// MIME type or "whatsapp".
const maxUploadField = 1024

// maxBoundary is the longest multipart boundary (RFC 2046).
const maxBoundary = 70

// MediaUpload is what an upload's form says besides the file's bytes.
type MediaUpload struct {
	MessagingProduct string // the messaging_product field
	Type             string // the type field: the MIME type the uploader declares
	Filename         string // the file part's file name
	FileType         string // the file part's Content-Type
}

// MediaIDResponse is the answer to an upload: {"id": media id}.
type MediaIDResponse struct {
	ID string `json:"id"`
}

// MediaURLResponse is the answer to GET /{media_id}, in Graph's key
// order. SHA256 is hex there, as Graph answers it (webhooks carry the
// same digest in base64: WebhookSHA256); FileSize is a number.
type MediaURLResponse struct {
	MessagingProduct string `json:"messaging_product"`
	URL              string `json:"url"`
	MimeType         string `json:"mime_type"`
	SHA256           string `json:"sha256"`
	FileSize         int64  `json:"file_size"`
	ID               string `json:"id"`
}

// NewMediaURLResponse describes media id, downloadable at url.
func NewMediaURLResponse(id, url, mimeType, sha256Hex string, size int64) MediaURLResponse {
	return MediaURLResponse{MessagingProduct: MessagingProduct, URL: url, MimeType: mimeType,
		SHA256: strings.ToLower(sha256Hex), FileSize: size, ID: id}
}

// WebhookSHA256 is a SHA-256 digest given in hex as the webhooks' media
// objects carry it: standard base64 (with padding) of the 32 bytes. ""
// if hexDigest is not 32 bytes in hex.
func WebhookSHA256(hexDigest string) string {
	b, err := hex.DecodeString(hexDigest)
	if err != nil || len(b) != 32 {
		return ""
	}
	return base64.StdEncoding.EncodeToString(b)
}

// ReadMediaUpload reads the multipart/form-data body of an upload and
// hands its file part to store as it streams, once, so that the file is
// never whole in memory. The fields may come in any order (SDKs send
// messaging_product and type before the file or after it): store gets
// what was read before the file, and the result holds them all. A
// messaging_product other than "whatsapp" read before the file stops the
// upload before store is called; one read after it, a second file, or a
// body that breaks off after it is an error returned after store
// succeeded, and then the caller undoes what store kept.
//
// contentType is the request's Content-Type. A multipart type without a
// boundary (an SDK that sets "multipart/form-data" by hand over the one
// its form would have set) takes the boundary from the body's first line,
// the delimiter that starts every multipart body.
//
// The error is what store returned, as it is; any other is an *Error (code
// 100) that wraps the body's read error, if there is one (an
// *http.MaxBytesError, say), for errors.As.
func ReadMediaUpload(body io.Reader, contentType string, store func(file io.Reader, u MediaUpload) error) (MediaUpload, error) {
	var u MediaUpload
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil || mt != "multipart/form-data" {
		return u, ErrInvalidParameter("an upload is multipart/form-data with the fields messaging_product, file and type")
	}
	boundary := params["boundary"]
	if boundary == "" {
		br := bufio.NewReader(body)
		if boundary, err = sniffBoundary(br); err != nil {
			return u, err
		}
		body = br
	}
	mr := multipart.NewReader(body, boundary)
	stored := false
	for {
		p, err := mr.NextPart()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return u, readErr(err)
		}
		switch p.FormName() {
		case UploadFieldFile:
			if stored {
				return u, ErrInvalidParameter("an upload carries one file")
			}
			if u.MessagingProduct != "" {
				if e := checkProduct(u.MessagingProduct); e != nil {
					return u, e
				}
			}
			u.Filename, u.FileType = p.FileName(), p.Header.Get("Content-Type")
			if err := store(p, u); err != nil {
				return u, err
			}
			stored = true
		case UploadFieldMessagingProduct, UploadFieldType:
			v, err := io.ReadAll(io.LimitReader(p, maxUploadField+1))
			if err != nil {
				return u, readErr(err)
			}
			if len(v) > maxUploadField {
				return u, ErrInvalidParameter("the field " + p.FormName() + " is too long")
			}
			// curl's -F 'type="image/jpeg"', as Meta's examples write it,
			// may arrive with its quotes.
			s := strings.Trim(strings.TrimSpace(string(v)), `"`)
			if p.FormName() == UploadFieldType {
				u.Type = s
			} else {
				u.MessagingProduct = s
			}
		default:
			if _, err := io.Copy(io.Discard, p); err != nil {
				return u, readErr(err)
			}
		}
	}
	if e := checkProduct(u.MessagingProduct); e != nil {
		return u, e
	}
	if !stored {
		return u, ErrInvalidParameter("The parameter file is required.")
	}
	return u, nil
}

// sniffBoundary reads the boundary from a multipart body's first line,
// "--boundary", leaving the body unread.
func sniffBoundary(br *bufio.Reader) (string, error) {
	head, err := br.Peek(2 + maxBoundary + 2)
	if len(head) == 0 && err != nil {
		return "", readErr(err)
	}
	line, _, found := bytes.Cut(head, []byte("\n"))
	line = bytes.TrimRight(line, " \t\r")
	b, ok := bytes.CutPrefix(line, []byte("--"))
	if !found || !ok || len(b) == 0 || len(b) > maxBoundary {
		return "", ErrInvalidParameter("the multipart upload has no boundary")
	}
	return string(b), nil
}

func readErr(err error) *Error {
	return ErrInvalidParameter("the upload could not be read: " + err.Error()).withCause(err)
}
