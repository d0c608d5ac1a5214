package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
	"github.com/tern-im/tern/wire"
)

// TestOpsLockedDataDir: a second node on a data directory in use says
// that another Tern process holds it, and names it.
func TestOpsLockedDataDir(t *testing.T) {
	dir := t.TempDir()
	sms := servertest.NewSMSSink(t)
	startTern(t, dir, sms.URL)
	out, err := exec.Command(ternBinary(t), "serve", "--addr", "127.0.0.1:0", "--data-dir", dir).CombinedOutput()
	var ee *exec.ExitError
	if !errors.As(err, &ee) || ee.ExitCode() != 1 {
		t.Fatalf("second node on the same data dir: %v, want exit status 1\n%s", err, out)
	}
	if !strings.Contains(string(out), "another Tern process holds the data directory "+dir) {
		t.Fatalf("the error does not say that another process holds %s:\n%s", dir, out)
	}
}

// TestOpsSIGINTStopsCleanly: Ctrl-C is the normal way to stop a node in a
// terminal: it drains and exits 0, also through `make run`, which must not
// report an error for it.
func TestOpsSIGINTStopsCleanly(t *testing.T) {
	sms := servertest.NewSMSSink(t)
	p := startTern(t, t.TempDir(), sms.URL)
	if err := p.cmd.Process.Signal(os.Interrupt); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("tern exited with %v after SIGINT\n%s", err, p.log())
		}
	case <-time.After(30 * time.Second):
		t.Fatal("tern did not exit after SIGINT")
	}
	if len(p.logRecords("tern stopped")) == 0 {
		t.Fatalf("no clean stop in the log:\n%s", p.log())
	}

	if _, err := exec.LookPath("make"); err != nil {
		t.Skipf("SKIPPING the make run half: no make (%v)", err)
	}
	root, err := filepath.Abs("../..")
	if err != nil {
		t.Fatal(err)
	}
	cmd := exec.Command("make", "-C", root, "run", "BIN="+filepath.Join(t.TempDir(), "tern"),
		"ARGS=--addr 127.0.0.1:0 --data-dir "+t.TempDir()+" --log-format json")
	// Its own process group, as a terminal's foreground job: Ctrl-C
	// reaches make, the go command if any, and tern.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	var mu sync.Mutex
	var out bytes.Buffer
	pr, pw := io.Pipe()
	cmd.Stdout, cmd.Stderr = pw, pw
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(pr)
		once := sync.Once{}
		for sc.Scan() {
			mu.Lock()
			out.WriteString(sc.Text() + "\n")
			mu.Unlock()
			if strings.Contains(sc.Text(), `"msg":"listening"`) {
				once.Do(func() { close(listening) })
			}
		}
	}()
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- cmd.Wait(); pw.Close() }()
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-done
		}
	})
	output := func() string { mu.Lock(); defer mu.Unlock(); return out.String() }
	select {
	case <-listening:
	case err := <-done:
		t.Fatalf("make run ended early: %v\n%s", err, output())
	case <-time.After(3 * time.Minute):
		t.Fatalf("make run did not start listening\n%s", output())
	}
	if err := syscall.Kill(-cmd.Process.Pid, syscall.SIGINT); err != nil {
		t.Fatal(err)
	}
	select {
	case <-done:
	case <-time.After(30 * time.Second):
		t.Fatalf("make run did not end after Ctrl-C\n%s", output())
	}
	waitFor(t, "the rest of make's output", 10*time.Second, func() bool { return strings.Contains(output(), "tern stopped") })
	// make itself dies of the SIGINT it got, silently; an error line
	// means its recipe failed.
	if strings.Contains(output(), "make: ***") {
		t.Fatalf("make reported an error for Ctrl-C:\n%s", output())
	}
}

