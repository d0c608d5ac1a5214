package bench

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"fmt"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/wire"
)

// GroupReport is what group mode measured. Counts named ...InWindow cover
// the measured window (by when they happened); the others the whole run,
// warmup and drain included. Latencies cover the messages due in the
// window, wherever they completed, and count from the due time.
type GroupReport struct {
	ChatID           string  `json:"chat_id"`
	Members          int     `json:"members"`
	DevicesPerMember int     `json:"devices_per_member"`
	ConnectedMembers int     `json:"connected_members"`
	ConnectedDevices int     `json:"connected_devices"`
	OfflineDevices   int     `json:"offline_devices"` // signed in, never connected
	Senders          int     `json:"senders"`
	Inflight         int     `json:"inflight"`
	OfferedRate      float64 `json:"offered_rate"` // group messages per second
	CreateSeconds    float64 `json:"create_seconds"`
	WarmupSeconds    float64 `json:"warmup_seconds"`
	WindowSeconds    float64 `json:"window_seconds"`
	DrainSeconds     float64 `json:"drain_seconds"`

	SentInWindow       int64   `json:"sent_in_window"`       // sent answers that came in the window
	SentRate           float64 `json:"sent_rate"`            // group messages answered sent per second
	DeliveriesInWindow int64   `json:"deliveries_in_window"` // message frames at connected devices in the window
	DeliveryRate       float64 `json:"delivery_rate"`        // per second
	ServerSentRate     float64 `json:"server_sent_rate"`     // tern_messages_sent_total over the window

	// Scheduled is the messages due before the end of the window; those
	// not Issued by then never went out (the senders fell behind: an
	// overloaded server answers each sender's sends one after another).
	Scheduled int64 `json:"scheduled"`
	Issued    int64 `json:"issued"`  // sends started
	Durable   int64 `json:"durable"` // answered sent
	// ExpectedPerMessage is the connected devices less the sending one.
	ExpectedPerMessage int   `json:"expected_per_message"`
	ExpectedDeliveries int64 `json:"expected_deliveries"` // Durable × ExpectedPerMessage
	// Deliveries counts distinct (device, message) pairs: message frames
	// of this run's messages at connected devices, the sending device
	// excluded, each message counted once per device.
	Deliveries int64 `json:"deliveries"`
	// Lost is what durable messages still lacked after the drain: expected
	// deliveries that never came. Incomplete is how many messages that was.
	Lost       int64 `json:"lost"`
	Incomplete int64 `json:"incomplete"`
	// Complete is how many messages reached every connected device.
	Complete int64 `json:"complete"`
	// Echoes are messages the sending device got back itself (it should
	// not: only the sender's other devices get a copy).
	Echoes     int64            `json:"echoes"`
	Duplicates int64            `json:"duplicates"` // a message one device's application saw twice
	Errors     int64            `json:"errors"`
	ErrorCodes map[string]int64 `json:"error_codes,omitempty"`
	Unanswered int64            `json:"unanswered"` // sends cut off at the end with no answer
	Foreign    int64            `json:"foreign_messages"`

	// Receipts are the receipt frames at the authors' devices; ReceiptIDs
	// the msg_ids they carried (a receipt may cover several messages), and
	// ReceiptPairs the (message, reader) pairs they told of (a coalesced
	// receipt of a large group names several readers).
	Receipts      int64 `json:"receipts"`
	ReceiptIDs    int64 `json:"receipt_msg_ids"`
	ReceiptPairs  int64 `json:"receipt_pairs"`
	SDKDuplicates int64 `json:"sdk_duplicates"`
	Reconnects    int64 `json:"reconnects"`
	Resends       int64 `json:"resends"`

	Sent Summary `json:"due_to_sent"`
	Last Summary `json:"due_to_last_device"` // until every connected device had it
	Each Summary `json:"due_to_each_device"` // every single delivery
	Lag  Summary `json:"schedule_lag"`

	// Server is what the server's /metrics tell per group message over the
	// window; nil if it exposes none of it.
	Server *GroupServerCost `json:"server_per_message,omitempty"`
}

