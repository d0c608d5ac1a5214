package rabbittest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-im/tern/internal/testenv"
)

// startTimeout bounds a start of the node (the first one creates its
// database).
const startTimeout = 90 * time.Second

// Node is a private RabbitMQ node. Its methods fail the test on error.
type Node struct {
	// Name is the Erlang node name, for rabbitmqctl -n.
	Name string
	// URL is the AMQP URL of the node, for guest.
	URL string

	t       testing.TB
	bin     string // directory of rabbitmq-server and rabbitmqctl
	dir     string
	env     []string // the server's environment
	ctlEnv  []string // rabbitmqctl's: the cookie only
	amqp    int
	mu      sync.Mutex
	proc    *exec.Cmd
	exited  chan struct{}
	logFile *os.File
}

// Start starts a private node and stops it at the end of the test. Without
// an installed RabbitMQ it skips the test (fails it under
// TERN_TEST_REQUIRE=1).
func Start(t testing.TB) *Node {
	t.Helper()
	bin := findBin()
	if bin == "" {
		testenv.Unavailable(t, "no RabbitMQ installation (rabbitmq-server under /usr/lib/rabbitmq/bin or $RABBITMQ_HOME/sbin); "+
			"the broker restart and alarm tests run a private node of it (apt install rabbitmq-server; CI installs it)")
	}
	dir := t.TempDir()
	n := &Node{t: t, bin: bin, dir: dir, Name: "tern-test-" + randomHex(6) + "@localhost"}
	write := func(name, content string, mode os.FileMode) {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), mode); err != nil {
			t.Fatal(err)
		}
	}
	write(".erlang.cookie", strings.ToUpper(randomHex(16)), 0o400)
	write("enabled_plugins", "[].\n", 0o600)
	write("rabbitmq.conf", "", 0o600)
	write("rabbitmq-env.conf", "", 0o600)
	var dist int
	n.amqp, dist = freePort(t), freePort(t)
	n.URL = fmt.Sprintf("amqp://guest:guest@127.0.0.1:%d/", n.amqp)
	base := []string{
		"HOME=" + dir, // the Erlang cookie
		"PATH=" + os.Getenv("PATH"),
		"LANG=C.UTF-8",
		"ERL_EPMD_ADDRESS=127.0.0.1",
	}
	n.ctlEnv = base
	n.env = append(slices.Clone(base),
		"RABBITMQ_NODENAME="+n.Name,
		"RABBITMQ_NODE_IP_ADDRESS=127.0.0.1",
		"RABBITMQ_NODE_PORT="+strconv.Itoa(n.amqp),
		"RABBITMQ_DIST_PORT="+strconv.Itoa(dist),
		"RABBITMQ_CONFIG_FILE="+filepath.Join(dir, "rabbitmq.conf"),
		"RABBITMQ_CONF_ENV_FILE="+filepath.Join(dir, "rabbitmq-env.conf"),
		"RABBITMQ_ENABLED_PLUGINS_FILE="+filepath.Join(dir, "enabled_plugins"),
		"RABBITMQ_MNESIA_BASE="+filepath.Join(dir, "mnesia"),
		"RABBITMQ_LOG_BASE="+filepath.Join(dir, "log"),
		"RABBITMQ_PID_FILE="+filepath.Join(dir, "rabbit.pid"),
	)
	t.Cleanup(n.Kill)
	n.Start()
	return n
}

func findBin() string {
	var dirs []string
	if h := os.Getenv("RABBITMQ_HOME"); h != "" {
		dirs = append(dirs, filepath.Join(h, "sbin"))
	}
	dirs = append(dirs, "/usr/lib/rabbitmq/bin")
	for _, d := range dirs {
		if st, err := os.Stat(filepath.Join(d, "rabbitmq-server")); err == nil && !st.IsDir() {
			return d
		}
	}
	return ""
}

// freePort returns a loopback port the kernel had free. It avoids
// 35672-35682, where rabbitmqctl itself listens while it runs.
func freePort(t testing.TB) int {
	t.Helper()
	for {
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		p := ln.Addr().(*net.TCPAddr).Port
		_ = ln.Close()
		if p < 35672 || p > 35682 {
			return p
		}
	}
}