// modes returns the permission bits of everything under dir.
func modes(t *testing.T, dir string) map[string]fs.FileMode {
	t.Helper()
	m := map[string]fs.FileMode{}
	err := filepath.WalkDir(dir, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		m[path] = info.Mode()
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return m
}

func checkPrivate(t *testing.T, dir string) {
	t.Helper()
	for path, mode := range modes(t, dir) {
		want := fs.FileMode(0o600)
		if mode.IsDir() {
			want = 0o700
		}
		if mode.Perm() != want {
			t.Errorf("%s: mode %v, want %v", path, mode.Perm(), want)
		}
	}
}

// TestOpsDataDirPermissions: the data directory is the owner's only
// (directories 0700, files 0600) whatever the umask; a directory others
// can read is fixed at start, with a warning; backups and restores are
// private too.
func TestOpsDataDirPermissions(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	sms := servertest.NewSMSSink(t)
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte("perm-token\n"), 0o600); err != nil {
		t.Fatal(err)
	}

	// A new data directory under umask 000.
	fresh := filepath.Join(t.TempDir(), "data")
	p := startProc(t, []string{"TERN_ADMIN_TOKEN_FILE=" + tokenFile}, umask000(ternBinary(t), "serve",
		"--addr", "127.0.0.1:0", "--data-dir", fresh, "--log-format", "json",
		"--sms-provider", "http", "--sms-http-url", sms.URL, "--admin-addr", "127.0.0.1:0")...)
	alice := login(t, ctx, p.url, sms, "+14155550601")
	bob := login(t, ctx, p.url, sms, "+14155550602")
	if err := alice.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, bob.Session().UserID, wire.Body{Text: "private"}); err != nil {
		t.Fatal(err)
	}
	checkPrivate(t, fresh)

	// A backup taken under umask 000, then restored into an empty
	// directory made 0755 beforehand.
	backupDir := t.TempDir()
	out := filepath.Join(backupDir, "b.tar")
	adminAddr := p.logField(t, "admin listening", "addr")
	argv := umask000(ternBinary(t), "backup", "--admin-addr", adminAddr, "--out", out)
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), "TERN_ADMIN_TOKEN_FILE="+tokenFile)
	if b, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("backup: %v\n%s", err, b)
	}
	if st, err := os.Stat(out); err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("backup file: %v, mode %v, want 0600", err, st.Mode().Perm())
	}
	restored := filepath.Join(t.TempDir(), "restored")
	if err := os.Mkdir(restored, 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.Chmod(restored, 0o755); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := runCmd(t, "restore", "--data-dir", restored, "--in", out); code != 0 {
		t.Fatalf("restore: %s", errOut)
	}
	checkPrivate(t, restored)

	// A data directory others can read, as an older Tern under umask 022
	// or a container image's 0755 /data left it: fixed at start.
	loose := filepath.Join(t.TempDir(), "data")
	st, err := embedded.Open(ctx, loose, embedded.Options{})
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := st.EnsureUser(ctx, "+15550001111", store.NewID(store.PrefixUser), time.Now()); err != nil {
		t.Fatal(err)
	}
	if err := st.Close(); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(loose, "notes.txt"), nil, 0o644); err != nil {
		t.Fatal(err)
	}
	for path, mode := range modes(t, loose) {
		loosened := fs.FileMode(0o644)
		if mode.IsDir() {
			loosened = 0o755
		}
		if err := os.Chmod(path, loosened); err != nil {
			t.Fatal(err)
		}
	}
	p2 := startTern(t, loose, sms.URL)
	checkPrivate(t, loose)
	if recs := p2.logRecords("made it private"); len(recs) == 0 || recs[0]["level"] != "WARN" {
		t.Fatalf("no warning about the permissions fixed:\n%s", p2.log())
	}
}

