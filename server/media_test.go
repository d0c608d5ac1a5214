package server_test

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"image"
	"image/color"
	"image/png"
	"io"
	"mime/multipart"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/internal/node"
	"github.com/tern-im/tern/media/s3"
	"github.com/tern-im/tern/media/s3/s3test"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// mediaDeployments are the deployments, and a node keeping its files on
// S3 (versitygw started by the tests, or TERN_TEST_S3_*).
var mediaDeployments = append(deployments[:len(deployments):len(deployments)], struct {
	name  string
	start func(t *testing.T, cfg server.Config) []*servertest.Node
}{"s3", func(t *testing.T, cfg server.Config) []*servertest.Node {
	c := s3test.New(t)
	return []*servertest.Node{servertest.Start(t, servertest.Options{Server: cfg, Engines: node.Config{Media: node.MediaS3,
		S3: s3.Options{Endpoint: c.Endpoint, AccessKey: c.AccessKey, SecretKey: c.SecretKey, Region: c.Region, Bucket: c.Bucket, Prefix: c.Prefix}}})}
}})

// testPNG is a w×h PNG with a text chunk (metadata the server strips).
func testPNG(t *testing.T, w, h int) []byte {
	t.Helper()
	img := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := range h {
		for x := range w {
			img.Set(x, y, color.RGBA{uint8(x), uint8(y), 200, 255})
		}
	}
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	// A tEXt chunk ("Comment", "where I was") before IEND; its CRC is
	// not checked by image/png's decoder for ancillary chunks it skips,
	// but the server must drop the chunk whatever its CRC.
	data := b.Bytes()
	iend := bytes.LastIndex(data, []byte("IEND")) - 4
	chunk := pngChunk("tEXt", []byte("Comment\x00where I was"))
	return append(append(append([]byte{}, data[:iend]...), chunk...), data[iend:]...)
}

func pngChunk(typ string, data []byte) []byte {
	var b bytes.Buffer
	n := len(data)
	b.Write([]byte{byte(n >> 24), byte(n >> 16), byte(n >> 8), byte(n)})
	b.WriteString(typ)
	b.Write(data)
	crc := crc32IEEE(append([]byte(typ), data...))
	b.Write([]byte{byte(crc >> 24), byte(crc >> 16), byte(crc >> 8), byte(crc)})
	return b.Bytes()
}

func crc32IEEE(p []byte) uint32 {
	crc := ^uint32(0)
	for _, c := range p {
		crc ^= uint32(c)
		for range 8 {
			if crc&1 != 0 {
				crc = crc>>1 ^ 0xedb88320
			} else {
				crc >>= 1
			}
		}
	}
	return ^crc
}

func download(t *testing.T, url string) ([]byte, http.Header) {
	t.Helper()
	resp, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil || resp.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %.100s", url, resp.StatusCode, err, data)
	}
	return data, resp.Header
}

