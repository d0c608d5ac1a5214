package bench

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/wire"
)

// Series business mode reads from the server's /metrics.
const (
	mWebhooksOK     = `tern_webhooks_total{result="ok"}`
	mWebhooksFailed = `tern_webhooks_total{result="failed"}`
	bizRoute        = "/{version}/{phone_number_id}/messages"
	mBizSendSum     = `tern_http_seconds_sum{route="` + bizRoute + `"}`
	mBizSendCount   = `tern_http_seconds_count{route="` + bizRoute + `"}`
)

// span is a phase's clock: when its schedule starts, and its window.
// Read by the receiver and the customers' readers while it is set.
type span struct{ start, winStart, winEnd atomic.Int64 }

func (s *span) measured(at int64) bool { return at >= s.winStart.Load() && at < s.winEnd.Load() }

func (s *span) set(start int64, warmup, d time.Duration) {
	s.winEnd.Store(0) // nothing measured while the three change
	s.start.Store(start)
	s.winStart.Store(start + int64(warmup))
	s.winEnd.Store(start + int64(warmup) + int64(d))
}

// bcust is one connected customer.
type bcust struct {
	idx     int
	c       *client.Client
	phone   string
	biz     int
	bizUser string

	// Webhooks phase: its messages answered sent, awaiting their ✓✓.
	mu      sync.Mutex
	pending map[string]int64 // msg_id → message number
	early   map[string]int64 // msg_id → run clock of a ✓✓ before the sent answer

	// Sends phase.
	seq      atomic.Int64 // next sequence number of a business message to it
	accepted atomic.Int64 // those answered 200
	received atomic.Int64 // distinct ones it got
	seen     []uint64     // its reader's: sequence numbers received
}

// wmsg is a customer message's progress in the webhooks phase.
type wmsg struct {
	durable atomic.Bool
	posted  atomic.Int32
	ticked  atomic.Bool
}

// sendRec is a business send answered 200, by its wamid.
type sendRec struct {
	at                    int64
	sent, delivered, read bool
}

type earlyStatus struct {
	status string
	at     int64
}

// bizRun is the state of a business run.
type bizRun struct {
	r       *runner
	bizs    []bizCreds
	custs   []*bcust
	custsOf [][]*bcust // per business
	bases   []string   // where REST sends go, in turn
	hc      *http.Client
	wPrefix string // customers' messages: "twb <nonce> <k> <due>"
	aPrefix string // businesses' messages: "tba <nonce> <seq> <at>"

	// Webhooks phase.
	w                                   span
	wRate                               float64
	wTotal                              int64
	wmsgs                               []wmsg
	wStop                               atomic.Bool
	wSent, wHook, wTick, wLag           *Recorder
	wIssued, wDurable, wPosted, wTicked atomic.Int64
	wDups, wErrs, wUnanswered           atomic.Int64
	wSentInWin, wPostedInWin            atomic.Int64
	wForeign                            atomic.Int64
	errMu                               sync.Mutex
	wErrCodes, sErrCodes                map[string]int64

	// Sends phase.
	s                                 span
	sNext                             atomic.Int64
	sStop                             atomic.Bool
	sSend, sRecv, sSentSt, sDeliv     *Recorder
	sLag                              *Recorder
	sIssued, sAccepted, sErrs         atomic.Int64
	sUnanswered, sAcceptedInWin       atomic.Int64
	sRecvInWin, sDups, sStatusesInWin atomic.Int64
	sMu                               sync.Mutex
	sends                             map[string]*sendRec
	early                             map[string][]earlyStatus
	stCounts                          map[string]int64
	stDups                            int64

	// Both: POSTs per window.
	postsInWin     [2]atomic.Int64 // 0: webhooks window, 1: sends window
	statusPostsWin atomic.Int64
}

// bizSchedule counts the messages (or sends) due before the end of the
// warmup and window, at rate from the phase's start: k/rate < d.
func bizSchedule(rate float64, d time.Duration) int64 {
	n := int64(rate*d.Seconds()) + 2
	for n > 0 && int64(float64(n-1)*1e9/rate) >= int64(d) {
		n--
	}
	for int64(float64(n)*1e9/rate) < int64(d) {
		n++
	}
	return n
}