// GroupServerCost divides the server's own counters over the measured
// window by the group messages it answered sent in it. Times are wall
// time spent in those calls (waiting for the disk included), not CPU.
type GroupServerCost struct {
	// SendMs is the mean time from a send frame to its sent answer being
	// queued (tern_send_seconds): storing the message and one inbox event
	// per recipient device, durably, and routing them.
	SendMs float64 `json:"send_ms"`
	// RouteMs is the routing share (tern_route_seconds; acks' receipts
	// included), StoreAckMs and StoreInboxMs the time in store calls that
	// apply acks and read inboxes (tern_store_seconds), per message.
	RouteMs      float64 `json:"route_ms"`
	StoreAckMs   float64 `json:"store_ack_ms"`
	StoreAcks    float64 `json:"store_acks"`
	StoreInboxMs float64 `json:"store_inbox_ms"`
	EventsAcked  float64 `json:"events_acked"`       // tern_events_acked_total
	Receipts     float64 `json:"delivered_receipts"` // tern_receipts_total{status="delivered"}
	FramesOut    float64 `json:"frames_out"`         // tern_frames_out_total
}

// gmsg is one group message's progress; the k-th of the run is gmsgs[k].
type gmsg struct {
	got     atomic.Int32 // connected devices that have it
	durable atomic.Bool
}

// gdev is one connected device.
type gdev struct {
	c      *client.Client
	member int
	id     string // device id
	seen   []uint64
}

// group is the state of a group run.
type group struct {
	r      *runner
	chatID string
	prefix string
	pad    string
	msgs   []gmsg
	expect int32 // deliveries per message
	devs   []*gdev
	next   atomic.Int64 // message numbers handed out, for the drain check

	start, winStart, winEnd int64
	stop                    atomic.Bool

	sent, last, each, lag *Recorder

	issued, durable, deliveries, complete   atomic.Int64
	sentInWin, delivInWin                   atomic.Int64
	errs, unanswered, dups, foreign, echoes atomic.Int64
	receipts, receiptIDs, receiptPairs      atomic.Int64
	errMu                                   sync.Mutex
	errCodes                                map[string]int64
}

func (g *group) measured(at int64) bool { return at >= g.winStart && at < g.winEnd }

