package s3

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"strings"
	"testing"
	"testing/iotest"
)

var errFail = errors.New("reader failed on purpose")

type failReader struct{}

func (failReader) Read([]byte) (int, error) { return 0, errFail }

// gen yields n pseudo-random bytes from seed, made as they are read, and
// offers Read only.
type gen struct {
	src  *rand.ChaCha8
	left int64
}

func newGen(seed byte, n int64) *gen {
	return &gen{src: rand.NewChaCha8([32]byte{seed}), left: n}
}

func (g *gen) Read(p []byte) (int, error) {
	if g.left <= 0 {
		return 0, io.EOF
	}
	if int64(len(p)) > g.left {
		p = p[:g.left]
	}
	n, _ := g.src.Read(p)
	g.left -= int64(n)
	return n, nil
}

// sameBytes compares two streams without holding them in memory.
func sameBytes(want, got io.Reader) error {
	w, g := make([]byte, 64<<10), make([]byte, 64<<10)
	var off int64
	for {
		nw, errW := io.ReadFull(want, w)
		ng, errG := io.ReadFull(got, g)
		if errW != nil && errW != io.EOF && errW != io.ErrUnexpectedEOF {
			return errW
		}
		if errG != nil && errG != io.EOF && errG != io.ErrUnexpectedEOF {
			return fmt.Errorf("reading the object after offset %d: %w", off, errG)
		}
		if nw != ng || !bytes.Equal(w[:nw], g[:ng]) {
			return fmt.Errorf("the object differs from what was put within [%d, %d)", off, off+int64(max(nw, ng)))
		}
		if nw < len(w) {
			return nil
		}
		off += int64(nw)
	}
}

// TestExactReader checks the promise Put relies on: bytes and an error
// never come together, the last bytes come only once the reader is known
// to end there, and a wrong length or a failure is an error.
func TestExactReader(t *testing.T) {
	data := "0123456789"
	for _, c := range []struct {
		name string
		r    func() io.Reader
		size int64
		want error // nil: the reader is exact
	}{
		{"exact", func() io.Reader { return strings.NewReader(data) }, 10, nil},
		{"exact, EOF with the data", func() io.Reader { return iotest.DataErrReader(strings.NewReader(data)) }, 10, nil},
		{"exact, a byte at a time", func() io.Reader { return iotest.OneByteReader(strings.NewReader(data)) }, 10, nil},
		{"empty", func() io.Reader { return strings.NewReader("") }, 0, nil},
		{"short", func() io.Reader { return strings.NewReader(data) }, 11, io.ErrUnexpectedEOF},
		{"short, EOF with the data", func() io.Reader { return iotest.DataErrReader(strings.NewReader(data)) }, 11, io.ErrUnexpectedEOF},
		{"long", func() io.Reader { return strings.NewReader(data) }, 9, errTooLong},
		{"long, by a byte", func() io.Reader { return iotest.OneByteReader(strings.NewReader(data)) }, 9, errTooLong},
		{"long, from none", func() io.Reader { return strings.NewReader(data) }, 0, errTooLong},
		{"failing", func() io.Reader { return io.MultiReader(strings.NewReader(data), failReader{}) }, 12, errFail},
		{"failing at the end", func() io.Reader { return io.MultiReader(strings.NewReader(data), failReader{}) }, 10, errFail},
		{"failing midway", func() io.Reader {
			return iotest.TimeoutReader(iotest.OneByteReader(strings.NewReader(data)))
		}, 2, iotest.ErrTimeout},
	} {
		for _, bufSize := range []int{1, 3, 10, 64} {
			e := &exactReader{r: c.r(), left: c.size, size: c.size}
			var got []byte
			var err error
			buf := make([]byte, bufSize)
			for range 100 {
				var n int
				n, err = e.Read(buf)
				if n > 0 && err != nil && err != io.EOF {
					t.Errorf("%s, buffer %d: Read returned %d bytes with %v", c.name, bufSize, n, err)
				}
				got = append(got, buf[:n]...)
				if err != nil {
					break
				}
			}
			switch {
			case c.want == nil && err != io.EOF:
				t.Errorf("%s, buffer %d: ended with %v, want io.EOF", c.name, bufSize, err)
			case c.want == nil && string(got) != data[:c.size]:
				t.Errorf("%s, buffer %d: read %q", c.name, bufSize, got)
			case c.want != nil && !errors.Is(err, c.want):
				t.Errorf("%s, buffer %d: ended with %v, want %v", c.name, bufSize, err, c.want)
			case c.want != nil && c.size > 0 && int64(len(got)) >= c.size:
				t.Errorf("%s, buffer %d: passed on all %d bytes before failing", c.name, bufSize, len(got))
			case c.want != nil && !errors.Is(e.err, c.want):
				t.Errorf("%s, buffer %d: kept error %v, want %v", c.name, bufSize, e.err, c.want)
			}
		}
	}
}