// TestOpsSMSLogProvider: codes in the log are fine on loopback; elsewhere
// the default refuses to start, --dev allows it, and --sms-provider log
// given explicitly starts with a loud warning.
func TestOpsSMSLogProvider(t *testing.T) {
	// The default, on an address others reach: refused before anything.
	dir := filepath.Join(t.TempDir(), "data")
	code, _, errOut := runCmd(t, "serve", "--addr", "0.0.0.0:0", "--insecure-http", "--data-dir", dir)
	if code != 2 || !strings.Contains(errOut, "--dev") || !strings.Contains(errOut, "--sms-provider http") {
		t.Fatalf("default log provider on 0.0.0.0: exit %d, stderr:\n%s", code, errOut)
	}
	if _, err := os.Stat(dir); err == nil {
		t.Fatal("the refused node created its data directory")
	}

	bin := ternBinary(t)
	public := []string{bin, "serve", "--addr", "0.0.0.0:0", "--insecure-http", "--log-format", "json"}
	codeLogged := func(p *proc, phone string) {
		t.Helper()
		resp, err := http.Post(p.url+"/v1/auth/code", "application/json", strings.NewReader(`{"phone":"`+phone+`"}`))
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusAccepted {
			t.Fatalf("code request: %s", resp.Status)
		}
		waitFor(t, "the code in the log", 10*time.Second, func() bool {
			return strings.Contains(p.log(), phone) && strings.Contains(p.log(), "Your Tern code is")
		})
	}
	warned := func(p *proc, msg string) bool {
		for _, r := range p.logRecords(msg) {
			if r["level"] == "WARN" {
				return true
			}
		}
		return false
	}

	// --dev (or TERN_DEV): a development node, codes in the log.
	dev := startProc(t, []string{"TERN_DEV=true"}, append(public, "--data-dir", t.TempDir())...)
	if !warned(dev, "development node") {
		t.Errorf("--dev: no warning that codes go to the log:\n%s", dev.log())
	}
	codeLogged(dev, "+14155550611")

	// Asked for by name (flag or variable): starts, loudly.
	explicit := startProc(t, []string{"TERN_SMS_PROVIDER=log"}, append(public, "--data-dir", t.TempDir())...)
	if !warned(explicit, "VERIFICATION CODES ARE WRITTEN TO THIS LOG") {
		t.Errorf("explicit --sms-provider log: no loud warning:\n%s", explicit.log())
	}
	codeLogged(explicit, "+14155550612")

	// Loopback, no flags: the make run case, no comment.
	local := startProc(t, nil, bin, "serve", "--addr", "127.0.0.1:0", "--data-dir", t.TempDir(), "--log-format", "json")
	if warned(local, "VERIFICATION CODES") || warned(local, "development node") {
		t.Errorf("loopback node warned about the log provider:\n%s", local.log())
	}
	codeLogged(local, "+14155550613")
}

