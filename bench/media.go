package bench

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/wire"
)

// mediaSampleEvery is how often media mode reads the server's /metrics
// while files move. A 64 MiB upload takes a few hundred milliseconds on
// loopback, so this gives several readings per file; each reading costs
// the server about a millisecond of CPU, which the CPU figures include.
// The Go runtime gives memory back to the kernel minutes after it stops
// using it, so a peak of resident memory lasts long enough to be seen.
const mediaSampleEvery = 100 * time.Millisecond

// linkMargin is how long a file's link must still be valid for media
// mode to use it rather than ask for a fresh one.
const linkMargin = 30 * time.Second

// maxRSSSeries bounds the readings a phase keeps for the JSON report (a
// minute at mediaSampleEvery); the peak counts every reading.
const maxRSSSeries = 600

// MediaReport is what media mode measured: how fast files go up and come
// down, and what the server's memory did meanwhile.
type MediaReport struct {
	Kind      string `json:"kind"`
	FileBytes int64  `json:"file_bytes"`
	Files     int    `json:"files"`
	Parallel  int    `json:"parallel"`
	// DownloadHost is the host of the files' links; ServedByNode says it
	// is the server under test (media fs). Otherwise (media S3) the
	// downloads never touch the node, and its figures for the download
	// phase are those of a node at rest.
	DownloadHost string `json:"download_host"`
	ServedByNode bool   `json:"served_by_node"`
	// Refreshed counts links fetched again (GET /v1/media/{id}) because
	// the upload's link was about to expire.
	Refreshed int        `json:"links_refreshed,omitempty"`
	Upload    MediaPhase `json:"upload"`
	Download  MediaPhase `json:"download"`
	// Mismatches counts upload answers and downloads whose size or
	// sha256 differ from the file sent; it must be 0.
	Mismatches    int    `json:"mismatches"`
	FirstMismatch string `json:"first_mismatch,omitempty"`
}

// MediaPhase is one direction: every file, MediaParallel at a time.
type MediaPhase struct {
	Files   int     `json:"files"`
	Bytes   int64   `json:"bytes"`
	Seconds float64 `json:"seconds"`
	// MiBPerSec is Bytes over the phase's wall time, all transfers
	// together.
	MiBPerSec float64 `json:"mib_per_sec"`
	// PerFile is each transfer's time, from the request to the last
	// byte of the answer.
	PerFile Summary     `json:"per_file"`
	Server  MediaServer `json:"server"`
	// Bench is this process's CPU over the phase, per MiB moved.
	BenchCPUSeconds  float64       `json:"bench_cpu_seconds"`
	BenchCPUCores    float64       `json:"bench_cpu_cores"`
	BenchCPUMsPerMiB float64       `json:"bench_cpu_ms_per_mib"`
	Machine          MachineReport `json:"machine"`
}

// MediaServer is the server's side of a phase, from its /metrics read
// every mediaSampleEvery: resident memory before the first transfer, its
// peak and its value after the last, and the CPU used.
type MediaServer struct {
	Samples        int     `json:"samples"`
	RSSBefore      float64 `json:"rss_before_bytes"`
	RSSMax         float64 `json:"rss_max_bytes"`
	RSSAfter       float64 `json:"rss_after_bytes"`
	RSSGrowth      float64 `json:"rss_growth_bytes"` // RSSMax - RSSBefore
	HeapBefore     float64 `json:"heap_inuse_before_bytes"`
	HeapMax        float64 `json:"heap_inuse_max_bytes"`
	CPUSeconds     float64 `json:"cpu_seconds"`
	CPUCores       float64 `json:"cpu_cores"`
	CPUMsPerMiB    float64 `json:"cpu_ms_per_mib"`
	ScrapeFailures int     `json:"scrape_failures,omitempty"`
	// RSSSeries is every reading (up to 600): ms since the phase began
	// and the resident memory then.
	RSSSeries []RSSPoint `json:"rss_series,omitempty"`
}

// RSSPoint is one reading of the server's resident memory.
type RSSPoint struct {
	Ms       int64   `json:"ms"`
	RSSBytes float64 `json:"rss_bytes"`
}

