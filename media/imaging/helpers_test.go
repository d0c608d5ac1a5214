package imaging

import (
	"bytes"
	"compress/zlib"
	"encoding/base64"
	"encoding/binary"
	"hash/crc32"
	"image"
	"image/color"
	"image/jpeg"
	"image/png"
	"testing"
)

// Secrets planted in metadata: none may reach what Process writes.
const (
	secretMake = "TERN-SECRET-PHONE"
	secretGPS  = "TERN-SECRET-PLACE"
	secretXMP  = "TERN-SECRET-XMP"
	secretText = "TERN-SECRET-TEXT"
)

// progressiveJPEG is a 40×24 progressive JPEG, from jpegtran
// -progressive (Go cannot write one).
const progressiveJPEG = `/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcU
FhYaHSUfGhsjHBYWICwgIyYnKSopGR8tMC0oMCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgo
KCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCj/wgARCAAYACgDASIA
AhEBAxEB/8QAGAABAQEBAQAAAAAAAAAAAAAAAAQFBgf/xAAXAQEBAQEAAAAAAAAAAAAAAAAEBQIH
/9oADAMBAAIQAxAAAAHz2zWsyfJs1rE2Ml0RFWGwicvssE2LAir/AP/EABYQAAMAAAAAAAAAAAAA
AAAAAAACA//aAAgBAQABBQJZCyFkLIWQshZCyFkLIWQshZCyFkf/xAAZEQADAQEBAAAAAAAAAAAA
AAAAAgMEESH/2gAIAQMBAT8BhsIaxNfhCrEKsJVuH//EABYRAQEBAAAAAAAAAAAAAAAAAAIAAf/a
AAgBAgEBPwEuLscdjtm3/8QAFBABAAAAAAAAAAAAAAAAAAAAMP/aAAgBAQAGPwJ//8QAFRABAQAA
AAAAAAAAAAAAAAAAAGH/2gAIAQEAAT8hmmmmmmmmmmmmmmm//9oADAMBAAIAAwAAABD7/wDCCB//
xAAYEQEBAQEBAAAAAAAAAAAAAAAAITFBUf/aAAgBAwEBPxDCsa9SCoK6D//EABgRAQEAAwAAAAAA
AAAAAAAAAAABEBEh/9oACAECAQE/EMfxXXV0/8QAFRABAQAAAAAAAAAAAAAAAAAAADH/2gAIAQEA
AT8QiRIkSJEiRIkSJEiRIn//2Q==`

// restartJPEG is the same picture, baseline with a restart marker after
// every MCU (jpegtran -restart 1). Go's decoder refuses progressive JPEGs
// with restart markers from jpegtran, hence two files.
const restartJPEG = `/9j/4AAQSkZJRgABAQAAAQABAAD/2wBDAAYEBQYFBAYGBQYHBwYIChAKCgkJChQODwwQFxQYGBcU
FhYaHSUfGhsjHBYWICwgIyYnKSopGR8tMC0oMCUoKSj/2wBDAQcHBwoIChMKChMoGhYaKCgoKCgo
KCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCgoKCj/wAARCAAYACgDASIA
AhEBAxEB/8QAHwAAAQUBAQEBAQEAAAAAAAAAAAECAwQFBgcICQoL/8QAtRAAAgEDAwIEAwUFBAQA
AAF9AQIDAAQRBRIhMUEGE1FhByJxFDKBkaEII0KxwRVS0fAkM2JyggkKFhcYGRolJicoKSo0NTY3
ODk6Q0RFRkdISUpTVFVWV1hZWmNkZWZnaGlqc3R1dnd4eXqDhIWGh4iJipKTlJWWl5iZmqKjpKWm
p6ipqrKztLW2t7i5usLDxMXGx8jJytLT1NXW19jZ2uHi4+Tl5ufo6erx8vP09fb3+Pn6/8QAHwEA
AwEBAQEBAQEBAQAAAAAAAAECAwQFBgcICQoL/8QAtREAAgECBAQDBAcFBAQAAQJ3AAECAxEEBSEx
BhJBUQdhcRMiMoEIFEKRobHBCSMzUvAVYnLRChYkNOEl8RcYGRomJygpKjU2Nzg5OkNERUZHSElK
U1RVVldYWVpjZGVmZ2hpanN0dXZ3eHl6goOEhYaHiImKkpOUlZaXmJmaoqOkpaanqKmqsrO0tba3
uLm6wsPExcbHyMnK0tPU1dbX2Nna4uPk5ebn6Onq8vP09fb3+Pn6/90ABAAD/9oADAMBAAIRAxEA
PwD58tdI6fLWxa6R0+WustdI6fLWxa6R0+WopVzz8DnG2pydrpHT5a2LXSOny11lrpHT5a2LXSOn
y16VKufY4HN9tTk7XSOny0V6Ja6R0+WivQjX0PqqOb+7uf/QktdI6fLWxa6R0+WiivIpTZ+U4HFV
NNTYtdI6fLWxa6R0+WiivSpTZ9hgcVU01Ni10jp8tFFFd8Zux9XRxVTl3P/Z`

