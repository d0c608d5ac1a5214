package health

import (
	"net/url"
	"regexp"
	"sync"
	"time"
)

// States of a service, as the dashboard shows them.
const (
	StateOK      = "ok"      // the last attempt worked
	StateFailing = "failing" // the last attempt failed
	StateIdle    = "idle"    // nothing was attempted since the node started
)

// Outcomes records the results of calls to one service. The zero value is
// ready; it is safe for concurrent use.
type Outcomes struct {
	mu   sync.Mutex
	snap Snapshot
}

// Snapshot is Outcomes at one moment.
type Snapshot struct {
	State         string
	OK, Failed    int64 // since the node started
	LastOK        time.Time
	LastFailure   time.Time
	LastError     string // the last failure's error, shortened
	FailingSince  time.Time
	ConsecutiveKO int64 // failures since the last success
}

// maxErrorText bounds what a failure keeps of its error: gateways answer
// with whole pages.
const maxErrorText = 300

// Record notes one call's result at the time at.
func (o *Outcomes) Record(err error, at time.Time) {
	o.mu.Lock()
	defer o.mu.Unlock()
	s := &o.snap
	if err == nil {
		s.OK++
		s.LastOK = at
		s.ConsecutiveKO = 0
		s.FailingSince = time.Time{}
		return
	}
	s.Failed++
	s.LastFailure = at
	if s.ConsecutiveKO == 0 {
		s.FailingSince = at
	}
	s.ConsecutiveKO++
	msg := RedactURLs(err.Error())
	if len(msg) > maxErrorText {
		msg = msg[:maxErrorText] + "…"
	}
	s.LastError = msg
}

// Snapshot returns the record so far; a nil Outcomes is idle.
func (o *Outcomes) Snapshot() Snapshot {
	if o == nil {
		return Snapshot{State: StateIdle}
	}
	o.mu.Lock()
	s := o.snap
	o.mu.Unlock()
	switch {
	case s.ConsecutiveKO > 0:
		s.State = StateFailing
	case s.OK > 0:
		s.State = StateOK
	default:
		s.State = StateIdle
	}
	return s
}

// urls finds URLs in error text: Go's HTTP errors quote the whole URL, and
// a gateway's may carry a key in its query. What the dashboard shows, and
// the store keeps, is the scheme and host only.
var urls = regexp.MustCompile(`[a-zA-Z][a-zA-Z0-9+.-]*://[^\s"']+`)

// RedactURLs cuts every URL in s to its scheme and host.
func RedactURLs(s string) string {
	return urls.ReplaceAllStringFunc(s, func(raw string) string {
		u, err := url.Parse(raw)
		if err != nil || u.Host == "" {
			return "(a URL)"
		}
		return u.Scheme + "://" + u.Host + "/…"
	})
}
