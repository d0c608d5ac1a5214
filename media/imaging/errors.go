package imaging

import (
	"errors"
	"fmt"
	"strings"
)

// Errors a caller tells apart with errors.Is. Each is meant for the
// client that sent the file; any other error from this package (a failed
// read or write) is the server's.
var (
	// ErrUnsupportedType: the content is not of a type the kind accepts,
	// or not one Process handles (HTTP 415). The error is a *TypeError.
	ErrUnsupportedType = errors.New("unsupported media type")
	// ErrTooManyPixels: an image's header claims more pixels than allowed
	// (HTTP 413 or 422). The error is a *PixelLimitError.
	ErrTooManyPixels = errors.New("image has too many pixels")
	// ErrInvalidImage: the file says it is an image of a type Process
	// handles but cannot be read as one (HTTP 422 or 415).
	ErrInvalidImage = errors.New("invalid image")
	// ErrUnknownKind: a Kind or kind name that is none of the five.
	ErrUnknownKind = errors.New("unknown media kind")
)

// TypeError says what the content really is and why it was refused.
type TypeError struct {
	Kind     Kind   // the kind it was sent as; 0 when Process refused it
	Type     string // the sniffed content type
	Declared string // the type the client declared, if any
}

func (e *TypeError) Error() string {
	var b strings.Builder
	if e.Kind == 0 {
		fmt.Fprintf(&b, "imaging: %s cannot be processed as an image", e.Type)
	} else {
		fmt.Fprintf(&b, "imaging: %s is not accepted as %s", e.Type, e.Kind)
		if a := e.Kind.AcceptedTypes(); a != nil {
			fmt.Fprintf(&b, " (accepted: %s)", strings.Join(a, ", "))
		}
	}
	if e.Declared != "" && baseType(e.Declared) != baseType(e.Type) {
		fmt.Fprintf(&b, "; declared as %s", e.Declared)
	}
	return b.String()
}

// Unwrap makes errors.Is(err, ErrUnsupportedType) hold.
func (e *TypeError) Unwrap() error { return ErrUnsupportedType }

// PixelLimitError reports an image refused for its size in pixels before
// it was decoded.
type PixelLimitError struct {
	Width, Height int
	Limit         int64
}

func (e *PixelLimitError) Error() string {
	return fmt.Sprintf("imaging: image of %d×%d pixels is over the limit of %d pixels", e.Width, e.Height, e.Limit)
}

// Unwrap makes errors.Is(err, ErrTooManyPixels) hold.
func (e *PixelLimitError) Unwrap() error { return ErrTooManyPixels }

// invalid makes an ErrInvalidImage saying what is wrong, keeping the
// decoder's error (if any) as a cause.
func invalid(what string, cause error) error {
	if cause == nil {
		return fmt.Errorf("imaging: %w: %s", ErrInvalidImage, what)
	}
	return fmt.Errorf("imaging: %w: %s: %w", ErrInvalidImage, what, cause)
}
