package node

import (
	"bytes"
	"context"
	"testing"

	"github.com/tern-im/tern/store/embedded"
)

// TestMediaKey: under a master key the link key is derived and stored
// nowhere (a copy of the store cannot mint links); without one, it is made
// once and kept, so every node and every restart signs alike.
func TestMediaKey(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(ctx, t.TempDir(), embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	master := bytes.Repeat([]byte{7}, 32)
	a, err := mediaKey(ctx, st, master)
	if err != nil {
		t.Fatal(err)
	}
	b, _ := mediaKey(ctx, st, master)
	if len(a) != 32 || !bytes.Equal(a, b) {
		t.Fatalf("derived keys %x and %x, want one 32-byte key", a, b)
	}
	if other, _ := mediaKey(ctx, st, bytes.Repeat([]byte{8}, 32)); bytes.Equal(other, a) {
		t.Fatal("two master keys derived the same link key")
	}
	if stored, err := st.Secret(ctx, mediaSecret, []byte("absent")); err != nil || !bytes.Equal(stored, []byte("absent")) {
		t.Fatalf("a derived key was stored: %x %v", stored, err)
	}

	st2, err := embedded.Open(ctx, t.TempDir(), embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st2.Close()
	k1, err := mediaKey(ctx, st2, nil)
	if err != nil {
		t.Fatal(err)
	}
	k2, _ := mediaKey(ctx, st2, nil)
	if len(k1) != 32 || !bytes.Equal(k1, k2) || bytes.Equal(k1, a) {
		t.Fatalf("stored keys %x and %x, want one random 32-byte key", k1, k2)
	}
}
