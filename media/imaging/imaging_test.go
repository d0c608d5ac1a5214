package imaging

import (
	"archive/zip"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"hash/crc32"
	"image"
	"image/color"
	"image/color/palette"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"
	"math/rand/v2"
	"reflect"
	"strings"
	"testing"

	xdraw "golang.org/x/image/draw"
	"golang.org/x/image/webp"
)

func TestKinds(t *testing.T) {
	for _, tc := range []struct {
		name string
		kind Kind
		max  int64
	}{
		{"image", Image, 16 << 20},
		{"video", Video, 64 << 20},
		{"audio", Audio, 64 << 20},
		{"document", Document, 100 << 20},
		{"sticker", Sticker, 500 << 10},
	} {
		k, err := ParseKind(tc.name)
		if err != nil || k != tc.kind || k.String() != tc.name || k.MaxSize() != tc.max {
			t.Errorf("ParseKind(%q) = %v, %v; String %q, MaxSize %d", tc.name, k, err, k.String(), k.MaxSize())
		}
	}
	for _, s := range []string{"", "Image", "gif", "voice"} {
		if _, err := ParseKind(s); !errors.Is(err, ErrUnknownKind) {
			t.Errorf("ParseKind(%q) error = %v, want ErrUnknownKind", s, err)
		}
	}
	if Kind(0).MaxSize() != 0 || Kind(9).AcceptedTypes() != nil || Kind(0).Accepts("image/png") {
		t.Error("an invalid kind has limits or types")
	}
	if !Document.Accepts("application/x-anything") || Document.AcceptedTypes() != nil {
		t.Error("Document does not accept everything")
	}
	a := Image.AcceptedTypes()
	a[0] = "changed"
	if Image.AcceptedTypes()[0] == "changed" {
		t.Error("AcceptedTypes shares its slice")
	}
}

// ftyp makes an ISO BMFF file head: an ftyp box and the start of another.
func ftyp(major string, compat ...string) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(16+4*len(compat)))
	b = append(b, "ftyp"+major+"\x00\x00\x02\x00"...)
	for _, c := range compat {
		b = append(b, c...)
	}
	return append(b, "\x00\x00\x00\x08free"...)
}

// ebml makes a Matroska/WebM file head with the given DocType.
func ebml(docType string) []byte {
	body := []byte{0x42, 0x86, 0x81, 0x01, 0x42, 0xf7, 0x81, 0x01, 0x42, 0xf2, 0x81, 0x04, 0x42, 0xf3, 0x81, 0x08,
		0x42, 0x82, byte(0x80 | len(docType))}
	body = append(body, docType...)
	body = append(body, 0x42, 0x87, 0x81, 0x04, 0x42, 0x85, 0x81, 0x02)
	b := append([]byte{0x1a, 0x45, 0xdf, 0xa3, byte(0x80 | len(body))}, body...)
	return append(b, 0x18, 0x53, 0x80, 0x67, 0x01, 0, 0, 0, 0, 0, 0, 0) // Segment
}

// oggPage makes the first page of an Ogg stream holding packet.
func oggPage(packet string) []byte {
	b := append([]byte("OggS\x00\x02"), make([]byte, 8+4+4+4)...)
	b = append(b, 1, byte(len(packet)))
	return append(b, packet...)
}

// mp3 makes three MPEG-1 Layer III frames (128 kbit/s, 44.1 kHz, 417
// bytes each).
func mp3() []byte {
	f := make([]byte, 417)
	copy(f, []byte{0xff, 0xfb, 0x90, 0x00})
	return bytes.Repeat(f, 3)
}

// frames makes three frames of n bytes starting with header.
func frames(n int, header ...byte) []byte {
	f := make([]byte, n)
	copy(f, header)
	return bytes.Repeat(f, 3)
}

// adts makes two AAC frames in ADTS headers.
func adts() []byte {
	n := 200
	f := make([]byte, n)
	copy(f, []byte{0xff, 0xf1, 0x50, 0x80 | byte(n>>11&3), byte(n >> 3), byte(n<<5) | 0x1f, 0xfc})
	return bytes.Repeat(f, 2)
}

func id3(rest []byte) []byte {
	return append([]byte("ID3\x04\x00\x00\x00\x00\x00\x0aTIT2\x00\x00\x00\x00\x00\x00"), rest...)
}

