package imaging

import (
	"bytes"
	"encoding/binary"
	"image"
	"io"
)

// VP8X flags.
const (
	vp8xAnimation = 1 << 1
	vp8xXMP       = 1 << 2
	vp8xEXIF      = 1 << 3
	vp8xAlpha     = 1 << 4
)

// webpInfo is what planWebP learned about a WebP.
type webpInfo struct {
	plan          plan
	width, height int   // the canvas (VP8X) or the picture
	maxFrame      int64 // the most pixels a frame or bitstream header claims
	orientation   int   // EXIF Orientation of an extended file, 1 if none
	animated      bool
	frame         image.Rectangle // the first animation frame, on the canvas
	frameOff      int64           // its data: ALPH, VP8 or VP8L chunks
	frameLen      int64
}

// planWebP plans a copy of a WebP without its metadata by rewriting the
// RIFF container: the image chunks (VP8X, VP8, VP8L, ALPH, ANIM, ANMF)
// and the ICC profile (ICCP) are copied byte for byte, EXIF, XMP and
// unknown chunks are dropped, the RIFF size is set to what is left and
// the VP8X flags no longer announce EXIF or XMP.
//
// WebP cannot be encoded here, so a picture whose EXIF Orientation is
// not 1 cannot be turned upright; instead it keeps an EXIF chunk holding
// that one tag, which browsers honour, and nothing else.
func planWebP(r io.ReaderAt, size int64) (*webpInfo, error) {
	info := &webpInfo{orientation: 1}
	var h [18]byte
	if err := readAt(r, size, h[:12], 0); err != nil {
		return nil, err
	}
	if string(h[:4]) != "RIFF" || string(h[8:12]) != "WEBP" {
		return nil, formatError("not a RIFF WEBP file")
	}
	end := 8 + int64(binary.LittleEndian.Uint32(h[4:]))
	if end < 12 {
		return nil, formatError("RIFF size too small")
	}
	if end > size {
		return nil, errTruncated
	}
	riff := []byte("RIFF\x00\x00\x00\x00WEBP") // size set below
	if err := info.plan.literal(riff); err != nil {
		return nil, err
	}
	var (
		vp8x     []byte // the VP8X chunk as it will be written
		seenEXIF bool
		seenPic  bool // a VP8 or VP8L chunk, or an animation frame
	)
	for i, p := 0, int64(12); p < end; i++ {
		if end-p < 8 {
			return nil, formatError("short chunk header")
		}
		if err := readAt(r, size, h[:8], p); err != nil {
			return nil, err
		}
		fcc := string(h[:4])
		n := int64(binary.LittleEndian.Uint32(h[4:8]))
		data := p + 8
		padded := n + n&1
		if padded > end-data {
			return nil, formatError("chunk runs past the RIFF end")
		}
		next := data + padded
		if i == 0 && fcc != "VP8 " && fcc != "VP8L" && fcc != "VP8X" {
			return nil, formatError("first chunk is not VP8, VP8L or VP8X")
		}
		switch fcc {
		case "VP8X":
			if i != 0 || n != 10 {
				return nil, formatError("misplaced or bad VP8X chunk")
			}
			vp8x = make([]byte, 18)
			if err := readAt(r, size, vp8x, p); err != nil {
				return nil, err
			}
			info.width = int(le24(vp8x[12:])) + 1
			info.height = int(le24(vp8x[15:])) + 1
			info.animated = vp8x[8]&vp8xAnimation != 0
			if err := info.plan.literal(vp8x); err != nil {
				return nil, err
			}
			p = next
			continue
		case "VP8 ", "VP8L":
			w, ht, err := bitstreamSize(r, size, fcc, data, n)
			if err != nil {
				return nil, err
			}
			info.maxFrame = max(info.maxFrame, int64(w)*int64(ht))
			if i == 0 {
				info.width, info.height = w, ht
			}
			seenPic = true
		case "ANMF":
			if vp8x == nil || n < 16 {
				return nil, formatError("bad ANMF chunk")
			}
			if err := readAt(r, size, h[:16], data); err != nil {
				return nil, err
			}
			x, y := int(le24(h[0:]))*2, int(le24(h[3:]))*2
			fr := image.Rect(x, y, x+int(le24(h[6:]))+1, y+int(le24(h[9:]))+1)
			if !fr.In(image.Rect(0, 0, info.width, info.height)) {
				return nil, formatError("animation frame outside the canvas")
			}
			info.maxFrame = max(info.maxFrame, int64(fr.Dx())*int64(fr.Dy()))
			if !seenPic {
				info.frame, info.frameOff, info.frameLen = fr, data+16, n-16
			}
			seenPic = true
		case "ALPH", "ANIM", "ICCP":
		case "EXIF":
			if !seenEXIF && vp8x != nil {
				seenEXIF = true
				exif := make([]byte, min(n, maxEXIFRead))
				if err := readAt(r, size, exif, data); err != nil {
					return nil, err
				}
				info.orientation = exifOrientation(exif)
				if info.orientation != 1 {
					if err := info.plan.literal(chunk("EXIF", orientationEXIF(info.orientation))); err != nil {
						return nil, err
					}
				}
			}
			p = next
			continue
		default: // "XMP " and anything unknown
			p = next
			continue
		}
		if err := info.plan.span(p, 8+padded); err != nil {
			return nil, err
		}
		p = next
	}
	if !seenPic {
		return nil, formatError("no picture")
	}
	if info.animated != (info.frameLen > 0) {
		return nil, formatError("animation flag and frames disagree")
	}
	if vp8x != nil {
		vp8x[8] &^= vp8xEXIF | vp8xXMP
		if info.orientation != 1 {
			vp8x[8] |= vp8xEXIF
		}
	}
	binary.LittleEndian.PutUint32(riff[4:], uint32(info.plan.size-8))
	return info, nil
}

