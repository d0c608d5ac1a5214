package main

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"io"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"os/exec"
	"slices"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/internal/testenv"
	"github.com/tern-im/tern/routing/rabbitmq/rabbittest"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/mongo/mongotest"
	"github.com/tern-im/tern/wire"
)

// The cluster tests run three `tern serve` processes on one MongoDB
// database (FerretDB started by package mongotest, unless
// TERN_TEST_MONGO_URI points at a real MongoDB) and the local RabbitMQ
// (TERN_TEST_AMQP_URL), and drive SDK clients over real sockets while they
// kill a node, cut the broker connections or drain a node. Every test has a
// database, node ids and an SMS sink of its own. FerretDB writes one
// command at a time, and a message costs about 19 store commands, so a
// cluster on it tops out near 50 messages a second on this machine (see
// docs/cluster-bench.md): the message counts are modest and every wait is
// generous. No assertion here is about speed.

const (
	clusterTestTimeout = 3 * time.Minute
	// deliverWait bounds each wait for deliveries: a liveness bound, far
	// above what a healthy run needs.
	deliverWait = 60 * time.Second
)

// brokerURL returns the test broker's URL, skipping the test (failing it
// in CI) when no broker answers there.
func brokerURL(t *testing.T) string {
	t.Helper()
	url := os.Getenv("TERN_TEST_AMQP_URL")
	if url == "" {
		url = "amqp://guest:guest@127.0.0.1:5672/"
	}
	conn, err := amqp.DialConfig(url, amqp.Config{Dial: amqp.DefaultDial(3 * time.Second)})
	if err != nil {
		testenv.Unavailable(t, "RabbitMQ not reachable (%v); CI starts it, locally run `rabbitmq-server -detached` or set TERN_TEST_AMQP_URL", err)
	}
	_ = conn.Close()
	return url
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// cluster is a set of tern processes sharing a database and the broker.
type cluster struct {
	t        *testing.T
	amqpURL  string
	mongoURI string
	db       string
	sms      *servertest.SMSSink
	nodes    []*node
	mc       *mongo.Client // for inboxes
}

type node struct {
	*proc
	id   string
	addr string   // host:port
	args []string // what it was started with, to restart it
}

// newCluster starts n nodes on the shared test broker, passing extra flags
// to each.
func newCluster(t *testing.T, n int, extra ...string) *cluster {
	t.Helper()
	return newClusterOn(t, brokerURL(t), n, extra...)
}

// newClusterOn is newCluster on the broker at amqpURL.
func newClusterOn(t *testing.T, amqpURL string, n int, extra ...string) *cluster {
	t.Helper()
	c := &cluster{t: t, amqpURL: amqpURL, sms: servertest.NewSMSSink(t)}
	c.mongoURI, c.db = mongotest.NewDatabase(t)
	run := randomHex(4)
	for i := 1; i <= n; i++ {
		id := fmt.Sprintf("ct-%s-%d", run, i)
		args := append([]string{"--store", "mongo", "--mongo-uri", c.mongoURI, "--mongo-db", c.db,
			"--router", "rabbitmq", "--amqp-url", c.amqpURL, "--node-id", id,
			// Resent sends come in bursts after a reconnect.
			"--sends-per-second", "1000", "--send-burst", "1000"}, extra...)
		p := startTern(t, t.TempDir(), c.sms.URL, args...)
		c.nodes = append(c.nodes, &node{proc: p, id: id, addr: strings.TrimPrefix(p.url, "http://"), args: args})
	}
	// Registered after the nodes' own cleanups, so it runs before they
	// are killed.
	t.Cleanup(func() {
		if !t.Failed() {
			return
		}
		for _, nd := range c.nodes {
			t.Logf("log of node %s (last lines):\n%s", nd.id, tail(nd.log(), 40))
		}
	})
	return c
}

func tail(s string, n int) string {
	lines := strings.Split(strings.TrimRight(s, "\n"), "\n")
	if len(lines) > n {
		lines = lines[len(lines)-n:]
	}
	return strings.Join(lines, "\n")
}

// exited reports whether the node's process has ended.
func (nd *node) exited() bool {
	select {
	case err := <-nd.done:
		nd.done <- err // leave it for others
		return true
	default:
		return false
	}
}

// device is one signed-in SDK client and what its application saw.
type device struct {
	name string
	c    *client.Client
	sess wire.Session
	scr  *screen
	log  *syncBuffer // the SDK's log
}

type deviceOpts struct {
	// strict turns the SDK's dedupe off, so that the screen sees every
	// message frame the server wrote: where nothing fails, the server must
	// not repeat one.
	strict bool
	// redeliveries, with strict, counts repeats rather than failing.
	redeliveries *atomic.Int64
}

// login signs phone in as a new device through baseURL and connects it.
func (c *cluster) login(ctx context.Context, baseURL, phone, name string, o deviceOpts) *device {
	t := c.t
	t.Helper()
	d := &device{name: name, log: &syncBuffer{}}
	opts := client.Options{
		// A fresh connection per REST call, so that the load balancer's
		// count of open connections is the sockets'.
		HTTPClient:  &http.Client{Transport: &http.Transport{DisableKeepAlives: true}, Timeout: 30 * time.Second},
		Log:         slog.New(slog.NewTextHandler(d.log, &slog.HandlerOptions{Level: slog.LevelInfo})),
		DialTimeout: 5 * time.Second,
	}
	opts.Backoff.Min, opts.Backoff.Max = 50*time.Millisecond, time.Second
	if o.strict {
		opts.DedupeWindow = -1
	}
	d.c = client.New(baseURL, opts)
	t.Cleanup(func() { _ = d.c.Close() })
	sess, err := d.c.Login(ctx, phone, name, "other", c.sms.Code)
	if err != nil {
		t.Fatalf("login %s (%s) at %s: %v", name, phone, baseURL, err)
	}
	d.sess = sess
	if err := d.c.Connect(ctx); err != nil {
		t.Fatalf("connect %s at %s: %v", name, baseURL, err)
	}
	d.scr = watch(d.c, o.redeliveries)
	return d
}

func (d *device) user() string { return d.sess.UserID }

// syncBuffer is a bytes.Buffer safe for concurrent use.
type syncBuffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (s *syncBuffer) Write(p []byte) (int, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.Write(p)
}

func (s *syncBuffer) String() string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.b.String()
}

