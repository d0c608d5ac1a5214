package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/auth"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

func startNode(t *testing.T) *servertest.Node {
	t.Helper()
	return servertest.Start(t, servertest.Options{Server: server.Config{SendsPerSecond: 1e5, SendBurst: 1e5}})
}

func run(t *testing.T, n *servertest.Node, cfg Config) (Report, string) {
	t.Helper()
	cfg.Addr = n.URL
	cfg.CodeSource = n.SMS.Code
	cfg.Concurrency = 8
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	var out bytes.Buffer
	rep, err := Run(ctx, cfg, &out)
	if err != nil {
		t.Fatalf("Run: %v\n%s", err, out.String())
	}
	t.Logf("output:\n%s", out.String())
	if _, err := json.Marshal(rep); err != nil {
		t.Fatalf("report does not marshal: %v", err)
	}
	return rep, out.String()
}

func checkOrdered(t *testing.T, name string, s Summary) {
	t.Helper()
	if s.Count == 0 {
		t.Errorf("%s: no samples", name)
		return
	}
	if !(s.MinMs <= s.P50Ms && s.P50Ms <= s.P90Ms && s.P90Ms <= s.P99Ms && s.P99Ms <= s.P999Ms && s.P999Ms <= s.MaxMs) {
		t.Errorf("%s: percentiles out of order: %+v", name, s)
	}
}

func checkTraffic(t *testing.T, rep Report) {
	t.Helper()
	tr := rep.Traffic
	if tr == nil {
		t.Fatal("no traffic report")
	}
	if tr.CompletedInWindow <= 0 || tr.Delivered <= 0 {
		t.Errorf("nothing completed: %+v", tr)
	}
	if tr.Lost != 0 || tr.NotReceived != 0 || tr.Duplicates != 0 || tr.Errors != 0 || tr.Unanswered != 0 {
		t.Errorf("lost %d, not received %d, duplicates %d, errors %d %v, unanswered %d",
			tr.Lost, tr.NotReceived, tr.Duplicates, tr.Errors, tr.ErrorCodes, tr.Unanswered)
	}
	if tr.Durable != tr.Delivered || tr.Durable != tr.Received {
		t.Errorf("durable %d, delivered %d, received %d: want all equal", tr.Durable, tr.Delivered, tr.Received)
	}
	checkOrdered(t, "sent", tr.Sent)
	checkOrdered(t, "received", tr.Recv)
	checkOrdered(t, "delivered", tr.Delivery)
	if rep.Server.RSSBytes <= 0 {
		t.Errorf("server rss %v", rep.Server.RSSBytes)
	}
	if rep.Bench.CPUSeconds <= 0 {
		t.Errorf("bench cpu %v", rep.Bench.CPUSeconds)
	}
}