// zipOf makes a ZIP with the named entries, in order, as archive/zip
// writes them (sizes after the data).
func zipOf(t *testing.T, entries ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	for _, name := range entries {
		f, err := w.Create(name)
		if err != nil {
			t.Fatal(err)
		}
		io.WriteString(f, "<?xml version=\"1.0\"?><x/>")
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// zipStoredFirst makes a ZIP whose first entry is stored with its size
// in the local header, as OpenDocument requires of "mimetype".
func zipStoredFirst(t *testing.T, name string, data []byte, then ...string) []byte {
	t.Helper()
	var b bytes.Buffer
	w := zip.NewWriter(&b)
	f, err := w.CreateRaw(&zip.FileHeader{Name: name, Method: zip.Store, CRC32: crc32.ChecksumIEEE(data),
		CompressedSize64: uint64(len(data)), UncompressedSize64: uint64(len(data))})
	if err != nil {
		t.Fatal(err)
	}
	f.Write(data)
	for _, name := range then {
		f, _ := w.Create(name)
		io.WriteString(f, "<x/>")
	}
	w.Close()
	return b.Bytes()
}

func TestSniff(t *testing.T) {
	jpg := encodeJPEG(t, quadrants(16, 16), 80)
	pngb := encodePNG(t, quadrants(16, 16))
	var gifb bytes.Buffer
	gif.Encode(&gifb, quadrants(8, 8), nil)
	webpb := webpFile(riffChunk("VP8L", vp8l(4, 4, 1, 2, topLeft(4, 4))))
	noise := make([]byte, 2*HeadLen)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range noise {
		noise[i] = byte(rng.Uint32())
	}
	// An OOXML package whose first part is too large for its main part's
	// name to be within HeadLen bytes.
	var late bytes.Buffer
	{
		w := zip.NewWriter(&late)
		f, _ := w.CreateHeader(&zip.FileHeader{Name: "[Content_Types].xml", Method: zip.Store})
		f.Write(noise)
		f, _ = w.Create("word/document.xml")
		io.WriteString(f, "<x/>")
		w.Close()
	}
	const (
		docx = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
		xlsx = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
		pptx = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
		odt  = "application/vnd.oasis.opendocument.text"
	)
	type tc struct {
		name     string
		head     []byte
		declared string
		kind     Kind
		want     string // "" means a *TypeError
	}
	tests := []tc{
		// Images and stickers.
		{"jpeg", jpg, "image/jpeg", Image, "image/jpeg"},
		{"jpeg declared png", jpg, "image/png", Image, "image/jpeg"},
		{"png", pngb, "", Image, "image/png"},
		{"gif", gifb.Bytes(), "image/gif", Image, "image/gif"},
		{"webp", webpb, "image/webp", Image, "image/webp"},
		{"webp sticker", webpb, "image/webp", Sticker, "image/webp"},
		{"png sticker", pngb, "image/png", Sticker, "image/png"},
		{"jpeg sticker", jpg, "image/webp", Sticker, ""},
		{"gif sticker", gifb.Bytes(), "image/gif", Sticker, ""},
		{"heic image", ftyp("heic", "mif1", "heic"), "image/heic", Image, ""},
		{"heic document", ftyp("heic", "mif1", "heic"), "image/heic", Document, "image/heic"},
		{"heix", ftyp("heix", "mif1"), "", Document, "image/heic"},
		{"heif mif1", ftyp("mif1", "miaf"), "", Document, "image/heif"},
		{"heic sequence", ftyp("msf1", "hevc"), "", Document, "image/heic-sequence"},
		{"avif", ftyp("avif", "mif1", "miaf"), "image/avif", Document, "image/avif"},
		{"avif image", ftyp("avif", "mif1", "miaf"), "image/avif", Image, ""},
		// Video.
		{"mp4", ftyp("isom", "isom", "iso2", "avc1", "mp41"), "video/mp4", Video, "video/mp4"},
		{"mp4 mp42", ftyp("mp42", "mp42", "isom"), "", Video, "video/mp4"},
		{"mp4 as audio", ftyp("isom", "isom", "mp41"), "audio/mp4", Audio, "audio/mp4"},
		{"mp4 document declared audio", ftyp("mp42", "isom"), "audio/x-m4a", Document, "audio/mp4"},
		{"mp4 document", ftyp("mp42", "isom"), "application/octet-stream", Document, "video/mp4"},
		{"m4a", ftyp("M4A ", "M4A ", "mp42", "isom"), "audio/mp4", Audio, "audio/mp4"},
		{"m4a as video", ftyp("M4A ", "M4A ", "mp42", "isom"), "video/mp4", Video, ""},
		{"quicktime", ftyp("qt  ", "qt  "), "video/quicktime", Video, "video/quicktime"},
		{"old quicktime", append([]byte("\x00\x00\x01\x00moov"), make([]byte, 16)...), "", Video, "video/quicktime"},
		{"3gpp", ftyp("3gp4", "isom", "3gp4"), "video/3gpp", Video, "video/3gpp"},
		{"3gpp voice", ftyp("3gp4", "isom", "3gp4"), "audio/3gpp", Audio, "audio/3gpp"},
		{"3gpp2", ftyp("3g2a", "3g2a"), "", Video, "video/3gpp2"},
		{"webm", ebml("webm"), "video/webm", Video, "video/webm"},
		{"webm voice", ebml("webm"), "audio/webm", Audio, "audio/webm"},
		{"matroska", ebml("matroska"), "video/x-matroska", Video, ""},
		{"matroska document", ebml("matroska"), "", Document, "video/x-matroska"},
		{"unknown brand", ftyp("zzzz", "yyyy"), "video/mp4", Video, ""},
		// Sound.
		{"ogg opus", oggPage("OpusHead\x01\x02\x38\x01\x80\xbb\x00\x00\x00\x00\x00"), "audio/ogg", Audio, "audio/ogg; codecs=opus"},
		{"ogg vorbis", oggPage("\x01vorbis\x00\x00\x00\x00\x02\x44\xac\x00\x00"), "", Audio, "audio/ogg"},
		{"ogg theora", oggPage("\x80theora\x03\x02\x01"), "", Audio, ""},
		{"ogg theora document", oggPage("\x80theora\x03\x02\x01"), "", Document, "video/ogg"},
		{"mp3 id3", id3(mp3()), "audio/mpeg", Audio, "audio/mpeg"},
		{"mp3 frames", mp3(), "audio/mpeg", Audio, "audio/mpeg"},
		{"mpeg-2 layer iii", frames(208, 0xff, 0xf3, 0x80, 0x00), "", Audio, "audio/mpeg"},
		{"mpeg-1 layer ii", frames(626, 0xff, 0xfd, 0xa0, 0x00), "", Audio, "audio/mpeg"},
		{"mpeg-2.5 layer iii, padded", frames(1+72*32000/11025, 0xff, 0xe3, 0x42, 0x00), "", Audio, "audio/mpeg"},
		{"mpeg wrong length", frames(625, 0xff, 0xfd, 0xa0, 0x00), "", Audio, ""},
		{"mp3 one frame is not enough", append(mp3()[:417], 'x', 'y', 'z', 'w'), "audio/mpeg", Audio, ""},
		{"aac", adts(), "audio/aac", Audio, "audio/aac"},
		{"aac after id3", id3(adts()), "audio/mpeg", Audio, "audio/aac"},
		{"amr", []byte("#!AMR\n\x3c\x48\xf5"), "audio/amr", Audio, "audio/amr"},
		{"amr-wb", []byte("#!AMR-WB\n\x04\x10\x20"), "", Audio, "audio/amr-wb"},
		{"flac", []byte("fLaC\x00\x00\x00\x22"), "audio/flac", Audio, ""},
		{"flac document", []byte("fLaC\x00\x00\x00\x22"), "audio/flac", Document, "audio/flac"},
		{"flac after id3", id3([]byte("fLaC\x00\x00\x00\x22")), "", Document, "audio/flac"},
		{"wav", []byte("RIFF\x24\x00\x00\x00WAVEfmt \x10\x00\x00\x00"), "audio/wav", Audio, ""},
		{"png as video", pngb, "video/mp4", Video, ""},
		{"png as audio", pngb, "audio/mpeg", Audio, ""},
		// Documents.
		{"pdf", []byte("%PDF-1.7\n%\xe2\xe3\xcf\xd3\n"), "application/pdf", Document, "application/pdf"},
		{"pdf as image", []byte("%PDF-1.7\n"), "image/jpeg", Image, ""},
		{"docx", zipOf(t, "[Content_Types].xml", "_rels/.rels", "word/document.xml"), docx, Document, docx},
		{"docx undeclared", zipOf(t, "[Content_Types].xml", "_rels/.rels", "word/document.xml"), "application/octet-stream", Document, docx},
		{"docx declared xlsx", zipOf(t, "[Content_Types].xml", "word/document.xml"), xlsx, Document, docx},
		{"xlsx", zipOf(t, "[Content_Types].xml", "_rels/.rels", "xl/workbook.xml"), xlsx, Document, xlsx},
		{"pptx", zipOf(t, "_rels/.rels", "docProps/app.xml", "ppt/presentation.xml", "[Content_Types].xml"), "", Document, pptx},
		{"ooxml part beyond head", late.Bytes()[:HeadLen], docx, Document, docx},
		{"ooxml part beyond head undeclared", late.Bytes()[:HeadLen], "", Document, "application/zip"},
		{"zip declared docx", zipOf(t, "notes.txt", "photo.jpg"), docx, Document, "application/zip"},
		{"word folder zipped", zipOf(t, "word/notes.txt"), "application/zip", Document, "application/zip"},
		{"word folder declared docx", zipOf(t, "word/document.xml"), docx, Document, docx},
		{"odt", zipStoredFirst(t, "mimetype", []byte(odt), "content.xml"), odt, Document, odt},
		{"odt undeclared", zipStoredFirst(t, "mimetype", []byte(odt), "content.xml"), "", Document, odt},
		{"mimetype not allowed", zipStoredFirst(t, "mimetype", []byte("text/html"), "index.html"), "text/html", Document, "application/zip"},
		{"zip as image", zipOf(t, "a.jpg"), "image/jpeg", Image, ""},
		{"exe as image", []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), "image/jpeg", Image, ""},
		{"exe document", []byte("MZ\x90\x00\x03\x00\x00\x00\x04\x00\x00\x00\xff\xff"), "image/jpeg", Document, "application/octet-stream"},
		{"html document", []byte("<!DOCTYPE html><html><script>alert(1)</script>"), "text/plain", Document, "text/html; charset=utf-8"},
		{"html as image", []byte("<!DOCTYPE html><html><script>alert(1)</script>"), "image/png", Image, ""},
		{"svg as image", []byte(`<?xml version="1.0"?><svg xmlns="http://www.w3.org/2000/svg"></svg>`), "image/svg+xml", Image, ""},
		{"csv", []byte("name,phone\nAda,+15551234567\n"), "text/csv", Document, "text/csv; charset=utf-8"},
		{"vcard", []byte("BEGIN:VCARD\r\nVERSION:3.0\r\nFN:Ada\r\nEND:VCARD\r\n"), "text/vcard; charset=utf-8", Document, "text/vcard; charset=utf-8"},
		{"text declared html", []byte("just some words"), "text/html", Document, "text/plain; charset=utf-8"},
		{"utf-16 text is not mp3", []byte("\xff\xfeH\x00i\x00!\x00\x00\x00\x00\x00\x00\x00\x00\x00"), "", Document, "text/plain; charset=utf-16le"},
		{"empty", nil, "application/pdf", Document, "application/octet-stream"},
		{"empty image", nil, "image/png", Image, ""},
		{"noise", noise, "image/jpeg", Document, "application/octet-stream"},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			got, err := Sniff(tc.head, tc.declared, tc.kind)
			if tc.want == "" {
				var te *TypeError
				if !errors.As(err, &te) || !errors.Is(err, ErrUnsupportedType) || got != "" {
					t.Fatalf("Sniff = %q, %v; want a *TypeError", got, err)
				}
				if te.Kind != tc.kind || te.Declared != tc.declared || te.Type == "" {
					t.Errorf("TypeError %+v", te)
				}
				return
			}
			if err != nil || got != tc.want {
				t.Fatalf("Sniff = %q, %v; want %q", got, err, tc.want)
			}
			if !tc.kind.Accepts(got) {
				t.Errorf("%v does not accept the %q it sniffed", tc.kind, got)
			}
		})
	}
}