// screen records what a device's application received from Events: every
// message (by msg_id, with when it arrived), every receipt, and anything
// that breaks the contract (a message shown twice, a chat out of seq order,
// an error frame nobody asked for).
type screen struct {
	mu       sync.Mutex
	msgs     map[string]wire.ServerFrame
	arrived  map[string]time.Time
	lastSeq  map[string]int64                      // by chat
	receipts map[string]map[string]map[string]bool // status -> msg id -> by
	problems []string
	// redeliveries, when set, counts a message shown again instead of
	// calling it a problem: where nodes die, the server may repeat what
	// it had written before it died (clients deduplicate by msg_id).
	redeliveries *atomic.Int64
	// presence is the latest presence frame by user, presences all of
	// them in order.
	presence  map[string]wire.ServerFrame
	presences []wire.ServerFrame
}

func watch(c *client.Client, redeliveries *atomic.Int64) *screen {
	s := &screen{msgs: map[string]wire.ServerFrame{}, arrived: map[string]time.Time{}, redeliveries: redeliveries,
		lastSeq: map[string]int64{}, presence: map[string]wire.ServerFrame{},
		receipts: map[string]map[string]map[string]bool{wire.StatusDelivered: {}, wire.StatusRead: {}}}
	go func() {
		// Ends when the client closes, at the end of the test.
		for f := range c.Events() {
			s.record(f)
		}
	}()
	return s
}

func (s *screen) record(f wire.ServerFrame) {
	s.mu.Lock()
	defer s.mu.Unlock()
	switch f.Type {
	case wire.TypePresence:
		s.presence[f.UserID] = f
		s.presences = append(s.presences, f)
	case wire.TypeMessage:
		if _, dup := s.msgs[f.MsgID]; dup {
			if s.redeliveries != nil {
				s.redeliveries.Add(1)
				return
			}
			s.problems = append(s.problems, fmt.Sprintf("message %s (seq %d) shown twice", f.MsgID, f.Seq))
			return
		}
		if last := s.lastSeq[f.ChatID]; f.Seq <= last {
			s.problems = append(s.problems, fmt.Sprintf("chat %s: seq %d shown after seq %d", f.ChatID, f.Seq, last))
		}
		s.lastSeq[f.ChatID] = max(s.lastSeq[f.ChatID], f.Seq)
		s.msgs[f.MsgID] = f
		s.arrived[f.MsgID] = time.Now()
	case wire.TypeReceipt:
		m := s.receipts[f.Status]
		if m == nil {
			s.problems = append(s.problems, fmt.Sprintf("receipt with status %q", f.Status))
			return
		}
		for _, id := range f.MsgIDs {
			if m[id] == nil {
				m[id] = map[string]bool{}
			}
			m[id][f.By] = true
			for _, u := range f.UserIDs { // a coalesced receipt of a large group
				m[id][u] = true
			}
		}
	case wire.TypeError:
		s.problems = append(s.problems, fmt.Sprintf("error frame %s: %s", f.Code, f.Message))
	}
}

// missing returns how many of ids have not arrived, and one of them.
func (s *screen) missing(ids map[string]wire.Sent) (n int, one string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	for id := range ids {
		if _, ok := s.msgs[id]; !ok {
			n++
			one = id
		}
	}
	return n, one
}

// missingReceipts returns those of ids that have no receipt of status
// from by.
func (s *screen) missingReceipts(status, by string, ids map[string]wire.Sent) []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	var out []string
	for id := range ids {
		if !s.receipts[status][id][by] {
			out = append(out, id)
		}
	}
	return out
}

func (s *screen) message(id string) (wire.ServerFrame, time.Time) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.msgs[id], s.arrived[id]
}

func (s *screen) count() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.msgs)
}

func (s *screen) troubles() []string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.problems)
}

// flow is one device sending n messages to a user, one after another (each
// waits for its sent answer), and the devices that must receive them.
type flow struct {
	from *device
	to   *device   // the addressee, one of its devices
	recv []*device // every device that must show the messages
	// chat, if set, is the group the messages go to (recv: its members'
	// devices), whose log starts with base entries of group changes.
	chat  string
	base  int64
	n     int
	mu    sync.Mutex
	sent  map[string]wire.Sent // by msg_id
	texts map[string]string    // by msg_id
	at    map[string]time.Time // when the sent answer came
}

func newFlow(from, to *device, n int, alsoTo ...*device) *flow {
	return &flow{from: from, to: to, recv: append([]*device{to}, alsoTo...), n: n,
		sent: map[string]wire.Sent{}, texts: map[string]string{}, at: map[string]time.Time{}}
}

// newGroupFlow is from sending to the group chat, whose members' devices
// are recv; the group was just created (one entry).
func newGroupFlow(from *device, chat string, recv ...*device) *flow {
	f := newFlow(from, recv[0], 0, recv[1:]...)
	f.chat, f.base = chat, 1
	return f
}

// target is what the flow's sends go to.
func (f *flow) target() string {
	if f.chat != "" {
		return f.chat
	}
	return f.to.user()
}

func (f *flow) answered() map[string]wire.Sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	return maps.Clone(f.sent)
}

// runFlows runs the flows at once, pausing between the sends of a flow,
// and counts answered sends in progress. It returns the first error.
func runFlows(ctx context.Context, flows []*flow, pause time.Duration, progress *atomic.Int64) error {
	errs := make(chan error, len(flows))
	var wg sync.WaitGroup
	for _, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range f.n {
				text := fmt.Sprintf("%s->%s #%d", f.from.name, f.to.name, i)
				s, err := f.from.c.Send(ctx, f.target(), wire.Body{Text: text})
				if err != nil {
					errs <- fmt.Errorf("%s: send %d: %w", f.from.name, i, err)
					return
				}
				f.mu.Lock()
				if _, dup := f.sent[s.MsgID]; dup {
					f.mu.Unlock()
					errs <- fmt.Errorf("%s: send %d answered with the msg_id of an earlier send: %+v", f.from.name, i, s)
					return
				}
				f.sent[s.MsgID], f.texts[s.MsgID], f.at[s.MsgID] = s, text, time.Now()
				f.mu.Unlock()
				if progress != nil {
					progress.Add(1)
				}
				if pause > 0 {
					select {
					case <-time.After(pause):
					case <-ctx.Done():
					}
				}
			}
		}()
	}
	wg.Wait()
	close(errs)
	return <-errs
}

// flowsRun is a runFlowsUntil in progress.
type flowsRun struct {
	failed <-chan error // receives the first error, if any
	wait   func() error // waits for every flow to stop; the first error
}

