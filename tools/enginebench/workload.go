package main

import (
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"math/rand/v2"
	"slices"
	"strconv"
	"sync"
	"sync/atomic"
	"time"
)

// mode is one benchmark configuration.
type mode struct {
	name     string
	maxBatch int  // messages per commit at most
	acks     bool // run the ack/delete + receipt pipeline
	pointDel bool // acks delete inbox keys one by one instead of by range
}

type workload struct {
	users    int // each user has devices 2u and 2u+1
	chats    int // 1:1 chats between random user pairs
	senders  int // concurrent sending goroutines
	duration time.Duration
	maxMsgs  int64 // 0: bounded by duration only
	seed     uint64
}

// request is one message submitted by a sender to the writer goroutine.
type request struct {
	chat      uint64
	from, to  uint64 // users
	fromDev   uint64 // sending device
	clientID  []byte // 16 bytes, unique per message
	body      []byte // JSON, without the seq the writer assigns
	submitted time.Time
	done      chan error
}

// ackSrc remembers a committed message until its devices ack it.
type ackSrc struct {
	chat, seq, from, to uint64
	inbox               [3]rangeDel
}

// writer is the single goroutine that owns the store: it assigns chat seqs
// and inbox cursors, groups queued messages into one durable commit and
// runs the ack pipeline.
type writer struct {
	eng       engine
	maxBatch  int
	acks      bool
	chatSeq   []uint64
	devCursor []uint64 // last cursor written per device
	ackedTo   []uint64 // last cursor deleted per device

	// Ack pipeline. A message committed in round r is acked by its three
	// inbox devices in round r+1, which puts one read receipt into each of
	// the sender's two devices; those are acked in round r+2.
	stage1    []ackSrc
	stage2    []rangeDel
	ackw      ackWork
	coalesce  map[uint64]uint64
	nextStage []rangeDel

	commits int64 // commits that carried messages
	dups    int
	err     error
}

func newWriter(eng engine, w *workload, m mode) *writer {
	return &writer{
		eng:       eng,
		maxBatch:  m.maxBatch,
		acks:      m.acks,
		chatSeq:   make([]uint64, w.chats),
		devCursor: make([]uint64, 2*w.users),
		ackedTo:   make([]uint64, 2*w.users),
		coalesce:  make(map[uint64]uint64),
	}
}

func (w *writer) pendingAcks() bool { return len(w.stage1) > 0 || len(w.stage2) > 0 }

// run serves the queue until it is closed and empty.
func (w *writer) run(q <-chan *request) {
	reqs := make([]*request, 0, w.maxBatch)
	for {
		reqs = reqs[:0]
		if !w.pendingAcks() {
			r, ok := <-q
			if !ok {
				return
			}
			reqs = append(reqs, r)
		}
		closed := false
	drain:
		for len(reqs) < w.maxBatch {
			select {
			case r, ok := <-q:
				if !ok {
					closed = true
					break drain
				}
				reqs = append(reqs, r)
			default:
				break drain
			}
		}
		w.round(reqs)
		if closed {
			return
		}
	}
}

// buildAcks turns the pending pipeline stages into this round's ack work.
func (w *writer) buildAcks(ts int64) *ackWork {
	w.ackw.reset()
	clear(w.coalesce)
	w.nextStage = w.nextStage[:0]
	note := func(d rangeDel) {
		if d.upTo > w.coalesce[d.device] {
			w.coalesce[d.device] = d.upTo
		}
	}
	for _, s := range w.stage1 {
		for _, d := range s.inbox {
			note(d)
		}
		// The recipient read it: one receipt to each of the sender's devices.
		for dev := 2 * s.from; dev <= 2*s.from+1; dev++ {
			w.devCursor[dev]++
			cur := w.devCursor[dev]
			w.ackw.puts = append(w.ackw.puts, inboxPut{device: dev, cursor: cur, val: receiptJSON(s, dev, cur, ts)})
			w.nextStage = append(w.nextStage, rangeDel{device: dev, upTo: cur})
		}
	}
	for _, d := range w.stage2 {
		note(d)
	}
	// A device acks cumulatively, so several acks of one device in a round
	// collapse into one range delete up to the highest cursor.
	for dev, up := range w.coalesce {
		if up > w.ackedTo[dev] {
			w.ackw.dels = append(w.ackw.dels, rangeDel{device: dev, from: w.ackedTo[dev] + 1, upTo: up})
			w.ackedTo[dev] = up
		}
	}
	slices.SortFunc(w.ackw.dels, func(a, b rangeDel) int { return cmpU64(a.device, b.device) })
	w.stage1 = w.stage1[:0]
	w.stage2 = append(w.stage2[:0], w.nextStage...)
	return &w.ackw
}

