package embedded

import (
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"syscall"

	"github.com/cockroachdb/pebble/v2/vfs"
)

// Modes of everything under the data directory. It holds every message and
// the server's signing keys: only the owner may read it, whatever the umask
// (a umask of 002 or 000, common on desktops and in some containers, would
// otherwise leave the database readable by the group or by everyone).
const (
	dirMode  fs.FileMode = 0o700
	fileMode fs.FileMode = 0o600
)

// ErrLocked means another process has the data directory open: Pebble's
// lock on it is taken.
var ErrLocked = errors.New("data directory locked")

// privateFS is Pebble's file system with the modes above. Pebble creates
// files 0666 and directories 0755, less the umask; each is set to the
// private mode right after creation, while it is still empty.
type privateFS struct{ vfs.FS }

func (p privateFS) Create(name string, category vfs.DiskWriteCategory) (vfs.File, error) {
	f, err := p.FS.Create(name, category)
	if err != nil {
		return f, err
	}
	return f, p.private(f, name, fileMode)
}

func (p privateFS) OpenReadWrite(name string, category vfs.DiskWriteCategory, opts ...vfs.OpenOption) (vfs.File, error) {
	// Creates name if it does not exist.
	f, err := p.FS.OpenReadWrite(name, category, opts...)
	if err != nil {
		return f, err
	}
	return f, p.private(f, name, fileMode)
}

func (p privateFS) MkdirAll(dir string, _ os.FileMode) error {
	if err := p.FS.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	return os.Chmod(dir, dirMode)
}

// Lock takes the database's lock file, which it creates, and tells a lock
// held by another process (the lock call fails with EAGAIN or EACCES, per
// POSIX fcntl) from a failure to create the file (an *fs.PathError).
func (p privateFS) Lock(name string) (io.Closer, error) {
	c, err := p.FS.Lock(name)
	if err != nil {
		var pe *fs.PathError
		if !errors.As(err, &pe) && (errors.Is(err, syscall.EAGAIN) || errors.Is(err, syscall.EACCES)) {
			return nil, fmt.Errorf("%w: %s is held by another process: %w", ErrLocked, name, err)
		}
		return nil, err
	}
	if err := os.Chmod(name, fileMode); err != nil {
		_ = c.Close()
		return nil, err
	}
	return c, nil
}

// Unwrap lets Pebble see the file system under the wrapper.
func (p privateFS) Unwrap() vfs.FS { return p.FS }

// private sets name's mode, closing f if that fails.
func (privateFS) private(f vfs.File, name string, mode fs.FileMode) error {
	if err := os.Chmod(name, mode); err != nil {
		_ = f.Close()
		return err
	}
	return nil
}

// tighten makes dir and everything in it private where the group or
// others have any access (directories 0700, regular files 0600), and
// returns the paths it changed. Symbolic links are not followed: what
// they point to is not the data directory's. A directory made by an older
// Tern, by hand, or by an image (Docker's /data is typically 0755) is
// fixed rather than refused: its owner is the user Tern runs as, so the
// fix is Tern's to make, and refusing would only stop a node over a
// setting it can correct itself.
func tighten(dir string) (fixed []string, err error) {
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		want := fileMode
		switch {
		case d.IsDir():
			want = dirMode
		case !d.Type().IsRegular():
			return nil
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		if info.Mode().Perm()&0o077 == 0 {
			return nil
		}
		if err := os.Chmod(path, want); err != nil {
			return err
		}
		fixed = append(fixed, path)
		return nil
	})
	return fixed, err
}