func TestSniffErrors(t *testing.T) {
	if _, err := Sniff([]byte("GIF89a"), "", 0); !errors.Is(err, ErrUnknownKind) {
		t.Errorf("kind 0: %v", err)
	}
	_, err := Sniff(encodePNG(t, quadrants(4, 4)), "video/mp4", Video)
	msg := err.Error()
	for _, want := range []string{"image/png is not accepted as video", "video/mp4, video/quicktime", "declared as video/mp4"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message %q lacks %q", msg, want)
		}
	}
	// Only HeadLen bytes count: a ZIP's main part named later is not seen.
	head := append(zipOf(t, "[Content_Types].xml"), make([]byte, HeadLen)...)
	head = append(head, zipOf(t, "word/document.xml")...)
	if got, _ := Sniff(head, "", Document); got != "application/zip" {
		t.Errorf("Sniff looked past HeadLen: %q", got)
	}
}

// process runs Process on b and fails the test on an error.
func process(t *testing.T, b []byte, typ string, opt Options) ([]byte, Result) {
	t.Helper()
	var out bytes.Buffer
	res, err := Process(&out, bytes.NewReader(b), int64(len(b)), typ, opt)
	if err != nil {
		t.Fatalf("Process(%s): %v", typ, err)
	}
	if res.Size != int64(out.Len()) {
		t.Errorf("Result.Size %d, wrote %d", res.Size, out.Len())
	}
	return out.Bytes(), res
}

// checkThumbnail decodes a thumbnail and checks its size.
func checkThumbnail(t *testing.T, thumb []byte, w, h int) image.Image {
	t.Helper()
	m, err := jpeg.Decode(bytes.NewReader(thumb))
	if err != nil {
		t.Fatalf("thumbnail: %v", err)
	}
	if b := m.Bounds(); b.Dx() != w || b.Dy() != h {
		t.Fatalf("thumbnail is %v, want %d×%d", b.Size(), w, h)
	}
	return m
}

// noSecrets fails if anything planted in metadata reached out.
func noSecrets(t *testing.T, out []byte) {
	t.Helper()
	for _, s := range []string{"Exif\x00\x00", secretMake, secretGPS, secretXMP, secretText, gpsEntry,
		"http://ns.adobe.com/xap/1.0/", "Photoshop 3.0"} {
		if bytes.Contains(out, []byte(s)) {
			t.Errorf("output contains %q", s)
		}
	}
}

func TestProcessJPEGStripsMetadata(t *testing.T) {
	img := photoLike(96, 64)
	plain := encodeJPEG(t, img, 85)
	// A made-up ICC profile of an RGB space: only its header matters.
	icc := append([]byte("ICC_PROFILE\x00\x01\x01"), make([]byte, 128)...)
	copy(icc[14+16:], "RGB ")
	jfif := append([]byte("JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x02\x01"), bytes.Repeat([]byte{0x7f}, 2*1*3)...)
	for _, bo := range []byteOrder{binary.BigEndian, binary.LittleEndian} {
		in := afterSOI(plain,
			segment(0xe0, jfif),
			exifAPP1(bo, 1),
			segment(0xe1, []byte("http://ns.adobe.com/xap/1.0/\x00<x:xmpmeta>"+secretXMP+"</x:xmpmeta>")),
			segment(0xe2, icc),
			segment(0xe2, []byte("MPF\x00II*\x00\x08\x00\x00\x00")),
			segment(0xed, []byte("Photoshop 3.0\x008BIM\x04\x04\x00\x00\x00\x00\x00\x10"+secretText)),
			segment(0xeb, []byte("JP\x00\x01"+secretText)),
			segment(0xfe, []byte(secretText)),
		)
		in = append(in, "\x00\x00\x00\x18ftypmp42"+secretText...) // a motion photo's video
		out, res := process(t, in, "image/jpeg", Options{})
		noSecrets(t, out)
		if res.Width != 96 || res.Height != 64 || res.Reencoded {
			t.Errorf("Result %+v", res)
		}
		if !bytes.Contains(out, segment(0xe2, icc)) {
			t.Error("the ICC profile was not kept")
		}
		wantJFIF := segment(0xe0, []byte("JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x00\x00"))
		if !bytes.HasPrefix(out, append([]byte{0xff, 0xd8}, wantJFIF...)) {
			t.Errorf("output starts % x, want SOI and JFIF without its thumbnail", out[:24])
		}
		if !bytes.HasSuffix(out, []byte{0xff, 0xd9}) {
			t.Error("output does not end at EOI")
		}
		// The rest is the encoder's output byte for byte.
		if !bytes.HasSuffix(out, plain[2:]) || len(out) != 2+len(wantJFIF)+len(segment(0xe2, icc))+len(plain)-2 {
			t.Error("image data changed")
		}
		a, _ := jpeg.Decode(bytes.NewReader(plain))
		b, err := jpeg.Decode(bytes.NewReader(out))
		if err != nil || !reflect.DeepEqual(a, b) {
			t.Fatalf("output decodes differently: %v", err)
		}
		checkThumbnail(t, res.Thumbnail, 96, 64)
	}
}

