package main

import (
	"bytes"
	"context"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
)

// TestBackupChecksTheStream serves `tern backup` a real snapshot whole, cut
// short with the connection broken (what the admin handler does when the
// store fails mid-way), and cut short but ended cleanly (a proxy that hides
// the break): only the whole one may leave a file.
func TestBackupChecksTheStream(t *testing.T) {
	ctx := t.Context()
	st, err := embedded.Open(ctx, t.TempDir(), embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.EnsureUser(ctx, "+15550001111", store.NewID(store.PrefixUser), time.Now()); err != nil {
		t.Fatal(err)
	}
	var snap bytes.Buffer
	if _, err := st.Backup(ctx, &snap); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	whole := snap.Bytes()
	half := whole[:len(whole)/2]

	for _, tc := range []struct {
		name  string
		serve func(w http.ResponseWriter)
		ok    bool
	}{
		{"whole", func(w http.ResponseWriter) { _, _ = w.Write(whole) }, true},
		{"broken", func(w http.ResponseWriter) {
			_, _ = w.Write(half)
			w.(http.Flusher).Flush()
			panic(http.ErrAbortHandler)
		}, false},
		{"short", func(w http.ResponseWriter) { _, _ = w.Write(half) }, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
				if r.Header.Get("Authorization") != "Bearer secret" {
					http.Error(w, "no", http.StatusUnauthorized)
					return
				}
				w.Header().Set("Content-Type", "application/x-tar")
				tc.serve(w)
			}))
			defer srv.Close()
			dir := t.TempDir()
			out := filepath.Join(dir, "b.tar")
			var stdout, stderr bytes.Buffer
			code := run(context.Background(), []string{"backup", "--admin-addr", srv.URL, "--admin-token", "secret", "--out", out}, &stdout, &stderr)
			if (code == 0) != tc.ok {
				t.Fatalf("exit %d, want success %v; stderr: %s", code, tc.ok, stderr.String())
			}
			entries, _ := os.ReadDir(dir)
			if !tc.ok {
				if len(entries) != 0 {
					t.Fatalf("a failed backup left %v", entries)
				}
				return
			}
			got, err := os.ReadFile(out)
			if err != nil || !bytes.Equal(got, whole) {
				t.Fatalf("backup file: %d bytes (err %v), want the %d served", len(got), err, len(whole))
			}
			if !strings.Contains(stdout.String(), "bytes written") || !strings.Contains(stdout.String(), "media files are not in it") {
				t.Fatalf("stdout: %s", stdout.String())
			}
			// And it restores.
			f, err := os.Open(out)
			if err != nil {
				t.Fatal(err)
			}
			defer f.Close()
			if err := embedded.Restore(ctx, io.Reader(f), filepath.Join(dir, "restored")); err != nil {
				t.Fatal(err)
			}
		})
	}
}