// media runs media mode: one user uploads MediaCount files, then
// downloads each through the link its upload answered.
func (r *runner) media(ctx context.Context, rep *Report) error {
	cfg := r.cfg
	clients, prov, err := r.provision(ctx, 1, 1, r.clientOptions(4, 64))
	rep.Provision = prov
	if err != nil {
		return err
	}
	defer closeAll(clients)

	// Transfers get a client of their own: the run's has a 30 s timeout
	// per request, made for JSON calls, which a large file on a slow
	// link may need more than (each transfer has its own deadline).
	tr := &http.Transport{
		Proxy:               nil,
		DialContext:         (&net.Dialer{Timeout: 10 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
		MaxIdleConns:        2*cfg.MediaParallel + 4,
		MaxIdleConnsPerHost: cfg.MediaParallel + 2,
		IdleConnTimeout:     90 * time.Second,
		// A client that asked for gzip would time the decompression
		// too; random bytes do not compress anyway.
		DisableCompression: true,
	}
	defer tr.CloseIdleConnections()
	hc := &http.Client{Transport: tr}
	up := client.New(cfg.Addr, client.Options{HTTPClient: hc})
	up.SetSession(clients[0].Session())
	defer up.Close()

	// The files' hashes are taken before the clock starts, so that the
	// bench's own hashing does not slow the uploads it measures.
	src := newPayloadSource(rand.Uint64())
	n, size := cfg.MediaCount, cfg.MediaSize
	want := make([]string, n)
	hashStart := time.Now()
	for i := range want {
		h := sha256.New()
		if _, err := io.Copy(h, src.file(i, size)); err != nil {
			return err
		}
		want[i] = hex.EncodeToString(h.Sum(nil))
	}
	r.printf("payload: %d files of %s hashed in %s\n", n, FormatSize(size), time.Since(hashStart).Round(time.Millisecond))

	mr := &MediaReport{Kind: MediaKind, FileBytes: size, Files: n, Parallel: cfg.MediaParallel}
	var mismatches atomic.Int64
	var firstMismatch atomic.Value
	mismatch := func(format string, args ...any) {
		mismatches.Add(1)
		firstMismatch.CompareAndSwap(nil, fmt.Sprintf(format, args...))
	}

	answers := make([]wire.Media, n)
	upPhase, err := r.mediaPhase(ctx, "upload", n, func(ctx context.Context, i int) error {
		ctx, cancel := context.WithTimeout(ctx, transferTimeout(size))
		defer cancel()
		m, err := up.UploadMedia(ctx, src.file(i, size), "application/octet-stream", MediaKind)
		if err != nil {
			return uploadError(i, err)
		}
		answers[i] = m
		if m.Size != size || m.SHA256 != want[i] {
			mismatch("upload %d: the server stored %d bytes with sha256 %s; sent %d bytes with sha256 %s",
				i, m.Size, m.SHA256, size, want[i])
		}
		return nil
	})
	mr.Upload = upPhase.MediaPhase
	if err != nil {
		return err
	}

	base, err := url.Parse(cfg.Addr)
	if err != nil {
		return err
	}
	if u, err := base.Parse(answers[0].URL); err == nil {
		mr.DownloadHost = u.Host
		mr.ServedByNode = u.Host == base.Host
	}
	var refreshed atomic.Int64
	dlPhase, err := r.mediaPhase(ctx, "download", n, func(ctx context.Context, i int) error {
		ctx, cancel := context.WithTimeout(ctx, transferTimeout(size))
		defer cancel()
		m := answers[i]
		if time.UnixMilli(m.ExpiresTS).Before(time.Now().Add(linkMargin)) {
			// The link is checked when the request comes: one about
			// to expire is fetched afresh, as an app does for a file
			// it opens later (only a long run of large files needs it).
			fresh, err := up.Media(ctx, m.MediaID, "")
			if err != nil {
				return fmt.Errorf("download %d: fresh link: %w", i, err)
			}
			m = fresh
			refreshed.Add(1)
		}
		u, err := base.Parse(m.URL)
		if err != nil {
			return fmt.Errorf("download %d: link %q: %w", i, m.URL, err)
		}
		got, sum, err := download(ctx, hc, u.String())
		if err != nil {
			return fmt.Errorf("download %d: %w", i, err)
		}
		if got != size || sum != want[i] {
			mismatch("download %d: got %d bytes with sha256 %s; sent %d bytes with sha256 %s", i, got, sum, size, want[i])
		}
		return nil
	})
	mr.Download = dlPhase.MediaPhase
	mr.Refreshed = int(refreshed.Load())
	mr.Mismatches = int(mismatches.Load())
	if s, ok := firstMismatch.Load().(string); ok {
		mr.FirstMismatch = s
	}
	rep.Media = mr
	if err != nil {
		return err
	}

	// The whole report's figures span both phases.
	before, after := sampleOf(upPhase.first), sampleOf(dlPhase.last)
	rep.ServerBefore, rep.Server = &before, after
	if el := dlPhase.last.at.Sub(upPhase.first.at).Seconds(); el > 0 {
		rep.ServerCPUCores = (after.CPUSeconds - before.CPUSeconds) / el
	}
	benchCPU := (dlPhase.cpu1 - upPhase.cpu0).Seconds()
	wall := (dlPhase.MediaPhase.Seconds + upPhase.MediaPhase.Seconds)
	rep.Bench = BenchReport{CPUSeconds: benchCPU}
	if wall > 0 {
		rep.Bench.CPUCores = benchCPU / wall
	}
	rep.Machine = machineReport(upPhase.m0, dlPhase.m1, rep.NumCPU, rep.ServerCPUCores, rep.Bench.CPUCores)
	return nil
}

// transferTimeout bounds one transfer: a minute, plus a second per MiB
// (a link of 1 MiB/s, far slower than any this bench is meant for).
func transferTimeout(size int64) time.Duration {
	return time.Minute + time.Duration(size>>20)*time.Second
}

// uploadError says what to change when the server refuses an upload for
// a limit of its configuration.
func uploadError(i int, err error) error {
	var werr *wire.Error
	if errors.As(err, &werr) {
		switch werr.Code {
		case wire.CodeRateLimited:
			return fmt.Errorf("upload %d: %w; each upload counts against the server's --uploads-per-user-hour "+
				"(default 200): start it with a larger one, or use a fresh --run-id", i, err)
		case wire.CodeTooLarge:
			return fmt.Errorf("upload %d: %w; start the server with a larger --max-%s-bytes", i, err, MediaKind)
		case wire.CodeUnsupported:
			return fmt.Errorf("upload %d: %w; the server keeps no media", i, err)
		}
	}
	return fmt.Errorf("upload %d: %w", i, err)
}

// download fetches a link (no token: the link is its own authority) and
// returns the length and sha256 of what came, which it does not keep.
func download(ctx context.Context, hc *http.Client, link string) (int64, string, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, link, nil)
	if err != nil {
		return 0, "", err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return 0, "", err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		msg, _ := io.ReadAll(io.LimitReader(resp.Body, 512))
		return 0, "", fmt.Errorf("GET %s: %s: %s", redactQuery(link), resp.Status, strings.TrimSpace(string(msg)))
	}
	h := sha256.New()
	n, err := io.Copy(h, resp.Body)
	if err != nil {
		return n, "", fmt.Errorf("GET %s: after %d bytes: %w", redactQuery(link), n, err)
	}
	return n, hex.EncodeToString(h.Sum(nil)), nil
}

// redactQuery drops a link's query: a presigned link's signature in it
// works for anyone who reads it, in a log as well.
func redactQuery(link string) string {
	if i := strings.IndexByte(link, '?'); i >= 0 {
		return link[:i] + "?…"
	}
	return link
}

// phaseResult is a phase's report with the raw readings at its ends, so
// that the run's report can span both phases.
type phaseResult struct {
	MediaPhase
	first, last scrape
	cpu0, cpu1  time.Duration
	m0, m1      machineSample
}

// mediaPhase runs fn for every file, MediaParallel at a time, while a
// sampler reads the server's /metrics, and measures the whole.
func (r *runner) mediaPhase(ctx context.Context, name string, n int, fn func(ctx context.Context, i int) error) (phaseResult, error) {
	size := r.cfg.MediaSize
	rec := NewRecorder()
	var done atomic.Int64
	smp := r.startSampler(ctx, name)
	var res phaseResult
	res.cpu0, _ = selfUsage()
	res.m0 = sampleMachine()
	stop := r.progress(name, n, &done)
	start := time.Now()
	err := forEach(ctx, n, r.cfg.MediaParallel, func(ctx context.Context, i int) error {
		t := time.Now()
		if err := fn(ctx, i); err != nil {
			return err
		}
		rec.Record(time.Since(t))
		done.Add(1)
		return nil
	})
	el := time.Since(start)
	stop()
	res.cpu1, _ = selfUsage()
	res.m1 = sampleMachine()
	res.Server, res.first, res.last = smp.stop(ctx)

	p := &res.MediaPhase
	p.Files = int(done.Load())
	p.Bytes = int64(p.Files) * size
	p.Seconds = el.Seconds()
	p.PerFile = rec.Summary()
	mibs := float64(p.Bytes) / (1 << 20)
	if p.Seconds > 0 {
		p.MiBPerSec = mibs / p.Seconds
	}
	p.BenchCPUSeconds = (res.cpu1 - res.cpu0).Seconds()
	if p.Seconds > 0 {
		p.BenchCPUCores = p.BenchCPUSeconds / p.Seconds
	}
	if mibs > 0 {
		p.BenchCPUMsPerMiB = 1000 * p.BenchCPUSeconds / mibs
		p.Server.CPUMsPerMiB = 1000 * p.Server.CPUSeconds / mibs
	}
	p.Machine = machineReport(res.m0, res.m1, runtime.NumCPU(), p.Server.CPUCores, p.BenchCPUCores)
	if err == nil {
		r.printf("%s: %d files, %s in %s: %.1f MiB/s\n", name, p.Files, FormatSize(p.Bytes),
			el.Round(time.Millisecond), p.MiBPerSec)
	}
	return res, err
}

// serverSampler reads the server's /metrics every mediaSampleEvery until
// stopped. Its fields are its goroutine's until stop returns.
type serverSampler struct {
	r        *runner
	name     string
	t0       time.Time
	first    scrape
	ok       bool // first is a reading
	maxRSS   float64
	maxHeap  float64
	samples  int
	failures int
	series   []RSSPoint
	quit     chan struct{}
	wg       sync.WaitGroup
}

// startSampler takes the first reading before it returns: the "before"
// of the phase.
func (r *runner) startSampler(ctx context.Context, name string) *serverSampler {
	s := &serverSampler{r: r, name: name, t0: time.Now(), quit: make(chan struct{})}
	s.first, s.ok = s.take(ctx)
	s.wg.Go(func() {
		t := time.NewTicker(mediaSampleEvery)
		defer t.Stop()
		for {
			select {
			case <-s.quit:
				return
			case <-ctx.Done():
				return
			case <-t.C:
				s.take(ctx)
			}
		}
	})
	return s
}

func (s *serverSampler) take(ctx context.Context) (scrape, bool) {
	sc, err := scrapeMetrics(ctx, s.r.hc, s.r.cfg.Addr)
	if err != nil {
		if s.failures == 0 {
			s.r.printf("warning: %s: server metrics: %v (the server must serve /metrics on its API port: "+
				"a loopback --addr without TLS, and no --hide-metrics)\n", s.name, err)
		}
		s.failures++
		return scrape{at: time.Now(), values: map[string]float64{}}, false
	}
	rss := sc.val(mRSS)
	s.maxRSS = max(s.maxRSS, rss)
	s.maxHeap = max(s.maxHeap, sc.val(mHeapInuse))
	s.samples++
	if len(s.series) < maxRSSSeries {
		s.series = append(s.series, RSSPoint{Ms: sc.at.Sub(s.t0).Milliseconds(), RSSBytes: rss})
	}
	return sc, true
}

// stop ends the sampling, takes the last reading, and returns the phase's
// server figures with the first and last readings.
func (s *serverSampler) stop(ctx context.Context) (MediaServer, scrape, scrape) {
	close(s.quit)
	s.wg.Wait()
	last, ok := s.take(ctx)
	ms := MediaServer{Samples: s.samples, RSSMax: s.maxRSS, HeapMax: s.maxHeap,
		ScrapeFailures: s.failures, RSSSeries: s.series}
	if s.ok {
		ms.RSSBefore, ms.HeapBefore = s.first.val(mRSS), s.first.val(mHeapInuse)
		ms.RSSGrowth = ms.RSSMax - ms.RSSBefore
	}
	if ok {
		ms.RSSAfter = last.val(mRSS)
	}
	if s.ok && ok {
		ms.CPUSeconds = last.val(mCPU) - s.first.val(mCPU)
		if el := last.at.Sub(s.first.at).Seconds(); el > 0 {
			ms.CPUCores = ms.CPUSeconds / el
		}
	}
	return ms, s.first, last
}

func writeMedia(w io.Writer, rep *Report) {
	m := rep.Media
	fmt.Fprintf(w, "media: %d %s files of %s, %d at a time\n", m.Files, m.Kind, FormatSize(m.FileBytes), m.Parallel)
	served := "the node"
	if !m.ServedByNode {
		served = m.DownloadHost + " (not the node: its figures below are at rest)"
	}
	fmt.Fprintf(w, "  downloads served by\t%s\n", served)
	fmt.Fprintf(w, "  mismatches\t%d (size or sha256 of an upload answer or a download)\n", m.Mismatches)
	if m.FirstMismatch != "" {
		fmt.Fprintf(w, "  first mismatch\t%s\n", m.FirstMismatch)
	}
	if m.Refreshed > 0 {
		fmt.Fprintf(w, "  links refreshed\t%d (about to expire)\n", m.Refreshed)
	}
	fmt.Fprintf(w, "transfer\tfiles\tMiB/s\tseconds\tp50 ms\tp90 ms\tmax ms\n")
	for _, ph := range []struct {
		name string
		p    MediaPhase
	}{{"upload", m.Upload}, {"download", m.Download}} {
		fmt.Fprintf(w, "  %s\t%d\t%.1f\t%.2f\t%s\t%s\t%s\n", ph.name, ph.p.Files, ph.p.MiBPerSec, ph.p.Seconds,
			f3(ph.p.PerFile.P50Ms), f3(ph.p.PerFile.P90Ms), f3(ph.p.PerFile.MaxMs))
	}
	fmt.Fprintf(w, "server during\trss before\trss max\tgrowth\theap max\tcpu cores\tcpu ms/MiB\tsamples\n")
	for _, ph := range []struct {
		name string
		p    MediaPhase
	}{{"uploads", m.Upload}, {"downloads", m.Download}} {
		s := ph.p.Server
		fmt.Fprintf(w, "  %s\t%s\t%s\t%s\t%s\t%.2f\t%.2f\t%d\n", ph.name, mib(s.RSSBefore), mib(s.RSSMax),
			mib(s.RSSGrowth), mib(s.HeapMax), s.CPUCores, s.CPUMsPerMiB, s.Samples)
	}
	fmt.Fprintf(w, "bench during\tcpu cores\tcpu ms/MiB\tmachine busy\tother\n")
	for _, ph := range []struct {
		name string
		p    MediaPhase
	}{{"uploads", m.Upload}, {"downloads", m.Download}} {
		fmt.Fprintf(w, "  %s\t%.2f\t%.2f\t%.2f cores\t%.2f cores\n", ph.name, ph.p.BenchCPUCores, ph.p.BenchCPUMsPerMiB,
			ph.p.Machine.BusyCores, ph.p.Machine.OtherCores)
	}
}