func TestIdle(t *testing.T) {
	n := startNode(t)
	rep, out := run(t, n, Config{Mode: ModeIdle, Conns: 10, Hold: time.Second, Settle: 100 * time.Millisecond})
	ir := rep.Idle
	if ir == nil {
		t.Fatal("no idle report")
	}
	if ir.Connected != 10 || ir.ServerConns < 10 || rep.Connect.Failed != 0 {
		t.Errorf("connected %d, server connections %v, failed %d", ir.Connected, ir.ServerConns, rep.Connect.Failed)
	}
	if ir.Before.RSSBytes <= 0 || ir.After.RSSBytes <= 0 || rep.Server.RSSBytes <= 0 {
		t.Errorf("rss before %v after %v", ir.Before.RSSBytes, ir.After.RSSBytes)
	}
	if ir.After.Goroutines <= 0 || ir.After.HeapInuseBytes <= 0 {
		t.Errorf("after %+v", ir.After)
	}
	if rep.Provision.SignedUp != 10 {
		t.Errorf("signed up %d", rep.Provision.SignedUp)
	}
	for _, want := range []string{"mode=idle", "GOMAXPROCS=", "rss per connection", "connections held"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestClosed(t *testing.T) {
	n := startNode(t)
	rep, out := run(t, n, Config{Mode: ModeClosed, Pairs: 5, Inflight: 2, Duration: 2 * time.Second,
		Warmup: 200 * time.Millisecond, Size: 100})
	checkTraffic(t, rep)
	for _, want := range []string{"mode=closed", "pairs=5", "inflight=2", "duration=2s", "GOMAXPROCS=", "send→delivered", "p99.9"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestRate(t *testing.T) {
	n := startNode(t)
	rep, _ := run(t, n, Config{Mode: ModeRate, Pairs: 5, Rate: 50, Duration: 2 * time.Second,
		Warmup: 200 * time.Millisecond})
	checkTraffic(t, rep)
	tr := rep.Traffic
	// 50/s for 2 s: the schedule puts exactly 100 sends in the window.
	if tr.SentInWindow != 100 {
		t.Errorf("sent in window %d, want 100 (the schedule)", tr.SentInWindow)
	}
	if tr.Lag == nil {
		t.Fatal("no schedule lag in rate mode")
	}
	checkOrdered(t, "lag", *tr.Lag)
}

func TestZeroWarmup(t *testing.T) {
	n := startNode(t)
	rep, _ := run(t, n, Config{Mode: ModeClosed, Pairs: 1, Duration: 500 * time.Millisecond, WarmupSet: true})
	if rep.Traffic.WarmupSeconds != 0 {
		t.Errorf("warmup %v, want 0", rep.Traffic.WarmupSeconds)
	}
	checkTraffic(t, rep)
}

// TestSessionsReuse runs twice with one sessions file: the second run
// refreshes the saved devices instead of signing up, and adds what it lacks.
func TestSessionsReuse(t *testing.T) {
	n := startNode(t)
	path := filepath.Join(t.TempDir(), "sessions.json")
	cfg := Config{Mode: ModeClosed, Pairs: 2, Duration: 300 * time.Millisecond, WarmupSet: true, SessionsFile: path}
	rep1, _ := run(t, n, cfg)
	if rep1.Provision.SignedUp != 4 || rep1.Provision.Refreshed != 0 {
		t.Errorf("first run: %+v", rep1.Provision)
	}
	st, err := os.Stat(path)
	if err != nil {
		t.Fatal(err)
	}
	if st.Mode().Perm() != 0o600 {
		t.Errorf("sessions file mode %v, want 0600", st.Mode().Perm())
	}
	cfg.Pairs = 3
	rep2, _ := run(t, n, cfg)
	if rep2.Provision.SignedUp != 2 || rep2.Provision.Refreshed != 4 {
		t.Errorf("second run: %+v", rep2.Provision)
	}
	if rep2.RunID != rep1.RunID {
		t.Errorf("run id %q then %q", rep1.RunID, rep2.RunID)
	}
	checkTraffic(t, rep2)
	f, err := loadSessions(path)
	if err != nil || len(f.Devices) != 6 {
		t.Fatalf("saved %v devices, err %v", f, err)
	}
}

// TestBuiltInSink signs up through the bench's own SMS sink, as the CLI
// does: the node posts codes to it instead of the servertest sink.
func TestBuiltInSink(t *testing.T) {
	sink, err := startSMSSink("127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer sink.close()
	url := "http://" + sink.ln.Addr().String() + "/"
	body := `{"to":"+14155550100","text":"Your Tern code is 042917. It expires in 5 minutes."}`
	var wg sync.WaitGroup
	var got string
	var gerr error
	wg.Go(func() { got, gerr = sink.codeFor(context.Background(), "+14155550100") })
	time.Sleep(20 * time.Millisecond)
	resp, err := http.Post(url, "application/json", strings.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	wg.Wait()
	if gerr != nil || got != "042917" {
		t.Fatalf("code %q, %v", got, gerr)
	}
	// Arrived before anyone waited.
	resp, err = http.Post(url, "application/json", strings.NewReader(strings.Replace(body, "042917", "123456", 1)))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if c, err := sink.codeFor(context.Background(), "+14155550100"); err != nil || c != "123456" {
		t.Fatalf("code %q, %v", c, err)
	}
}

func TestPhonesValidAndDistinct(t *testing.T) {
	seen := map[string]bool{}
	for _, id := range []string{"a", "b", "20260101-000000-abcdef"} {
		ps := newPhoneSeries(id)
		for i := range 2000 {
			p := ps.phone(i)
			if seen[p] {
				t.Fatalf("phone %s twice", p)
			}
			seen[p] = true
			if i%97 == 0 {
				if norm, err := auth.NormalizePhone(p); err != nil || norm != p {
					t.Fatalf("phone %s: %q %v", p, norm, err)
				}
			}
		}
	}
	if a, b := newPhoneSeries("x"), newPhoneSeries("x"); a.phone(5) != b.phone(5) {
		t.Fatal("series not deterministic")
	}
	// Every area code yields valid numbers at both ends of the line range.
	for a := range numAreas {
		for _, line := range []int{0, linesPerArea - 1} {
			p := fmt.Sprintf("+1%s555%04d", areaCodes[3*a:3*a+3], line)
			if _, err := auth.NormalizePhone(p); err != nil {
				t.Errorf("%s: %v", p, err)
			}
		}
	}
}

func TestRecorder(t *testing.T) {
	r := NewRecorder()
	if r.Summary() != (Summary{}) {
		t.Fatal("empty recorder has a summary")
	}
	// Buckets are contiguous and their ranges round-trip.
	prevHi := uint64(0)
	for i := 1; i < numBuckets; i++ {
		lo, hi := bucketRange(i)
		if lo != prevHi+1 || hi < lo {
			t.Fatalf("bucket %d: [%d, %d] after %d", i, lo, hi, prevHi)
		}
		if bucketOf(lo) != i || bucketOf(hi) != i {
			t.Fatalf("bucket %d: [%d, %d] maps to %d, %d", i, lo, hi, bucketOf(lo), bucketOf(hi))
		}
		prevHi = hi
		if hi == ^uint64(0) {
			break
		}
	}
	// Against exact quantiles of a million random values, concurrently.
	const n = 1_000_000
	vals := make([]time.Duration, n)
	rng := rand.New(rand.NewPCG(1, 2))
	for i := range vals {
		vals[i] = time.Duration(rng.ExpFloat64() * float64(2*time.Millisecond))
	}
	var wg sync.WaitGroup
	for g := range 4 {
		wg.Go(func() {
			for i := g; i < n; i += 4 {
				r.Record(vals[i])
			}
		})
	}
	wg.Wait()
	sorted := append([]time.Duration(nil), vals...)
	slices.Sort(sorted)
	for _, q := range []float64{0.5, 0.9, 0.99, 0.999, 1} {
		exact := sorted[int(q*n+0.5)-1]
		got := r.Quantile(q)
		if d := float64(got-exact) / float64(exact); d < -0.01 || d > 0.01 {
			t.Errorf("q%v: got %v, exact %v", q, got, exact)
		}
	}
	s := r.Summary()
	if s.Count != n || s.MaxMs != float64(sorted[n-1])/1e6 || s.MinMs != float64(sorted[0])/1e6 {
		t.Errorf("summary %+v", s)
	}
}

func TestParseMetrics(t *testing.T) {
	in := `# HELP go_goroutines Number of goroutines.
# TYPE go_goroutines gauge
go_goroutines 42
process_resident_memory_bytes 1.2345e+07
tern_frames_in_total{type="send"} 17
tern_store_seconds_bucket{op="inbox",le="+Inf"} 3 1700000000000
`
	m, err := parseMetrics(strings.NewReader(in))
	if err != nil {
		t.Fatal(err)
	}
	if m["go_goroutines"] != 42 || m["process_resident_memory_bytes"] != 12345000 ||
		m[`tern_frames_in_total{type="send"}`] != 17 || m[`tern_store_seconds_bucket{op="inbox",le="+Inf"}`] != 3 {
		t.Errorf("parsed %v", m)
	}
}

func TestConfigDefaults(t *testing.T) {
	c, err := Config{Mode: ModeRate}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Addr != "http://"+DefaultAddr || c.Pairs != DefaultPairs || c.Rate != DefaultRate ||
		c.Warmup != DefaultWarmup || c.Duration != DefaultDuration || c.Inflight != DefaultRateInflight {
		t.Errorf("defaults %+v", c)
	}
	for _, bad := range []Config{{Mode: "nope"}, {Mode: ModeIdle, Conns: MaxConns + 1}, {Mode: ModeClosed, Pairs: MaxConns}} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// TestGroup runs group mode end to end: 6 members with 2 devices each, 3
// of them connected (6 sockets), 2 senders. Every message answered sent
// must reach the 5 connected devices besides the sending one.
func TestGroup(t *testing.T) {
	n := startNode(t)
	rep, out := run(t, n, Config{Mode: ModeGroup, GroupMembers: 6, GroupDevices: 2, GroupConnected: 3,
		GroupSenders: 2, Rate: 20, Duration: 2 * time.Second, Warmup: 200 * time.Millisecond})
	g := rep.Group
	if g == nil {
		t.Fatal("no group report")
	}
	if rep.Provision.Devices != 12 || rep.Connect.Sockets != 6 || g.ConnectedDevices != 6 || g.OfflineDevices != 6 {
		t.Errorf("provisioned %d, connected %d sockets, report %d connected, %d offline",
			rep.Provision.Devices, rep.Connect.Sockets, g.ConnectedDevices, g.OfflineDevices)
	}
	if g.Durable <= 0 || g.SentInWindow <= 0 {
		t.Fatalf("nothing sent: %+v", g)
	}
	if g.Lost != 0 || g.Incomplete != 0 || g.Errors != 0 || g.Unanswered != 0 || g.Duplicates != 0 || g.Echoes != 0 {
		t.Errorf("lost %d (%d messages), errors %d %v, unanswered %d, duplicates %d, echoes %d",
			g.Lost, g.Incomplete, g.Errors, g.ErrorCodes, g.Unanswered, g.Duplicates, g.Echoes)
	}
	if g.ExpectedPerMessage != 5 || g.Deliveries != g.Durable*5 || g.ExpectedDeliveries != g.Deliveries {
		t.Errorf("deliveries %d, expected %d (%d per message), durable %d: want durable × 5",
			g.Deliveries, g.ExpectedDeliveries, g.ExpectedPerMessage, g.Durable)
	}
	if g.Complete != g.Durable || g.Issued != g.Durable {
		t.Errorf("issued %d, durable %d, complete %d", g.Issued, g.Durable, g.Complete)
	}
	// 20/s for 2.2 s: the schedule has 44 sends, 40 of them due in the window.
	if g.Lag.Count != 40 || g.Issued != 44 || g.Scheduled != 44 {
		t.Errorf("issued %d of %d scheduled, %d due in the window; want 44, 44, 40 (the schedule)", g.Issued, g.Scheduled, g.Lag.Count)
	}
	checkOrdered(t, "sent", g.Sent)
	checkOrdered(t, "last device", g.Last)
	checkOrdered(t, "each device", g.Each)
	if g.Last.Count != g.Sent.Count {
		t.Errorf("%d messages reached every device, %d answered sent (in the window)", g.Last.Count, g.Sent.Count)
	}
	if rep.Bench.CPUSeconds <= 0 || rep.Server.RSSBytes <= 0 {
		t.Errorf("bench cpu %v, server rss %v", rep.Bench.CPUSeconds, rep.Server.RSSBytes)
	}
	if g.Server == nil || g.Server.SendMs <= 0 {
		t.Errorf("no server cost per message: %+v", g.Server)
	}
	for _, want := range []string{"mode=group", "members=6", "due→last device", "deliveries", "lost", "cpu per delivery"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

// TestGroupSessionsLayout: a sessions file of group mode holds several
// devices per phone, and a mode with one device per phone refuses it.
func TestGroupSessionsLayout(t *testing.T) {
	n := startNode(t)
	path := filepath.Join(t.TempDir(), "sessions.json")
	cfg := Config{Mode: ModeGroup, GroupMembers: 3, GroupDevices: 2, GroupConnected: 2, GroupSenders: 1,
		Rate: 10, Duration: 300 * time.Millisecond, WarmupSet: true, SessionsFile: path}
	rep, _ := run(t, n, cfg)
	if rep.Group.Lost != 0 || rep.Group.Deliveries != rep.Group.Durable*3 {
		t.Errorf("lost %d, deliveries %d, durable %d", rep.Group.Lost, rep.Group.Deliveries, rep.Group.Durable)
	}
	rep, _ = run(t, n, cfg)
	if rep.Provision.Refreshed != 6 || rep.Provision.SignedUp != 0 || rep.Group.Lost != 0 {
		t.Errorf("second run: %+v, lost %d", rep.Provision, rep.Group.Lost)
	}
	cfg = Config{Addr: n.URL, CodeSource: n.SMS.Code, Mode: ModeClosed, Pairs: 1, Duration: 100 * time.Millisecond, SessionsFile: path}
	if _, err := Run(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "devices per phone") {
		t.Errorf("closed mode on a group sessions file: %v", err)
	}
}

// TestPresence runs presence mode end to end: 40 devices following 10
// others each, 10 changes a second for 2 s (a cooldown of 0.4 s, so that
// devices come back too). Every frame a follower was owed must come, or be
// cut off by that follower's own going offline.
func TestPresence(t *testing.T) {
	n := startNode(t)
	rep, out := run(t, n, Config{Mode: ModePresence, Conns: 40, Follows: 10, Churn: 0.25,
		Duration: 2 * time.Second, Drain: 5 * time.Second})
	p := rep.Presence
	if p == nil {
		t.Fatal("no presence report")
	}
	// A change told as a subscription registers comes before its answers.
	if rep.Provision.Devices != 40 || rep.Connect.Sockets != 40 || p.FollowEdges != 400 || p.InitialFrames < 400 {
		t.Errorf("provisioned %d, connected %d, %d follow edges, %d initial frames; want 40, 40, 400, ≥ 400",
			rep.Provision.Devices, rep.Connect.Sockets, p.FollowEdges, p.InitialFrames)
	}
	// 0.25 × 40 devices a second for 2 s: 20 changes.
	if p.Scheduled != 20 || p.Changes != 20 || p.Skipped != 0 || p.ToOnline+p.ToOffline != 20 || p.ToOffline == 0 || p.ToOnline == 0 {
		t.Errorf("%d changes of %d scheduled (%d offline, %d online), %d skipped; want all 20, of both kinds",
			p.Changes, p.Scheduled, p.ToOffline, p.ToOnline, p.Skipped)
	}
	if p.Expected <= 0 || p.Received <= 0 || p.ReceivedInWindow <= 0 || p.EventRate <= 0 {
		t.Fatalf("expected %d, received %d (%d in the window)", p.Expected, p.Received, p.ReceivedInWindow)
	}
	if p.Missing != 0 || p.Received+p.LeftBefore != p.Expected {
		t.Errorf("received %d + cut off %d of %d expected, missing %d", p.Received, p.LeftBefore, p.Expected, p.Missing)
	}
	if p.Errors != 0 || p.ConnectFailed != 0 || p.Unmatched != 0 || p.Foreign != 0 || p.Reconnects != 0 {
		t.Errorf("errors %d %v, failed reconnects %d, unmatched %d, foreign %d, sdk reconnects %d",
			p.Errors, p.ErrorCodes, p.ConnectFailed, p.Unmatched, p.Foreign, p.Reconnects)
	}
	if p.OnlineEnd != 40-int(p.ToOffline)+int(p.ToOnline) {
		t.Errorf("online at end %d after %d offline, %d online", p.OnlineEnd, p.ToOffline, p.ToOnline)
	}
	if p.Latency.Count != uint64(p.Received) {
		t.Errorf("%d latencies for %d events", p.Latency.Count, p.Received)
	}
	checkOrdered(t, "change→follower", p.Latency)
	checkOrdered(t, "offline→follower", p.OfflineLatency)
	checkOrdered(t, "close", p.Close)
	checkOrdered(t, "reconnect", p.Connect)
	if p.Resubscribes != p.ToOnline || p.ResubscribeFrames < 10*p.Resubscribes {
		t.Errorf("%d resubscribes answered with %d frames after %d reconnects", p.Resubscribes, p.ResubscribeFrames, p.ToOnline)
	}
	if rep.Bench.CPUSeconds <= 0 || rep.Server.RSSBytes <= 0 || p.ServerCPUSeconds <= 0 || rep.ServerCPUMicrosPerChange <= 0 {
		t.Errorf("bench cpu %v, server rss %v, server cpu %v s, %v µs per change",
			rep.Bench.CPUSeconds, rep.Server.RSSBytes, p.ServerCPUSeconds, rep.ServerCPUMicrosPerChange)
	}
	for _, want := range []string{"mode=presence", "conns=40", "follows=10", "churn=0.25/s", "change→follower",
		"offline→follower", "events", "delivered rate", "missing", "cpu per change", "cpu per presence event", "p99.9"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
}

func TestPresenceConfig(t *testing.T) {
	c, err := Config{Mode: ModePresence}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Conns != DefaultConns || c.Follows != DefaultFollows || c.Churn != DefaultChurn || c.Duration != DefaultPresenceDuration {
		t.Errorf("defaults %+v", c)
	}
	for _, bad := range []Config{
		{Mode: ModePresence, Follows: 257},
		{Mode: ModePresence, Conns: 10, Follows: 10},
		{Mode: ModePresence, Churn: 1.5},
		{Mode: ModePresence, Conns: MaxConns + 1},
		{Mode: ModePresence, Conns: 10, Follows: 2, Churn: 0.01, Duration: time.Second},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}

// startBusinessNode starts a node whose webhooks may go to loopback, and
// which looks at its webhook queues every 50 ms (a node's default is 1 s),
// with a stand-in for tern serve's admin listener: the three calls
// business mode makes there, by the same server methods, behind token.
func startBusinessNode(t *testing.T, token string) (*servertest.Node, string) {
	t.Helper()
	n := servertest.Start(t, servertest.Options{Server: server.Config{SendsPerSecond: 1e5, SendBurst: 1e5,
		WebhookAllowPrivate: true, WebhookPoll: 50 * time.Millisecond}})
	answer := func(w http.ResponseWriter, v any, err error, status int) {
		var we *wire.Error
		switch {
		case errors.As(err, &we):
			http.Error(w, we.Message, wire.HTTPStatus(we.Code))
		case err != nil:
			http.Error(w, err.Error(), http.StatusInternalServerError)
		default:
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(status)
			_ = json.NewEncoder(w).Encode(v)
		}
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /admin/v1/businesses", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Phone, Name, WebhookURL, VerifyToken string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		b, err := n.Srv.CreateBusiness(r.Context(), server.NewBusiness{Phone: req.Phone, Name: req.Name})
		answer(w, b, err, http.StatusCreated)
	})
	mux.HandleFunc("POST /admin/v1/admins", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		a, err := n.Srv.CreateAdmin(r.Context(), req.Username, req.Password)
		answer(w, map[string]string{"admin_id": a.ID}, err, http.StatusCreated)
	})
	mux.HandleFunc("POST /admin/v1/admins/reset", func(w http.ResponseWriter, r *http.Request) {
		var req struct{ Username, Password string }
		_ = json.NewDecoder(r.Body).Decode(&req)
		a, err := n.Srv.ResetAdmin(r.Context(), req.Username, req.Password)
		answer(w, map[string]string{"admin_id": a.ID}, err, http.StatusOK)
	})
	ops := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Header.Get("Authorization") != "Bearer "+token {
			http.Error(w, "admin token required", http.StatusUnauthorized)
			return
		}
		mux.ServeHTTP(w, r)
	}))
	t.Cleanup(ops.Close)
	return n, ops.URL
}

// TestBusiness runs business mode end to end: 2 businesses made through
// the admin listener, 6 customers. Every customer message answered sent
// must be posted to the receiver once, signed, and earn its ✓✓; every
// send answered 200 must reach its customer once, and both its statuses
// the receiver. A second run reuses the businesses of the business file.
func TestBusiness(t *testing.T) {
	n, ops := startBusinessNode(t, "opstoken")
	file := filepath.Join(t.TempDir(), "businesses.json")
	cfg := Config{Mode: ModeBusiness, Conns: 6, Businesses: 2, Inflight: 3, Rate: 20, SendRate: 40,
		Duration: 2 * time.Second, Warmup: 200 * time.Millisecond, Drain: 10 * time.Second,
		AdminAddr: ops, AdminToken: "opstoken", BusinessFile: file}
	rep, out := run(t, n, cfg)
	br := rep.Business
	if br == nil || br.Webhooks == nil || br.Sends == nil {
		t.Fatalf("no business report: %+v", br)
	}
	if br.Made != 2 || br.Customers != 6 || br.RateLimit != DefaultBusinessRateLimit || rep.Connect.Sockets != 6 {
		t.Errorf("made %d businesses, %d customers, %d sockets, rate limit %d", br.Made, br.Customers, rep.Connect.Sockets, br.RateLimit)
	}
	rc := br.Receiver
	if rc.Verifications != 2 || rc.BadSignatures != 0 || rc.BadBodies != 0 || rc.WrongBusiness != 0 || rc.VerifyRefused != 0 {
		t.Errorf("receiver %+v", rc)
	}
	wr := br.Webhooks
	// 20/s for 2.2 s: 44 customer messages.
	if wr.Scheduled != 44 || wr.Issued != 44 || wr.Durable != 44 {
		t.Errorf("scheduled %d, issued %d, durable %d; want 44", wr.Scheduled, wr.Issued, wr.Durable)
	}
	if wr.Posted != wr.Durable || wr.Lost != 0 || wr.Duplicates != 0 || wr.Ticked != wr.Durable || wr.Unticked != 0 ||
		wr.Errors != 0 || wr.Unanswered != 0 || wr.PostedInWindow <= 0 {
		t.Errorf("webhooks %+v", wr)
	}
	checkOrdered(t, "due→sent", wr.Sent)
	checkOrdered(t, "due→webhook", wr.Webhook)
	checkOrdered(t, "due→✓✓", wr.Tick)
	sr := br.Sends
	// 40/s for 2.2 s: 88 sends.
	if sr.Scheduled != 88 || sr.Issued != 88 || sr.Accepted != 88 || sr.Errors != 0 || sr.Unanswered != 0 {
		t.Errorf("issued %d, accepted %d, errors %d %v, unanswered %d; want 88 accepted", sr.Issued, sr.Accepted, sr.Errors, sr.ErrorCodes, sr.Unanswered)
	}
	if sr.Received != sr.Accepted || sr.Lost != 0 || sr.Unexpected != 0 || sr.Duplicates != 0 || sr.AcceptedInWindow <= 0 {
		t.Errorf("sends %+v", sr)
	}
	if sr.StatusesOwed != 2*sr.Accepted || sr.StatusesSent != sr.Accepted || sr.StatusesDelivered != sr.Accepted ||
		sr.StatusDuplicates != 0 || sr.StatusesForeign != 0 || sr.StatusesFailed != 0 || sr.StatusesOther != 0 {
		t.Errorf("statuses %+v", sr)
	}
	checkOrdered(t, "due→200", sr.Send)
	checkOrdered(t, "due→customer", sr.Receive)
	checkOrdered(t, "due→sent status", sr.SentSt)
	checkOrdered(t, "due→delivered status", sr.Delivered)
	checkOrdered(t, "lag", sr.Lag)
	if p := br.Phases[PhaseSends]; p.ServerCPUSeconds <= 0 || p.BenchCPUSeconds <= 0 || br.Phases[PhaseWebhooks].ServerWebhooksOK <= 0 {
		t.Errorf("phases %+v", br.Phases)
	}
	if rep.ServerCPUSeconds <= 0 || rep.Bench.CPUSeconds <= 0 || rep.Server.RSSBytes <= 0 {
		t.Errorf("server cpu %v s, bench cpu %v s, server rss %v", rep.ServerCPUSeconds, rep.Bench.CPUSeconds, rep.Server.RSSBytes)
	}
	for _, want := range []string{"mode=business", "businesses=2", "webhooks phase", "sends phase", "due→webhook POST",
		"due→customer", "bad signatures 0", "statuses"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q", want)
		}
	}
	st, err := os.Stat(file)
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Fatalf("business file: %v, %v", st, err)
	}

	// Again, the webhooks alone, with the businesses of the file and no
	// admin token: they keep their settings, and their queues were
	// drained, so nothing from the first run comes.
	cfg.AdminToken, cfg.Phases = "", PhaseWebhooks
	rep, _ = run(t, n, cfg)
	br = rep.Business
	if br.Made != 0 || br.RateLimit != 0 || br.Sends != nil || br.Webhooks == nil || br.Backlog != 0 {
		t.Fatalf("second run: made %d, rate limit %d, sends %v, backlog %d", br.Made, br.RateLimit, br.Sends, br.Backlog)
	}
	if wr := br.Webhooks; wr.Posted != wr.Durable || wr.Durable != 44 || wr.Lost != 0 || wr.Ticked != 44 || br.Receiver.BadSignatures != 0 {
		t.Errorf("second run: %+v", wr)
	}
}

// TestBusinessNeedsAdminToken: without the admin token and a business
// file that holds enough businesses, the run stops before any sign-up.
func TestBusinessNeedsAdminToken(t *testing.T) {
	cfg := Config{Addr: "127.0.0.1:1", Mode: ModeBusiness, Conns: 2, CodeSource: func(context.Context, string) (string, error) {
		t.Error("a customer signed up")
		return "", errors.New("no")
	}}
	if _, err := Run(context.Background(), cfg, nil); err == nil || !strings.Contains(err.Error(), "admin token") {
		t.Errorf("no token: %v", err)
	}
}

func TestBusinessConfig(t *testing.T) {
	c, err := Config{Mode: ModeBusiness}.withDefaults()
	if err != nil {
		t.Fatal(err)
	}
	if c.Conns != DefaultBusinessConns || c.Businesses != 1 || c.Inflight != DefaultBusinessInflight || c.Rate != DefaultBusinessRate ||
		c.Duration != DefaultBusinessDuration || c.RateLimit != DefaultBusinessRateLimit || c.Phases != "webhooks,sends" ||
		c.AdminAddr != "http://"+DefaultAdminAddr || !c.hasPhase(PhaseSends) || !c.hasPhase(PhaseWebhooks) {
		t.Errorf("defaults %+v", c)
	}
	c, err = Config{Mode: ModeBusiness, Phases: "sends, webhooks", Nodes: []string{"127.0.0.1:8082", " "}}.withDefaults()
	if err != nil || c.Phases != "webhooks,sends" || len(c.Nodes) != 1 || c.Nodes[0] != "http://127.0.0.1:8082" {
		t.Errorf("phases %q, nodes %q, %v", c.Phases, c.Nodes, err)
	}
	for _, bad := range []Config{
		{Mode: ModeBusiness, Phases: "both"},
		{Mode: ModeBusiness, Businesses: MaxBusinesses + 1, Conns: 1000},
		{Mode: ModeBusiness, Businesses: 5, Conns: 4},
		{Mode: ModeBusiness, RateLimit: 1001},
		{Mode: ModeBusiness, SendRate: -1},
		{Mode: ModeClosed, Nodes: []string{"127.0.0.1:8082"}},
	} {
		if _, err := bad.withDefaults(); err == nil {
			t.Errorf("%+v accepted", bad)
		}
	}
}
