package server

import (
	"sync"
	"time"

	"github.com/tern-im/tern/wire"
)

// Every client frame spends from a budget of its device. The budgets
// belong to the device, not the socket: a client that reconnects finds
// its budgets as it left them on this node (they are kept for a while
// after its socket closes), and a node that has not seen the device lately
// starts it with what the device could have earned since it was last
// online anywhere (Device.LastSeen, written at connect and disconnect), so
// that hopping between nodes earns at most one burst per node.

// frameClass is which budget a frame spends from.
type frameClass int

const (
	classSend frameClass = iota
	classTyping
	classRead
	classOther // ping, presence_sub, unknown and malformed frames
	numClasses
)

func classOf(typ string) frameClass {
	switch typ {
	case wire.TypeSend:
		return classSend
	case wire.TypeTyping:
		return classTyping
	case wire.TypeRead:
		return classRead
	}
	return classOther
}

// Rate is a sustained rate with a burst.
type Rate struct {
	PerSecond float64
	Burst     int
}

// budgets are one device's buckets.
type budgets struct {
	mu       sync.Mutex
	b        [numClasses]bucket
	sessions int       // sockets of the device on this node using it
	released time.Time // when the last of them closed
}

// take spends one frame of class c, or says how long until one is there.
func (bs *budgets) take(c frameClass, now time.Time) time.Duration {
	bs.mu.Lock()
	defer bs.mu.Unlock()
	return bs.b[c].take(now)
}

// limiter holds the budgets of the devices this node saw lately.
type limiter struct {
	rates [numClasses]Rate
	mu    sync.Mutex
	m     map[string]*budgets
}

func newLimiter(cfg *Config) *limiter {
	l := &limiter{m: make(map[string]*budgets)}
	l.rates[classSend] = Rate{cfg.SendsPerSecond, cfg.SendBurst}
	l.rates[classTyping] = cfg.TypingRate
	l.rates[classRead] = cfg.ReadRate
	l.rates[classOther] = cfg.OtherFrameRate
	return l
}

// acquire returns the device's budgets for a new socket. A device this
// node does not hold budgets for starts with what it earned since
// lastOnline (zero: never connected, full budgets). A lastOnline in the
// future (another node's clock runs ahead) counts as now.
func (l *limiter) acquire(device string, lastOnline, now time.Time) *budgets {
	l.mu.Lock()
	defer l.mu.Unlock()
	bs, ok := l.m[device]
	if !ok {
		bs = &budgets{}
		idle := now.Sub(lastOnline)
		if lastOnline.IsZero() {
			idle = time.Duration(1<<63 - 1)
		}
		for c := range numClasses {
			bs.b[c] = newBucket(l.rates[c].PerSecond, l.rates[c].Burst)
			bs.b[c].fill(max(idle, 0), now)
		}
		l.m[device] = bs
	}
	bs.sessions++
	return bs
}

// release is acquire's counterpart, when the socket closes.
func (l *limiter) release(device string, bs *budgets, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	bs.sessions--
	if bs.sessions == 0 {
		bs.released = now
	}
}

// forget drops the budgets of devices without a socket here for longer
// than keep, which by then have refilled (keep is above every burst's
// refill time), so dropping them gives nothing away.
func (l *limiter) forget(keep time.Duration, now time.Time) {
	l.mu.Lock()
	defer l.mu.Unlock()
	for d, bs := range l.m {
		if bs.sessions == 0 && now.Sub(bs.released) > keep {
			delete(l.m, d)
		}
	}
}

// keepFor is how long budgets outlive their last socket: the longest time
// a bucket takes to refill, and at least a minute.
func (l *limiter) keepFor() time.Duration {
	keep := time.Minute
	for _, r := range l.rates {
		if r.PerSecond > 0 {
			keep = max(keep, time.Duration(float64(r.Burst)/r.PerSecond*float64(time.Second)))
		}
	}
	return keep
}

// rateLimited is the error a frame over its budget is answered with.
func rateLimited(wait time.Duration, what string) *wire.Error {
	return &wire.Error{Code: wire.CodeRateLimited, Message: "too many " + what,
		RetryAfter: int(wait/time.Second) + 1}
}

func (c frameClass) String() string {
	switch c {
	case classSend:
		return "messages"
	case classTyping:
		return "typing frames"
	case classRead:
		return "read frames"
	}
	return "frames"
}

// quota counts units (looked-up phones) per key (a user, an IP) in fixed
// windows. It lives on one node: in a cluster a user who spreads requests
// over n nodes gets up to n times the quota, still bounded.
type quota struct {
	limit  int
	window time.Duration
	mu     sync.Mutex
	m      map[string]*quotaWindow
}

type quotaWindow struct {
	start time.Time
	used  int
}

// quotaKeys bounds the keys kept; past it, finished windows are dropped,
// and if none is finished an arbitrary one: the quota fails open for the
// few it forgets rather than shut for everyone new.
const quotaKeys = 200_000

func newQuota(limit int, window time.Duration) *quota {
	return &quota{limit: limit, window: window, m: make(map[string]*quotaWindow)}
}

// take spends n units of key's quota, all or none; it returns the wait
// until the window ends when they do not fit. A limit of 0 means no quota.
func (q *quota) take(key string, n int, now time.Time) time.Duration {
	if q.limit <= 0 || n <= 0 {
		return 0
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	w, ok := q.m[key]
	if ok && now.Sub(w.start) >= q.window {
		w.start, w.used = now, 0
	}
	if !ok {
		if len(q.m) >= quotaKeys {
			for k, w := range q.m {
				if now.Sub(w.start) >= q.window {
					delete(q.m, k)
				}
			}
			for k := range q.m {
				if len(q.m) < quotaKeys {
					break
				}
				delete(q.m, k)
			}
		}
		w = &quotaWindow{start: now}
		q.m[key] = w
	}
	if w.used+n > q.limit {
		return max(w.start.Add(q.window).Sub(now), time.Second)
	}
	w.used += n
	return 0
}

// reset forgets key's window: what it spent counts no more.
func (q *quota) reset(key string) {
	q.mu.Lock()
	defer q.mu.Unlock()
	delete(q.m, key)
}

// give returns n units taken from key's current window.
func (q *quota) give(key string, n int) {
	if q.limit <= 0 {
		return
	}
	q.mu.Lock()
	defer q.mu.Unlock()
	if w, ok := q.m[key]; ok {
		w.used = max(w.used-n, 0)
	}
}
