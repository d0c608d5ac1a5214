package imaging

import (
	"bytes"
	"encoding/binary"
)

// tagOrientation is the TIFF/EXIF tag whose value (1 to 8) says how a
// picture's stored rows and columns map to what is displayed.
const tagOrientation = 0x0112

// exifOrientation returns the Orientation of IFD0 in tiff, the TIFF
// structure EXIF is made of (what follows "Exif\0\0" in a JPEG's APP1,
// a PNG eXIf chunk, a WebP EXIF chunk; a leading "Exif\0\0" is skipped
// too, as some WebP writers leave it). It returns 1, the picture as
// stored, when there is no such tag or its value is not 1 to 8: a
// malformed tag must not turn a picture.
func exifOrientation(tiff []byte) int {
	tiff = bytes.TrimPrefix(tiff, []byte("Exif\x00\x00"))
	if len(tiff) < 8 {
		return 1
	}
	var bo binary.ByteOrder
	switch string(tiff[:4]) {
	case "II*\x00":
		bo = binary.LittleEndian
	case "MM\x00*":
		bo = binary.BigEndian
	default:
		return 1
	}
	ifd := uint64(bo.Uint32(tiff[4:]))
	if ifd < 8 || ifd+2 > uint64(len(tiff)) {
		return 1
	}
	n := uint64(bo.Uint16(tiff[ifd:]))
	for e := ifd + 2; n > 0 && e+12 <= uint64(len(tiff)); e, n = e+12, n-1 {
		if bo.Uint16(tiff[e:]) != tagOrientation {
			continue
		}
		if bo.Uint32(tiff[e+4:]) != 1 { // count
			return 1
		}
		var v uint32
		switch bo.Uint16(tiff[e+2:]) { // type
		case 3: // SHORT, as the standard says
			v = uint32(bo.Uint16(tiff[e+8:]))
		case 4: // LONG, which some writers use
			v = bo.Uint32(tiff[e+8:])
		default:
			return 1
		}
		if v < 1 || v > 8 {
			return 1
		}
		return int(v)
	}
	return 1
}

// orientationEXIF returns a TIFF structure holding only an Orientation
// tag of o: what a WebP, which cannot be encoded again here, keeps of its
// EXIF so that it still displays upright.
func orientationEXIF(o int) []byte {
	b := []byte("MM\x00*\x00\x00\x00\x08" + // big-endian, IFD0 at 8
		"\x00\x01" + // one entry
		"\x01\x12\x00\x03\x00\x00\x00\x01\x00\x00\x00\x00" + // Orientation, SHORT, 1 value
		"\x00\x00\x00\x00") // no next IFD
	b[19] = byte(o)
	return b
}