func (r *runner) business(ctx context.Context, rep *Report) error {
	cfg := r.cfg
	nonce := randomHex(6)
	b := &bizRun{r: r, wPrefix: "twb " + nonce + " ", aPrefix: "tba " + nonce + " ",
		wRate: cfg.Rate, wSent: NewRecorder(), wHook: NewRecorder(), wTick: NewRecorder(), wLag: NewRecorder(),
		sSend: NewRecorder(), sRecv: NewRecorder(), sSentSt: NewRecorder(), sDeliv: NewRecorder(), sLag: NewRecorder(),
		wErrCodes: map[string]int64{}, sErrCodes: map[string]int64{},
		sends: map[string]*sendRec{}, early: map[string][]earlyStatus{}, stCounts: map[string]int64{}}
	if cfg.hasPhase(PhaseWebhooks) {
		b.wTotal = bizSchedule(cfg.Rate, cfg.Warmup+cfg.Duration)
		b.wmsgs = make([]wmsg, b.wTotal)
	}
	br := &BusinessReport{Businesses: cfg.Businesses, Customers: cfg.Conns, Nodes: 1 + len(cfg.Nodes), Phases: map[string]BizPhase{}}
	rep.Business = br

	if err := r.checkBusinessSource(); err != nil {
		return err
	}
	recv, err := r.startReceiver(cfg.WebhookListen, b)
	if err != nil {
		return err
	}
	defer recv.close()
	r.printf("webhook receiver: %s/hook/{i}\n", recv.base)

	clients, prov, err := r.provision(ctx, cfg.Conns, 1, r.clientOptions(128, 4096))
	rep.Provision = prov
	if err != nil {
		return err
	}
	defer closeAll(clients)
	phones := make([]string, len(clients))
	err = forEach(ctx, len(clients), cfg.Concurrency, func(ctx context.Context, i int) error {
		me, err := clients[i].Me(ctx)
		if err != nil {
			return fmt.Errorf("customer %d: %w", i, err)
		}
		phones[i] = me.Phone
		return nil
	})
	if err != nil {
		return err
	}

	bizs, made, err := r.setupBusinesses(ctx)
	br.Made = made
	if err != nil {
		return err
	}
	b.bizs = bizs
	r.printf("businesses: %d (%d made now, through %s)\n", len(bizs), made, cfg.AdminAddr)
	for i := range bizs {
		if bizs[i].UserID != "" {
			continue
		}
		res, err := clients[0].Lookup(ctx, []string{bizs[i].Phone})
		if err != nil || len(res.Contacts) == 0 {
			return fmt.Errorf("business %s: no user with that phone (%v)", bizs[i].Phone, err)
		}
		bizs[i].UserID = res.Contacts[0].UserID
	}
	if cfg.AdminToken != "" {
		sess, err := r.adminSignIn(ctx)
		if err != nil {
			return err
		}
		for _, bz := range bizs {
			if err := sess.settings(ctx, bz.UserID, cfg.RateLimit); err != nil {
				sess.signOut(ctx)
				return err
			}
		}
		sess.signOut(ctx)
		br.RateLimit = cfg.RateLimit
		r.printf("businesses: rate_per_second %d, 24-hour rule off (admin API, as %s)\n", cfg.RateLimit, benchAdmin)
	} else {
		r.printf("note: no admin token: the businesses keep their rate and 24-hour rule\n")
	}
	targets := make([]hookTarget, len(bizs))
	for i, bz := range bizs {
		targets[i] = hookTarget{secret: []byte(bz.AppSecret), verifyToken: randomHex(12), phoneNumberID: bz.PhoneNumberID, wabaID: bz.WABAID}
	}
	recv.setTargets(targets)
	for i, bz := range bizs {
		if err := r.subscribe(ctx, bz, recv.url(i), targets[i].verifyToken); err != nil {
			return err
		}
	}
	defer func() {
		// The receiver goes with the run: stop the server posting to it.
		uctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), 10*time.Second)
		defer cancel()
		for _, bz := range bizs {
			if err := r.unsubscribe(uctx, bz); err != nil {
				r.printf("warning: %v\n", err)
			}
		}
	}()
	r.printf("webhooks: %d businesses subscribed (verified with %d GETs)\n", len(bizs), recv.verifications.Load())

	b.custsOf = make([][]*bcust, len(bizs))
	for i, c := range clients {
		bi := i % len(bizs)
		bc := &bcust{idx: i, c: c, phone: phones[i], biz: bi, bizUser: bizs[bi].UserID,
			pending: map[string]int64{}, early: map[string]int64{}}
		b.custs = append(b.custs, bc)
		b.custsOf[bi] = append(b.custsOf[bi], bc)
	}
	b.bases = append([]string{cfg.Addr}, cfg.Nodes...)
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2*cfg.Inflight + 8,
		MaxIdleConnsPerHost: cfg.Inflight + 4, // keep-alive: a connection per worker
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	b.hc = &http.Client{Transport: tr, Timeout: 30 * time.Second}

	conn, err := r.connectAll(ctx, clients, true)
	rep.Connect = conn
	if err != nil {
		return err
	}
	var events sync.WaitGroup
	for _, c := range b.custs {
		events.Go(func() { b.customerEvents(c) })
	}
	defer events.Wait()
	defer closeAll(clients) // before events.Wait: the readers end when their clients close

	if made < len(bizs) {
		// A reused business's queue may hold events from before: they
		// come first.
		br.Backlog = recv.waitQuiet(ctx, 1500*time.Millisecond, cfg.Drain)
		if br.Backlog > 0 {
			r.printf("note: %d POSTs of events from before this run came first\n", br.Backlog)
		}
	}
	before := r.scrape(ctx, "before traffic")
	bs := sampleOf(before)
	rep.ServerBefore = &bs

	var tot phaseTotals
	if cfg.hasPhase(PhaseWebhooks) {
		ph, err := b.webhooksPhase(ctx, br)
		if err != nil {
			return err
		}
		br.Phases[PhaseWebhooks] = ph.BizPhase
		tot.add(ph)
		if n := br.Webhooks.Lost; n > 0 && cfg.hasPhase(PhaseSends) {
			r.printf("note: %d customer messages are still in the businesses' queues: the sends phase's statuses come after them\n", n)
		}
	}
	if cfg.hasPhase(PhaseSends) {
		ph, err := b.sendsPhase(ctx, br)
		if err != nil {
			return err
		}
		br.Phases[PhaseSends] = ph.BizPhase
		tot.add(ph)
	}
	br.Receiver = recv.report()
	rep.Server = sampleOf(r.scrape(context.WithoutCancel(ctx), "end"))
	tot.report(rep)
	return nil
}

