package bench

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"runtime"
	"sync"
	"sync/atomic"
	"time"

	"github.com/gorilla/websocket"
	"github.com/tern-im/tern/client"
)

// ServerCommand is how the server under test should be started for the
// bench: SMS codes come to the bench's sink, and the per-IP sign-up limits
// and the per-device send limit, which exist to stop abuse, are lifted.
const ServerCommand = "tern serve --sms-provider http --sms-http-url http://127.0.0.1:9099/ " +
	"--codes-per-ip-hour 0 --verifies-per-ip-hour 0 --sends-per-second 100000 --send-burst 100000"

// runner is the state of one Run.
type runner struct {
	cfg    Config
	out    io.Writer
	outMu  sync.Mutex
	runID  string
	hc     *http.Client
	dialer *websocket.Dialer
	t0     time.Time // the clock every in-run timestamp counts from

	sinkOnce sync.Once
	sink     *smsSink
	sinkErr  error
}

// Run provisions devices, drives the server at cfg.Addr in cfg.Mode and
// returns what it measured. Progress and the human-readable results go to
// out as they come.
func Run(ctx context.Context, cfg Config, out io.Writer) (Report, error) {
	cfg, err := cfg.withDefaults()
	if err != nil {
		return Report{}, err
	}
	if out == nil {
		out = io.Discard
	}
	conc := cfg.Concurrency
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2 * conc,
		MaxIdleConnsPerHost: 2 * conc, // reuse connections: no TIME_WAIT pile-up
		IdleConnTimeout:     90 * time.Second,
		DisableCompression:  true,
	}
	defer tr.CloseIdleConnections()
	r := &runner{
		cfg:   cfg,
		out:   out,
		runID: cfg.RunID,
		hc:    &http.Client{Transport: tr, Timeout: 30 * time.Second},
		dialer: &websocket.Dialer{
			Proxy:            nil,
			HandshakeTimeout: 15 * time.Second,
			ReadBufferSize:   2048,
			WriteBufferSize:  2048,
			// Shared so that idle sockets hold no write buffer.
			WriteBufferPool: &sync.Pool{},
		},
		t0: time.Now(),
	}
	defer func() {
		if r.sink != nil {
			r.sink.close()
		}
	}()

	rep := Report{Mode: cfg.Mode, GOMAXPROCS: runtime.GOMAXPROCS(0), NumCPU: runtime.NumCPU(),
		GoVersion: runtime.Version(), Config: reportConfigOf(cfg)}
	r.printConfig(rep)

	switch cfg.Mode {
	case ModeIdle:
		err = r.idle(ctx, &rep)
	case ModeGroup:
		err = r.group(ctx, &rep)
	case ModePresence:
		err = r.presence(ctx, &rep)
	case ModeMedia:
		err = r.media(ctx, &rep)
	case ModeBusiness:
		err = r.business(ctx, &rep)
	default:
		err = r.traffic(ctx, &rep)
	}
	rep.RunID = r.runID
	rep.Config.RunID = r.runID
	if err != nil {
		return rep, err
	}
	_, rep.Bench.PeakRSSBytes = selfUsage()
	r.printReport(&rep)
	return rep, nil
}

func (r *runner) printf(format string, args ...any) {
	r.outMu.Lock()
	defer r.outMu.Unlock()
	fmt.Fprintf(r.out, format, args...)
}

// now is the time since the run started, the clock of every timestamp a
// message carries.
func (r *runner) now() int64 { return int64(time.Since(r.t0)) }

// waitUntil sleeps on tm until the run's clock reads at (now() units);
// false if ctx ended first.
func (r *runner) waitUntil(ctx context.Context, tm *time.Timer, at int64) bool {
	if wait := at - r.now(); wait > 0 {
		tm.Reset(time.Duration(wait))
		select {
		case <-tm.C:
		case <-ctx.Done():
			return false
		}
	}
	return true
}

// progress prints "label: done/n" every 5 s until the returned stop.
func (r *runner) progress(label string, n int, done *atomic.Int64) (stop func()) {
	quit := make(chan struct{})
	var wg sync.WaitGroup
	wg.Go(func() {
		t := time.NewTicker(5 * time.Second)
		defer t.Stop()
		for {
			select {
			case <-quit:
				return
			case <-t.C:
				r.printf("%s: %d/%d\n", label, done.Load(), n)
			}
		}
	})
	return func() { close(quit); wg.Wait() }
}

// clientOptions are the SDK options of a bench device: shared HTTP client
// and dialer, and small buffers, since thousands share one process.
func (r *runner) clientOptions(eventBuffer, dedupe int) client.Options {
	return client.Options{HTTPClient: r.hc, Dialer: r.dialer, EventBuffer: eventBuffer, DedupeWindow: dedupe}
}

// ConnectReport tells how the sockets came up.
type ConnectReport struct {
	Sockets   int     `json:"sockets"`
	Failed    int     `json:"failed"`
	Seconds   float64 `json:"seconds"`
	PerSecond float64 `json:"per_second"`
	FirstErr  string  `json:"first_error,omitempty"`
}

