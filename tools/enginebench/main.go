// Command enginebench measures candidate embedded storage engines for Tern's
// single-node store under Tern's write pattern: group-committed, fsynced
// chat messages (chat log + idempotency record + 3 inbox events + chat meta
// per message), optionally followed by non-durable inbox acks and read
// receipts.
//
//	go run . -engine all -duration 10s
package main

import (
	"flag"
	"fmt"
	"os"
	"runtime"
	"runtime/debug"
	"runtime/pprof"
	"slices"
	"strings"
	"syscall"
	"time"
)

var modes = []mode{
	{name: "group", maxBatch: 512},
	{name: "batch1", maxBatch: 1},
	{name: "group+acks", maxBatch: 512, acks: true},
	{name: "group+acks/pt", maxBatch: 512, acks: true, pointDel: true},
}

type result struct {
	engine, mode, ackStrat string
	msgs                   int64
	elapsed                time.Duration
	commits                int64
	p50, p99               time.Duration
	cpu                    time.Duration
	wbytes                 int64
	dups                   int
	allocEnd, appEnd       int64
	allocAcked, appAcked   int64
	allocComp, appComp     int64
	drain, compact         time.Duration
}

func main() {
	var (
		engineFlag = flag.String("engine", "all", "engines: all, or a comma list of bbolt,pebble,pebble2,sqlite")
		modeFlag   = flag.String("mode", "all", "modes: all, or a comma list of group,batch1,group+acks,group+acks/pt")
		duration   = flag.Duration("duration", 10*time.Second, "time bound per engine and mode")
		maxMsgs    = flag.Int64("max-msgs", 0, "message bound per engine and mode (0: time bound only)")
		senders    = flag.Int("senders", 64, "concurrent sending goroutines")
		maxBatch   = flag.Int("max-batch", 512, "group commit: most messages per commit")
		users      = flag.Int("users", 10000, "users (2 devices each)")
		chats      = flag.Int("chats", 10000, "1:1 chats between random user pairs")
		ackFlag    = flag.String("ack-commit", "auto", "how acks are committed: auto (engine default), separate, fold")
		parent     = flag.String("dir", os.TempDir(), "parent directory for the temporary stores")
		keep       = flag.Bool("keep", false, "keep the store directories")
		baseline   = flag.Duration("fsync-baseline", time.Second, "time spent measuring raw 4 KiB write+fdatasync (0: skip)")
		compact    = flag.Bool("compact", true, "after the acks, also compact the store and report its size")
		repeat     = flag.Int("repeat", 1, "run the whole matrix this many times and summarise the spread")
		cpuProf    = flag.String("cpuprofile", "", "write a CPU profile of the whole run to this file")
	)
	flag.Parse()
	if *cpuProf != "" {
		f, err := os.Create(*cpuProf)
		if err != nil {
			fatal(err)
		}
		if err := pprof.StartCPUProfile(f); err != nil {
			fatal(err)
		}
		defer pprof.StopCPUProfile()
	}
	ack, err := parseAckCommit(*ackFlag)
	if err != nil {
		fatal(err)
	}
	selEngines, err := pickEngines(*engineFlag)
	if err != nil {
		fatal(err)
	}
	selModes, err := pickModes(*modeFlag, *maxBatch)
	if err != nil {
		fatal(err)
	}
	if *users < 2 || *chats < 1 || *senders < 1 || *maxBatch < 1 || *repeat < 1 {
		fatal(fmt.Errorf("need -users >= 2, -chats >= 1, -senders >= 1, -max-batch >= 1, -repeat >= 1"))
	}
	w := &workload{users: *users, chats: *chats, senders: *senders, duration: *duration, maxMsgs: *maxMsgs, seed: 42}

	fmt.Printf("enginebench: %s %s/%s, GOMAXPROCS=%d, NumCPU=%d, dir=%s\n",
		runtime.Version(), runtime.GOOS, runtime.GOARCH, runtime.GOMAXPROCS(0), runtime.NumCPU(), *parent)
	fmt.Printf("workload: %d senders, %d users x 2 devices, %d chats, max batch %d, %v or %d msgs per run\n",
		w.senders, w.users, w.chats, *maxBatch, w.duration, w.maxMsgs)
	for _, e := range selEngines {
		fmt.Printf("  %-8s %s\n", e.name, e.module)
	}
	if *baseline > 0 {
		p50, rate, err := fsyncBaseline(*parent, *baseline)
		if err != nil {
			fatal(fmt.Errorf("fsync baseline: %w", err))
		}
		fmt.Printf("raw 4 KiB write+fdatasync on %s: p50 %.2f ms, %.0f/s\n", *parent, ms(p50), rate)
	}
	fmt.Println()

	// Mode-major order: the engines of one mode run back to back, so they
	// see the (noisy, shared) disk in a similar state.
	var all [][]result
	for rep := 1; rep <= *repeat; rep++ {
		var results []result
		for _, m := range selModes {
			for _, e := range selEngines {
				fmt.Fprintf(os.Stderr, "[%d/%d] running %s %s ...\n", rep, *repeat, e.name, m.name)
				r, err := runOne(e, m, w, engineOpts{ack: ack, pointDeletes: m.pointDel}, *parent, *keep, *compact)
				if err != nil {
					fatal(fmt.Errorf("%s %s: %w", e.name, m.name, err))
				}
				fmt.Fprintf(os.Stderr, "  %d msgs, %.0f msg/s, p99 %.1f ms (ack drain+close %v, compaction %v)\n",
					r.msgs, r.rate(), ms(r.p99), r.drain.Round(time.Millisecond), r.compact.Round(time.Millisecond))
				results = append(results, r)
			}
		}
		if *repeat > 1 {
			fmt.Printf("### repetition %d of %d\n\n", rep, *repeat)
		}
		printTable(results)
		all = append(all, results)
	}
	if *repeat > 1 {
		printSpread(all)
	}
}

