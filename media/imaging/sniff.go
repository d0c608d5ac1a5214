package imaging

import (
	"bytes"
	"encoding/binary"
	"fmt"
	"mime"
	"net/http"
	"strings"
)

// HeadLen is how many leading bytes of a file Sniff looks at. Callers
// give it that many, or the whole file if it is shorter. It is more than
// the 512 bytes net/http sniffs because office files name their parts in
// ZIP headers a few hundred bytes in, and an MP3 is recognised by its
// second frame.
const HeadLen = 4096

// Content types Sniff reports. Where a container holds either sound or
// pictures (MP4, 3GPP, WebM) the kind decides which of the two is meant.
const (
	typeJPEG       = "image/jpeg"
	typePNG        = "image/png"
	typeGIF        = "image/gif"
	typeWebP       = "image/webp"
	typeHEIC       = "image/heic"
	typeHEICSeq    = "image/heic-sequence"
	typeHEIF       = "image/heif"
	typeHEIFSeq    = "image/heif-sequence"
	typeAVIF       = "image/avif"
	typeMP4        = "video/mp4"
	typeQuickTime  = "video/quicktime"
	typeWebM       = "video/webm"
	typeMatroska   = "video/x-matroska"
	type3GPP       = "video/3gpp"
	type3GPP2      = "video/3gpp2"
	typeOggVideo   = "video/ogg"
	typeAudioMP4   = "audio/mp4"
	typeAudioWebM  = "audio/webm"
	typeAudioMKV   = "audio/x-matroska"
	typeAudio3GPP  = "audio/3gpp"
	typeAudio3GPP2 = "audio/3gpp2"
	typeMPEG       = "audio/mpeg"
	typeAAC        = "audio/aac"
	typeOgg        = "audio/ogg"
	typeOpus       = "audio/ogg; codecs=opus"
	typeAMR        = "audio/amr"
	typeAMRWB      = "audio/amr-wb"
	typeFLAC       = "audio/flac"
	typeAppOgg     = "application/ogg"
	typeAppMP4     = "application/mp4"
	typePDF        = "application/pdf"
	typeZIP        = "application/zip"
	typeDOCX       = "application/vnd.openxmlformats-officedocument.wordprocessingml.document"
	typeXLSX       = "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"
	typePPTX       = "application/vnd.openxmlformats-officedocument.presentationml.presentation"
	typeBinary     = "application/octet-stream"
)

// Sniff decides the content type of a file of the given kind from its
// first bytes (head, up to HeadLen of them) and refuses it, with a
// *TypeError, if the kind does not accept that type.
//
// The declared type (a Content-Type header, may be empty) never decides
// on its own. It only settles what the bytes leave open: whether a
// document's MP4, 3GPP or WebM container is sound or video (for the Audio
// and Video kinds the kind settles it), which office format a ZIP holds
// when its parts are named beyond head, and which kind of plain text
// (CSV, vCard, ...) a text document is.
//
// The result may carry parameters ("text/plain; charset=utf-8",
// "audio/ogg; codecs=opus"); Kind.Accepts ignores them. A Document
// accepts every type; what Sniff cannot name is application/octet-stream.
func Sniff(head []byte, declared string, kind Kind) (string, error) {
	if !kind.valid() {
		return "", fmt.Errorf("imaging: %w: %d", ErrUnknownKind, uint8(kind))
	}
	if len(head) > HeadLen {
		head = head[:HeadLen]
	}
	decl := ""
	if d, _, err := mime.ParseMediaType(declared); err == nil {
		decl = d // lower case, without parameters
	}
	audio := kind == Audio || (kind == Document && strings.HasPrefix(decl, "audio/"))
	t := sniff(head, decl, audio)
	if !kind.Accepts(t) {
		return "", &TypeError{Kind: kind, Type: t, Declared: declared}
	}
	return t, nil
}

// sniff names the content of head. audio says which of the two readings
// to give a container that can hold sound only or video.
func sniff(h []byte, decl string, audio bool) string {
	if len(h) == 0 {
		return typeBinary
	}
	if t := sniffISOBMFF(h, audio); t != "" {
		return t
	}
	if t := sniffEBML(h, audio); t != "" {
		return t
	}
	if bytes.HasPrefix(h, []byte("OggS")) {
		return sniffOgg(h)
	}
	if len(h) >= 12 && string(h[:4]) == "RIFF" && string(h[8:12]) == "WEBP" {
		return typeWebP
	}
	if t := sniffMPEGAudio(h); t != "" {
		return t
	}
	switch {
	case bytes.HasPrefix(h, []byte("#!AMR\n")), bytes.HasPrefix(h, []byte("#!AMR_MC1.0\n")):
		return typeAMR
	case bytes.HasPrefix(h, []byte("#!AMR-WB\n")), bytes.HasPrefix(h, []byte("#!AMR-WB_MC1.0\n")):
		return typeAMRWB
	case bytes.HasPrefix(h, []byte("fLaC")):
		return typeFLAC
	case bytes.HasPrefix(h, []byte("PK\x03\x04")):
		return sniffZIP(h, decl)
	case bytes.HasPrefix(h, []byte("%PDF-")):
		return typePDF
	}
	// JPEG, PNG, GIF, BMP, HTML, XML, text, fonts, archives, WAV, AVI ...
	t := http.DetectContentType(h)
	if strings.HasPrefix(t, "text/plain") {
		if refined := refineText(decl, t); refined != "" {
			return refined
		}
	}
	return t
}