func (r *runner) group(ctx context.Context, rep *Report) error {
	cfg := r.cfg
	D := cfg.GroupDevices
	// Offline devices never read, connected ones see bursts of the whole
	// group's traffic; the event buffer is allocated up front for all.
	clients, prov, err := r.provision(ctx, cfg.GroupMembers*D, D, r.clientOptions(64, 2048))
	rep.Provision = prov
	if err != nil {
		return err
	}
	defer closeAll(clients)
	for m := range cfg.GroupMembers {
		u := clients[m*D].Session().UserID
		for d := 1; d < D; d++ {
			if got := clients[m*D+d].Session().UserID; got != u {
				return fmt.Errorf("member %d: device %d is user %s, device 0 user %s (a sessions file of another layout?)", m, d, got, u)
			}
		}
	}

	// One POST: the creator and GroupMembers-1 others.
	var nonce [6]byte
	_, _ = rand.Read(nonce[:])
	ids := make([]string, 0, cfg.GroupMembers-1)
	for m := 1; m < cfg.GroupMembers; m++ {
		ids = append(ids, clients[m*D].Session().UserID)
	}
	t0 := time.Now()
	cctx, cancel := context.WithTimeout(ctx, time.Minute)
	gr, err := clients[0].CreateGroup(cctx, "bench "+hex.EncodeToString(nonce[:]), "tern bench group mode", ids)
	cancel()
	if err != nil {
		return fmt.Errorf("create group: %w", err)
	}
	createSecs := time.Since(t0).Seconds()
	if len(gr.Members) != cfg.GroupMembers {
		return fmt.Errorf("create group: %d members, want %d (not added: %v)", len(gr.Members), cfg.GroupMembers, gr.NotAdded)
	}
	r.printf("group: %s with %d members in %s\n", gr.ChatID, len(gr.Members), time.Duration(createSecs*float64(time.Second)).Round(time.Millisecond))

	nconn := cfg.GroupConnected * D
	g := &group{r: r, chatID: gr.ChatID, prefix: "tg " + hex.EncodeToString(nonce[:]) + " ",
		msgs:   make([]gmsg, int(cfg.Rate*(cfg.Warmup+cfg.Duration).Seconds())+cfg.GroupSenders+1),
		expect: int32(nconn - 1),
		sent:   NewRecorder(), last: NewRecorder(), each: NewRecorder(), lag: NewRecorder(),
		errCodes: make(map[string]int64)}
	if n := cfg.Size - 40; n > 0 {
		g.pad = strings.Repeat("x", n)
	}
	words := len(g.msgs)/64 + 1
	for i := range nconn {
		c := clients[i]
		g.devs = append(g.devs, &gdev{c: c, member: i / D, id: c.Session().DeviceID, seen: make([]uint64, words)})
	}

	conn, err := r.connectAll(ctx, clients[:nconn], true)
	rep.Connect = conn
	if err != nil {
		return err
	}
	r.printf("group: %d members × %d devices connected (%d sockets), %d devices offline, %d senders\n",
		cfg.GroupConnected, D, nconn, len(clients)-nconn, cfg.GroupSenders)
	var events sync.WaitGroup
	for _, d := range g.devs {
		events.Go(func() { g.deviceEvents(d) })
	}
	before := r.scrape(ctx, "before traffic")

	workCtx, cancelWork := context.WithCancel(ctx)
	defer cancelWork()
	g.start = r.now() + int64(100*time.Millisecond)
	g.winStart = g.start + int64(cfg.Warmup)
	g.winEnd = g.winStart + int64(cfg.Duration)
	r.printf("traffic: %g group messages/s, warmup %s, then %s measured\n", cfg.Rate, cfg.Warmup, cfg.Duration)

	var workers sync.WaitGroup
	for s := range cfg.GroupSenders {
		var slot atomic.Int64
		for range cfg.Inflight {
			workers.Go(func() { g.sender(workCtx, g.devs[s*D], s, &slot) })
		}
	}
	workersDone := make(chan struct{})
	go func() { workers.Wait(); close(workersDone) }()
	stopProgress := g.progress()

	w0, w1, cpu0, cpu1, m0, m1, interrupted := r.window(ctx, g.winStart, g.winEnd)
	g.stop.Store(true)

	// Drain: wait until every durable message reached every connected
	// device, up to cfg.Drain.
	drained, stopped := drainUntil(ctx, cfg.Drain, 20*time.Millisecond, workersDone, func() bool { lost, _ := g.missing(); return lost == 0 }, interrupted)
	interrupted = interrupted || stopped
	stopProgress()
	end := r.scrape(context.WithoutCancel(ctx), "end")
	cancelWork()
	<-workersDone
	closeAll(clients[:nconn])
	events.Wait()
	if interrupted {
		return ctx.Err()
	}

	win := cfg.Duration.Seconds()
	gp := &GroupReport{ChatID: g.chatID, Members: cfg.GroupMembers, DevicesPerMember: D,
		ConnectedMembers: cfg.GroupConnected, ConnectedDevices: nconn, OfflineDevices: len(clients) - nconn,
		Senders: cfg.GroupSenders, Inflight: cfg.Inflight, OfferedRate: cfg.Rate, CreateSeconds: createSecs,
		WarmupSeconds: cfg.Warmup.Seconds(), WindowSeconds: win, DrainSeconds: drained.Seconds(),
		SentInWindow: g.sentInWin.Load(), DeliveriesInWindow: g.delivInWin.Load(),
		Issued: g.issued.Load(), Durable: g.durable.Load(), ExpectedPerMessage: int(g.expect),
		Deliveries: g.deliveries.Load(), Complete: g.complete.Load(), Echoes: g.echoes.Load(), Duplicates: g.dups.Load(),
		Errors: g.errs.Load(), Unanswered: g.unanswered.Load(), Foreign: g.foreign.Load(),
		Receipts: g.receipts.Load(), ReceiptIDs: g.receiptIDs.Load(), ReceiptPairs: g.receiptPairs.Load(),
		Sent: g.sent.Summary(), Last: g.last.Summary(), Each: g.each.Summary(), Lag: g.lag.Summary()}
	gp.ExpectedDeliveries = gp.Durable * int64(g.expect)
	gp.Scheduled = g.scheduled()
	gp.Lost, gp.Incomplete = g.missing()
	gp.SentRate = float64(gp.SentInWindow) / win
	gp.DeliveryRate = float64(gp.DeliveriesInWindow) / win
	gp.ServerSentRate = (w1.val(mSent) - w0.val(mSent)) / win
	if len(g.errCodes) > 0 {
		gp.ErrorCodes = g.errCodes
	}
	for _, d := range g.devs {
		st := d.c.Stats()
		gp.SDKDuplicates += st.Duplicates
		gp.Reconnects += st.Reconnects
		gp.Resends += st.Resends
	}
	gp.Server = serverCost(w0, w1)
	rep.Group = gp
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
	if n := float64(gp.SentInWindow); n > 0 {
		rep.Bench.CPUMicrosPerMsg = rep.Bench.CPUSeconds / n * 1e6
		rep.ServerCPUMicrosPerMsg = (w1.val(mCPU) - w0.val(mCPU)) / n * 1e6
	}
	if n := float64(gp.DeliveriesInWindow); n > 0 {
		rep.Bench.CPUMicrosPerDelivery = rep.Bench.CPUSeconds / n * 1e6
		rep.ServerCPUMicrosPerDelivery = (w1.val(mCPU) - w0.val(mCPU)) / n * 1e6
	}
	return nil
}

