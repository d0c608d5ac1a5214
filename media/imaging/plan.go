package imaging

import (
	"bufio"
	"io"
)

// A plan is the output of a lossless rewrite: spans of the input and a
// few bytes made here, in order. Making one reads the input through and
// checks its structure, so that nothing is written for a file that turns
// out to be malformed, and writing it copies the spans without holding
// the file in memory.
type plan struct {
	pieces []piece
	size   int64
}

// piece is a span of the input (lit nil) or literal bytes.
type piece struct {
	off, n int64
	lit    []byte
}

// maxPieces bounds a plan's length. Adjacent spans merge, so a plan only
// grows where something is dropped or made; a file needs thousands of
// metadata blocks between its image data to reach this, and would
// otherwise cost memory in proportion to its size.
const maxPieces = 4096

// formatError is a structural fault in a file being rewritten.
type formatError string

func (e formatError) Error() string { return string(e) }

const errTooManyPieces = formatError("too many metadata blocks")

func (p *plan) span(off, n int64) error {
	if n == 0 {
		return nil
	}
	p.size += n
	if k := len(p.pieces); k > 0 && p.pieces[k-1].lit == nil && p.pieces[k-1].off+p.pieces[k-1].n == off {
		p.pieces[k-1].n += n
		return nil
	}
	if len(p.pieces) >= maxPieces {
		return errTooManyPieces
	}
	p.pieces = append(p.pieces, piece{off: off, n: n})
	return nil
}

func (p *plan) literal(b []byte) error {
	if len(p.pieces) >= maxPieces {
		return errTooManyPieces
	}
	p.size += int64(len(b))
	p.pieces = append(p.pieces, piece{lit: b})
	return nil
}

// writeTo writes the planned output to w, reading spans from r.
func (p *plan) writeTo(w io.Writer, r io.ReaderAt) error {
	buf := make([]byte, 32<<10)
	for _, pc := range p.pieces {
		if pc.lit != nil {
			if _, err := w.Write(pc.lit); err != nil {
				return err
			}
			continue
		}
		if err := copySpan(w, r, pc.off, pc.n, buf); err != nil {
			return err
		}
	}
	return nil
}

// copySpan copies n bytes at off from r to w. The bytes were there when
// the plan was made: a short read now is the reader's fault.
func copySpan(w io.Writer, r io.ReaderAt, off, n int64, buf []byte) error {
	got, err := io.CopyBuffer(w, io.NewSectionReader(r, off, n), buf)
	if err == nil && got != n {
		err = io.ErrUnexpectedEOF
	}
	return err
}

// cursor reads a file front to back, knowing where it is. Running out
// of bytes is a format error (the file is truncated); any other read
// error is the reader's and is passed on.
type cursor struct {
	br  *bufio.Reader
	pos int64
}

const errTruncated = formatError("truncated")

func newCursor(r io.ReaderAt, size int64) *cursor {
	return &cursor{br: bufio.NewReaderSize(io.NewSectionReader(r, 0, size), 64<<10)}
}

func eofIsTruncated(err error) error {
	if err == io.EOF || err == io.ErrUnexpectedEOF {
		return errTruncated
	}
	return err
}

func (c *cursor) byte() (byte, error) {
	b, err := c.br.ReadByte()
	if err != nil {
		return 0, eofIsTruncated(err)
	}
	c.pos++
	return b, nil
}

func (c *cursor) unreadByte() {
	if c.br.UnreadByte() == nil {
		c.pos--
	}
}

func (c *cursor) full(b []byte) error {
	n, err := io.ReadFull(c.br, b)
	c.pos += int64(n)
	return eofIsTruncated(err)
}

func (c *cursor) skip(n int64) error {
	for n > 0 {
		k := int(min(n, 1<<30))
		d, err := c.br.Discard(k)
		c.pos += int64(d)
		n -= int64(d)
		if err != nil {
			return eofIsTruncated(err)
		}
	}
	return nil
}

// hashNext feeds the next n bytes to h, a hash (whose Write never
// fails), without copying them elsewhere.
func (c *cursor) hashNext(h io.Writer, n int64) error {
	for n > 0 {
		b, err := c.br.Peek(int(min(n, int64(c.br.Size()))))
		h.Write(b)
		d, _ := c.br.Discard(len(b))
		c.pos += int64(d)
		n -= int64(d)
		if err != nil && n > 0 {
			return eofIsTruncated(err)
		}
	}
	return nil
}

// readAt fills b from r at off. Bytes beyond size are a format error (the
// file is truncated); a failing read within it is the reader's error.
func readAt(r io.ReaderAt, size int64, b []byte, off int64) error {
	if off < 0 || off > size || int64(len(b)) > size-off {
		return errTruncated
	}
	n, err := r.ReadAt(b, off)
	if n == len(b) {
		return nil
	}
	if err == nil || err == io.EOF {
		return errTruncated
	}
	return err
}
