package server

import (
	"net/http/httptest"
	"testing"
)

func TestClientIPTakesTheEntryOurProxyAdded(t *testing.T) {
	r := httptest.NewRequest("GET", "/", nil)
	r.RemoteAddr = "10.0.0.5:4321"
	r.Header.Set("X-Forwarded-For", "6.6.6.6, 203.0.113.7")
	if got := clientIP(r, false); got != "10.0.0.5" {
		t.Fatalf("untrusted proxy: %s, want the peer address", got)
	}
	if got := clientIP(r, true); got != "203.0.113.7" {
		t.Fatalf("trusted proxy: %s, want the rightmost entry, not the forgeable first", got)
	}
	r.Header.Set("X-Forwarded-For", "198.51.100.1")
	if got := clientIP(r, true); got != "198.51.100.1" {
		t.Fatalf("single entry: %s", got)
	}
	// A client's forged line first, the proxy's own line appended.
	r.Header.Set("X-Forwarded-For", "6.6.6.6")
	r.Header.Add("X-Forwarded-For", "203.0.113.9")
	if got := clientIP(r, true); got != "203.0.113.9" {
		t.Fatalf("two header lines: %s, want the last line's entry", got)
	}
}
