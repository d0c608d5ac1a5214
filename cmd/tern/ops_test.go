package main

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/pem"
	"math/big"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/gorilla/websocket"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// writeCert makes a self-signed certificate for 127.0.0.1 with the given
// serial and writes it and its key to dir.
func writeCert(t *testing.T, dir string, serial int64) (certFile, keyFile string, pool *x509.CertPool) {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tmpl := &x509.Certificate{
		SerialNumber: big.NewInt(serial),
		Subject:      pkix.Name{CommonName: "tern test"},
		NotBefore:    time.Now().Add(-time.Hour),
		NotAfter:     time.Now().Add(time.Hour),
		IPAddresses:  []net.IP{net.ParseIP("127.0.0.1")},
		KeyUsage:     x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:  []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:         true, BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	kb, err := x509.MarshalECPrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	certFile, keyFile = filepath.Join(dir, "cert.pem"), filepath.Join(dir, "key.pem")
	// Write beside and rename, as a certificate renewal tool does.
	for name, block := range map[string]*pem.Block{certFile: {Type: "CERTIFICATE", Bytes: der}, keyFile: {Type: "EC PRIVATE KEY", Bytes: kb}} {
		if err := os.WriteFile(name+".new", pem.EncodeToMemory(block), 0o600); err != nil {
			t.Fatal(err)
		}
		if err := os.Rename(name+".new", name); err != nil {
			t.Fatal(err)
		}
	}
	cert, _ := x509.ParseCertificate(der)
	pool = x509.NewCertPool()
	pool.AddCert(cert)
	return certFile, keyFile, pool
}

func servedSerial(t *testing.T, addr string, pool *x509.CertPool) int64 {
	t.Helper()
	conn, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, InsecureSkipVerify: true})
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	return conn.ConnectionState().PeerCertificates[0].SerialNumber.Int64()
}

func TestTLSServesWSSAndReloadsOnSIGHUP(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	certFile, keyFile, pool := writeCert(t, t.TempDir(), 1)
	sms := servertest.NewSMSSink(t)
	p := startTern(t, dir, sms.URL, "--tls-cert", certFile, "--tls-key", keyFile)
	url := strings.Replace(p.url, "http://", "https://", 1)
	addr := strings.TrimPrefix(url, "https://")

	tlsConf := &tls.Config{RootCAs: pool}
	opts := client.Options{HTTPClient: &http.Client{Transport: &http.Transport{TLSClientConfig: tlsConf}},
		Dialer: &websocket.Dialer{TLSClientConfig: tlsConf, HandshakeTimeout: 10 * time.Second}}
	alice := client.New(url, opts)
	defer alice.Close()
	if _, err := alice.Login(ctx, "+14155550501", "a", "web", sms.Code); err != nil {
		t.Fatal(err)
	}
	bob := client.New(url, opts)
	defer bob.Close()
	if _, err := bob.Login(ctx, "+14155550502", "b", "web", sms.Code); err != nil {
		t.Fatal(err)
	}
	if err := alice.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	sent, err := alice.Send(ctx, bob.Session().UserID, wire.Body{Text: "over wss"})
	if err != nil {
		t.Fatal(err)
	}
	if m := servertest.Next(t, bob, wire.TypeMessage, 10*time.Second); m.MsgID != sent.MsgID {
		t.Fatalf("got %+v", m)
	}
	// Old protocols are refused.
	if c, err := tls.Dial("tcp", addr, &tls.Config{RootCAs: pool, MaxVersion: tls.VersionTLS11}); err == nil {
		c.Close()
		t.Fatal("TLS 1.1 handshake succeeded")
	}

	if got := servedSerial(t, addr, pool); got != 1 {
		t.Fatalf("serial %d, want 1", got)
	}
	_, _, pool2 := writeCert(t, filepath.Dir(certFile), 2)
	if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for servedSerial(t, addr, pool2) != 2 {
		if time.Now().After(deadline) {
			t.Fatalf("certificate not reloaded after SIGHUP\n%s", p.log())
		}
		time.Sleep(50 * time.Millisecond)
	}
	// The socket opened before the reload is still up.
	if err := alice.Ping(ctx); err != nil {
		t.Fatalf("socket dropped by the reload: %v", err)
	}
}

