package server_test

import (
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"mime/multipart"
	"net"
	"net/http"
	"net/http/httptest"
	"net/textproto"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// bizPart is one field of a Cloud API upload form; a file when filename
// is set.
type bizPart struct{ name, value, filename, contentType string }

func formField(name, value string) bizPart { return bizPart{name: name, value: value} }

func formFile(filename, contentType string, data []byte) bizPart {
	return bizPart{name: "file", value: string(data), filename: filename, contentType: contentType}
}

// bizUpload posts a Cloud API media upload of parts, in their order, as
// a multipart form; noBoundary sends "multipart/form-data" bare, as an
// SDK that sets the header by hand does. A body without a length goes
// chunked.
func bizUpload(t *testing.T, ctx context.Context, url, token string, noBoundary, chunked bool, parts ...bizPart) (int, map[string]any) {
	t.Helper()
	var b bytes.Buffer
	w := multipart.NewWriter(&b)
	for _, p := range parts {
		if p.filename == "" {
			_ = w.WriteField(p.name, p.value)
			continue
		}
		h := textproto.MIMEHeader{}
		h.Set("Content-Disposition", fmt.Sprintf(`form-data; name=%q; filename=%q`, p.name, p.filename))
		h.Set("Content-Type", p.contentType)
		pw, _ := w.CreatePart(h)
		_, _ = io.WriteString(pw, p.value)
	}
	_ = w.Close()
	var body io.Reader = bytes.NewReader(b.Bytes())
	if chunked {
		body = io.MultiReader(body) // hides the length
	}
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, url, body)
	ct := w.FormDataContentType()
	if noBoundary {
		ct = "multipart/form-data"
	}
	req.Header.Set("Content-Type", ct)
	req.Header.Set("Authorization", "Bearer "+token)
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// bizGet GETs url with token ("" for none), as an SDK downloads media.
func bizGet(t *testing.T, ctx context.Context, url, token string) (int, http.Header, []byte) {
	t.Helper()
	req, _ := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, res.Header, data
}

// notFound33 reports whether an answer is Graph's 100/33: no such object,
// or none this token may see.
func notFound33(code int, m map[string]any) bool {
	e, _ := m["error"].(map[string]any)
	return code == http.StatusBadRequest && graphCode(m) == 100 && e["error_subcode"] == float64(33)
}

func hexSHA(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

// ownUploads lists the files on the collector's list that owner uploaded.
func ownUploads(t *testing.T, st store.Store, owner string) []string {
	t.Helper()
	files, err := st.UnsharedMediaFiles(t.Context(), time.Now().Add(time.Hour), 1000)
	if err != nil {
		t.Fatal(err)
	}
	var ids []string
	for _, f := range files {
		if f.Owner == owner {
			ids = append(ids, f.ID)
		}
	}
	return ids
}

// TestBizMediaUpload: a business uploads a photo and a document the way
// Cloud API SDKs do (the fields in either order, the boundary missing from
// the header); GET /{media_id} describes each with a URL that serves the
// bytes the store keeps (the photo without its metadata) only with the
// token; another business's token, or another phone_number_id, is
// answered 100/33 as for a file that does not exist; DELETE removes an
// upload no message carries; bad uploads are refused with Graph's codes
// and leave nothing behind.
func TestBizMediaUpload(t *testing.T) {
	small := int64(64 << 10)
	n := servertest.Start(t, servertest.Options{Server: server.Config{MediaLimits: map[string]int64{
		"image": small, "video": small, "audio": small, "document": small, "sticker": small}}})
	ctx := ctxT(t)
	b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550861", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550862", Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	upload := n.URL + "/v21.0/" + b.PhoneNumberID + "/media"

	// A photo, in @great-detail/whatsapp's order: type after the file.
	original := testPNG(t, 64, 48)
	code, res := bizUpload(t, ctx, upload, b.AccessToken, false, false,
		formField("messaging_product", "whatsapp"), formFile("photo.png", "image/png", original), formField("type", "image/png"))
	id, _ := res["id"].(string)
	if code != http.StatusOK || !strings.HasPrefix(id, store.PrefixMedia) || len(res) != 1 {
		t.Fatalf("upload: %d %v", code, res)
	}
	code, res = graphDo(t, ctx, http.MethodGet, n.URL+"/v21.0/"+id+"?phone_number_id="+b.PhoneNumberID, b.AccessToken, nil)
	url, _ := res["url"].(string)
	if code != http.StatusOK || res["messaging_product"] != "whatsapp" || res["id"] != id || res["mime_type"] != "image/png" ||
		url != n.URL+"/v21.0/"+id+"/content" {
		t.Fatalf("GET the photo: %d %v", code, res)
	}
	status, hdr, got := bizGet(t, ctx, url, b.AccessToken)
	rec, err := n.Store.MediaFile(ctx, id)
	if err != nil {
		t.Fatal(err)
	}
	if status != http.StatusOK || hdr.Get("Content-Type") != "image/png" || hdr.Get("X-Content-Type-Options") != "nosniff" ||
		res["sha256"] != hexSHA(got) || rec.SHA256 != hexSHA(got) || res["file_size"] != float64(len(got)) {
		t.Fatalf("the photo's bytes: %d %v, sha256 %s (answered %v, kept %s), %d bytes (answered %v)",
			status, hdr, hexSHA(got), res["sha256"], rec.SHA256, len(got), res["file_size"])
	}
	if bytes.Contains(got, []byte("where I was")) || bytes.Equal(got, original) {
		t.Fatal("the photo is served with its metadata")
	}
	// Without a version in the path, the URL names the default one.
	if code, res := graphDo(t, ctx, http.MethodGet, n.URL+"/"+id, b.AccessToken, nil); code != http.StatusOK ||
		res["url"] != n.URL+"/v23.0/"+id+"/content" {
		t.Fatalf("GET without a version: %d %v", code, res)
	}
	// The URL is nothing without the token, or with another's.
	if status, _, body := bizGet(t, ctx, url, ""); status != http.StatusUnauthorized || !strings.Contains(string(body), `"code":190`) {
		t.Fatalf("the bytes without a token: %d %s", status, body)
	}
	for _, c := range []struct{ name, method, url, token string }{
		{"another's GET", http.MethodGet, n.URL + "/v21.0/" + id, other.AccessToken},
		{"another's content", http.MethodGet, url, other.AccessToken},
		{"another's DELETE", http.MethodDelete, n.URL + "/v21.0/" + id, other.AccessToken},
		{"another's number", http.MethodGet, n.URL + "/v21.0/" + id + "?phone_number_id=" + other.PhoneNumberID, b.AccessToken},
		{"a media id nobody has", http.MethodGet, n.URL + "/v21.0/" + store.PrefixMedia + strings.Repeat("a", 26), b.AccessToken},
	} {
		if code, res := graphDo(t, ctx, c.method, c.url, c.token, nil); !notFound33(code, res) {
			t.Errorf("%s: %d %v, want 100/33", c.name, code, res)
		}
	}
	if _, err := n.Store.MediaFile(ctx, id); err != nil {
		t.Fatalf("the photo after another's DELETE: %v", err)
	}

	// A document, the file first and the boundary missing from the header
	// (the Node SDK sets "multipart/form-data" by hand).
	pdf := []byte("%PDF-1.4\n% an invoice\n" + strings.Repeat("0123456789", 300) + "\n%%EOF\n")
	code, res = bizUpload(t, ctx, upload, b.AccessToken, true, false,
		formFile("invoice.pdf", "application/pdf", pdf), formField("type", "application/pdf"), formField("messaging_product", "whatsapp"))
	docID, _ := res["id"].(string)
	if code != http.StatusOK || docID == "" {
		t.Fatalf("upload a document: %d %v", code, res)
	}
	code, res = graphDo(t, ctx, http.MethodGet, n.URL+"/v21.0/"+docID, b.AccessToken, nil)
	if code != http.StatusOK || res["mime_type"] != "application/pdf" || res["sha256"] != hexSHA(pdf) {
		t.Fatalf("GET the document: %d %v", code, res)
	}
	if status, hdr, got := bizGet(t, ctx, res["url"].(string), b.AccessToken); status != http.StatusOK || !bytes.Equal(got, pdf) ||
		hdr.Get("Content-Disposition") != "attachment" || hdr.Get("Content-Security-Policy") != "sandbox" {
		t.Fatalf("the document's bytes: %d %v, %d bytes", status, hdr, len(got))
	}
	// The type field, sent first, settles what the bytes leave open (a
	// part typed application/octet-stream is plain text by its bytes).
	code, res = bizUpload(t, ctx, upload, b.AccessToken, false, false, formField("messaging_product", "whatsapp"),
		formField("type", "text/csv"), formFile("prices.csv", "application/octet-stream", []byte("item,price\nbolt,0.10\n")))
	csvID, _ := res["id"].(string)
	if code != http.StatusOK || csvID == "" {
		t.Fatalf("upload a CSV: %d %v", code, res)
	}
	if code, res := graphDo(t, ctx, http.MethodGet, n.URL+"/v21.0/"+csvID, b.AccessToken, nil); code != http.StatusOK ||
		!strings.HasPrefix(fmt.Sprint(res["mime_type"]), "text/csv") {
		t.Fatalf("GET the CSV: %d %v", code, res)
	}
	// Deleted: gone at once, since no message carries it.
	if code, res := graphDo(t, ctx, http.MethodDelete, n.URL+"/v21.0/"+docID+"?phone_number_id="+b.PhoneNumberID, b.AccessToken, nil); code != http.StatusOK || res["success"] != true {
		t.Fatalf("DELETE: %d %v", code, res)
	}
	if code, res := graphDo(t, ctx, http.MethodGet, n.URL+"/v21.0/"+docID, b.AccessToken, nil); !notFound33(code, res) {
		t.Fatalf("GET after DELETE: %d %v", code, res)
	}
	if _, err := n.Store.MediaFile(ctx, docID); err == nil {
		t.Fatal("the deleted document's record is still there")
	}

	// Refused, and nothing is kept of any of them.
	big := make([]byte, small+1)
	_, _ = rand.Read(big)
	for _, c := range []struct {
		name    string
		chunked bool
		parts   []bizPart
		code    float64
	}{
		{"no messaging_product", false, []bizPart{formFile("a.png", "image/png", original), formField("type", "image/png")}, 100},
		{"a wrong messaging_product after the file", false, []bizPart{formFile("a.png", "image/png", original), formField("messaging_product", "sms")}, 100},
		{"a wrong messaging_product before it", false, []bizPart{formField("messaging_product", "sms"), formFile("a.png", "image/png", original)}, 100},
		{"no file", false, []bizPart{formField("messaging_product", "whatsapp"), formField("type", "image/png")}, 100},
		{"two files", false, []bizPart{formField("messaging_product", "whatsapp"), formFile("a.png", "image/png", original), formFile("b.png", "image/png", original)}, 100},
		{"an empty file", false, []bizPart{formField("messaging_product", "whatsapp"), formFile("a.pdf", "application/pdf", nil)}, 131053},
		{"a broken PNG", false, []bizPart{formField("messaging_product", "whatsapp"), formFile("a.png", "image/png", []byte("\x89PNG\r\n\x1a\nnot a picture"))}, 131053},
		{"over the limit, said up front", false, []bizPart{formField("messaging_product", "whatsapp"), formFile("a.bin", "application/octet-stream", big)}, 100},
		{"over the limit, chunked", true, []bizPart{formField("messaging_product", "whatsapp"), formFile("a.bin", "application/octet-stream", big)}, 100},
	} {
		code, res := bizUpload(t, ctx, upload, b.AccessToken, false, c.chunked, c.parts...)
		if code != http.StatusBadRequest || graphCode(res) != c.code {
			t.Errorf("%s: %d %v, want %v", c.name, code, res, c.code)
		}
	}
	if code, res := graphDo(t, ctx, http.MethodPost, upload, b.AccessToken, `{"messaging_product":"whatsapp"}`); code != http.StatusBadRequest || graphCode(res) != 100 {
		t.Errorf("a JSON upload: %d %v", code, res)
	}
	ids := ownUploads(t, n.Store, b.UserID)
	slices.Sort(ids)
	want := []string{id, csvID}
	slices.Sort(want)
	if !slices.Equal(ids, want) {
		t.Errorf("the business's files after the refusals: %v, want only %v", ids, want)
	}
}

// lossyWebP is a 24×16 WebP (media/imaging's test file, from cwebp).
const lossyWebP = `UklGRp4AAABXRUJQVlA4WAoAAAAQAAAAFwAADwAAQUxQSBMAAAABDzD/ERFCLJgg5E+7P4KI/gfNAFZQOCBkAAAAcAQAnQEqGAAQAD6dQJpIJaQioTAIALATiWwAnTKEcDeQAGd+a1Ay4iL0nJgA/vWXUhTC6hLuo1cG5//M+V3m1Npk3igJzzAwt7IlswKc99EjgM+pEUyJw3fyf9ZQkXU6hOzAAA==`

// linkServer serves a business's media links and counts its requests.
type linkServer struct {
	*httptest.Server
	hits atomic.Int64
}

func newLinkServer(t *testing.T, png []byte, limit int64) *linkServer {
	ls := &linkServer{}
	ls.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		ls.hits.Add(1)
		switch r.URL.Path {
		case "/shop.png":
			w.Header().Set("Content-Type", "image/png")
			_, _ = w.Write(png)
		case "/moved":
			http.Redirect(w, r, "/shop.png", http.StatusFound)
		case "/loop":
			http.Redirect(w, r, "/loop", http.StatusFound)
		case "/elsewhere":
			http.Redirect(w, r, "file:///etc/passwd", http.StatusFound)
		case "/big.png":
			// Too large by its length: refused before its body, which
			// never comes (the fetch would wait for it until it gives up).
			w.Header().Set("Content-Type", "image/png")
			w.Header().Set("Content-Length", fmt.Sprint(limit+1))
			_, _ = w.Write(png)
			w.(http.Flusher).Flush()
			<-r.Context().Done()
		case "/big-chunked.png":
			big := make([]byte, limit+1)
			copy(big, png)
			for chunk := range slices.Chunk(big, 4096) {
				_, _ = w.Write(chunk)
				w.(http.Flusher).Flush()
			}
		case "/page.html":
			w.Header().Set("Content-Type", "text/html")
			_, _ = io.WriteString(w, "<!doctype html><html><body>not a picture</body></html>")
		default:
			http.NotFound(w, r)
		}
	}))
	t.Cleanup(ls.Close)
	return ls
}

