package server

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-im/tern/internal/health"
	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/store"
)

// The dashboard's overview of the cluster. Every node writes a report on
// itself to the store every ReportEvery (its sockets, how its store,
// broker, push service and SMS gateway answer, and how many messages it
// stored per minute over the last hour), and the node a dashboard asks
// reads them all. The store, not the broker, carries them: with the
// broker down the reports still arrive, and show it down; with the store
// down the dashboard cannot sign anyone in anyway, and the node serving
// it still shows its own live state.

// Engines names what a node runs on, for the dashboard.
type Engines struct {
	Store   string `json:"store"`
	Router  string `json:"router"`
	Media   string `json:"media"`
	Push    string `json:"push"`
	WebPush bool   `json:"web_push"`
	SMS     string `json:"sms"`
	Mail    string `json:"mail"`
}

// minuteWindow is how far back the message counts go.
const minuteWindow = 60

// nodeReport is the body of a store.NodeReport, and a node in the
// overview's answer.
type nodeReport struct {
	NodeID      string           `json:"node_id"`
	Boot        string           `json:"boot"`
	Version     string           `json:"version"`
	StartedAt   int64            `json:"started_at"`
	ReportedAt  int64            `json:"reported_at"`
	Stopped     bool             `json:"stopped,omitempty"` // a clean shutdown's last report
	Draining    bool             `json:"draining,omitempty"`
	Connections int              `json:"connections"`
	Users       int              `json:"users"`
	Engines     Engines          `json:"engines"`
	Checks      map[string]check `json:"checks"`
	// Minutes are messages stored per minute, oldest first; the first
	// counts the minute that starts at FirstMinute (unix ms).
	FirstMinute int64   `json:"first_minute"`
	Minutes     []int64 `json:"minutes"`
	// WebhooksFailing are the businesses whose webhook this node is
	// retrying, by user id: the dashboard's Businesses page shows them.
	WebhooksFailing map[string]hookFailure `json:"webhooks_failing,omitempty"`
}

// hookFailure is a business's webhook failing on the node that holds its
// queue.
type hookFailure struct {
	Attempts int    `json:"attempts"`
	Error    string `json:"error"`
	Since    int64  `json:"since"` // the first failure in a row (unix ms)
	Next     int64  `json:"next"`  // the next try (unix ms)
}

// check is one dependency's state: "ok", "failing", "idle" (nothing
// tried yet) or "off" (not configured).
type check struct {
	State  string `json:"state"`
	Detail string `json:"detail,omitempty"`
	Since  int64  `json:"since,omitempty"` // failing since (unix ms)
}

// nodeStats is the node's side of the overview.
type nodeStats struct {
	boot    string
	started time.Time
	engines Engines
	sms     *health.Outcomes
	mail    *health.Outcomes
	push    health.Outcomes
	hooks   health.Outcomes // business webhook POSTs
	// hookFail is the businesses whose webhooks this node retries now.
	hookMu   sync.Mutex
	hookFail map[string]hookFailure
	// sent counts stored messages; the report loop turns it into counts
	// per minute, so a send costs one atomic add.
	sent atomic.Int64
	// mu serialises the reports' writes (the loop's, a first overview's,
	// Shutdown's last) and guards what follows.
	mu sync.Mutex
	// stopped: Shutdown wrote the last report; no other may follow it.
	stopped     bool
	lastSent    int64
	firstMinute int64
	minutes     []int64
	// last is the latest report, for this node's row while the store
	// cannot take it.
	last atomic.Pointer[nodeReport]
	// nodesUp is how many nodes reported lately (this one included; 0
	// before the first count: read it as 1).
	nodesUp atomic.Int64
}

// countMinute adds what was sent since the last call to the minute of
// now, and drops minutes older than the window.
func (n *nodeStats) countMinute(now time.Time) {
	total := n.sent.Load()
	delta := total - n.lastSent
	n.lastSent = total
	minute := now.Truncate(time.Minute).UnixMilli()
	// The clock jumped (back, or more than the window ahead: a node that
	// started before its clock was set): start again rather than fill the
	// gap minute by minute.
	if len(n.minutes) == 0 || minute < n.firstMinute || minute >= n.firstMinute+int64(len(n.minutes)+minuteWindow)*60_000 {
		n.firstMinute, n.minutes = minute, make([]int64, 0, minuteWindow+1)
	}
	for n.firstMinute+int64(len(n.minutes))*60_000 <= minute {
		n.minutes = append(n.minutes, 0)
	}
	n.minutes[len(n.minutes)-1] += delta
	if drop := len(n.minutes) - minuteWindow; drop > 0 {
		n.minutes = append(make([]int64, 0, minuteWindow+1), n.minutes[drop:]...)
		n.firstMinute += int64(drop) * 60_000
	}
}