// bizPhaseResult is a phase's costs with the raw machine readings, so that
// the run's report can sum the phases.
type bizPhaseResult struct {
	BizPhase
	m0, m1 machineSample
}

// phaseTotals sums the phases' windows for the run's report.
type phaseTotals struct {
	secs, server, bench float64
	busy, total         uint64
	load0, load1        float64
	n                   int
}

func (t *phaseTotals) add(p bizPhaseResult) {
	if t.n == 0 {
		t.load0 = p.m0.load1
	}
	t.n++
	t.load1 = p.m1.load1
	t.secs += p.WindowSeconds
	t.server += p.ServerCPUSeconds
	t.bench += p.BenchCPUSeconds
	if p.m1.total > p.m0.total {
		t.busy += p.m1.busy - p.m0.busy
		t.total += p.m1.total - p.m0.total
	}
}

func (t *phaseTotals) report(rep *Report) {
	if t.secs <= 0 {
		return
	}
	rep.ServerCPUSeconds = t.server
	rep.ServerCPUCores = t.server / t.secs
	rep.Bench.CPUSeconds = t.bench
	rep.Bench.CPUCores = t.bench / t.secs
	rep.Machine = machineReport(machineSample{load1: t.load0}, machineSample{busy: t.busy, total: t.total, load1: t.load1},
		rep.NumCPU, rep.ServerCPUCores, rep.Bench.CPUCores)
}

// measure waits for the window of sp, samples at both ends, and returns
// the window's costs.
func (b *bizRun) measure(ctx context.Context, sp *span) (bizPhaseResult, scrape, scrape, bool) {
	w0, w1, cpu0, cpu1, m0, m1, interrupted := b.r.window(ctx, sp.winStart.Load(), sp.winEnd.Load())
	var p bizPhaseResult
	p.m0, p.m1 = m0, m1
	if interrupted {
		return p, w0, w1, true
	}
	span := w1.at.Sub(w0.at).Seconds()
	p.WindowSeconds = span
	p.ServerCPUSeconds = w1.val(mCPU) - w0.val(mCPU)
	p.BenchCPUSeconds = (cpu1 - cpu0).Seconds()
	if span > 0 {
		p.ServerCPUCores = p.ServerCPUSeconds / span
		p.BenchCPUCores = p.BenchCPUSeconds / span
	}
	p.Machine = machineReport(m0, m1, runtime.NumCPU(), p.ServerCPUCores, p.BenchCPUCores)
	p.ServerWebhooksOK = w1.val(mWebhooksOK) - w0.val(mWebhooksOK)
	p.ServerWebhooksFailed = w1.val(mWebhooksFailed) - w0.val(mWebhooksFailed)
	return p, w0, w1, false
}

