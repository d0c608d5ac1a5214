package rabbitmq

import (
	"bufio"
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.uber.org/goleak"

	"github.com/tern-im/tern/internal/testenv"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/routing/routertest"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

// brokerURL returns the test broker's URL, skipping the test when no
// broker answers there.
func brokerURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("TERN_TEST_AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		testenv.Unavailable(t, "RabbitMQ not reachable at %s (%v); CI starts it, locally run `rabbitmq-server -detached` or set TERN_TEST_AMQP_URL",
			redact(url), err)
	}
	_ = conn.Close()
	return url
}

func testLogger(t *testing.T) *slog.Logger {
	return slog.New(slog.NewTextHandler(t.Output(), &slog.HandlerOptions{Level: slog.LevelDebug}))
}

// newRouter starts a node with a fresh id. It is closed at the end of the
// test unless the test closes it first.
func newRouter(t *testing.T, url string, edit func(*Config)) *Router {
	t.Helper()
	cfg := Config{
		URL:            url,
		NodeID:         "test-" + randomID()[:8],
		Log:            testLogger(t),
		ReconnectMin:   50 * time.Millisecond,
		ReconnectMax:   time.Second,
		PublishTimeout: 5 * time.Second,
	}
	if edit != nil {
		edit(&cfg)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	r, err := New(ctx, cfg)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	t.Cleanup(func() { _ = r.Close() })
	return r
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestConformance(t *testing.T) {
	url := brokerURL(t)
	routertest.Run(t, routertest.Options{MultiNode: true}, func(t *testing.T, nodes int) []routing.Router {
		rs := make([]routing.Router, nodes)
		for i := range rs {
			// Each node its own connection, as in a real cluster.
			rs[i] = newRouter(t, url, nil)
		}
		return rs
	})
}

// handler records envelopes and counts Resync calls.
type handler struct {
	mu      sync.Mutex
	envs    []routing.Envelope
	resyncs atomic.Int64
}

func (h *handler) Deliver(env routing.Envelope) {
	env.Frame = bytes.Clone(env.Frame)
	h.mu.Lock()
	h.envs = append(h.envs, env)
	h.mu.Unlock()
}

func (h *handler) Resync() { h.resyncs.Add(1) }

func (h *handler) has(cursor int64) bool {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, e := range h.envs {
		if e.Cursor == cursor {
			return true
		}
	}
	return false
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// rabbitmqctl runs the broker's admin tool, skipping the test when it is
// not usable here.
func rabbitmqctl(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Unavailable(t, "rabbitmqctl not on PATH; the broker connection-cut tests need it (CI has it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		testenv.Unavailable(t, "rabbitmqctl %s failed (%v): %s; the broker connection-cut tests need a working rabbitmqctl",
			strings.Join(args, " "), err, out)
	}
	return string(out)
}

// killConnections makes the broker close the connections of the given
// nodes, as a broker restart or a network cut would. Only these nodes'
// connections are closed, so that other tests sharing the broker are not
// disturbed.
func killConnections(t *testing.T, nodes ...*Router) {
	t.Helper()
	out := rabbitmqctl(t, "-q", "list_connections", "--no-table-headers", "pid", "client_properties")
	killed := 0
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		line := sc.Text()
		pid, props, ok := strings.Cut(line, "\t")
		if !ok {
			continue
		}
		for _, n := range nodes {
			if strings.Contains(props, `"tern.node.`+n.cfg.NodeID+`"`) {
				rabbitmqctl(t, "close_connection", pid, "test")
				killed++
			}
		}
	}
	if killed != len(nodes) {
		t.Fatalf("closed %d broker connections, want %d; list_connections said:\n%s", killed, len(nodes), out)
	}
}

// TestBrokerConnectionCut cuts the nodes' broker connections while a
// publisher runs: they reconnect, resync their handlers, rebind their
// devices (including one attached during the outage) and route again.
func TestBrokerConnectionCut(t *testing.T) {
	url := brokerURL(t)
	rabbitmqctl(t, "-q", "status") // skip early when unusable
	a := newRouter(t, url, nil)
	// b stays down a little longer, so that an attach surely falls in
	// its outage.
	b := newRouter(t, url, func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Second, 2*time.Second })
	ctx := ctxT(t)

	dev := "cut-" + randomID()
	h := &handler{}
	if _, err := b.Attach(ctx, dev, h); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1}); err != nil {
		t.Fatalf("publish before the cut: %v", err)
	}
	eventually(t, 10*time.Second, "envelope before the cut not delivered", func() bool { return h.has(1) })
	if n := h.resyncs.Load(); n != 0 {
		t.Fatalf("Resync called %d times before the cut", n)
	}

	// The publisher only tolerates the errors of an outage.
	var cursor atomic.Int64
	cursor.Store(1000)
	var okAfter atomic.Int64 // successes once the cut is over
	var cutOver atomic.Bool
	stop := make(chan struct{})
	pubErr := make(chan error, 1)
	go func() {
		defer close(pubErr)
		for {
			select {
			case <-stop:
				return
			default:
			}
			err := a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: cursor.Add(1)})
			switch {
			case err == nil:
				if cutOver.Load() {
					okAfter.Add(1)
				}
			case errors.Is(err, ErrNotConnected), errors.Is(err, routing.ErrNoRoute):
				time.Sleep(5 * time.Millisecond)
			default:
				pubErr <- err
				return
			}
		}
	}()

	killConnections(t, b)
	// While b is down, an attach is recorded, to be bound on reconnection.
	late := "cut-late-" + randomID()
	hl := &handler{}
	eventually(t, 10*time.Second, "node whose connection was killed does not fail fast", func() bool {
		return errors.Is(b.Publish(ctx, late, routing.Envelope{Kind: routing.KindFrame}), ErrNotConnected)
	})
	if _, err := b.Attach(ctx, late, hl); err != nil {
		t.Fatalf("attach during the outage: %v", err)
	}
	killConnections(t, a)

	eventually(t, 15*time.Second, "handler never resynced", func() bool { return h.resyncs.Load() > 0 })
	// Bindings made before the cut are restored: a publish reaches it.
	eventually(t, 15*time.Second, "device attached before the cut unreachable after it", func() bool {
		return a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 2}) == nil
	})
	eventually(t, 10*time.Second, "envelope after the cut not delivered", func() bool { return h.has(2) })
	eventually(t, 15*time.Second, "device attached during the outage unreachable", func() bool {
		return a.Publish(ctx, late, routing.Envelope{Kind: routing.KindEvent, Cursor: 3}) == nil
	})
	eventually(t, 10*time.Second, "envelope to the late device not delivered", func() bool { return hl.has(3) })

	cutOver.Store(true)
	eventually(t, 10*time.Second, "publisher loop never succeeded after the cut", func() bool { return okAfter.Load() > 10 })
	close(stop)
	if err := <-pubErr; err != nil {
		t.Fatalf("publisher loop: unexpected error during the cut: %v", err)
	}
	if n := h.resyncs.Load(); n > 100 {
		t.Errorf("Resync called %d times for one short outage", n)
	}
}