// report makes this node's report: it pings the store. The caller holds
// s.stats.mu.
func (s *Server) report(ctx context.Context, now time.Time, stopped bool) *nodeReport {
	n := &s.stats
	s.mu.Lock()
	conns, users := len(s.sessions), len(s.byUser)
	s.mu.Unlock()
	r := &nodeReport{NodeID: s.cfg.NodeID, Boot: n.boot, Version: s.version, StartedAt: n.started.UnixMilli(),
		ReportedAt: now.UnixMilli(), Stopped: stopped, Draining: s.draining.Load(), Connections: conns, Users: users,
		Engines: n.engines, Checks: map[string]check{}, FirstMinute: n.firstMinute, Minutes: append([]int64(nil), n.minutes...)}
	n.hookMu.Lock()
	if len(n.hookFail) > 0 {
		r.WebhooksFailing = maps.Clone(n.hookFail)
	}
	n.hookMu.Unlock()

	pctx, cancel := context.WithTimeout(ctx, 2*time.Second)
	start := time.Now()
	err := s.st.Ping(pctx)
	cancel()
	if err != nil {
		r.Checks["store"] = check{State: health.StateFailing, Detail: err.Error()}
	} else {
		r.Checks["store"] = check{State: health.StateOK, Detail: fmt.Sprintf("answers in %d ms", time.Since(start).Milliseconds())}
	}
	switch l, ok := s.router.(routing.Linked); {
	case !ok:
		r.Checks["broker"] = check{State: health.StateOK, Detail: "in-process: one node"}
	case !l.Connected():
		r.Checks["broker"] = check{State: health.StateFailing, Detail: "not connected: sessions poll their inboxes every second"}
	case l.Blocked():
		r.Checks["broker"] = check{State: health.StateFailing, Detail: "the broker blocks publishing (a memory or disk alarm)"}
	default:
		r.Checks["broker"] = check{State: health.StateOK, Detail: "connected"}
	}
	r.Checks["push"] = outcomeCheck(n.push.Snapshot(), "pushes")
	if n.engines.SMS == "" {
		r.Checks["sms"] = check{State: "off"}
	} else {
		r.Checks["sms"] = outcomeCheck(n.sms.Snapshot(), "codes")
	}
	r.Checks["webhooks"] = outcomeCheck(n.hooks.Snapshot(), "webhooks")
	if n.engines.Mail == "" {
		r.Checks["mail"] = check{State: "off", Detail: "no mail server"}
	} else {
		r.Checks["mail"] = outcomeCheck(n.mail.Snapshot(), "mails")
	}
	return r
}

func outcomeCheck(o health.Snapshot, what string) check {
	c := check{State: o.State}
	switch o.State {
	case health.StateIdle:
		c.Detail = "nothing sent since the node started"
	case health.StateFailing:
		c.Since = o.FailingSince.UnixMilli()
		c.Detail = fmt.Sprintf("%d failed in a row: %s", o.ConsecutiveKO, o.LastError)
	default:
		c.Detail = fmt.Sprintf("%d %s sent, %d failed since the node started", o.OK, what, o.Failed)
	}
	return c
}

// reportLoop writes this node's report every ReportEvery, and forgets
// nodes silent for a day.
func (s *Server) reportLoop() {
	s.writeReport(time.Now(), false)
	s.every(s.cfg.ReportEvery, func(now time.Time) { s.writeReport(now, false) })
}

const forgetNodesAfter = 24 * time.Hour

func (s *Server) writeReport(now time.Time, stopped bool) {
	s.writeReportCtx(s.ctx, now, stopped)
}

func (s *Server) writeReportCtx(ctx context.Context, now time.Time, stopped bool) {
	s.stats.mu.Lock()
	defer s.stats.mu.Unlock()
	if s.stats.stopped {
		return
	}
	s.stats.stopped = stopped
	s.stats.countMinute(now)
	r := s.report(ctx, now, stopped)
	s.stats.last.Store(r)
	body, err := json.Marshal(r)
	if err != nil {
		s.log.Error("overview: encoding the node report failed", "err", err)
		return
	}
	wctx, cancel := context.WithTimeout(ctx, 5*time.Second)
	defer cancel()
	if err := s.st.PutNodeReport(wctx, store.NodeReport{NodeID: s.cfg.NodeID, At: now, Body: body}); err != nil {
		if !errors.Is(err, context.Canceled) {
			s.log.Warn("overview: writing the node report failed", "err", err)
		}
		return
	}
	if stopped {
		return
	}
	all, err := s.st.NodeReports(wctx)
	if err != nil {
		return
	}
	up := 0
	for _, o := range all {
		if now.Sub(o.At) > forgetNodesAfter {
			_ = s.st.DeleteNodeReport(wctx, o.NodeID)
		}
		if now.Sub(o.At) <= 3*s.cfg.ReportEvery && !stoppedReport(o.Body) {
			up++
		}
	}
	// Limits the cluster shares (a business number's rate) are split
	// among the nodes up.
	s.stats.nodesUp.Store(int64(max(up, 1)))
}

