package auth

import (
	"net/netip"
	"sync"
	"time"
)

// defaultLimiterCap bounds the addresses one limiter tracks (about 100 bytes
// each), so a flood from many addresses costs memory once, not without end.
const defaultLimiterCap = 100_000

// ipLimiter counts events per client address, or per phone and address, in
// fixed windows. It lives in memory on one node: a restart or another node
// starts from zero, which is acceptable because the per-phone totals in the
// store are what bound guessing and SMS; these limits only decide how much
// of those totals one source can spend.
type ipLimiter struct {
	limit  int // 0: unlimited
	window time.Duration
	cap    int

	mu        sync.Mutex
	m         map[string]ipWindow
	lastSweep time.Time
}

type ipWindow struct {
	start time.Time
	count int
}

func newIPLimiter(limit int, window time.Duration, capacity int) *ipLimiter {
	return &ipLimiter{limit: limit, window: window, cap: capacity, m: make(map[string]ipWindow)}
}

// take counts one event for ip at now. When the window is full it counts
// nothing and says how long until it opens again.
func (l *ipLimiter) take(ip string, now time.Time) (ok bool, wait time.Duration) {
	return l.takeKey(ipKey(ip), now)
}

// takeKey is take for a key the caller built (see phoneIPKey).
func (l *ipLimiter) takeKey(key string, now time.Time) (ok bool, wait time.Duration) {
	if l.limit <= 0 {
		return true, 0
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	l.maybeSweep(now)
	w, found := l.m[key]
	if !found || !now.Before(w.start.Add(l.window)) || now.Before(w.start) {
		// A new window; now before start means the clock stepped back, and
		// a stale future window must not block for longer than one window.
		if !found && len(l.m) >= l.cap {
			l.makeRoom(now)
		}
		l.m[key] = ipWindow{start: now, count: 1}
		return true, 0
	}
	if w.count >= l.limit {
		return false, w.start.Add(l.window).Sub(now)
	}
	w.count++
	l.m[key] = w
	return true, 0
}

// give returns an event taken at now, when what it counted did not happen.
func (l *ipLimiter) give(ip string, now time.Time) {
	l.giveKey(ipKey(ip), now)
}

// giveKey is give for a key the caller built.
func (l *ipLimiter) giveKey(key string, now time.Time) {
	if l.limit <= 0 {
		return
	}
	l.mu.Lock()
	defer l.mu.Unlock()
	if w, ok := l.m[key]; ok && w.count > 0 && !now.Before(w.start) && now.Before(w.start.Add(l.window)) {
		w.count--
		l.m[key] = w
	}
}

// maybeSweep drops ended windows once per window length, so the map holds
// only addresses seen within about two windows; the cost is amortised over
// the calls of a whole window.
func (l *ipLimiter) maybeSweep(now time.Time) {
	if now.Sub(l.lastSweep) < l.window && !now.Before(l.lastSweep) {
		return
	}
	l.sweep(now)
}

func (l *ipLimiter) sweep(now time.Time) {
	l.lastSweep = now
	for k, w := range l.m {
		if !now.Before(w.start.Add(l.window)) {
			delete(l.m, k)
		}
	}
}

// makeRoom runs when the map is full of live windows. It first drops ended
// ones; if that is not enough it forgets arbitrary addresses (map order is
// random) down to 90%. That fails open for the forgotten ones, which beats
// refusing every new address: whoever can fill the map from many addresses
// could otherwise lock everyone out.
func (l *ipLimiter) makeRoom(now time.Time) {
	l.sweep(now)
	target := l.cap - l.cap/10
	if target >= l.cap {
		target = l.cap - 1
	}
	for k := range l.m {
		if len(l.m) <= target {
			break
		}
		delete(l.m, k)
	}
}

// forget drops key's window, when what it limited is settled (a phone
// signed in from that address).
func (l *ipLimiter) forget(key string) {
	l.mu.Lock()
	defer l.mu.Unlock()
	delete(l.m, key)
}

func (l *ipLimiter) size() int {
	l.mu.Lock()
	defer l.mu.Unlock()
	return len(l.m)
}

// ipKey groups IPv6 clients by /64, the block one subscriber usually gets,
// because counting single addresses there would let one client use 2^64 of
// them. IPv4 (also when mapped into IPv6) counts per address.
func ipKey(ip string) string {
	a, err := netip.ParseAddr(ip)
	if err != nil {
		if ap, err2 := netip.ParseAddrPort(ip); err2 == nil {
			a, err = ap.Addr(), nil
		}
	}
	if err != nil {
		return ip
	}
	a = a.Unmap().WithZone("")
	if a.Is4() {
		return a.String()
	}
	p, err := a.Prefix(64)
	if err != nil {
		return a.String()
	}
	return p.String()
}

// phoneIPKey is the limiter key of one phone asked for from one client
// address (grouped as ipKey groups them).
func phoneIPKey(phone, ip string) string {
	return phone + "|" + ipKey(ip)
}
