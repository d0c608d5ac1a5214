package servertest

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"regexp"
	"sync"
	"testing"
	"time"

	amqp "github.com/rabbitmq/amqp091-go"
	"github.com/tern-im/tern/auth"

	smshttp "github.com/tern-im/tern/auth/sms/http"
	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/internal/node"
	"github.com/tern-im/tern/internal/testenv"
	pushlog "github.com/tern-im/tern/push/log"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/mongo/mongotest"
	"github.com/tern-im/tern/wire"
)

// SMSSink is an SMS gateway on loopback that remembers the last code sent
// to each phone, as the http SMS provider posts them.
type SMSSink struct {
	*httptest.Server
	mu    sync.Mutex
	codes map[string]string
	texts int
}

var codeRE = regexp.MustCompile(`\b(\d{6})\b`)

// NewSMSSink starts a sink; it is closed with the test.
func NewSMSSink(t testing.TB) *SMSSink {
	s := &SMSSink{codes: make(map[string]string)}
	s.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var m struct{ To, Text string }
		if err := json.NewDecoder(r.Body).Decode(&m); err != nil {
			http.Error(w, "bad json", http.StatusBadRequest)
			return
		}
		code := codeRE.FindString(m.Text)
		s.mu.Lock()
		s.codes[m.To] = code
		s.texts++
		s.mu.Unlock()
		w.WriteHeader(http.StatusAccepted)
	}))
	t.Cleanup(s.Close)
	return s
}