// webhooksPhase: customers write to the businesses at Rate messages/s;
// every message must come to the receiver, and its ✓✓ back.
func (b *bizRun) webhooksPhase(ctx context.Context, br *BusinessReport) (bizPhaseResult, error) {
	r, cfg := b.r, &b.r.cfg
	workCtx, cancelWork := context.WithCancel(ctx)
	defer cancelWork()
	b.w.set(r.now()+int64(100*time.Millisecond), cfg.Warmup, cfg.Duration)
	r.printf("webhooks: customers write %g messages/s to %d businesses, warmup %s, then %s measured\n",
		cfg.Rate, len(b.bizs), cfg.Warmup, cfg.Duration)
	var workers sync.WaitGroup
	for _, c := range b.custs {
		workers.Go(func() { b.customerSender(workCtx, c) })
	}
	workersDone := make(chan struct{})
	go func() { workers.Wait(); close(workersDone) }()
	stopProgress := b.progress(PhaseWebhooks, &b.w)

	ph, _, _, interrupted := b.measure(ctx, &b.w)
	b.wStop.Store(true)
	drained, stopped := drainUntil(ctx, cfg.Drain, 20*time.Millisecond, workersDone, func() bool {
		lost, unticked := b.wMissing()
		return lost == 0 && unticked == 0
	}, interrupted)
	stopProgress()
	cancelWork()
	<-workersDone
	if interrupted || stopped {
		return ph, ctx.Err()
	}
	win := cfg.Duration.Seconds()
	wr := &BizWebhooksReport{OfferedRate: cfg.Rate, WarmupSeconds: cfg.Warmup.Seconds(), WindowSeconds: win, DrainSeconds: drained.Seconds(),
		Scheduled: b.wTotal, Issued: b.wIssued.Load(), Durable: b.wDurable.Load(), Errors: b.wErrs.Load(), Unanswered: b.wUnanswered.Load(),
		SentInWindow: b.wSentInWin.Load(), Posted: b.wPosted.Load(), PostedInWindow: b.wPostedInWin.Load(),
		PostsInWindow: b.postsInWin[0].Load(), Duplicates: b.wDups.Load(), Ticked: b.wTicked.Load(),
		Sent: b.wSent.Summary(), Webhook: b.wHook.Summary(), Tick: b.wTick.Summary(), Lag: b.wLag.Summary()}
	wr.Lost, wr.Unticked = b.wMissing()
	wr.SentRate = float64(wr.SentInWindow) / win
	wr.PostedRate = float64(wr.PostedInWindow) / win
	wr.PostsRate = float64(wr.PostsInWindow) / win
	b.errMu.Lock()
	if len(b.wErrCodes) > 0 {
		wr.ErrorCodes = b.wErrCodes
	}
	b.errMu.Unlock()
	if wr.PostsInWindow > 0 {
		wr.ServerCPUMicrosPerPost = ph.ServerCPUSeconds / float64(wr.PostsInWindow) * 1e6
	}
	if wr.SentInWindow > 0 {
		wr.BenchCPUMicrosPerMsg = ph.BenchCPUSeconds / float64(wr.SentInWindow) * 1e6
	}
	br.Webhooks = wr
	return ph, nil
}