// TestMedia: an image uploaded, cleaned and described; sent in a message
// that carries its description; fetched by the chat's members through
// fresh URLs and by nobody else; forwarded; bad uploads refused.
func TestMedia(t *testing.T) {
	for _, d := range mediaDeployments {
		t.Run(d.name, func(t *testing.T) {
			nodes := d.start(t, server.Config{MediaLimits: map[string]int64{"sticker": 1000}})
			ctx := ctxT(t)
			at := func(i int) *servertest.Node { return nodes[i%len(nodes)] }
			alice := at(0).Login(t, "+14155550901", "a")
			bob := at(1).Login(t, "+14155550902", "b")
			carol := at(2).Login(t, "+14155550903", "c")
			bID, cID := bob.Session().UserID, carol.Session().UserID

			original := testPNG(t, 640, 400)
			up, err := alice.UploadMedia(ctx, bytes.NewReader(original), "image/png", "")
			if err != nil {
				t.Fatal(err)
			}
			if up.MediaID == "" || up.Kind != "image" || up.MIMEType != "image/png" || up.Width != 640 || up.Height != 400 ||
				len(up.Thumbnail) == 0 || up.ExpiresTS == 0 {
				t.Fatalf("upload: %+v", up)
			}
			thumb, _, err := image.DecodeConfig(bytes.NewReader(up.Thumbnail))
			if err != nil || max(thumb.Width, thumb.Height) > 320 {
				t.Fatalf("thumbnail %+v %v, want a JPEG of at most 320 px", thumb, err)
			}
			got, hdr := download(t, up.URL)
			sum := sha256.Sum256(got)
			if hex.EncodeToString(sum[:]) != up.SHA256 || int64(len(got)) != up.Size || hdr.Get("Content-Type") != "image/png" {
				t.Fatalf("download: %d bytes, type %q, sha256 %x; upload said %+v", len(got), hdr.Get("Content-Type"), sum, up)
			}
			if bytes.Contains(got, []byte("where I was")) {
				t.Fatal("the download still has the image's text chunk")
			}
			if _, err := png.Decode(bytes.NewReader(got)); err != nil {
				t.Fatalf("the cleaned image does not decode: %v", err)
			}

			// Sent: bob's message carries the file's description, whatever
			// the client claimed.
			sent, err := alice.Send(ctx, bID, wire.Body{MediaID: up.MediaID, Caption: "look", MIMEType: "text/html", Size: 1})
			if err != nil {
				t.Fatal(err)
			}
			f := servertest.Next(t, bob, wire.TypeMessage, wait)
			if f.MsgID != sent.MsgID || f.Body == nil || f.Body.MediaID != up.MediaID || f.Body.Caption != "look" ||
				f.Body.MIMEType != "image/png" || f.Body.Size != up.Size || f.Body.SHA256 != up.SHA256 ||
				f.Body.Width != 640 || f.Body.Height != 400 || !bytes.Equal(f.Body.Thumbnail, up.Thumbnail) {
				t.Fatalf("bob got %+v", f.Body)
			}
			// bob, in the chat, gets a fresh URL (from his own node).
			m, err := bob.Media(ctx, up.MediaID, "")
			if err != nil {
				t.Fatal(err)
			}
			if again, _ := download(t, m.URL); !bytes.Equal(again, got) {
				t.Fatal("bob's URL serves other bytes")
			}
			// Named by its chat, the check is the same.
			if _, err := bob.Media(ctx, up.MediaID, sent.ChatID); err != nil {
				t.Fatalf("bob naming the chat: %v", err)
			}
			// carol is in no chat with it: not found, whatever chat she
			// names, and she cannot send it.
			if _, err := carol.Media(ctx, up.MediaID, ""); errCode(err) != wire.CodeNotFound {
				t.Fatalf("carol fetching a file of others: %v, want not_found", err)
			}
			if _, err := carol.Media(ctx, up.MediaID, sent.ChatID); errCode(err) != wire.CodeNotFound {
				t.Fatalf("carol naming a chat she is not in: %v, want not_found", err)
			}
			if _, err := carol.Send(ctx, bID, wire.Body{MediaID: up.MediaID}); errCode(err) != wire.CodeNotFound {
				t.Fatalf("carol sending a file she cannot see: %v, want not_found", err)
			}
			// bob forwards it to carol, who then may fetch it.
			if _, err := bob.Send(ctx, cID, wire.Body{MediaID: up.MediaID, Forwarded: true}); err != nil {
				t.Fatal(err)
			}
			servertest.Next(t, carol, wire.TypeMessage, wait)
			if _, err := carol.Media(ctx, up.MediaID, ""); err != nil {
				t.Fatalf("carol after the forward: %v", err)
			}
			if _, err := carol.Media(ctx, up.MediaID, sent.ChatID); errCode(err) != wire.CodeNotFound {
				t.Fatalf("carol naming a chat of the file she is not in: %v, want not_found", err)
			}

			// A description without a file is refused.
			if _, err := alice.Send(ctx, bID, wire.Body{Text: "x", MIMEType: "image/png"}); errCode(err) != wire.CodeBadRequest {
				t.Fatalf("a body describing no file: %v, want bad_request", err)
			}
			// Bad uploads.
			exe := append([]byte("MZ\x90\x00"), bytes.Repeat([]byte{0}, 500)...)
			if _, err := alice.UploadMedia(ctx, bytes.NewReader(exe), "image/jpeg", "image"); errCode(err) != wire.CodeBadRequest {
				t.Fatalf("a program sent as an image: %v, want bad_request", err)
			}
			if _, err := alice.UploadMedia(ctx, bytes.NewReader(original), "image/png", "sticker"); errCode(err) != wire.CodeTooLarge {
				t.Fatalf("a sticker over its limit: %v, want too_large", err)
			}
			if _, err := alice.UploadMedia(ctx, bytes.NewReader(make([]byte, 1001+64<<10)), "image/png", "sticker"); errCode(err) != wire.CodeTooLarge {
				t.Fatalf("a sticker over its limit by its length: %v, want too_large", err)
			}
			if _, err := alice.UploadMedia(ctx, bytes.NewReader(nil), "image/png", ""); errCode(err) != wire.CodeBadRequest {
				t.Fatalf("an empty upload: %v, want bad_request", err)
			}
			if _, err := alice.UploadMedia(ctx, bytes.NewReader(original), "image/png", "hologram"); errCode(err) != wire.CodeBadRequest {
				t.Fatalf("an unknown kind: %v, want bad_request", err)
			}
			// Description fields on an action are refused too.
			if _, err := alice.Send(ctx, bID, wire.Body{Reaction: &wire.ReactionAction{MsgID: sent.MsgID, Emoji: "👍"}, MIMEType: "x"}); errCode(err) != wire.CodeBadRequest {
				t.Fatalf("an action body describing a file: %v, want bad_request", err)
			}
			// A picture the server cannot clean goes only as a document.
			heic := append([]byte("\x00\x00\x00\x18ftypheic\x00\x00\x00\x00mif1heic"), bytes.Repeat([]byte{0}, 100)...)
			if _, err := alice.UploadMedia(ctx, bytes.NewReader(heic), "image/heic", ""); errCode(err) != wire.CodeBadRequest {
				t.Fatalf("a HEIC photo without a kind: %v, want bad_request", err)
			}
			if m, err := alice.UploadMedia(ctx, bytes.NewReader(heic), "image/heic", "document"); err != nil || m.Kind != "document" {
				t.Fatalf("a HEIC photo as a document: %+v %v", m, err)
			}
			// A send the group refuses shares nothing: no member may fetch.
			g, err := alice.CreateGroup(ctx, "announcements", "", []string{bID, cID})
			if err != nil {
				t.Fatal(err)
			}
			admins := "admins"
			if _, err := alice.UpdateGroup(ctx, g.ChatID, wire.GroupPatch{Settings: &wire.GroupSettingsPatch{Send: &admins}}); err != nil {
				t.Fatal(err)
			}
			bobs, err := bob.UploadMedia(ctx, bytes.NewReader(original), "image/png", "image")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := bob.Send(ctx, g.ChatID, wire.Body{MediaID: bobs.MediaID}); errCode(err) != wire.CodeForbidden {
				t.Fatalf("a member's send to an admins-only group: %v, want forbidden", err)
			}
			if _, err := carol.Media(ctx, bobs.MediaID, ""); errCode(err) != wire.CodeNotFound {
				t.Fatalf("a file of a refused send: %v, want not_found", err)
			}
			// A document, in a multipart form; its kind comes from its type.
			doc := []byte("%PDF-1.4\n" + strings.Repeat("x", 2000))
			var form bytes.Buffer
			mw := multipart.NewWriter(&form)
			part, err := mw.CreateFormFile("file", "report.pdf")
			if err != nil {
				t.Fatal(err)
			}
			part.Write(doc)
			mw.Close()
			req, err := http.NewRequestWithContext(ctx, http.MethodPost, at(0).URL+"/v1/media", &form)
			if err != nil {
				t.Fatal(err)
			}
			req.Header.Set("Content-Type", mw.FormDataContentType())
			req.Header.Set("Authorization", "Bearer "+alice.Session().AccessToken)
			resp, err := http.DefaultClient.Do(req)
			if err != nil {
				t.Fatal(err)
			}
			data, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode != http.StatusCreated || !bytes.Contains(data, []byte(`"mime_type":"application/pdf"`)) ||
				!bytes.Contains(data, []byte(`"kind":"document"`)) {
				t.Fatalf("multipart upload: %d %s", resp.StatusCode, data)
			}
		})
	}
}