// Code returns the last code sent to phone, waiting up to 5 s for one.
func (s *SMSSink) Code(ctx context.Context, phone string) (string, error) {
	deadline := time.Now().Add(5 * time.Second)
	for {
		s.mu.Lock()
		c, ok := s.codes[phone]
		delete(s.codes, phone)
		s.mu.Unlock()
		if ok {
			return c, nil
		}
		if time.Now().After(deadline) || ctx.Err() != nil {
			return "", fmt.Errorf("servertest: no SMS reached %s", phone)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// Texts counts the SMS received.
func (s *SMSSink) Texts() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.texts
}

// Options tune a node. Zero values take the defaults.
type Options struct {
	Dir    string        // data dir; default t.TempDir()
	Server server.Config // limits
	Auth   auth.Config   // default auth.DefaultConfig() with per-IP limits off
	Log    *slog.Logger  // default: discard (TERN_TEST_LOG=1 logs to stderr)
	// Now is the auth clock (code expiry, token lifetimes); nil: time.Now.
	Now func() time.Time
	// ChatNow is the clock of the chat rules (message times, edit and
	// delete windows, disappearing messages); nil: time.Now.
	ChatNow func() time.Time
	// Router wraps the node's router, e.g. to lose or reorder envelopes
	// in a test; nil: the plain router.
	Router func(routing.Router) routing.Router
	// Engines picks the store and router (node.Config's fields; Server,
	// Auth, SMS, Log and Now are set from the options above, and Push is
	// the log unless set: a test's FCM, say). The
	// zero value is the embedded store under Dir and the in-process
	// router. Several nodes may share a MongoDB database and a RabbitMQ
	// broker: a cluster in one process.
	Engines node.Config
}

// Node is a running in-process Tern node.
type Node struct {
	URL   string // http://127.0.0.1:PORT
	Addr  string
	SMS   *SMSSink
	Store store.Store
	Srv   *server.Server
	Auth  *auth.Service
	stop  func()
}

// Start runs a node until the test ends.
func Start(t testing.TB, o Options) *Node {
	t.Helper()
	if o.Dir == "" {
		o.Dir = t.TempDir()
	}
	if o.Log == nil {
		if os.Getenv("TERN_TEST_LOG") != "" {
			o.Log = slog.New(slog.NewTextHandler(os.Stderr, &slog.HandlerOptions{Level: slog.LevelDebug}))
		} else {
			o.Log = slog.New(slog.DiscardHandler)
		}
	}
	if o.Auth == (auth.Config{}) {
		o.Auth = auth.DefaultConfig()
		o.Auth.CodesPerIPPerHour, o.Auth.VerifiesPerIPPerHour = 0, 0
		o.Auth.ResendAfter = time.Second
	}
	ctx, cancel := context.WithCancel(context.Background())
	sink := NewSMSSink(t)
	nc := o.Engines
	if nc.DataDir == "" {
		nc.DataDir = o.Dir
	}
	nc.WrapRouter = o.Router
	nc.Server, nc.Auth, nc.SMS, nc.SMSName = o.Server, o.Auth, smshttp.New(sink.URL, nil), "http"
	if nc.Push == nil {
		nc.Push, nc.PushName = pushlog.Notifier{Log: o.Log}, "log"
	}
	nc.Log, nc.Now, nc.ChatNow, nc.Version = o.Log, o.Now, o.ChatNow, "test"
	// Listening first: media URLs name the node's address.
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		cancel()
		t.Fatalf("servertest: listen: %v", err)
	}
	if nc.MediaBaseURL == "" {
		nc.MediaBaseURL = "http://" + ln.Addr().String()
	}
	built, err := node.Build(ctx, nc)
	if err != nil {
		ln.Close()
		cancel()
		t.Fatalf("servertest: build the node: %v", err)
	}
	n := &Node{SMS: sink, Store: built.Store, Srv: built.Server, Auth: built.Auth}
	srv := built.Server
	n.Addr = ln.Addr().String()
	n.URL = "http://" + n.Addr
	done := make(chan error, 1)
	go func() { done <- srv.Run(ctx, ln, server.RunOptions{Grace: 5 * time.Second}) }()
	var once sync.Once
	n.stop = func() {
		once.Do(func() {
			cancel()
			if err := <-done; err != nil {
				t.Errorf("servertest: run: %v", err)
			}
			if err := built.Close(); err != nil {
				t.Errorf("servertest: close: %v", err)
			}
		})
	}
	t.Cleanup(n.stop)
	return n
}

// Stop shuts the node down gracefully (sockets get 1001) and closes its store.
func (n *Node) Stop() { n.stop() }

// Client returns an SDK client for the node, closed with the test.
func (n *Node) Client(t testing.TB, o client.Options) *client.Client {
	c := client.New(n.URL, o)
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Login signs phone in as a new device through the real code flow and
// returns a connected client.
func (n *Node) Login(t testing.TB, phone, device string) *client.Client {
	t.Helper()
	c := n.LoginOnly(t, phone, device)
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.Connect(ctx); err != nil {
		t.Fatalf("servertest: connect %s/%s: %v", phone, device, err)
	}
	return c
}

// LoginOnly signs in without connecting the socket.
func (n *Node) LoginOnly(t testing.TB, phone, device string) *client.Client {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	c := n.Client(t, client.Options{})
	_, err := c.Login(ctx, phone, device, "other", func(ctx context.Context, phone string) (string, error) {
		return n.SMS.Code(ctx, phone)
	})
	if err != nil {
		t.Fatalf("servertest: login %s: %v", phone, err)
	}
	return c
}

// Next returns the next frame of type typ from c, skipping others, or fails
// the test after timeout.
func Next(t testing.TB, c *client.Client, typ string, timeout time.Duration) wire.ServerFrame {
	t.Helper()
	f, err := NextFrame(c, typ, timeout)
	if err != nil {
		t.Fatal(err)
	}
	return f
}

// NextFrame is Next without a testing.TB, for helper goroutines.
func NextFrame(c *client.Client, typ string, timeout time.Duration) (wire.ServerFrame, error) {
	tm := time.NewTimer(timeout)
	defer tm.Stop()
	for {
		select {
		case f, ok := <-c.Events():
			if !ok {
				return f, errors.New("servertest: event stream closed")
			}
			if f.Type == typ {
				return f, nil
			}
		case <-tm.C:
			return wire.ServerFrame{}, fmt.Errorf("servertest: no %s frame within %v", typ, timeout)
		}
	}
}

// Drain returns every frame c receives within d.
func Drain(c *client.Client, d time.Duration) []wire.ServerFrame {
	var out []wire.ServerFrame
	tm := time.NewTimer(d)
	defer tm.Stop()
	for {
		select {
		case f, ok := <-c.Events():
			if !ok {
				return out
			}
			out = append(out, f)
		case <-tm.C:
			return out
		}
	}
}

// None fails the test if c receives a frame of type typ within d. Frames
// of other types are consumed too.
func None(t testing.TB, c *client.Client, typ string, d time.Duration) {
	t.Helper()
	for _, f := range Drain(c, d) {
		if f.Type == typ {
			t.Fatalf("servertest: unexpected %s frame: %+v", typ, f)
		}
	}
}

// BrokerURL returns the RabbitMQ URL tests share (TERN_TEST_AMQP_URL, or
// the local default), skipping the test loudly when no broker answers.
func BrokerURL(t testing.TB) string {
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

// StartCluster runs n nodes in this process that share one fresh MongoDB
// database (FerretDB started by the tests, or TERN_TEST_MONGO_URI) and the
// RabbitMQ broker of BrokerURL: the production engines, with the inbox
// check on as `tern serve` sets it for a broker.
func StartCluster(t testing.TB, n int, o Options) []*Node {
	t.Helper()
	uri, db := mongotest.NewDatabase(t)
	amqpURL := BrokerURL(t)
	nodes := make([]*Node, n)
	// One media directory, as a volume the nodes share would be: a file
	// uploaded through one node is served by any.
	mediaDir := t.TempDir()
	for i := range nodes {
		oi := o
		oi.Dir = ""
		// The push engines the options name stay; the store, router and
		// media are the cluster's.
		oi.Engines = node.Config{Store: node.StoreMongo, MongoURI: uri, MongoDB: db,
			Router: node.RouterRabbitMQ, AMQPURL: amqpURL, MediaDir: mediaDir,
			Push: o.Engines.Push, WebPushContact: o.Engines.WebPushContact, WebPushClient: o.Engines.WebPushClient,
			Mail: o.Engines.Mail}
		oi.Server.NodeID = fmt.Sprintf("test-%s-%d", randomSuffix(), i+1)
		if oi.Server.InboxCheck == 0 {
			oi.Server.InboxCheck = 2 * time.Second
		}
		nodes[i] = Start(t, oi)
	}
	return nodes
}

// randomSuffix tells the node ids of concurrent test clusters on one broker
// apart.
func randomSuffix() string {
	var b [4]byte
	_, _ = rand.Read(b[:])
	return hex.EncodeToString(b[:])
}
