package fs

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net/url"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"time"

	"github.com/tern-im/tern/media"
)

// FilesPath is where Handler expects to be mounted, and the path URL puts
// between Options.BaseURL and the key.
const FilesPath = "/media/files/"

const (
	// objectSuffix ends every object file's name; see the package doc.
	objectSuffix = ".obj"
	// tmpDir holds files being written. Its name starts with '.', which no
	// key segment can, so it never meets a key's directory.
	tmpDir = ".tmp"
	// magic starts every object file, so that a file that is not one (a
	// stray copy, a half-restored backup) is reported rather than served
	// with a garbage content type.
	magic = "tern-media/1 "
	// versionLen is the length of the random version (hex) every Put
	// writes after magic. It is the ETag: modification times are too
	// coarse on some file systems to tell apart two Puts in a row.
	versionLen = 32
	// maxContentType bounds the stored type, which bounds the header Open
	// reads before it knows where the bytes begin.
	maxContentType = 255
	// maxHeader is the longest header: magic, version, space, type, newline.
	maxHeader = len(magic) + versionLen + 1 + maxContentType + 1
	// staleTemp is how long New lets a temporary file sit unwritten before
	// it takes it for the leftover of a crashed Put.
	staleTemp = time.Hour
	// minSecret is the shortest Options.Secret: HMAC-SHA256 is only as
	// strong as its key, and a guessable key lets anyone mint URLs.
	minSecret = 32
)

// Options configure a Store.
type Options struct {
	// Dir holds the files. It is created if missing.
	Dir string
	// Secret keys the HMAC that signs URLs; at least 32 random bytes, used
	// for nothing else. Every node that serves URLs another node made
	// needs the same secret. Changing it breaks the URLs already given out.
	Secret []byte
	// BaseURL is where clients reach the server that mounts Handler, e.g.
	// "https://tern.example.com"; URL appends FilesPath and the key.
	BaseURL string
	// Now replaces time.Now, for tests.
	Now func() time.Time
	// Logger reports what Handler cannot tell the client (a failing disk)
	// and the leftovers New sweeps. Nil means slog.Default().
	Logger *slog.Logger
}

// Store is the embedded media.Store. Its methods are safe for concurrent
// use.
type Store struct {
	root    *os.Root
	secret  []byte
	baseURL string
	now     func() time.Time
	log     *slog.Logger
}

var _ media.Store = (*Store)(nil)

