package main

import (
	"net/http"
	"net/http/httptest"
	"testing"
	"time"
)

func TestCheck(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.WriteHeader(status)
	}))
	defer srv.Close()
	if err := check(srv.URL+"/readyz", time.Second, false); err != nil {
		t.Fatalf("200: %v", err)
	}
	status = http.StatusServiceUnavailable
	if err := check(srv.URL+"/readyz", time.Second, false); err == nil {
		t.Fatal("503 passed the check")
	}
	srv.Close()
	if err := check(srv.URL+"/readyz", time.Second, false); err == nil {
		t.Fatal("a closed port passed the check")
	}
}

func TestCheckTLS(t *testing.T) {
	srv := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer srv.Close()
	if err := check(srv.URL, time.Second, false); err == nil {
		t.Fatal("an unknown certificate passed without -insecure")
	}
	if err := check(srv.URL, time.Second, true); err != nil {
		t.Fatalf("-insecure: %v", err)
	}
}