// TestDeadNodeLeavesNoRoute checks that a node that goes away leaves
// nothing that would swallow envelopes: its devices become ErrNoRoute, so
// the server pushes instead.
func TestDeadNodeLeavesNoRoute(t *testing.T) {
	url := brokerURL(t)
	ctx := ctxT(t)

	t.Run("Closed", func(t *testing.T) {
		a := newRouter(t, url, nil)
		b := newRouter(t, url, nil)
		dev := "dead-" + randomID()
		if _, err := b.Attach(ctx, dev, &handler{}); err != nil {
			t.Fatal(err)
		}
		if err := a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindFrame}); err != nil {
			t.Fatalf("publish while attached: %v", err)
		}
		if err := b.Close(); err != nil {
			t.Fatal(err)
		}
		// Close deletes the queue before returning: no waiting needed.
		if err := a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindFrame}); !errors.Is(err, routing.ErrNoRoute) {
			t.Fatalf("publish to a closed node's device = %v, want ErrNoRoute", err)
		}
		if err := b.Publish(ctx, dev, routing.Envelope{Kind: routing.KindFrame}); !errors.Is(err, ErrClosed) {
			t.Fatalf("publish on a closed node = %v, want ErrClosed", err)
		}
		if _, err := b.Attach(ctx, dev, &handler{}); !errors.Is(err, ErrClosed) {
			t.Fatalf("attach on a closed node = %v, want ErrClosed", err)
		}
	})

	t.Run("ConnectionKilled", func(t *testing.T) {
		a := newRouter(t, url, nil)
		// This node does not come back within the test: what the broker
		// holds for it is what a crashed node leaves.
		b := newRouter(t, url, func(c *Config) { c.ReconnectMin, c.ReconnectMax = time.Hour, time.Hour })
		dev := "dead-" + randomID()
		h := &handler{}
		if _, err := b.Attach(ctx, dev, h); err != nil {
			t.Fatal(err)
		}
		if err := a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindFrame}); err != nil {
			t.Fatalf("publish while attached: %v", err)
		}
		if !b.Connected() {
			t.Fatal("Connected() = false before the cut")
		}
		killConnections(t, b)
		eventually(t, 10*time.Second, "Connected() still true after the cut", func() bool { return !b.Connected() })
		eventually(t, 10*time.Second, "killed node's device still routed", func() bool {
			return errors.Is(a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindFrame}), routing.ErrNoRoute)
		})
		// The cut-off node fails fast, and not with ErrNoRoute: the device
		// is connected to it.
		eventually(t, 10*time.Second, "cut-off node does not fail fast", func() bool {
			return errors.Is(b.Publish(ctx, dev, routing.Envelope{Kind: routing.KindFrame}), ErrNotConnected)
		})
		eventually(t, 10*time.Second, "handler of the cut-off node not resynced", func() bool { return h.resyncs.Load() > 0 })
		// Close interrupts the hour-long backoff.
		closed := make(chan error, 1)
		go func() { closed <- b.Close() }()
		select {
		case err := <-closed:
			if err != nil {
				t.Fatal(err)
			}
		case <-time.After(10 * time.Second):
			t.Fatal("Close hangs while reconnecting")
		}
	})
}