// Series group mode reads for the server's cost per message.
const (
	mSendSum       = "tern_send_seconds_sum"
	mSendCount     = "tern_send_seconds_count"
	mRouteSum      = "tern_route_seconds_sum"
	mAckSum        = `tern_store_seconds_sum{op="ack"}`
	mAckCount      = `tern_store_seconds_count{op="ack"}`
	mInboxSum      = `tern_store_seconds_sum{op="inbox"}`
	mEventsAcked   = "tern_events_acked_total"
	mReceiptsDeliv = `tern_receipts_total{status="delivered"}`
	mFramesOut     = "tern_frames_out_total"
)

// serverCost reads the server's per-message costs between two scrapes;
// nil if the server answered no sends in between or exports no timings.
func serverCost(a, b scrape) *GroupServerCost {
	sent := b.val(mSent) - a.val(mSent)
	if _, ok := b.get(mSendSum); !ok || sent <= 0 {
		return nil
	}
	d := func(name string) float64 { return (b.val(name) - a.val(name)) / sent }
	c := &GroupServerCost{RouteMs: d(mRouteSum) * 1e3, StoreAckMs: d(mAckSum) * 1e3, StoreAcks: d(mAckCount),
		StoreInboxMs: d(mInboxSum) * 1e3, EventsAcked: d(mEventsAcked), Receipts: d(mReceiptsDeliv), FramesOut: d(mFramesOut)}
	if n := b.val(mSendCount) - a.val(mSendCount); n > 0 {
		c.SendMs = (b.val(mSendSum) - a.val(mSendSum)) / n * 1e3
	}
	return c
}

// scheduled counts the messages due before the window's end: k/rate <
// warmup + duration.
func (g *group) scheduled() int64 {
	cfg := &g.r.cfg
	var n int64
	for n < int64(len(g.msgs)) && g.start+int64(float64(n)*1e9/cfg.Rate) < g.winEnd {
		n++
	}
	return n
}

// missing returns the deliveries durable messages still lack, and how many
// messages lack any.
func (g *group) missing() (lost, incomplete int64) {
	n := min(int(g.next.Load()), len(g.msgs))
	for k := range n {
		m := &g.msgs[k]
		if !m.durable.Load() {
			continue
		}
		if left := g.expect - m.got.Load(); left > 0 {
			lost += int64(left)
			incomplete++
		}
	}
	return lost, incomplete
}

