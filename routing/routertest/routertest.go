// Package routertest is the conformance suite every routing.Router adapter
// passes. An adapter's test calls Run with a constructor for a cluster of
// routers:
//
//	func TestConformance(t *testing.T) {
//		routertest.Run(t, routertest.Options{MultiNode: true},
//			func(t *testing.T, nodes int) []routing.Router { ... })
//	}
//
// The suite states the contract the server relies on:
//
//   - An envelope published to a device attached on any node of the cluster
//     reaches that node's handler with Kind, Cursor and Frame intact, and the
//     Publish returns nil. Once Attach has returned, publishing from any node
//     routes to it.
//   - Publishing to a device no node holds returns routing.ErrNoRoute. Once
//     the last detach for a device has returned, publishing to it from any
//     node returns ErrNoRoute.
//   - Attaching a device again on the same node replaces the handler; the
//     late detach of a replaced handler leaves its successor in place.
//   - A device attached on several nodes gets every envelope on each of them.
//   - routing.PublishAll (PublishBatch, for a Batcher) answers each target
//     as Publish would, and keeps the order of one device's envelopes.
//   - Envelopes from one publisher to one device arrive in publish order;
//     concurrent publishers' envelopes all arrive exactly once while nothing
//     fails.
//   - No handler sees an envelope whose Publish began after its detach
//     returned, and no handler is called later than DetachGrace after its
//     detach returned (a delivery already under way may finish).
//   - Resync is never called while nothing fails.
//   - Every adapter is a routing.Broadcaster: a broadcast from any node
//     reaches the broadcast handler of every node (the sender's too)
//     exactly once, with Kind, Users and Frame intact.
//   - After Close, Publish returns an error promptly (it does not hang), and
//     a closed node's devices are no longer routed to from other nodes.
//
// Every wait is bounded by Timeout; no check asserts how fast anything is.
package routertest

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/binary"
	"encoding/hex"
	"errors"
	"fmt"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-im/tern/routing"
)

// Options describe the adapter under test.
type Options struct {
	// MultiNode says that newCluster can return several routers forming one
	// cluster. Without it newCluster is only ever asked for one router and
	// the cross-node subtests are skipped.
	MultiNode bool
}

// Timeout bounds every wait of the suite: a delivery that has not happened
// by then is reported as lost.
const Timeout = 15 * time.Second

// DetachGrace is how long after detach returns a handler may still be
// called: a delivery already under way when detach was called may finish.
// Adapters are encouraged to need no grace at all (routing/rabbitmq needs
// none); the suite only requires that it is bounded.
const DetachGrace = 250 * time.Millisecond

// Run runs the conformance suite. newCluster returns nodes routers that form
// one cluster; it is called once per subtest. The suite closes every router
// it gets, exactly once, before the subtest ends.
func Run(t *testing.T, opts Options, newCluster func(t *testing.T, nodes int) []routing.Router) {
	nodes := 1
	if opts.MultiNode {
		nodes = 3
	}
	s := &suite{opts: opts, nodes: nodes, newCluster: newCluster}
	tests := []struct {
		name  string
		multi bool
		f     func(t *testing.T)
	}{
		{"Deliver", false, s.testDeliver},
		{"NoRoute", false, s.testNoRoute},
		{"Detach", false, s.testDetach},
		{"Replace", false, s.testReplace},
		{"RemoteNode", true, s.testRemoteNode},
		{"SeveralNodes", true, s.testSeveralNodes},
		{"Order", false, s.testOrder},
		{"PublishAll", false, s.testPublishAll},
		{"ConcurrentPublishers", false, s.testConcurrent},
		{"NoDeliveryAfterDetach", false, s.testNoDeliveryAfterDetach},
		{"Close", false, s.testClose},
		{"ClosedNodeUnroutable", true, s.testClosedNodeUnroutable},
		{"Broadcast", false, s.testBroadcast},
	}
	for _, tc := range tests {
		t.Run(tc.name, func(t *testing.T) {
			if tc.multi && !opts.MultiNode {
				t.Skip("single-node adapter")
			}
			tc.f(t)
		})
	}
}

type suite struct {
	opts       Options
	nodes      int
	newCluster func(t *testing.T, nodes int) []routing.Router
}

// cluster is the routers of one subtest, each closed once at its end.
type cluster struct {
	t       *testing.T
	routers []routing.Router
	closed  []atomic.Bool
}

