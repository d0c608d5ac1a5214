package s3

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/minio/minio-go/v7"
	"github.com/minio/minio-go/v7/pkg/credentials"
	"github.com/minio/minio-go/v7/pkg/s3utils"

	"github.com/tern-im/tern/media"
)

const (
	// DefaultRegion is the region when Options.Region is empty; S3
	// servers that have no regions (MinIO, versitygw) accept it.
	DefaultRegion = "us-east-1"

	// partSize is the part of a multipart upload, and so the most a Put
	// of a plain io.Reader holds in memory; the package doc says why
	// 16 MiB.
	partSize = 16 << 20

	// partUploads is how many parts of an io.ReaderAt go up at once
	// (minio-go's default, set here so the bound is ours). Each holds a
	// connection and some 0.5 MiB, not a part: a 64 MiB Put of a file
	// peaked at 2.4 MiB of live heap with 4 (0.9 with 1), against 17 MiB
	// for a plain reader, whatever the part size.
	partUploads = 4

	// MinURLTTL and MaxURLTTL bound the lifetime of a presigned URL, as
	// S3 does; URL clamps its ttl into this range.
	MinURLTTL = time.Second
	MaxURLTTL = 7 * 24 * time.Hour
)

// Options configure a Store.
type Options struct {
	// Endpoint is the S3 server's URL, scheme and host only:
	// "https://s3.eu-west-1.amazonaws.com", "http://127.0.0.1:9000".
	// Presigned URLs point at it, so clients must be able to reach it.
	Endpoint string
	// AccessKey and SecretKey are the credentials Tern signs with.
	AccessKey string
	SecretKey string
	// Region is the bucket's region; "" means DefaultRegion.
	Region string
	// Bucket holds the files; Open creates it if it does not exist.
	Bucket string
	// Prefix, if set, goes before every key ("tern/media" puts key "a/b"
	// at object "tern/media/a/b"), so that Tern can share a bucket. It
	// follows the rules of media.ValidKey; slashes around it are dropped.
	Prefix string
}

// Store is a media.Store on an S3 bucket. Its methods are safe for
// concurrent use.
type Store struct {
	client    *minio.Client
	transport *http.Transport
	bucket    string
	prefix    string // "" or ending in '/'
	partSize  uint64 // partSize; tests make it smaller
}

var _ media.Store = (*Store)(nil)

// Open connects to the bucket opts describes, creating the bucket if it
// does not exist yet. The Store's connections live until Close.
func Open(ctx context.Context, opts Options) (*Store, error) {
	endpoint, secure, err := parseEndpoint(opts.Endpoint)
	if err != nil {
		return nil, err
	}
	if opts.AccessKey == "" || opts.SecretKey == "" {
		return nil, errors.New("media/s3: AccessKey and SecretKey are required")
	}
	if err := s3utils.CheckValidBucketNameStrict(opts.Bucket); err != nil {
		return nil, fmt.Errorf("media/s3: Bucket %q: %w", opts.Bucket, err)
	}
	prefix := strings.Trim(opts.Prefix, "/")
	if prefix != "" {
		if !media.ValidKey(prefix) {
			return nil, fmt.Errorf("media/s3: Prefix %q: want the characters of a media key ([a-z0-9_-/])", opts.Prefix)
		}
		prefix += "/"
	}
	region := opts.Region
	if region == "" {
		region = DefaultRegion
	}
	transport, err := minio.DefaultTransport(secure)
	if err != nil {
		return nil, fmt.Errorf("media/s3: %w", err)
	}
	client, err := minio.New(endpoint, &minio.Options{
		Creds:        credentials.NewStaticV4(opts.AccessKey, opts.SecretKey, ""),
		Secure:       secure,
		Region:       region,
		BucketLookup: minio.BucketLookupPath,
		Transport:    transport,
	})
	if err != nil {
		return nil, fmt.Errorf("media/s3: %w", err)
	}
	s := &Store{client: client, transport: transport, bucket: opts.Bucket, prefix: prefix, partSize: partSize}
	if err := s.ensureBucket(ctx, region); err != nil {
		s.Close()
		return nil, err
	}
	return s, nil
}

// parseEndpoint splits "http(s)://host[:port]" into what minio.New wants.
func parseEndpoint(raw string) (hostport string, secure bool, err error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", false, fmt.Errorf("media/s3: Endpoint: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil ||
		(u.Path != "" && u.Path != "/") || u.RawQuery != "" || u.Fragment != "" {
		return "", false, fmt.Errorf("media/s3: Endpoint %q: want http(s)://host[:port]", raw)
	}
	return u.Host, u.Scheme == "https", nil
}