// Start starts the node (again, after Stop or Kill: same name, ports and
// data) and returns once it accepts AMQP connections.
func (n *Node) Start() {
	n.t.Helper()
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc != nil {
		n.t.Fatalf("rabbittest: node %s is already running", n.Name)
	}
	logFile, err := os.OpenFile(filepath.Join(n.dir, "server.out"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o600)
	if err != nil {
		n.t.Fatal(err)
	}
	cmd := exec.Command(filepath.Join(n.bin, "rabbitmq-server"))
	cmd.Env = n.env
	cmd.Dir = n.dir
	cmd.Stdout, cmd.Stderr = logFile, logFile
	// Its own process group: Kill takes the whole tree (a shell script,
	// then the Erlang VM).
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		_ = logFile.Close()
		n.t.Fatalf("rabbittest: start %s: %v", n.Name, err)
	}
	exited := make(chan struct{})
	go func() {
		_ = cmd.Wait()
		close(exited)
	}()
	n.proc, n.exited, n.logFile = cmd, exited, logFile

	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	// await_startup fails at once until the node has registered with
	// epmd: try again until it waits, or the node exits.
	var out string
	for {
		out, err = n.ctl(ctx, "await_startup", "--timeout", strconv.Itoa(int(startTimeout/time.Second)))
		if err == nil || ctx.Err() != nil {
			break
		}
		select {
		case <-exited:
		case <-time.After(200 * time.Millisecond):
			continue
		}
		break
	}
	if err == nil {
		err = waitPort(ctx, n.amqp, exited)
	}
	if err != nil {
		n.t.Fatalf("rabbittest: node %s did not start: %v\n%s\n%s", n.Name, err, out, n.tail())
	}
}

func waitPort(ctx context.Context, port int, exited <-chan struct{}) error {
	addr := "127.0.0.1:" + strconv.Itoa(port)
	for {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err == nil {
			_ = c.Close()
			return nil
		}
		select {
		case <-exited:
			return errors.New("the node exited")
		case <-ctx.Done():
			return fmt.Errorf("port %d: %w", port, ctx.Err())
		case <-time.After(50 * time.Millisecond):
		}
	}
}

// Stop stops the node the way an operator would (rabbitmqctl stop): its
// clients' connections are closed by the broker. It returns once the node
// has exited.
func (n *Node) Stop() {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), startTimeout)
	defer cancel()
	if out, err := n.ctl(ctx, "stop"); err != nil {
		n.t.Fatalf("rabbittest: stop %s: %v\n%s", n.Name, err, out)
	}
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return
	}
	select {
	case <-n.exited:
	case <-ctx.Done():
		n.t.Fatalf("rabbittest: %s did not exit after stop", n.Name)
	}
	n.reap()
}

// Kill ends the node at once (SIGKILL to its process group), as a crash
// would; its clients see their connections reset. It does nothing when the
// node is not running.
func (n *Node) Kill() {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.proc == nil {
		return
	}
	_ = syscall.Kill(-n.proc.Process.Pid, syscall.SIGKILL)
	<-n.exited
	n.reap()
}

// reap forgets the exited process; n.mu is held.
func (n *Node) reap() {
	_ = n.logFile.Close()
	n.proc, n.exited, n.logFile = nil, nil, nil
}

// Ctl runs rabbitmqctl against the node and returns its output; an error
// fails the test.
func (n *Node) Ctl(args ...string) string {
	n.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	out, err := n.ctl(ctx, args...)
	if err != nil {
		n.t.Fatalf("rabbittest: rabbitmqctl %s: %v\n%s", strings.Join(args, " "), err, out)
	}
	return out
}

func (n *Node) ctl(ctx context.Context, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, filepath.Join(n.bin, "rabbitmqctl"), append([]string{"-n", n.Name}, args...)...)
	cmd.Env = n.ctlEnv
	cmd.Dir = n.dir
	out, err := cmd.CombinedOutput()
	return string(out), err
}

// BlockPublishing raises a memory alarm: the broker blocks every connection
// that publishes (connection.blocked) until UnblockPublishing.
func (n *Node) BlockPublishing() {
	n.t.Helper()
	n.Ctl("set_vm_memory_high_watermark", "0")
}

// UnblockPublishing clears the alarm BlockPublishing raised.
func (n *Node) UnblockPublishing() {
	n.t.Helper()
	n.Ctl("set_vm_memory_high_watermark", "0.4")
}

// tail returns the end of the node's output and log, for failures.
func (n *Node) tail() string {
	var b bytes.Buffer
	for _, f := range []string{filepath.Join(n.dir, "server.out"), filepath.Join(n.dir, "log", strings.TrimSuffix(n.Name, "@localhost")+"@localhost.log")} {
		data, err := os.ReadFile(f)
		if err != nil {
			continue
		}
		if len(data) > 4000 {
			data = data[len(data)-4000:]
		}
		fmt.Fprintf(&b, "--- %s:\n%s\n", f, data)
	}
	return b.String()
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}