func (s *suite) cluster(t *testing.T, n int) *cluster {
	t.Helper()
	rs := s.newCluster(t, n)
	if len(rs) != n {
		t.Fatalf("newCluster returned %d routers, want %d", len(rs), n)
	}
	c := &cluster{t: t, routers: rs, closed: make([]atomic.Bool, n)}
	t.Cleanup(func() {
		for i := range c.routers {
			c.close(i)
		}
	})
	return c
}

// node returns router i modulo the cluster size, so that subtests written
// for several nodes run on one as well.
func (c *cluster) node(i int) routing.Router { return c.routers[i%len(c.routers)] }

func (c *cluster) close(i int) {
	if c.closed[i].Swap(true) {
		return
	}
	done := make(chan error, 1)
	go func() { done <- c.routers[i].Close() }()
	select {
	case err := <-done:
		if err != nil {
			c.t.Errorf("Close node %d: %v", i, err)
		}
	case <-time.After(Timeout):
		c.t.Errorf("Close node %d did not return within %v", i, Timeout)
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	t.Cleanup(cancel)
	return ctx
}

// deviceID is unique per call, so that adapters sharing a broker with other
// tests never see each other's devices.
func deviceID(t *testing.T) string {
	var b [6]byte
	_, _ = rand.Read(b[:])
	return "routertest-" + hex.EncodeToString(b[:])
}

// recorder is a Handler that keeps what it is given. It fails the test if
// Resync is called, since nothing fails in the suite.
type recorder struct {
	t      *testing.T
	name   string
	mu     sync.Mutex
	envs   []routing.Envelope
	at     []time.Time
	resync int
	signal chan struct{}
}

func newRecorder(t *testing.T, name string) *recorder {
	r := &recorder{t: t, name: name, signal: make(chan struct{}, 1)}
	t.Cleanup(func() {
		r.mu.Lock()
		defer r.mu.Unlock()
		if r.resync > 0 {
			t.Errorf("%s: Resync called %d times while nothing failed", name, r.resync)
		}
	})
	return r
}

func (r *recorder) Deliver(env routing.Envelope) {
	// Copy the frame: the contract does not let a handler keep a buffer
	// the adapter may reuse, and a copy makes the check independent of it.
	env.Frame = bytes.Clone(env.Frame)
	r.mu.Lock()
	r.envs = append(r.envs, env)
	r.at = append(r.at, time.Now())
	r.mu.Unlock()
	select {
	case r.signal <- struct{}{}:
	default:
	}
}

func (r *recorder) Resync() {
	r.mu.Lock()
	r.resync++
	r.mu.Unlock()
}

func (r *recorder) count() int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return len(r.envs)
}

func (r *recorder) snapshot() []routing.Envelope {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]routing.Envelope(nil), r.envs...)
}

// wait returns once the handler holds at least n envelopes, failing the
// test at Timeout.
func (r *recorder) wait(n int) []routing.Envelope {
	r.t.Helper()
	deadline := time.NewTimer(Timeout)
	defer deadline.Stop()
	for {
		if envs := r.snapshot(); len(envs) >= n {
			return envs
		}
		select {
		case <-r.signal:
		case <-deadline.C:
			r.t.Fatalf("%s: %d envelopes after %v, want %d", r.name, r.count(), Timeout, n)
		}
	}
}

// quiet waits long enough for stray envelopes (duplicates, late ones) to
// show up, so that an exact count can be asserted afterwards. It is a
// settling delay, never a speed requirement.
func quiet() { time.Sleep(200 * time.Millisecond) }

func attach(t *testing.T, r routing.Router, device string, h routing.Handler) func() {
	t.Helper()
	detach, err := r.Attach(ctxT(t), device, h)
	if err != nil {
		t.Fatalf("Attach(%s): %v", device, err)
	}
	if detach == nil {
		t.Fatalf("Attach(%s) returned a nil detach", device)
	}
	return detach
}

func publish(t *testing.T, r routing.Router, device string, env routing.Envelope) {
	t.Helper()
	if err := r.Publish(ctxT(t), device, env); err != nil {
		t.Fatalf("Publish(%s, cursor %d): %v", device, env.Cursor, err)
	}
}

func wantNoRoute(t *testing.T, r routing.Router, device, why string) {
	t.Helper()
	err := r.Publish(ctxT(t), device, routing.Envelope{Kind: routing.KindFrame, Frame: []byte(`{"type":"typing"}`)})
	if !errors.Is(err, routing.ErrNoRoute) {
		t.Fatalf("%s: Publish = %v, want ErrNoRoute", why, err)
	}
}