// runFlowsUntil runs the flows, each sending one message after another
// with pause between, until stop is closed; each sender then finishes the
// send it is in and stops. A flow's n counts its answered sends.
func runFlowsUntil(ctx context.Context, flows []*flow, pause time.Duration, stop <-chan struct{}, progress *atomic.Int64) flowsRun {
	failed := make(chan error, len(flows))
	var first error
	var once sync.Once
	var wg sync.WaitGroup
	for _, f := range flows {
		wg.Add(1)
		go func() {
			defer wg.Done()
			fail := func(err error) {
				once.Do(func() { first = err })
				failed <- err
			}
			for {
				select {
				case <-stop:
					return
				default:
				}
				f.mu.Lock()
				i := f.n
				f.mu.Unlock()
				text := fmt.Sprintf("%s->%s #%d", f.from.name, f.to.name, i)
				s, err := f.from.c.Send(ctx, f.target(), wire.Body{Text: text})
				if err != nil {
					fail(fmt.Errorf("%s: send %d: %w", f.from.name, i, err))
					return
				}
				f.mu.Lock()
				if _, dup := f.sent[s.MsgID]; dup {
					f.mu.Unlock()
					fail(fmt.Errorf("%s: send %d answered with the msg_id of an earlier send: %+v", f.from.name, i, s))
					return
				}
				f.sent[s.MsgID], f.texts[s.MsgID], f.at[s.MsgID] = s, text, time.Now()
				f.n++
				f.mu.Unlock()
				progress.Add(1)
				select {
				case <-stop:
					return
				case <-time.After(pause):
				}
			}
		}()
	}
	return flowsRun{failed: failed, wait: func() error { wg.Wait(); return first }}
}

// eventually polls cond until it holds, failing the test after d.
func eventually(t *testing.T, d time.Duration, what func() string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", d, what())
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// waitLeft polls left until it returns 0 or d has passed, and returns the
// last count.
func waitLeft(d time.Duration, left func() int) int {
	deadline := time.Now().Add(d)
	for {
		n := left()
		if n == 0 || time.Now().After(deadline) {
			return n
		}
		time.Sleep(25 * time.Millisecond)
	}
}

// checkDelivered waits until every device of every flow's recv shows every
// message the flow had answered sent, and checks what it shows.
func checkDelivered(t *testing.T, flows []*flow) {
	t.Helper()
	missing := func() (n int, what string) {
		for _, f := range flows {
			want := f.answered()
			if len(want) != f.n {
				t.Fatalf("%s->%s: %d of %d sends answered", f.from.name, f.to.name, len(want), f.n)
			}
			for _, d := range f.recv {
				if k, one := d.scr.missing(want); k > 0 {
					n += k
					what += fmt.Sprintf("; %s misses %d of %s's %d messages (e.g. %s)", d.name, k, f.from.name, f.n, one)
				}
			}
		}
		return n, what
	}
	var what string
	if waitLeft(deliverWait, func() (n int) { n, what = missing(); return n }) > 0 {
		t.Fatalf("after %v: %s", deliverWait, what[2:])
	}
	for _, f := range flows {
		for id, s := range f.answered() {
			for _, d := range f.recv {
				m, _ := d.scr.message(id)
				if m.ChatID != s.ChatID || m.Seq != s.Seq || m.From != f.from.user() ||
					m.FromDevice != f.from.sess.DeviceID || m.Body == nil || m.Body.Text != f.texts[id] {
					t.Fatalf("%s got %+v (body %+v) for %+v", d.name, m, m.Body, s)
				}
			}
		}
	}
}

// checkChats checks that the sent answers of every chat have unique,
// gap-free seqs starting at 1, whatever node answered them.
func checkChats(t *testing.T, flows []*flow) {
	t.Helper()
	seqs := map[string][]int64{}
	base := map[string]int64{}
	for _, f := range flows {
		for _, s := range f.answered() {
			seqs[s.ChatID] = append(seqs[s.ChatID], s.Seq)
			base[s.ChatID] = f.base
		}
	}
	for chat, ss := range seqs {
		slices.Sort(ss)
		for i, s := range ss {
			if s != base[chat]+int64(i+1) {
				t.Fatalf("chat %s: seqs %v are not 1..%d", chat, ss, len(ss))
			}
		}
	}
}

// checkReceipts waits until every flow's sender shows a receipt of status
// by the addressee for every message.
func checkReceipts(t *testing.T, status string, flows []*flow) {
	t.Helper()
	var what string
	left := func() int {
		n := 0
		what = ""
		for _, f := range flows {
			readers := []*device{f.to}
			if f.chat != "" {
				readers = f.recv // every member's: one receipt per member
			}
			for _, r := range readers {
				if r.user() == f.from.user() {
					continue
				}
				if k := len(f.from.scr.missingReceipts(status, r.user(), f.answered())); k > 0 {
					n += k
					what += fmt.Sprintf("; %s has no %s receipt from %s for %d of %d messages", f.from.name, status, r.name, k, f.n)
				}
			}
		}
		return n
	}
	if waitLeft(deliverWait, left) > 0 {
		t.Fatalf("after %v: %s", deliverWait, what[2:])
	}
}

// checkNothingStranded waits until no inbox event in the cluster's
// database sits at or below its device's floor: acked, yet stored. An ack
// that a node's death cut short leaves such events until the device's next
// ack. It reads store/mongo's documents directly (their layout is in
// store/mongo/doc.go): devices {_id, floor}; inbox {_id "<device>/<cursor,
// 19 digits>"}.
func (c *cluster) checkNothingStranded(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if c.mc == nil {
		mc, err := mongo.Connect(options.Client().ApplyURI(c.mongoURI))
		if err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() { _ = mc.Disconnect(context.Background()) })
		c.mc = mc
	}
	db := c.mc.Database(c.db)
	stranded := func() []string {
		var devs []struct {
			ID    string `bson:"_id"`
			Floor int64  `bson:"floor"`
		}
		cur, err := db.Collection("devices").Find(ctx, bson.D{})
		if err == nil {
			err = cur.All(ctx, &devs)
		}
		if err != nil {
			t.Fatalf("read devices: %v", err)
		}
		floor := map[string]int64{}
		for _, d := range devs {
			floor[d.ID] = d.Floor
		}
		var evs []struct {
			ID string `bson:"_id"`
		}
		cur, err = db.Collection("inbox").Find(ctx, bson.D{}, options.Find().SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err == nil {
			err = cur.All(ctx, &evs)
		}
		if err != nil {
			t.Fatalf("read inbox: %v", err)
		}
		var out []string
		for _, e := range evs {
			dev, num, _ := strings.Cut(e.ID, "/")
			if f, ok := floor[dev]; ok && num <= fmt.Sprintf("%019d", f) {
				out = append(out, e.ID)
			}
		}
		return out
	}
	var left []string
	if waitLeft(10*time.Second, func() int { left = stranded(); return len(left) }) > 0 {
		t.Fatalf("inbox events acked but still stored: %v", left)
	}
}

// checkClean fails the test if a device saw something the contract rules
// out, or its SDK stopped.
func checkClean(t *testing.T, ds ...*device) {
	t.Helper()
	for _, d := range ds {
		if p := d.scr.troubles(); len(p) > 0 {
			t.Errorf("%s: %s", d.name, strings.Join(p, "; "))
		}
		if err := d.c.Err(); err != nil {
			t.Errorf("%s: SDK stopped: %v", d.name, err)
		}
	}
}

// readAll marks every chat d shows as read up to the last seq it shows.
func readAll(ctx context.Context, t *testing.T, d *device) {
	t.Helper()
	d.scr.mu.Lock()
	last := maps.Clone(d.scr.lastSeq)
	d.scr.mu.Unlock()
	for chat, seq := range last {
		if err := d.c.Read(ctx, chat, seq); err != nil {
			t.Fatalf("%s: read %s up to %d: %v", d.name, chat, seq, err)
		}
	}
}

// noMore fails the test if any device shows another message within d.
func noMore(t *testing.T, d time.Duration, ds ...*device) {
	t.Helper()
	before := make([]int, len(ds))
	for i, dv := range ds {
		before[i] = dv.scr.count()
	}
	time.Sleep(d)
	for i, dv := range ds {
		if n := dv.scr.count(); n != before[i] {
			t.Errorf("%s: %d more messages after all had arrived", dv.name, n-before[i])
		}
	}
}

func phone(n int) string { return fmt.Sprintf("+1415555%04d", n) }

// TestClusterChatAcrossNodes: alice, bob and carol, each on a node of its
// own, chat pairwise in both directions at once. Every message answered
// sent reaches its addressee exactly once (the SDK's dedupe is off: the
// server itself must not repeat), in seq order, each chat's seqs are
// gap-free whichever node stored them, and delivered and read receipts
// come back across nodes.
func TestClusterChatAcrossNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTestTimeout)
	defer cancel()
	c := newCluster(t, 3)
	strict := deviceOpts{strict: true}
	alice := c.login(ctx, c.nodes[0].url, phone(1), "alice", strict)
	bob := c.login(ctx, c.nodes[1].url, phone(2), "bob", strict)
	carol := c.login(ctx, c.nodes[2].url, phone(3), "carol", strict)

	const each = 6
	flows := []*flow{
		newFlow(alice, bob, each), newFlow(bob, alice, each),
		newFlow(bob, carol, each), newFlow(carol, bob, each),
		newFlow(carol, alice, each), newFlow(alice, carol, each),
	}
	if err := runFlows(ctx, flows, 0, nil); err != nil {
		t.Fatal(err)
	}
	checkChats(t, flows)
	checkDelivered(t, flows)
	checkReceipts(t, wire.StatusDelivered, flows)
	for _, d := range []*device{alice, bob, carol} {
		readAll(ctx, t, d)
	}
	checkReceipts(t, wire.StatusRead, flows)
	noMore(t, 500*time.Millisecond, alice, bob, carol)
	checkClean(t, alice, bob, carol)
	for _, d := range []*device{alice, bob, carol} {
		if s := d.c.Stats(); s.Reconnects != 0 {
			t.Errorf("%s reconnected %d times with every node up", d.name, s.Reconnects)
		}
	}
}