func (r result) rate() float64 { return float64(r.msgs) / r.elapsed.Seconds() }

// printSpread summarises repeated runs: msg/s and CPU per message, median
// and range over the repetitions.
func printSpread(all [][]result) {
	fmt.Printf("### spread over %d repetitions\n\n", len(all))
	fmt.Println("| engine | mode | msg/s median | msg/s min..max | p99 ms median | CPU µs/msg median | written KB/msg median |")
	fmt.Println("|---|---|--:|--:|--:|--:|--:|")
	for i := range all[0] {
		var rate, p99, cpu, wkb []float64
		for _, rs := range all {
			r := rs[i]
			n := float64(max(r.msgs, 1))
			rate = append(rate, r.rate())
			p99 = append(p99, ms(r.p99))
			cpu = append(cpu, float64(r.cpu.Microseconds())/n)
			wkb = append(wkb, float64(r.wbytes)/n/1024)
		}
		fmt.Printf("| %s | %s | %.0f | %.0f..%.0f | %.1f | %.0f | %.1f |\n", all[0][i].engine, all[0][i].mode,
			median(rate), slices.Min(rate), slices.Max(rate), median(p99), median(cpu), median(wkb))
	}
	fmt.Println()
}

func median(v []float64) float64 {
	v = slices.Clone(v)
	slices.Sort(v)
	if len(v)%2 == 1 {
		return v[len(v)/2]
	}
	return (v[len(v)/2-1] + v[len(v)/2]) / 2
}

func runOne(def engineDef, m mode, w *workload, o engineOpts, parent string, keep, compact bool) (result, error) {
	r := result{engine: def.name, mode: m.name, ackStrat: "-"}
	dir, err := os.MkdirTemp(parent, "enginebench-"+def.name+"-")
	if err != nil {
		return r, err
	}
	if keep {
		fmt.Fprintf(os.Stderr, "  store kept in %s\n", dir)
	} else {
		defer os.RemoveAll(dir)
	}
	// Start every run from a quiet machine: no dirty pages of the previous
	// run being written back, no garbage of it left to collect.
	syscall.Sync()
	runtime.GC()
	debug.FreeOSMemory()

	eng, err := def.open(dir, o)
	if err != nil {
		return r, err
	}
	if m.acks {
		r.ackStrat = eng.ackStrategy()
	}
	wr := newWriter(eng, w, m)
	chats := makeChats(w)

	cpu0, wb0 := cpuTime(), writeBytes()
	lats, elapsed := runLoad(w, wr, chats)
	cpu1, wb1 := cpuTime(), writeBytes()
	if wr.err != nil {
		eng.close()
		return r, wr.err
	}
	r.msgs = int64(len(lats))
	r.elapsed = elapsed
	r.commits = wr.commits
	r.dups = wr.dups
	r.cpu = cpu1 - cpu0
	r.wbytes = -1
	if wb0 >= 0 && wb1 >= 0 {
		r.wbytes = wb1 - wb0
	}
	if len(lats) > 0 {
		r.p50 = lats[(len(lats)-1)*50/100]
		r.p99 = lats[(len(lats)-1)*99/100]
	}
	r.allocEnd, r.appEnd = dirUsage(dir)

	t := time.Now()
	if err := wr.drainAll(); err != nil {
		eng.close()
		return r, err
	}
	chatLog, inbox, err := eng.count()
	if err == nil && (chatLog != int(r.msgs) || inbox != 0) {
		err = fmt.Errorf("check failed: %d chat-log records for %d messages, %d inbox events left after acking all", chatLog, r.msgs, inbox)
	}
	if err != nil {
		eng.close()
		return r, err
	}
	if err := eng.close(); err != nil {
		return r, err
	}
	r.drain = time.Since(t)
	r.allocAcked, r.appAcked = dirUsage(dir)
	r.allocComp, r.appComp = -1, -1
	if compact && def.compact != nil {
		t = time.Now()
		if err := def.compact(dir); err != nil {
			return r, fmt.Errorf("compact: %w", err)
		}
		r.compact = time.Since(t)
		r.allocComp, r.appComp = dirUsage(dir)
	}
	return r, nil
}