func TestProcessJPEGStructure(t *testing.T) {
	for _, tc := range []struct{ name, b64 string }{
		{"progressive", progressiveJPEG},
		{"restart markers", restartJPEG},
	} {
		t.Run(tc.name, func(t *testing.T) {
			plain := unbase64(t, tc.b64)
			in := afterSOI(plain, exifAPP1(binary.LittleEndian, 1), segment(0xfe, []byte(secretText)))
			// Junk between segments and fill bytes before a marker,
			// which decoders skip.
			i := bytes.Index(in, []byte{0xff, 0xdb})
			in = append(in[:i:i], append([]byte{0x00, 0x17, 0xff, 0xff}, in[i:]...)...)
			// Fill bytes after the last scan, before EOI, are kept.
			in = append(in[:len(in)-2:len(in)-2], 0xff, 0xff, 0xff, 0xd9)
			want := append(plain[:len(plain)-2:len(plain)-2], 0xff, 0xff, 0xff, 0xd9)
			out, res := process(t, in, "image/jpeg", Options{})
			noSecrets(t, out)
			if !bytes.Equal(out, want) {
				t.Errorf("output (%d bytes) is not the JPEG without its metadata (%d bytes)", len(out), len(want))
			}
			a, _ := jpeg.Decode(bytes.NewReader(plain))
			b, err := jpeg.Decode(bytes.NewReader(out))
			if err != nil || !reflect.DeepEqual(a, b) {
				t.Errorf("output decodes differently: %v", err)
			}
			if res.Width != 40 || res.Height != 24 {
				t.Errorf("Result %+v", res)
			}
		})
	}
	// Too many scans: refused before decoding.
	prog := unbase64(t, progressiveJPEG)
	sos := bytes.Index(prog, []byte{0xff, 0xda})
	scan := prog[sos : bytes.Index(prog[sos+2:], []byte{0xff, 0xc4})+sos+2]
	many := append(append([]byte{}, prog[:sos]...), bytes.Repeat(scan, maxJPEGScans+1)...)
	many = append(many, 0xff, 0xd9)
	_, err := Process(io.Discard, bytes.NewReader(many), int64(len(many)), "image/jpeg", Options{})
	if !errors.Is(err, ErrInvalidImage) || !strings.Contains(err.Error(), "too many scans") {
		t.Errorf("%d scans: %v", maxJPEGScans+1, err)
	}
}

func TestProcessJPEGOrientation(t *testing.T) {
	const w, h = 64, 32 // quadrants of 32×16, whole 16×16 chroma blocks
	plain := encodeJPEG(t, quadrants(w, h), 95)
	icc := append([]byte("ICC_PROFILE\x00\x01\x01"), make([]byte, 128)...)
	copy(icc[14+16:], "RGB ")
	for o := 1; o <= 8; o++ {
		for _, bo := range []byteOrder{binary.BigEndian, binary.LittleEndian} {
			in := afterSOI(plain, exifAPP1(bo, o), segment(0xe2, icc))
			out, res := process(t, in, "image/jpeg", Options{})
			noSecrets(t, out)
			dw, dh := w, h
			if o >= 5 {
				dw, dh = h, w
			}
			if res.Width != dw || res.Height != dh || res.Reencoded != (o != 1) {
				t.Fatalf("orientation %d: Result %dx%d reencoded %v", o, res.Width, res.Height, res.Reencoded)
			}
			if !bytes.Contains(out, segment(0xe2, icc)) {
				t.Errorf("orientation %d: ICC profile lost", o)
			}
			m, err := jpeg.Decode(bytes.NewReader(out))
			if err != nil {
				t.Fatal(err)
			}
			thumb := checkThumbnail(t, res.Thumbnail, dw, dh)
			for _, pic := range []image.Image{m, thumb} {
				if pic.Bounds().Dx() != dw || pic.Bounds().Dy() != dh {
					t.Fatalf("orientation %d: %v", o, pic.Bounds())
				}
				// The centre of the red quadrant, and of a blue one.
				rx, ry := shown(o, w, h, w/4, h/4)
				bx, by := shown(o, w, h, 3*w/4, 3*h/4)
				if !isRed(pic.At(rx, ry)) || !isBlue(pic.At(bx, by)) {
					t.Errorf("orientation %d: %v at (%d,%d), %v at (%d,%d)", o, pic.At(rx, ry), rx, ry, pic.At(bx, by), bx, by)
				}
			}
		}
	}
	// A profile that no longer describes the colours is dropped: CMYK on
	// a colour picture, RGB on grey; GRAY on grey is kept.
	grey := encodeJPEG(t, image.NewGray(image.Rect(0, 0, 16, 8)), 90)
	for _, tc := range []struct {
		jpg   []byte
		space string
		keep  bool
	}{
		{plain, "CMYK", false},
		{plain, "GRAY", false},
		{grey, "RGB ", false},
		{grey, "GRAY", true},
	} {
		p := bytes.Clone(icc)
		copy(p[14+16:], tc.space)
		out, _ := process(t, afterSOI(tc.jpg, exifAPP1(binary.BigEndian, 6), segment(0xe2, p)), "image/jpeg", Options{})
		if bytes.Contains(out, p) != tc.keep {
			t.Errorf("%q profile kept: %v", tc.space, !tc.keep)
		}
	}
	// A large one: the thumbnail is scaled and turned.
	big := afterSOI(encodeJPEG(t, quadrants(800, 400), 90), exifAPP1(binary.BigEndian, 6))
	_, res := process(t, big, "image/jpeg", Options{})
	if res.Width != 400 || res.Height != 800 {
		t.Errorf("Result %dx%d", res.Width, res.Height)
	}
	thumb := checkThumbnail(t, res.Thumbnail, 160, 320)
	if !isRed(thumb.At(120, 80)) || !isBlue(thumb.At(40, 80)) {
		t.Errorf("thumbnail not turned: %v %v", thumb.At(120, 80), thumb.At(40, 80))
	}
}