// lossyWebP is a 24×16 lossy WebP with an alpha channel (VP8X, ALPH,
// VP8), from cwebp: the hand-made ones below are lossless.
const lossyWebP = `UklGRp4AAABXRUJQVlA4WAoAAAAQAAAAFwAADwAAQUxQSBMAAAABDzD/ERFCLJgg5E+7P4KI/gfNAFZQOCBkAAAAcAQAnQEqGAAQAD6dQJpIJaQioTAIALATiWwAnTKEcDeQAGd+a1Ay4iL0nJgA/vWXUhTC6hLuo1cG5//M+V3m1Npk3igJzzAwt7IlswKc99EjgM+pEUyJw3fyf9ZQkXU6hOzAAA==`

func unbase64(t testing.TB, s string) []byte {
	t.Helper()
	b, err := base64.StdEncoding.DecodeString(string(bytes.ReplaceAll([]byte(s), []byte("\n"), nil)))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// quadrants is a w×h picture whose top left quadrant is red and the rest
// blue, in blocks large enough to survive JPEG.
func quadrants(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			c := color.RGBA{0, 0, 255, 255}
			if x < w/2 && y < h/2 {
				c = color.RGBA{255, 0, 0, 255}
			}
			m.SetRGBA(x, y, c)
		}
	}
	return m
}

// photoLike is a picture with smooth gradients and some texture, which
// compresses more like a photo than flat colours do.
func photoLike(w, h int) *image.RGBA {
	m := image.NewRGBA(image.Rect(0, 0, w, h))
	seed := uint32(1)
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			seed = seed*1664525 + 1013904223
			n := int(seed>>28) - 8
			r := 40 + 150*x/w + n
			g := 90 + 100*y/h + n + (x/37+y/23)%2*20
			b := 160 - 100*(x+y)/(w+h) + n
			m.SetRGBA(x, y, color.RGBA{clamp(r), clamp(g), clamp(b), 255})
		}
	}
	return m
}

func clamp(v int) uint8 { return uint8(max(0, min(255, v))) }

func encodeJPEG(t testing.TB, img image.Image, q int) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := jpeg.Encode(&b, img, &jpeg.Options{Quality: q}); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

func encodePNG(t testing.TB, img image.Image) []byte {
	t.Helper()
	var b bytes.Buffer
	if err := png.Encode(&b, img); err != nil {
		t.Fatal(err)
	}
	return b.Bytes()
}

// segment makes a JPEG marker segment.
func segment(marker byte, payload []byte) []byte {
	n := len(payload) + 2
	return append([]byte{0xff, marker, byte(n >> 8), byte(n)}, payload...)
}

// afterSOI puts segments right after a JPEG's SOI.
func afterSOI(jpg []byte, segs ...[]byte) []byte {
	out := append([]byte{}, jpg[:2]...)
	for _, s := range segs {
		out = append(out, s...)
	}
	return append(out, jpg[2:]...)
}

// byteOrder is binary.BigEndian or binary.LittleEndian.
type byteOrder interface {
	binary.ByteOrder
	binary.AppendByteOrder
}