func sameEnvelope(a, b routing.Envelope) bool {
	return a.Kind == b.Kind && a.Cursor == b.Cursor && bytes.Equal(a.Frame, b.Frame)
}

func (s *suite) testDeliver(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	h := newRecorder(t, "handler")
	attach(t, c.node(1), dev, h)

	big := bytes.Repeat([]byte("x"), 256<<10)
	sent := []routing.Envelope{
		{Kind: routing.KindEvent, Cursor: 1, Frame: []byte(`{"type":"message","cursor":1}`)},
		{Kind: routing.KindEvent, Cursor: 1<<62 + 7, Frame: []byte(`{"type":"receipt"}`)},
		{Kind: routing.KindFrame, Frame: []byte(`{"type":"typing","state":"on"}`)},
		{Kind: routing.KindRevoke},
		{Kind: routing.KindEvent, Cursor: 2, Frame: big},
		{Kind: 200, Cursor: 3, Frame: []byte{0, 1, 2, 255}}, // unknown kinds pass through
	}
	for i, env := range sent {
		// From every node in turn: the local path and the remote one.
		publish(t, c.node(i), dev, env)
	}
	got := h.wait(len(sent))
	for i := range sent {
		if !sameEnvelope(got[i], sent[i]) {
			t.Errorf("envelope %d: got kind %d cursor %d frame %d bytes, want kind %d cursor %d frame %d bytes",
				i, got[i].Kind, got[i].Cursor, len(got[i].Frame), sent[i].Kind, sent[i].Cursor, len(sent[i].Frame))
		}
	}
	quiet()
	if n := h.count(); n != len(sent) {
		t.Errorf("handler got %d envelopes, want %d", n, len(sent))
	}
}

func (s *suite) testNoRoute(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	for i := range c.routers {
		wantNoRoute(t, c.node(i), dev, fmt.Sprintf("node %d, device never attached", i))
	}
	// Another device being attached changes nothing for this one.
	attach(t, c.node(0), deviceID(t), newRecorder(t, "other"))
	for i := range c.routers {
		wantNoRoute(t, c.node(i), dev, fmt.Sprintf("node %d, other device attached", i))
	}
}

func (s *suite) testDetach(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	h := newRecorder(t, "handler")
	detach := attach(t, c.node(1), dev, h)
	publish(t, c.node(0), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1, Frame: []byte("a")})
	h.wait(1)
	detach()
	for i := range c.routers {
		wantNoRoute(t, c.node(i), dev, fmt.Sprintf("node %d after detach", i))
	}
	detach() // a second call is harmless
	wantNoRoute(t, c.node(0), dev, "after a second detach")

	// The device can come back.
	h2 := newRecorder(t, "second handler")
	attach(t, c.node(1), dev, h2)
	publish(t, c.node(0), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 2, Frame: []byte("b")})
	if got := h2.wait(1); got[0].Cursor != 2 {
		t.Fatalf("re-attached handler got cursor %d, want 2", got[0].Cursor)
	}
	quiet()
	if n := h.count(); n != 1 {
		t.Fatalf("detached handler got %d envelopes, want 1", n)
	}
}

func (s *suite) testReplace(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	h1 := newRecorder(t, "first")
	h2 := newRecorder(t, "second")
	detach1 := attach(t, c.node(1), dev, h1)
	detach2 := attach(t, c.node(1), dev, h2)
	publish(t, c.node(0), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1, Frame: []byte("a")})
	h2.wait(1)

	// The replaced session ends late: its detach must not remove the new one.
	detach1()
	publish(t, c.node(0), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 2, Frame: []byte("b")})
	got := h2.wait(2)
	if got[0].Cursor != 1 || got[1].Cursor != 2 {
		t.Fatalf("new handler got cursors %d, %d, want 1, 2", got[0].Cursor, got[1].Cursor)
	}
	quiet()
	if n := h1.count(); n != 0 {
		t.Fatalf("replaced handler got %d envelopes, want 0", n)
	}
	if n := h2.count(); n != 2 {
		t.Fatalf("new handler got %d envelopes, want 2", n)
	}
	detach2()
	wantNoRoute(t, c.node(0), dev, "after both detached")
}

