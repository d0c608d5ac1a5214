package imaging

import (
	"bytes"
	"io"
)

// JPEG markers this file names.
const (
	mSOI  = 0xd8
	mEOI  = 0xd9
	mSOS  = 0xda
	mRST0 = 0xd0
	mRST7 = 0xd7
	mAPP0 = 0xe0
	mAPP1 = 0xe1
	mAPP2 = 0xe2
	mAPPE = 0xee
	mAPPF = 0xef
	mCOM  = 0xfe
)

// Limits on a JPEG's structure, checked before it is decoded.
const (
	// maxJPEGSegments is far above the few dozen segments of any real
	// JPEG (a large ICC profile in 64 KiB pieces is at most 255).
	maxJPEGSegments = 4096
	// maxJPEGScans bounds progressive scans: encoders write about ten,
	// and each scan costs a pass over every block of the components it
	// covers, so thousands of tiny scans make a small file very slow to
	// decode.
	maxJPEGScans = 64
)

const (
	errTooManySegments = formatError("too many segments")
	errTooManyScans    = formatError("too many scans")
)

// jpegInfo is what planJPEG learned about a JPEG.
type jpegInfo struct {
	plan        plan    // the JPEG without metadata
	orientation int     // EXIF Orientation, 1 if none
	icc         []piece // the ICC profile's APP2 segments, whole
	iccSpace    string  // the profile's colour space ("RGB ", "GRAY", "CMYK"), "" if unknown
}

// planJPEG plans a copy of a JPEG without its metadata, by the segment
// list: the image data and every segment a decoder uses are kept byte for
// byte, and APP0 JFIF (its embedded thumbnail removed), APP2 ICC profiles
// and APP14 Adobe (which says how to read the colours) are the only
// application segments kept. Everything else goes: APP1 (EXIF, with GPS,
// and XMP), APP13 (IPTC), MPF and other APP2, COM, any other APPn, and
// whatever follows the End Of Image marker (phones put motion-photo
// videos, depth maps and vendor trailers there). It also reads the EXIF
// Orientation.
//
// It accepts what Go's decoder accepts: bytes between segments that are
// not a marker, and restart markers outside a scan, are skipped (and
// dropped).
func planJPEG(r io.ReaderAt, size int64) (*jpegInfo, error) {
	info := &jpegInfo{orientation: 1}
	c := newCursor(r, size)
	var soi [2]byte
	if err := c.full(soi[:]); err != nil {
		return nil, err
	}
	if soi[0] != 0xff || soi[1] != mSOI {
		return nil, formatError("missing SOI marker")
	}
	if err := info.plan.span(0, 2); err != nil {
		return nil, err
	}
	var (
		segments, scans int
		seenExif        bool
		next            byte // a marker already read (ending a scan), 0 if none
		head            [64]byte
	)
	for {
		m := next
		if m == 0 {
			var err error
			if m, err = nextMarker(c); err != nil {
				return nil, err
			}
		}
		next = 0
		at := c.pos - 2 // the marker's 0xff
		switch {
		case m == mEOI:
			if err := info.plan.span(at, 2); err != nil {
				return nil, err
			}
			return info, nil
		case m >= mRST0 && m <= mRST7:
			continue // outside a scan: nothing to restart, Go's decoder ignores it
		case m == mSOI || m < 0xc0:
			return nil, formatError("unexpected marker")
		}
		if segments++; segments > maxJPEGSegments {
			return nil, errTooManySegments
		}
		var lb [2]byte
		if err := c.full(lb[:]); err != nil {
			return nil, err
		}
		n := int64(lb[0])<<8 | int64(lb[1]) - 2 // the length counts itself
		if n < 0 {
			return nil, formatError("short segment length")
		}
		keep := true
		if m >= mAPP0 && m <= mAPPF || m == mCOM {
			h := head[:min(n, int64(len(head)))]
			if err := c.full(h); err != nil {
				return nil, err
			}
			rest := n - int64(len(h))
			keep = keepJPEGSegment(m, h)
			switch {
			case m == mAPP0 && keep && n > 14:
				// JFIF with a thumbnail of its own, which could show
				// what an edit cropped out: keep the header only.
				app0 := append([]byte{0xff, mAPP0, 0, 16}, h[:14]...)
				app0[16], app0[17] = 0, 0 // no thumbnail
				if err := info.plan.literal(app0); err != nil {
					return nil, err
				}
				keep = false
			case m == mAPP1 && !seenExif && scans == 0 && bytes.HasPrefix(h, []byte("Exif\x00\x00")):
				// Viewers go by the first EXIF segment; so does this.
				seenExif = true
				exif := make([]byte, n)
				copy(exif, h)
				if err := c.full(exif[len(h):]); err != nil {
					return nil, err
				}
				rest = 0
				info.orientation = exifOrientation(exif)
			case m == mAPP2 && keep:
				info.icc = append(info.icc, piece{off: at, n: 4 + n})
				// The chunk numbered 1 starts with the profile header,
				// whose colour space is at 16 (after the 14 bytes of
				// "ICC_PROFILE\0", number and count).
				if len(h) >= 14+20 && h[12] == 1 {
					info.iccSpace = string(h[14+16 : 14+20])
				}
			}
			if err := c.skip(rest); err != nil {
				return nil, err
			}
		} else if err := c.skip(n); err != nil {
			return nil, err
		}
		if keep {
			if err := info.plan.span(at, 4+n); err != nil {
				return nil, err
			}
		}
		if m != mSOS {
			continue
		}
		if scans++; scans > maxJPEGScans {
			return nil, errTooManyScans
		}
		start := c.pos
		var err error
		if next, err = skipScan(c); err != nil {
			return nil, err
		}
		if err := info.plan.span(start, c.pos-2-start); err != nil {
			return nil, err
		}
	}
}