// overviewNode is a node in the overview: its report, and whether it
// still reports.
type overviewNode struct {
	*nodeReport
	Up   bool `json:"up"`
	Self bool `json:"self"` // the node that answered
}

// handleAdminOverview answers the dashboard's live overview: every node,
// the sockets open on the live ones, and messages per minute for the
// last hour, summed over the nodes.
func (s *Server) handleAdminOverview(w http.ResponseWriter, r *http.Request, _ adminActor) {
	now := time.Now()
	self := s.stats.last.Load()
	if self == nil {
		// Just started: the loop has not reported yet.
		s.writeReportCtx(r.Context(), now, false)
		if self = s.stats.last.Load(); self == nil {
			self = &nodeReport{NodeID: s.cfg.NodeID} // stopped meanwhile
		}
	}
	nodes := []overviewNode{{nodeReport: self, Up: true, Self: true}}
	var storeErr string
	reports, err := s.st.NodeReports(r.Context())
	if err != nil {
		s.log.Warn("overview: reading node reports failed", "err", err)
		storeErr = "the other nodes' reports cannot be read: " + err.Error()
	}
	// A node is up while its reports keep coming: three missed in a row
	// and it is down (killed, cut off, or its store writes fail).
	stale := 3 * s.cfg.ReportEvery
	for _, rep := range reports {
		if rep.NodeID == s.cfg.NodeID {
			continue
		}
		var nr nodeReport
		if err := json.Unmarshal(rep.Body, &nr); err != nil {
			nr = nodeReport{NodeID: rep.NodeID, ReportedAt: rep.At.UnixMilli()}
		}
		nodes = append(nodes, overviewNode{nodeReport: &nr, Up: !nr.Stopped && now.Sub(rep.At) <= stale})
	}
	out := struct {
		Now          int64          `json:"now"`
		Connections  int            `json:"connections"`
		NodesUp      int            `json:"nodes_up"`
		Nodes        []overviewNode `json:"nodes"`
		FirstMinute  int64          `json:"first_minute"`
		Minutes      []int64        `json:"messages_per_minute"`
		ReportEvery  int64          `json:"report_every_ms"`
		ReportsError string         `json:"reports_error,omitempty"`
	}{Now: now.UnixMilli(), Nodes: nodes, ReportEvery: s.cfg.ReportEvery.Milliseconds(), ReportsError: storeErr}
	// The last hour by minute, this one included, summed over the nodes
	// (a node gone down still counts for the minutes it reported).
	cur := now.Truncate(time.Minute).UnixMilli()
	out.FirstMinute = cur - (minuteWindow-1)*60_000
	out.Minutes = make([]int64, minuteWindow)
	for _, n := range nodes {
		if n.Up {
			out.NodesUp++
			out.Connections += n.Connections
		}
		for i, c := range n.Minutes {
			if j := (n.FirstMinute + int64(i)*60_000 - out.FirstMinute) / 60_000; j >= 0 && j < minuteWindow {
				out.Minutes[j] += c
			}
		}
	}
	w.Header().Set("Cache-Control", "no-store")
	writeJSON(w, http.StatusOK, out)
}

// NodeID is the node's id in the cluster.
func (s *Server) NodeID() string { return s.cfg.NodeID }

// stoppedReport reports whether a report body is a clean shutdown's last.
func stoppedReport(body []byte) bool {
	var r struct {
		Stopped bool `json:"stopped"`
	}
	return json.Unmarshal(body, &r) == nil && r.Stopped
}

// setHookFailure records (f non-nil) or clears business userID's webhook
// failure on this node.
func (n *nodeStats) setHookFailure(userID string, f *hookFailure) {
	n.hookMu.Lock()
	defer n.hookMu.Unlock()
	if f == nil {
		delete(n.hookFail, userID)
		return
	}
	if n.hookFail == nil {
		n.hookFail = map[string]hookFailure{}
	}
	if old, ok := n.hookFail[userID]; ok {
		f.Since = old.Since
	}
	n.hookFail[userID] = *f
}

// webhookFailures merges the failing webhooks of the nodes up: this
// node's live, the others' from their reports.
func (s *Server) webhookFailures(ctx context.Context) map[string]hookFailure {
	out := map[string]hookFailure{}
	s.stats.hookMu.Lock()
	maps.Copy(out, s.stats.hookFail)
	s.stats.hookMu.Unlock()
	reports, err := s.st.NodeReports(ctx)
	if err != nil {
		return out
	}
	stale := 3 * s.cfg.ReportEvery
	for _, rep := range reports {
		if rep.NodeID == s.cfg.NodeID || time.Since(rep.At) > stale {
			continue
		}
		var nr nodeReport
		if json.Unmarshal(rep.Body, &nr) != nil || nr.Stopped {
			continue
		}
		for id, f := range nr.WebhooksFailing {
			if old, ok := out[id]; !ok || f.Since < old.Since {
				out[id] = f
			}
		}
	}
	return out
}
