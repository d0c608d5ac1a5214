package sdktest_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/internal/testenv"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// The SDK run as a whole: the script gives up at 75 s, this kills it at 90.
const (
	runTimeout     = 90 * time.Second
	installTimeout = 5 * time.Minute
)

// TestCloudAPISDK: the npm Cloud API SDK @great-detail/whatsapp, pointed
// at a Tern node, subscribes a webhook, gets a customer's message, sends
// a reply, an image by id, a template and a reaction, marks the message
// read, and sees its messages' statuses; the customer gets each of them
// (see doc.go).
func TestCloudAPISDK(t *testing.T) {
	nodeBin, nodeArgs, npmBin := nodeTools(t)
	sdkDir := installSDK(t, npmBin)

	n := servertest.Start(t, servertest.Options{Server: server.Config{WebhookAllowPrivate: true,
		WebhookPoll: 50 * time.Millisecond, WebhookRetry: 100 * time.Millisecond}})
	ctx, cancel := context.WithTimeout(context.Background(), runTimeout+15*time.Second)
	defer cancel()
	b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550991", Name: "Acme Shop"})
	if err != nil {
		t.Fatal(err)
	}
	const customerPhone = "14155550992"
	customer := n.Login(t, "+"+customerPhone, "phone")
	customerName := "Cora Customer"
	if _, err := customer.UpdateMe(ctx, wire.MePatch{Name: &customerName}); err != nil {
		t.Fatal(err)
	}
	// Before the business has a webhook: the queue keeps it until the
	// SDK's server subscribes.
	hello, err := customer.Send(ctx, b.UserID, wire.Body{Text: "hello 👋"})
	if err != nil {
		t.Fatal(err)
	}
	helloID := business.MessageID(hello.ChatID, hello.MsgID)
	phone := watch(ctx, t, customer, b.UserID, hello)

	start := time.Now()
	out := runScript(ctx, t, nodeBin, nodeArgs, sdkDir, []string{
		"TERN_URL=" + n.URL, "TOKEN=" + b.AccessToken, "PNID=" + b.PhoneNumberID, "WABA=" + b.WABAID,
		"APP_SECRET=" + b.AppSecret, "CUSTOMER=" + customerPhone, "CUSTOMER_NAME=" + customerName,
	})
	t.Logf("the SDK script ran in %v", time.Since(start).Round(time.Millisecond))

	// What the script says.
	done := out.done
	if done.Hello != helloID {
		t.Errorf("the script's inbound message id %q, want the hello's %q", done.Hello, helloID)
	}
	if done.BadSignatures != 0 || done.Verifications != 1 {
		t.Errorf("%d bad signatures, %d verifications (want 0 and 1)", done.BadSignatures, done.Verifications)
	}
	ids := map[string]string{} // kind -> Tern message id
	for _, kind := range []string{"text", "image", "template", "reaction"} {
		chatID, msgID, ok := business.ParseMessageID(done.Sent[kind])
		if !ok || chatID != hello.ChatID {
			t.Fatalf("the %s's id %q is not a message of the customer's chat %s", kind, done.Sent[kind], hello.ChatID)
		}
		ids[kind] = msgID
	}
	for kind, want := range map[string][]string{"text": {"sent", "delivered", "read"}, "image": {"sent", "delivered"},
		"template": {"sent", "delivered"}, "reaction": {"sent"}} {
		got := out.steps["statuses"].Statuses[kind]
		for _, st := range want {
			if !slices.Contains(got, st) {
				t.Errorf("the %s's statuses %v lack %q", kind, got, st)
			}
		}
	}
	if s := out.steps["text"].Request; !strings.Contains(s, " /"+b.PhoneNumberID+"/messages") {
		t.Errorf("the default client's send went to %q, want the unversioned /%s/messages", s, b.PhoneNumberID)
	}

	// What the customer got.
	phone.waitFor(t, "the text reply, quoting the hello", func(p *phoneView) bool {
		f, ok := p.byID[ids["text"]]
		return ok && f.Body.Text == "Thanks for writing! 😊" && f.ReplyTo == hello.MsgID
	})
	phone.waitFor(t, "the image with its caption", func(p *phoneView) bool {
		f, ok := p.byID[ids["image"]]
		return ok && f.Body.MediaID == done.MediaID && f.Body.Caption == "Your receipt" &&
			f.Body.MIMEType == "image/png" && f.Body.SHA256 == done.MediaSHA256
	})
	phone.waitFor(t, "the template's text", func(p *phoneView) bool {
		f, ok := p.byID[ids["template"]]
		return ok && f.Body.Text == "Your order 42 shipped" && f.Body.Card != nil && f.Body.Card.Template == "order_update"
	})
	phone.waitFor(t, "the 👍 reaction on the hello", func(p *phoneView) bool {
		f, ok := p.byID[ids["reaction"]]
		return ok && f.Body.Reaction != nil && f.Body.Reaction.MsgID == hello.MsgID && f.Body.Reaction.Emoji == "👍"
	})
	phone.waitFor(t, "the hello's read receipt", func(p *phoneView) bool { return p.helloRead })
	phone.waitFor(t, "the business typing", func(p *phoneView) bool { return p.typing })
	phone.mu.Lock()
	readErr := phone.readErr
	phone.mu.Unlock()
	if readErr != nil {
		t.Errorf("the customer's read of the reply: %v", readErr)
	}

	// The image is the file the SDK uploaded and downloaded.
	m, err := customer.Media(ctx, done.MediaID, hello.ChatID)
	if err != nil {
		t.Fatalf("the customer fetching the image's media object: %v", err)
	}
	data := get(ctx, t, m.URL)
	sum := sha256.Sum256(data)
	if hex.EncodeToString(sum[:]) != done.MediaSHA256 || m.SHA256 != done.MediaSHA256 || int64(len(data)) != m.Size {
		t.Errorf("the customer's download: %d bytes, sha256 %x; its media object says %d bytes, %s; the SDK's getURL said %s",
			len(data), sum, m.Size, m.SHA256, done.MediaSHA256)
	}
}