// customerSender sends customer c's share of the webhooks phase's
// schedule: message k is due at start + k/rate, and customer k mod N
// sends it. A late send goes at once; its latencies still count from
// when it was due.
func (b *bizRun) customerSender(ctx context.Context, c *bcust) {
	n := int64(len(b.custs))
	start := b.w.start.Load()
	buf := make([]byte, 0, 64)
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for k := int64(c.idx); k < b.wTotal && !b.wStop.Load(); k += n {
		due := start + int64(float64(k)*1e9/b.wRate)
		if !b.r.waitUntil(ctx, tm, due) {
			return
		}
		if b.w.measured(due) {
			b.wLag.Record(time.Duration(b.r.now() - due))
		}
		buf = append(buf[:0], b.wPrefix...)
		buf = strconv.AppendInt(buf, k, 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, due, 10)
		b.wIssued.Add(1)
		sent, err := c.c.Send(ctx, c.bizUser, wire.Body{Text: string(buf)})
		if err != nil {
			if ctx.Err() != nil {
				b.wUnanswered.Add(1)
				return
			}
			code, _ := classifyErr(err)
			b.wErrs.Add(1)
			b.errMu.Lock()
			b.wErrCodes[code]++
			b.errMu.Unlock()
			continue
		}
		now := b.r.now()
		b.wmsgs[k].durable.Store(true)
		b.wDurable.Add(1)
		if b.w.measured(now) {
			b.wSentInWin.Add(1)
		}
		if b.w.measured(due) {
			b.wSent.Record(time.Duration(now - due))
		}
		c.mu.Lock()
		at, early := c.early[sent.MsgID]
		if early {
			delete(c.early, sent.MsgID)
		} else {
			c.pending[sent.MsgID] = k
		}
		c.mu.Unlock()
		if early {
			b.tick(k, at)
		}
	}
}

// tick accounts for the ✓✓ of customer message k, which came at at.
func (b *bizRun) tick(k, at int64) {
	if b.wmsgs[k].ticked.Swap(true) {
		return
	}
	b.wTicked.Add(1)
	if due := b.w.start.Load() + int64(float64(k)*1e9/b.wRate); b.w.measured(due) {
		b.wTick.Record(time.Duration(at - due))
	}
}

// wMissing returns the durable customer messages not posted yet, and
// those posted without a ✓✓ yet.
func (b *bizRun) wMissing() (lost, unticked int64) {
	for k := range b.wmsgs {
		m := &b.wmsgs[k]
		if !m.durable.Load() {
			continue
		}
		if m.posted.Load() == 0 {
			lost++
		} else if !m.ticked.Load() {
			unticked++
		}
	}
	return lost, unticked
}

// hookMessage implements hookHandler: a customer's message at the receiver.
func (b *bizRun) hookMessage(_ int, text string, at int64) {
	k, due, ok := parseMarked(b.wPrefix, text)
	if !ok || k >= int64(len(b.wmsgs)) {
		b.wForeign.Add(1)
		return
	}
	if b.wmsgs[k].posted.Add(1) > 1 {
		b.wDups.Add(1)
		return
	}
	b.wPosted.Add(1)
	if b.w.measured(at) {
		b.wPostedInWin.Add(1)
	}
	if b.w.measured(due) {
		b.wHook.Record(time.Duration(at - due))
	}
}

// hookPost implements hookHandler.
func (b *bizRun) hookPost(at int64, statuses bool) {
	switch {
	case b.w.measured(at):
		b.postsInWin[0].Add(1)
	case b.s.measured(at):
		b.postsInWin[1].Add(1)
		if statuses {
			b.statusPostsWin.Add(1)
		}
	}
}

// hookStatus implements hookHandler: a status of a business's message.
func (b *bizRun) hookStatus(_ int, id, status string, at int64) {
	if b.s.measured(at) {
		b.sStatusesInWin.Add(1)
	}
	b.sMu.Lock()
	defer b.sMu.Unlock()
	rec, ok := b.sends[id]
	if !ok {
		// Its send's answer is not in yet, or it is not this run's.
		b.early[id] = append(b.early[id], earlyStatus{status: status, at: at})
		return
	}
	b.statusLocked(rec, status, at)
}

// statusLocked accounts for a status of a send this run made; b.sMu held.
func (b *bizRun) statusLocked(rec *sendRec, status string, at int64) {
	var flag *bool
	var lat *Recorder
	switch status {
	case "sent":
		flag, lat = &rec.sent, b.sSentSt
	case "delivered":
		flag, lat = &rec.delivered, b.sDeliv
	case "read":
		flag = &rec.read
	}
	if flag != nil && *flag {
		b.stDups++
		return
	}
	if flag != nil {
		*flag = true
	}
	switch status {
	case "sent", "delivered", "read", "failed":
		b.stCounts[status]++
	default:
		b.stCounts["other"]++
	}
	if lat != nil && b.s.measured(rec.at) {
		lat.Record(time.Duration(at - rec.at))
	}
}