func TestOrient(t *testing.T) {
	const w, h = 7, 5 // odd, to catch off-by-one errors
	rng := rand.New(rand.NewPCG(3, 4))
	fill := func(pix []byte) {
		for i := range pix {
			pix[i] = byte(rng.Uint32())
		}
	}
	r := image.Rect(0, 0, w, h)
	gray := image.NewGray(r)
	fill(gray.Pix)
	rgba := image.NewRGBA(r)
	fill(rgba.Pix)
	nrgba := image.NewNRGBA(r)
	fill(nrgba.Pix)
	cmyk := image.NewCMYK(r)
	fill(cmyk.Pix)
	g16 := image.NewGray16(r)
	fill(g16.Pix)
	n64 := image.NewNRGBA64(r)
	fill(n64.Pix)
	pal := image.NewPaletted(r, palette.WebSafe)
	for i := range pal.Pix {
		pal.Pix[i] = byte(rng.IntN(len(palette.WebSafe)))
	}
	ycc := image.NewYCbCr(r, image.YCbCrSubsampleRatio444)
	fill(ycc.Y)
	fill(ycc.Cb)
	fill(ycc.Cr)
	// A sub-image, whose pixels do not start at Pix[0].
	sub := image.NewRGBA(image.Rect(0, 0, w+3, h+2))
	fill(sub.Pix)
	subImg := sub.SubImage(image.Rect(2, 1, 2+w, 1+h))
	for _, img := range []image.Image{gray, rgba, nrgba, cmyk, g16, n64, pal, ycc, subImg} {
		for o := 1; o <= 8; o++ {
			out := orient(img, o)
			if reflect.TypeOf(out) != reflect.TypeOf(img) {
				t.Errorf("%T turned into %T", img, out)
			}
			b, ob := img.Bounds(), out.Bounds()
			for y := 0; y < h; y++ {
				for x := 0; x < w; x++ {
					dx, dy := shown(o, w, h, x, y)
					if got, want := out.At(ob.Min.X+dx, ob.Min.Y+dy), img.At(b.Min.X+x, b.Min.Y+y); got != want {
						t.Fatalf("%T orientation %d: (%d,%d) shown at (%d,%d) is %v, want %v", img, o, x, y, dx, dy, got, want)
					}
				}
			}
		}
	}
	// Subsampled YCbCr: luma moves exactly, the subsampling turns with
	// the picture, and 4:1:1 (which cannot turn) still comes out right.
	for _, tc := range []struct {
		in, turned image.YCbCrSubsampleRatio
		cannotTurn bool
	}{
		{image.YCbCrSubsampleRatio420, image.YCbCrSubsampleRatio420, false},
		{image.YCbCrSubsampleRatio422, image.YCbCrSubsampleRatio440, false},
		{image.YCbCrSubsampleRatio440, image.YCbCrSubsampleRatio422, false},
		{image.YCbCrSubsampleRatio411, 0, true},
		{image.YCbCrSubsampleRatio410, 0, true},
	} {
		m := image.NewYCbCr(image.Rect(0, 0, 8, 4), tc.in)
		fill(m.Y)
		for i := range m.Cb {
			m.Cb[i], m.Cr[i] = 128, 128 // grey, so the luma is the picture
		}
		for o := 2; o <= 8; o++ {
			out := orient(m, o)
			if y, ok := out.(*image.YCbCr); ok {
				want := tc.in
				if o >= 5 {
					want = tc.turned
				}
				if y.SubsampleRatio != want {
					t.Errorf("%v orientation %d: ratio %v", tc.in, o, y.SubsampleRatio)
				}
			} else if !tc.cannotTurn || o < 5 {
				t.Errorf("%v orientation %d: %T", tc.in, o, out)
			}
			for y := 0; y < 4; y++ {
				for x := 0; x < 8; x++ {
					dx, dy := shown(o, 8, 4, x, y)
					gr, _, _, _ := out.At(dx, dy).RGBA()
					wr, _, _, _ := m.At(x, y).RGBA()
					if gr>>8 != wr>>8 {
						t.Fatalf("%v orientation %d: (%d,%d) is %d, want %d", tc.in, o, dx, dy, gr>>8, wr>>8)
					}
				}
			}
		}
	}
}

func TestThumbnailSize(t *testing.T) {
	for _, tc := range []struct{ w, h, tw, th int }{
		{1000, 600, 320, 192},
		{600, 1000, 192, 320},
		{320, 320, 320, 320},
		{321, 100, 320, 100},
		{200, 100, 200, 100},
		{1, 1, 1, 1},
		{5000, 10, 320, 1},
	} {
		if tw, th := fit(tc.w, tc.h, 320); tw != tc.tw || th != tc.th {
			t.Errorf("fit(%d, %d) = %d, %d; want %d, %d", tc.w, tc.h, tw, th, tc.tw, tc.th)
		}
	}
	// A typical photo's thumbnail is a few KiB to a few tens of KiB:
	// sent with every message, it must stay small.
	img := photoLike(1600, 1200)
	_, res := process(t, encodeJPEG(t, img, 90), "image/jpeg", Options{})
	checkThumbnail(t, res.Thumbnail, 320, 240)
	t.Logf("thumbnail of a 1600×1200 picture: %d bytes", len(res.Thumbnail))
	if len(res.Thumbnail) > 40<<10 {
		t.Errorf("thumbnail of %d bytes", len(res.Thumbnail))
	}
	// Options: a smaller side, and a lower quality makes a smaller file.
	_, small := process(t, encodeJPEG(t, img, 90), "image/jpeg", Options{ThumbnailSide: 100, ThumbnailQuality: 30})
	checkThumbnail(t, small.Thumbnail, 100, 75)
	_, low := process(t, encodeJPEG(t, img, 90), "image/jpeg", Options{ThumbnailQuality: 20})
	if len(low.Thumbnail) >= len(res.Thumbnail) {
		t.Errorf("quality 20: %d bytes, default: %d", len(low.Thumbnail), len(res.Thumbnail))
	}
}

func TestProcessPNG(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 40, 30))
	for i := range img.Pix {
		img.Pix[i] = byte(i * 7)
	}
	plain := encodePNG(t, img)
	gama := makeChunk("gAMA", []byte{0, 0, 0xb1, 0x8f})
	phys := makeChunk("pHYs", []byte{0, 0, 0x0e, 0xc4, 0, 0, 0x0e, 0xc4, 1})
	iccp := makeChunk("iCCP", append([]byte("sRGB\x00\x00"), zlibBytes(make([]byte, 128))...))
	dropped := [][]byte{
		makeChunk("tEXt", []byte("Author\x00"+secretText)),
		makeChunk("zTXt", append([]byte("Comment\x00\x00"), zlibBytes([]byte(secretText))...)),
		makeChunk("iTXt", []byte("XML:com.adobe.xmp\x00\x00\x00\x00\x00<x:xmpmeta>"+secretXMP+"</x:xmpmeta>")),
		makeChunk("tIME", []byte{0x07, 0xe8, 1, 2, 3, 4, 5}),
		makeChunk("eXIf", exifTIFF(binary.BigEndian, 1)),
		makeChunk("prVt", []byte(secretText)),
	}
	in := withChunks(plain, append([][]byte{gama, iccp, phys}, dropped...), dropped[:2])
	in = append(in, secretText...) // after IEND
	out, res := process(t, in, "image/png", Options{})
	noSecrets(t, out)
	if res.Width != 40 || res.Height != 30 || res.Reencoded {
		t.Errorf("Result %+v", res)
	}
	want := withChunks(plain, [][]byte{gama, iccp, phys}, nil)
	if !bytes.Equal(out, want) {
		t.Errorf("output is not the PNG with only gAMA, iCCP and pHYs added")
	}
	for _, c := range chunks(t, out) {
		if crc32.ChecksumIEEE(append([]byte(c.typ), c.data...)) != c.crc {
			t.Errorf("chunk %s: bad CRC", c.typ)
		}
	}
	a, _ := png.Decode(bytes.NewReader(plain))
	b, err := png.Decode(bytes.NewReader(out))
	if err != nil || !reflect.DeepEqual(a, b) {
		t.Fatalf("output decodes differently: %v", err)
	}
	checkThumbnail(t, res.Thumbnail, 40, 30)

	// A corrupt CRC in a kept chunk is refused.
	bad := bytes.Clone(in)
	bad[len(bad)-len(secretText)-1-12] ^= 1 // the IEND CRC
	if _, err := Process(io.Discard, bytes.NewReader(bad), int64(len(bad)), "image/png", Options{}); !errors.Is(err, ErrInvalidImage) {
		t.Errorf("bad CRC: %v", err)
	}
}