func (s *suite) testRemoteNode(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	h := newRecorder(t, "on node B")
	attach(t, c.node(1), dev, h)
	publish(t, c.node(0), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1, Frame: []byte("from A")})
	publish(t, c.node(2), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 2, Frame: []byte("from C")})
	publish(t, c.node(1), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 3, Frame: []byte("from B")})
	got := h.wait(3)
	seen := map[int64]string{}
	for _, e := range got {
		seen[e.Cursor] = string(e.Frame)
	}
	if seen[1] != "from A" || seen[2] != "from C" || seen[3] != "from B" {
		t.Fatalf("got %v", seen)
	}
}

func (s *suite) testSeveralNodes(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	ha := newRecorder(t, "on node A")
	hb := newRecorder(t, "on node B")
	detachA := attach(t, c.node(0), dev, ha)
	detachB := attach(t, c.node(1), dev, hb)
	publish(t, c.node(2), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1, Frame: []byte("one")})
	for _, h := range []*recorder{ha, hb} {
		if got := h.wait(1); got[0].Cursor != 1 || string(got[0].Frame) != "one" {
			t.Fatalf("%s got %+v", h.name, got[0])
		}
	}
	// Detaching on A leaves B reachable, from A too.
	detachA()
	publish(t, c.node(0), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 2, Frame: []byte("two")})
	if got := hb.wait(2); got[1].Cursor != 2 {
		t.Fatalf("node B got cursor %d, want 2", got[1].Cursor)
	}
	quiet()
	if n := ha.count(); n != 1 {
		t.Fatalf("node A got %d envelopes after detaching, want 1", n)
	}
	if n := hb.count(); n != 2 {
		t.Fatalf("node B got %d envelopes, want 2", n)
	}
	detachB()
	for i := range c.routers {
		wantNoRoute(t, c.node(i), dev, fmt.Sprintf("node %d after both nodes detached", i))
	}
}

func (s *suite) testOrder(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	h := newRecorder(t, "handler")
	attach(t, c.node(1), dev, h)
	const n = 500
	ctx := ctxT(t)
	for i := 1; i <= n; i++ {
		env := routing.Envelope{Kind: routing.KindEvent, Cursor: int64(i), Frame: []byte(fmt.Sprint(i))}
		if err := c.node(0).Publish(ctx, dev, env); err != nil {
			t.Fatalf("Publish %d: %v", i, err)
		}
	}
	got := h.wait(n)
	for i, e := range got[:n] {
		if e.Cursor != int64(i+1) {
			t.Fatalf("envelope %d has cursor %d: order lost", i+1, e.Cursor)
		}
	}
	quiet()
	if m := h.count(); m != n {
		t.Fatalf("handler got %d envelopes, want %d", m, n)
	}
}

// testPublishAll publishes one batch mixing devices attached on other nodes
// (several envelopes each, interleaved), a device attached nowhere and an
// over-long device id.
func (s *suite) testPublishAll(t *testing.T) {
	c := s.cluster(t, s.nodes)
	devA, devB, gone := deviceID(t), deviceID(t), deviceID(t)
	ha, hb := newRecorder(t, "A"), newRecorder(t, "B")
	attach(t, c.node(1), devA, ha)
	attach(t, c.node(2), devB, hb)
	const each = 50
	var targets []routing.Target
	for i := 1; i <= each; i++ {
		for _, d := range []string{devA, gone, devB} {
			targets = append(targets, routing.Target{DeviceID: d,
				Env: routing.Envelope{Kind: routing.KindEvent, Cursor: int64(i), Frame: []byte(d + fmt.Sprint(i))}})
		}
	}
	targets = append(targets, routing.Target{DeviceID: string(bytes.Repeat([]byte("x"), 300)), Env: routing.Envelope{Kind: routing.KindEvent}})
	errs := routing.PublishAll(ctxT(t), c.node(0), targets)
	if len(errs) != len(targets) {
		t.Fatalf("%d answers for %d targets", len(errs), len(targets))
	}
	for i, err := range errs {
		want := error(nil)
		if d := targets[i].DeviceID; d != devA && d != devB {
			want = routing.ErrNoRoute
		}
		if !errors.Is(err, want) {
			t.Fatalf("target %d (%.20s): %v, want %v", i, targets[i].DeviceID, err, want)
		}
	}
	for _, x := range []struct {
		h   *recorder
		dev string
	}{{ha, devA}, {hb, devB}} {
		got := x.h.wait(each)
		for i, e := range got[:each] {
			if e.Cursor != int64(i+1) || string(e.Frame) != x.dev+fmt.Sprint(i+1) {
				t.Fatalf("%s: envelope %d is %d %q: order lost", x.h.name, i+1, e.Cursor, e.Frame)
			}
		}
	}
	quiet()
	if ha.count() != each || hb.count() != each {
		t.Fatalf("handlers got %d and %d envelopes, want %d each", ha.count(), hb.count(), each)
	}
}