// ensureBucket creates the bucket unless it exists. Another node may
// create it at the same moment: S3 then answers BucketAlreadyOwnedByYou
// or, on some servers, BucketAlreadyExists, which is also what a bucket
// of another account gets; asking again tells the two apart.
func (s *Store) ensureBucket(ctx context.Context, region string) error {
	ok, err := s.client.BucketExists(ctx, s.bucket)
	if err != nil {
		return fmt.Errorf("media/s3: bucket %q: %w", s.bucket, err)
	}
	if ok {
		return nil
	}
	err = s.client.MakeBucket(ctx, s.bucket, minio.MakeBucketOptions{Region: region})
	switch minio.ToErrorResponse(err).Code {
	case "":
		if err != nil {
			return fmt.Errorf("media/s3: create bucket %q: %w", s.bucket, err)
		}
		return nil
	case minio.BucketAlreadyOwnedByYou:
		return nil
	case minio.BucketAlreadyExists:
		if ok, err2 := s.client.BucketExists(ctx, s.bucket); err2 == nil && ok {
			return nil
		}
	}
	return fmt.Errorf("media/s3: create bucket %q: %w", s.bucket, err)
}

// Close lets go of the idle connections to S3. A Store is not used after
// Close; readers that Open returned must be closed first.
func (s *Store) Close() {
	s.transport.CloseIdleConnections()
}

// object returns the object name of key, or ErrInvalidKey.
func (s *Store) object(op, key string) (string, error) {
	if !media.ValidKey(key) {
		return "", fmt.Errorf("media/s3: %s %q: %w", op, key, media.ErrInvalidKey)
	}
	return s.prefix + key, nil
}

// Put implements media.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error {
	name, err := s.object("put", key)
	if err != nil {
		return err
	}
	if size < 0 {
		return fmt.Errorf("media/s3: put %q: negative size %d", key, size)
	}
	// A reader that failed is not retried: exactReaderAt cancels upload
	// at its first failure, or minio-go would retry the part (it can
	// rewind a ReaderAt body) with backoff, ten times, for seconds. And
	// after a failed part, minio-go's other part workers wait on the
	// context to end; ending it with Put lets them go.
	upload, cancel := context.WithCancel(ctx)
	defer cancel()
	var (
		body    io.Reader
		failure func() error
	)
	if ra, base, ok := readerAt(r); ok {
		// minio-go reads an io.ReaderAt part by part at offsets, with no
		// part buffer (see the package doc); an *io.SectionReader is
		// one it recognises, and it starts at r's position.
		e := &exactReaderAt{r: ra, base: base, size: size, cancel: cancel}
		body, failure = io.NewSectionReader(e, 0, size), e.failure
		if size == 0 {
			_ = e.atEnd() // minio-go sends no body, and so reads nothing
		}
	} else {
		e := &exactReader{r: r, left: size, size: size}
		body, failure = e, func() error { return e.err }
		if size == 0 {
			// minio-go sends no body for an empty object, and so would
			// never read r to find that it is not empty.
			_ = e.atEnd(nil)
		}
	}
	if size == 0 && failure() != nil {
		return fmt.Errorf("media/s3: put %q: %w", key, failure())
	}
	_, err = s.client.PutObject(upload, s.bucket, name, body, size, minio.PutObjectOptions{
		ContentType: contentType,
		PartSize:    s.partSize,
		NumThreads:  partUploads,
	})
	bodyErr := failure()
	switch {
	case err != nil && bodyErr != nil:
		// The reader's own failure says more than the broken request.
		return fmt.Errorf("media/s3: put %q: %w", key, bodyErr)
	case err != nil:
		return fmt.Errorf("media/s3: put %q: %w", key, err)
	case bodyErr != nil:
		// S3 took the object although the reader failed: the client
		// library let an error pass. What is stored is not what the
		// caller meant; take it away rather than serve it.
		if derr := s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, name, minio.RemoveObjectOptions{}); derr != nil {
			return fmt.Errorf("media/s3: put %q: %w (and removing what was stored: %v)", key, bodyErr, derr)
		}
		return fmt.Errorf("media/s3: put %q: %w", key, bodyErr)
	}
	return nil
}

