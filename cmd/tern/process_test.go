package main

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// These tests run the real binary as a separate process, so that a crash
// is a real SIGKILL with nothing flushed on the way out.

var (
	buildOnce sync.Once
	binPath   string
	buildErr  error
)

func ternBinary(t *testing.T) string {
	t.Helper()
	buildOnce.Do(func() {
		dir, err := os.MkdirTemp("", "tern-bin-")
		if err != nil {
			buildErr = err
			return
		}
		binPath = filepath.Join(dir, "tern")
		out, err := exec.Command("go", "build", "-o", binPath, ".").CombinedOutput()
		if err != nil {
			buildErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if buildErr != nil {
		t.Fatal(buildErr)
	}
	return binPath
}

type proc struct {
	cmd  *exec.Cmd
	url  string
	done chan error
	logs *strings.Builder
	mu   sync.Mutex
}

// startTern runs `tern serve` on a loopback port the OS picks, with the
// test's SMS sink and JSON logs, and waits until it listens.
func startTern(t *testing.T, dataDir, smsURL string, extra ...string) *proc {
	t.Helper()
	args := append([]string{ternBinary(t), "serve", "--addr", "127.0.0.1:0", "--data-dir", dataDir,
		"--sms-provider", "http", "--sms-http-url", smsURL, "--log-format", "json",
		"--codes-per-ip-hour", "0", "--verifies-per-ip-hour", "0"}, extra...)
	return startProc(t, nil, args...)
}

func (p *proc) log() string {
	p.mu.Lock()
	defer p.mu.Unlock()
	return p.logs.String()
}

func login(t *testing.T, ctx context.Context, url string, sms *servertest.SMSSink, phone string) *client.Client {
	t.Helper()
	c := client.New(url, client.Options{})
	t.Cleanup(func() { _ = c.Close() })
	if _, err := c.Login(ctx, phone, "dev", "other", sms.Code); err != nil {
		t.Fatalf("login %s: %v", phone, err)
	}
	return c
}

// TestCrashAfterSentLosesNothing kills the server with SIGKILL right after
// N sent answers and checks, after a restart on the same data dir, that all
// N are delivered exactly once and in order.
func TestCrashAfterSentLosesNothing(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 90*time.Second)
	defer cancel()
	dir := t.TempDir()
	sms := servertest.NewSMSSink(t)
	// The per-device send limit is a setting; this test sends in bursts.
	p := startTern(t, dir, sms.URL, "--send-burst", "1000")

	alice := login(t, ctx, p.url, sms, "+14155550301")
	bob := login(t, ctx, p.url, sms, "+14155550302")
	if err := alice.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	// Concurrent senders, so that answered messages share group commits.
	const senders, each = 8, 25
	var mu sync.Mutex
	sent := map[string]wire.Sent{}
	var wg sync.WaitGroup
	errs := make(chan error, senders)
	for s := 0; s < senders; s++ {
		wg.Add(1)
		go func(s int) {
			defer wg.Done()
			for i := 0; i < each; i++ {
				r, err := alice.Send(ctx, bob.Session().UserID, wire.Body{Text: fmt.Sprintf("s%d-%d", s, i)})
				if err != nil {
					errs <- err
					return
				}
				mu.Lock()
				sent[r.MsgID] = r
				mu.Unlock()
			}
		}(s)
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	// Every one of these was answered sent; now the process dies at once.
	if err := p.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-p.done
	_ = alice.Close()

	p2 := startTern(t, dir, sms.URL)
	bob2 := client.New(p2.url, client.Options{})
	defer bob2.Close()
	bob2.SetSession(bob.Session())
	if err := bob2.Connect(ctx); err != nil {
		t.Fatalf("reconnect after crash: %v\n%s", err, p2.log())
	}
	got := map[string]bool{}
	var lastSeq int64
	for len(got) < len(sent) {
		f, err := servertest.NextFrame(bob2, wire.TypeMessage, 10*time.Second)
		if err != nil {
			t.Fatalf("after %d of %d messages: %v", len(got), len(sent), err)
		}
		if _, ok := sent[f.MsgID]; !ok {
			t.Fatalf("unknown message %s", f.MsgID)
		}
		if got[f.MsgID] {
			t.Fatalf("message %s delivered twice", f.MsgID)
		}
		if f.Seq <= lastSeq {
			t.Fatalf("seq %d after %d: out of order", f.Seq, lastSeq)
		}
		lastSeq = f.Seq
		got[f.MsgID] = true
	}
	if lastSeq != int64(len(sent)) {
		t.Fatalf("last seq %d, want %d (gap-free)", lastSeq, len(sent))
	}
	// Nothing more arrives: none twice.
	if f, err := servertest.NextFrame(bob2, wire.TypeMessage, 500*time.Millisecond); err == nil {
		t.Fatalf("extra message after all %d: %+v", len(sent), f)
	}
}

// TestSIGTERMDrainsGracefully checks that SIGTERM closes sockets with 1001
// and the process exits cleanly with the store flushed.
func TestSIGTERMDrainsGracefully(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	dir := t.TempDir()
	sms := servertest.NewSMSSink(t)
	p := startTern(t, dir, sms.URL)
	alice := login(t, ctx, p.url, sms, "+14155550311")
	bob := login(t, ctx, p.url, sms, "+14155550312")
	if err := alice.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	s, err := alice.Send(ctx, bob.Session().UserID, wire.Body{Text: "before shutdown"})
	if err != nil {
		t.Fatal(err)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	select {
	case err := <-p.done:
		if err != nil {
			t.Fatalf("tern exited with %v after SIGTERM\n%s", err, p.log())
		}
	case <-time.After(20 * time.Second):
		t.Fatal("tern did not exit after SIGTERM")
	}
	if !strings.Contains(p.log(), `"msg":"tern stopped"`) {
		t.Fatalf("no clean stop in the log:\n%s", p.log())
	}
	// The client was told to reconnect, not that it is done.
	if err := alice.Err(); err != nil {
		t.Fatalf("client stopped with %v; want it reconnecting after 1001", err)
	}
	p2 := startTern(t, dir, sms.URL)
	bob2 := client.New(p2.url, client.Options{})
	defer bob2.Close()
	bob2.SetSession(bob.Session())
	if err := bob2.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	if f := servertest.Next(t, bob2, wire.TypeMessage, 10*time.Second); f.MsgID != s.MsgID {
		t.Fatalf("got %+v", f)
	}
}