// TestBizMediaSend: a business sends a customer who wrote its upload by
// id (with a caption), the same upload as a document and a WebP as a
// sticker (copies of the kind asked for), and pictures by link (fetched
// and cleaned by the server, redirects followed); the customer's client
// gets each with its media_id and fetches its bytes. Ids that are not the
// business's uploads are 131009; links that fail (404, over the limit,
// not the type's, redirect loops or to other schemes) are 131053, and
// nothing is sent for any refusal.
func TestBizMediaSend(t *testing.T) {
	limit := int64(64 << 10)
	n := servertest.Start(t, servertest.Options{Server: server.Config{MediaLinkAllowPrivate: true, MediaLimits: map[string]int64{"image": limit}}})
	ctx := ctxT(t)
	b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550871", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550872", Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	customer := n.Login(t, "+14155550873", "c")
	if _, err := customer.Send(ctx, b.UserID, text("can I see the shop?")); err != nil {
		t.Fatal(err)
	}
	upload := func(biz server.BusinessCreated, name, typ string, data []byte) string {
		t.Helper()
		code, res := bizUpload(t, ctx, n.URL+"/v21.0/"+biz.PhoneNumberID+"/media", biz.AccessToken, false, false,
			formField("messaging_product", "whatsapp"), formFile(name, typ, data), formField("type", typ))
		id, _ := res["id"].(string)
		if code != http.StatusOK || id == "" {
			t.Fatalf("upload %s: %d %v", name, code, res)
		}
		return id
	}
	send := func(typ string, media map[string]any) (int, map[string]any) {
		return graphDo(t, ctx, http.MethodPost, n.URL+"/v21.0/"+b.PhoneNumberID+"/messages", b.AccessToken,
			map[string]any{"messaging_product": "whatsapp", "to": "14155550873", "type": typ, typ: media})
	}
	// received checks that the customer's next message from the business
	// is wamid's, carrying a file of kind and type, and fetches the file.
	received := func(what string, res map[string]any, kind, mimeType, caption string) (wire.ServerFrame, []byte) {
		t.Helper()
		f := nextWhere(t, customer, what, func(f wire.ServerFrame) bool { return f.From == b.UserID })
		msgs, _ := res["messages"].([]any)
		if len(msgs) != 1 || msgs[0].(map[string]any)["id"] != business.MessageID(f.ChatID, f.MsgID) {
			t.Fatalf("%s: answered %v, the customer got %+v", what, res, f)
		}
		if f.Body == nil || f.Body.MediaID == "" || f.Body.MIMEType != mimeType || f.Body.Caption != caption {
			t.Fatalf("%s: the customer got %+v", what, f.Body)
		}
		m, err := customer.Media(ctx, f.Body.MediaID, f.ChatID)
		if err != nil || m.Kind != kind {
			t.Fatalf("%s: the customer's media: %+v, %v", what, m, err)
		}
		data, _ := download(t, m.URL)
		if hexSHA(data) != f.Body.SHA256 || int64(len(data)) != f.Body.Size {
			t.Fatalf("%s: the bytes fetched do not match the message's description", what)
		}
		return f, data
	}

	photo := testPNG(t, 64, 48)
	id := upload(b, "shop.png", "image/png", photo)
	code, res := send("image", map[string]any{"id": id, "caption": "our new shop"})
	if code != http.StatusOK {
		t.Fatalf("image by id: %d %v", code, res)
	}
	if f, _ := received("the image by id", res, "image", "image/png", "our new shop"); f.Body.MediaID != id {
		t.Fatalf("the image by id carries %s, want %s", f.Body.MediaID, id)
	}
	// The same upload as a document: a copy of that kind, the filename
	// has no place in a Tern message.
	code, res = send("document", map[string]any{"id": id, "caption": "as a file", "filename": "shop.png"})
	if code != http.StatusOK {
		t.Fatalf("document by id: %d %v", code, res)
	}
	if f, _ := received("the document by id", res, "document", "image/png", "as a file"); f.Body.MediaID == id {
		t.Fatal("the photo went as a document under the image's id")
	}
	webp, _ := base64.StdEncoding.DecodeString(lossyWebP)
	code, res = send("sticker", map[string]any{"id": upload(b, "smile.webp", "image/webp", webp)})
	if code != http.StatusOK {
		t.Fatalf("sticker by id: %d %v", code, res)
	}
	received("the sticker", res, "sticker", "image/webp", "")

	// By link, redirected or not: fetched, cleaned and sent.
	links := newLinkServer(t, photo, limit)
	for _, path := range []string{"/shop.png", "/moved"} {
		code, res = send("image", map[string]any{"link": links.URL + path, "caption": "by link"})
		if code != http.StatusOK {
			t.Fatalf("image by link %s: %d %v", path, code, res)
		}
		if _, data := received("the image by link "+path, res, "image", "image/png", "by link"); bytes.Contains(data, []byte("where I was")) {
			t.Fatalf("the image by link %s kept its metadata", path)
		}
	}

	mine, err := customer.UploadMedia(ctx, bytes.NewReader(photo), "image/png", "")
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name  string
		typ   string
		media map[string]any
		code  float64
	}{
		{"another business's upload", "image", map[string]any{"id": upload(other, "x.png", "image/png", photo)}, 131009},
		{"the customer's own upload", "image", map[string]any{"id": mine.MediaID}, 131009},
		{"an id nobody has", "image", map[string]any{"id": store.PrefixMedia + strings.Repeat("a", 26)}, 131009},
		{"a PNG as a sticker", "sticker", map[string]any{"id": id}, 131053},
		{"a PNG as audio", "audio", map[string]any{"id": id}, 131053},
		{"a link answering 404", "image", map[string]any{"link": links.URL + "/missing.png"}, 131053},
		{"a link over the limit by its length", "image", map[string]any{"link": links.URL + "/big.png"}, 131053},
		{"a link over the limit, chunked", "image", map[string]any{"link": links.URL + "/big-chunked.png"}, 131053},
		{"a page as an image", "image", map[string]any{"link": links.URL + "/page.html"}, 131053},
		{"a redirect loop", "image", map[string]any{"link": links.URL + "/loop"}, 131053},
		{"a redirect to a file", "image", map[string]any{"link": links.URL + "/elsewhere"}, 131053},
	} {
		if code, res := send(c.typ, c.media); code != http.StatusBadRequest || graphCode(res) != c.code {
			t.Errorf("%s: %d %v, want %v", c.name, code, res, c.code)
		}
	}
	// None of them was sent: the next message the customer gets is this.
	if code, res := graphDo(t, ctx, http.MethodPost, n.URL+"/v21.0/"+b.PhoneNumberID+"/messages", b.AccessToken,
		map[string]any{"messaging_product": "whatsapp", "to": "14155550873", "type": "text", "text": map[string]any{"body": "that's all"}}); code != http.StatusOK {
		t.Fatalf("text: %d %v", code, res)
	}
	if f := nextWhere(t, customer, "the text", func(f wire.ServerFrame) bool { return f.From == b.UserID }); f.Body == nil || f.Body.Text != "that's all" {
		t.Fatalf("after the refusals the customer got %+v", f.Body)
	}
}