// connectAll connects every client, Concurrency at a time. With
// mustAll, the first failure ends it with an error.
func (r *runner) connectAll(ctx context.Context, clients []*client.Client, mustAll bool) (ConnectReport, error) {
	start := time.Now()
	var failed, done atomic.Int64
	var firstErr atomic.Value
	stop := r.progress("connect", len(clients), &done)
	err := forEach(ctx, len(clients), r.cfg.Concurrency, func(ctx context.Context, i int) error {
		defer done.Add(1)
		cctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		err := clients[i].Connect(cctx)
		cancel()
		if err != nil {
			failed.Add(1)
			firstErr.CompareAndSwap(nil, err.Error())
			if mustAll {
				return fmt.Errorf("connect device %d: %w", i, err)
			}
		}
		return nil
	})
	stop()
	el := time.Since(start)
	rep := ConnectReport{Sockets: len(clients) - int(failed.Load()), Failed: int(failed.Load()),
		Seconds: el.Seconds(), PerSecond: float64(len(clients)) / el.Seconds()}
	if s, ok := firstErr.Load().(string); ok {
		rep.FirstErr = s
	}
	r.printf("connect: %d sockets in %s (%.0f/s), %d failed\n", rep.Sockets, el.Round(time.Millisecond), rep.PerSecond, rep.Failed)
	if rep.FirstErr != "" {
		r.printf("connect: first error: %s\n", rep.FirstErr)
	}
	return rep, err
}

// closeAll closes every client (a clean close handshake each), many at
// a time; it returns when every client's goroutines have exited.
func closeAll(clients []*client.Client) {
	_ = forEach(context.Background(), len(clients), 512, func(_ context.Context, i int) error {
		if clients[i] != nil {
			_ = clients[i].Close()
		}
		return nil
	})
}

// ServerSample is the server's state as its /metrics told it: resident
// memory, Go heap in use, goroutines, WebSocket connections and CPU time.
type ServerSample struct {
	RSSBytes       float64 `json:"rss_bytes"`
	HeapInuseBytes float64 `json:"heap_inuse_bytes,omitempty"`
	Goroutines     float64 `json:"goroutines,omitempty"`
	Connections    float64 `json:"connections"`
	CPUSeconds     float64 `json:"cpu_seconds,omitempty"`
}

func sampleOf(s scrape) ServerSample {
	return ServerSample{RSSBytes: s.val(mRSS), HeapInuseBytes: s.val(mHeapInuse),
		Goroutines: s.val(mGoroutines), Connections: s.val(mConns), CPUSeconds: s.val(mCPU)}
}

// scrape reads the server's metrics; a failure is reported and yields an
// empty reading, since the load itself was still generated. With Nodes
// (business mode), every node's values are summed: the cluster's CPU,
// memory, webhooks.
func (r *runner) scrape(ctx context.Context, what string) scrape {
	s, err := scrapeMetrics(ctx, r.hc, r.cfg.Addr)
	if err != nil {
		r.printf("warning: %s: %v\n", what, err)
		return scrape{at: time.Now(), values: map[string]float64{}}
	}
	if _, ok := s.get(mRSS); !ok {
		r.printf("warning: %s: the server exports no %s (not Linux?)\n", what, mRSS)
	}
	for _, n := range r.cfg.Nodes {
		o, err := scrapeMetrics(ctx, r.hc, n)
		if err != nil {
			r.printf("warning: %s: node %s: %v\n", what, n, err)
			continue
		}
		for k, v := range o.values {
			s.values[k] += v
		}
		s.at = o.at
	}
	return s
}

// window waits for the measured window [start, end] (unix ns) and samples
// the server's counters, this process's CPU and the machine at both ends;
// interrupted says ctx ended first (the samples are then partial).
func (r *runner) window(ctx context.Context, start, end int64) (w0, w1 scrape, cpu0, cpu1 time.Duration, m0, m1 machineSample, interrupted bool) {
	if !r.sleepUntil(ctx, start) {
		return w0, w1, cpu0, cpu1, m0, m1, true
	}
	cpu0, _ = selfUsage()
	m0 = sampleMachine()
	w0 = r.scrape(ctx, "window start")
	if !r.sleepUntil(ctx, end) {
		return w0, w1, cpu0, cpu1, m0, m1, true
	}
	cpu1, _ = selfUsage()
	m1 = sampleMachine()
	w1 = r.scrape(ctx, "window end")
	return w0, w1, cpu0, cpu1, m0, m1, false
}

// drainUntil waits, after a window, until the workers are done and done
// reports nothing left in flight, for at most limit, checking every tick;
// it returns how long it waited and whether ctx ended. An interrupted run
// does not drain.
func drainUntil(ctx context.Context, limit, every time.Duration, workersDone <-chan struct{}, done func() bool, interrupted bool) (time.Duration, bool) {
	start := time.Now()
	if interrupted {
		return 0, false
	}
	deadline := time.NewTimer(limit)
	defer deadline.Stop()
	tick := time.NewTicker(every)
	defer tick.Stop()
	for {
		select {
		case <-deadline.C:
			return time.Since(start), false
		case <-ctx.Done():
			return time.Since(start), true
		case <-tick.C:
			select {
			case <-workersDone:
				if done() {
					return time.Since(start), false
				}
			default:
			}
		}
	}
}