// exifTIFF builds the TIFF part of EXIF as a camera writes it: IFD0 with
// Make, Orientation (if o > 0) and a pointer to a GPS IFD with latitude
// and a processing method naming secretGPS.
func exifTIFF(bo byteOrder, o int) []byte {
	var b []byte
	if bo == binary.BigEndian {
		b = []byte("MM\x00*")
	} else {
		b = []byte("II*\x00")
	}
	b = bo.AppendUint32(b, 8)
	type entry struct {
		tag, typ uint16
		count    uint32
		value    []byte // inline if ≤ 4 bytes, else at an offset
	}
	short := func(v uint16) []byte { return bo.AppendUint16(nil, v) }
	var ifd0 []entry
	ifd0 = append(ifd0, entry{0x010f, 2, uint32(len(secretMake) + 1), append([]byte(secretMake), 0)})
	if o > 0 {
		ifd0 = append(ifd0, entry{tagOrientation, 3, 1, short(uint16(o))})
	}
	ifd0 = append(ifd0, entry{0x8825, 4, 1, nil}) // GPS IFD, offset filled in below
	method := append([]byte("ASCII\x00\x00\x00"), secretGPS...)
	var lat []byte
	for _, v := range []uint32{52, 1, 31, 1, 1234, 100} {
		lat = bo.AppendUint32(lat, v)
	}
	gps := []entry{
		{0x0001, 2, 2, []byte("N\x00")},
		{0x0002, 5, 3, lat},
		{0x001b, 7, uint32(len(method)), method},
	}
	// Layout: header, IFD0, GPS IFD, then the values that do not fit.
	ifdLen := func(n int) int { return 2 + 12*n + 4 }
	gpsAt := 8 + ifdLen(len(ifd0))
	dataAt := gpsAt + ifdLen(len(gps))
	var data []byte
	write := func(es []entry) {
		b = bo.AppendUint16(b, uint16(len(es)))
		for _, e := range es {
			b = bo.AppendUint16(b, e.tag)
			b = bo.AppendUint16(b, e.typ)
			b = bo.AppendUint32(b, e.count)
			switch {
			case e.tag == 0x8825:
				b = bo.AppendUint32(b, uint32(gpsAt))
			case len(e.value) <= 4:
				b = append(b, append(e.value, make([]byte, 4-len(e.value))...)...)
			default:
				b = bo.AppendUint32(b, uint32(dataAt+len(data)))
				data = append(data, e.value...)
			}
		}
		b = bo.AppendUint32(b, 0)
	}
	write(ifd0)
	write(gps)
	return append(b, data...)
}

// exifAPP1 is a JPEG APP1 segment with exifTIFF.
func exifAPP1(bo byteOrder, o int) []byte {
	return segment(0xe1, append([]byte("Exif\x00\x00"), exifTIFF(bo, o)...))
}

// gpsEntry is the start of the GPS IFD pointer entry, as it appears in
// exifTIFF(binary.BigEndian, ...).
const gpsEntry = "\x88\x25\x00\x04\x00\x00\x00\x01"

// pngChunk is one chunk of a PNG.
type pngChunk struct {
	typ  string
	data []byte
	crc  uint32
}

func makeChunk(typ string, data []byte) []byte {
	b := binary.BigEndian.AppendUint32(nil, uint32(len(data)))
	b = append(b, typ...)
	b = append(b, data...)
	return binary.BigEndian.AppendUint32(b, crc32.ChecksumIEEE(b[4:]))
}

// chunks lists the chunks of a PNG up to IEND.
func chunks(t testing.TB, b []byte) []pngChunk {
	t.Helper()
	if !bytes.HasPrefix(b, []byte(pngSignature)) {
		t.Fatal("no PNG signature")
	}
	var out []pngChunk
	for p := 8; p+12 <= len(b); {
		n := int(binary.BigEndian.Uint32(b[p:]))
		c := pngChunk{typ: string(b[p+4 : p+8]), data: b[p+8 : p+8+n], crc: binary.BigEndian.Uint32(b[p+8+n:])}
		out = append(out, c)
		p += 12 + n
		if c.typ == "IEND" {
			break
		}
	}
	return out
}

// withChunks puts chunks after IHDR (before) and before IEND (after).
func withChunks(b []byte, before, after [][]byte) []byte {
	ihdrEnd := 8 + 25
	iend := bytes.LastIndex(b, []byte("IEND")) - 4
	out := append([]byte{}, b[:ihdrEnd]...)
	for _, c := range before {
		out = append(out, c...)
	}
	out = append(out, b[ihdrEnd:iend]...)
	for _, c := range after {
		out = append(out, c...)
	}
	return append(out, b[iend:]...)
}

func zlibBytes(b []byte) []byte {
	var z bytes.Buffer
	w := zlib.NewWriter(&z)
	w.Write(b)
	w.Close()
	return z.Bytes()
}

// bitWriter writes the least significant bit first, as VP8L reads.
type bitWriter struct {
	buf []byte
	acc uint64
	n   uint
}

func (w *bitWriter) put(v uint64, bits uint) {
	w.acc |= v << w.n
	w.n += bits
	for w.n >= 8 {
		w.buf = append(w.buf, byte(w.acc))
		w.acc >>= 8
		w.n -= 8
	}
}