func cmpU64(a, b uint64) int {
	switch {
	case a < b:
		return -1
	case a > b:
		return 1
	}
	return 0
}

// round commits one group of messages plus the pending acks and answers
// every sender in the group.
func (w *writer) round(reqs []*request) {
	ts := time.Now().UnixMilli()
	acks := &ackWork{}
	if w.acks {
		acks = w.buildAcks(ts)
	}
	msgs := make([]msgWrite, len(reqs))
	for i, r := range reqs {
		w.chatSeq[r.chat]++
		seq := w.chatSeq[r.chat]
		m := &msgs[i]
		m.chat, m.seq = r.chat, seq
		m.logVal = append(strconv.AppendUint(append(slices.Clip(r.body), `,"seq":`...), seq, 10), '}')
		m.idemDev, m.idemID = r.fromDev, r.clientID
		m.idemVal = fmt.Appendf(nil, `{"chat":%d,"seq":%d,"status":"stored"}`, r.chat, seq)
		other := 2*r.from + (1 - r.fromDev%2)
		for j, dev := range [3]uint64{2 * r.to, 2*r.to + 1, other} {
			w.devCursor[dev]++
			cur := w.devCursor[dev]
			v := make([]byte, 0, len(m.logVal)+64)
			v = append(v, `{"ev":"msg","dev":`...)
			v = strconv.AppendUint(v, dev, 10)
			v = append(v, `,"cursor":`...)
			v = strconv.AppendUint(v, cur, 10)
			v = append(v, `,"msg":`...)
			v = append(append(v, m.logVal...), '}')
			m.inbox[j] = inboxPut{device: dev, cursor: cur, val: v}
		}
		m.metaVal = fmt.Appendf(nil, `{"last_seq":%d,"ts":%d}`, seq, ts)
	}
	dups, err := w.eng.commit(msgs, acks)
	if len(msgs) > 0 {
		w.commits++ // durable message commits; ack-only rounds not counted
	}
	w.dups += dups
	if err != nil && w.err == nil {
		w.err = err
	}
	for _, r := range reqs {
		r.done <- err
	}
	if w.acks && err == nil {
		for i := range msgs {
			m, r := &msgs[i], reqs[i]
			s := ackSrc{chat: m.chat, seq: m.seq, from: r.from, to: r.to}
			for j, p := range m.inbox {
				s.inbox[j] = rangeDel{device: p.device, upTo: p.cursor}
			}
			w.stage1 = append(w.stage1, s)
		}
	}
}

// drainAll runs after the timed phase: the ack pipeline runs dry, then
// every device acks everything still in its inbox.
func (w *writer) drainAll() error {
	for w.acks && w.pendingAcks() && w.err == nil {
		w.round(nil)
	}
	if w.err != nil {
		return w.err
	}
	var all ackWork
	flush := func() error {
		_, err := w.eng.commit(nil, &all)
		all.reset()
		return err
	}
	for dev, cur := range w.devCursor {
		if cur <= w.ackedTo[dev] {
			continue
		}
		all.dels = append(all.dels, rangeDel{device: uint64(dev), from: w.ackedTo[dev] + 1, upTo: cur})
		w.ackedTo[dev] = cur
		if len(all.dels) == 2048 {
			if err := flush(); err != nil {
				return err
			}
		}
	}
	return flush()
}

const lorem = "Lorem ipsum dolor sit amet, consectetur adipiscing elit, sed do eiusmod tempor " +
	"incididunt ut labore et dolore magna aliqua. Ut enim ad minim veniam, quis nostrud " +
	"exercitation ullamco laboris nisi ut aliquip ex ea commodo consequat. Duis aute irure " +
	"dolor in reprehenderit in voluptate velit esse cillum dolore eu fugiat nulla pariatur."