// refineText names plain text by the declared type when that is one of
// the text formats a sniffer cannot tell from other text and none of
// them is active content: anything else keeps the sniffed text/plain.
func refineText(decl, sniffed string) string {
	switch decl {
	case "text/csv", "text/tab-separated-values", "text/markdown", "text/x-markdown",
		"text/calendar", "text/vcard", "text/x-vcard":
		if _, params, err := mime.ParseMediaType(sniffed); err == nil && params["charset"] != "" {
			return decl + "; charset=" + params["charset"]
		}
		return decl
	case "application/json":
		return decl
	}
	return ""
}

// sniffISOBMFF names ISO base media files (MP4, M4A, QuickTime, 3GPP,
// HEIF/HEIC, AVIF) by the brands of their leading ftyp box, and old
// QuickTime files that start with another top-level atom.
func sniffISOBMFF(h []byte, audio bool) string {
	if len(h) < 16 {
		return ""
	}
	size := binary.BigEndian.Uint32(h)
	switch string(h[4:8]) {
	case "ftyp":
	case "moov", "mdat", "wide", "free", "skip", "pnot":
		// QuickTime before ftyp existed. The size's top byte being zero
		// keeps text that happens to have "free" at 4 out.
		if h[0] == 0 && size >= 8 {
			return typeQuickTime
		}
		return ""
	default:
		return ""
	}
	if size < 16 || size%4 != 0 {
		return ""
	}
	end := min(int(size), len(h))
	brands := make([]string, 0, 8)
	brands = append(brands, string(h[8:12])) // major brand
	for p := 16; p+4 <= end; p += 4 {        // 12:16 is the minor version
		brands = append(brands, string(h[p:p+4]))
	}
	has := func(names ...string) bool {
		for _, b := range brands {
			for _, n := range names {
				if b == n {
					return true
				}
			}
		}
		return false
	}
	// Still images first: their files list generic brands too.
	switch {
	case has("avif", "avis"):
		return typeAVIF
	case has("heic", "heix", "heim", "heis"):
		return typeHEIC
	case has("hevc", "hevx", "hevm", "hevs"):
		return typeHEICSeq
	case has("mif1"):
		return typeHEIF
	case has("msf1"):
		return typeHEIFSeq
	}
	major := brands[0]
	switch {
	case major == "qt  ":
		return typeQuickTime
	case strings.HasPrefix(major, "3g2"):
		if audio {
			return typeAudio3GPP2
		}
		return type3GPP2
	case strings.HasPrefix(major, "3g"):
		if audio {
			return typeAudio3GPP
		}
		return type3GPP
	case major == "M4A " || major == "M4B " || major == "M4P " || major == "F4A " || major == "F4B ":
		return typeAudioMP4 // these brands are sound only
	}
	for _, b := range brands {
		if isMP4Brand(b) {
			if audio {
				return typeAudioMP4
			}
			return typeMP4
		}
	}
	if has("qt  ") {
		return typeQuickTime
	}
	return typeAppMP4
}

// isMP4Brand reports brands of MP4 files that may hold video or sound
// only.
func isMP4Brand(b string) bool {
	switch b {
	case "isom", "iso2", "iso3", "iso4", "iso5", "iso6", "iso7", "iso8", "iso9",
		"mp41", "mp42", "mp71", "avc1", "M4V ", "M4VH", "M4VP", "f4v ", "f4p ",
		"dash", "msdh", "msix", "mmp4", "MSNV", "NDAS", "NDSC", "NDSH", "NDSM",
		"NDSP", "NDSS", "NDXC", "NDXH", "NDXM", "NDXP", "NDXS", "XAVC", "kddi",
		"cmfc", "cmf2", "av01":
		return true
	}
	return false
}

