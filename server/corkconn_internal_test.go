package server

import (
	"bytes"
	"io"
	"net"
	"sync"
	"testing"
	"time"
)

// TestCorkConn: corked writes reach the peer in order, in one write at
// uncork; a write past the limit goes out at once; Close sends what is held.
func TestCorkConn(t *testing.T) {
	pool := &sync.Pool{New: func() any { b := make([]byte, 0, corkLimit); return &b }}
	a, b := net.Pipe()
	c := newCorkConn(a, pool, time.Second)
	got := make(chan []byte, 16)
	go func() {
		buf := make([]byte, 4*corkLimit)
		for {
			n, err := b.Read(buf)
			if n > 0 {
				got <- append([]byte(nil), buf[:n]...)
			}
			if err != nil {
				close(got)
				return
			}
		}
	}()
	write := func(p string) {
		t.Helper()
		if n, err := c.Write([]byte(p)); err != nil || n != len(p) {
			t.Fatalf("write %q: %d, %v", p, n, err)
		}
	}

	write("plain") // not corked: straight through
	if r := <-got; string(r) != "plain" {
		t.Fatalf("uncorked write arrived as %q", r)
	}
	c.cork()
	write("one,")
	write("two,")
	write("three")
	if err := c.uncork(); err != nil {
		t.Fatal(err)
	}
	if r := <-got; string(r) != "one,two,three" {
		t.Fatalf("corked batch arrived as %q, want one write", r)
	}

	c.cork()
	write("held,")
	big := bytes.Repeat([]byte{'x'}, corkLimit+1)
	if _, err := c.Write(big); err != nil {
		t.Fatal(err)
	}
	var all []byte
	for len(all) < len("held,")+len(big) {
		all = append(all, <-got...)
	}
	if !bytes.Equal(all, append([]byte("held,"), big...)) {
		t.Fatalf("a write past the limit: %d bytes arrived out of order", len(all))
	}
	write("closing")
	if err := c.Close(); err != nil {
		t.Fatal(err)
	}
	var rest []byte
	for r := range got {
		rest = append(rest, r...)
	}
	if string(rest) != "closing" {
		t.Fatalf("Close sent %q, want the held bytes", rest)
	}
	if _, err := c.Write([]byte("after")); err == nil {
		// Corked writes after Close would only buffer; the uncorked one fails.
		if err := c.uncork(); err == nil {
			t.Fatal("writes after Close succeeded")
		}
	}
	_, _ = io.Copy(io.Discard, b)
}
