package media

import (
	"context"
	"errors"
	"io"
	"time"
)

// ErrNotFound: no object under that key.
var ErrNotFound = errors.New("media: not found")

// ErrInvalidKey: a key outside the alphabet of ValidKey.
var ErrInvalidKey = errors.New("media: invalid key")

// Object describes a stored file.
type Object struct {
	Key         string
	Size        int64
	ContentType string
}

// Store keeps files by key. Keys are made by Tern (ValidKey), never by
// clients, so adapters may use them as file names and object names as
// they are.
type Store interface {
	// Put stores size bytes from r under key with contentType, streaming
	// them (never the whole file in memory). size is exact. A Put
	// replaces an object already under key. An object is visible to Open
	// and URL only once Put returned nil: a failed Put leaves nothing
	// under key that a reader could see half written.
	Put(ctx context.Context, key string, r io.Reader, size int64, contentType string) error
	// Open returns the object's bytes; the caller closes the reader.
	// ErrNotFound if there is none.
	Open(ctx context.Context, key string) (io.ReadCloser, Object, error)
	// URL returns a URL that serves the object to anyone holding it,
	// without a token, until expires (about now + ttl), and that cannot be
	// altered to reach another object or to last longer. It does not
	// check that the object exists.
	URL(ctx context.Context, key string, ttl time.Duration) (url string, expires time.Time, err error)
	// Delete removes the object; deleting a missing one is not an error.
	Delete(ctx context.Context, key string) error
}

// MaxKeyLen bounds keys.
const MaxKeyLen = 128

// ValidKey reports whether key may name an object: 1 to MaxKeyLen bytes
// of [a-z0-9], '-', '_' and '/', not starting or ending with '/', and no
// empty segment. That keeps keys safe as paths and as S3 object names.
func ValidKey(key string) bool {
	if key == "" || len(key) > MaxKeyLen || key[0] == '/' || key[len(key)-1] == '/' {
		return false
	}
	for i := 0; i < len(key); i++ {
		c := key[i]
		switch {
		case c >= 'a' && c <= 'z', c >= '0' && c <= '9', c == '-', c == '_':
		case c == '/':
			if key[i-1] == '/' {
				return false
			}
		default:
			return false
		}
	}
	return true
}