// TestBoundedInFlight publishes from many goroutines through a tiny
// in-flight window: every publish completes and is delivered once.
func TestBoundedInFlight(t *testing.T) {
	url := brokerURL(t)
	a := newRouter(t, url, func(c *Config) { c.MaxInFlight = 2 })
	ctx := ctxT(t)
	dev := "inflight-" + randomID()
	h := &handler{}
	if _, err := a.Attach(ctx, dev, h); err != nil {
		t.Fatal(err)
	}
	var wg sync.WaitGroup
	var failed atomic.Int64
	for g := range 8 {
		wg.Go(func() {
			for i := range 50 {
				if err := a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: int64(g*100 + i + 1)}); err != nil {
					t.Errorf("publish: %v", err)
					failed.Add(1)
					return
				}
			}
		})
	}
	wg.Wait()
	if failed.Load() > 0 {
		return
	}
	eventually(t, 10*time.Second, "not all 400 envelopes delivered", func() bool {
		h.mu.Lock()
		defer h.mu.Unlock()
		return len(h.envs) >= 400
	})
	if got := len(a.sem); got != 0 {
		t.Fatalf("%d in-flight tokens held after every publish returned", got)
	}
}

// TestPublishHonoursContext: a cancelled context ends Publish with the
// context's error.
func TestPublishHonoursContext(t *testing.T) {
	url := brokerURL(t)
	a := newRouter(t, url, nil)
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	err := a.Publish(ctx, "ctx-"+randomID(), routing.Envelope{Kind: routing.KindFrame})
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("Publish with a cancelled context = %v, want context.Canceled", err)
	}
}

// TestNoGoroutineLeak: Close leaves nothing running, whatever was done.
func TestNoGoroutineLeak(t *testing.T) {
	url := brokerURL(t)
	defer goleak.VerifyNone(t, goleak.IgnoreCurrent())
	ctx := ctxT(t)
	a, err := New(ctx, Config{URL: url, NodeID: "leak-" + randomID()[:8], Log: testLogger(t)})
	if err != nil {
		t.Fatal(err)
	}
	for i := range 20 {
		dev := fmt.Sprintf("leak-%d-%s", i, randomID())
		detach, err := a.Attach(ctx, dev, &handler{})
		if err != nil {
			t.Fatal(err)
		}
		if err := a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1}); err != nil {
			t.Fatal(err)
		}
		if i%2 == 0 {
			detach()
		}
	}
	if err := a.Close(); err != nil {
		t.Fatal(err)
	}
	if err := a.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
}

