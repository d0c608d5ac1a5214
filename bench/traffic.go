package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/wire"
)

// TrafficReport is what the closed and rate modes measured. Counts named
// ...InWindow cover the measured window only; the others the whole run,
// warmup and drain included. Latencies cover the messages sent (in rate
// mode: scheduled) inside the window, wherever they completed.
type TrafficReport struct {
	Pairs         int     `json:"pairs"`
	Inflight      int     `json:"inflight"`
	OfferedRate   float64 `json:"offered_rate,omitempty"` // rate mode
	WarmupSeconds float64 `json:"warmup_seconds"`
	WindowSeconds float64 `json:"window_seconds"`

	SentInWindow      int64   `json:"sent_in_window"`      // sends started (rate: scheduled) in the window
	CompletedInWindow int64   `json:"completed_in_window"` // delivered receipts that arrived in the window
	SendRate          float64 `json:"send_rate"`           // SentInWindow per second
	CompletedRate     float64 `json:"completed_rate"`      // CompletedInWindow per second
	ServerSentRate    float64 `json:"server_sent_rate"`    // tern_messages_sent_total over the window

	Issued            int64            `json:"issued"`    // sends started
	Durable           int64            `json:"durable"`   // answered sent
	Received          int64            `json:"received"`  // distinct messages at receivers
	Delivered         int64            `json:"delivered"` // delivered receipts matched to a send
	Errors            int64            `json:"errors"`    // sends answered with an error, and unsolicited error frames
	ErrorCodes        map[string]int64 `json:"error_codes,omitempty"`
	Unanswered        int64            `json:"unanswered"`   // sends cut off at the end with no answer
	Lost              int64            `json:"lost"`         // durable, but no delivered receipt by the end
	NotReceived       int64            `json:"not_received"` // durable, but never seen by the receiver
	Duplicates        int64            `json:"duplicates"`   // a message the receiver's application saw twice
	SDKDuplicates     int64            `json:"sdk_duplicates"`
	Reconnects        int64            `json:"reconnects"`
	Resends           int64            `json:"resends"`
	UnmatchedReceipts int64            `json:"unmatched_receipts"` // receipts for msg_ids this run did not send
	ForeignMessages   int64            `json:"foreign_messages"`   // messages from other runs (reused sessions)

	Sent      Summary  `json:"send_to_sent"`
	Recv      Summary  `json:"send_to_received"`
	Delivery  Summary  `json:"send_to_delivered"`
	Lag       *Summary `json:"schedule_lag,omitempty"` // rate mode: how late sends started
	DrainSecs float64  `json:"drain_seconds"`
}

// maxSeq bounds the per-pair sequence numbers the duplicate check tracks
// (a bit each): 16 million messages per pair.
const maxSeq = 1 << 24

// pair is one sender device and the receiver device it writes to.
type pair struct {
	idx      int
	snd, rcv *client.Client
	to       string // the receiver's user id

	seq atomic.Int64 // next sequence number (rate mode: next slot of the schedule)

	mu      sync.Mutex
	pending map[string]pend  // msg_id → message, answered sent, not yet delivered
	early   map[string]int64 // msg_id → when its receipt came, before its sent was seen
	done    []chan struct{}  // per closed-mode worker, cap 1: its message was delivered

	seen []uint64 // receiver goroutine only: bitset of sequence numbers received
}

type pend struct {
	at     int64 // send (rate: scheduled) time, run clock
	worker int32
}

// traffic is the state of a closed or rate run.
type traffic struct {
	r      *runner
	pairs  []*pair
	prefix string // "tb <nonce> ": marks this run's messages
	pad    string

	start, winStart, winEnd int64 // run clock
	stop                    atomic.Bool

	sent, recv, deliv, lag *Recorder

	issued, durable, received, delivered   atomic.Int64
	errs, unanswered, dups, foreign        atomic.Int64
	sentInWin, completedInWin, outstanding atomic.Int64
	errMu                                  sync.Mutex
	errCodes                               map[string]int64
}

func (t *traffic) measured(at int64) bool { return at >= t.winStart && at < t.winEnd }

