package embedded_test

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"io/fs"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
)

// checkPrivate fails for anything under dir that is not the owner's only:
// directories 0700, files 0600.
func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	n := 0
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		want := fs.FileMode(0o600)
		if d.IsDir() {
			want = 0o700
		}
		if info.Mode().Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, info.Mode().Perm(), want)
		}
		n++
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	if n < 3 {
		t.Fatalf("only %d entries under %s", n, dir)
	}
}

func addUser(t *testing.T, s *embedded.Store) {
	t.Helper()
	if _, _, err := s.EnsureUser(t.Context(), "+15550001111", store.NewID(store.PrefixUser), time.Now()); err != nil {
		t.Fatal(err)
	}
}

// TestDataDirIsPrivate: what the store creates is 0700 / 0600 whatever
// the umask (Pebble's own modes are 0755 and 0666 less the umask).
func TestDataDirIsPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := open(t, dir, embedded.Options{})
	addUser(t, s)
	checkPrivate(t, dir)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)
}

// TestOpenMakesLooseDataDirPrivate: a data directory others can read (an
// older Tern's, or a container image's 0755 /data) is fixed at Open, with
// a warning.
func TestOpenMakesLooseDataDirPrivate(t *testing.T) {
	dir := filepath.Join(t.TempDir(), "data")
	s := open(t, dir, embedded.Options{})
	addUser(t, s)
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, "extra"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			return os.Chmod(path, 0o755)
		}
		return os.Chmod(path, 0o644)
	})
	if err != nil {
		t.Fatal(err)
	}
	var logs bytes.Buffer
	s = open(t, dir, embedded.Options{Log: slog.New(slog.NewTextHandler(&logs, nil))})
	defer s.Close()
	checkPrivate(t, dir)
	if !strings.Contains(logs.String(), "level=WARN") || !strings.Contains(logs.String(), "made it private") {
		t.Fatalf("no warning about the modes fixed:\n%s", logs.String())
	}
}

// TestRestoreMakesDirPrivate: restoring into an empty directory made
// beforehand with the usual 0755 leaves it 0700.
func TestRestoreMakesDirPrivate(t *testing.T) {
	s := open(t, t.TempDir(), embedded.Options{})
	addUser(t, s)
	var snap bytes.Buffer
	if _, err := s.Backup(t.Context(), &snap); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	dir := filepath.Join(t.TempDir(), "restored")
	if err := os.Mkdir(dir, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(dir, 0o755); err != nil { // whatever the umask
		t.Fatal(err)
	}
	if err := embedded.Restore(t.Context(), &snap, dir); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, dir)
}

// holdEnv names the data directory TestHoldDataDir opens when this test
// binary runs as the helper process of TestOpenLockedByAnotherProcess.
const holdEnv = "TERN_TEST_EMBEDDED_HOLD_DIR"

// TestHoldDataDir is not a test: run by TestOpenLockedByAnotherProcess
// as a second process, it opens the store, says so, and keeps it open
// until its stdin closes.
func TestHoldDataDir(t *testing.T) {
	dir := os.Getenv(holdEnv)
	if dir == "" {
		t.Skip("helper process of TestOpenLockedByAnotherProcess")
	}
	s, err := embedded.Open(context.Background(), dir, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	os.Stdout.WriteString("held\n")
	_, _ = bufio.NewReader(os.Stdin).ReadString('\n')
	_ = s.Close()
}

// TestOpenLockedByAnotherProcess: Open on a directory another process has
// open says so, names the directory, and matches ErrLocked (rather than
// Pebble's "resource temporarily unavailable" alone).
func TestOpenLockedByAnotherProcess(t *testing.T) {
	dir := t.TempDir()
	cmd := exec.Command(os.Args[0], "-test.run=^TestHoldDataDir$", "-test.count=1")
	cmd.Env = append(os.Environ(), holdEnv+"="+dir)
	stdin, err := cmd.StdinPipe()
	if err != nil {
		t.Fatal(err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer func() {
		stdin.Close()
		_ = cmd.Wait()
	}()
	held := make(chan bool, 1)
	go func() {
		sc := bufio.NewScanner(stdout)
		for sc.Scan() {
			if sc.Text() == "held" {
				held <- true
				return
			}
		}
		held <- false
	}()
	select {
	case ok := <-held:
		if !ok {
			t.Fatalf("helper process did not open the store: %s", stderr.String())
		}
	case <-time.After(60 * time.Second):
		t.Fatal("helper process did not open the store in time")
	}

	s, err := embedded.Open(t.Context(), dir, embedded.Options{})
	if err == nil {
		s.Close()
		t.Fatal("opened a data directory another process holds")
	}
	if !errors.Is(err, embedded.ErrLocked) {
		t.Errorf("error %v does not match ErrLocked", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "another Tern process holds the data directory "+dir) {
		t.Errorf("error %q does not say another process holds %s", msg, dir)
	}
}