func TestProcessPNGOrientation(t *testing.T) {
	img := image.NewNRGBA(image.Rect(0, 0, 6, 4))
	for i := range img.Pix {
		img.Pix[i] = byte(i*13 + 5)
	}
	plain := encodePNG(t, img)
	gama := makeChunk("gAMA", []byte{0, 0, 0xb1, 0x8f})
	iccp := makeChunk("iCCP", append([]byte("sRGB\x00\x00"), zlibBytes(make([]byte, 128))...))
	for o := 1; o <= 8; o++ {
		in := withChunks(plain, [][]byte{gama, iccp, makeChunk("eXIf", exifTIFF(binary.LittleEndian, o))}, nil)
		out, res := process(t, in, "image/png", Options{})
		noSecrets(t, out)
		if res.Reencoded != (o != 1) {
			t.Errorf("orientation %d: Reencoded %v", o, res.Reencoded)
		}
		m, err := png.Decode(bytes.NewReader(out))
		if err != nil {
			t.Fatal(err)
		}
		for y := 0; y < 4; y++ {
			for x := 0; x < 6; x++ {
				dx, dy := shown(o, 6, 4, x, y)
				if m.At(dx, dy) != img.At(x, y) {
					t.Fatalf("orientation %d: pixel (%d,%d) not at (%d,%d)", o, x, y, dx, dy)
				}
			}
		}
		cs := chunks(t, out)
		if cs[0].typ != "IHDR" || cs[1].typ != "gAMA" || cs[2].typ != "iCCP" {
			t.Errorf("orientation %d: chunks %v", o, cs)
		}
		if w, h := m.Bounds().Dx(), m.Bounds().Dy(); res.Width != w || res.Height != h {
			t.Errorf("Result %dx%d, picture %dx%d", res.Width, res.Height, w, h)
		}
	}
	// eXIf after the image data is not read by viewers, nor here.
	late := withChunks(plain, nil, [][]byte{makeChunk("eXIf", exifTIFF(binary.LittleEndian, 6))})
	if _, res := process(t, late, "image/png", Options{}); res.Reencoded || res.Width != 6 {
		t.Errorf("late eXIf applied: %+v", res)
	}
	// An APNG is not encoded again (that would lose its frames).
	actl := makeChunk("acTL", []byte{0, 0, 0, 1, 0, 0, 0, 0})
	apng := withChunks(plain, [][]byte{actl, makeChunk("eXIf", exifTIFF(binary.LittleEndian, 6))}, nil)
	out, res := process(t, apng, "image/png", Options{})
	if res.Reencoded || !bytes.Contains(out, actl) || bytes.Contains(out, []byte("eXIf")) {
		t.Errorf("APNG: %+v", res)
	}
}

func TestProcessWebP(t *testing.T) {
	const w, h = 12, 8
	bits := vp8l(w, h, 0x20, 0x40, topLeft(w, h))
	plain := webpFile(riffChunk("VP8L", bits))
	ref, err := webp.Decode(bytes.NewReader(plain))
	if err != nil {
		t.Fatalf("hand-made VP8L does not decode: %v", err)
	}
	if c := ref.At(1, 1).(color.NRGBA); c != (color.NRGBA{0x20, 0xff, 0x40, 0xff}) {
		t.Fatalf("hand-made VP8L: %v", c)
	}
	icc := riffChunk("ICCP", make([]byte, 64))
	exif := riffChunk("EXIF", exifTIFF(binary.BigEndian, 1))
	xmp := riffChunk("XMP ", []byte("<x:xmpmeta>"+secretXMP+"</x:xmpmeta>"))
	unknown := riffChunk("ABCD", []byte(secretText+"!"))
	const flags = 0x20 | vp8xEXIF | vp8xXMP
	for _, tc := range []struct {
		name string
		in   []byte
		want []byte
	}{
		{"simple", plain, plain},
		{"simple with trailing metadata", webpFile(riffChunk("VP8L", bits), exif, xmp), plain},
		{"extended", webpFile(vp8xChunk(flags, w, h), icc, riffChunk("VP8L", bits), exif, xmp, unknown),
			webpFile(vp8xChunk(0x20, w, h), icc, riffChunk("VP8L", bits))},
		{"exif with prefix, before the image", webpFile(vp8xChunk(vp8xEXIF, w, h), riffChunk("EXIF", append([]byte("Exif\x00\x00"), exifTIFF(binary.LittleEndian, 1)...)), riffChunk("VP8L", bits)),
			webpFile(vp8xChunk(0, w, h), riffChunk("VP8L", bits))},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out, res := process(t, tc.in, "image/webp", Options{})
			noSecrets(t, out)
			if !bytes.Equal(out, tc.want) {
				t.Errorf("output\n% x\nwant\n% x", out, tc.want)
			}
			if res.Width != w || res.Height != h {
				t.Errorf("Result %+v", res)
			}
			m, err := webp.Decode(bytes.NewReader(out))
			if err != nil || !reflect.DeepEqual(m, ref) {
				t.Errorf("output decodes differently: %v", err)
			}
			checkThumbnail(t, res.Thumbnail, w, h)
		})
	}

	// Lossy with alpha, as cwebp makes it, with metadata added.
	lossy := unbase64(t, lossyWebP)
	var vp8xRest []byte
	{
		body := lossy[12+18:] // after the header and VP8X
		vp8x := bytes.Clone(lossy[12 : 12+18])
		vp8x[8] |= vp8xEXIF | vp8xXMP
		vp8xRest = append(vp8x, body...)
	}
	in := webpFile(vp8xRest, exif, xmp)
	out, res := process(t, in, "image/webp", Options{})
	noSecrets(t, out)
	if !bytes.Equal(out, lossy) {
		t.Error("lossy: output is not the file without its metadata")
	}
	if res.Width != 24 || res.Height != 16 {
		t.Errorf("lossy: Result %+v", res)
	}
	// Transparency shows as white in the thumbnail (the right 4 columns).
	thumb := checkThumbnail(t, res.Thumbnail, 24, 16)
	if r, g, b, _ := thumb.At(22, 8).RGBA(); r < 0xe000 || g < 0xe000 || b < 0xe000 {
		t.Errorf("transparent pixel in the thumbnail: %v", thumb.At(22, 8))
	}
}

func TestProcessWebPOrientation(t *testing.T) {
	const w, h = 64, 32
	bits := vp8l(w, h, 0, 0, topLeft(w, h)) // green quadrant on black
	in := webpFile(vp8xChunk(vp8xEXIF, w, h), riffChunk("VP8L", bits), riffChunk("EXIF", exifTIFF(binary.LittleEndian, 6)))
	out, res := process(t, in, "image/webp", Options{})
	noSecrets(t, out)
	if res.Width != h || res.Height != w || res.Reencoded {
		t.Errorf("Result %dx%d reencoded %v", res.Width, res.Height, res.Reencoded)
	}
	// Only the orientation is left of the EXIF.
	want := webpFile(vp8xChunk(vp8xEXIF, w, h), riffChunk("VP8L", bits), riffChunk("EXIF", orientationEXIF(6)))
	if !bytes.Equal(out, want) {
		t.Errorf("output\n% x\nwant\n% x", out, want)
	}
	if o := exifOrientation(orientationEXIF(6)); o != 6 {
		t.Errorf("orientationEXIF(6) reads as %d", o)
	}
	thumb := checkThumbnail(t, res.Thumbnail, h, w)
	gx, gy := shown(6, w, h, w/4, h/4)
	kx, ky := shown(6, w, h, 3*w/4, 3*h/4)
	if _, g, _, _ := thumb.At(gx, gy).RGBA(); g < 0xb000 {
		t.Errorf("no green at (%d,%d): %v", gx, gy, thumb.At(gx, gy))
	}
	if _, g, _, _ := thumb.At(kx, ky).RGBA(); g > 0x5000 {
		t.Errorf("green at (%d,%d): %v", kx, ky, thumb.At(kx, ky))
	}
}

