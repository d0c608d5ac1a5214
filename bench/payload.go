package bench

import (
	"encoding/binary"
	"errors"
	"io"
	"math/rand/v2"
)

// Media mode's files are cut from one pool of random bytes: chunk k of
// file i is payloadChunk bytes of the pool at an offset picked by a hash
// of (run seed, i, k). Generating every byte afresh (ChaCha8: ~700 MiB/s
// on the project's machine) would cost the bench as much CPU as the
// transfer it measures, on the cores it shares with the server; copying
// from the pool costs next to nothing. The files are still incompressible
// and distinct from each other: nothing on the path (HTTP, the media
// stores) deduplicates or compresses across 64 KiB chunks of a 4 MiB pool.
const (
	payloadPoolSize = 4 << 20
	payloadChunk    = 64 << 10
)

// payloadSource is the pool of one run.
type payloadSource struct {
	pool []byte
	seed uint64
}

func newPayloadSource(seed uint64) *payloadSource {
	var key [32]byte
	binary.LittleEndian.PutUint64(key[:], seed)
	pool := make([]byte, payloadPoolSize)
	_, _ = rand.NewChaCha8(key).Read(pool) // never fails
	return &payloadSource{pool: pool, seed: seed}
}

// file returns a reader of file i, size bytes long. Two readers of the
// same file yield the same bytes, so the bench hashes a file before the
// timed upload and sends it without holding it.
func (s *payloadSource) file(i int, size int64) *payload {
	return &payload{src: s, file: uint64(i), size: size}
}

// payload reads one file. Besides Read it has Len, so the SDK sends a
// Content-Length (as an app uploading a file of known size does, and the
// server can refuse a file over its limit before reading it), and Seek,
// so the SDK can send it again after refreshing an expired token.
type payload struct {
	src       *payloadSource
	file      uint64
	size, pos int64
}

// splitmix64 is a fast, well-mixing hash of one word.
func splitmix64(x uint64) uint64 {
	x += 0x9e3779b97f4a7c15
	x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9
	x = (x ^ (x >> 27)) * 0x94d049bb133111eb
	return x ^ (x >> 31)
}

// chunkStart is where chunk k of the file starts in the pool. It is a
// function of the position only, so that any position can be read again.
func (p *payload) chunkStart(k int64) int {
	x := splitmix64(p.src.seed ^ splitmix64(p.file<<32^uint64(k)))
	return int(x % uint64(len(p.src.pool)-payloadChunk+1))
}

func (p *payload) Read(b []byte) (int, error) {
	if p.pos >= p.size {
		return 0, io.EOF
	}
	n := 0
	for n < len(b) && p.pos < p.size {
		k, off := p.pos/payloadChunk, p.pos%payloadChunk
		want := min(payloadChunk-off, p.size-p.pos, int64(len(b)-n))
		start := p.chunkStart(k) + int(off)
		c := copy(b[n:], p.src.pool[start:start+int(want)])
		n += c
		p.pos += int64(c)
	}
	return n, nil
}

// Len is the number of bytes left to read.
func (p *payload) Len() int { return int(max(p.size-p.pos, 0)) }

func (p *payload) Seek(offset int64, whence int) (int64, error) {
	switch whence {
	case io.SeekStart:
	case io.SeekCurrent:
		offset += p.pos
	case io.SeekEnd:
		offset += p.size
	default:
		return p.pos, errors.New("payload: bad whence")
	}
	if offset < 0 {
		return p.pos, errors.New("payload: seek before the start")
	}
	p.pos = offset
	return offset, nil
}