// TestSIGHUPWithoutTLS: with no certificate to reload, SIGHUP (systemctl
// reload, a log rotator) must not end the process.
func TestSIGHUPWithoutTLS(t *testing.T) {
	sms := servertest.NewSMSSink(t)
	p := startTern(t, t.TempDir(), sms.URL)
	for range 2 {
		if err := p.cmd.Process.Signal(syscall.SIGHUP); err != nil {
			t.Fatal(err)
		}
	}
	deadline := time.Now().Add(10 * time.Second)
	for !strings.Contains(p.log(), "no TLS certificate to reload") {
		if time.Now().After(deadline) {
			t.Fatalf("SIGHUP not noticed\n%s", p.log())
		}
		time.Sleep(20 * time.Millisecond)
	}
	select {
	case err := <-p.done:
		t.Fatalf("tern exited on SIGHUP: %v\n%s", err, p.log())
	default:
	}
	resp, err := http.Get(p.url + "/healthz")
	if err != nil {
		t.Fatalf("not serving after SIGHUP: %v", err)
	}
	_ = resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		t.Fatalf("/healthz after SIGHUP: %d", resp.StatusCode)
	}
}

func TestPlainHTTPOnlyOnLoopbackOrWhenAllowed(t *testing.T) {
	out, err := exec.Command(ternBinary(t), "serve", "--addr", "0.0.0.0:0", "--data-dir", t.TempDir()).CombinedOutput()
	if err == nil || !strings.Contains(string(out), "refusing plain HTTP") {
		t.Fatalf("plain HTTP on 0.0.0.0 was not refused: %v\n%s", err, out)
	}
	for addr, want := range map[string]bool{"127.0.0.1:80": true, "[::1]:80": true, "localhost:1": true,
		"0.0.0.0:80": false, ":8080": false, "10.0.0.1:80": false} {
		if got := loopbackAddr(addr); got != want {
			t.Errorf("loopbackAddr(%q) = %v, want %v", addr, got, want)
		}
	}
}

func TestBackupWhileServingAndRestore(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	sms := servertest.NewSMSSink(t)
	adminLn, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	adminAddr := adminLn.Addr().String()
	adminLn.Close()
	p := startTern(t, dir, sms.URL, "--admin-addr", adminAddr, "--admin-token", "s3cret")
	alice := login(t, ctx, p.url, sms, "+14155550511")
	bob := login(t, ctx, p.url, sms, "+14155550512")
	if err := alice.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var last wire.Sent
	for i := 0; i < 20; i++ {
		if last, err = alice.Send(ctx, bob.Session().UserID, wire.Body{Text: "kept"}); err != nil {
			t.Fatal(err)
		}
	}
	out := filepath.Join(t.TempDir(), "b.tar")
	var so, se strings.Builder
	if code := run(ctx, []string{"backup", "--admin-addr", adminAddr, "--admin-token", "wrong", "--out", out}, &so, &se); code == 0 {
		t.Fatal("backup with a wrong token succeeded")
	}
	if code := run(ctx, []string{"backup", "--admin-addr", adminAddr, "--admin-token", "s3cret", "--out", out}, &so, &se); code != 0 {
		t.Fatalf("backup failed: %s", se.String())
	}
	// Traffic after the snapshot is not in it.
	if _, err := alice.Send(ctx, bob.Session().UserID, wire.Body{Text: "after"}); err != nil {
		t.Fatal(err)
	}

	restored := t.TempDir()
	if code := run(ctx, []string{"restore", "--data-dir", restored, "--in", out}, &so, &se); code != 0 {
		t.Fatalf("restore failed: %s", se.String())
	}
	if code := run(ctx, []string{"restore", "--data-dir", restored, "--in", out}, &so, &se); code == 0 {
		t.Fatal("restore into a non-empty dir succeeded")
	}
	p2 := startTern(t, restored, sms.URL)
	bob2 := client.New(p2.url, client.Options{})
	defer bob2.Close()
	bob2.SetSession(bob.Session())
	h, err := bob2.History(ctx, last.ChatID, 0, 100)
	if err != nil {
		t.Fatal(err)
	}
	if len(h.Messages) != 20 || h.Messages[0].MsgID != last.MsgID {
		t.Fatalf("restored history has %d messages (newest %+v), want the 20 before the backup", len(h.Messages), h.Messages[0])
	}
}
