package imaging

import (
	"fmt"
	"image"
	"image/gif"
	"image/jpeg"
	"image/png"
	"io"

	"golang.org/x/image/webp"
)

// Defaults of Options.
const (
	// DefaultMaxPixels lets through 48-megapixel phone photos and refuses
	// what would take more than a few hundred MB to decode.
	DefaultMaxPixels = 50_000_000
	// DefaultThumbnailSide is the longer side of a thumbnail, in pixels.
	DefaultThumbnailSide = 320
	// DefaultThumbnailQuality makes a photo's 320-pixel thumbnail 3 to
	// 12 KiB, 7 KiB typically: a preview that loads at once, not a copy
	// of the photo.
	DefaultThumbnailQuality = 60
	// DefaultQuality is for a JPEG encoded again to turn it upright: high
	// enough that the loss does not show.
	DefaultQuality = 90
)

// Options tune Process. The zero value gives the defaults.
type Options struct {
	// MaxPixels refuses, before decoding, an image whose header claims
	// more pixels (width × height of the picture, and of any frame). 0
	// means DefaultMaxPixels.
	MaxPixels int64
	// ThumbnailSide bounds the thumbnail's longer side; 0 means
	// DefaultThumbnailSide.
	ThumbnailSide int
	// ThumbnailQuality is the thumbnail's JPEG quality, 1 to 100; 0 means
	// DefaultThumbnailQuality.
	ThumbnailQuality int
	// Quality is the JPEG quality of a JPEG encoded again to apply its
	// EXIF orientation, 1 to 100; 0 means DefaultQuality.
	Quality int
}

func (o Options) withDefaults() Options {
	if o.MaxPixels <= 0 {
		o.MaxPixels = DefaultMaxPixels
	}
	if o.ThumbnailSide <= 0 {
		o.ThumbnailSide = DefaultThumbnailSide
	}
	if o.ThumbnailQuality <= 0 {
		o.ThumbnailQuality = DefaultThumbnailQuality
	}
	if o.Quality <= 0 {
		o.Quality = DefaultQuality
	}
	return o
}

// Result describes what Process wrote.
type Result struct {
	// Width and Height are the picture's size as displayed, with its EXIF
	// orientation applied (the canvas of an animation).
	Width, Height int
	// Size is the number of bytes written.
	Size int64
	// Thumbnail is a JPEG of the picture (the first frame of an
	// animation) as displayed, its longer side at most ThumbnailSide and
	// never larger than the picture; transparency is shown on white.
	Thumbnail []byte
	// Reencoded says the picture was decoded and encoded again, to turn
	// it upright by its EXIF orientation (a JPEG at Options.Quality, a PNG
	// losslessly), rather than copied with its metadata cut out.
	Reencoded bool
}

// Process writes to w the image of size bytes in r, of content type
// contentType (as Sniff reported it: image/jpeg, image/png, image/webp or
// image/gif; any other is a *TypeError), as others may download it, and
// makes its thumbnail.
//
// What is written shows the same picture without the metadata that says
// where and when and with what it was taken (EXIF with GPS, XMP, IPTC,
// comments, text chunks): JPEG, PNG and WebP lose those blocks and keep
// their image data byte for byte; GIF, which has no EXIF, is copied as
// it is. A JPEG or PNG whose EXIF orientation is not 1 is encoded again
// with the orientation applied, as clients that ignore the tag would
// otherwise show it sideways.
//
// Nothing is decoded before the header's size is checked against
// Options.MaxPixels (a *PixelLimitError), and nothing is written before
// the whole file has been checked and decoded; a file that is not a valid
// image of its type is an ErrInvalidImage. An error while writing leaves
// part of the output in w. Errors reading r or writing w are returned as
// they are, wrapped.
func Process(w io.Writer, r io.ReaderAt, size int64, contentType string, opt Options) (Result, error) {
	opt = opt.withDefaults()
	in := &readRecorder{r: r}
	out := &countWriter{w: w}
	var res Result
	var err error
	switch baseType(contentType) {
	case typeJPEG:
		res, err = processJPEG(out, in, size, opt)
	case typePNG:
		res, err = processPNG(out, in, size, opt)
	case typeWebP:
		res, err = processWebP(out, in, size, opt)
	case typeGIF:
		res, err = processGIF(out, in, size, opt)
	default:
		return Result{}, &TypeError{Type: contentType}
	}
	switch {
	case in.err != nil:
		return Result{}, fmt.Errorf("imaging: reading the image: %w", in.err)
	case out.err != nil:
		return Result{}, fmt.Errorf("imaging: writing the image: %w", out.err)
	case err != nil:
		return Result{}, err
	}
	res.Size = out.n
	return res, nil
}