// TestClusterTwoDevicesOnTwoNodes: dave has a phone on node 1 and a laptop
// on node 2; erin is on node 3. Every message erin sends reaches both of
// dave's devices, and what either of dave's devices sends reaches erin and
// dave's other device, each exactly once and in seq order.
func TestClusterTwoDevicesOnTwoNodes(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTestTimeout)
	defer cancel()
	c := newCluster(t, 3)
	strict := deviceOpts{strict: true}
	phoneDev := c.login(ctx, c.nodes[0].url, phone(11), "dave-phone", strict)
	laptop := c.login(ctx, c.nodes[1].url, phone(11), "dave-laptop", strict)
	erin := c.login(ctx, c.nodes[2].url, phone(12), "erin", strict)
	if phoneDev.user() != laptop.user() || phoneDev.sess.DeviceID == laptop.sess.DeviceID {
		t.Fatalf("two sign-ins of one phone: %+v and %+v; want one user, two devices", phoneDev.sess, laptop.sess)
	}

	flows := []*flow{
		newFlow(erin, phoneDev, 20, laptop),
		newFlow(phoneDev, erin, 10, laptop),
		newFlow(laptop, erin, 10, phoneDev),
	}
	if err := runFlows(ctx, flows, 0, nil); err != nil {
		t.Fatal(err)
	}
	checkChats(t, flows)
	checkDelivered(t, flows)
	// erin's messages are acked by both of dave's devices: one delivered
	// receipt per message, by dave.
	checkReceipts(t, wire.StatusDelivered, flows[:1])
	// Receipts go to every device of the author: both of dave's devices
	// learn that erin got what either of them sent.
	for _, d := range []*device{phoneDev, laptop} {
		for _, f := range flows[1:] {
			want := f.answered()
			var left []string
			eventually(t, deliverWait, func() string {
				return fmt.Sprintf("%s has no delivered receipt from erin for %d of %s's messages", d.name, len(left), f.from.name)
			}, func() bool {
				left = d.scr.missingReceipts(wire.StatusDelivered, erin.user(), want)
				return len(left) == 0
			})
		}
	}
	noMore(t, 500*time.Millisecond, phoneDev, laptop, erin)
	checkClean(t, phoneDev, laptop, erin)
	// A device never gets its own messages back.
	for _, f := range flows {
		for id := range f.answered() {
			if m, _ := f.from.scr.message(id); m.MsgID != "" {
				t.Fatalf("%s got its own message %s back", f.from.name, id)
			}
		}
	}
	if n, want := erin.scr.count(), 20; n != want {
		t.Fatalf("erin shows %d messages, want %d", n, want)
	}
	for _, d := range []*device{phoneDev, laptop} {
		if n, want := d.scr.count(), 30; n != want {
			t.Fatalf("%s shows %d messages, want %d", d.name, n, want)
		}
	}
}

// failoverCast is the cast of the failover tests: four users behind a load
// balancer, bob and dave on node 2 (the one that fails), alice on node 1,
// carol on node 3, and traffic through node 2 in both directions.
type failoverCast struct {
	alice, bob, carol, dave *device
	flows                   []*flow
}

func newFailoverCast(ctx context.Context, c *cluster, lb *balancer, each int) *failoverCast {
	fc := &failoverCast{
		alice: c.login(ctx, lb.url(0), phone(21), "alice", deviceOpts{}),
		bob:   c.login(ctx, lb.url(1), phone(22), "bob", deviceOpts{}),
		carol: c.login(ctx, lb.url(2), phone(23), "carol", deviceOpts{}),
		dave:  c.login(ctx, lb.url(1), phone(24), "dave", deviceOpts{}),
	}
	fc.flows = []*flow{
		newFlow(fc.alice, fc.bob, each),
		newFlow(fc.bob, fc.carol, each),
		newFlow(fc.carol, fc.dave, each),
		newFlow(fc.dave, fc.alice, each),
	}
	return fc
}

