package server

import (
	"fmt"
	"testing"
	"time"
)

// TestBudgetsFollowTheDevice: a node that has not seen a device starts it
// with what it earned since it was last online anywhere, so that hopping
// to another node does not refill a spent budget; a node that has seen it
// keeps its budgets after the socket closes.
func TestBudgetsFollowTheDevice(t *testing.T) {
	cfg := DefaultConfig()
	cfg.SendsPerSecond, cfg.SendBurst = 10, 100
	l := newLimiter(&cfg)
	now := time.Unix(1_000_000, 0)
	sends := func(bs *budgets, at time.Time) (n int) {
		for bs.take(classSend, at) == 0 {
			n++
		}
		return n
	}
	if n := sends(l.acquire("dnew", time.Time{}, now), now); n != 100 {
		t.Fatalf("a device never online: %d sends, want the burst of 100", n)
	}
	// Online on another node until a second ago: it earned 10 since.
	if n := sends(l.acquire("dhop", now.Add(-time.Second), now), now); n != 10 {
		t.Fatalf("a device online elsewhere a second ago: %d sends, want 10", n)
	}
	// Another node's clock ahead of ours earns nothing.
	if n := sends(l.acquire("dskew", now.Add(time.Minute), now), now); n != 0 {
		t.Fatalf("last online in the future: %d sends, want 0", n)
	}
	// Back on this node: the budgets it left, refilled by the time away.
	bs := l.acquire("dback", time.Time{}, now)
	sends(bs, now)
	l.release("dback", bs, now)
	later := now.Add(2 * time.Second)
	if n := sends(l.acquire("dback", time.Time{}, later), later); n != 20 {
		t.Fatalf("reconnected after 2 s: %d sends, want the 20 it earned", n)
	}
	// Forgotten only once refilled and idle past keep.
	l.release("dback", l.m["dback"], later)
	l.forget(l.keepFor(), later.Add(time.Second))
	if _, ok := l.m["dback"]; !ok {
		t.Fatal("budgets forgotten while still refilling")
	}
	l.forget(l.keepFor(), later.Add(l.keepFor()+time.Second))
	if _, ok := l.m["dback"]; ok {
		t.Fatal("budgets of a device gone for long are kept")
	}
}

// TestQuotaFailsOpenAndGroupsIPv6: a full quota map forgets some keys
// rather than refusing every new one, and IPv6 clients count by /64.
func TestQuotaFailsOpenAndGroupsIPv6(t *testing.T) {
	if a, b := addressKey("2001:db8::1"), addressKey("2001:db8::ffff:2"); a != b || a != "2001:db8::/64" {
		t.Fatalf("addressKey of one /64: %q and %q", a, b)
	}
	if k := addressKey("192.0.2.7"); k != "192.0.2.7" {
		t.Fatalf("addressKey(192.0.2.7) = %q", k)
	}
	q := newQuota(5, 24*time.Hour)
	now := time.Unix(1_000_000, 0)
	for i := range quotaKeys {
		q.m[fmt.Sprint("k", i)] = &quotaWindow{start: now, used: 5}
	}
	if wait := q.take("newcomer", 1, now); wait != 0 {
		t.Fatalf("a new key with the map full waits %v, want 0", wait)
	}
}
