package rabbitmq

import (
	"errors"
	"testing"
	"time"

	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/routing/rabbitmq/rabbittest"
)

// TestBrokerRestart kills the whole broker (a private node) under two
// routers and starts it again: while it is away publishes fail at once
// with ErrNotConnected and the handlers are polled; once it is back the
// routers reconnect on their own, rebind their devices and route again. (A
// broker closing the connections itself is TestBrokerConnectionCut.)
func TestBrokerRestart(t *testing.T) {
	node := rabbittest.Start(t)
	fast := func(c *Config) {
		c.ReconnectMin, c.ReconnectMax = 50*time.Millisecond, 500*time.Millisecond
		c.OutageResync = 100 * time.Millisecond
	}
	a := newRouter(t, node.URL, fast)
	b := newRouter(t, node.URL, fast)
	ctx := ctxT(t)
	dev := "restart-" + randomID()
	h := &handler{}
	if _, err := b.Attach(ctx, dev, h); err != nil {
		t.Fatal(err)
	}
	cursor := int64(0)
	roundTrip := func(what string) {
		t.Helper()
		cursor++
		c := cursor
		eventually(t, 30*time.Second, what+": no publish got through", func() bool {
			return a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: c}) == nil
		})
		eventually(t, 10*time.Second, what+": envelope not delivered", func() bool { return h.has(c) })
	}
	roundTrip("before the restarts")

	for i, down := range []struct {
		name string
		stop func()
	}{{"killed", node.Kill}} {
		before := h.resyncs.Load()
		down.stop()
		eventually(t, 30*time.Second, down.name+": publish does not fail fast", func() bool {
			return errors.Is(a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: -1}), ErrNotConnected)
		})
		// Polled while the broker is away: several resyncs, not one.
		eventually(t, 10*time.Second, down.name+": handler not polled during the outage", func() bool {
			return h.resyncs.Load() >= before+3
		})
		if a.Connected() || b.Connected() {
			t.Fatalf("%s: a router says it is connected to a dead broker", down.name)
		}
		node.Start()
		roundTrip(down.name + " then started")
		if !a.Connected() || !b.Connected() {
			t.Fatalf("restart %d: routers not connected after routing again", i+1)
		}
	}
}

// TestBrokerBlocksPublishing raises a memory alarm on a private node: the
// router learns that the broker blocks publishing (connection.blocked goes
// to connections that publish), Publish fails at once with ErrBlocked
// instead of hanging, the node's handlers are polled meanwhile (their
// events wait in the inbox), and once the alarm clears publishing works
// again and the handlers are resynced. Handlers on a node that published
// nothing during the alarm get their events through the server's repair
// pokes once it clears.
func TestBrokerBlocksPublishing(t *testing.T) {
	node := rabbittest.Start(t)
	a := newRouter(t, node.URL, func(c *Config) { c.OutageResync = 100 * time.Millisecond })
	ctx := ctxT(t)
	dev := "blocked-" + randomID()
	h := &handler{}
	if _, err := a.Attach(ctx, dev, h); err != nil {
		t.Fatal(err)
	}
	if err := a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 1}); err != nil {
		t.Fatal(err)
	}
	eventually(t, 10*time.Second, "envelope before the alarm not delivered", func() bool { return h.has(1) })

	node.BlockPublishing()
	// The broker tells connections of the alarm; a publish may be needed
	// for it to block this one.
	// ErrBlocked, not a timeout after PublishTimeout, says it did not hang.
	eventually(t, 30*time.Second, "publish not refused with ErrBlocked during the alarm", func() bool {
		return errors.Is(a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: -1}), ErrBlocked)
	})
	if !a.Blocked() {
		t.Fatal("Blocked() is false while Publish says ErrBlocked")
	}
	polled := h.resyncs.Load()
	eventually(t, 10*time.Second, "handler not polled while publishing is blocked", func() bool {
		return h.resyncs.Load() >= polled+3
	})
	if !a.Connected() {
		t.Fatal("a blocked link counts as disconnected")
	}

	node.UnblockPublishing()
	eventually(t, 30*time.Second, "publishing not back after the alarm", func() bool {
		return a.Publish(ctx, dev, routing.Envelope{Kind: routing.KindEvent, Cursor: 2}) == nil
	})
	eventually(t, 10*time.Second, "envelope after the alarm not delivered", func() bool { return h.has(2) })
	if a.Blocked() {
		t.Fatal("Blocked() still true once publishing works again")
	}
	// Polling stops with the alarm.
	time.Sleep(300 * time.Millisecond)
	settled := h.resyncs.Load()
	time.Sleep(500 * time.Millisecond)
	if n := h.resyncs.Load(); n != settled {
		t.Fatalf("handler still polled after the alarm cleared: %d resyncs in 0.5s", n-settled)
	}
}
