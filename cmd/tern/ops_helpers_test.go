package main

import (
	"bufio"
	"encoding/json"
	"io"
	"net"
	"os"
	"os/exec"
	"strings"
	"testing"
	"time"
)

// startProc runs argv (the tern binary, or a shell that execs it) with env
// added to the test's environment, and waits until it logs "listening".
// Unlike startTern it adds no flag, so that a test controls all of them;
// the log must be JSON (--log-format json). p.url is the API on
// 127.0.0.1, whatever address it listens on.
func startProc(t *testing.T, env []string, argv ...string) *proc {
	t.Helper()
	cmd := exec.Command(argv[0], argv[1:]...)
	cmd.Env = append(os.Environ(), env...)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	p := &proc{cmd: cmd, done: make(chan error, 1), logs: &strings.Builder{}}
	addr := make(chan string, 1)
	go func() {
		sc := bufio.NewScanner(stderr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			line := sc.Text()
			p.mu.Lock()
			p.logs.WriteString(line + "\n")
			p.mu.Unlock()
			var rec struct{ Msg, Addr string }
			if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "listening" {
				addr <- rec.Addr
			}
		}
		_, _ = io.Copy(io.Discard, stderr)
	}()
	go func() { p.done <- cmd.Wait() }()
	select {
	case a := <-addr:
		_, port, _ := net.SplitHostPort(a)
		p.url = "http://127.0.0.1:" + port
	case err := <-p.done:
		t.Fatalf("tern exited early: %v\n%s", err, p.log())
	case <-time.After(30 * time.Second):
		_ = cmd.Process.Kill()
		t.Fatalf("tern did not start listening\n%s", p.log())
	}
	t.Cleanup(func() {
		if cmd.ProcessState == nil {
			_ = cmd.Process.Kill()
			<-p.done
		}
	})
	return p
}

// logRecords returns the JSON log records of p whose msg contains msg.
func (p *proc) logRecords(msg string) []map[string]any {
	var recs []map[string]any
	for _, line := range strings.Split(p.log(), "\n") {
		var rec map[string]any
		if json.Unmarshal([]byte(line), &rec) == nil {
			if m, _ := rec["msg"].(string); strings.Contains(m, msg) {
				recs = append(recs, rec)
			}
		}
	}
	return recs
}

// logField returns field of the first log record whose msg contains msg.
func (p *proc) logField(t *testing.T, msg, field string) string {
	t.Helper()
	recs := p.logRecords(msg)
	if len(recs) == 0 {
		t.Fatalf("no %q in the log:\n%s", msg, p.log())
	}
	s, _ := recs[0][field].(string)
	return s
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, timeout time.Duration, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(timeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// umask000 wraps argv in a shell that clears the umask first, the most
// permissive setting a process can inherit.
func umask000(argv ...string) []string {
	return append([]string{"sh", "-c", `umask 000; exec "$0" "$@"`}, argv...)
}
