package seal_test

import (
	"bytes"
	"testing"

	"github.com/tern-im/tern/internal/seal"
)

func TestSealOpen(t *testing.T) {
	key := bytes.Repeat([]byte{7}, 32)
	blob, err := seal.Seal(key, "ring", []byte("secret"))
	if err != nil {
		t.Fatal(err)
	}
	if !seal.IsSealed(blob) || bytes.Contains(blob, []byte("secret")) {
		t.Fatalf("sealed value %q", blob)
	}
	if plain, err := seal.Open(key, "ring", blob); err != nil || string(plain) != "secret" {
		t.Fatalf("Open: %q %v", plain, err)
	}
	if _, err := seal.Open(key, "other", blob); err == nil {
		t.Error("opened under another name")
	}
	if _, err := seal.Open(bytes.Repeat([]byte{8}, 32), "ring", blob); err == nil {
		t.Error("opened with another key")
	}
	if _, err := seal.Open(key, "ring", []byte("clear")); err == nil {
		t.Error("opened a value that is not sealed")
	}
	if _, err := seal.Seal([]byte("short"), "ring", nil); err == nil {
		t.Error("sealed with a 5-byte key")
	}
	again, _ := seal.Seal(key, "ring", []byte("secret"))
	if bytes.Equal(again, blob) {
		t.Error("two sealings gave the same bytes: the nonce is not random")
	}
}