func processJPEG(w io.Writer, r io.ReaderAt, size int64, opt Options) (Result, error) {
	cfg, err := jpeg.DecodeConfig(io.NewSectionReader(r, 0, size))
	if err != nil {
		return Result{}, invalid("JPEG", err)
	}
	if err := checkPixels(cfg.Width, cfg.Height, opt.MaxPixels); err != nil {
		return Result{}, err
	}
	info, err := planJPEG(r, size)
	if err != nil {
		return Result{}, invalid("JPEG", err)
	}
	img, err := jpeg.Decode(io.NewSectionReader(r, 0, size))
	if err != nil {
		return Result{}, invalid("JPEG", err)
	}
	o := info.orientation
	img = orient(img, o)
	res, err := result(img, opt)
	if err != nil {
		return Result{}, err
	}
	if o == 1 {
		return res, info.plan.writeTo(w, r)
	}
	res.Reencoded = true
	// The ICC profile goes along if it still describes the colours: the
	// encoder writes grey as grey and anything else as YCbCr made from
	// RGB, which a CMYK profile does not describe.
	var keepICC bool
	switch img.(type) {
	case *image.Gray:
		keepICC = info.iccSpace == "GRAY"
	case *image.YCbCr, *image.NRGBA:
		keepICC = info.iccSpace == "RGB "
	}
	if _, err := w.Write([]byte{0xff, mSOI}); err != nil {
		return Result{}, err
	}
	if keepICC {
		buf := make([]byte, 32<<10)
		for _, pc := range info.icc {
			if err := copySpan(w, r, pc.off, pc.n, buf); err != nil {
				return Result{}, err
			}
		}
	}
	return res, jpeg.Encode(&skipWriter{w: w, skip: 2}, img, &jpeg.Options{Quality: opt.Quality})
}

func processPNG(w io.Writer, r io.ReaderAt, size int64, opt Options) (Result, error) {
	cfg, err := png.DecodeConfig(io.NewSectionReader(r, 0, size))
	if err != nil {
		return Result{}, invalid("PNG", err)
	}
	if err := checkPixels(cfg.Width, cfg.Height, opt.MaxPixels); err != nil {
		return Result{}, err
	}
	info, err := planPNG(r, size)
	if err != nil {
		return Result{}, invalid("PNG", err)
	}
	img, err := png.Decode(io.NewSectionReader(r, 0, size))
	if err != nil {
		return Result{}, invalid("PNG", err)
	}
	o := info.orientation
	if info.animated {
		// Encoding again would keep only the first frame: an APNG stays
		// as stored, like a browser that ignores its eXIf shows it.
		o = 1
	}
	img = orient(img, o)
	res, err := result(img, opt)
	if err != nil {
		return Result{}, err
	}
	if o == 1 {
		return res, info.plan.writeTo(w, r)
	}
	res.Reencoded = true
	// The chunks that say how to show the colours go right after the
	// encoder's IHDR (the signature and IHDR are its first 33 bytes). An
	// ICC profile only fits if grey stays grey: grey with alpha decodes
	// to NRGBA and is written as colour.
	var outGray bool
	switch img.(type) {
	case *image.Gray, *image.Gray16:
		outGray = true
	}
	iw := &insertWriter{w: w, at: 33, insert: func(w io.Writer) error {
		buf := make([]byte, 32<<10)
		for _, pc := range info.color {
			var typ [4]byte
			if err := readAt(r, size, typ[:], pc.off+4); err != nil {
				return err
			}
			if string(typ[:]) == "iCCP" && info.gray != outGray {
				continue
			}
			if err := copySpan(w, r, pc.off, pc.n, buf); err != nil {
				return err
			}
		}
		return nil
	}}
	enc := png.Encoder{CompressionLevel: png.DefaultCompression}
	if err := enc.Encode(iw, img); err != nil {
		return Result{}, err
	}
	return res, iw.flush()
}