// sender sends its share of the schedule from device d: the k-th group
// message of the run is due at start + k/rate and sender k mod senders
// sends it. The sender's workers take its next slot in turn, so a slow
// send holds up only itself until all of them wait. A late send goes at
// once; its latencies still count from when it was due.
func (g *group) sender(ctx context.Context, d *gdev, s int, slot *atomic.Int64) {
	cfg := &g.r.cfg
	S := int64(cfg.GroupSenders)
	buf := make([]byte, 0, 64+len(g.pad))
	tm := time.NewTimer(time.Hour)
	defer tm.Stop()
	for {
		k := slot.Add(1)*S - S + int64(s)
		due := g.start + int64(float64(k)*1e9/cfg.Rate)
		if due >= g.winEnd || g.stop.Load() || k >= int64(len(g.msgs)) {
			return
		}
		for {
			n := g.next.Load()
			if n > k || g.next.CompareAndSwap(n, k+1) {
				break
			}
		}
		if !g.r.waitUntil(ctx, tm, due) {
			return
		}
		if g.measured(due) {
			g.lag.Record(time.Duration(g.r.now() - due))
		}
		buf = append(buf[:0], g.prefix...)
		buf = strconv.AppendInt(buf, k, 10)
		buf = append(buf, ' ')
		buf = strconv.AppendInt(buf, due, 10)
		if g.pad != "" {
			buf = append(buf, ' ')
			buf = append(buf, g.pad...)
		}
		g.issued.Add(1)
		_, err := d.c.Send(ctx, g.chatID, wire.Body{Text: string(buf)})
		if err != nil {
			if ctx.Err() != nil {
				g.unanswered.Add(1)
				return
			}
			g.recordErr(err)
			continue
		}
		now := g.r.now()
		g.msgs[k].durable.Store(true)
		g.durable.Add(1)
		if g.measured(now) {
			g.sentInWin.Add(1)
		}
		if g.measured(due) {
			g.sent.Record(time.Duration(now - due))
		}
	}
}

func (g *group) recordErr(err error) {
	g.errs.Add(1)
	code, _ := classifyErr(err)
	g.errMu.Lock()
	g.errCodes[code]++
	g.errMu.Unlock()
}

// deviceEvents counts and times the messages a connected device gets, and
// the receipts its user's messages earn.
func (g *group) deviceEvents(d *gdev) {
	for f := range d.c.Events() {
		switch f.Type {
		case wire.TypeMessage:
			if f.Body == nil || f.ChatID != g.chatID {
				g.foreign.Add(1)
				continue
			}
			k, at, ok := parseMarked(g.prefix, f.Body.Text)
			if !ok || k >= int64(len(g.msgs)) {
				g.foreign.Add(1)
				continue
			}
			now := g.r.now()
			if f.FromDevice == d.id {
				g.echoes.Add(1)
				continue
			}
			w, bit := k>>6, uint64(1)<<(k&63)
			if d.seen[w]&bit != 0 {
				g.dups.Add(1)
				continue
			}
			d.seen[w] |= bit
			g.deliveries.Add(1)
			if g.measured(now) {
				g.delivInWin.Add(1)
			}
			if g.measured(at) {
				g.each.Record(time.Duration(now - at))
			}
			if g.msgs[k].got.Add(1) == g.expect {
				g.complete.Add(1)
				if g.measured(at) {
					g.last.Record(time.Duration(now - at))
				}
			}
		case wire.TypeReceipt:
			if f.ChatID == g.chatID {
				g.receipts.Add(1)
				g.receiptIDs.Add(int64(len(f.MsgIDs)))
				g.receiptPairs.Add(int64(len(f.MsgIDs) * max(1, len(f.UserIDs))))
			}
		case wire.TypeError:
			g.recordErr(&wire.Error{Code: f.Code, Message: f.Message})
		}
	}
}

// progress prints a line every 5 s.
func (g *group) progress() (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		tk := time.NewTicker(5 * time.Second)
		defer tk.Stop()
		var lastD, lastS int64
		lastAt := time.Now()
		for {
			select {
			case <-quit:
				return
			case now := <-tk.C:
				dv, s := g.deliveries.Load(), g.durable.Load()
				phase := "warmup"
				switch at := g.r.now(); {
				case at >= g.winEnd:
					phase = "drain"
				case at >= g.winStart:
					phase = "measure"
				}
				el := now.Sub(lastAt).Seconds()
				lost, _ := g.missing()
				g.r.printf("  %-7s sent %d (%.0f/s), deliveries %d (%.0f/s), awaited %d, errors %d\n",
					phase, s, float64(s-lastS)/el, dv, float64(dv-lastD)/el, lost, g.errs.Load())
				lastD, lastS, lastAt = dv, s, now
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}