// readerAt returns r as an io.ReaderAt and the offset of its position, if
// it is an io.ReaderAt and an io.Seeker that can tell its position (a
// pipe cannot). Put reads from the position, as it would with Read.
func readerAt(r io.Reader) (io.ReaderAt, int64, bool) {
	ra, ok := r.(io.ReaderAt)
	if !ok {
		return nil, 0, false
	}
	sk, ok := r.(io.Seeker)
	if !ok {
		return nil, 0, false
	}
	pos, err := sk.Seek(0, io.SeekCurrent)
	if err != nil {
		return nil, 0, false
	}
	return ra, pos, true
}

// errTooLong is what exactReader and exactReaderAt return for a reader
// longer than size.
var errTooLong = errors.New("reader has more bytes than size")

// exactReader passes on the size bytes of r and fails if r has fewer or
// more, or fails itself, in such a way that S3 never gets a whole body
// from a bad reader: it never returns bytes together with an error, and it
// returns the last bytes only once it has seen that r ends there. A body
// that falls short of its Content-Length (or, on plain HTTP, of its last
// signed chunk) is a request S3 does not complete, so no truncated object
// is made. (Returning bytes and an error together would not do: the HTTP
// client sends the bytes before it looks at the error, and the server may
// then have the whole body; minio-go's part buffering drops an error that
// comes with the bytes that fill a part.)
//
// It has Read only, which keeps the client from seeking or reading at
// offsets (see the package doc).
type exactReader struct {
	r          io.Reader
	left, size int64
	err        error // sticky; the reader's failure, for Put to report
}

func (e *exactReader) Read(p []byte) (int, error) {
	if e.err != nil {
		return 0, e.err
	}
	if e.left == 0 {
		return 0, e.atEnd(nil)
	}
	if int64(len(p)) > e.left {
		p = p[:e.left]
	}
	n, err := e.r.Read(p)
	e.left -= int64(n)
	switch {
	case err == io.EOF && e.left > 0:
		e.err = fmt.Errorf("reader ended after %d of %d bytes: %w", e.size-e.left, e.size, io.ErrUnexpectedEOF)
		return 0, e.err
	case err != nil && err != io.EOF:
		e.err = fmt.Errorf("reader failed after %d of %d bytes: %w", e.size-e.left, e.size, err)
		return 0, e.err
	case e.left > 0:
		return n, nil
	}
	// The last bytes: hold them back until r is known to end here. The
	// HTTP client stops reading at Content-Length and would never ask.
	if err := e.atEnd(err); err != io.EOF {
		return 0, err
	}
	return n, io.EOF
}

// atEnd returns io.EOF if r has no byte past size, and otherwise the
// (sticky) error. lastErr is what r's last Read returned.
func (e *exactReader) atEnd(lastErr error) error {
	if lastErr == io.EOF {
		return io.EOF
	}
	var b [1]byte
	for {
		n, err := e.r.Read(b[:])
		switch {
		case n > 0:
			e.err = fmt.Errorf("%w (%d)", errTooLong, e.size)
			return e.err
		case err == io.EOF:
			return io.EOF
		case err != nil:
			e.err = fmt.Errorf("reader failed after %d of %d bytes: %w", e.size, e.size, err)
			return e.err
		}
	}
}

// exactReaderAt is exactReader for an io.ReaderAt: the size bytes of r
// from base, read at offsets, which is how minio-go reads the parts of a
// multipart upload from it, several at once, and again on a retry. It
// keeps exactReader's promise per ReadAt: it fails if r has fewer bytes
// or more, or fails itself, and then returns no bytes with the error, so
// the part (or single PUT) holding the bad bytes is a request S3 does not
// complete, and with it the upload. The read that reaches size returns
// its bytes only once r is known to have none at size: minio-go reads
// only [0, size) and would not notice more.
//
// The first failure is sticky and cancels the upload: what r did once it
// does again, and minio-go would retry with backoff for seconds.
type exactReaderAt struct {
	r          io.ReaderAt
	base, size int64 // r's offset of the first byte, and the byte count
	cancel     context.CancelFunc

	mu  sync.Mutex // ReadAt is called by minio-go's workers at once
	err error
}

func (e *exactReaderAt) ReadAt(p []byte, off int64) (int, error) {
	if err := e.failure(); err != nil {
		return 0, err
	}
	if off < 0 {
		return 0, fmt.Errorf("negative offset %d", off)
	}
	if off >= e.size {
		return 0, io.EOF
	}
	asked := len(p)
	if int64(len(p)) > e.size-off {
		p = p[:e.size-off]
	}
	n, err := e.r.ReadAt(p, e.base+off)
	if n == len(p) && err == io.EOF {
		err = nil // allowed with the last bytes of r; atEnd decides
	}
	switch {
	case err == io.EOF || (err == nil && n < len(p)):
		return 0, e.fail(fmt.Errorf("reader ended after %d of %d bytes: %w", off+int64(n), e.size, io.ErrUnexpectedEOF))
	case err != nil:
		return 0, e.fail(fmt.Errorf("reader failed at byte %d of %d: %w", off+int64(n), e.size, err))
	}
	if off+int64(n) == e.size {
		if err := e.atEnd(); err != nil {
			return 0, err
		}
	}
	if n < asked {
		return n, io.EOF
	}
	return n, nil
}

