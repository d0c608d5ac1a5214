package safehttp

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
)

func TestPublic(t *testing.T) {
	for addr, want := range map[string]bool{
		"8.8.8.8": true, "1.1.1.1": true, "2606:4700:4700::1111": true,
		"127.0.0.1": false, "::1": false, "10.1.2.3": false, "172.16.0.1": false, "192.168.1.1": false,
		"169.254.169.254": false, "fe80::1": false, "fc00::1": false, "0.0.0.0": false, "::": false,
		"100.64.0.1": false, "224.0.0.1": false, "255.255.255.255": false, "::ffff:127.0.0.1": false,
		"::ffff:10.0.0.1": false, "192.0.2.1": false, "2001:db8::1": false, "64:ff9b::a00:1": false,
		"0.1.2.3": false, "240.0.0.1": false,
	} {
		if got := Public(netip.MustParseAddr(addr)); got != want {
			t.Errorf("Public(%s) = %v, want %v", addr, got, want)
		}
	}
}

// TestClientRefusesLoopback: a request to a loopback server fails at the
// dial, and succeeds with AllowPrivate; redirects are not followed.
func TestClientRefusesLoopback(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.URL.Path == "/redirect" {
			http.Redirect(w, r, "/target", http.StatusFound)
			return
		}
		w.WriteHeader(http.StatusNoContent)
	}))
	defer srv.Close()
	if _, err := NewClient(Options{}).Get(srv.URL); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("GET of a loopback server: %v, want ErrForbiddenAddress", err)
	}
	c := NewClient(Options{AllowPrivate: true})
	resp, err := c.Get(srv.URL)
	if err != nil || resp.StatusCode != http.StatusNoContent {
		t.Fatalf("GET with AllowPrivate: %v %v", resp, err)
	}
	resp.Body.Close()
	resp, err = c.Get(srv.URL + "/redirect")
	if err != nil || resp.StatusCode != http.StatusFound {
		t.Fatalf("a redirect was followed: %v %v", resp, err)
	}
	resp.Body.Close()
	if err := Check(t.Context(), "127.0.0.1"); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("Check(127.0.0.1): %v", err)
	}
	if err := Check(t.Context(), "localhost"); !errors.Is(err, ErrForbiddenAddress) {
		t.Fatalf("Check(localhost): %v", err)
	}
}