func (fc *failoverCast) devices() []*device { return []*device{fc.alice, fc.bob, fc.carol, fc.dave} }

// runWithFault runs the cast's flows and calls fault once the given number
// of sends have been answered.
func runWithFault(ctx context.Context, t *testing.T, flows []*flow, pause time.Duration, after int64, fault func()) {
	t.Helper()
	var progress atomic.Int64
	done := make(chan error, 1)
	go func() { done <- runFlows(ctx, flows, pause, &progress) }()
	for progress.Load() < after {
		select {
		case err := <-done:
			t.Fatalf("traffic ended before the fault: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	fault()
	if err := <-done; err != nil {
		t.Fatalf("traffic: %v", err)
	}
}

// TestClusterNodeKilled kills node 2 with SIGKILL under steady traffic.
// Its clients reconnect through the load balancer to the other nodes,
// write their unanswered sends again, and nothing is lost: every message
// answered sent is shown once, in order, and its delivered receipt comes
// back.
func TestClusterNodeKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTestTimeout)
	defer cancel()
	c := newCluster(t, 3)
	lb := newBalancer(t, c.nodes)
	fc := newFailoverCast(ctx, c, lb, 15)
	victim := c.nodes[1]
	eventually(t, 10*time.Second, func() string {
		return fmt.Sprintf("%d connections to node 2 before the kill, want bob's and dave's sockets", lb.open(1))
	}, func() bool { return lb.open(1) == 2 })

	runWithFault(ctx, t, fc.flows, 30*time.Millisecond, 20, func() {
		if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatal(err)
		}
		<-victim.done
	})
	checkChats(t, fc.flows)
	checkDelivered(t, fc.flows)
	checkReceipts(t, wire.StatusDelivered, fc.flows)
	c.checkNothingStranded(t)
	noMore(t, 500*time.Millisecond, fc.devices()...)
	checkClean(t, fc.devices()...)
	for _, d := range []*device{fc.bob, fc.dave} {
		if s := d.c.Stats(); s.Reconnects == 0 {
			t.Errorf("%s, whose node died, never reconnected: %+v", d.name, s)
		}
	}
	eventually(t, 10*time.Second, func() string { return "sockets still counted on the dead node" },
		func() bool { return lb.open(1) == 0 })
	for _, d := range fc.devices() {
		if !d.c.Connected() {
			t.Errorf("%s is not connected at the end", d.name)
		}
	}
	for _, d := range fc.devices() {
		t.Logf("%s: %+v", d.name, d.c.Stats())
	}
	// How often the kill cut an ack short (then a surviving node finished it).
	finished := 0
	for _, nd := range c.nodes {
		finished += strings.Count(nd.log(), "finishing an ack that stopped halfway")
	}
	t.Logf("acks cut short by the kill and finished by another node: %d", finished)
}

// TestClusterGracefulDrain sends SIGTERM to node 2 under steady traffic:
// its /readyz turns 503 during the drain delay, so the load balancer stops
// sending it connections; then its sockets are closed with 1001, its
// clients reconnect to the other nodes, the process exits cleanly, and
// nothing is lost.
func TestClusterGracefulDrain(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTestTimeout)
	defer cancel()
	c := newCluster(t, 3, "--drain-delay", "1s", "--shutdown-grace", "10s")
	lb := newBalancer(t, c.nodes)
	fc := newFailoverCast(ctx, c, lb, 15)
	victim := c.nodes[1]
	eventually(t, 10*time.Second, func() string {
		return fmt.Sprintf("%d connections to node 2 before the drain, want bob's and dave's sockets", lb.open(1))
	}, func() bool { return lb.open(1) == 2 })

	var sawDraining bool
	runWithFault(ctx, t, fc.flows, 30*time.Millisecond, 20, func() {
		if err := victim.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		// The drain delay is 1 s: /readyz must say 503 while the node
		// still serves.
		deadline := time.Now().Add(5 * time.Second)
		for !sawDraining && time.Now().Before(deadline) && !victim.exited() {
			sawDraining = readyStatus(victim.addr) == http.StatusServiceUnavailable
			time.Sleep(20 * time.Millisecond)
		}
	})
	if !sawDraining {
		t.Error("never saw /readyz answer 503 on the draining node")
	}
	select {
	case err := <-victim.done:
		if err != nil {
			t.Fatalf("drained node exited with %v", err)
		}
	case <-time.After(30 * time.Second):
		t.Fatal("drained node did not exit")
	}
	if !strings.Contains(victim.log(), `"msg":"tern stopped"`) {
		t.Error("no clean stop in the drained node's log")
	}
	checkChats(t, fc.flows)
	checkDelivered(t, fc.flows)
	checkReceipts(t, wire.StatusDelivered, fc.flows)
	c.checkNothingStranded(t)
	noMore(t, 500*time.Millisecond, fc.devices()...)
	checkClean(t, fc.devices()...)
	for _, d := range []*device{fc.bob, fc.dave} {
		if !strings.Contains(d.log.String(), "close 1001") {
			t.Errorf("%s was not told 1001 (going away); its SDK log:\n%s", d.name, d.log.String())
		}
		if s := d.c.Stats(); s.Reconnects == 0 {
			t.Errorf("%s, whose node drained, never reconnected: %+v", d.name, s)
		}
	}
	for _, d := range []*device{fc.alice, fc.carol} {
		if s := d.c.Stats(); s.Reconnects != 0 {
			t.Errorf("%s, on a node that stayed, reconnected %d times", d.name, s.Reconnects)
		}
	}
	if n := lb.open(1); n != 0 {
		t.Errorf("%d sockets still on the drained node", n)
	}
}