func (s *suite) testConcurrent(t *testing.T) {
	c := s.cluster(t, s.nodes)
	const publishers, each, devices = 16, 200, 4
	devs := make([]string, devices)
	hs := make([]*recorder, devices)
	for i := range devs {
		devs[i] = deviceID(t)
		hs[i] = newRecorder(t, fmt.Sprintf("device %d", i))
		attach(t, c.node(i), devs[i], hs[i])
	}
	ctx := ctxT(t)
	var wg sync.WaitGroup
	errs := make(chan error, publishers)
	for p := range publishers {
		wg.Go(func() {
			r := c.node(p)
			for i := range each {
				// The frame names the publisher and its sequence number.
				frame := binary.BigEndian.AppendUint32(binary.BigEndian.AppendUint32(nil, uint32(p)), uint32(i))
				d := (p + i) % devices
				if err := r.Publish(ctx, devs[d], routing.Envelope{Kind: routing.KindEvent, Cursor: int64(p*each + i + 1), Frame: frame}); err != nil {
					errs <- fmt.Errorf("publisher %d, envelope %d: %w", p, i, err)
					return
				}
			}
		})
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Fatal(err)
	}
	want := make([]int, devices)
	for p := range publishers {
		for i := range each {
			want[(p+i)%devices]++
		}
	}
	for d, h := range hs {
		h.wait(want[d])
	}
	quiet()
	for d, h := range hs {
		got := h.snapshot()
		if len(got) != want[d] {
			t.Errorf("device %d got %d envelopes, want %d (duplicates?)", d, len(got), want[d])
		}
		seen := make(map[int64]bool, len(got))
		last := make(map[uint32]int64) // publisher -> last sequence number seen
		for _, e := range got {
			if seen[e.Cursor] {
				t.Errorf("device %d got cursor %d twice", d, e.Cursor)
			}
			seen[e.Cursor] = true
			if len(e.Frame) != 8 {
				t.Fatalf("device %d: frame of %d bytes, want 8", d, len(e.Frame))
			}
			p, i := binary.BigEndian.Uint32(e.Frame), int64(binary.BigEndian.Uint32(e.Frame[4:]))
			if prev, ok := last[p]; ok && i <= prev {
				t.Errorf("device %d: publisher %d's envelope %d after %d: order lost", d, p, i, prev)
			}
			last[p] = i
		}
	}
}

func (s *suite) testNoDeliveryAfterDetach(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	h := newRecorder(t, "handler")
	detach := attach(t, c.node(1), dev, h)

	// The publisher numbers its envelopes and notes the first one it
	// began publishing after detach returned.
	var detached atomic.Bool
	var firstAfter atomic.Int64
	stop := make(chan struct{})
	done := make(chan error, 1)
	go func() {
		ctx := ctxT(t)
		for i := int64(1); ; i++ {
			select {
			case <-stop:
				done <- nil
				return
			default:
			}
			if detached.Load() {
				firstAfter.CompareAndSwap(0, i)
			}
			err := c.node(0).Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: i})
			if err != nil && !errors.Is(err, routing.ErrNoRoute) {
				done <- fmt.Errorf("publish %d: %w", i, err)
				return
			}
		}
	}()
	h.wait(20)
	detach()
	detachedAt := time.Now()
	detached.Store(true)
	// Keep publishing past the grace, then let stragglers arrive.
	var err error
	finished := false
	for !finished && (firstAfter.Load() == 0 || time.Since(detachedAt) < 2*DetachGrace) {
		select {
		case err = <-done:
			finished = true
		case <-time.After(10 * time.Millisecond):
		}
		if time.Since(detachedAt) > Timeout {
			t.Fatalf("publisher made no progress within %v", Timeout)
		}
	}
	close(stop)
	if !finished {
		err = <-done
	}
	if err != nil {
		t.Fatal(err)
	}
	quiet()
	wantNoRoute(t, c.node(0), dev, "after detach")

	h.mu.Lock()
	defer h.mu.Unlock()
	first := firstAfter.Load()
	for i, e := range h.envs {
		if e.Cursor >= first {
			t.Errorf("envelope %d was published after detach returned, yet delivered", e.Cursor)
		}
		if late := h.at[i].Sub(detachedAt); late > DetachGrace {
			t.Errorf("envelope %d delivered %v after detach returned (grace %v)", e.Cursor, late, DetachGrace)
		}
	}
}

