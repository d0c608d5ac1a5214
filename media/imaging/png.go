package imaging

import (
	"encoding/binary"
	"hash/crc32"
	"io"
)

const pngSignature = "\x89PNG\r\n\x1a\n"

// pngInfo is what planPNG learned about a PNG.
type pngInfo struct {
	plan        plan    // the PNG without metadata
	orientation int     // eXIf Orientation, 1 if none
	animated    bool    // an APNG (acTL)
	gray        bool    // IHDR colour type 0 or 4
	color       []piece // chunks that say how to show the colours, whole
}

// maxEXIFRead bounds how much of an EXIF block is read to find the
// Orientation; IFD0 comes first in every writer's output.
const maxEXIFRead = 64 << 10

// planPNG plans a copy of a PNG without its metadata. Chunks are copied
// byte for byte, CRC included (and the CRC checked), and only ancillary
// chunks are dropped: all but the ones that change how the picture or
// its animation looks. The dropped ones are tEXt, zTXt, iTXt (where
// editors put XMP), tIME, eXIf, sPLT (a named palette suggestion), and
// private or unknown chunks, which decoders must ignore and which can
// hold anything. Anything after IEND goes too. It also reads the Orientation of an eXIf chunk before the
// image data, where viewers look for it.
func planPNG(r io.ReaderAt, size int64) (*pngInfo, error) {
	info := &pngInfo{orientation: 1}
	c := newCursor(r, size)
	var sig [8]byte
	if err := c.full(sig[:]); err != nil {
		return nil, err
	}
	if string(sig[:]) != pngSignature {
		return nil, formatError("not a PNG signature")
	}
	if err := info.plan.span(0, 8); err != nil {
		return nil, err
	}
	var (
		hdr      [8]byte
		crc      [4]byte
		seenIDAT bool
		seenEXIF bool
	)
	for first := true; ; first = false {
		at := c.pos
		if err := c.full(hdr[:]); err != nil {
			return nil, err
		}
		n := int64(binary.BigEndian.Uint32(hdr[:4]))
		typ := string(hdr[4:8])
		if n > 0x7fffffff {
			return nil, formatError("chunk length out of range")
		}
		if first != (typ == "IHDR") {
			return nil, formatError("IHDR is not the first chunk")
		}
		if !keepPNGChunk(typ) {
			switch {
			case typ == "eXIf" && !seenIDAT && !seenEXIF:
				seenEXIF = true
				exif := make([]byte, min(n, maxEXIFRead))
				if err := c.full(exif); err != nil {
					return nil, err
				}
				info.orientation = exifOrientation(exif)
				if err := c.skip(n - int64(len(exif)) + 4); err != nil {
					return nil, err
				}
			default:
				if err := c.skip(n + 4); err != nil {
					return nil, err
				}
			}
			continue
		}
		h := crc32.NewIEEE()
		h.Write(hdr[4:8])
		if typ == "IHDR" {
			if n != 13 {
				return nil, formatError("bad IHDR length")
			}
			var ihdr [13]byte
			if err := c.full(ihdr[:]); err != nil {
				return nil, err
			}
			h.Write(ihdr[:])
			info.gray = ihdr[9] == 0 || ihdr[9] == 4
		} else if err := c.hashNext(h, n); err != nil {
			return nil, err
		}
		if err := c.full(crc[:]); err != nil {
			return nil, err
		}
		if binary.BigEndian.Uint32(crc[:]) != h.Sum32() {
			return nil, formatError("chunk CRC mismatch")
		}
		if err := info.plan.span(at, 12+n); err != nil {
			return nil, err
		}
		switch typ {
		case "IEND":
			return info, nil
		case "IDAT":
			seenIDAT = true
		case "acTL":
			info.animated = true
		case "iCCP", "sRGB", "gAMA", "cHRM", "cICP", "mDCv", "cLLi":
			info.color = append(info.color, piece{off: at, n: 12 + n})
		}
	}
}

// keepPNGChunk reports whether a chunk survives stripping.
func keepPNGChunk(typ string) bool {
	if typ[0]&0x20 == 0 {
		// Critical (IHDR, PLTE, IDAT, IEND, or one a decoder must
		// know): dropping it would break the file.
		return true
	}
	switch typ {
	case "tRNS", "cHRM", "gAMA", "iCCP", "sBIT", "sRGB", "cICP", "mDCv", "cLLi",
		"bKGD", "hIST", "pHYs", "acTL", "fcTL", "fdAT":
		return true
	}
	return false
}