func readyStatus(addr string) int {
	hc := &http.Client{Timeout: time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
	resp, err := hc.Get("http://" + addr + "/readyz")
	if err != nil {
		return 0
	}
	_, _ = io.Copy(io.Discard, resp.Body)
	_ = resp.Body.Close()
	return resp.StatusCode
}

// TestClusterBrokerCut makes the broker close every node's connection,
// twice, under traffic. The sockets stay up; delivery resumes within
// seconds (the routers resync their sessions from the inbox while down,
// then reconnect and rebind), nothing answered sent is lost and nothing
// is shown twice.
func TestClusterBrokerCut(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTestTimeout)
	defer cancel()
	rabbitmqctl(t, "-q", "status") // skip early when unusable
	c := newCluster(t, 3)
	lb := newBalancer(t, c.nodes)
	alice := c.login(ctx, lb.url(0), phone(31), "alice", deviceOpts{})
	bob := c.login(ctx, lb.url(1), phone(32), "bob", deviceOpts{})
	carol := c.login(ctx, lb.url(2), phone(33), "carol", deviceOpts{})
	all := []*device{alice, bob, carol}
	// About 30 messages a second until 10 more were answered after the
	// second cut: a cut (listing the connections, then closing them) takes
	// one to several seconds of rabbitmqctl, many more on a busy machine,
	// so the traffic lasts as long as the cuts take.
	flows := []*flow{newFlow(alice, bob, 0), newFlow(bob, carol, 0), newFlow(carol, alice, 0)}

	var cuts []time.Time
	var progress atomic.Int64
	stop := make(chan struct{})
	traffic := runFlowsUntil(ctx, flows, 100*time.Millisecond, stop, &progress)
	awaitProgress := func(at int64, what string) {
		for progress.Load() < at {
			select {
			case err := <-traffic.failed:
				t.Fatalf("traffic stopped %s: %v", what, err)
			case <-time.After(10 * time.Millisecond):
			}
		}
	}
	at := int64(10)
	for i := range 2 {
		awaitProgress(at, fmt.Sprintf("before cut %d", i+1))
		cuts = append(cuts, closeBrokerConnections(t, c.nodes...))
		at = progress.Load() + 10
	}
	awaitProgress(at, "after the cuts")
	close(stop)
	if err := traffic.wait(); err != nil {
		t.Fatalf("traffic: %v", err)
	}
	checkAfterTraffic(t, flows, all)

	// Delivery resumed: every message answered sent from the moment of a
	// cut on reached the screen within seconds (a liveness bound, far
	// above the ~1 s the routers' outage resync takes).
	const resumeBound = 15 * time.Second
	for i, cut := range cuts {
		n, worst := slowest(flows, cut, cut.Add(5*time.Second))
		t.Logf("cut %d: of the %d messages answered sent within 5 s of it, the slowest took %v from sent to screen",
			i+1, n, worst.Round(time.Millisecond))
		if worst > resumeBound {
			t.Errorf("cut %d: a message sent after it took %v to reach the screen", i+1, worst)
		}
	}
	// The routers reconnected: every node has a broker connection again
	// and logged "reconnected to broker" after each cut.
	eventually(t, 30*time.Second, func() string { return "not every node reconnected to the broker" }, func() bool {
		return len(brokerConnections(t, c.nodes...)) == len(c.nodes)
	})
	for _, nd := range c.nodes {
		if n := strings.Count(nd.log(), `"msg":"reconnected to broker"`); n < len(cuts) {
			t.Errorf("node %s logged %d reconnections to the broker, want %d", nd.id, n, len(cuts))
		}
		if nd.exited() {
			t.Errorf("node %s exited", nd.id)
		}
	}
	for _, d := range all {
		// The broker is behind the nodes: its outage leaves the sockets up.
		if s := d.c.Stats(); s.Reconnects != 0 {
			t.Errorf("%s reconnected %d times during the broker cuts", d.name, s.Reconnects)
		}
	}
	// After the cuts, the fast path works again.
	checkFastPath(ctx, t, alice, bob, carol)
}

// TestClusterBrokerRestart kills the broker (a private RabbitMQ node) under
// traffic and starts it again a few seconds later. Sends keep being
// answered (the store is up); while the broker is away the nodes poll their
// sessions' inboxes, so messages keep reaching screens; once it is back the
// nodes reconnect and rebind. Nothing answered sent is lost or shown twice,
// receipts come back, and no client socket drops.
func TestClusterBrokerRestart(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTestTimeout)
	defer cancel()
	broker := rabbittest.Start(t)
	c := newClusterOn(t, broker.URL, 3)
	lb := newBalancer(t, c.nodes)
	alice := c.login(ctx, lb.url(0), phone(41), "alice", deviceOpts{})
	bob := c.login(ctx, lb.url(1), phone(42), "bob", deviceOpts{})
	carol := c.login(ctx, lb.url(2), phone(43), "carol", deviceOpts{})
	all := []*device{alice, bob, carol}
	flows := []*flow{newFlow(alice, bob, 60), newFlow(bob, carol, 60), newFlow(carol, alice, 60)}

	var progress atomic.Int64
	done := make(chan error, 1)
	go func() { done <- runFlows(ctx, flows, 100*time.Millisecond, &progress) }()
	for progress.Load() < 15 {
		select {
		case err := <-done:
			t.Fatalf("traffic ended before the broker died: %v", err)
		case <-time.After(10 * time.Millisecond):
		}
	}
	if g := gauge(t, c.nodes[0], "tern_broker_connected"); g != 1 {
		t.Errorf("tern_broker_connected is %v before the broker died", g)
	}
	down := time.Now()
	broker.Kill()
	atKill := progress.Load()
	time.Sleep(2 * time.Second)
	if g := gauge(t, c.nodes[0], "tern_broker_connected"); g != 0 {
		t.Errorf("tern_broker_connected is %v with the broker dead", g)
	}
	if n := progress.Load() - atKill; n == 0 {
		t.Error("no send was answered while the broker was down: sends must not need it")
	}
	broker.Start()
	up := time.Now()
	t.Logf("broker away for %v; %d sends answered meanwhile", up.Sub(down).Round(time.Millisecond), progress.Load()-atKill)
	if err := <-done; err != nil {
		t.Fatalf("traffic: %v", err)
	}
	checkAfterTraffic(t, flows, all)

	// Delivered during the outage too: a message answered sent while the
	// broker was away reached its screen by the nodes' inbox polling, in
	// seconds (a liveness bound, far above the 1 s poll).
	const pollBound = 15 * time.Second
	n, worst := slowest(flows, down, up)
	t.Logf("of the %d messages answered sent while the broker was away, the slowest took %v from sent to screen",
		n, worst.Round(time.Millisecond))
	if worst > pollBound {
		t.Errorf("a message sent while the broker was away took %v to reach the screen", worst)
	}
	// The nodes retry with backoff (at most 5 s apart).
	eventually(t, 30*time.Second, func() string { return "not every node reconnected to the restarted broker" }, func() bool {
		for _, nd := range c.nodes {
			if !strings.Contains(nd.log(), `"msg":"reconnected to broker"`) {
				return false
			}
		}
		return true
	})
	for _, nd := range c.nodes {
		if nd.exited() {
			t.Errorf("node %s exited", nd.id)
		}
		if g := gauge(t, nd, "tern_broker_connected"); g != 1 {
			t.Errorf("node %s: tern_broker_connected is %v once reconnected", nd.id, g)
		}
	}
	for _, d := range all {
		if s := d.c.Stats(); s.Reconnects != 0 {
			t.Errorf("%s reconnected %d times: the broker's restart must not drop client sockets", d.name, s.Reconnects)
		}
	}
	// And the fast path works again.
	checkFastPath(ctx, t, alice, bob, carol)
}

