package auth

import (
	"fmt"
	"testing"
	"time"
)

func TestIPLimiterWindows(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := newIPLimiter(2, time.Hour, 100)
	for i := 0; i < 2; i++ {
		if ok, _ := l.take("192.0.2.1", t0); !ok {
			t.Fatalf("take %d refused", i+1)
		}
	}
	ok, wait := l.take("192.0.2.1", t0.Add(20*time.Minute))
	if ok || wait != 40*time.Minute {
		t.Fatalf("third take = %v, %v; want refused for 40m", ok, wait)
	}
	l.give("192.0.2.1", t0.Add(20*time.Minute))
	if ok, _ := l.take("192.0.2.1", t0.Add(21*time.Minute)); !ok {
		t.Fatal("take after give refused")
	}
	if ok, _ := l.take("192.0.2.1", t0.Add(time.Hour)); !ok {
		t.Fatal("take in the next window refused")
	}
	if ok, _ := newIPLimiter(0, time.Hour, 1).take("x", t0); !ok {
		t.Fatal("limit 0 is unlimited")
	}
}

func TestIPLimiterIPv6Prefix(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	l := newIPLimiter(1, time.Hour, 100)
	if ok, _ := l.take("2001:db8:1:2::1", t0); !ok {
		t.Fatal("first take refused")
	}
	if ok, _ := l.take("2001:db8:1:2:ffff::9", t0); ok {
		t.Fatal("another address of the same /64 was not limited")
	}
	if ok, _ := l.take("2001:db8:1:3::1", t0); !ok {
		t.Fatal("another /64 was limited")
	}
	if ok, _ := l.take("::ffff:192.0.2.1", t0); !ok {
		t.Fatal("first v4 take refused")
	}
	if ok, _ := l.take("192.0.2.1", t0); ok {
		t.Fatal("a v4-mapped address and its v4 form counted apart")
	}
	if ok, _ := l.take("192.0.2.2", t0); !ok {
		t.Fatal("v4 addresses are limited one by one")
	}
	for in, want := range map[string]string{
		"[2001:db8::1]:443": "2001:db8::/64",
		"192.0.2.1:80":      "192.0.2.1",
		"fe80::1%eth0":      "fe80::/64",
		"not an ip":         "not an ip",
	} {
		if got := ipKey(in); got != want {
			t.Errorf("ipKey(%q) = %q, want %q", in, got, want)
		}
	}
}

func TestIPLimiterBoundedMemory(t *testing.T) {
	t0 := time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)
	const capacity = 1000
	l := newIPLimiter(5, time.Hour, capacity)
	for i := 0; i < 20*capacity; i++ {
		l.take(fmt.Sprintf("10.%d.%d.%d", i>>16&255, i>>8&255, i&255), t0.Add(time.Duration(i)*time.Millisecond))
		if n := l.size(); n > capacity {
			t.Fatalf("after %d addresses the limiter holds %d, cap %d", i+1, n, capacity)
		}
	}
	// Once their windows end, idle addresses are dropped without waiting
	// for the map to fill.
	l.take("192.0.2.1", t0.Add(3*time.Hour))
	if n := l.size(); n != 1 {
		t.Fatalf("after the windows ended the limiter holds %d, want 1", n)
	}
}