// linkGone waits for url to answer 404: the collector claims a file (which
// is then not found to the API) before it deletes its bytes.
func linkGone(t *testing.T, what, url string) {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		resp, err := http.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusNotFound {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s answers %d, want 404", what, resp.StatusCode)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestMediaCollected: an upload no message carried is deleted once the
// grace is over (its record and its bytes); one that was sent stays.
func TestMediaCollected(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			clock := &testClock{}
			nodes := startClocked(t, d.name, clock)
			ctx := ctxT(t)
			alice := nodes[0].Login(t, "+14155550911", "a")
			bob := nodes[len(nodes)-1].Login(t, "+14155550912", "b")
			png := testPNG(t, 64, 48)
			sent, err := alice.UploadMedia(ctx, bytes.NewReader(png), "image/png", "")
			if err != nil {
				t.Fatal(err)
			}
			unsent, err := alice.UploadMedia(ctx, bytes.NewReader(png), "image/png", "")
			if err != nil {
				t.Fatal(err)
			}
			if _, err := alice.Send(ctx, bob.Session().UserID, wire.Body{MediaID: sent.MediaID}); err != nil {
				t.Fatal(err)
			}
			// A day later: the unsent upload goes; one made now stays (the
			// round that deleted the first saw it, within its grace).
			clock.Advance(25 * time.Hour)
			fresh, err := alice.UploadMedia(ctx, bytes.NewReader(png), "image/png", "")
			if err != nil {
				t.Fatal(err)
			}
			deadline := time.Now().Add(wait)
			for {
				_, err := alice.Media(ctx, unsent.MediaID, "")
				if errCode(err) == wire.CodeNotFound {
					break
				}
				if err != nil || time.Now().After(deadline) {
					t.Fatalf("an upload never sent, a day later: %v, want not_found", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			if _, err := alice.Media(ctx, fresh.MediaID, ""); err != nil {
				t.Fatalf("an upload within its grace: %v", err)
			}
			linkGone(t, "the collected upload's link", unsent.URL)
			m, err := bob.Media(ctx, sent.MediaID, "")
			if err != nil {
				t.Fatalf("a sent file after the collection: %v", err)
			}
			if got, _ := download(t, m.URL); !bytes.Equal(got[:8], png[:8]) {
				t.Fatal("the sent file's bytes changed")
			}
		})
	}
}

// TestMediaOfGoneMessagesCollected: a file goes once the last message that
// carries it is deleted for everyone or expires, and not before; a resend
// of a media message does not keep its file forever.
func TestMediaOfGoneMessagesCollected(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			clock := &testClock{}
			nodes := startClocked(t, d.name, clock)
			ctx := ctxT(t)
			alice := nodes[0].Login(t, "+14155550921", "a")
			bob := nodes[len(nodes)-1].Login(t, "+14155550922", "b")
			carol := nodes[len(nodes)/2].Login(t, "+14155550923", "c")
			png := testPNG(t, 32, 24)
			upload := func() wire.Media {
				t.Helper()
				m, err := alice.UploadMedia(ctx, bytes.NewReader(png), "image/png", "")
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			send := func(id, to string, f wire.Media) wire.Sent {
				t.Helper()
				s, err := alice.SendWithID(ctx, id, to, wire.Body{MediaID: f.MediaID}, "")
				if err != nil {
					t.Fatal(err)
				}
				return s
			}
			gone := func(what string, f wire.Media) {
				t.Helper()
				deadline := time.Now().Add(wait)
				for {
					_, err := bob.Media(ctx, f.MediaID, "")
					if errCode(err) == wire.CodeNotFound {
						break
					}
					if err != nil && errCode(err) != wire.CodeNotFound || time.Now().After(deadline) {
						t.Fatalf("%s: %v, want not_found", what, err)
					}
					time.Sleep(20 * time.Millisecond)
				}
				linkGone(t, what+": its link", f.URL)
			}
			kept := func(what string, f wire.Media) {
				t.Helper()
				m, err := bob.Media(ctx, f.MediaID, "")
				if err != nil {
					t.Fatalf("%s: %v", what, err)
				}
				if got, _ := download(t, m.URL); !bytes.Equal(got[:8], png[:8]) {
					t.Fatalf("%s: its bytes changed", what)
				}
			}
			toBob := bob.Session().UserID

			once, twice, brief := upload(), upload(), upload()
			m1 := send("m1", toBob, once)
			if again := send("m1", toBob, once); again.MsgID != m1.MsgID {
				t.Fatalf("a resend was stored anew: %s, first %s", again.MsgID, m1.MsgID)
			}
			m2 := send("m2", toBob, twice)
			m3 := send("m3", toBob, twice)

			// One of the two messages of a file goes: the file stays.
			if _, err := alice.DeleteForEveryone(ctx, toBob, m2.MsgID); err != nil {
				t.Fatal(err)
			}
			// The only message of the other goes (it was resent: the
			// resend's id carries nothing), and with it the file, at the
			// next collection, long before an upload's grace.
			if _, err := alice.DeleteForEveryone(ctx, toBob, m1.MsgID); err != nil {
				t.Fatal(err)
			}
			gone("the file of a message deleted for everyone", once)
			// That collection ran after m2 went too.
			kept("a file one more message carries", twice)
			if _, err := alice.DeleteForEveryone(ctx, toBob, m3.MsgID); err != nil {
				t.Fatal(err)
			}
			gone("the file of the last of its messages deleted", twice)

			// A disappearing message takes its file when it expires.
			toCarol := carol.Session().UserID
			hello, err := alice.Send(ctx, toCarol, wire.Body{Text: "hi"})
			if err != nil {
				t.Fatal(err)
			}
			if _, err := alice.SetDisappearing(ctx, hello.ChatID, 86400); err != nil {
				t.Fatal(err)
			}
			send("m4", toCarol, brief)
			m, err := carol.Media(ctx, brief.MediaID, "")
			if err != nil {
				t.Fatalf("a disappearing message's file before its time: %v", err)
			}
			clock.Advance(25 * time.Hour)
			deadline := time.Now().Add(wait)
			for {
				_, err := carol.Media(ctx, brief.MediaID, "")
				if errCode(err) == wire.CodeNotFound {
					break
				}
				if err != nil && errCode(err) != wire.CodeNotFound || time.Now().After(deadline) {
					t.Fatalf("the file of an expired message: %v, want not_found", err)
				}
				time.Sleep(20 * time.Millisecond)
			}
			linkGone(t, "the expired message's file link", m.URL)
		})
	}
}