func printTable(rs []result) {
	fmt.Println("| engine | mode | ack commit | msgs | msg/s | msgs/commit | p50 ms | p99 ms | CPU µs/msg | written KB/msg | MB at end | MB after acks | MB compacted | B/msg compacted |")
	fmt.Println("|---|---|---|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|--:|")
	for _, r := range rs {
		n := float64(max(r.msgs, 1))
		wkb := "n/a"
		if r.wbytes >= 0 {
			wkb = fmt.Sprintf("%.1f", float64(r.wbytes)/n/1024)
		}
		comp, perMsg := "-", "-"
		if r.appComp >= 0 {
			comp = sizes(r.allocComp, r.appComp)
			perMsg = fmt.Sprintf("%.0f", float64(r.allocComp)/n)
		}
		fmt.Printf("| %s | %s | %s | %d | %.0f | %.1f | %.2f | %.2f | %.0f | %s | %s | %s | %s | %s |\n",
			r.engine, r.mode, r.ackStrat, r.msgs, r.rate(),
			float64(r.msgs)/float64(max(r.commits, 1)), ms(r.p50), ms(r.p99),
			float64(r.cpu.Microseconds())/n, wkb, sizes(r.allocEnd, r.appEnd), sizes(r.allocAcked, r.appAcked), comp, perMsg)
	}
	fmt.Println()
	fmt.Println("MB columns: allocated (du) / apparent (ls) size of the store directory.")
	fmt.Println("B/msg compacted: allocated bytes after acks and compaction / messages (chat log + idempotency + meta remain).")
	fmt.Println("written KB/msg: /proc/self/io write_bytes during the timed phase / messages.")
	for _, r := range rs {
		if r.dups > 0 {
			fmt.Printf("WARNING: %s %s dropped %d duplicate messages\n", r.engine, r.mode, r.dups)
		}
	}
	fmt.Println()
}

func sizes(alloc, apparent int64) string { return fmt.Sprintf("%.1f / %.1f", mb(alloc), mb(apparent)) }

func pickEngines(s string) ([]engineDef, error) {
	if s == "all" {
		var out []engineDef
		for _, e := range engines {
			if e.inAll {
				out = append(out, e)
			}
		}
		return out, nil
	}
	var out []engineDef
	for _, n := range strings.Split(s, ",") {
		found := false
		for _, e := range engines {
			if e.name == strings.TrimSpace(n) {
				out = append(out, e)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown engine %q", n)
		}
	}
	return out, nil
}

func pickModes(s string, maxBatch int) ([]mode, error) {
	var out []mode
	for _, m := range modes {
		if m.maxBatch > 1 {
			m.maxBatch = maxBatch
		}
		if s == "all" {
			out = append(out, m)
		}
	}
	if s == "all" {
		return out, nil
	}
	for _, n := range strings.Split(s, ",") {
		found := false
		for _, m := range modes {
			if m.name == strings.TrimSpace(n) {
				if m.maxBatch > 1 {
					m.maxBatch = maxBatch
				}
				out = append(out, m)
				found = true
			}
		}
		if !found {
			return nil, fmt.Errorf("unknown mode %q", n)
		}
	}
	return out, nil
}

func ms(d time.Duration) float64 { return float64(d) / float64(time.Millisecond) }
func mb(b int64) float64         { return float64(b) / (1 << 20) }

func fatal(err error) {
	fmt.Fprintln(os.Stderr, "enginebench:", err)
	os.Exit(1)
}
