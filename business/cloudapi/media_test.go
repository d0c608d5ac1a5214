package cloudapi_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"mime/multipart"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"strings"
	"testing"

	"github.com/tern-im/tern/business/cloudapi"
)

// uploadForm is a multipart body of fields in order; a field named
// "file" is a file part with a name and a type.
func uploadForm(t *testing.T, fields ...[2]string) (body []byte, contentType string) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, f := range fields {
		if f[0] != "file" {
			if err := w.WriteField(f[0], f[1]); err != nil {
				t.Fatal(err)
			}
			continue
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", `form-data; name="file"; filename="photo.png"`)
		h.Set("Content-Type", "image/png")
		p, err := w.CreatePart(h)
		if err != nil {
			t.Fatal(err)
		}
		_, _ = io.WriteString(p, f[1])
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes(), w.FormDataContentType()
}

// TestReadMediaUpload: the fields come in any order, the file streams to
// store once, with what was read before it; a bad messaging_product
// before the file never reaches store; the boundary may be missing from
// the header (an SDK that sets the type by hand); and every refusal is a
// Graph 100.
func TestReadMediaUpload(t *testing.T) {
	type call struct {
		file string
		u    cloudapi.MediaUpload
	}
	read := func(body []byte, ct string) ([]call, cloudapi.MediaUpload, error) {
		var calls []call
		u, err := cloudapi.ReadMediaUpload(bytes.NewReader(body), ct, func(r io.Reader, u cloudapi.MediaUpload) error {
			b, err := io.ReadAll(r)
			calls = append(calls, call{string(b), u})
			return err
		})
		return calls, u, err
	}
	for _, c := range []struct {
		name       string
		fields     [][2]string
		noBoundary bool
		before     cloudapi.MediaUpload // what store is given
	}{
		{"the Node SDK's order", [][2]string{{"messaging_product", "whatsapp"}, {"file", "PIXELS"}, {"type", "image/png"}}, false,
			cloudapi.MediaUpload{MessagingProduct: "whatsapp", Filename: "photo.png", FileType: "image/png"}},
		{"the file first, no boundary in the header", [][2]string{{"file", "PIXELS"}, {"type", "image/png"}, {"messaging_product", "whatsapp"}}, true,
			cloudapi.MediaUpload{Filename: "photo.png", FileType: "image/png"}},
		{"curl's quotes, an unknown field", [][2]string{{"type", `"image/png"`}, {"messaging_product", `"whatsapp"`}, {"note", "x"}, {"file", "PIXELS"}}, false,
			cloudapi.MediaUpload{MessagingProduct: "whatsapp", Type: "image/png", Filename: "photo.png", FileType: "image/png"}},
	} {
		body, ct := uploadForm(t, c.fields...)
		if c.noBoundary {
			ct = "multipart/form-data"
		}
		calls, u, err := read(body, ct)
		want := cloudapi.MediaUpload{MessagingProduct: "whatsapp", Type: "image/png", Filename: "photo.png", FileType: "image/png"}
		if err != nil || len(calls) != 1 || calls[0].file != "PIXELS" || calls[0].u != c.before || u != want {
			t.Errorf("%s: %+v, %+v, %v", c.name, calls, u, err)
		}
	}

	for _, c := range []struct {
		name   string
		fields [][2]string
		ct     string
		stored int // store calls before the refusal
	}{
		{"no messaging_product", [][2]string{{"file", "PIXELS"}, {"type", "image/png"}}, "", 1},
		{"a wrong one after the file", [][2]string{{"file", "PIXELS"}, {"messaging_product", "sms"}}, "", 1},
		{"a wrong one before the file", [][2]string{{"messaging_product", "sms"}, {"file", "PIXELS"}}, "", 0},
		{"no file", [][2]string{{"messaging_product", "whatsapp"}, {"type", "image/png"}}, "", 0},
		{"two files", [][2]string{{"messaging_product", "whatsapp"}, {"file", "A"}, {"file", "B"}}, "", 1},
		{"a long type", [][2]string{{"messaging_product", "whatsapp"}, {"type", strings.Repeat("x", 2000)}, {"file", "A"}}, "", 0},
		{"JSON", nil, "application/json", 0},
		{"a multipart body without a boundary line", nil, "multipart/form-data", 0},
	} {
		body, ct := uploadForm(t, c.fields...)
		if c.ct != "" {
			ct = c.ct
			body = []byte(`{"messaging_product":"whatsapp"}`)
		}
		calls, _, err := read(body, ct)
		var ge *cloudapi.Error
		if !errors.As(err, &ge) || ge.Code != cloudapi.CodeInvalidParameter || len(calls) != c.stored {
			t.Errorf("%s: %v after %d store calls, want a 100 after %d", c.name, err, len(calls), c.stored)
		}
	}

	// store's own error is returned as it is.
	body, ct := uploadForm(t, [2]string{"file", "PIXELS"})
	mine := errors.New("disk full")
	if _, err := cloudapi.ReadMediaUpload(bytes.NewReader(body), ct, func(io.Reader, cloudapi.MediaUpload) error { return mine }); err != mine {
		t.Errorf("store's error: %v", err)
	}
	// A body cut short by the server's limit: the 100 wraps the cause.
	body, ct = uploadForm(t, [2]string{"messaging_product", "whatsapp"}, [2]string{"type", strings.Repeat("x", 900)}, [2]string{"file", "PIXELS"})
	limited := http.MaxBytesReader(httptest.NewRecorder(), io.NopCloser(bytes.NewReader(body)), 400)
	_, err := cloudapi.ReadMediaUpload(limited, ct, func(io.Reader, cloudapi.MediaUpload) error { return nil })
	var mb *http.MaxBytesError
	var ge *cloudapi.Error
	if !errors.As(err, &mb) || !errors.As(err, &ge) || ge.Code != cloudapi.CodeInvalidParameter {
		t.Errorf("a body over the limit: %v", err)
	}
}

// TestMediaURLResponse: GET /{media_id}'s answer in Graph's key order,
// sha256 in hex and file_size a number; the webhooks' digest is the same
// one in standard base64.
func TestMediaURLResponse(t *testing.T) {
	sum := sha256.Sum256([]byte("the file"))
	hx := hex.EncodeToString(sum[:])
	got := mustJSON(t, cloudapi.NewMediaURLResponse("f123", "https://chat.example.com/v23.0/f123/content", "image/png", strings.ToUpper(hx), 8))
	want := `{"messaging_product":"whatsapp","url":"https://chat.example.com/v23.0/f123/content","mime_type":"image/png","sha256":"` + hx + `","file_size":8,"id":"f123"}`
	if got != want {
		t.Errorf("got  %s\nwant %s", got, want)
	}
	if got := cloudapi.WebhookSHA256(hx); got != base64.StdEncoding.EncodeToString(sum[:]) {
		t.Errorf("WebhookSHA256 = %q", got)
	}
	for _, bad := range []string{"", "zz", hx[:62]} {
		if got := cloudapi.WebhookSHA256(bad); got != "" {
			t.Errorf("WebhookSHA256(%q) = %q, want empty", bad, got)
		}
	}
	if got := mustJSON(t, cloudapi.MediaIDResponse{ID: "f123"}); got != `{"id":"f123"}` {
		t.Errorf("upload answer: %s", got)
	}
}