// nodeTools finds node and npm, or skips (fails under TERN_TEST_REQUIRE),
// and says which options node needs for the SDK.
//
// The SDK declares Node.js 22 or later; it runs on 20 (this machine's) and
// on Debian 12's 18 (what .ci/run installs where node is missing), where
// its webhook signature check needs the Web Crypto global that 18 has
// only behind a flag. Older ones have no fetch.
func nodeTools(t *testing.T) (nodeBin string, nodeArgs []string, npmBin string) {
	t.Helper()
	nodeBin, err1 := exec.LookPath("node")
	npmBin, err2 := exec.LookPath("npm")
	if err1 != nil || err2 != nil {
		testenv.Unavailable(t, "the Cloud API SDK test needs node and npm on PATH (node: %v, npm: %v); "+
			"`apt-get install nodejs npm` (.ci/run does)", err1, err2)
	}
	out, err := exec.Command(nodeBin, "--version").Output()
	if err != nil {
		t.Fatalf("%s --version: %v", nodeBin, err)
	}
	v := strings.TrimSpace(string(out))
	var major int
	if _, err := fmt.Sscanf(v, "v%d.", &major); err != nil {
		t.Fatalf("%s --version printed %q", nodeBin, v)
	}
	switch {
	case major < 18:
		testenv.Unavailable(t, "node %s (%s) is too old for the Cloud API SDK: it needs 18 or later", v, nodeBin)
	case major == 18:
		nodeArgs = append(nodeArgs, "--experimental-global-webcrypto")
	}
	t.Logf("node %s (%s), npm %s", v, nodeBin, npmBin)
	return nodeBin, nodeArgs, npmBin
}