// messageBody builds the chat-log JSON minus the trailing `,"seq":N}` the
// writer appends; the full record comes out at ~250 bytes.
func messageBody(rng *rand.Rand, chat, from, fromDev, to uint64, cid []byte, ts int64) []byte {
	b := make([]byte, 0, 256)
	b = append(b, `{"type":"text","chat":`...)
	b = strconv.AppendUint(b, chat, 10)
	b = append(b, `,"from":"u`...)
	b = strconv.AppendUint(b, from, 10)
	b = append(b, `/d`...)
	b = strconv.AppendUint(b, fromDev%2, 10)
	b = append(b, `","to":"u`...)
	b = strconv.AppendUint(b, to, 10)
	b = append(b, `","cid":"`...)
	b = hex.AppendEncode(b, cid)
	b = append(b, `","ts":`...)
	b = strconv.AppendInt(b, ts, 10)
	b = append(b, `,"text":"`...)
	n := 236 - len(b) - 1
	off := rng.IntN(len(lorem) - n)
	b = append(b, lorem[off:off+n]...)
	return append(b, '"')
}

func receiptJSON(s ackSrc, dev, cursor uint64, ts int64) []byte {
	b := make([]byte, 0, 208)
	b = fmt.Appendf(b, `{"ev":"receipt","dev":%d,"cursor":%d,"chat":%d,"seq":%d,"reader":"u%d","status":"read","ts":%d,"pad":"`,
		dev, cursor, s.chat, s.seq, s.to, ts)
	for len(b) < 198 {
		b = append(b, 'x')
	}
	return append(b, `"}`...)
}

// runLoad drives one mode against the writer: senders submit until the
// deadline (or maxMsgs), each waiting for its commit before sending again.
// It returns all commit latencies as seen by senders, sorted.
func runLoad(w *workload, wr *writer, chats [][2]uint64) (lats []time.Duration, elapsed time.Duration) {
	q := make(chan *request, w.senders)
	writerDone := make(chan struct{})
	go func() {
		wr.run(q)
		close(writerDone)
	}()
	var wg sync.WaitGroup
	var claimed atomic.Int64
	perSender := make([][]time.Duration, w.senders)
	start := time.Now()
	deadline := start.Add(w.duration)
	for g := 0; g < w.senders; g++ {
		wg.Add(1)
		go func(g int) {
			defer wg.Done()
			rng := rand.New(rand.NewPCG(w.seed, uint64(g)+1))
			done := make(chan error, 1)
			var n uint64
			var mine []time.Duration
			for time.Now().Before(deadline) {
				if w.maxMsgs > 0 && claimed.Add(1) > w.maxMsgs {
					break
				}
				chat := rng.IntN(len(chats))
				dir := rng.IntN(2)
				from, to := chats[chat][dir], chats[chat][1-dir]
				fromDev := 2*from + uint64(rng.IntN(2))
				n++
				cid := make([]byte, 16)
				binary.BigEndian.PutUint64(cid, uint64(g))
				binary.BigEndian.PutUint64(cid[8:], n)
				ts := time.Now().UnixMilli()
				r := &request{
					chat: uint64(chat), from: from, to: to, fromDev: fromDev, clientID: cid,
					body: messageBody(rng, uint64(chat), from, fromDev, to, cid, ts),
					done: done,
				}
				r.submitted = time.Now()
				q <- r
				if err := <-done; err != nil {
					break // the writer recorded it
				}
				mine = append(mine, time.Since(r.submitted))
			}
			perSender[g] = mine
		}(g)
	}
	wg.Wait()
	elapsed = time.Since(start)
	close(q)
	<-writerDone
	for _, l := range perSender {
		lats = append(lats, l...)
	}
	slices.Sort(lats)
	return lats, elapsed
}

// makeChats pairs random distinct users into 1:1 chats.
func makeChats(w *workload) [][2]uint64 {
	rng := rand.New(rand.NewPCG(w.seed, 0))
	chats := make([][2]uint64, w.chats)
	for i := range chats {
		a := rng.IntN(w.users)
		b := rng.IntN(w.users - 1)
		if b >= a {
			b++
		}
		chats[i] = [2]uint64{uint64(a), uint64(b)}
	}
	return chats
}
