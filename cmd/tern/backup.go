package main

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"

	"github.com/tern-im/tern/store/embedded"
)

// backup streams a consistent snapshot of a running node's embedded store
// from its admin API into a file. Media files are not in it (it says so).
func backup(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var addr, token, out string
	fs := newFlagSet("tern backup", "TERN_")
	fs.SetOutput(stderr)
	fs.String(&addr, "admin-addr", "127.0.0.1:9090", "admin address of the running node (its --admin-addr)")
	fs.String(&token, "admin-token", "", "the node's --admin-token")
	fs.secret("admin-token")
	fs.String(&out, "out", "tern-backup.tar", "file to write the snapshot to")
	if err := fs.parse(args); err != nil {
		return err
	}
	if token == "" {
		return usagef("backup needs the node's admin token: TERN_ADMIN_TOKEN, TERN_ADMIN_TOKEN_FILE or --admin-token-file (or --admin-token, which ps shows)")
	}
	url := addr
	if !strings.Contains(url, "://") {
		url = "http://" + url
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url+"/admin/v1/backup", nil)
	if err != nil {
		return err
	}
	req.Header.Set("Authorization", "Bearer "+token)
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return fmt.Errorf("backup: %s: %s", resp.Status, strings.TrimSpace(string(msg)))
	}
	// Write beside the target and rename at the end, so a failed backup
	// never leaves a truncated file under the final name. CreateTemp makes
	// it 0600 whatever the umask: it holds every message and the node's
	// signing keys.
	tmp, err := os.CreateTemp(filepath.Dir(out), ".tern-backup-*")
	if err != nil {
		return err
	}
	defer os.Remove(tmp.Name())
	// Checked while written: a stream that broke off (the node failed
	// mid-way) must not pass for a backup.
	cw := &countWriter{w: tmp}
	err = embedded.Verify(ctx, io.TeeReader(resp.Body, cw))
	if err == nil {
		// Whatever follows the tar's end (its zero blocks' padding).
		_, err = io.Copy(cw, resp.Body)
	}
	n := cw.n
	if err == nil {
		err = tmp.Sync()
	}
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("backup: %w", err)
	}
	if err := os.Rename(tmp.Name(), out); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "backup: %d bytes written to %s\n", n, out)
	// The store holds media records, not the files: say so every time, so
	// that nobody finds out at a restore.
	fmt.Fprintln(stdout, "backup: media files are not in it: copy the node's --media-dir (default <data-dir>/media) after this backup, or keep versions on the S3 bucket (docs/operations.md, \"Media files\")")
	return nil
}

// restore unpacks a snapshot into an empty data directory; the node must
// not be running on it.
func restore(ctx context.Context, args []string, stdout, stderr io.Writer) error {
	var dataDir, in string
	fs := newFlagSet("tern restore", "TERN_")
	fs.SetOutput(stderr)
	fs.String(&dataDir, "data-dir", "./data", "empty data directory to restore into")
	fs.String(&in, "in", "tern-backup.tar", "snapshot written by tern backup")
	if err := fs.parse(args); err != nil {
		return err
	}
	f, err := os.Open(in)
	if err != nil {
		return err
	}
	defer f.Close()
	if err := embedded.Restore(ctx, f, dataDir); err != nil {
		return err
	}
	fmt.Fprintf(stdout, "restore: %s restored into %s\n", in, dataDir)
	return nil
}

// countWriter counts the bytes written through it.
type countWriter struct {
	w io.Writer
	n int64
}

func (c *countWriter) Write(p []byte) (int, error) {
	n, err := c.w.Write(p)
	c.n += int64(n)
	return n, err
}