func TestProcessWebPAnimated(t *testing.T) {
	const w, h = 40, 20
	// The first frame, 20×10 at (10, 6), all green; the second all black.
	first := vp8l(20, 10, 0, 0, func(x, y int) bool { return true })
	second := vp8l(w, h, 0, 0, func(x, y int) bool { return false })
	anim := riffChunk("ANIM", make([]byte, 6))
	plain := webpFile(vp8xChunk(vp8xAnimation, w, h), anim, anmfChunk(10, 6, 20, 10, first), anmfChunk(0, 0, w, h, second))
	in := webpFile(vp8xChunk(vp8xAnimation|vp8xXMP, w, h), anim, anmfChunk(10, 6, 20, 10, first), anmfChunk(0, 0, w, h, second),
		riffChunk("XMP ", []byte(secretXMP)))
	out, res := process(t, in, "image/webp", Options{})
	if !bytes.Equal(out, plain) {
		t.Error("output is not the animation without its metadata")
	}
	if res.Width != w || res.Height != h {
		t.Errorf("Result %+v", res)
	}
	thumb := checkThumbnail(t, res.Thumbnail, w, h)
	if _, g, _, _ := thumb.At(20, 11).RGBA(); g < 0xb000 {
		t.Errorf("first frame missing from the thumbnail: %v", thumb.At(20, 11))
	}
	if r, g, b, _ := thumb.At(2, 2).RGBA(); r < 0xe000 || g < 0xe000 || b < 0xe000 {
		t.Errorf("outside the first frame is not white: %v", thumb.At(2, 2))
	}
	// A frame outside the canvas is refused.
	bad := webpFile(vp8xChunk(vp8xAnimation, w, h), anim, anmfChunk(30, 16, 20, 10, first))
	if _, err := Process(io.Discard, bytes.NewReader(bad), int64(len(bad)), "image/webp", Options{}); !errors.Is(err, ErrInvalidImage) {
		t.Errorf("frame outside the canvas: %v", err)
	}
}

func TestProcessGIF(t *testing.T) {
	pal := color.Palette{color.White, color.RGBA{255, 0, 0, 255}, color.RGBA{0, 0, 255, 255}}
	f1 := image.NewPaletted(image.Rect(10, 10, 30, 20), pal)
	for i := range f1.Pix {
		f1.Pix[i] = 1
	}
	f2 := image.NewPaletted(image.Rect(0, 0, 40, 30), pal)
	for i := range f2.Pix {
		f2.Pix[i] = 2
	}
	var b bytes.Buffer
	if err := gif.EncodeAll(&b, &gif.GIF{Image: []*image.Paletted{f1, f2}, Delay: []int{10, 10},
		Config: image.Config{ColorModel: pal, Width: 40, Height: 30}}); err != nil {
		t.Fatal(err)
	}
	out, res := process(t, b.Bytes(), "image/gif", Options{})
	if !bytes.Equal(out, b.Bytes()) {
		t.Error("a GIF is not copied as it is")
	}
	if res.Width != 40 || res.Height != 30 || res.Reencoded {
		t.Errorf("Result %+v", res)
	}
	thumb := checkThumbnail(t, res.Thumbnail, 40, 30)
	if !isRed(thumb.At(20, 15)) {
		t.Errorf("first frame not in the thumbnail: %v", thumb.At(20, 15))
	}
	if r, g, b, _ := thumb.At(3, 3).RGBA(); r < 0xe000 || g < 0xe000 || b < 0xe000 {
		t.Errorf("outside the first frame: %v", thumb.At(3, 3))
	}
}

func TestPixelLimit(t *testing.T) {
	ihdr := func(w, h uint32) []byte {
		d := binary.BigEndian.AppendUint32(nil, w)
		d = binary.BigEndian.AppendUint32(d, h)
		return append([]byte(pngSignature), makeChunk("IHDR", append(d, 8, 6, 0, 0, 0))...)
	}
	sof := func(w, h uint16) []byte {
		// JFIF first: without it a decoder reads on to the first scan
		// for the colour model.
		return []byte{0xff, 0xd8, 0xff, 0xe0, 0, 16, 'J', 'F', 'I', 'F', 0, 1, 1, 0, 0, 1, 0, 1, 0, 0,
			0xff, 0xc0, 0, 17, 8, byte(h >> 8), byte(h), byte(w >> 8), byte(w), 3,
			1, 0x22, 0, 2, 0x11, 1, 3, 0x11, 1}
	}
	for _, tc := range []struct {
		name string
		in   []byte
		typ  string
		w, h int
		opt  Options
	}{
		{"png", ihdr(20000, 20000), "image/png", 20000, 20000, Options{}},
		{"png wide", ihdr(1<<30, 1), "image/png", 1 << 30, 1, Options{}},
		{"jpeg", sof(65000, 60000), "image/jpeg", 65000, 60000, Options{}},
		{"gif", []byte("GIF89a\xff\xff\xff\xff\x00\x00\x00;"), "image/gif", 65535, 65535, Options{}},
		{"webp canvas", webpFile(vp8xChunk(0, 16384, 16384), riffChunk("VP8L", vp8l(1, 1, 0, 0, topLeft(1, 1)))), "image/webp", 16384, 16384, Options{}},
		{"webp", webpFile(riffChunk("VP8L", vp8l(200, 100, 0, 0, topLeft(200, 100)))), "image/webp", 200, 100, Options{MaxPixels: 19999}},
		{"small limit", encodePNG(t, quadrants(100, 100)), "image/png", 100, 100, Options{MaxPixels: 9999}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			var out bytes.Buffer
			_, err := Process(&out, bytes.NewReader(tc.in), int64(len(tc.in)), tc.typ, tc.opt)
			var pe *PixelLimitError
			if !errors.As(err, &pe) || !errors.Is(err, ErrTooManyPixels) {
				t.Fatalf("error %v, want a *PixelLimitError", err)
			}
			if pe.Width != tc.w || pe.Height != tc.h {
				t.Errorf("%+v", pe)
			}
			if want := fmt.Sprintf("%d×%d pixels", tc.w, tc.h); !strings.Contains(err.Error(), want) {
				t.Errorf("message %q lacks %q", err, want)
			}
			if out.Len() != 0 {
				t.Error("output written")
			}
		})
	}
	// At the limit is fine.
	if _, err := Process(io.Discard, bytes.NewReader(encodePNG(t, quadrants(100, 100))), 0, "image/png", Options{MaxPixels: 10000}); err == nil {
		t.Error("size 0 accepted")
	}
	b := encodePNG(t, quadrants(100, 100))
	if _, err := Process(io.Discard, bytes.NewReader(b), int64(len(b)), "image/png", Options{MaxPixels: 10000}); err != nil {
		t.Errorf("at the limit: %v", err)
	}
}