// slowest returns how many messages were answered sent between from and
// to, and the longest any of them took from its sent answer to its
// addressee's screen (negative when it was on screen first).
func slowest(flows []*flow, from, to time.Time) (n int, worst time.Duration) {
	for _, f := range flows {
		f.mu.Lock()
		for id, at := range f.at {
			if at.Before(from) || at.After(to) {
				continue
			}
			n++
			_, arrived := f.to.scr.message(id)
			worst = max(worst, arrived.Sub(at))
		}
		f.mu.Unlock()
	}
	return n, worst
}

// checkAfterTraffic makes the checks every broker fault test makes once its
// traffic is over: seqs, deliveries, receipts, nothing more, nothing wrong.
func checkAfterTraffic(t *testing.T, flows []*flow, all []*device) {
	t.Helper()
	checkChats(t, flows)
	checkDelivered(t, flows)
	checkReceipts(t, wire.StatusDelivered, flows)
	noMore(t, 500*time.Millisecond, all...)
	checkClean(t, all...)
}

// checkFastPath sends two messages around the triangle a → b → c → a and
// checks that they arrive.
func checkFastPath(ctx context.Context, t *testing.T, a, b, c *device) {
	t.Helper()
	after := []*flow{newFlow(a, b, 2), newFlow(b, c, 2), newFlow(c, a, 2)}
	if err := runFlows(ctx, after, 0, nil); err != nil {
		t.Fatal(err)
	}
	checkDelivered(t, after)
	checkClean(t, a, b, c)
}

// gauge reads an unlabelled gauge from a node's /metrics.
func gauge(t *testing.T, nd *node, name string) float64 {
	t.Helper()
	resp, err := http.Get("http://" + nd.addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", nd.id, err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if v, ok := strings.CutPrefix(line, name+" "); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", line, err)
			}
			return f
		}
	}
	t.Fatalf("node %s exports no %s", nd.id, name)
	return 0
}