// TestOpsAdminPprofNeedsToken: pprof is behind the admin token like the
// admin API, off without one; /debug/pprof/cmdline (which would print
// secret flags) is not served; the token can come from a file, and is
// neither logged nor on the command line.
func TestOpsAdminPprofNeedsToken(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const token = "pprof-token-5b1e"
	tokenFile := filepath.Join(t.TempDir(), "token")
	if err := os.WriteFile(tokenFile, []byte(token+"\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	sms := servertest.NewSMSSink(t)
	p := startTern(t, t.TempDir(), sms.URL, "--admin-addr", "127.0.0.1:0", "--admin-token-file", tokenFile)
	admin := "http://" + p.logField(t, "admin listening", "addr")
	get := func(path, tok string) (int, string) {
		t.Helper()
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, admin+path, nil)
		if tok != "" {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/debug/pprof/symbol", "/debug/pprof/cmdline"} {
		if code, _ := get(path, ""); code != http.StatusUnauthorized {
			t.Errorf("GET %s without the token: %d, want 401", path, code)
		}
		if code, _ := get(path, "wrong"); code != http.StatusUnauthorized {
			t.Errorf("GET %s with a wrong token: %d, want 401", path, code)
		}
	}
	if code, body := get("/debug/pprof/goroutine?debug=1", token); code != http.StatusOK || !strings.Contains(body, "goroutine profile") {
		t.Errorf("GET goroutine profile with the token: %d", code)
	}
	if code, body := get("/debug/pprof/cmdline", token); code == http.StatusOK || strings.Contains(body, tokenFile) || strings.Contains(body, token) {
		t.Errorf("GET /debug/pprof/cmdline with the token: %d %q; want it not served", code, body)
	}
	var so, se bytes.Buffer
	if code := run(ctx, []string{"backup", "--admin-addr", strings.TrimPrefix(admin, "http://"),
		"--admin-token-file", tokenFile, "--out", filepath.Join(t.TempDir(), "b.tar")}, &so, &se); code != 0 {
		t.Fatalf("backup with --admin-token-file: %s", se.String())
	}
	if cmdline, err := os.ReadFile(fmt.Sprintf("/proc/%d/cmdline", p.cmd.Process.Pid)); err == nil && bytes.Contains(cmdline, []byte(token)) {
		t.Error("the token is on the command line")
	}
	if strings.Contains(p.log(), token) {
		t.Errorf("the token is in the log:\n%s", p.log())
	}

	// No token: pprof and the admin API are off, and say so.
	p2 := startTern(t, t.TempDir(), sms.URL, "--admin-addr", "127.0.0.1:0")
	admin = "http://" + p2.logField(t, "admin listening", "addr")
	for _, path := range []string{"/debug/pprof/", "/debug/pprof/goroutine?debug=1", "/admin/v1/backup"} {
		if code, body := get(path, ""); code != http.StatusNotFound || !strings.Contains(body, "no --admin-token") {
			t.Errorf("GET %s on a node without a token: %d %q, want 404 saying why", path, code, body)
		}
	}
}

// slowBody sends a request whose body comes one byte at a time, slower
// than the node's read timeout allows, and fails the test unless the node
// cuts it off (answers or closes) within a generous deadline.
func slowBody(t *testing.T, addr, head string) {
	t.Helper()
	conn, err := net.Dial("tcp", addr)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	const size = 100000 // at 10 bytes a second: hours
	if _, err := io.WriteString(conn, head+fmt.Sprintf("Content-Length: %d\r\n\r\n", size)); err != nil {
		t.Fatal(err)
	}
	stop := make(chan struct{})
	defer close(stop)
	go func() {
		tick := time.NewTicker(100 * time.Millisecond)
		defer tick.Stop()
		for range size {
			select {
			case <-stop:
				return
			case <-tick.C:
			}
			if _, err := conn.Write([]byte(" ")); err != nil {
				return
			}
		}
	}()
	_ = conn.SetReadDeadline(time.Now().Add(30 * time.Second))
	_, err = conn.Read(make([]byte, 512))
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		t.Fatalf("%s: still reading the trickled body after 30 s", strings.SplitN(head, "\r\n", 2)[0])
	}
}

// TestOpsSlowBodyCutOff: a client trickling a request body is cut off by
// the read timeout, on the API and on the admin listener.
func TestOpsSlowBodyCutOff(t *testing.T) {
	sms := servertest.NewSMSSink(t)
	p := startTern(t, t.TempDir(), sms.URL, "--http-read-timeout", "1s",
		"--admin-addr", "127.0.0.1:0", "--admin-token", "slow-token")
	slowBody(t, strings.TrimPrefix(p.url, "http://"),
		"POST /v1/auth/code HTTP/1.1\r\nHost: tern\r\nContent-Type: application/json\r\n")
	// pprof's symbol lookup reads its POST body.
	slowBody(t, p.logField(t, "admin listening", "addr"),
		"POST /debug/pprof/symbol HTTP/1.1\r\nHost: tern\r\nAuthorization: Bearer slow-token\r\n")
}

// TestOpsWebSocketOutlivesHTTPTimeouts: the request timeouts do not reach
// a socket once it is upgraded.
func TestOpsWebSocketOutlivesHTTPTimeouts(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	const timeout = time.Second
	sms := servertest.NewSMSSink(t)
	p := startTern(t, t.TempDir(), sms.URL, "--http-read-timeout", timeout.String(), "--http-write-timeout", timeout.String())
	alice := login(t, ctx, p.url, sms, "+14155550621")
	bob := login(t, ctx, p.url, sms, "+14155550622")
	if err := alice.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Both sockets stay up and working well past both timeouts.
	start := time.Now()
	for time.Since(start) < 4*timeout {
		if err := alice.Ping(ctx); err != nil {
			t.Fatalf("socket broken %v after connecting: %v", time.Since(start), err)
		}
		time.Sleep(100 * time.Millisecond)
	}
	sent, err := alice.Send(ctx, bob.Session().UserID, wire.Body{Text: "still here"})
	if err != nil {
		t.Fatal(err)
	}
	if m := servertest.Next(t, bob, wire.TypeMessage, 10*time.Second); m.MsgID != sent.MsgID {
		t.Fatalf("got %+v", m)
	}
	if !alice.Connected() || !bob.Connected() {
		t.Fatal("a socket reconnected in the meantime")
	}
}

// TestOpsMetricsPlacement: /metrics stay on the API port only for a
// loopback node without TLS; --metrics-addr moves them; with TLS they go
// to the admin listener; with nowhere to go, a warning says so.
func TestOpsMetricsPlacement(t *testing.T) {
	sms := servertest.NewSMSSink(t)
	status := func(c *http.Client, url string) (int, string) {
		t.Helper()
		resp, err := c.Get(url)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	hc := http.DefaultClient

	local := startTern(t, t.TempDir(), sms.URL)
	if code, body := status(hc, local.url+"/metrics"); code != http.StatusOK || !strings.Contains(body, "tern_") {
		t.Errorf("loopback node: API /metrics %d", code)
	}

	moved := startTern(t, t.TempDir(), sms.URL, "--metrics-addr", "127.0.0.1:0")
	if code, _ := status(hc, moved.url+"/metrics"); code != http.StatusNotFound {
		t.Errorf("--metrics-addr: API /metrics %d, want 404", code)
	}
	maddr := moved.logField(t, "tern starting", "metrics")
	if code, body := status(hc, "http://"+maddr+"/metrics"); code != http.StatusOK || !strings.Contains(body, "tern_") {
		t.Errorf("--metrics-addr: %s/metrics %d", maddr, code)
	}

	certFile, keyFile, pool := writeCert(t, t.TempDir(), 1)
	tlsClient := &http.Client{Transport: &http.Transport{TLSClientConfig: &tls.Config{RootCAs: pool}}}
	withTLS := startTern(t, t.TempDir(), sms.URL, "--tls-cert", certFile, "--tls-key", keyFile,
		"--admin-addr", "127.0.0.1:0")
	api := strings.Replace(withTLS.url, "http://", "https://", 1)
	if code, _ := status(tlsClient, api+"/metrics"); code != http.StatusNotFound {
		t.Errorf("TLS node: API /metrics %d, want 404", code)
	}
	if code, _ := status(tlsClient, api+"/healthz"); code != http.StatusOK {
		t.Errorf("TLS node: /healthz %d", code)
	}
	admin := "http://" + withTLS.logField(t, "admin listening", "addr")
	if code, body := status(hc, admin+"/metrics"); code != http.StatusOK || !strings.Contains(body, "tern_") {
		t.Errorf("TLS node: admin /metrics %d", code)
	}

	nowhere := startTern(t, t.TempDir(), sms.URL, "--tls-cert", certFile, "--tls-key", keyFile)
	if recs := nowhere.logRecords("metrics are not served"); len(recs) == 0 || recs[0]["level"] != "WARN" {
		t.Errorf("TLS node without a metrics or admin address: no warning\n%s", nowhere.log())
	}
}

// trickle gives its data in pieces, pausing before each: a slow uplink.
type trickle struct {
	data  []byte
	piece int
	pause time.Duration
}

func (r *trickle) Read(p []byte) (int, error) {
	if len(r.data) == 0 {
		return 0, io.EOF
	}
	time.Sleep(r.pause)
	n := copy(p[:min(len(p), r.piece)], r.data)
	r.data = r.data[n:]
	return n, nil
}

// TestOpsSlowUploadOutlivesReadTimeout: a file upload gets time for a slow
// link beyond the listener's read and write timeouts (made 1 s here),
// which still cut off a slow JSON body (TestOpsSlowBodyCutOff).
func TestOpsSlowUploadOutlivesReadTimeout(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	sms := servertest.NewSMSSink(t)
	p := startTern(t, t.TempDir(), sms.URL, "--http-read-timeout", "1s", "--http-write-timeout", "1s")
	alice := login(t, ctx, p.url, sms, "+14155550631")
	doc := []byte("%PDF-1.4\n" + strings.Repeat("x", 4000))
	start := time.Now()
	m, err := alice.UploadMedia(ctx, &trickle{data: doc, piece: 1000, pause: 500 * time.Millisecond}, "application/pdf", "document")
	if err != nil {
		t.Fatalf("an upload taking %v past a 1 s read timeout: %v", time.Since(start).Round(time.Millisecond), err)
	}
	if m.Size != int64(len(doc)) || m.MIMEType != "application/pdf" {
		t.Fatalf("upload: %+v", m)
	}
}