func processWebP(w io.Writer, r io.ReaderAt, size int64, opt Options) (Result, error) {
	info, err := planWebP(r, size)
	if err != nil {
		return Result{}, invalid("WebP", err)
	}
	if err := checkPixels(info.width, info.height, opt.MaxPixels); err != nil {
		return Result{}, err
	}
	if info.maxFrame > opt.MaxPixels {
		return Result{}, &PixelLimitError{Width: info.width, Height: info.height, Limit: opt.MaxPixels}
	}
	canvas := image.Rect(0, 0, info.width, info.height)
	var img image.Image
	at := image.Point{}
	if info.animated {
		fr, err := info.firstFrame(r, size)
		if err != nil {
			return Result{}, invalid("WebP", err)
		}
		if img, err = webp.Decode(fr); err != nil {
			return Result{}, invalid("WebP first frame", err)
		}
		at = info.frame.Min
	} else if img, err = webp.Decode(io.NewSectionReader(r, 0, size)); err != nil {
		return Result{}, invalid("WebP", err)
	}
	if !img.Bounds().Sub(img.Bounds().Min).Add(at).In(canvas) {
		return Result{}, invalid("WebP", formatError("picture larger than its canvas"))
	}
	thumb, err := thumbnail(img, at, canvas.Size(), info.orientation, opt)
	if err != nil {
		return Result{}, err
	}
	res := Result{Width: info.width, Height: info.height, Thumbnail: thumb}
	if info.orientation >= 5 {
		res.Width, res.Height = res.Height, res.Width
	}
	return res, info.plan.writeTo(w, r)
}

func processGIF(w io.Writer, r io.ReaderAt, size int64, opt Options) (Result, error) {
	cfg, err := gif.DecodeConfig(io.NewSectionReader(r, 0, size))
	if err != nil {
		return Result{}, invalid("GIF", err)
	}
	if err := checkPixels(cfg.Width, cfg.Height, opt.MaxPixels); err != nil {
		return Result{}, err
	}
	// The first frame only: gif.Decode stops there, and the decoder
	// checks that it lies on the logical screen.
	img, err := gif.Decode(io.NewSectionReader(r, 0, size))
	if err != nil {
		return Result{}, invalid("GIF", err)
	}
	b := img.Bounds()
	thumb, err := thumbnail(img, b.Min, image.Pt(cfg.Width, cfg.Height), 1, opt)
	if err != nil {
		return Result{}, err
	}
	res := Result{Width: cfg.Width, Height: cfg.Height, Thumbnail: thumb}
	return res, copySpan(w, r, 0, size, make([]byte, 32<<10))
}

// result describes a decoded, upright picture and makes its thumbnail.
func result(img image.Image, opt Options) (Result, error) {
	b := img.Bounds()
	thumb, err := thumbnail(img, image.Point{}, b.Size(), 1, opt)
	if err != nil {
		return Result{}, err
	}
	return Result{Width: b.Dx(), Height: b.Dy(), Thumbnail: thumb}, nil
}

func checkPixels(w, h int, limit int64) error {
	if w <= 0 || h <= 0 {
		return invalid("empty picture", nil)
	}
	if int64(w)*int64(h) > limit {
		return &PixelLimitError{Width: w, Height: h, Limit: limit}
	}
	return nil
}

// readRecorder keeps the first error of r other than io.EOF, so that a
// failing disk is not reported as a broken image.
type readRecorder struct {
	r   io.ReaderAt
	err error
}

func (rr *readRecorder) ReadAt(p []byte, off int64) (int, error) {
	n, err := rr.r.ReadAt(p, off)
	if err != nil && err != io.EOF && rr.err == nil {
		rr.err = err
	}
	return n, err
}

// countWriter counts what reaches w and keeps its first error.
type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	if err != nil && c.err == nil {
		c.err = err
	}
	return n, err
}

// skipWriter drops the first skip bytes written to it: the SOI of an
// encoder's output, written earlier with segments after it.
type skipWriter struct {
	w    io.Writer
	skip int
}

func (s *skipWriter) Write(p []byte) (int, error) {
	n := len(p)
	k := min(s.skip, n)
	s.skip -= k
	if k == n {
		return n, nil
	}
	if _, err := s.w.Write(p[k:]); err != nil {
		return 0, err
	}
	return n, nil
}

// insertWriter passes writes to w and calls insert once at bytes into
// them.
type insertWriter struct {
	w      io.Writer
	at     int64
	n      int64
	insert func(io.Writer) error
	done   bool
}

func (iw *insertWriter) Write(p []byte) (int, error) {
	if iw.done || iw.n+int64(len(p)) < iw.at {
		n, err := iw.w.Write(p)
		iw.n += int64(n)
		return n, err
	}
	k := int(iw.at - iw.n)
	if _, err := iw.w.Write(p[:k]); err != nil {
		return 0, err
	}
	iw.n += int64(k)
	if err := iw.flush(); err != nil {
		return k, err
	}
	n, err := iw.w.Write(p[k:])
	iw.n += int64(n)
	return k + n, err
}

// flush inserts now if that has not happened yet (output shorter than
// at).
func (iw *insertWriter) flush() error {
	if iw.done {
		return nil
	}
	iw.done = true
	return iw.insert(iw.w)
}