// installSDK returns a directory holding testdata's package.json and the
// SDK installed by `npm ci` from its lock file: os.UserCacheDir()/tern-test/
// sdk-<the lock's hash>, made once and reused.
func installSDK(t *testing.T, npmBin string) string {
	t.Helper()
	pkg, err := os.ReadFile(filepath.Join("testdata", "package.json"))
	if err != nil {
		t.Fatal(err)
	}
	lock, err := os.ReadFile(filepath.Join("testdata", "package-lock.json"))
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(lock)
	base, err := os.UserCacheDir()
	if err != nil {
		base = os.TempDir()
	}
	base = filepath.Join(base, "tern-test")
	dir := filepath.Join(base, "sdk-"+hex.EncodeToString(sum[:8]))
	// The marker is written last: a directory without it is not used.
	marker := filepath.Join(dir, ".installed")
	if _, err := os.Stat(marker); err == nil {
		return dir
	}
	if err := os.MkdirAll(base, 0o755); err != nil {
		t.Fatal(err)
	}
	// Installed beside, then renamed into place: a run killed halfway, or
	// another test process installing at the same time, leaves no
	// half-made directory under the name.
	tmp, err := os.MkdirTemp(base, "sdk-install-")
	if err != nil {
		t.Fatal(err)
	}
	defer os.RemoveAll(tmp)
	for name, data := range map[string][]byte{"package.json": pkg, "package-lock.json": lock} {
		if err := os.WriteFile(filepath.Join(tmp, name), data, 0o644); err != nil {
			t.Fatal(err)
		}
	}
	ctx, cancel := context.WithTimeout(context.Background(), installTimeout)
	defer cancel()
	start := time.Now()
	cmd := exec.CommandContext(ctx, npmBin, "ci", "--no-audit", "--no-fund", "--loglevel=error")
	cmd.Dir = tmp
	cmd.Env = append(os.Environ(), "npm_config_update_notifier=false")
	cmd.WaitDelay = 10 * time.Second
	if outb, err := cmd.CombinedOutput(); err != nil {
		testenv.Unavailable(t, "installing the Cloud API SDK from npm (npm ci in %s) failed after %v: %v\n%s",
			tmp, time.Since(start).Round(time.Millisecond), err, outb)
	}
	if err := os.WriteFile(filepath.Join(tmp, ".installed"), []byte(time.Now().UTC().Format(time.RFC3339)+"\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := os.Rename(tmp, dir); err != nil {
		// Another process put it there first: use that one.
		if _, serr := os.Stat(marker); serr != nil {
			t.Fatalf("installing the SDK into %s: %v", dir, err)
		}
	}
	t.Logf("installed the Cloud API SDK into %s in %v", dir, time.Since(start).Round(time.Millisecond))
	return dir
}

// scriptLine is one line of the script's output; the fields are those of
// the steps this test reads.
type scriptLine struct {
	Step          string              `json:"step"`
	Event         string              `json:"event"`
	Done          bool                `json:"done"`
	Request       string              `json:"request"`
	Statuses      map[string][]string `json:"statuses"`
	Sent          map[string]string   `json:"sent"`
	Hello         string              `json:"hello"`
	MediaID       string              `json:"media_id"`
	MediaSHA256   string              `json:"media_sha256"`
	BadSignatures int                 `json:"bad_signatures"`
	Verifications int                 `json:"verifications"`
}

type scriptOutput struct {
	steps map[string]scriptLine
	done  scriptLine
}

// runScript runs testdata/sdk.mjs from sdkDir (where its import finds the
// SDK) with env added, and returns its steps; it fails the test, with
// everything the script said, if it does not finish done.
func runScript(ctx context.Context, t *testing.T, nodeBin string, nodeArgs []string, sdkDir string, env []string) scriptOutput {
	t.Helper()
	src, err := os.ReadFile(filepath.Join("testdata", "sdk.mjs"))
	if err != nil {
		t.Fatal(err)
	}
	// A copy of its own per run: test processes may share sdkDir.
	script := filepath.Join(sdkDir, "run-"+rand.Text()+".mjs")
	if err := os.WriteFile(script, src, 0o644); err != nil {
		t.Fatal(err)
	}
	defer os.Remove(script)

	ctx, cancel := context.WithTimeout(ctx, runTimeout)
	defer cancel()
	cmd := exec.CommandContext(ctx, nodeBin, append(append(nodeArgs, "--no-warnings"), script)...)
	cmd.Dir = sdkDir
	cmd.Env = append(os.Environ(), env...)
	var stderr lockedBuffer
	cmd.Stderr = &stderr
	cmd.WaitDelay = 5 * time.Second
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatalf("starting node: %v", err)
	}
	res := scriptOutput{steps: map[string]scriptLine{}}
	var lines []string
	sc := bufio.NewScanner(stdout)
	sc.Buffer(make([]byte, 0, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		lines = append(lines, line)
		t.Logf("sdk.mjs: %s", line)
		var l scriptLine
		if err := json.Unmarshal([]byte(line), &l); err != nil {
			continue // said in the failure below, if it matters
		}
		switch {
		case l.Done:
			res.done = l
		case l.Step != "":
			res.steps[l.Step] = l
		case l.Event != "":
			res.steps[l.Event] = l
		}
	}
	err = cmd.Wait()
	if err != nil || !res.done.Done {
		why := fmt.Sprint(err)
		if errors.Is(ctx.Err(), context.DeadlineExceeded) {
			why = fmt.Sprintf("killed after %v", runTimeout)
		}
		t.Fatalf("the SDK script failed (%s).\nstdout:\n%s\nstderr:\n%s", why, strings.Join(lines, "\n"), stderr.String())
	}
	if s := stderr.String(); s != "" {
		t.Logf("sdk.mjs stderr:\n%s", s)
	}
	return res
}

// phoneView is what the customer's connected client got from the
// business, kept as it arrives; it reads the business's text reply as a
// person would, which the script waits to see as a "read" status.
type phoneView struct {
	mu        sync.Mutex
	byID      map[string]wire.ServerFrame // the business's messages, by Tern id
	helloRead bool                        // a read receipt of the hello
	typing    bool                        // the business was typing
	readErr   error
	frames    []string // everything, for a failure message
}

// watch keeps reading the customer's frames until ctx ends. The client
// acks what it hands over, which is what makes the business's messages
// "delivered".
func watch(ctx context.Context, t *testing.T, c *client.Client, businessID string, hello wire.Sent) *phoneView {
	p := &phoneView{byID: map[string]wire.ServerFrame{}}
	ctx, cancel := context.WithCancel(ctx)
	var wg sync.WaitGroup
	t.Cleanup(func() { cancel(); wg.Wait() })
	wg.Add(1)
	go func() {
		defer wg.Done()
		for {
			var f wire.ServerFrame
			select {
			case <-ctx.Done():
				return
			case fr, ok := <-c.Events():
				if !ok {
					return
				}
				f = fr
			}
			raw, _ := json.Marshal(f)
			p.mu.Lock()
			p.frames = append(p.frames, string(raw))
			switch {
			case f.Type == wire.TypeMessage && f.From == businessID && f.Body != nil:
				p.byID[f.MsgID] = f
				if f.Body.Text != "" && f.ReplyTo == hello.MsgID {
					wg.Add(1)
					go func() {
						defer wg.Done()
						if err := c.Read(ctx, f.ChatID, f.Seq); err != nil && ctx.Err() == nil {
							p.mu.Lock()
							p.readErr = err
							p.mu.Unlock()
						}
					}()
				}
			case f.Type == wire.TypeReceipt && f.Status == wire.StatusRead && f.By == businessID && slices.Contains(f.MsgIDs, hello.MsgID):
				p.helloRead = true
			case f.Type == wire.TypeTyping && f.From == businessID && f.ChatID == hello.ChatID && f.State == wire.TypingStarted:
				p.typing = true
			}
			p.mu.Unlock()
		}
	}()
	return p
}

// waitFor waits up to 10 s for cond over what the customer got.
func (p *phoneView) waitFor(t *testing.T, what string, cond func(*phoneView) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		p.mu.Lock()
		ok, late := cond(p), time.Now().After(deadline)
		var frames string
		if !ok && late {
			frames = strings.Join(p.frames, "\n")
		}
		p.mu.Unlock()
		switch {
		case ok:
			return
		case late:
			t.Errorf("the customer did not get %s within 10 s; its frames:\n%s", what, frames)
			return
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// get fetches url's bytes.
func get(ctx context.Context, t *testing.T, url string) []byte {
	t.Helper()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	data, err := io.ReadAll(res.Body)
	if err != nil || res.StatusCode != http.StatusOK {
		t.Fatalf("GET %s: %d %v %.200s", url, res.StatusCode, err, data)
	}
	return data
}

// lockedBuffer is a bytes.Buffer that exec's copying goroutine and the
// test may use at once.
type lockedBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (l *lockedBuffer) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.Write(p)
}

func (l *lockedBuffer) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.b.String()
}
