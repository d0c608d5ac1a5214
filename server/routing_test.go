package server_test

import (
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// chaosRouter misbehaves like a broker on a bad day: it loses, duplicates
// or reorders every other event envelope of a device (never its last one:
// a lost last envelope is recovered by Resync or reconnect, not by a gap). Sessions must still deliver every event once, in order,
// because the inbox is the truth and routing only a fast path.
type chaosRouter struct {
	routing.Router
	mu   sync.Mutex
	n    map[string]int // envelopes per device
	mode string
	held map[string]routing.Envelope // reorder: a device's envelope held back
}

func (r *chaosRouter) Publish(ctx context.Context, device string, env routing.Envelope) error {
	if env.Kind != routing.KindEvent {
		return r.Router.Publish(ctx, device, env)
	}
	r.mu.Lock()
	if r.n == nil {
		r.n = make(map[string]int)
	}
	r.n[device]++
	n, mode := r.n[device], r.mode
	r.mu.Unlock()
	switch {
	case mode == "lose all":
		return nil // a publisher that died before it published
	case mode == "lose" && n%2 == 1:
		return nil // swallowed: the holder never hears of it
	case mode == "duplicate":
		_ = r.Router.Publish(ctx, device, env)
		return r.Router.Publish(ctx, device, env)
	case mode == "reorder" && n%2 == 1:
		// Held until the device's next envelope has gone: swapped, never
		// lost (a reordering broker, not a lossy one).
		r.mu.Lock()
		if r.held == nil {
			r.held = make(map[string]routing.Envelope)
		}
		r.held[device] = env
		r.mu.Unlock()
		return nil
	case mode == "reorder":
		err := r.Router.Publish(ctx, device, env)
		r.mu.Lock()
		h, ok := r.held[device]
		delete(r.held, device)
		r.mu.Unlock()
		if ok {
			_ = r.Router.Publish(ctx, device, h)
		}
		return err
	}
	return r.Router.Publish(ctx, device, env)
}

func TestSessionsSurviveMisbehavingRouting(t *testing.T) {
	for _, mode := range []string{"lose", "duplicate", "reorder"} {
		t.Run(mode, func(t *testing.T) {
			var chaos *chaosRouter
			var cfg server.Config
			if mode == "reorder" {
				// Every gap closes when the held envelope follows: with a
				// wait this long, an inbox read for one would show.
				cfg.GapWait = time.Hour
			}
			n := servertest.Start(t, servertest.Options{Server: cfg, Router: func(r routing.Router) routing.Router {
				chaos = &chaosRouter{Router: r}
				return chaos
			}})
			ctx := ctxT(t)
			alice := n.Login(t, "+14155550401", "a")
			bob := n.Login(t, "+14155550402", "b")
			chaos.mu.Lock()
			chaos.mode = mode
			chaos.mu.Unlock()
			readsBefore := inboxReads(t, n)
			// An even count: with every odd envelope lost or held, the
			// last one arrives and exposes the gap before it.
			const count = 40
			for i := 0; i < count; i++ {
				if _, err := alice.Send(ctx, bob.Session().UserID, text(fmt.Sprint(i))); err != nil {
					t.Fatal(err)
				}
			}
			var last int64
			for i := 0; i < count; i++ {
				m := servertest.Next(t, bob, wire.TypeMessage, wait)
				if m.Seq != last+1 {
					t.Fatalf("%s: got seq %d after %d", mode, m.Seq, last)
				}
				last = m.Seq
			}
			if extra := servertest.Drain(bob, 300*time.Millisecond); len(extra) > 0 {
				for _, f := range extra {
					if f.Type == wire.TypeMessage {
						t.Fatalf("%s: extra message %+v", mode, f)
					}
				}
			}
			// 20 gaps, each closed by the envelope that was held back:
			// the session keeps the later event until the earlier one
			// comes, instead of reading its inbox for every gap (as it
			// did, 20 reads here). The node's inbox check may still read
			// once or twice.
			if reads := inboxReads(t, n) - readsBefore; mode == "reorder" && reads >= count/4 {
				t.Errorf("reorder: %v inbox reads for %d messages; the gaps should close without them", reads, count)
			}
		})
	}
}

// inboxReads is the node's count of inbox reads so far, from /metrics.
func inboxReads(t *testing.T, n *servertest.Node) float64 {
	t.Helper()
	resp, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	body, err := io.ReadAll(resp.Body)
	if err != nil {
		t.Fatal(err)
	}
	for _, line := range strings.Split(string(body), "\n") {
		if rest, ok := strings.CutPrefix(line, `tern_store_seconds_count{op="inbox"} `); ok {
			v, err := strconv.ParseFloat(strings.TrimSpace(rest), 64)
			if err != nil {
				t.Fatalf("metrics line %q: %v", line, err)
			}
			return v
		}
	}
	return 0 // no read yet
}

// TestInboxCheckFindsLostEvents: every event envelope is lost, as if each
// publishing node died between the store and the broker, and no other
// event follows. The node's periodic inbox check must bring each message to
// the connected recipient by itself; nothing else would (with the check
// off, the recipient waits for its next event or a reconnect).
func TestInboxCheckFindsLostEvents(t *testing.T) {
	var chaos *chaosRouter
	n := servertest.Start(t, servertest.Options{Server: server.Config{InboxCheck: 50 * time.Millisecond},
		Router: func(r routing.Router) routing.Router {
			chaos = &chaosRouter{Router: r}
			return chaos
		}})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550421", "a")
	bob := n.Login(t, "+14155550422", "b")
	chaos.mu.Lock()
	chaos.mode = "lose all"
	chaos.mu.Unlock()
	for i := range 3 {
		if _, err := alice.Send(ctx, bob.Session().UserID, text(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
		if m := servertest.Next(t, bob, wire.TypeMessage, wait); m.Seq != int64(i+1) {
			t.Fatalf("got seq %d, want %d", m.Seq, i+1)
		}
	}
}

// TestWindowBoundsUnackedEvents: a device that does not ack gets exactly
// Window events, and the rest once it acks.
func TestWindowBoundsUnackedEvents(t *testing.T) {
	const window = 5
	n := servertest.Start(t, servertest.Options{Server: server.Config{Window: window}})
	ctx := ctxT(t)
	alice := n.Login(t, "+14155550411", "a")
	bobSession := n.LoginOnly(t, "+14155550412", "b").Session()
	bob := n.Client(t, client.Options{ManualAck: true})
	bob.SetSession(bobSession)
	const count = 12
	for i := 0; i < count; i++ {
		if _, err := alice.Send(ctx, bobSession.UserID, text(fmt.Sprint(i))); err != nil {
			t.Fatal(err)
		}
	}
	if err := bob.Connect(ctx); err != nil {
		t.Fatal(err)
	}
	var got []wire.ServerFrame
	for _, f := range servertest.Drain(bob, 500*time.Millisecond) {
		if f.Type == wire.TypeMessage {
			got = append(got, f)
		}
	}
	if len(got) != window {
		t.Fatalf("without acks got %d messages, want the window of %d", len(got), window)
	}
	for total := window; total < count; {
		if err := bob.Ack(got[len(got)-1].Cursor); err != nil {
			t.Fatal(err)
		}
		f := servertest.Next(t, bob, wire.TypeMessage, wait)
		if f.Seq != got[len(got)-1].Seq+1 {
			t.Fatalf("after ack got seq %d, want %d", f.Seq, got[len(got)-1].Seq+1)
		}
		got = append(got, f)
		total++
	}
}

// chaosBroadcaster is a chaosRouter that still broadcasts (the routers
// Tern ships are Broadcasters), so that pokes take the broadcast path.
type chaosBroadcaster struct {
	*chaosRouter
	b routing.Broadcaster
}

func (r chaosBroadcaster) Broadcast(ctx context.Context, env routing.Envelope) error {
	return r.b.Broadcast(ctx, env)
}

func (r chaosBroadcaster) OnBroadcast(fn func(routing.Envelope)) { r.b.OnBroadcast(fn) }

// TestDuplicateGroupSendPokes: every event envelope is lost (a sender's
// node that died between storing and publishing), and no other event
// follows. The resend of the message, answered as a duplicate, must make
// every member's session read its inbox: with a broadcast when the router
// can, a poke per device otherwise.
func TestDuplicateGroupSendPokes(t *testing.T) {
	for _, broadcast := range []bool{true, false} {
		t.Run(map[bool]string{true: "broadcast", false: "per device"}[broadcast], func(t *testing.T) {
			var chaos *chaosRouter
			n := servertest.Start(t, servertest.Options{Router: func(r routing.Router) routing.Router {
				chaos = &chaosRouter{Router: r}
				if b, ok := r.(routing.Broadcaster); ok && broadcast {
					return chaosBroadcaster{chaos, b}
				}
				return chaos
			}})
			ctx := ctxT(t)
			alice := n.Login(t, "+14155550411", "a")
			bob := n.Login(t, "+14155550412", "b")
			carol := n.Login(t, "+14155550413", "c")
			g, err := alice.CreateGroup(ctx, "g", "", []string{bob.Session().UserID, carol.Session().UserID})
			if err != nil {
				t.Fatal(err)
			}
			for _, c := range []*client.Client{bob, carol} {
				servertest.Next(t, c, wire.TypeGroup, wait)
			}
			chaos.mu.Lock()
			chaos.mode = "lose all"
			chaos.mu.Unlock()
			first, err := alice.SendWithID(ctx, "once", g.ChatID, wire.Body{Text: "hello"}, "")
			if err != nil {
				t.Fatal(err)
			}
			if f := servertest.Drain(bob, 300*time.Millisecond); len(f) > 0 {
				t.Fatalf("bob got %+v although every envelope was lost", f)
			}
			again, err := alice.SendWithID(ctx, "once", g.ChatID, wire.Body{Text: "hello"}, "")
			if err != nil || again.MsgID != first.MsgID {
				t.Fatalf("the resend was answered %+v, %v; want the first message %s", again, err, first.MsgID)
			}
			for _, c := range []*client.Client{bob, carol} {
				if m := servertest.Next(t, c, wire.TypeMessage, wait); m.MsgID != first.MsgID {
					t.Fatalf("got %+v, want the message %s", m, first.MsgID)
				}
			}
		})
	}
}
