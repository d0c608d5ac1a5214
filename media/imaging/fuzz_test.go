package imaging

import (
	"bytes"
	"encoding/binary"
	"errors"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"mime"
	"reflect"
	"testing"

	"golang.org/x/image/webp"
)

// maxFuzzPixels keeps the fuzzers from decoding the huge pictures that
// mutated headers claim: that tests memory, not the rewriters.
const maxFuzzPixels = 1 << 18

// decodeSmall decodes b if its header claims a small picture; ok is false
// when it does not decode or was not tried.
func decodeSmall(b []byte, config func([]byte) (image.Config, error), decode func([]byte) (image.Image, error)) (image.Image, bool) {
	c, err := config(b)
	if err != nil || int64(c.Width)*int64(c.Height) > maxFuzzPixels {
		return nil, false
	}
	m, err := decode(b)
	return m, err == nil
}

// checkRewrite checks what every rewriter promises: the output is as
// long as planned, rewriting it again changes nothing (no metadata is
// left, nothing is dropped twice), and it shows the picture the input
// showed.
func checkRewrite(t *testing.T, in []byte, p *plan, replan func([]byte) (*plan, error), decoded image.Image, decodes bool,
	decode func([]byte) (image.Image, error)) {
	t.Helper()
	var out bytes.Buffer
	if err := p.writeTo(&out, bytes.NewReader(in)); err != nil {
		t.Fatalf("writeTo: %v", err)
	}
	if int64(out.Len()) != p.size {
		t.Fatalf("wrote %d bytes, planned %d", out.Len(), p.size)
	}
	again, err := replan(out.Bytes())
	if err != nil {
		t.Fatalf("the output does not rewrite: %v", err)
	}
	var out2 bytes.Buffer
	if err := again.writeTo(&out2, bytes.NewReader(out.Bytes())); err != nil || !bytes.Equal(out2.Bytes(), out.Bytes()) {
		t.Fatalf("rewriting the output changes it: %v", err)
	}
	if !decodes {
		return
	}
	m, err := decode(out.Bytes())
	if err != nil {
		t.Fatalf("the input decodes, its rewrite does not: %v", err)
	}
	if !reflect.DeepEqual(m, decoded) {
		t.Fatal("the rewrite decodes to another picture")
	}
}

func FuzzJPEG(f *testing.F) {
	plain := encodeJPEG(f, quadrants(16, 16), 75)
	f.Add(plain)
	f.Add(afterSOI(plain, exifAPP1(binary.BigEndian, 6), segment(0xfe, []byte("c")), segment(0xe2, []byte("ICC_PROFILE\x00\x01\x01"))))
	f.Add(afterSOI(plain, segment(0xe0, []byte("JFIF\x00\x01\x02\x00\x00\x01\x00\x01\x01\x01\x00\x00\x00"))))
	f.Add(append(bytes.Clone(plain), "trailer"...))
	f.Add(unbase64(f, progressiveJPEG))
	f.Add(unbase64(f, restartJPEG))
	f.Add(encodeJPEG(f, image.NewGray(image.Rect(0, 0, 9, 9)), 50))
	jpegDecode := func(b []byte) (image.Image, error) { return jpeg.Decode(bytes.NewReader(b)) }
	jpegConfig := func(b []byte) (image.Config, error) { return jpeg.DecodeConfig(bytes.NewReader(b)) }
	replan := func(b []byte) (*plan, error) {
		info, err := planJPEG(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return nil, err
		}
		return &info.plan, nil
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		decoded, decodes := decodeSmall(in, jpegConfig, jpegDecode)
		info, err := planJPEG(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			if decodes && !errors.Is(err, errTooManyScans) && !errors.Is(err, errTooManySegments) && !errors.Is(err, errTooManyPieces) {
				t.Fatalf("Go decodes it, planJPEG refuses it: %v", err)
			}
			return
		}
		if info.orientation < 1 || info.orientation > 8 {
			t.Fatalf("orientation %d", info.orientation)
		}
		checkRewrite(t, in, &info.plan, replan, decoded, decodes, jpegDecode)
	})
}

func FuzzPNG(f *testing.F) {
	plain := encodePNG(f, quadrants(8, 8))
	f.Add(plain)
	f.Add(withChunks(plain, [][]byte{
		makeChunk("gAMA", []byte{0, 0, 0xb1, 0x8f}),
		makeChunk("eXIf", exifTIFF(binary.LittleEndian, 6)),
		makeChunk("tEXt", []byte("a\x00b")),
	}, [][]byte{makeChunk("tIME", make([]byte, 7)), makeChunk("zzZz", nil)}))
	f.Add(encodePNG(f, image.NewPaletted(image.Rect(0, 0, 3, 3), []color.Color{color.Black, color.White})))
	pngDecode := func(b []byte) (image.Image, error) { return png.Decode(bytes.NewReader(b)) }
	pngConfig := func(b []byte) (image.Config, error) { return png.DecodeConfig(bytes.NewReader(b)) }
	replan := func(b []byte) (*plan, error) {
		info, err := planPNG(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return nil, err
		}
		return &info.plan, nil
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		decoded, decodes := decodeSmall(in, pngConfig, pngDecode)
		info, err := planPNG(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			if decodes && !errors.Is(err, errTooManyPieces) {
				t.Fatalf("Go decodes it, planPNG refuses it: %v", err)
			}
			return
		}
		if info.orientation < 1 || info.orientation > 8 {
			t.Fatalf("orientation %d", info.orientation)
		}
		checkRewrite(t, in, &info.plan, replan, decoded, decodes, pngDecode)
	})
}