// TestBizMediaLinksArePublicOnly: without MediaLinkAllowPrivate (even
// with the webhooks' switch on) a media
// link must reach the public internet: loopback, private, link-local
// addresses and names that resolve to them are refused (131053), the
// server behind them gets no request, and nothing is sent.
func TestBizMediaLinksArePublicOnly(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{WebhookAllowPrivate: true}})
	ctx := ctxT(t)
	b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550874", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	customer := n.Login(t, "+14155550875", "c")
	if _, err := customer.Send(ctx, b.UserID, text("hello")); err != nil {
		t.Fatal(err)
	}
	links := newLinkServer(t, testPNG(t, 16, 16), 1<<20)
	_, port, err := net.SplitHostPort(links.Listener.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	send := func(typ string, media map[string]any) (int, map[string]any) {
		return graphDo(t, ctx, http.MethodPost, n.URL+"/v21.0/"+b.PhoneNumberID+"/messages", b.AccessToken,
			map[string]any{"messaging_product": "whatsapp", "to": "14155550875", "type": typ, typ: media})
	}
	for _, link := range []string{
		links.URL + "/shop.png",
		"http://localhost:" + port + "/shop.png",
		"http://[::1]:" + port + "/shop.png",
		"http://10.1.2.3/shop.png",
		"http://192.168.0.1/shop.png",
		"http://169.254.169.254/latest/meta-data/",
		"http://0.0.0.0:" + port + "/shop.png",
	} {
		code, res := send("image", map[string]any{"link": link})
		e, _ := res["error"].(map[string]any)
		d, _ := e["error_data"].(map[string]any)
		if code != http.StatusBadRequest || graphCode(res) != 131053 || !strings.Contains(fmt.Sprint(d["details"]), "public internet") {
			t.Errorf("%s: %d %v", link, code, res)
		}
	}
	if h := links.hits.Load(); h != 0 {
		t.Errorf("the private server got %d requests", h)
	}
	if code, res := send("text", map[string]any{"body": "that's all"}); code != http.StatusOK {
		t.Fatalf("text: %d %v", code, res)
	}
	if f := nextWhere(t, customer, "the text", func(f wire.ServerFrame) bool { return f.From == b.UserID }); f.Body == nil || f.Body.Text != "that's all" {
		t.Fatalf("after the refusals the customer got %+v", f.Body)
	}
}