// customerEvents times the businesses' messages a customer gets, and
// matches the ✓✓ of its own.
func (b *bizRun) customerEvents(c *bcust) {
	for f := range c.c.Events() {
		switch f.Type {
		case wire.TypeMessage:
			if f.Body == nil {
				continue
			}
			seq, at, ok := parseMarked(b.aPrefix, f.Body.Text)
			if !ok {
				continue // the webhooks phase's own, or another run's
			}
			now := b.r.now()
			if markSeen(&c.seen, seq) {
				b.sDups.Add(1)
				continue
			}
			c.received.Add(1)
			if b.s.measured(now) {
				b.sRecvInWin.Add(1)
			}
			if b.s.measured(at) {
				b.sRecv.Record(time.Duration(now - at))
			}
		case wire.TypeReceipt:
			if f.Status != wire.StatusDelivered {
				continue
			}
			now := b.r.now()
			for _, id := range f.MsgIDs {
				c.mu.Lock()
				k, ok := c.pending[id]
				if ok {
					delete(c.pending, id)
				} else {
					c.early[id] = now
				}
				c.mu.Unlock()
				if ok {
					b.tick(k, now)
				}
			}
		}
	}
}

// markSeen marks seq in a growable bitset and says whether it already was.
func markSeen(seen *[]uint64, seq int64) bool {
	w, bit := int(seq>>6), uint64(1)<<(seq&63)
	if w >= len(*seen) {
		*seen = append(*seen, make([]uint64, w+1-len(*seen)+len(*seen)/2)...)
	}
	if (*seen)[w]&bit != 0 {
		return true
	}
	(*seen)[w] |= bit
	return false
}

// sendsPhase: the businesses send to their customers through the Cloud
// API; every accepted send must reach its customer, and its statuses the
// receiver.
func (b *bizRun) sendsPhase(ctx context.Context, br *BusinessReport) (bizPhaseResult, error) {
	r, cfg := b.r, &b.r.cfg
	workCtx, cancelWork := context.WithCancel(ctx)
	defer cancelWork()
	b.s.set(r.now()+int64(100*time.Millisecond), cfg.Warmup, cfg.Duration)
	how := fmt.Sprintf("as fast as %d workers go", cfg.Inflight)
	if cfg.SendRate > 0 {
		how = fmt.Sprintf("at %g/s from %d workers", cfg.SendRate, cfg.Inflight)
	}
	r.printf("sends: %d businesses POST to their customers %s (%d node(s)), warmup %s, then %s measured\n",
		len(b.bizs), how, len(b.bases), cfg.Warmup, cfg.Duration)
	var workers sync.WaitGroup
	for range cfg.Inflight {
		workers.Go(func() { b.sendWorker(workCtx) })
	}
	workersDone := make(chan struct{})
	go func() { workers.Wait(); close(workersDone) }()
	stopProgress := b.progress(PhaseSends, &b.s)

	ph, w0, w1, interrupted := b.measure(ctx, &b.s)
	b.sStop.Store(true)
	drained, stopped := drainUntil(ctx, cfg.Drain, 20*time.Millisecond, workersDone, func() bool {
		lost, _ := b.sMissing()
		acc := b.sAccepted.Load()
		b.sMu.Lock()
		defer b.sMu.Unlock()
		return lost == 0 && b.stCounts["sent"] >= acc && b.stCounts["delivered"] >= acc
	}, interrupted)
	stopProgress()
	cancelWork()
	<-workersDone
	if interrupted || stopped {
		return ph, ctx.Err()
	}
	win := cfg.Duration.Seconds()
	sr := &BizSendsReport{Workers: cfg.Inflight, OfferedRate: cfg.SendRate, WarmupSeconds: cfg.Warmup.Seconds(), WindowSeconds: win,
		DrainSeconds: drained.Seconds(), Issued: b.sIssued.Load(), Accepted: b.sAccepted.Load(), Errors: b.sErrs.Load(),
		Unanswered: b.sUnanswered.Load(), AcceptedInWindow: b.sAcceptedInWin.Load(), ReceivedInWindow: b.sRecvInWin.Load(),
		Duplicates: b.sDups.Load(), StatusesInWindow: b.sStatusesInWin.Load(),
		Send: b.sSend.Summary(), Receive: b.sRecv.Summary(), SentSt: b.sSentSt.Summary(), Delivered: b.sDeliv.Summary()}
	if cfg.SendRate > 0 {
		sr.Lag = b.sLag.Summary()
		sr.Scheduled = bizSchedule(cfg.SendRate, cfg.Warmup+cfg.Duration)
	}
	for _, c := range b.custs {
		sr.Received += c.received.Load()
	}
	sr.Lost, sr.Unexpected = b.sMissing()
	sr.AcceptedRate = float64(sr.AcceptedInWindow) / win
	sr.ReceivedRate = float64(sr.ReceivedInWindow) / win
	sr.StatusesRate = float64(sr.StatusesInWindow) / win
	sr.StatusPostsRate = float64(b.statusPostsWin.Load()) / win
	sr.StatusesOwed = 2 * sr.Accepted
	b.sMu.Lock()
	sr.StatusesSent, sr.StatusesDelivered, sr.StatusesRead = b.stCounts["sent"], b.stCounts["delivered"], b.stCounts["read"]
	sr.StatusesFailed, sr.StatusesOther, sr.StatusDuplicates = b.stCounts["failed"], b.stCounts["other"], b.stDups
	for _, es := range b.early {
		sr.StatusesForeign += int64(len(es))
	}
	b.sMu.Unlock()
	b.errMu.Lock()
	if len(b.sErrCodes) > 0 {
		sr.ErrorCodes = b.sErrCodes
	}
	b.errMu.Unlock()
	if n := w1.val(mBizSendCount) - w0.val(mBizSendCount); n > 0 {
		sr.ServerSendMs = (w1.val(mBizSendSum) - w0.val(mBizSendSum)) / n * 1e3
	}
	if sr.AcceptedInWindow > 0 {
		sr.ServerCPUMicrosPerSend = ph.ServerCPUSeconds / float64(sr.AcceptedInWindow) * 1e6
		sr.BenchCPUMicrosPerSend = ph.BenchCPUSeconds / float64(sr.AcceptedInWindow) * 1e6
	}
	br.Sends = sr
	return ph, nil
}