func FuzzWebP(f *testing.F) {
	bits := vp8l(6, 4, 9, 7, topLeft(6, 4))
	f.Add(webpFile(riffChunk("VP8L", bits)))
	f.Add(webpFile(vp8xChunk(0x2c, 6, 4), riffChunk("ICCP", []byte("icc")), riffChunk("VP8L", bits),
		riffChunk("EXIF", exifTIFF(binary.LittleEndian, 6)), riffChunk("XMP ", []byte("<x/>"))))
	f.Add(webpFile(vp8xChunk(vp8xAnimation, 6, 4), riffChunk("ANIM", make([]byte, 6)), anmfChunk(0, 0, 6, 4, bits), anmfChunk(2, 2, 2, 2, vp8l(2, 2, 1, 1, topLeft(2, 2)))))
	f.Add(unbase64(f, lossyWebP))
	webpDecode := func(b []byte) (image.Image, error) { return webp.Decode(bytes.NewReader(b)) }
	webpConfig := func(b []byte) (image.Config, error) { return webp.DecodeConfig(bytes.NewReader(b)) }
	replan := func(b []byte) (*plan, error) {
		info, err := planWebP(bytes.NewReader(b), int64(len(b)))
		if err != nil {
			return nil, err
		}
		return &info.plan, nil
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		decoded, decodes := decodeSmall(in, webpConfig, webpDecode)
		info, err := planWebP(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			// x/image/webp stops reading at the picture and does not
			// check the chunks after it, so it decodes files the rewriter
			// refuses; only the other direction is checked.
			return
		}
		if info.orientation < 1 || info.orientation > 8 {
			t.Fatalf("orientation %d", info.orientation)
		}
		var out bytes.Buffer
		info.plan.writeTo(&out, bytes.NewReader(in))
		if got := binary.LittleEndian.Uint32(out.Bytes()[4:]); int(got) != out.Len()-8 {
			t.Fatalf("RIFF size %d, file %d", got, out.Len())
		}
		if info.animated {
			// The first frame, as Process decodes it: never a panic.
			if fr, err := info.firstFrame(bytes.NewReader(in), int64(len(in))); err == nil && int64(info.frame.Dx())*int64(info.frame.Dy()) <= maxFuzzPixels {
				webp.Decode(fr)
			}
		}
		checkRewrite(t, in, &info.plan, replan, decoded, decodes, webpDecode)
	})
}

func FuzzEXIFOrientation(f *testing.F) {
	for o := 0; o <= 9; o++ {
		f.Add(exifTIFF(binary.BigEndian, o))
		f.Add(exifTIFF(binary.LittleEndian, o))
	}
	f.Add(orientationEXIF(5))
	f.Add([]byte("II*\x00\x08\x00\x00\x00\x01\x00\x12\x01\x04\x00\x01\x00\x00\x00\x05\x00\x00\x00\x00\x00\x00\x00"))
	plain := encodeJPEG(f, quadrants(8, 8), 50)
	f.Fuzz(func(t *testing.T, tiff []byte) {
		o := exifOrientation(tiff)
		if o < 1 || o > 8 {
			t.Fatalf("orientation %d", o)
		}
		if got := exifOrientation(orientationEXIF(o)); got != o {
			t.Fatalf("orientationEXIF(%d) reads as %d", o, got)
		}
		// The same bytes in a JPEG's APP1 give the same orientation.
		if len(tiff) > 0xffff-2-6 {
			return
		}
		in := afterSOI(plain, segment(0xe1, append([]byte("Exif\x00\x00"), tiff...)))
		info, err := planJPEG(bytes.NewReader(in), int64(len(in)))
		if err != nil {
			t.Fatal(err)
		}
		if info.orientation != o {
			t.Fatalf("in a JPEG: %d, alone: %d", info.orientation, o)
		}
	})
}

func FuzzSniff(f *testing.F) {
	f.Add([]byte("\x00\x00\x00\x18ftypisom\x00\x00\x02\x00isommp41"), "video/mp4", uint8(Video))
	f.Add(ebml("webm"), "audio/webm", uint8(Audio))
	f.Add(oggPage("OpusHead"), "", uint8(Audio))
	f.Add(mp3(), "", uint8(Document))
	f.Add(id3(adts()), "", uint8(Audio))
	f.Add([]byte("PK\x03\x04\x14\x00\x08\x00\x08\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x00\x13\x00\x00\x00[Content_Types].xml"),
		"application/vnd.openxmlformats-officedocument.wordprocessingml.document", uint8(Document))
	f.Add([]byte("text"), "text/csv", uint8(Document))
	f.Fuzz(func(t *testing.T, head []byte, declared string, k uint8) {
		kind := Kind(k % 6)
		typ, err := Sniff(head, declared, kind)
		if err != nil {
			var te *TypeError
			if !errors.Is(err, ErrUnknownKind) && (!errors.As(err, &te) || te.Kind != kind || kind.Accepts(te.Type)) {
				t.Fatalf("error %v", err)
			}
			return
		}
		if !kind.Accepts(typ) {
			t.Fatalf("%v does not accept %q", kind, typ)
		}
		if _, _, err := mime.ParseMediaType(typ); err != nil {
			t.Fatalf("%q: %v", typ, err)
		}
		// The declared type only settles what the bytes leave open: as
		// an image, what the bytes are decides alone.
		if kind == Image {
			if other, err := Sniff(head, "", kind); err != nil || other != typ {
				t.Fatalf("declared %q gives %q, none gives %q, %v", declared, typ, other, err)
			}
		}
	})
}