// rabbitmqctl runs the broker's admin tool, skipping the test when it is
// not usable here.
func rabbitmqctl(t *testing.T, args ...string) string {
	t.Helper()
	if _, err := exec.LookPath("rabbitmqctl"); err != nil {
		testenv.Unavailable(t, "rabbitmqctl not on PATH; the broker connection-cut test needs it (CI has it)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	out, err := exec.CommandContext(ctx, "rabbitmqctl", args...).CombinedOutput()
	if err != nil {
		testenv.Unavailable(t, "rabbitmqctl %s failed (%v): %s", strings.Join(args, " "), err, out)
	}
	return string(out)
}

// brokerConnections returns the broker's connection pids of the given
// nodes, which routing/rabbitmq names "tern.node.<id>".
func brokerConnections(t *testing.T, nodes ...*node) []string {
	t.Helper()
	out := rabbitmqctl(t, "-q", "list_connections", "--no-table-headers", "pid", "client_properties")
	var pids []string
	sc := bufio.NewScanner(strings.NewReader(out))
	sc.Buffer(nil, 1<<20)
	for sc.Scan() {
		pid, props, ok := strings.Cut(sc.Text(), "\t")
		if !ok {
			continue
		}
		for _, nd := range nodes {
			if strings.Contains(props, `"tern.node.`+nd.id+`"`) {
				pids = append(pids, pid)
			}
		}
	}
	return pids
}

// closeBrokerConnections makes the broker close the given nodes'
// connections, and only theirs, as a broker restart or a network cut
// would, and returns when it started closing them. The closes run at once:
// each rabbitmqctl takes about a second to start.
func closeBrokerConnections(t *testing.T, nodes ...*node) time.Time {
	t.Helper()
	var pids []string
	eventually(t, 30*time.Second, func() string { return "the nodes' broker connections are not all up" }, func() bool {
		pids = brokerConnections(t, nodes...)
		return len(pids) == len(nodes)
	})
	start := time.Now()
	errs := make(chan error, len(pids))
	for _, pid := range pids {
		go func() {
			ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
			defer cancel()
			out, err := exec.CommandContext(ctx, "rabbitmqctl", "close_connection", pid, "cluster test: cut").CombinedOutput()
			if err != nil {
				err = fmt.Errorf("rabbitmqctl close_connection %s: %v: %s", pid, err, out)
			}
			errs <- err
		}()
	}
	for range pids {
		if err := <-errs; err != nil {
			t.Fatal(err)
		}
	}
	return start
}

// balancer is a small layer-4 load balancer on loopback, as in front of a
// real cluster. Each backend has an endpoint of its own (url(i)) whose
// connections go to backend i while it is up, and to the other live
// backends in turn otherwise: affinity with failover, so that a test knows
// where a client starts. A backend is up while its /readyz answers 200
// (checked every 100 ms) and it accepts connections. Bytes are copied both
// ways; when either side closes, both are closed, so a backend that dies
// drops its clients' connections, as it would without the balancer.
type balancer struct {
	backends []*backend
	lns      []net.Listener
	rr       atomic.Uint64
	stop     chan struct{}
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    map[net.Conn]struct{}
	closed   bool
}

type backend struct {
	mu    sync.Mutex
	where string // where the node listens; moves when it restarts
	up    atomic.Bool
	conns atomic.Int64 // connections open through the balancer
}

func newBalancer(t *testing.T, nodes []*node) *balancer {
	t.Helper()
	b := &balancer{stop: make(chan struct{}), conns: map[net.Conn]struct{}{}}
	for _, nd := range nodes {
		be := &backend{where: nd.addr}
		be.up.Store(true)
		b.backends = append(b.backends, be)
		ln, err := net.Listen("tcp", "127.0.0.1:0")
		if err != nil {
			t.Fatal(err)
		}
		b.lns = append(b.lns, ln)
	}
	for i, ln := range b.lns {
		b.wg.Add(1)
		go b.accept(ln, i)
	}
	b.wg.Add(1)
	go b.check()
	t.Cleanup(b.close)
	return b
}

func (be *backend) addr() string {
	be.mu.Lock()
	defer be.mu.Unlock()
	return be.where
}

// moved points backend i at a restarted node's new address.
func (b *balancer) moved(i int, addr string) {
	be := b.backends[i]
	be.mu.Lock()
	be.where = addr
	be.mu.Unlock()
}

func (b *balancer) url(i int) string { return "http://" + b.lns[i].Addr().String() }

// open is the number of connections open through the balancer to backend i.
func (b *balancer) open(i int) int64 { return b.backends[i].conns.Load() }

func (b *balancer) check() {
	defer b.wg.Done()
	hc := &http.Client{Timeout: time.Second}
	tick := time.NewTicker(100 * time.Millisecond)
	defer tick.Stop()
	for {
		for _, be := range b.backends {
			resp, err := hc.Get("http://" + be.addr() + "/readyz")
			ok := err == nil && resp.StatusCode == http.StatusOK
			if err == nil {
				_, _ = io.Copy(io.Discard, resp.Body)
				_ = resp.Body.Close()
			}
			be.up.Store(ok)
		}
		select {
		case <-b.stop:
			hc.CloseIdleConnections()
			return
		case <-tick.C:
		}
	}
}

func (b *balancer) accept(ln net.Listener, prefer int) {
	defer b.wg.Done()
	for {
		c, err := ln.Accept()
		if err != nil {
			return
		}
		if !b.track(c) {
			_ = c.Close()
			return
		}
		b.wg.Add(1)
		go b.proxy(c, prefer)
	}
}

func (b *balancer) track(c net.Conn) bool {
	b.mu.Lock()
	defer b.mu.Unlock()
	if b.closed {
		return false
	}
	b.conns[c] = struct{}{}
	return true
}

func (b *balancer) untrack(c net.Conn) {
	b.mu.Lock()
	delete(b.conns, c)
	b.mu.Unlock()
}

// candidates orders the backends to try: the preferred one if up, then the
// other live ones starting at a rotating index, then the rest.
func (b *balancer) candidates(prefer int) []*backend {
	n := len(b.backends)
	var up, down []*backend
	if b.backends[prefer].up.Load() {
		up = append(up, b.backends[prefer])
	} else {
		down = append(down, b.backends[prefer])
	}
	start := int(b.rr.Add(1))
	for k := range n {
		be := b.backends[(start+k)%n]
		if be == b.backends[prefer] {
			continue
		}
		if be.up.Load() {
			up = append(up, be)
		} else {
			down = append(down, be)
		}
	}
	return append(up, down...)
}

func (b *balancer) proxy(c net.Conn, prefer int) {
	defer b.wg.Done()
	defer b.untrack(c)
	defer c.Close()
	var s net.Conn
	var be *backend
	for _, cand := range b.candidates(prefer) {
		var err error
		if s, err = net.DialTimeout("tcp", cand.addr(), time.Second); err == nil {
			be = cand
			break
		}
		cand.up.Store(false)
	}
	if s == nil {
		return // nothing is up: the client sees the connection closed
	}
	if !b.track(s) {
		_ = s.Close()
		return
	}
	defer b.untrack(s)
	be.conns.Add(1)
	defer be.conns.Add(-1)
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(s, c); done <- struct{}{} }()
	go func() { _, _ = io.Copy(c, s); done <- struct{}{} }()
	<-done
	_ = c.Close()
	_ = s.Close()
	<-done
}

func (b *balancer) close() {
	b.mu.Lock()
	if b.closed {
		b.mu.Unlock()
		return
	}
	b.closed = true
	for c := range b.conns {
		_ = c.Close()
	}
	b.mu.Unlock()
	close(b.stop)
	for _, ln := range b.lns {
		_ = ln.Close()
	}
	b.wg.Wait()
}

// TestClusterPresenceNodeKilled: bob is online on node 2 for alice, who
// follows him from node 1; node 2 is killed (it says nothing), and alice
// sees bob go offline once node 2's lease runs out, with a last seen.
func TestClusterPresenceNodeKilled(t *testing.T) {
	ctx, cancel := context.WithTimeout(context.Background(), clusterTestTimeout)
	defer cancel()
	c := newCluster(t, 2, "--presence-beat", "300ms")
	alice := c.login(ctx, c.nodes[0].url, "+14155550701", "alice", deviceOpts{})
	bob := c.login(ctx, c.nodes[1].url, "+14155550702", "bob", deviceOpts{})
	if err := alice.c.PresenceSub(ctx, []string{bob.user()}); err != nil {
		t.Fatal(err)
	}
	latest := func() wire.ServerFrame {
		alice.scr.mu.Lock()
		defer alice.scr.mu.Unlock()
		return alice.scr.presence[bob.user()]
	}
	// The first answer may come before node 1 has heard of node 2's
	// session; the state settles on online.
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("alice sees bob as %+v, want online", latest()) },
		func() bool { return latest().Online })
	// The store has the time bob connected as his last seen; node 2's
	// last beat must be in a later second (last seen shows seconds) for
	// the check at the end to tell them apart.
	connected := time.Now()
	eventually(t, 30*time.Second, func() string { return "the clock stopped" },
		func() bool { return time.Since(connected) > 2*time.Second })
	if err := c.nodes[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	<-c.nodes[1].done
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("alice sees bob as %+v after his node died", latest()) },
		func() bool { f := latest(); return !f.Online && f.LastSeen != nil })
	seen := *latest().LastSeen
	alice.scr.mu.Lock()
	// The frames before are bob's story until now (an answer may have
	// said offline with the time he connected, before node 1 heard of him).
	told := len(alice.scr.presences)
	alice.scr.mu.Unlock()
	if !strings.HasSuffix(seen, "Z") {
		t.Fatalf("last_seen %q is not RFC 3339 UTC", seen)
	} else if _, err := time.Parse(time.RFC3339, seen); err != nil {
		t.Fatalf("last_seen %q: %v", seen, err)
	}

	// bob's settings change from node 1: its followers' states are
	// evaluated again, from the store. The first change does not bear on
	// what alice sees, so she must hear nothing (the store used to have
	// the time bob connected, an earlier last seen); the second hides his
	// last seen, which she does hear, after anything the first made.
	rest := client.New(c.nodes[0].url, client.Options{HTTPClient: &http.Client{Timeout: 30 * time.Second}})
	rest.SetSession(bob.sess)
	t.Cleanup(func() { _ = rest.Close() })
	same, nobody := store.SameAsLastSeen, store.Nobody
	if _, err := rest.UpdatePrivacy(ctx, wire.PrivacyPatch{Online: &same}); err != nil {
		t.Fatal(err)
	}
	if _, err := rest.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &nobody}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 30*time.Second, func() string { return fmt.Sprintf("alice sees bob as %+v, want his last seen hidden", latest()) },
		func() bool { f := latest(); return !f.Online && f.LastSeen == nil })
	alice.scr.mu.Lock()
	defer alice.scr.mu.Unlock()
	for _, f := range alice.scr.presences[told:] {
		if f.UserID == bob.user() && !f.Online && f.LastSeen != nil && *f.LastSeen != seen {
			t.Errorf("alice was told bob's last seen %s after %s: %+v", *f.LastSeen, seen, alice.scr.presences[told:])
		}
	}
}