// failAt is an io.ReaderAt of data that fails at offsets from at on.
type failAt struct {
	data string
	at   int64
}

func (f failAt) ReadAt(p []byte, off int64) (int, error) {
	if off+int64(len(p)) > f.at {
		return 0, errFail
	}
	return strings.NewReader(f.data).ReadAt(p, off)
}

// TestExactReaderAt checks exactReaderAt as minio-go reads it, through
// io.SectionReaders: the same promise as exactReader's, from base, and
// the first failure cancels the upload and stays.
func TestExactReaderAt(t *testing.T) {
	data := "0123456789"
	for _, c := range []struct {
		name       string
		r          io.ReaderAt
		base, size int64
		want       error // nil: the reader is exact
	}{
		{"exact", strings.NewReader(data), 0, 10, nil},
		{"exact, from an offset", strings.NewReader(data), 3, 7, nil},
		{"exact, a section", io.NewSectionReader(strings.NewReader(data), 2, 5), 0, 5, nil},
		{"empty", strings.NewReader(""), 0, 0, nil},
		{"empty, at the end", strings.NewReader(data), 10, 0, nil},
		{"short", strings.NewReader(data), 0, 11, io.ErrUnexpectedEOF},
		{"short, from an offset", strings.NewReader(data), 3, 8, io.ErrUnexpectedEOF},
		{"short, a section", io.NewSectionReader(strings.NewReader(data), 2, 5), 0, 6, io.ErrUnexpectedEOF},
		{"long", strings.NewReader(data), 0, 9, errTooLong},
		{"long, from an offset", strings.NewReader(data), 3, 6, errTooLong},
		{"long, from none", strings.NewReader(data), 0, 0, errTooLong},
		{"failing midway", failAt{data, 4}, 0, 10, errFail},
		{"failing past the end", failAt{data, 10}, 0, 10, errFail},
	} {
		for _, bufSize := range []int{1, 3, 10, 64} {
			canceled := false
			e := &exactReaderAt{r: c.r, base: c.base, size: c.size, cancel: func() { canceled = true }}
			var got []byte
			var err error
			if c.size == 0 {
				err = e.atEnd()
				if err == nil {
					err = io.EOF
				}
			}
			sr := io.NewSectionReader(e, 0, c.size)
			buf := make([]byte, bufSize)
			for range 100 {
				if err != nil {
					break
				}
				var n int
				n, err = sr.Read(buf)
				if n > 0 && err != nil && err != io.EOF {
					t.Errorf("%s, buffer %d: Read returned %d bytes with %v", c.name, bufSize, n, err)
				}
				got = append(got, buf[:n]...)
			}
			whole := data[min(c.base, int64(len(data))):]
			if s, ok := c.r.(*io.SectionReader); ok {
				b := make([]byte, s.Size())
				_, _ = s.ReadAt(b, 0)
				whole = string(b)
			}
			switch {
			case c.want == nil && err != io.EOF:
				t.Errorf("%s, buffer %d: ended with %v, want io.EOF", c.name, bufSize, err)
			case c.want == nil && string(got) != whole[:c.size]:
				t.Errorf("%s, buffer %d: read %q", c.name, bufSize, got)
			case c.want == nil && canceled:
				t.Errorf("%s, buffer %d: canceled the upload", c.name, bufSize)
			case c.want != nil && !errors.Is(err, c.want):
				t.Errorf("%s, buffer %d: ended with %v, want %v", c.name, bufSize, err, c.want)
			case c.want != nil && c.size > 0 && int64(len(got)) >= c.size:
				t.Errorf("%s, buffer %d: passed on all %d bytes before failing", c.name, bufSize, len(got))
			case c.want != nil && !canceled:
				t.Errorf("%s, buffer %d: failed without canceling the upload", c.name, bufSize)
			case c.want != nil && !errors.Is(e.failure(), c.want):
				t.Errorf("%s, buffer %d: kept error %v, want %v", c.name, bufSize, e.failure(), c.want)
			}
			// A retry, as minio-go makes, gets the failure again at once.
			if c.want != nil && c.size > 0 {
				if n, err := e.ReadAt(buf, 0); n != 0 || !errors.Is(err, c.want) {
					t.Errorf("%s, buffer %d: ReadAt after the failure = %d, %v", c.name, bufSize, n, err)
				}
			}
		}
	}
}