// New opens (creating if needed) the directory opts.Dir and removes
// temporary files that crashed Puts left behind there.
func New(opts Options) (*Store, error) {
	if opts.Dir == "" {
		return nil, errors.New("media/fs: no Dir")
	}
	if len(opts.Secret) < minSecret {
		return nil, fmt.Errorf("media/fs: Secret has %d bytes, want at least %d", len(opts.Secret), minSecret)
	}
	base, err := checkBaseURL(opts.BaseURL)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(opts.Dir, 0o700); err != nil {
		return nil, fmt.Errorf("media/fs: %w", err)
	}
	root, err := os.OpenRoot(opts.Dir)
	if err != nil {
		return nil, fmt.Errorf("media/fs: %w", err)
	}
	if err := root.MkdirAll(tmpDir, 0o700); err != nil {
		root.Close()
		return nil, fmt.Errorf("media/fs: %w", err)
	}
	s := &Store{
		root:    root,
		secret:  bytes.Clone(opts.Secret),
		baseURL: base,
		now:     opts.Now,
		log:     opts.Logger,
	}
	if s.now == nil {
		s.now = time.Now
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	s.sweep()
	return s, nil
}

func checkBaseURL(raw string) (string, error) {
	u, err := url.Parse(raw)
	if err != nil {
		return "", fmt.Errorf("media/fs: BaseURL: %w", err)
	}
	if (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || u.User != nil || u.RawQuery != "" || u.Fragment != "" {
		return "", fmt.Errorf("media/fs: BaseURL %q: want http(s)://host[:port][/path]", raw)
	}
	return strings.TrimRight(raw, "/"), nil
}

// Close releases the directory. The Store must not be used after.
func (s *Store) Close() error {
	return s.root.Close()
}

// sweep removes temporary files not written to for staleTemp: a Put in
// progress writes all the time, so only a crashed one leaves such a file.
func (s *Store) sweep() {
	d, err := s.root.Open(tmpDir)
	if err != nil {
		s.log.Warn("media/fs: cannot list temporary files", "dir", tmpDir, "err", err)
		return
	}
	defer d.Close()
	entries, err := d.ReadDir(-1)
	if err != nil {
		s.log.Warn("media/fs: cannot list temporary files", "dir", tmpDir, "err", err)
	}
	cutoff := s.now().Add(-staleTemp)
	for _, e := range entries {
		info, err := e.Info()
		if err != nil || !info.Mode().IsRegular() || !info.ModTime().Before(cutoff) {
			continue
		}
		name := filepath.Join(tmpDir, e.Name())
		if err := s.root.Remove(name); err != nil && !errors.Is(err, os.ErrNotExist) {
			s.log.Warn("media/fs: cannot remove a stale temporary file", "file", name, "err", err)
			continue
		}
		s.log.Info("media/fs: removed a stale temporary file", "file", name, "size", info.Size())
	}
}

// objectName is key's file, relative to Dir.
func objectName(key string) string {
	return filepath.FromSlash(key) + objectSuffix
}

// notFound covers a missing file and a path through something that is not
// a directory, both of which mean no object under the key.
func notFound(err error) bool {
	return errors.Is(err, os.ErrNotExist) || errors.Is(err, syscall.ENOTDIR)
}

// Put implements media.Store.
func (s *Store) Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) (err error) {
	if !media.ValidKey(key) {
		return fmt.Errorf("media/fs: put %q: %w", key, media.ErrInvalidKey)
	}
	if size < 0 {
		return fmt.Errorf("media/fs: put %q: negative size %d", key, size)
	}
	if err := checkContentType(contentType); err != nil {
		return fmt.Errorf("media/fs: put %q: %w", key, err)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("media/fs: put %q: %w", key, err)
	}
	tmp := filepath.Join(tmpDir, "put-"+rand.Text())
	f, err := s.root.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL, 0o600)
	if err != nil {
		return fmt.Errorf("media/fs: put %q: %w", key, err)
	}
	closed := false
	defer func() {
		if err == nil {
			return
		}
		if !closed {
			f.Close()
		}
		if rerr := s.root.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
			s.log.Warn("media/fs: cannot remove a temporary file", "file", tmp, "err", rerr)
		}
	}()

	version := newVersion()
	if _, err := f.WriteString(magic + version + " " + contentType + "\n"); err != nil {
		return fmt.Errorf("media/fs: put %q: %w", key, err)
	}
	src := ctxReader{ctx: ctx, r: r}
	n, err := io.CopyN(f, src, size)
	if err == io.EOF {
		return fmt.Errorf("media/fs: put %q: reader ended after %d of %d bytes: %w", key, n, size, io.ErrUnexpectedEOF)
	}
	if err != nil {
		return fmt.Errorf("media/fs: put %q: after %d of %d bytes: %w", key, n, size, err)
	}
	// size is exact: more bytes mean the caller's size is wrong, and the
	// stored object would be cut short without anyone knowing.
	var one [1]byte
	if m, err := io.ReadFull(src, one[:]); m > 0 {
		return fmt.Errorf("media/fs: put %q: reader has more than %d bytes", key, size)
	} else if err != io.EOF {
		return fmt.Errorf("media/fs: put %q: after %d bytes: %w", key, size, err)
	}
	if err := f.Sync(); err != nil {
		return fmt.Errorf("media/fs: put %q: %w", key, err)
	}
	closed = true
	if err := f.Close(); err != nil {
		return fmt.Errorf("media/fs: put %q: %w", key, err)
	}

	name := objectName(key)
	dir := filepath.Dir(name)
	if dir != "." {
		if err := s.root.MkdirAll(dir, 0o700); err != nil {
			return fmt.Errorf("media/fs: put %q: %w", key, err)
		}
	}
	if err := s.root.Rename(tmp, name); err != nil {
		return fmt.Errorf("media/fs: put %q: %w", key, err)
	}
	// The rename is durable only once the directory holding the new entry
	// is on disk. If that fails the object is in place and whole, but Put
	// reports the error: the caller cannot count on it surviving a crash.
	if err := s.syncDir(dir); err != nil {
		return fmt.Errorf("media/fs: put %q: %w", key, err)
	}
	return nil
}

func newVersion() string {
	b := make([]byte, versionLen/2)
	rand.Read(b) // never fails
	return hex.EncodeToString(b)
}

func (s *Store) syncDir(dir string) error {
	d, err := s.root.Open(dir)
	if err != nil {
		return err
	}
	err = d.Sync()
	if cerr := d.Close(); err == nil {
		err = cerr
	}
	return err
}

// checkContentType keeps the type to what fits on the header line and in
// an HTTP header: printable ASCII, bounded.
func checkContentType(ct string) error {
	if len(ct) > maxContentType {
		return fmt.Errorf("content type of %d bytes, want at most %d", len(ct), maxContentType)
	}
	for i := 0; i < len(ct); i++ {
		if c := ct[i]; c < 0x20 || c > 0x7e {
			return fmt.Errorf("content type %q: not printable ASCII", ct)
		}
	}
	return nil
}