// bitstreamSize reads the picture size from the header of a VP8 or VP8L
// chunk's data.
func bitstreamSize(r io.ReaderAt, size int64, fcc string, data, n int64) (w, h int, err error) {
	var b [10]byte
	if fcc == "VP8 " {
		if n < 10 {
			return 0, 0, formatError("short VP8 chunk")
		}
		if err := readAt(r, size, b[:10], data); err != nil {
			return 0, 0, err
		}
		if b[3] != 0x9d || b[4] != 0x01 || b[5] != 0x2a {
			return 0, 0, formatError("no VP8 start code")
		}
		return int(binary.LittleEndian.Uint16(b[6:]) & 0x3fff), int(binary.LittleEndian.Uint16(b[8:]) & 0x3fff), nil
	}
	if n < 5 {
		return 0, 0, formatError("short VP8L chunk")
	}
	if err := readAt(r, size, b[:5], data); err != nil {
		return 0, 0, err
	}
	if b[0] != 0x2f {
		return 0, 0, formatError("no VP8L signature")
	}
	bits := binary.LittleEndian.Uint32(b[1:])
	return int(bits&0x3fff) + 1, int(bits>>14&0x3fff) + 1, nil
}

// firstFrame returns the first frame of an animated WebP as a WebP file
// of its own, which golang.org/x/image/webp (which does not read
// animations) decodes. The frame's data are read from r, not copied.
func (info *webpInfo) firstFrame(r io.ReaderAt, size int64) (io.Reader, error) {
	var fcc [4]byte
	if err := readAt(r, size, fcc[:], info.frameOff); err != nil {
		return nil, err
	}
	var flags byte
	if string(fcc[:]) == "ALPH" {
		flags = vp8xAlpha
	}
	hdr := make([]byte, 30)
	copy(hdr, "RIFF\x00\x00\x00\x00WEBPVP8X\x0a\x00\x00\x00")
	binary.LittleEndian.PutUint32(hdr[4:], uint32(4+18+info.frameLen))
	hdr[20] = flags
	putLE24(hdr[24:], uint32(info.frame.Dx()-1))
	putLE24(hdr[27:], uint32(info.frame.Dy()-1))
	return io.MultiReader(bytes.NewReader(hdr), io.NewSectionReader(r, info.frameOff, info.frameLen)), nil
}

// chunk makes a RIFF chunk, padded to an even length.
func chunk(fcc string, data []byte) []byte {
	b := make([]byte, 8+len(data)+len(data)&1)
	copy(b, fcc)
	binary.LittleEndian.PutUint32(b[4:], uint32(len(data)))
	copy(b[8:], data)
	return b
}

func le24(b []byte) uint32 { return uint32(b[0]) | uint32(b[1])<<8 | uint32(b[2])<<16 }

func putLE24(b []byte, v uint32) { b[0], b[1], b[2] = byte(v), byte(v>>8), byte(v>>16) }