type failingReader struct{ err error }

func (f failingReader) ReadAt([]byte, int64) (int, error) { return 0, f.err }

type failingWriter struct{ err error }

func (f failingWriter) Write([]byte) (int, error) { return 0, f.err }

func TestProcessErrors(t *testing.T) {
	jpg := encodeJPEG(t, quadrants(32, 32), 80)
	if _, err := Process(io.Discard, bytes.NewReader(jpg), int64(len(jpg)), "video/mp4", Options{}); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("video/mp4: %v", err)
	}
	if _, err := Process(io.Discard, bytes.NewReader(jpg), int64(len(jpg)), "image/heic", Options{}); !errors.Is(err, ErrUnsupportedType) {
		t.Errorf("image/heic: %v", err)
	}
	// The content does not match the type.
	if _, err := Process(io.Discard, bytes.NewReader(jpg), int64(len(jpg)), "image/png", Options{}); !errors.Is(err, ErrInvalidImage) {
		t.Errorf("JPEG as PNG: %v", err)
	}
	// Truncated: nothing is written.
	var out bytes.Buffer
	if _, err := Process(&out, bytes.NewReader(jpg[:len(jpg)-100]), int64(len(jpg)-100), "image/jpeg", Options{}); !errors.Is(err, ErrInvalidImage) || out.Len() != 0 {
		t.Errorf("truncated: %v, %d bytes written", err, out.Len())
	}
	// A failing disk is not the client's fault.
	disk := errors.New("disk on fire")
	_, err := Process(io.Discard, failingReader{disk}, 1000, "image/jpeg", Options{})
	if !errors.Is(err, disk) || errors.Is(err, ErrInvalidImage) {
		t.Errorf("read error: %v", err)
	}
	_, err = Process(failingWriter{disk}, bytes.NewReader(jpg), int64(len(jpg)), "image/jpeg", Options{})
	if !errors.Is(err, disk) || errors.Is(err, ErrInvalidImage) {
		t.Errorf("write error: %v", err)
	}
	oriented := afterSOI(jpg, exifAPP1(binary.BigEndian, 6))
	_, err = Process(failingWriter{disk}, bytes.NewReader(oriented), int64(len(oriented)), "image/jpeg", Options{})
	if !errors.Is(err, disk) {
		t.Errorf("write error while encoding: %v", err)
	}
}

func TestEXIFOrientation(t *testing.T) {
	for _, tc := range []struct {
		name string
		tiff []byte
		want int
	}{
		{"big endian", exifTIFF(binary.BigEndian, 6), 6},
		{"little endian", exifTIFF(binary.LittleEndian, 8), 8},
		{"with Exif prefix", append([]byte("Exif\x00\x00"), exifTIFF(binary.LittleEndian, 3)...), 3},
		{"none", exifTIFF(binary.BigEndian, 0), 1},
		{"out of range", exifTIFF(binary.BigEndian, 9), 1},
		{"zero", exifTIFF(binary.LittleEndian, 0x100), 1},
		{"long", []byte("II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x04\x00\x01\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"), 5},
		{"wrong type", []byte("II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x02\x00\x01\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"), 1},
		{"two values", []byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x02\x00\x06\x00\x06\x00\x00\x00\x00"), 1},
		{"truncated entry", []byte("MM\x00*\x00\x00\x00\x08\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00"), 1},
		{"IFD offset past the end", []byte("MM\x00*\x7f\xff\xff\xff"), 1},
		{"IFD offset inside the header", []byte("MM\x00*\x00\x00\x00\x02\x00\x01\x01\x12\x00\x03\x00\x00\x00\x01\x00\x06\x00\x00"), 1},
		{"not TIFF", []byte("XX*\x00\x08\x00\x00\x00"), 1},
		{"empty", nil, 1},
	} {
		if got := exifOrientation(tc.tiff); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
}

func TestThumbnailQuality(t *testing.T) {
	// Stripes one pixel wide average to grey: no aliasing, whether the
	// picture is shrunk first (Gray, RGBA, YCbCr) or not (NRGBA).
	const w, h = 1603, 1201 // not a multiple of the shrink factor
	gray := image.NewGray(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			gray.Pix[y*gray.Stride+x] = byte(255 * (x % 2))
		}
	}
	rgba := image.NewRGBA(gray.Rect)
	nrgba := image.NewNRGBA(gray.Rect)
	ycc := image.NewYCbCr(gray.Rect, image.YCbCrSubsampleRatio420)
	for i, v := range gray.Pix {
		copy(rgba.Pix[4*i:], []byte{v, v, v, 255})
		copy(nrgba.Pix[4*i:], []byte{v, v, v, 255})
		ycc.Y[i] = v
	}
	for i := range ycc.Cb {
		ycc.Cb[i], ycc.Cr[i] = 128, 128
	}
	for _, img := range []image.Image{gray, rgba, nrgba, ycc} {
		b, err := thumbnail(img, image.Point{}, img.Bounds().Size(), 1, Options{}.withDefaults())
		if err != nil {
			t.Fatal(err)
		}
		m := checkThumbnail(t, b, 320, 240)
		for _, p := range []image.Point{{1, 1}, {160, 120}, {318, 238}, {77, 201}} {
			if r, _, _, _ := m.At(p.X, p.Y).RGBA(); r>>8 < 112 || r>>8 > 144 {
				t.Errorf("%T: %v at %v, want grey", img, m.At(p.X, p.Y), p)
			}
		}
	}
	// Shrinking first changes the thumbnail very little.
	photo := photoLike(2000, 1500)
	direct := image.NewRGBA(image.Rect(0, 0, 320, 240))
	xdraw.CatmullRom.Scale(direct, direct.Rect, photo, photo.Rect, xdraw.Src, nil)
	small := shrink(photo, 320, 240)
	if small.Bounds().Dx() != 666 {
		t.Fatalf("shrink to %v", small.Bounds())
	}
	shrunk := image.NewRGBA(direct.Rect)
	xdraw.CatmullRom.Scale(shrunk, shrunk.Rect, small, small.Bounds(), xdraw.Src, nil)
	var sum, worst int
	for i := range direct.Pix {
		d := int(direct.Pix[i]) - int(shrunk.Pix[i])
		sum += max(d, -d)
		worst = max(worst, d, -d)
	}
	mean := float64(sum) / float64(len(direct.Pix))
	t.Logf("shrinking first: mean difference %.2f, worst %d (of 255)", mean, worst)
	if mean > 1 || worst > 16 {
		t.Error("shrinking first changes the thumbnail")
	}
}

func BenchmarkProcess(b *testing.B) {
	plain := encodeJPEG(b, photoLike(1920, 1080), 85)
	for _, bc := range []struct {
		name string
		in   []byte
	}{
		{"jpeg-1920x1080", plain},
		{"jpeg-1920x1080-orientation-6", afterSOI(plain, exifAPP1(binary.BigEndian, 6))},
	} {
		b.Run(bc.name, func(b *testing.B) {
			b.SetBytes(int64(len(bc.in)))
			for b.Loop() {
				if _, err := Process(io.Discard, bytes.NewReader(bc.in), int64(len(bc.in)), "image/jpeg", Options{}); err != nil {
					b.Fatal(err)
				}
			}
		})
	}
}