// ctxReader ends a Put whose context is done even while its reader keeps
// delivering.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (c ctxReader) Read(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.r.Read(p)
}

// object is an open object file: its bytes are the section after the
// header, which is what Handler needs to seek for ranges.
type object struct {
	*io.SectionReader
	f       *os.File
	obj     media.Object
	version string
	modTime time.Time
}

func (o *object) Close() error { return o.f.Close() }

// Open implements media.Store. The reader also implements io.Seeker and
// io.ReaderAt.
func (s *Store) Open(ctx context.Context, key string) (io.ReadCloser, media.Object, error) {
	o, err := s.open(ctx, key)
	if err != nil {
		return nil, media.Object{}, err
	}
	return o, o.obj, nil
}

func (s *Store) open(ctx context.Context, key string) (*object, error) {
	if !media.ValidKey(key) {
		return nil, fmt.Errorf("media/fs: open %q: %w", key, media.ErrInvalidKey)
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("media/fs: open %q: %w", key, err)
	}
	f, err := s.root.Open(objectName(key))
	if notFound(err) {
		return nil, fmt.Errorf("media/fs: open %q: %w", key, media.ErrNotFound)
	}
	if err != nil {
		return nil, fmt.Errorf("media/fs: open %q: %w", key, err)
	}
	o, err := readObject(f, key)
	if err != nil {
		f.Close()
		return nil, err
	}
	return o, nil
}

func readObject(f *os.File, key string) (*object, error) {
	info, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("media/fs: open %q: %w", key, err)
	}
	if !info.Mode().IsRegular() {
		return nil, fmt.Errorf("media/fs: open %q: %w", key, media.ErrNotFound)
	}
	head := make([]byte, min(info.Size(), int64(maxHeader)))
	if _, err := f.ReadAt(head, 0); err != nil {
		return nil, fmt.Errorf("media/fs: open %q: %w", key, err)
	}
	rest, ok := bytes.CutPrefix(head, []byte(magic))
	nl := bytes.IndexByte(rest, '\n')
	if !ok || nl < versionLen+1 || rest[versionLen] != ' ' {
		return nil, fmt.Errorf("media/fs: open %q: %s is not a media file", key, f.Name())
	}
	off := int64(len(magic) + nl + 1)
	size := info.Size() - off
	return &object{
		SectionReader: io.NewSectionReader(f, off, size),
		f:             f,
		obj:           media.Object{Key: key, Size: size, ContentType: string(rest[versionLen+1 : nl])},
		version:       string(rest[:versionLen]),
		modTime:       info.ModTime(),
	}, nil
}

// Delete implements media.Store.
func (s *Store) Delete(ctx context.Context, key string) error {
	if !media.ValidKey(key) {
		return fmt.Errorf("media/fs: delete %q: %w", key, media.ErrInvalidKey)
	}
	if err := ctx.Err(); err != nil {
		return fmt.Errorf("media/fs: delete %q: %w", key, err)
	}
	if err := s.root.Remove(objectName(key)); err != nil && !notFound(err) {
		return fmt.Errorf("media/fs: delete %q: %w", key, err)
	}
	return nil
}

// URL implements media.Store: BaseURL + FilesPath + key, with the expiry
// in Unix seconds and an HMAC of both. The expiry is rounded up to the
// second, so the URL lasts at least ttl.
func (s *Store) URL(ctx context.Context, key string, ttl time.Duration) (string, time.Time, error) {
	if !media.ValidKey(key) {
		return "", time.Time{}, fmt.Errorf("media/fs: url %q: %w", key, media.ErrInvalidKey)
	}
	if ttl <= 0 {
		return "", time.Time{}, fmt.Errorf("media/fs: url %q: ttl %v is not positive", key, ttl)
	}
	t := s.now().Add(ttl)
	exp := t.Unix()
	if t.After(time.Unix(exp, 0)) {
		exp++
	}
	e := strconv.FormatInt(exp, 10)
	return s.baseURL + FilesPath + key + "?exp=" + e + "&sig=" + s.sign(key, e), time.Unix(exp, 0), nil
}

// sign is the base64url HMAC-SHA256 of key and expiry, a newline apart;
// neither contains one, so no other pair signs the same bytes.
func (s *Store) sign(key, exp string) string {
	m := hmac.New(sha256.New, s.secret)
	m.Write([]byte(key))
	m.Write([]byte{'\n'})
	m.Write([]byte(exp))
	return base64.RawURLEncoding.EncodeToString(m.Sum(nil))
}

// Path is where Handler is mounted: FilesPath.
func (s *Store) Path() string { return FilesPath }