// keepJPEGSegment decides on an application or comment segment by its
// marker and first bytes.
func keepJPEGSegment(m byte, h []byte) bool {
	switch m {
	case mAPP0:
		return bytes.HasPrefix(h, []byte("JFIF\x00"))
	case mAPP2:
		return bytes.HasPrefix(h, []byte("ICC_PROFILE\x00"))
	case mAPPE:
		return bytes.HasPrefix(h, []byte("Adobe"))
	}
	return false
}

// nextMarker reads up to and including the next marker outside a scan
// and returns it. Bytes before it that are not a marker are skipped, as
// are fill bytes (0xff) and "\xff\x00", as Go's decoder does.
func nextMarker(c *cursor) (byte, error) {
	for {
		b, err := c.byte()
		if err != nil {
			return 0, err
		}
		if b != 0xff {
			continue
		}
		for b == 0xff {
			if b, err = c.byte(); err != nil {
				return 0, err
			}
		}
		if b != 0 {
			return b, nil
		}
	}
}

// skipScan reads through a scan's entropy-coded data, where 0xff is
// followed by 0 (a stuffed 0xff) or a restart marker, up to and
// including the marker that ends it, and returns that marker.
func skipScan(c *cursor) (byte, error) {
	for {
		if _, err := c.br.Peek(1); err != nil {
			return 0, eofIsTruncated(err)
		}
		buf, _ := c.br.Peek(c.br.Buffered())
		i := bytes.IndexByte(buf, 0xff)
		if i < 0 {
			if err := c.skip(int64(len(buf))); err != nil {
				return 0, err
			}
			continue
		}
		if err := c.skip(int64(i) + 1); err != nil {
			return 0, err
		}
		b, err := c.byte()
		if err != nil {
			return 0, err
		}
		switch {
		case b == 0, b >= mRST0 && b <= mRST7:
		case b == 0xff:
			c.unreadByte() // a fill byte: the marker may follow
		default:
			return b, nil
		}
	}
}