// sMissing returns the accepted sends no customer got yet, and the
// messages customers got that no 200 answered.
func (b *bizRun) sMissing() (lost, unexpected int64) {
	for _, c := range b.custs {
		d := c.accepted.Load() - c.received.Load()
		if d > 0 {
			lost += d
		} else {
			unexpected -= d
		}
	}
	return lost, unexpected
}

// graphRateLimited is the error code of a send over the number's rate,
// and rateLimitedPause how long a closed-loop worker waits after one, as
// a client that honours it would: without it, workers refused at once
// fire thousands of requests a second at a number capped at 1,000, and
// the server's CPU goes to refusing them. The bucket's burst (a second's
// worth) keeps the accepted rate at the cap meanwhile.
const (
	graphRateLimited = "graph_130429"
	rateLimitedPause = 50 * time.Millisecond
)

// sendWorker POSTs the businesses' messages: the k-th send of the phase
// goes from business k mod B to its customers in turn, through node k
// mod nodes. Closed loop, each worker sends when its last was answered
// (or 50 ms after a 130429); open loop (SendRate), the k-th send is due
// at start + k/rate and its latencies count from then.
func (b *bizRun) sendWorker(ctx context.Context) {
	cfg := &b.r.cfg
	B := int64(len(b.bizs))
	start, winEnd := b.s.start.Load(), b.s.winEnd.Load()
	buf := make([]byte, 0, 64)
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for ctx.Err() == nil && !b.sStop.Load() {
		k := b.sNext.Add(1) - 1
		at := b.r.now()
		if cfg.SendRate > 0 {
			at = start + int64(float64(k)*1e9/cfg.SendRate)
			if at >= winEnd {
				return
			}
			if !b.r.waitUntil(ctx, tm, at) {
				return
			}
			if b.s.measured(at) {
				b.sLag.Record(time.Duration(b.r.now() - at))
			}
		}
		bi := k % B
		list := b.custsOf[bi]
		c := list[(k/B)%int64(len(list))]
		seq := c.seq.Add(1) - 1
		buf = append(buf[:0], b.aPrefix...)
		buf = strconv.AppendInt(buf, seq, 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, at, 10)
		b.sIssued.Add(1)
		wamid, code, err := b.post(ctx, b.bases[k%int64(len(b.bases))], b.bizs[bi], c.phone, string(buf))
		now := b.r.now()
		if err != nil {
			if ctx.Err() != nil {
				b.sUnanswered.Add(1)
				return
			}
			b.sErrs.Add(1)
			b.errMu.Lock()
			b.sErrCodes[code]++
			b.errMu.Unlock()
			if code == graphRateLimited && cfg.SendRate == 0 && !sleepCtx(ctx, rateLimitedPause) {
				return
			}
			continue
		}
		c.accepted.Add(1)
		b.sAccepted.Add(1)
		if b.s.measured(now) {
			b.sAcceptedInWin.Add(1)
		}
		if b.s.measured(at) {
			b.sSend.Record(time.Duration(now - at))
		}
		b.sMu.Lock()
		rec := &sendRec{at: at}
		b.sends[wamid] = rec
		if es, ok := b.early[wamid]; ok {
			delete(b.early, wamid)
			for _, e := range es {
				b.statusLocked(rec, e.status, e.at)
			}
		}
		b.sMu.Unlock()
	}
}

