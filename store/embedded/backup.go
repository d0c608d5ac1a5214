package embedded

import (
	"archive/tar"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"strings"
	"time"

	pebble "github.com/cockroachdb/pebble/v2"
)

// A backup is a tar stream. Its first entry, backupManifest, lists the files
// that follow with their sizes; then come the files of a Pebble checkpoint,
// named db/<file>. tar has no end-of-archive check of its own (a stream cut
// at a header boundary reads as a clean end), so the list is what lets
// Restore refuse a truncated backup instead of producing a database that
// is silently missing tables. Unpacked with plain tar into an empty
// directory, a backup is also a valid data directory (plus the list).
const (
	backupManifest = "tern-backup.json"
	backupFormat   = 1
	// maxManifest bounds the list Restore reads into memory.
	maxManifest = 16 << 20
	// stagingPrefix starts the directories that Backup and Restore work in,
	// inside the data directory: on the same file system as the database,
	// so that a checkpoint can hard-link tables instead of copying them and
	// a restore can finish with one rename.
	stagingPrefix = ".staging-"
)

type manifest struct {
	Format int            `json:"format"`
	Files  []manifestFile `json:"files"`
}

type manifestFile struct {
	Name string `json:"name"`
	Size int64  `json:"size"`
}

// Backup writes a consistent snapshot of the whole database to w as a tar
// stream, without stopping writers, and returns the bytes written. It holds
// every write committed before it was called, acks included. The snapshot
// is a Pebble checkpoint, staged next to the database (mostly hard links, so
// it costs little disk) and removed when the backup is done. Restore turns
// the stream back into a data directory.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	n, err := s.backup(ctx, w)
	if err != nil {
		return n, fmt.Errorf("store/embedded: backup: %w", err)
	}
	return n, nil
}

func (s *Store) backup(ctx context.Context, w io.Writer) (int64, error) {
	if err := ctx.Err(); err != nil {
		return 0, err
	}
	var tmp string
	err := s.view(ctx, func(reader) error {
		var err error
		if tmp, err = os.MkdirTemp(s.dir, stagingPrefix+"backup-"); err != nil {
			return err
		}
		// Flushing the WAL first puts acks committed without fsync into
		// the WAL files the checkpoint copies.
		return s.db.Checkpoint(filepath.Join(tmp, dbDir), pebble.WithFlushedWAL())
	})
	if tmp != "" {
		defer func() {
			if err := os.RemoveAll(tmp); err != nil {
				s.log.Warn("store/embedded: remove backup staging", "dir", tmp, "err", err)
			}
		}()
	}
	if err != nil {
		return 0, err
	}
	cp := filepath.Join(tmp, dbDir)
	entries, err := os.ReadDir(cp)
	if err != nil {
		return 0, err
	}
	m := manifest{Format: backupFormat}
	for _, e := range entries {
		if !e.Type().IsRegular() {
			return 0, fmt.Errorf("checkpoint holds %s, which is not a regular file", e.Name())
		}
		info, err := e.Info()
		if err != nil {
			return 0, err
		}
		m.Files = append(m.Files, manifestFile{Name: dbDir + "/" + e.Name(), Size: info.Size()})
	}
	list, err := json.Marshal(m)
	if err != nil {
		return 0, err
	}

	cw := &countingWriter{ctx: ctx, w: w}
	tw := tar.NewWriter(cw)
	now := time.Now()
	if err := tw.WriteHeader(fileHeader(backupManifest, int64(len(list)), now)); err != nil {
		return cw.n, err
	}
	if _, err := tw.Write(list); err != nil {
		return cw.n, err
	}
	for _, f := range m.Files {
		if err := addFile(tw, filepath.Join(tmp, filepath.FromSlash(f.Name)), f, now); err != nil {
			return cw.n, err
		}
	}
	if err := tw.Close(); err != nil {
		return cw.n, err
	}
	return cw.n, nil
}

// fileHeader describes one entry. Whole seconds keep the entries plain
// USTAR: sub-second times would add a PAX record to each.
func fileHeader(name string, size int64, mod time.Time) *tar.Header {
	return &tar.Header{
		Typeflag: tar.TypeReg,
		Name:     name,
		Size:     size,
		Mode:     int64(fileMode),
		ModTime:  mod.Truncate(time.Second),
	}
}

// addFile writes the checkpoint file at path as entry f. Checkpoint files
// never change (tables are immutable, the WAL and MANIFEST are copies), so
// the size listed is the size written; tar fails on any difference.
func addFile(tw *tar.Writer, path string, f manifestFile, mod time.Time) error {
	src, err := os.Open(path)
	if err != nil {
		return err
	}
	defer src.Close()
	if err := tw.WriteHeader(fileHeader(f.Name, f.Size, mod)); err != nil {
		return err
	}
	if _, err := io.Copy(tw, src); err != nil {
		return fmt.Errorf("%s: %w", f.Name, err)
	}
	return nil
}

// countingWriter counts what reaches w and lets a long backup stop when its
// context ends.
type countingWriter struct {
	ctx context.Context
	w   io.Writer
	n   int64
}

func (c *countingWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}

// ctxReader lets a long restore stop when its context ends.
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

// errNotEmpty is why Restore refuses a data directory.
var errNotEmpty = errors.New("the data directory is not empty")

// Restore unpacks a stream written by Backup into dir, which must be empty
// or not exist yet: it never overwrites a database. The database appears in
// dir only once the whole stream has been read and checked against its
// list, so a failed restore leaves dir empty.
func Restore(ctx context.Context, r io.Reader, dir string) error {
	if err := restore(ctx, r, dir); err != nil {
		return fmt.Errorf("store/embedded: restore into %s: %w", dir, err)
	}
	return nil
}

