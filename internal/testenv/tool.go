package testenv

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"strings"
	"time"
)

// OutsideError is a failure that is not the project's: no go command, or
// no way to download modules. Tests skip on it (or fail when Required).
type OutsideError struct{ Msg string }

func (e *OutsideError) Error() string { return e.Msg }

// Tool says how to build a server the tests start, from its own module
// under tools/ (kept out of the main module: such servers bring dozens of
// modules the product never needs).
type Tool struct {
	Dir   string   // the module's folder under tools/, and the cache name's prefix
	Label string   // for messages: "FerretDB", "versitygw v1.8.0"
	Args  []string // after "go build -o OUT", e.g. "-mod=readonly", "."
	Env   []string // added to the build's environment
}

// Binary returns the path of t's binary, building it into the user cache
// (tern-test/<Dir>-<hash>) unless this version of its sources (every .go
// file, go.mod and go.sum of the module), this Go and these Args and Env
// were built already: only a machine's first run pays for the build,
// which takes minutes. Concurrent test processes may build at once; each
// renames a complete binary into place, so none runs a half-written one.
func Binary(t Tool) (string, error) {
	dir, err := toolDir(t.Dir)
	if err != nil {
		return "", err
	}
	h := sha256.New()
	err = filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil || !d.Type().IsRegular() ||
			!strings.HasSuffix(path, ".go") && d.Name() != "go.mod" && d.Name() != "go.sum" {
			return err
		}
		b, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, path)
		fmt.Fprintf(h, "%s %d\n", filepath.ToSlash(rel), len(b)) // WalkDir goes in lexical order
		h.Write(b)
		return nil
	})
	if err != nil {
		return "", fmt.Errorf("%s tool sources: %w", t.Label, err)
	}
	if _, err := os.Stat(filepath.Join(dir, "go.sum")); err != nil {
		return "", fmt.Errorf("%s tool sources: %w", t.Label, err)
	}
	fmt.Fprintf(h, "%s %s/%s %q %q\n", runtime.Version(), runtime.GOOS, runtime.GOARCH, t.Args, t.Env)
	cache, err := os.UserCacheDir()
	if err != nil {
		cache = os.TempDir()
	}
	bin := filepath.Join(cache, "tern-test", t.Dir+"-"+hex.EncodeToString(h.Sum(nil))[:16])
	if _, err := os.Stat(bin); err == nil {
		return bin, nil
	}
	if err := os.MkdirAll(filepath.Dir(bin), 0o755); err != nil {
		return "", err
	}
	gotool, err := exec.LookPath("go")
	if err != nil {
		return "", &OutsideError{fmt.Sprintf("no go command in PATH to build %s: %v", t.Label, err)}
	}
	tmp := fmt.Sprintf("%s.tmp%d", bin, os.Getpid())
	defer os.Remove(tmp)
	fmt.Fprintf(os.Stderr, "testenv: building %s (%s) into %s; the first build takes a few minutes\n", t.Label, dir, bin)
	t0 := time.Now()
	cmd := exec.Command(gotool, append([]string{"build", "-o", tmp}, t.Args...)...)
	cmd.Dir = dir
	cmd.Env = append(os.Environ(), t.Env...)
	out, err := cmd.CombinedOutput()
	if err != nil {
		msg := fmt.Sprintf("building %s in %s: %v: %s", t.Label, dir, err, strings.TrimSpace(string(out)))
		if outsideFailure(string(out)) {
			return "", &OutsideError{msg}
		}
		return "", errors.New(msg)
	}
	if err := os.Rename(tmp, bin); err != nil {
		return "", err
	}
	// Builds of older sources are of no more use.
	old, _ := filepath.Glob(filepath.Join(filepath.Dir(bin), t.Dir+"-????????????????"))
	for _, o := range old {
		if o != bin {
			_ = os.Remove(o)
		}
	}
	fmt.Fprintf(os.Stderr, "testenv: built %s in %v\n", t.Label, time.Since(t0).Round(time.Second))
	return bin, nil
}

// toolDir finds tools/<name>: in the module that holds the working
// directory (go test runs a test in its package's directory), or else
// relative to this file's source.
func toolDir(name string) (string, error) {
	rel := filepath.Join("tools", name)
	if wd, err := os.Getwd(); err == nil {
		for d := wd; ; d = filepath.Dir(d) {
			if b, err := os.ReadFile(filepath.Join(d, "go.mod")); err == nil && modulePath(b) == "github.com/tern-im/tern" {
				return filepath.Join(d, rel), nil
			}
			if filepath.Dir(d) == d {
				break
			}
		}
	}
	if _, file, _, ok := runtime.Caller(0); ok && filepath.IsAbs(file) {
		// internal/testenv/tool.go
		return filepath.Join(filepath.Dir(file), "..", "..", rel), nil
	}
	return "", fmt.Errorf("cannot find the module root (and so %s) from the working directory", rel)
}

// modulePath returns the module path a go.mod declares.
func modulePath(gomod []byte) string {
	for line := range strings.SplitSeq(string(gomod), "\n") {
		if f := strings.Fields(line); len(f) >= 2 && f[0] == "module" {
			return strings.Trim(f[1], `"`)
		}
	}
	return ""
}

// outsideFailure reports whether go build failed for want of the network
// or the module proxy.
func outsideFailure(out string) bool {
	for _, s := range []string{
		"dial tcp", "no such host", "connection refused", "i/o timeout", "TLS handshake",
		"proxy.golang.org", "GOPROXY", "403 Forbidden", "410 Gone", "network is unreachable",
		"GOFLAGS=-mod=mod", // a module missing from the cache with downloads off
	} {
		if strings.Contains(out, s) {
			return true
		}
	}
	return false
}
