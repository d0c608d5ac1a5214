package main

import (
	"bytes"
	"context"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server/servertest"
)

// chatWait is how long a chat test waits for a line to show up: generous,
// because -race and a loaded CI machine slow everything down.
const chatWait = 10 * time.Second

// chatBuffer is an io.Writer the test can read while the chat writes.
type chatBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *chatBuffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

func (b *chatBuffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// chatTerm is one running chat: its stdin pipe and what it printed.
type chatTerm struct {
	t        *testing.T
	name     string
	in       *io.PipeWriter
	out, err *chatBuffer // err stays empty for runChat, which has one writer
	cancel   context.CancelFunc
	done     chan error
}

func newChatTerm(t *testing.T, name string) (*chatTerm, *io.PipeReader, context.Context) {
	pr, pw := io.Pipe()
	ctx, cancel := context.WithCancel(context.Background())
	ct := &chatTerm{t: t, name: name, in: pw, out: &chatBuffer{}, err: &chatBuffer{}, cancel: cancel, done: make(chan error, 1)}
	t.Cleanup(func() {
		cancel()
		_ = pw.Close()
		select {
		case <-ct.done:
		case <-time.After(chatWait):
			t.Errorf("%s: chat did not stop", name)
		}
	})
	return ct, pr, ctx
}

// startChat runs "tern chat args" the way main does, with a pipe for stdin.
func startChat(t *testing.T, name string, args ...string) *chatTerm {
	ct, pr, ctx := newChatTerm(t, name)
	go func() {
		err := chat(ctx, args, pr, ct.out, ct.err)
		_ = pr.Close() // later writes fail instead of blocking the test
		ct.done <- err
	}()
	return ct
}

// startChatLoop runs the core loop on a client that is already connected.
func startChatLoop(t *testing.T, name string, c *client.Client) *chatTerm {
	ct, pr, ctx := newChatTerm(t, name)
	go func() {
		err := runChat(ctx, pr, ct.out, c)
		_ = pr.Close()
		ct.done <- err
	}()
	return ct
}

func (ct *chatTerm) dump() string {
	return "stdout:\n" + ct.out.String() + "stderr:\n" + ct.err.String()
}

// type writes one line to the chat's stdin, failing if nobody reads it.
func (ct *chatTerm) typeLine(line string) {
	ct.t.Helper()
	wrote := make(chan error, 1)
	go func() {
		_, err := io.WriteString(ct.in, line+"\n")
		wrote <- err
	}()
	select {
	case err := <-wrote:
		if err != nil {
			ct.t.Fatalf("%s: type %q: %v\n%s", ct.name, line, err, ct.dump())
		}
	case <-time.After(chatWait):
		ct.t.Fatalf("%s: nobody read %q\n%s", ct.name, line, ct.dump())
	}
}

// waitOut waits until stdout matches re (and returns the match), at most
// chatWait; it polls because the chat prints from its own goroutine.
func (ct *chatTerm) waitOut(re string) string {
	ct.t.Helper()
	return ct.waitIn(ct.out, re)
}

func (ct *chatTerm) waitErr(re string) string {
	ct.t.Helper()
	return ct.waitIn(ct.err, re)
}

func (ct *chatTerm) waitIn(b *chatBuffer, re string) string {
	ct.t.Helper()
	rx := regexp.MustCompile(re)
	deadline := time.Now().Add(chatWait)
	for {
		if m := rx.FindString(b.String()); m != "" {
			return m
		}
		if time.Now().After(deadline) {
			ct.t.Fatalf("%s: no %q within %v\n%s", ct.name, re, chatWait, ct.dump())
		}
		select {
		case err := <-ct.done:
			ct.done <- err // keep it for the cleanup
			if m := rx.FindString(b.String()); m != "" {
				return m
			}
			ct.t.Fatalf("%s: chat ended (%v) without %q\n%s", ct.name, err, re, ct.dump())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// exit waits for the chat to return and wants nil, as exit status 0.
func (ct *chatTerm) exit() {
	ct.t.Helper()
	select {
	case err := <-ct.done:
		ct.done <- err
		if err != nil {
			ct.t.Fatalf("%s: chat returned %v\n%s", ct.name, err, ct.dump())
		}
	case <-time.After(chatWait):
		ct.t.Fatalf("%s: chat did not return\n%s", ct.name, ct.dump())
	}
}

// TestChatTwoUsers is the first-hour walk-through: alice signs in with the
// code from the SMS, talks to bob by phone number, sees her message go
// sent, delivered and read, and a restart with the same session file
// connects without asking for a code.
func TestChatTwoUsers(t *testing.T) {
	node := servertest.Start(t, servertest.Options{})
	const alicePhone, bobPhone = "+14155550101", "+14155550102"
	bob := startChatLoop(t, "bob", node.Login(t, bobPhone, "bob-terminal"))
	bob.waitOut(`/quit`) // the help: the loop runs

	// The session dir does not exist yet: chat creates it, private.
	sessDir := filepath.Join(t.TempDir(), "cfg", "tern")
	sess := filepath.Join(sessDir, "alice.json")
	args := []string{"--server", node.URL, "--phone", alicePhone, "--name", "alice-test", "--session", sess}

	alice := startChat(t, "alice", args...)
	alice.waitOut(`Code \(from the server log or SMS\): `)
	code, err := node.SMS.Code(context.Background(), alicePhone)
	if err != nil {
		t.Fatal(err)
	}
	alice.typeLine(code)
	alice.waitErr(`connected as \+14155550101`)
	alice.waitOut(`/quit`)

	alice.typeLine("/name Alice")
	alice.waitOut(`name set: Alice`)
	alice.typeLine("/to " + bobPhone)
	alice.waitOut(`talking to \+14155550102`)
	alice.typeLine("hello bob")

	bob.waitOut(`\[\d\d:\d\d\] Alice: hello bob\n`)
	alice.waitOut(`  ✓ sent #1 \(…\w{6}\)\n`)
	alice.waitOut(`  ✓✓ delivered #1 \(…\w{6}\)\n`)
	alice.typeLine("/history")
	alice.waitOut(`\[\d\d:\d\d\] me: hello bob\n`)

	// Bob finds the chat in his list, opens it and reads it.
	bob.typeLine("/chats")
	bob.waitOut(` 1\. Alice \(1 unread\) — Alice: hello bob`)
	bob.typeLine("/to 1")
	bob.waitOut(`talking to Alice`)
	bob.typeLine("/read")
	bob.waitOut(`marked read up to #1`)
	alice.waitOut(`  ✓✓ read #1 \(…\w{6}\)\n`)
	bob.typeLine("hi alice")
	alice.waitOut(`\[\d\d:\d\d\] \+14155550102: hi alice\n`)

	alice.typeLine("/quit")
	alice.exit()
	checkChatSessionFile(t, sess, sessDir, alicePhone)

	// Second start: the saved session, no code.
	texts := node.SMS.Texts()
	again := startChat(t, "alice again", args...)
	again.waitErr(`connected as \+14155550101`)
	again.typeLine("/to " + bobPhone)
	again.typeLine("hello again")
	again.typeLine("/history 3")
	again.waitOut(`me: hello again\n`)
	again.waitOut(`  ✓ sent #3 `)
	bob.waitOut(`Alice: hello again\n`)
	if strings.Contains(again.out.String(), "Code (") || node.SMS.Texts() != texts {
		t.Fatalf("the saved session was not used: %d SMS (was %d)\n%s", node.SMS.Texts(), texts, again.dump())
	}
	again.cancel() // Ctrl-C
	again.exit()

	// End of input ends the chat too, after what was typed is answered.
	bob.typeLine("bye")
	_ = bob.in.Close()
	bob.exit()
	if !strings.Contains(bob.out.String(), "  ✓ sent #4 ") {
		t.Fatalf("bob left before his last message was answered\n%s", bob.dump())
	}
}

func checkChatSessionFile(t *testing.T, path, dir, phone string) {
	t.Helper()
	fi, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("session file mode %v, want 0600", fi.Mode().Perm())
	}
	di, err := os.Stat(dir)
	if err != nil {
		t.Fatal(err)
	}
	if di.Mode().Perm() != 0o700 {
		t.Errorf("session dir mode %v, want 0700", di.Mode().Perm())
	}
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	var s chatSavedSession
	if err := json.Unmarshal(data, &s); err != nil {
		t.Fatal(err)
	}
	if s.Phone != phone || s.UserID == "" || s.DeviceID == "" || s.AccessToken == "" || s.RefreshToken == "" {
		t.Errorf("session file lacks something: %s", data)
	}
}

// TestChatSignsInAgainWhenSessionRefused: a session the server no longer
// knows (its data was wiped) leads to a code prompt, not a dead end.
func TestChatSignsInAgainWhenSessionRefused(t *testing.T) {
	node := servertest.Start(t, servertest.Options{})
	const phone = "+14155550111"
	sess := filepath.Join(t.TempDir(), "s.json")
	stale := chatSavedSession{Server: node.URL, Phone: phone}
	stale.UserID, stale.DeviceID = "u0000000000000000000000000", "d0000000000000000000000000"
	stale.AccessToken, stale.RefreshToken = "v1.bogus", "d0.bogus"
	if err := saveChatSession(sess, stale); err != nil {
		t.Fatal(err)
	}
	ct := startChat(t, "carol", "--server", node.URL, "--phone", phone, "--session", sess)
	ct.waitErr(`refused`)
	ct.waitOut(`Code \(`)
	code, err := node.SMS.Code(context.Background(), phone)
	if err != nil {
		t.Fatal(err)
	}
	ct.typeLine("000000") // a typo first: asked again
	ct.waitErr(`wrong`)
	ct.typeLine(code)
	ct.waitErr(`connected as`)
	ct.typeLine("/me")
	ct.waitOut(`you are \+14155550111`)
	_ = ct.in.Close()
	ct.exit()
	s, err := loadChatSession(sess)
	if err != nil {
		t.Fatal(err)
	}
	if s.RefreshToken == stale.RefreshToken || s.UserID == stale.UserID {
		t.Fatalf("the new session was not saved: %+v", s)
	}
}

// TestChatReportsLostConnection: a node going away is said, not hidden.
func TestChatReportsLostConnection(t *testing.T) {
	node := servertest.Start(t, servertest.Options{})
	ct := startChatLoop(t, "dave", node.Login(t, "+14155550121", "dave-terminal"))
	ct.waitOut(`/quit`)
	node.Stop()
	ct.waitOut(`connection lost; reconnecting…`)
}

func TestChatSessionPath(t *testing.T) {
	cfg := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", cfg)
	got, err := chatSessionPath("+1 (415) 555-0101")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(cfg, "tern", "chat-14155550101.json"); got != want {
		t.Errorf("path %q, want %q", got, want)
	}
	home := t.TempDir()
	t.Setenv("XDG_CONFIG_HOME", "")
	t.Setenv("HOME", home)
	got, err = chatSessionPath("+14155550101")
	if err != nil {
		t.Fatal(err)
	}
	if want := filepath.Join(home, ".config", "tern", "chat-14155550101.json"); got != want {
		t.Errorf("path %q, want %q", got, want)
	}
}

func TestChatNeedsPhone(t *testing.T) {
	t.Setenv("TERN_CHAT_PHONE", "")
	var out, errb bytes.Buffer
	err := chat(context.Background(), []string{"--server", "http://127.0.0.1:1"}, strings.NewReader(""), &out, &errb)
	if err == nil || !strings.Contains(err.Error(), "--phone") {
		t.Fatalf("err %v, want one about --phone", err)
	}
}

func TestChatCleanKeepsEscapesOffTheTerminal(t *testing.T) {
	got := chatClean("hi\x1b[2J\x07there\u009bok\nnext")
	if strings.ContainsAny(got, "\x1b\x07\u009b") || !strings.Contains(got, "\nnext") {
		t.Fatalf("chatClean = %q", got)
	}
}