func (r *runner) traffic(ctx context.Context, rep *Report) error {
	cfg := r.cfg
	clients, prov, err := r.provision(ctx, 2*cfg.Pairs, 1, r.clientOptions(128, 4096))
	rep.Provision = prov
	if err != nil {
		return err
	}
	defer closeAll(clients)

	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	t := &traffic{r: r, prefix: "tb " + hex.EncodeToString(nonce[:]) + " ",
		sent: NewRecorder(), recv: NewRecorder(), deliv: NewRecorder(),
		errCodes: make(map[string]int64)}
	if cfg.Mode == ModeRate {
		t.lag = NewRecorder()
	}
	if n := cfg.Size - 40; n > 0 {
		t.pad = strings.Repeat("x", n)
	}
	for i := range cfg.Pairs {
		p := &pair{idx: i, snd: clients[2*i], rcv: clients[2*i+1], to: clients[2*i+1].Session().UserID,
			pending: make(map[string]pend), early: make(map[string]int64)}
		if cfg.Mode == ModeClosed {
			p.done = make([]chan struct{}, cfg.Inflight)
			for w := range p.done {
				p.done[w] = make(chan struct{}, 1)
			}
		}
		t.pairs = append(t.pairs, p)
	}

	conn, err := r.connectAll(ctx, clients, true)
	rep.Connect = conn
	if err != nil {
		return err
	}
	var events sync.WaitGroup
	for _, p := range t.pairs {
		events.Go(func() { t.senderEvents(p) })
		events.Go(func() { t.receiverEvents(p) })
	}
	before := r.scrape(ctx, "before traffic")

	workCtx, cancelWork := context.WithCancel(ctx)
	defer cancelWork()
	t.start = r.now() + int64(100*time.Millisecond)
	t.winStart = t.start + int64(cfg.Warmup)
	t.winEnd = t.winStart + int64(cfg.Duration)
	r.printf("traffic: warmup %s, then %s measured\n", cfg.Warmup, cfg.Duration)

	var workers sync.WaitGroup
	for _, p := range t.pairs {
		for w := range cfg.Inflight {
			if cfg.Mode == ModeClosed {
				workers.Go(func() { t.closedWorker(workCtx, p, w) })
			} else {
				workers.Go(func() { t.rateWorker(workCtx, p) })
			}
		}
	}
	workersDone := make(chan struct{})
	go func() { workers.Wait(); close(workersDone) }()
	stopProgress := t.progress()

	w0, w1, cpu0, cpu1, m0, m1, interrupted := r.window(ctx, t.winStart, t.winEnd)
	t.stop.Store(true)

	// Drain: let what is in flight finish, up to cfg.Drain.
	drained, stopped := drainUntil(ctx, cfg.Drain, 10*time.Millisecond, workersDone, func() bool { return t.outstanding.Load() == 0 }, interrupted)
	interrupted = interrupted || stopped
	stopProgress()
	end := r.scrape(context.WithoutCancel(ctx), "end")
	cancelWork()
	<-workersDone
	closeAll(clients)
	events.Wait()
	if interrupted {
		return ctx.Err()
	}

	win := cfg.Duration.Seconds()
	tr := &TrafficReport{Pairs: cfg.Pairs, Inflight: cfg.Inflight, WarmupSeconds: cfg.Warmup.Seconds(),
		WindowSeconds: win, DrainSecs: drained.Seconds(),
		SentInWindow: t.sentInWin.Load(), CompletedInWindow: t.completedInWin.Load(),
		Issued: t.issued.Load(), Durable: t.durable.Load(), Received: t.received.Load(),
		Delivered: t.delivered.Load(), Errors: t.errs.Load(), Unanswered: t.unanswered.Load(),
		Duplicates: t.dups.Load(), ForeignMessages: t.foreign.Load(),
		Sent: t.sent.Summary(), Recv: t.recv.Summary(), Delivery: t.deliv.Summary()}
	if cfg.Mode == ModeRate {
		tr.OfferedRate = cfg.Rate
		s := t.lag.Summary()
		tr.Lag = &s
	}
	tr.SendRate = float64(tr.SentInWindow) / win
	tr.CompletedRate = float64(tr.CompletedInWindow) / win
	tr.ServerSentRate = (w1.val(mSent) - w0.val(mSent)) / win
	if len(t.errCodes) > 0 {
		tr.ErrorCodes = t.errCodes
	}
	for _, p := range t.pairs {
		tr.Lost += int64(len(p.pending))
		tr.UnmatchedReceipts += int64(len(p.early))
	}
	tr.NotReceived = max(0, tr.Durable-tr.Received)
	for _, c := range clients {
		st := c.Stats()
		tr.SDKDuplicates += st.Duplicates
		tr.Reconnects += st.Reconnects
		tr.Resends += st.Resends
	}
	rep.Traffic = tr
	b := sampleOf(before)
	rep.ServerBefore = &b
	rep.Server = sampleOf(end)
	span := w1.at.Sub(w0.at).Seconds()
	rep.Bench.CPUSeconds = (cpu1 - cpu0).Seconds()
	if span > 0 {
		rep.Bench.CPUCores = rep.Bench.CPUSeconds / span
		rep.ServerCPUCores = (w1.val(mCPU) - w0.val(mCPU)) / span
	}
	rep.Machine = machineReport(m0, m1, rep.NumCPU, rep.ServerCPUCores, rep.Bench.CPUCores)
	if tr.CompletedInWindow > 0 {
		n := float64(tr.CompletedInWindow)
		rep.Bench.CPUMicrosPerMsg = rep.Bench.CPUSeconds / n * 1e6
		rep.ServerCPUMicrosPerMsg = (w1.val(mCPU) - w0.val(mCPU)) / n * 1e6
	}
	return nil
}