// TestMediaClaimedIsGone: a file the collector has claimed (it checked
// that no message carries it, and is about to delete it) is gone to its
// uploader's fetches and sends: a forward racing the collector is refused
// with not_found rather than stored with a file about to go. A file a
// message carries is never claimed.
func TestMediaClaimedIsGone(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			nodes := d.start(t, server.Config{})
			ctx := ctxT(t)
			alice := nodes[0].Login(t, "+14155550931", "a")
			bob := nodes[len(nodes)-1].Login(t, "+14155550932", "b")
			toBob := bob.Session().UserID
			png := testPNG(t, 16, 12)
			upload := func() wire.Media {
				t.Helper()
				m, err := alice.UploadMedia(ctx, bytes.NewReader(png), "image/png", "")
				if err != nil {
					t.Fatal(err)
				}
				return m
			}
			doomed, sent := upload(), upload()
			if _, err := alice.Send(ctx, toBob, wire.Body{MediaID: sent.MediaID}); err != nil {
				t.Fatal(err)
			}
			// What the collector does first, with a cut-off past both
			// uploads (the node's own collector, at a day's grace, leaves
			// them alone).
			st := nodes[0].Store
			if ok, err := st.ClaimMediaFile(ctx, sent.MediaID, time.Now().Add(time.Hour)); err != nil || ok {
				t.Fatalf("claim of a file a message carries = %v, %v; want false", ok, err)
			}
			if ok, err := st.ClaimMediaFile(ctx, doomed.MediaID, time.Now().Add(time.Hour)); err != nil || !ok {
				t.Fatalf("claim of an upload never sent = %v, %v; want true", ok, err)
			}
			if _, err := alice.Send(ctx, toBob, wire.Body{MediaID: doomed.MediaID}); errCode(err) != wire.CodeNotFound {
				t.Fatalf("sending a claimed file: %v, want not_found", err)
			}
			if _, err := alice.Media(ctx, doomed.MediaID, ""); errCode(err) != wire.CodeNotFound {
				t.Fatalf("fetching a claimed file: %v, want not_found", err)
			}
			// The carried file is as it was, and may be sent again.
			if _, err := bob.Media(ctx, sent.MediaID, ""); err != nil {
				t.Fatalf("the sent file after a refused claim: %v", err)
			}
			if _, err := alice.Send(ctx, toBob, wire.Body{MediaID: sent.MediaID}); err != nil {
				t.Fatalf("sending the sent file again: %v", err)
			}
		})
	}
}

// TestUploadsAreBudgeted: each user has its own hourly number of uploads.
func TestUploadsAreBudgeted(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{UploadsPerUserHour: 2}})
	ctx := ctxT(t)
	alice := n.LoginOnly(t, "+14155550921", "a")
	bob := n.LoginOnly(t, "+14155550922", "b")
	png := testPNG(t, 8, 8)
	for range 2 {
		if _, err := alice.UploadMedia(ctx, bytes.NewReader(png), "image/png", ""); err != nil {
			t.Fatal(err)
		}
	}
	_, err := alice.UploadMedia(ctx, bytes.NewReader(png), "image/png", "")
	if we := asWire(err); we == nil || we.Code != wire.CodeRateLimited || we.RetryAfter <= 0 {
		t.Fatalf("a third upload in the hour: %v, want rate_limited with retry_after", err)
	}
	if _, err := bob.UploadMedia(ctx, bytes.NewReader(png), "image/png", ""); err != nil {
		t.Fatalf("bob's first upload: %v", err)
	}
}
