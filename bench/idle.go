package bench

import (
	"context"
	"sync"
	"time"
)

// IdleReport is what idle mode measured: the server's cost of holding
// connected, silent devices.
type IdleReport struct {
	Conns             int          `json:"conns"`
	Connected         int          `json:"connected"`          // client side, at the end of the hold
	ServerConns       float64      `json:"server_connections"` // tern_connections at the end of the hold
	HoldSeconds       float64      `json:"hold_seconds"`
	Before            ServerSample `json:"before"`
	After             ServerSample `json:"after"`
	RSSDeltaBytes     float64      `json:"rss_delta_bytes"`
	BytesPerConn      float64      `json:"rss_bytes_per_conn"`
	KiBPerConn        float64      `json:"rss_kib_per_conn"`
	HeapBytesPerConn  float64      `json:"heap_inuse_bytes_per_conn"`
	GoroutinesPerConn float64      `json:"goroutines_per_conn"`
	Reconnects        int64        `json:"reconnects"`
}

func (r *runner) idle(ctx context.Context, rep *Report) error {
	cfg := r.cfg
	// Idle devices get next to nothing, so their buffers stay tiny.
	clients, prov, err := r.provision(ctx, cfg.Conns, 1, r.clientOptions(4, 64))
	rep.Provision = prov
	if err != nil {
		return err
	}
	defer closeAll(clients)

	r.printf("settle: %s before the baseline\n", cfg.Settle)
	if !sleepCtx(ctx, cfg.Settle) {
		return ctx.Err()
	}
	before := r.scrape(ctx, "baseline")

	cpu0, _ := selfUsage()
	m0 := sampleMachine()
	conn, err := r.connectAll(ctx, clients, false)
	rep.Connect = conn
	if err != nil {
		return err
	}
	// A real app reads its events; so does each bench device, on one
	// goroutine, which exits when its client closes.
	var wg sync.WaitGroup
	for _, c := range clients {
		wg.Go(func() {
			for range c.Events() {
			}
		})
	}
	r.printf("hold: %s\n", cfg.Hold)
	if !sleepCtx(ctx, cfg.Hold) {
		return ctx.Err()
	}
	after := r.scrape(ctx, "after hold")
	cpu1, _ := selfUsage()
	m1 := sampleMachine()

	ir := &IdleReport{Conns: cfg.Conns, HoldSeconds: cfg.Hold.Seconds(),
		Before: sampleOf(before), After: sampleOf(after)}
	for _, c := range clients {
		if c.Connected() {
			ir.Connected++
		}
		ir.Reconnects += c.Stats().Reconnects
	}
	ir.ServerConns = ir.After.Connections
	ir.RSSDeltaBytes = ir.After.RSSBytes - ir.Before.RSSBytes
	if n := float64(ir.Connected); n > 0 {
		ir.BytesPerConn = ir.RSSDeltaBytes / n
		ir.KiBPerConn = ir.BytesPerConn / 1024
		ir.HeapBytesPerConn = (ir.After.HeapInuseBytes - ir.Before.HeapInuseBytes) / n
		ir.GoroutinesPerConn = (ir.After.Goroutines - ir.Before.Goroutines) / n
	}
	rep.Idle = ir
	rep.Server = ir.After
	el := after.at.Sub(before.at).Seconds()
	rep.Bench = BenchReport{CPUSeconds: (cpu1 - cpu0).Seconds()}
	if el > 0 {
		rep.Bench.CPUCores = rep.Bench.CPUSeconds / el
		rep.ServerCPUCores = (ir.After.CPUSeconds - ir.Before.CPUSeconds) / el
	}
	rep.Machine = machineReport(m0, m1, rep.NumCPU, rep.ServerCPUCores, rep.Bench.CPUCores)

	closeStart := time.Now()
	closeAll(clients)
	wg.Wait()
	r.printf("close: %d sockets in %s\n", len(clients), time.Since(closeStart).Round(time.Millisecond))
	return nil
}
