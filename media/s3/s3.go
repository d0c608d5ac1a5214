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
	// holds in memory; the package doc says why 16 MiB.
	partSize = 16 << 20

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
	body := &exactReader{r: r, left: size, size: size}
	if size == 0 {
		// minio-go sends no body for an empty object, and so would
		// never read r to find that it is not empty.
		if err := body.atEnd(nil); err != io.EOF {
			return fmt.Errorf("media/s3: put %q: %w", key, err)
		}
	}
	_, err = s.client.PutObject(ctx, s.bucket, name, body, size, minio.PutObjectOptions{
		ContentType: contentType,
		PartSize:    s.partSize,
	})
	switch {
	case err != nil && body.err != nil:
		// The reader's own failure says more than the broken request.
		return fmt.Errorf("media/s3: put %q: %w", key, body.err)
	case err != nil:
		return fmt.Errorf("media/s3: put %q: %w", key, err)
	case body.err != nil:
		// S3 took the object although the reader failed: the client
		// library let an error pass. What is stored is not what the
		// caller meant; take it away rather than serve it.
		if derr := s.client.RemoveObject(context.WithoutCancel(ctx), s.bucket, name, minio.RemoveObjectOptions{}); derr != nil {
			return fmt.Errorf("media/s3: put %q: %w (and removing what was stored: %v)", key, body.err, derr)
		}
		return fmt.Errorf("media/s3: put %q: %w", key, body.err)
	}
	return nil
}

// errTooLong is what exactReader returns for a reader longer than size.
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