func (w *bitWriter) bytes() []byte {
	if w.n > 0 {
		return append(w.buf, byte(w.acc))
	}
	return w.buf
}

// vp8l makes a lossless WebP bitstream of a w×h picture whose pixels
// are all red r, blue b and opaque, with green 0xff where on(x, y) says
// and 0 elsewhere. Every prefix code is a "simple" one: red, blue, alpha
// and distance have a single symbol (no bits per pixel), green two (one
// bit per pixel).
func vp8l(w, h int, r, b uint8, on func(x, y int) bool) []byte {
	var bw bitWriter
	bw.put(0x2f, 8)
	bw.put(uint64(w-1), 14)
	bw.put(uint64(h-1), 14)
	bw.put(0, 1) // alpha is not used
	bw.put(0, 3) // version
	bw.put(0, 1) // no transform
	bw.put(0, 1) // no colour cache
	bw.put(0, 1) // no meta prefix codes
	one := func(sym uint8) {
		bw.put(1, 1) // simple code
		bw.put(0, 1) // one symbol
		bw.put(1, 1) // of 8 bits
		bw.put(uint64(sym), 8)
	}
	// green: two symbols, 0x00 (code 0) and 0xff (code 1)
	bw.put(1, 1)
	bw.put(1, 1)
	bw.put(1, 1)
	bw.put(0x00, 8)
	bw.put(0xff, 8)
	one(r)
	one(b)
	one(0xff) // alpha
	one(0)    // distance, unused
	for y := 0; y < h; y++ {
		for x := 0; x < w; x++ {
			if on(x, y) {
				bw.put(1, 1)
			} else {
				bw.put(0, 1)
			}
		}
	}
	return bw.bytes()
}

// riffChunk makes a RIFF chunk, padded.
func riffChunk(fcc string, data []byte) []byte {
	b := append([]byte(fcc), binary.LittleEndian.AppendUint32(nil, uint32(len(data)))...)
	b = append(b, data...)
	if len(data)%2 == 1 {
		b = append(b, 0)
	}
	return b
}

// webpFile wraps chunks in a RIFF WEBP header.
func webpFile(chunks ...[]byte) []byte {
	var body []byte
	for _, c := range chunks {
		body = append(body, c...)
	}
	b := append([]byte("RIFF"), binary.LittleEndian.AppendUint32(nil, uint32(4+len(body)))...)
	b = append(b, "WEBP"...)
	return append(b, body...)
}

// vp8xChunk makes a VP8X chunk.
func vp8xChunk(flags byte, w, h int) []byte {
	d := make([]byte, 10)
	d[0] = flags
	putLE24(d[4:], uint32(w-1))
	putLE24(d[7:], uint32(h-1))
	return riffChunk("VP8X", d)
}

// anmfChunk makes an animation frame at (x, y) (even) of a w×h VP8L
// bitstream.
func anmfChunk(x, y, w, h int, bitstream []byte) []byte {
	d := make([]byte, 16)
	putLE24(d[0:], uint32(x/2))
	putLE24(d[3:], uint32(y/2))
	putLE24(d[6:], uint32(w-1))
	putLE24(d[9:], uint32(h-1))
	putLE24(d[12:], 100) // duration
	return riffChunk("ANMF", append(d, riffChunk("VP8L", bitstream)...))
}

// topLeft reports the top left quadrant of a w×h picture.
func topLeft(w, h int) func(x, y int) bool {
	return func(x, y int) bool { return x < w/2 && y < h/2 }
}

// shown is where stored pixel (x, y) of a w×h picture is displayed under
// EXIF orientation o, written from the standard's wording ("the 0th row
// is the visual right-hand side, the 0th column the visual top", and so
// on) rather than from the code under test.
func shown(o, w, h, x, y int) (int, int) {
	switch o {
	case 2:
		return w - 1 - x, y
	case 3:
		return w - 1 - x, h - 1 - y
	case 4:
		return x, h - 1 - y
	case 5:
		return y, x
	case 6:
		return h - 1 - y, x
	case 7:
		return h - 1 - y, w - 1 - x
	case 8:
		return y, w - 1 - x
	}
	return x, y
}

// isRed and isBlue tell the quadrant colours apart after lossy coding.
func isRed(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return r > 0xb000 && g < 0x5000 && b < 0x5000
}

func isBlue(c color.Color) bool {
	r, g, b, _ := c.RGBA()
	return b > 0xb000 && r < 0x5000 && g < 0x5000
}