func TestNewFailsWithoutBroker(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	// Port 1 on loopback refuses at once.
	_, err := New(ctx, Config{URL: "amqp://guest:secret@127.0.0.1:1/", Log: testLogger(t)})
	if err == nil {
		t.Fatal("New succeeded without a broker")
	}
	if strings.Contains(err.Error(), "secret") {
		t.Fatalf("error leaks the password: %v", err)
	}
}

// TestOverlongDeviceID: an id the broker cannot take as a routing key is
// refused by Attach rather than breaking the node's channel.
func TestOverlongDeviceID(t *testing.T) {
	url := brokerURL(t)
	a := newRouter(t, url, nil)
	ctx := ctxT(t)
	long := strings.Repeat("d", 256)
	if _, err := a.Attach(ctx, long, &handler{}); err == nil {
		t.Fatal("Attach accepted a 256-byte device id")
	}
	if err := a.Publish(ctx, long, routing.Envelope{Kind: routing.KindFrame}); !errors.Is(err, routing.ErrNoRoute) {
		t.Fatalf("Publish to a 256-byte device id = %v, want ErrNoRoute", err)
	}
	// The node still routes.
	dev := "ok-" + randomID()
	h := &handler{}
	if _, err := a.Attach(ctx, dev, h); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1}); err != nil {
		t.Fatal(err)
	}
}

// BenchmarkPublish measures one publisher waiting for each confirm, as the
// server's dispatch loop does, and many publishers sharing the in-flight
// window.
func BenchmarkPublish(b *testing.B) {
	url := os.Getenv("TERN_TEST_AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	ctx := context.Background()
	quiet := slog.New(slog.DiscardHandler)
	a, err := New(ctx, Config{URL: url, NodeID: "bench-a-" + randomID()[:8], Log: quiet})
	if err != nil {
		testenv.Unavailable(b, "RabbitMQ not reachable at %s: %v", redact(url), err)
	}
	defer a.Close()
	r, err := New(ctx, Config{URL: url, NodeID: "bench-b-" + randomID()[:8], Log: quiet})
	if err != nil {
		b.Fatal(err)
	}
	defer r.Close()
	dev := "bench-" + randomID()
	if _, err := r.Attach(ctx, dev, &discard{}); err != nil {
		b.Fatal(err)
	}
	env := routing.Envelope{Kind: routing.KindEvent, Cursor: 1, Frame: bytes.Repeat([]byte("x"), 300)}
	b.Run("Sequential", func(b *testing.B) {
		for b.Loop() {
			if err := a.Publish(ctx, dev, env); err != nil {
				b.Fatal(err)
			}
		}
	})
	b.Run("Parallel", func(b *testing.B) {
		b.SetParallelism(32)
		b.RunParallel(func(pb *testing.PB) {
			for pb.Next() {
				if err := a.Publish(ctx, dev, env); err != nil {
					b.Error(err)
					return
				}
			}
		})
	})
	// A fan-out to 16 devices (a group message), one publish and confirm
	// wait after another as dispatch did, against one batch.
	targets := make([]routing.Target, 16)
	for i := range targets {
		targets[i] = routing.Target{DeviceID: fmt.Sprintf("%s-%d", dev, i), Env: env}
		if _, err := r.Attach(ctx, targets[i].DeviceID, &discard{}); err != nil {
			b.Fatal(err)
		}
	}
	b.Run("FanOut16/OneByOne", func(b *testing.B) {
		for b.Loop() {
			for _, t := range targets {
				if err := a.Publish(ctx, t.DeviceID, t.Env); err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("FanOut16/Batch", func(b *testing.B) {
		errs := make([]error, len(targets))
		for b.Loop() {
			a.PublishBatch(ctx, targets, errs)
			for _, err := range errs {
				if err != nil {
					b.Fatal(err)
				}
			}
		}
	})
	b.Run("NoRoute", func(b *testing.B) {
		for b.Loop() {
			if err := a.Publish(ctx, "nobody-"+dev, env); !errors.Is(err, routing.ErrNoRoute) {
				b.Fatal(err)
			}
		}
	})
}

type discard struct{}

func (discard) Deliver(routing.Envelope) {}
func (discard) Resync()                  {}
