package imaging

import (
	"fmt"
	"strings"
)

// Kind is what a client says it is sending. It decides which content
// types are accepted (Kind.Accepts) and the default size limit
// (Kind.MaxSize); the bytes decide the content type (Sniff).
type Kind uint8

// The kinds of media. The zero Kind is invalid, so that a forgotten field
// is refused rather than taken for one of them.
const (
	Image Kind = iota + 1
	Video
	Audio
	Document
	Sticker
)

// Default size limits per kind, in bytes. The upload handler makes them
// settings; these are the values it starts from.
const (
	MaxImageSize    int64 = 16 << 20
	MaxVideoSize    int64 = 64 << 20
	MaxAudioSize    int64 = 64 << 20
	MaxDocumentSize int64 = 100 << 20
	MaxStickerSize  int64 = 500 << 10
)

// ParseKind maps a kind's name ("image", "video", "audio", "document",
// "sticker") to the Kind; anything else is an error wrapping
// ErrUnknownKind.
func ParseKind(s string) (Kind, error) {
	for k := Image; k <= Sticker; k++ {
		if k.String() == s {
			return k, nil
		}
	}
	return 0, fmt.Errorf("%w: %q", ErrUnknownKind, s)
}

// String returns the kind's name as ParseKind takes it.
func (k Kind) String() string {
	switch k {
	case Image:
		return "image"
	case Video:
		return "video"
	case Audio:
		return "audio"
	case Document:
		return "document"
	case Sticker:
		return "sticker"
	}
	return fmt.Sprintf("Kind(%d)", uint8(k))
}

func (k Kind) valid() bool { return k >= Image && k <= Sticker }

// MaxSize returns the default size limit of the kind, 0 for an invalid
// kind.
func (k Kind) MaxSize() int64 {
	switch k {
	case Image:
		return MaxImageSize
	case Video:
		return MaxVideoSize
	case Audio:
		return MaxAudioSize
	case Document:
		return MaxDocumentSize
	case Sticker:
		return MaxStickerSize
	}
	return 0
}

// AcceptedTypes lists the content types the kind accepts (without
// parameters), in a new slice; nil for Document, which accepts every
// type, and for an invalid kind.
//
// Image leaves out HEIC/HEIF and AVIF on purpose (see the package
// documentation); Image and Sticker take only what Process handles.
func (k Kind) AcceptedTypes() []string {
	switch k {
	case Image:
		return []string{typeJPEG, typePNG, typeGIF, typeWebP}
	case Sticker:
		return []string{typeWebP, typePNG}
	case Video:
		return []string{typeMP4, typeQuickTime, typeWebM, type3GPP, type3GPP2}
	case Audio:
		return []string{typeMPEG, typeAudioMP4, typeAAC, typeOgg, typeAMR, typeAMRWB, typeAudioWebM, typeAudio3GPP}
	}
	return nil
}

// Accepts reports whether the kind takes content of type t (parameters
// such as "; codecs=opus" are ignored).
func (k Kind) Accepts(t string) bool {
	if k == Document {
		return true
	}
	t = baseType(t)
	for _, a := range k.AcceptedTypes() {
		if a == t {
			return true
		}
	}
	return false
}

// baseType is t without parameters, lower case and trimmed.
func baseType(t string) string {
	if i := strings.IndexByte(t, ';'); i >= 0 {
		t = t[:i]
	}
	return strings.ToLower(strings.TrimSpace(t))
}