// TestBizMediaInbound: a customer's photo and documents reach the
// business's webhook as the Cloud API's image and document messages
// (id, mime_type, sha256 in base64, caption; a photo sent as a document
// is a document), and the business downloads them by id: bytes whose
// hash is the webhook's. Another business cannot.
func TestBizMediaInbound(t *testing.T) {
	n, b, hook := hookedNode(t, "+14155550881")
	ctx := ctxT(t)
	other, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550882", Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	customer := n.Login(t, "+14155550883", "c")
	photo := testPNG(t, 64, 48)
	pdf := []byte("%PDF-1.4\n% a receipt\n" + strings.Repeat("0123456789", 100) + "\n%%EOF\n")
	type sentFile struct {
		kind, mime, caption, sent string
		up                        wire.Media
	}
	var files []sentFile
	for _, f := range []struct {
		kind, mime, caption string
		data                []byte
		asKind              string
	}{
		{"image", "image/png", "is this the right part?", photo, ""},
		{"document", "application/pdf", "my receipt", pdf, "document"},
		{"document", "image/png", "", photo, "document"},
	} {
		up, err := customer.UploadMedia(ctx, bytes.NewReader(f.data), f.mime, f.asKind)
		if err != nil {
			t.Fatal(err)
		}
		m, err := customer.Send(ctx, b.UserID, wire.Body{MediaID: up.MediaID, Caption: f.caption})
		if err != nil {
			t.Fatal(err)
		}
		files = append(files, sentFile{f.kind, f.mime, f.caption, business.MessageID(m.ChatID, m.MsgID), up})
	}
	eventually(t, func() (bool, string) {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return len(hook.bodies) >= len(files), fmt.Sprintf("%d payloads after %d posts", len(hook.bodies), hook.posts)
	})
	hook.mu.Lock()
	bodies := append([]map[string]any(nil), hook.bodies...)
	hook.mu.Unlock()
	for i, f := range files {
		m := value(bodies[i])["messages"].([]any)[0].(map[string]any)
		obj, _ := m[f.kind].(map[string]any)
		sum, _ := hex.DecodeString(f.up.SHA256)
		if m["type"] != f.kind || m["id"] != f.sent || obj == nil || obj["id"] != f.up.MediaID || obj["mime_type"] != f.mime ||
			obj["sha256"] != base64.StdEncoding.EncodeToString(sum) || (obj["caption"] != nil || f.caption != "") && obj["caption"] != f.caption {
			t.Errorf("webhook %d: %v, want a %s of %+v", i, m, f.kind, f)
			continue
		}
		// The business fetches it by the webhook's id.
		code, res := graphDo(t, ctx, http.MethodGet, n.URL+"/v21.0/"+f.up.MediaID, b.AccessToken, nil)
		if code != http.StatusOK || res["mime_type"] != f.mime {
			t.Fatalf("GET the customer's %s: %d %v", f.kind, code, res)
		}
		status, _, data := bizGet(t, ctx, res["url"].(string), b.AccessToken)
		got := sha256.Sum256(data)
		if status != http.StatusOK || base64.StdEncoding.EncodeToString(got[:]) != obj["sha256"] {
			t.Fatalf("the customer's %s: %d, %d bytes not matching the webhook's sha256", f.kind, status, len(data))
		}
		if code, res := graphDo(t, ctx, http.MethodGet, n.URL+"/v21.0/"+f.up.MediaID, other.AccessToken, nil); !notFound33(code, res) {
			t.Fatalf("another business GETs the customer's %s: %d %v", f.kind, code, res)
		}
	}
}