// bizSendBody is a Cloud API text send.
type bizSendBody struct {
	MessagingProduct string `json:"messaging_product"`
	RecipientType    string `json:"recipient_type"`
	To               string `json:"to"`
	Type             string `json:"type"`
	Text             struct {
		Body string `json:"body"`
	} `json:"text"`
}

// post sends one text message as business bz; it returns the message's
// wamid, or the error's code for the report (graph_<code>, http_<status>
// or transport).
func (b *bizRun) post(ctx context.Context, base string, bz bizCreds, to, text string) (string, string, error) {
	body := bizSendBody{MessagingProduct: "whatsapp", RecipientType: "individual", To: to, Type: "text"}
	body.Text.Body = text
	data, err := json.Marshal(body)
	if err != nil {
		return "", "marshal", err
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, base+"/"+GraphVersion+"/"+bz.PhoneNumberID+"/messages", bytes.NewReader(data))
	if err != nil {
		return "", "request", err
	}
	req.Header.Set("Authorization", "Bearer "+bz.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	resp, err := b.hc.Do(req)
	if err != nil {
		return "", "transport", err
	}
	defer resp.Body.Close()
	out, err := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	if err != nil {
		return "", "transport", err
	}
	var ans struct {
		Messages []struct {
			ID string `json:"id"`
		} `json:"messages"`
		Error *struct {
			Code int `json:"code"`
		} `json:"error"`
	}
	jerr := json.Unmarshal(out, &ans)
	if resp.StatusCode == http.StatusOK && jerr == nil && len(ans.Messages) == 1 && ans.Messages[0].ID != "" {
		return ans.Messages[0].ID, "", nil
	}
	if jerr == nil && ans.Error != nil {
		return "", "graph_" + strconv.Itoa(ans.Error.Code), fmt.Errorf("send: %d: %s", resp.StatusCode, out)
	}
	return "", "http_" + strconv.Itoa(resp.StatusCode), fmt.Errorf("send: %d: %s", resp.StatusCode, out)
}

// progress prints a line every 5 s.
func (b *bizRun) progress(phase string, sp *span) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(5 * time.Second)
		defer tk.Stop()
		var lastA, lastB int64
		lastAt := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-tk.C:
				stage := "warmup"
				switch at := b.r.now(); {
				case at >= sp.winEnd.Load():
					stage = "drain"
				case at >= sp.winStart.Load():
					stage = "measure"
				}
				el := now.Sub(lastAt).Seconds()
				if phase == PhaseWebhooks {
					s, p := b.wDurable.Load(), b.wPosted.Load()
					lost, unticked := b.wMissing()
					b.r.printf("  %-7s sent %d (%.0f/s), posted %d (%.0f/s), awaited %d posts and %d ✓✓, errors %d\n",
						stage, s, float64(s-lastA)/el, p, float64(p-lastB)/el, lost, unticked, b.wErrs.Load())
					lastA, lastB = s, p
				} else {
					a := b.sAccepted.Load()
					var rcv int64
					for _, c := range b.custs {
						rcv += c.received.Load()
					}
					b.sMu.Lock()
					st := b.stCounts["sent"] + b.stCounts["delivered"]
					b.sMu.Unlock()
					b.r.printf("  %-7s accepted %d (%.0f/s), received %d (%.0f/s), statuses posted %d of %d, errors %d\n",
						stage, a, float64(a-lastA)/el, rcv, float64(rcv-lastB)/el, st, 2*a, b.sErrs.Load())
					lastA, lastB = a, rcv
				}
				lastAt = now
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}