func restore(ctx context.Context, r io.Reader, dir string) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if err := makePrivateDir(dir); err != nil {
		return err
	}
	entries, err := os.ReadDir(dir)
	if err != nil {
		return err
	}
	if len(entries) > 0 {
		return errNotEmpty
	}
	// An empty directory made beforehand (install -d, a volume mount) is
	// often 0755; the database is about to be in it.
	if err := os.Chmod(dir, dirMode); err != nil {
		return err
	}
	tmp, err := os.MkdirTemp(dir, stagingPrefix+"restore-")
	if err != nil {
		return err
	}
	defer os.RemoveAll(tmp) // empty after success; the partial files otherwise
	stage := filepath.Join(tmp, dbDir)
	if err := os.Mkdir(stage, dirMode); err != nil {
		return err
	}

	err = readBackup(ctx, r, func(name string, r io.Reader) error {
		return writeFile(filepath.Join(stage, strings.TrimPrefix(name, dbDir+"/")), r)
	})
	if err != nil {
		return err
	}
	if err := syncDir(stage); err != nil {
		return err
	}
	if err := os.Rename(stage, filepath.Join(dir, dbDir)); err != nil {
		return err
	}
	return syncDir(dir)
}

// Verify reads a stream written by Backup to its end and checks it against
// its list, as Restore does, without writing anything: a backup that passes
// restores (unless the disk fails).
func Verify(ctx context.Context, r io.Reader) error {
	err := readBackup(ctx, r, func(_ string, r io.Reader) error {
		_, err := io.Copy(io.Discard, r)
		return err
	})
	if err != nil {
		return fmt.Errorf("store/embedded: verify backup: %w", err)
	}
	return nil
}

// readBackup reads a backup stream, checking every entry against the list
// that opens it, and hands each database file to file, by tar name.
func readBackup(ctx context.Context, r io.Reader, file func(name string, r io.Reader) error) error {
	tr := tar.NewReader(ctxReader{ctx: ctx, r: r})
	want, err := readManifest(tr)
	if err != nil {
		return err
	}
	for {
		hdr, err := tr.Next()
		if errors.Is(err, io.EOF) {
			break
		}
		if err != nil {
			return err
		}
		size, ok := want[hdr.Name]
		switch {
		case !ok:
			return fmt.Errorf("backup entry %q is not in its list (or comes twice)", hdr.Name)
		case hdr.Typeflag != tar.TypeReg:
			return fmt.Errorf("backup entry %q is not a regular file", hdr.Name)
		case hdr.Size != size:
			return fmt.Errorf("backup entry %q has %d bytes, its list says %d", hdr.Name, hdr.Size, size)
		}
		delete(want, hdr.Name)
		if err := file(hdr.Name, tr); err != nil {
			return fmt.Errorf("%s: %w", hdr.Name, err)
		}
	}
	if len(want) > 0 {
		return fmt.Errorf("backup is truncated: %d of its files are missing", len(want))
	}
	return nil
}

// readManifest reads the first entry of a backup: the files to expect, by
// tar name, with their sizes. Every name must be db/<plain file name>, which
// is also what keeps a crafted stream from writing outside the directory.
func readManifest(tr *tar.Reader) (map[string]int64, error) {
	hdr, err := tr.Next()
	if err != nil || hdr.Name != backupManifest || hdr.Size > maxManifest {
		return nil, fmt.Errorf("not a Tern backup: it does not start with %s", backupManifest)
	}
	var m manifest
	if err := json.NewDecoder(io.LimitReader(tr, maxManifest)).Decode(&m); err != nil {
		return nil, fmt.Errorf("backup list: %w", err)
	}
	if m.Format != backupFormat {
		return nil, fmt.Errorf("backup format %d is not supported (this Tern reads %d)", m.Format, backupFormat)
	}
	want := make(map[string]int64, len(m.Files))
	for _, f := range m.Files {
		base, ok := strings.CutPrefix(f.Name, dbDir+"/")
		if !ok || base == "" || base == "." || base == ".." || strings.ContainsAny(base, `/\`) || f.Size < 0 {
			return nil, fmt.Errorf("backup list names %q, which is not a database file", f.Name)
		}
		if _, dup := want[f.Name]; dup {
			return nil, fmt.Errorf("backup list names %q twice", f.Name)
		}
		want[f.Name] = f.Size
	}
	return want, nil
}

// writeFile creates path with what r holds and makes it durable.
func writeFile(path string, r io.Reader) error {
	// The umask can only take bits away from 0600.
	f, err := os.OpenFile(path, os.O_WRONLY|os.O_CREATE|os.O_EXCL, fileMode)
	if err != nil {
		return err
	}
	if _, err := io.Copy(f, r); err != nil {
		f.Close()
		return err
	}
	if err := f.Sync(); err != nil {
		f.Close()
		return err
	}
	return f.Close()
}

// syncDir makes the names created in dir durable.
func syncDir(dir string) error {
	d, err := os.Open(dir)
	if err != nil {
		return err
	}
	if err := d.Sync(); err != nil {
		d.Close()
		return err
	}
	return d.Close()
}

// removeStaging removes the staging directories of backups and restores
// that a crash interrupted. Failing to is not fatal: they only take space.
func removeStaging(dir string, log *slog.Logger) {
	leftovers, err := filepath.Glob(filepath.Join(dir, stagingPrefix+"*"))
	if err != nil {
		return // only a malformed pattern fails, and this one is fixed
	}
	for _, p := range leftovers {
		if err := os.RemoveAll(p); err != nil {
			log.Warn("store/embedded: remove leftover staging directory", "dir", p, "err", err)
			continue
		}
		log.Info("store/embedded: removed the staging directory of an interrupted backup or restore", "dir", p)
	}
}