// TestBizMediaLinksPerBusiness: a business whose links stall has at most
// two fetches going; a third is refused at once (131053), and another
// business's link is fetched meanwhile (its 404 answered as such, not
// "too many").
func TestBizMediaLinksPerBusiness(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{MediaLinkAllowPrivate: true}})
	ctx := ctxT(t)
	release := make(chan struct{})
	var inFlight atomic.Int32
	stall := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		inFlight.Add(1)
		select {
		case <-release:
		case <-r.Context().Done():
		}
		http.NotFound(w, r)
	}))
	t.Cleanup(stall.Close)
	missing := httptest.NewServer(http.NotFoundHandler())
	t.Cleanup(missing.Close)

	sendLink := func(b server.BusinessCreated, to, link string) (int, map[string]any) {
		return graphDo(t, ctx, http.MethodPost, n.URL+"/v23.0/"+b.PhoneNumberID+"/messages", b.AccessToken,
			map[string]any{"messaging_product": "whatsapp", "to": to, "type": "image", "image": map[string]any{"link": link}})
	}
	var bs []server.BusinessCreated
	for i, phone := range []string{"+14155550891", "+14155550892"} {
		b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: phone, Name: fmt.Sprint("Biz ", i)})
		if err != nil {
			t.Fatal(err)
		}
		rec, err := n.Store.Business(ctx, b.UserID)
		if err != nil {
			t.Fatal(err)
		}
		rec.WindowRule = false
		if err := n.Store.UpdateBusiness(ctx, rec); err != nil {
			t.Fatal(err)
		}
		bs = append(bs, b)
	}
	n.Login(t, "+14155550893", "c")
	done := make(chan error, 2)
	for range 2 {
		go func() {
			// Not graphDo: its t.Fatal is for the test's goroutine.
			body := `{"messaging_product":"whatsapp","to":"14155550893","type":"image","image":{"link":"` + stall.URL + `/slow.png"}}`
			req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/v23.0/"+bs[0].PhoneNumberID+"/messages", strings.NewReader(body))
			req.Header.Set("Authorization", "Bearer "+bs[0].AccessToken)
			req.Header.Set("Content-Type", "application/json")
			res, err := http.DefaultClient.Do(req)
			if err == nil {
				res.Body.Close()
			}
			done <- err
		}()
	}
	defer func() {
		close(release)
		for range 2 {
			if err := <-done; err != nil {
				t.Errorf("a stalled send: %v", err)
			}
		}
	}()
	eventually(t, func() (bool, string) {
		return inFlight.Load() == 2, fmt.Sprintf("%d fetches at the stalling server", inFlight.Load())
	})
	code, res := sendLink(bs[0], "14155550893", stall.URL+"/third.png")
	if code != http.StatusBadRequest || graphCode(res) != 131053 || !strings.Contains(fmt.Sprint(res), "being fetched already") {
		t.Fatalf("a third link of the stalled business: %d %v", code, res)
	}
	code, res = sendLink(bs[1], "14155550893", missing.URL+"/none.png")
	if code != http.StatusBadRequest || graphCode(res) != 131053 || !strings.Contains(fmt.Sprint(res), "404") {
		t.Fatalf("another business's link meanwhile: %d %v", code, res)
	}
	if inFlight.Load() != 2 {
		t.Fatalf("the stalling server got %d requests, want 2", inFlight.Load())
	}
}