func (s *suite) testClose(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	h := newRecorder(t, "handler")
	attach(t, c.node(0), dev, h)
	publish(t, c.node(0), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1})
	h.wait(1)
	c.close(0)

	// Publish after Close must return, to an attached device and to an
	// unknown one, and fail.
	for _, target := range []string{dev, deviceID(t)} {
		res := make(chan error, 1)
		go func() {
			res <- c.node(0).Publish(context.Background(), target, routing.Envelope{Kind: routing.KindEvent, Cursor: 2})
		}()
		select {
		case err := <-res:
			if err == nil {
				t.Errorf("Publish after Close = nil, want an error")
			}
		case <-time.After(Timeout):
			t.Fatalf("Publish after Close did not return within %v", Timeout)
		}
	}
	before := h.count()
	quiet()
	if n := h.count(); n != before {
		t.Errorf("handler called after Close returned")
	}
}

func (s *suite) testClosedNodeUnroutable(t *testing.T) {
	c := s.cluster(t, s.nodes)
	dev := deviceID(t)
	h := newRecorder(t, "handler")
	attach(t, c.node(1), dev, h)
	publish(t, c.node(0), dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1})
	h.wait(1)
	// The node goes away without detaching: nothing it held may stay
	// routable, or envelopes would vanish instead of waking the device.
	c.close(1)
	wantNoRoute(t, c.node(0), dev, "device of a closed node")
	wantNoRoute(t, c.node(2), dev, "device of a closed node")
}

func (s *suite) testBroadcast(t *testing.T) {
	c := s.cluster(t, s.nodes)
	ctx := ctxT(t)
	// Other tests may share the broker: only this test's frames count.
	first, second := []byte(deviceID(t)), []byte(deviceID(t))
	type seen struct {
		mu   sync.Mutex
		envs []routing.Envelope
	}
	got := make([]*seen, s.nodes)
	for i := range s.nodes {
		b, ok := c.node(i).(routing.Broadcaster)
		if !ok {
			t.Fatalf("node %d (%T) is not a routing.Broadcaster", i, c.node(i))
		}
		got[i] = &seen{}
		b.OnBroadcast(func(env routing.Envelope) {
			if !bytes.Equal(env.Frame, first) && !bytes.Equal(env.Frame, second) {
				return
			}
			env.Frame = bytes.Clone(env.Frame)
			env.Users = append([]string(nil), env.Users...)
			got[i].mu.Lock()
			got[i].envs = append(got[i].envs, env)
			got[i].mu.Unlock()
		})
	}
	from := c.node(1).(routing.Broadcaster)
	users := []string{"u1", "u2", "u3"}
	for _, f := range [][]byte{first, second} {
		if err := from.Broadcast(ctx, routing.Envelope{Kind: routing.KindUsers, Frame: f, Users: users}); err != nil {
			t.Fatalf("Broadcast: %v", err)
		}
	}
	// One publisher's broadcasts arrive in order, so once the second is
	// everywhere, a copy of the first would have come before it.
	for i, g := range got {
		deadline := time.Now().Add(Timeout)
		for {
			g.mu.Lock()
			n := len(g.envs)
			last := routing.Envelope{}
			if n > 0 {
				last = g.envs[n-1]
			}
			g.mu.Unlock()
			if n > 0 && bytes.Equal(last.Frame, second) {
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("node %d: %d of this test's broadcasts within %v, the second not among them", i, n, Timeout)
			}
			time.Sleep(5 * time.Millisecond)
		}
		g.mu.Lock()
		envs := g.envs
		g.mu.Unlock()
		if len(envs) != 2 || !bytes.Equal(envs[0].Frame, first) {
			t.Fatalf("node %d got %d broadcasts, want the two in order", i, len(envs))
		}
		for _, env := range envs {
			if env.Kind != routing.KindUsers || len(env.Users) != len(users) || env.Users[0] != users[0] || env.Users[2] != users[2] {
				t.Fatalf("node %d got %+v, want kind %d for %v", i, env, routing.KindUsers, users)
			}
		}
	}
}