// sleepUntil sleeps until the run clock reads at; false if ctx ended first.
func (r *runner) sleepUntil(ctx context.Context, at int64) bool {
	if d := at - r.now(); d > 0 {
		return sleepCtx(ctx, time.Duration(d))
	}
	return ctx.Err() == nil
}

// progress prints a line every 5 s: what completed, how fast, what waits.
func (t *traffic) progress() (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(5 * time.Second)
		defer tk.Stop()
		var last int64
		lastAt := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-tk.C:
				d := t.delivered.Load()
				phase := "warmup"
				switch at := t.r.now(); {
				case at >= t.winEnd:
					phase = "drain"
				case at >= t.winStart:
					phase = "measure"
				}
				t.r.printf("  %-7s delivered %d (%.0f/s), outstanding %d, errors %d\n",
					phase, d, float64(d-last)/now.Sub(lastAt).Seconds(), t.outstanding.Load(), t.errs.Load())
				last, lastAt = d, now
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// closedWorker keeps one message of p outstanding: it sends, waits for
// the delivered receipt, and sends the next, until stop.
func (t *traffic) closedWorker(ctx context.Context, p *pair, w int) {
	buf := make([]byte, 0, 64+len(t.pad))
	for !t.stop.Load() && ctx.Err() == nil {
		seq := p.seq.Add(1) - 1
		at := t.r.now()
		ok, retry := t.sendOne(ctx, p, int32(w), seq, at, buf)
		if !ok {
			if !sleepCtx(ctx, retry) {
				return
			}
			continue
		}
		select {
		case <-p.done[w]:
		case <-ctx.Done():
			return
		}
	}
}

// rateWorker sends p's share of the schedule: pair i's k-th message is
// due at start + (k·pairs + i)/rate, so the senders' messages interleave
// evenly. The pair's workers take the next slot in turn, so a slow send
// holds up only itself until all of them are busy. A late send goes at
// once; its latencies still count from when it was due.
func (t *traffic) rateWorker(ctx context.Context, p *pair) {
	buf := make([]byte, 0, 64+len(t.pad))
	cfg := &t.r.cfg
	npairs := float64(len(t.pairs))
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for {
		k := p.seq.Add(1) - 1
		due := t.start + int64((float64(k)*npairs+float64(p.idx))*1e9/cfg.Rate)
		if due >= t.winEnd || t.stop.Load() {
			return
		}
		if d := due - t.r.now(); d > 0 {
			tm.Reset(time.Duration(d))
			select {
			case <-tm.C:
			case <-ctx.Done():
				return
			}
		}
		if t.measured(due) {
			t.lag.Record(time.Duration(t.r.now() - due))
		}
		t.sendOne(ctx, p, -1, k, due, buf)
	}
}

// sendOne sends message seq of p, stamped with at, and waits for its sent
// answer. ok reports it is durable (and now pending, or already
// delivered); otherwise retry says how long a closed-loop worker should
// wait before the next.
func (t *traffic) sendOne(ctx context.Context, p *pair, w int32, seq, at int64, buf []byte) (ok bool, retry time.Duration) {
	buf = append(buf[:0], t.prefix...)
	buf = strconv.AppendInt(buf, seq, 10)
	buf = append(buf, ' ')
	buf = strconv.AppendInt(buf, at, 10)
	if t.pad != "" {
		buf = append(buf, ' ')
		buf = append(buf, t.pad...)
	}
	t.issued.Add(1)
	if t.measured(at) {
		t.sentInWin.Add(1)
	}
	t.outstanding.Add(1)
	s, err := p.snd.Send(ctx, p.to, wire.Body{Text: string(buf)})
	if err != nil {
		t.outstanding.Add(-1)
		if ctx.Err() != nil {
			t.unanswered.Add(1)
			return false, 0
		}
		return false, t.recordErr(err)
	}
	now := t.r.now()
	t.durable.Add(1)
	if t.measured(at) {
		t.sent.Record(time.Duration(now - at))
	}
	pd := pend{at: at, worker: w}
	p.mu.Lock()
	d, early := p.early[s.MsgID]
	if early {
		delete(p.early, s.MsgID)
	} else {
		p.pending[s.MsgID] = pd
	}
	p.mu.Unlock()
	if early {
		t.complete(p, pd, d)
	}
	return true, 0
}

// complete accounts for a delivered receipt that arrived at run time d.
func (t *traffic) complete(p *pair, pd pend, d int64) {
	t.delivered.Add(1)
	t.outstanding.Add(-1)
	if t.measured(pd.at) {
		t.deliv.Record(time.Duration(d - pd.at))
	}
	if t.measured(d) {
		t.completedInWin.Add(1)
	}
	if pd.worker >= 0 && p.done != nil {
		select {
		case p.done[pd.worker] <- struct{}{}:
		default:
		}
	}
}

func (t *traffic) recordErr(err error) (retry time.Duration) {
	t.errs.Add(1)
	code, retry := classifyErr(err)
	t.errMu.Lock()
	t.errCodes[code]++
	t.errMu.Unlock()
	return retry
}

// classifyErr names a send's failure for the report (the server's error
// code, or transport or client_stopped) and says how long to wait before
// the next send.
func classifyErr(err error) (code string, retry time.Duration) {
	code = "transport"
	retry = 10 * time.Millisecond
	var werr *wire.Error
	switch {
	case errors.As(err, &werr):
		code = werr.Code
		if werr.RetryAfter > 0 {
			retry = time.Duration(werr.RetryAfter) * time.Second
		}
	case errors.Is(err, client.ErrClosed), errors.Is(err, client.ErrSignedOut), errors.Is(err, client.ErrReplaced):
		code = "client_stopped"
		retry = time.Second
	}
	return code, retry
}

// senderEvents matches delivered receipts to pending messages.
func (t *traffic) senderEvents(p *pair) {
	for f := range p.snd.Events() {
		switch f.Type {
		case wire.TypeReceipt:
			if f.Status != wire.StatusDelivered {
				continue
			}
			now := t.r.now()
			for _, id := range f.MsgIDs {
				p.mu.Lock()
				pd, ok := p.pending[id]
				if ok {
					delete(p.pending, id)
				} else {
					p.early[id] = now
				}
				p.mu.Unlock()
				if ok {
					t.complete(p, pd, now)
				}
			}
		case wire.TypeError:
			t.recordErr(&wire.Error{Code: f.Code, Message: f.Message})
		}
	}
}

// receiverEvents checks and times the messages a receiver gets.
func (t *traffic) receiverEvents(p *pair) {
	for f := range p.rcv.Events() {
		switch f.Type {
		case wire.TypeMessage:
			if f.Body == nil {
				t.foreign.Add(1)
				continue
			}
			seq, at, ok := t.parseBody(f.Body.Text)
			if !ok {
				t.foreign.Add(1)
				continue
			}
			now := t.r.now()
			if p.seenBefore(seq) {
				t.dups.Add(1)
				continue
			}
			t.received.Add(1)
			if t.measured(at) {
				t.recv.Record(time.Duration(now - at))
			}
		case wire.TypeError:
			t.recordErr(&wire.Error{Code: f.Code, Message: f.Message})
		}
	}
}

// parseBody reads "tb <nonce> <seq> <at>[ pad]" without allocating.
func (t *traffic) parseBody(text string) (seq, at int64, ok bool) { return parseMarked(t.prefix, text) }

// parseMarked reads "<prefix><seq> <at>[ pad]" without allocating.
func parseMarked(prefix, text string) (seq, at int64, ok bool) {
	if !strings.HasPrefix(text, prefix) {
		return 0, 0, false
	}
	rest := text[len(prefix):]
	seq, rest, ok = leadingInt(rest)
	if !ok || seq >= maxSeq || len(rest) == 0 || rest[0] != ' ' {
		return 0, 0, false
	}
	at, _, ok = leadingInt(rest[1:])
	return seq, at, ok
}

func leadingInt(s string) (n int64, rest string, ok bool) {
	i := 0
	for i < len(s) && i < 18 && isDigit(s[i]) {
		n = n*10 + int64(s[i]-'0')
		i++
	}
	return n, s[i:], i > 0
}

// seenBefore marks seq as received and reports whether it already was.
func (p *pair) seenBefore(seq int64) bool {
	w, bit := int(seq>>6), uint64(1)<<(seq&63)
	if w >= len(p.seen) {
		p.seen = append(p.seen, make([]uint64, w+1-len(p.seen)+len(p.seen)/2)...)
	}
	if p.seen[w]&bit != 0 {
		return true
	}
	p.seen[w] |= bit
	return false
}