// sniffEBML tells WebM from other Matroska by the EBML header's DocType.
func sniffEBML(h []byte, audio bool) string {
	if !bytes.HasPrefix(h, []byte{0x1a, 0x45, 0xdf, 0xa3}) {
		return ""
	}
	docType := ""
	p := 4
	size, n := ebmlVint(h[p:])
	if n == 0 {
		return typeBinary
	}
	p += n
	end := len(h)
	if size < uint64(end-p) {
		end = p + int(size)
	}
	for p < end {
		id, n := ebmlID(h[p:end])
		if n == 0 {
			break
		}
		p += n
		sz, n := ebmlVint(h[p:end])
		if n == 0 {
			break
		}
		p += n
		if sz > uint64(end-p) {
			break
		}
		if id == 0x4282 { // DocType
			docType = string(bytes.TrimRight(h[p:p+int(sz)], "\x00"))
			break
		}
		p += int(sz)
	}
	switch docType {
	case "webm":
		if audio {
			return typeAudioWebM
		}
		return typeWebM
	case "matroska":
		if audio {
			return typeAudioMKV
		}
		return typeMatroska
	}
	return typeBinary
}

// ebmlID reads an element ID (1 to 4 bytes, marker bits kept); n is 0 if
// there is none.
func ebmlID(b []byte) (id uint32, n int) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0
	}
	l := 1
	for m := byte(0x80); b[0]&m == 0; m >>= 1 {
		l++
	}
	if l > 4 || l > len(b) {
		return 0, 0
	}
	for _, c := range b[:l] {
		id = id<<8 | uint32(c)
	}
	return id, l
}

// ebmlVint reads an element size (1 to 8 bytes, marker bit removed); n is
// 0 if there is none.
func ebmlVint(b []byte) (v uint64, n int) {
	if len(b) == 0 || b[0] == 0 {
		return 0, 0
	}
	l := 1
	m := byte(0x80)
	for ; b[0]&m == 0; m >>= 1 {
		l++
	}
	if l > len(b) {
		return 0, 0
	}
	v = uint64(b[0] & (m - 1))
	for _, c := range b[1:l] {
		v = v<<8 | uint64(c)
	}
	return v, l
}

// sniffOgg names an Ogg file by the codec of its first packet.
func sniffOgg(h []byte) string {
	if len(h) < 27 {
		return typeAppOgg
	}
	p := 27 + int(h[26]) // after the segment table
	if p > len(h) {
		return typeAppOgg
	}
	pkt := h[p:]
	switch {
	case bytes.HasPrefix(pkt, []byte("OpusHead")):
		return typeOpus
	case bytes.HasPrefix(pkt, []byte("\x01vorbis")), bytes.HasPrefix(pkt, []byte("\x7fFLAC")),
		bytes.HasPrefix(pkt, []byte("Speex   ")):
		return typeOgg
	case bytes.HasPrefix(pkt, []byte("\x80theora")):
		return typeOggVideo
	}
	return typeAppOgg
}

// sniffMPEGAudio recognises MP3 (an ID3v2 tag, or two MPEG audio frames
// in a row) and AAC in ADTS frames.
func sniffMPEGAudio(h []byte) string {
	if len(h) >= 10 && string(h[:3]) == "ID3" && h[3] >= 2 && h[3] <= 4 && h[4] != 0xff &&
		h[6]|h[7]|h[8]|h[9] < 0x80 {
		// An ID3v2 tag (sizes are 7 bits a byte). It mostly precedes MP3
		// but sometimes AAC or FLAC: look past it if head reaches that far.
		n := 10 + (int(h[6])<<21 | int(h[7])<<14 | int(h[8])<<7 | int(h[9]))
		if h[5]&0x10 != 0 {
			n += 10 // footer
		}
		if n < len(h) {
			switch rest := h[n:]; {
			case bytes.HasPrefix(rest, []byte("fLaC")):
				return typeFLAC
			case isADTS(rest):
				return typeAAC
			}
		}
		return typeMPEG
	}
	if isADTS(h) {
		return typeAAC
	}
	if n := mpegFrameLen(h); n > 0 {
		// One 11-bit sync is too weak a sign; a second frame where the
		// first says it ends is not, unless head ends before it.
		if n+4 > len(h) || mpegFrameLen(h[n:]) > 0 {
			return typeMPEG
		}
	}
	return ""
}

// isADTS reports whether b starts with an ADTS frame header (followed by
// another one, if b is long enough to tell).
func isADTS(b []byte) bool {
	if len(b) < 7 || b[0] != 0xff || b[1]&0xf6 != 0xf0 || (b[2]>>2)&0x0f >= 13 {
		return false
	}
	n := int(b[3]&3)<<11 | int(b[4])<<3 | int(b[5])>>5
	if n < 7 {
		return false
	}
	if n+2 > len(b) {
		return true
	}
	return b[n] == 0xff && b[n+1]&0xf6 == 0xf0
}

