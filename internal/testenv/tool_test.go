package testenv

import (
	"os"
	"path/filepath"
	"testing"
)

func TestModulePath(t *testing.T) {
	for in, want := range map[string]string{
		"module github.com/tern-im/tern\n\ngo 1.26\n":      "github.com/tern-im/tern",
		"// comment\nmodule \"github.com/tern-im/tern\"\n": "github.com/tern-im/tern",
		"module github.com/tern-im/tern/tools/ferretdb\n":  "github.com/tern-im/tern/tools/ferretdb",
		"go 1.26\n": "",
	} {
		if got := modulePath([]byte(in)); got != want {
			t.Errorf("modulePath(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestToolDir(t *testing.T) {
	dir, err := toolDir("ferretdb")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := Binary(Tool{Dir: "no-such-tool", Label: "nothing"}); err == nil {
		t.Fatal("a tool without sources built")
	}
	if b := modulePathOf(t, dir); b != "github.com/tern-im/tern/tools/ferretdb" {
		t.Fatalf("tools/ferretdb found at %s holds module %q", dir, b)
	}
}

func modulePathOf(t *testing.T, dir string) string {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(dir, "go.mod"))
	if err != nil {
		t.Fatal(err)
	}
	return modulePath(b)
}