// atEnd returns nil if r has no byte at size, and otherwise the (sticky)
// error.
func (e *exactReaderAt) atEnd() error {
	var b [1]byte
	n, err := e.r.ReadAt(b[:], e.base+e.size)
	switch {
	case n > 0:
		return e.fail(fmt.Errorf("%w (%d)", errTooLong, e.size))
	case err == io.EOF:
		return nil
	case err == nil:
		err = io.ErrNoProgress // no byte and no error breaks io.ReaderAt's contract
	}
	return e.fail(fmt.Errorf("reader failed after %d of %d bytes: %w", e.size, e.size, err))
}

// fail keeps err unless an error came first, cancels the upload, and
// returns the error kept.
func (e *exactReaderAt) fail(err error) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	if e.err == nil {
		e.err = err
		e.cancel()
	}
	return e.err
}

// failure returns the reader's failure, or nil.
func (e *exactReaderAt) failure() error {
	e.mu.Lock()
	defer e.mu.Unlock()
	return e.err
}

// Open implements media.Store. The reader reads from S3 as it is read,
// within ctx: it fails once ctx is done.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, media.Object, error) {
	name, err := s.object("open", key)
	if err != nil {
		return nil, media.Object{}, err
	}
	obj, err := s.client.GetObject(ctx, s.bucket, name, minio.GetObjectOptions{})
	if err != nil {
		return nil, media.Object{}, fmt.Errorf("media/s3: open %q: %w", key, err)
	}
	// Stat sends the GET and waits for its headers; the body is read
	// from the same response.
	info, err := obj.Stat()
	if err != nil {
		obj.Close()
		if minio.ToErrorResponse(err).Code == minio.NoSuchKey {
			err = media.ErrNotFound
		}
		return nil, media.Object{}, fmt.Errorf("media/s3: open %q: %w", key, err)
	}
	return obj, media.Object{Key: key, Size: info.Size, ContentType: info.ContentType}, nil
}

// URL implements media.Store: a presigned GET, which needs no call to S3.
// ttl is clamped to [MinURLTTL, MaxURLTTL] and counted in whole seconds.
func (s *Store) URL(ctx context.Context, key string, ttl time.Duration) (string, time.Time, error) {
	name, err := s.object("url", key)
	if err != nil {
		return "", time.Time{}, err
	}
	ttl = min(max(ttl, MinURLTTL), MaxURLTTL).Truncate(time.Second)
	signed := time.Now()
	u, err := s.client.PresignedGetObject(ctx, s.bucket, name, ttl, nil)
	if err != nil {
		return "", time.Time{}, fmt.Errorf("media/s3: url %q: %w", key, err)
	}
	expires, ok := signedExpiry(u)
	if !ok {
		// Not what minio-go makes; the expiry is about right anyway.
		expires = signed.Add(ttl)
	}
	return u.String(), expires, nil
}

// signedExpiry reads when a presigned URL stops working: X-Amz-Date (the
// signing time, in whole seconds) plus X-Amz-Expires seconds.
func signedExpiry(u *url.URL) (time.Time, bool) {
	q := u.Query()
	date, err := time.Parse("20060102T150405Z", q.Get("X-Amz-Date"))
	if err != nil {
		return time.Time{}, false
	}
	secs, err := strconv.ParseInt(q.Get("X-Amz-Expires"), 10, 64)
	if err != nil || secs <= 0 {
		return time.Time{}, false
	}
	return date.Add(time.Duration(secs) * time.Second), true
}

// Delete implements media.Store. S3 answers a delete of a missing object
// with success, as media.Store wants.
func (s *Store) Delete(ctx context.Context, key string) error {
	name, err := s.object("delete", key)
	if err != nil {
		return err
	}
	err = s.client.RemoveObject(ctx, s.bucket, name, minio.RemoveObjectOptions{})
	if err != nil && minio.ToErrorResponse(err).Code != minio.NoSuchKey {
		return fmt.Errorf("media/s3: delete %q: %w", key, err)
	}
	return nil
}