// mpegFrameLen returns the length of the MPEG-1/2/2.5 Layer II or III
// frame b starts with, or 0 if b does not start with a valid header.
// Layer I (rare) and free-format frames are not recognised.
func mpegFrameLen(b []byte) int {
	if len(b) < 4 || b[0] != 0xff || b[1]&0xe0 != 0xe0 {
		return 0
	}
	version := (b[1] >> 3) & 3 // 0: 2.5, 1: reserved, 2: MPEG-2, 3: MPEG-1
	layer := (b[1] >> 1) & 3   // 1: III, 2: II, 3: I, 0: reserved
	bi := int(b[2] >> 4)
	si := int(b[2]>>2) & 3
	pad := int(b[2]>>1) & 1
	if version == 1 || layer == 0 || layer == 3 || bi == 0 || bi == 15 || si == 3 {
		return 0
	}
	// Bit rates in kbit/s by index 1 to 14.
	mpeg1L2 := [...]int{32, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320, 384}
	mpeg1L3 := [...]int{32, 40, 48, 56, 64, 80, 96, 112, 128, 160, 192, 224, 256, 320}
	mpeg2 := [...]int{8, 16, 24, 32, 40, 48, 56, 64, 80, 96, 112, 128, 144, 160}
	rates := [...]int{44100, 48000, 32000}
	var kbps, rate, perSample int
	switch {
	case version == 3 && layer == 2:
		kbps, perSample = mpeg1L2[bi-1], 144
	case version == 3:
		kbps, perSample = mpeg1L3[bi-1], 144
	case layer == 2:
		kbps, perSample = mpeg2[bi-1], 144
	default:
		kbps, perSample = mpeg2[bi-1], 72
	}
	rate = rates[si]
	switch version {
	case 2:
		rate /= 2
	case 0:
		rate /= 4
	}
	return perSample*kbps*1000/rate + pad
}

// sniffZIP names ZIP-based formats by the local file headers in h: office
// files (OOXML) by the folder of their main part, OpenDocument and EPUB
// by their stored "mimetype" first entry. The declared OOXML type is used
// only when h shows an OOXML package but not which of the three it is.
func sniffZIP(h []byte, decl string) string {
	var ooxml bool  // a part only OOXML packages have
	var part string // the type the main part's folder says
	p := 0
	for i := 0; i < 64 && p+30 <= len(h); i++ {
		if string(h[p:p+4]) != "PK\x03\x04" {
			break
		}
		flags := binary.LittleEndian.Uint16(h[p+6:])
		method := binary.LittleEndian.Uint16(h[p+8:])
		csize := binary.LittleEndian.Uint32(h[p+18:])
		nameEnd := p + 30 + int(binary.LittleEndian.Uint16(h[p+26:]))
		data := nameEnd + int(binary.LittleEndian.Uint16(h[p+28:]))
		if nameEnd > len(h) {
			break
		}
		name := string(h[p+30 : nameEnd])
		if i == 0 && name == "mimetype" && method == 0 && data+int(csize) <= len(h) {
			if t := zipMimetype(string(h[data : data+int(csize)])); t != "" {
				return t
			}
		}
		switch {
		case name == "[Content_Types].xml" || name == "_rels/.rels":
			ooxml = true
		case part != "":
		case strings.HasPrefix(name, "word/"):
			part = typeDOCX
		case strings.HasPrefix(name, "xl/"):
			part = typeXLSX
		case strings.HasPrefix(name, "ppt/"):
			part = typePPTX
		}
		if data > len(h) {
			break
		}
		if flags&8 == 0 && csize != 0xffffffff {
			p = data + int(csize)
			continue
		}
		// The size comes after the data (or in a ZIP64 field): look for
		// the next header instead.
		next := bytes.Index(h[data:], []byte("PK\x03\x04"))
		if next < 0 {
			break
		}
		p = data + next
	}
	switch {
	case part != "" && (ooxml || decl == part):
		return part
	case ooxml && (decl == typeDOCX || decl == typeXLSX || decl == typePPTX):
		return decl
	}
	return typeZIP
}

// zipMimetype accepts the OpenDocument and EPUB types a "mimetype" entry
// may name, and nothing else: the entry is only text the sender wrote.
func zipMimetype(s string) string {
	switch s {
	case "application/vnd.oasis.opendocument.text",
		"application/vnd.oasis.opendocument.spreadsheet",
		"application/vnd.oasis.opendocument.presentation",
		"application/vnd.oasis.opendocument.graphics",
		"application/epub+zip":
		return s
	}
	return ""
}
