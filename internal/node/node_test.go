package node

import (
	"bytes"
	"context"
	"testing"

	"github.com/tern-im/tern/internal/seal"
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

// TestVAPIDKeysSealedWhenMasterKeyAdded: a master key given to a store
// whose VAPID pair is in the clear seals that pair (every browser
// subscribed with its public half) instead of replacing it; from then on
// the pair opens only with that key.
func TestVAPIDKeysSealedWhenMasterKeyAdded(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(ctx, t.TempDir(), embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	clear, err := vapidKeys(ctx, st, nil)
	if err != nil {
		t.Fatal(err)
	}
	if again, err := vapidKeys(ctx, st, nil); err != nil || again != clear {
		t.Fatalf("second start without a master key: %v %v, want the same pair", again, err)
	}
	master := bytes.Repeat([]byte{7}, 32)
	sealed, err := vapidKeys(ctx, st, master)
	if err != nil || sealed != clear {
		t.Fatalf("first start with a master key: %v %v, want the stored pair %v", sealed, err, clear)
	}
	blob, err := st.Secret(ctx, vapidSecret, []byte("absent"))
	if err != nil || !bytes.HasPrefix(blob, []byte(seal.Prefix)) || bytes.Contains(blob, []byte(clear.Private)) {
		t.Fatalf("stored after sealing: %q %v, want it sealed", blob, err)
	}
	if again, err := vapidKeys(ctx, st, master); err != nil || again != clear {
		t.Fatalf("second start with the master key: %v %v, want the stored pair", again, err)
	}
	if _, err := vapidKeys(ctx, st, nil); err == nil {
		t.Fatal("a sealed pair was read without the master key")
	}
	if _, err := vapidKeys(ctx, st, bytes.Repeat([]byte{8}, 32)); err == nil {
		t.Fatal("a sealed pair was read with another master key")
	}
}

// TestVAPIDKeysDerived: a store that held no pair when it first got a
// master key derives the pair from it (as before any pair was sealed) and
// keeps only a marker, which a node without the key refuses.
func TestVAPIDKeysDerived(t *testing.T) {
	ctx := context.Background()
	st, err := embedded.Open(ctx, t.TempDir(), embedded.Options{NoSync: true})
	if err != nil {
		t.Fatal(err)
	}
	defer st.Close()
	master := bytes.Repeat([]byte{7}, 32)
	a, err := vapidKeys(ctx, st, master)
	if err != nil {
		t.Fatal(err)
	}
	want, err := deriveVAPID(master)
	if err != nil || a != want {
		t.Fatalf("keys %v (%v), want the derived %v", a, err, want)
	}
	if b, err := vapidKeys(ctx, st, master); err != nil || b != a {
		t.Fatalf("second start: %v %v, want the same pair", b, err)
	}
	if stored, err := st.Secret(ctx, vapidSecret, []byte("absent")); err != nil || string(stored) != vapidDerived {
		t.Fatalf("stored %q %v, want only the marker", stored, err)
	}
	if _, err := vapidKeys(ctx, st, nil); err == nil {
		t.Fatal("a node without the master key made a new pair")
	}
}
