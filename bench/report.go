package bench

import (
	"fmt"
	"io"
	"sort"
	"strings"
	"text/tabwriter"
	"time"
)

// Report is the result of a Run; --json prints it.
type Report struct {
	Mode       string       `json:"mode"`
	RunID      string       `json:"run_id"`
	Config     ReportConfig `json:"config"`
	GOMAXPROCS int          `json:"gomaxprocs"`
	NumCPU     int          `json:"num_cpu"`
	GoVersion  string       `json:"go_version"`

	Provision ProvisionReport `json:"provision"`
	Connect   ConnectReport   `json:"connect"`
	Idle      *IdleReport     `json:"idle,omitempty"`
	Traffic   *TrafficReport  `json:"traffic,omitempty"`
	Group     *GroupReport    `json:"group,omitempty"`
	Presence  *PresenceReport `json:"presence,omitempty"`
	Media     *MediaReport    `json:"media,omitempty"`
	Business  *BusinessReport `json:"business,omitempty"`

	// Server is the server's state at the end of the measurement (from its
	// /metrics); ServerBefore, for the traffic modes, is it before traffic.
	Server       ServerSample  `json:"server"`
	ServerBefore *ServerSample `json:"server_before,omitempty"`
	// ServerCPUCores is the server's CPU use over the measured window
	// (process_cpu_seconds_total), in cores; per message for the traffic
	// modes (group mode: per group message, and per delivery to a
	// connected device; presence mode: per change, and per presence frame
	// delivered to a follower). Business mode: over both phases' windows
	// together, and per phase in Business.Phases.
	ServerCPUCores             float64       `json:"server_cpu_cores"`
	ServerCPUSeconds           float64       `json:"server_cpu_seconds,omitempty"` // presence, business modes
	ServerCPUMicrosPerMsg      float64       `json:"server_cpu_us_per_msg,omitempty"`
	ServerCPUMicrosPerChange   float64       `json:"server_cpu_us_per_change,omitempty"`
	ServerCPUMicrosPerDelivery float64       `json:"server_cpu_us_per_delivery,omitempty"`
	Bench                      BenchReport   `json:"bench"`
	Machine                    MachineReport `json:"machine"`
}

// BenchReport is what the load generator itself cost, over the measured
// window (idle mode: connecting and holding).
type BenchReport struct {
	CPUSeconds      float64 `json:"cpu_seconds"`
	CPUCores        float64 `json:"cpu_cores"`
	CPUMicrosPerMsg float64 `json:"cpu_us_per_msg,omitempty"`
	// CPUMicrosPerChange: presence mode, per change made.
	CPUMicrosPerChange float64 `json:"cpu_us_per_change,omitempty"`
	// CPUMicrosPerDelivery: group mode, per message frame received;
	// presence mode, per presence frame matched to a change.
	CPUMicrosPerDelivery float64 `json:"cpu_us_per_delivery,omitempty"`
	PeakRSSBytes         int64   `json:"peak_rss_bytes"`
}

// ReportConfig is the Config a report was made with, durations as text.
type ReportConfig struct {
	Addr        string  `json:"addr"`
	Mode        string  `json:"mode"`
	Conns       int     `json:"conns,omitempty"`
	Hold        string  `json:"hold,omitempty"`
	Settle      string  `json:"settle,omitempty"`
	Pairs       int     `json:"pairs,omitempty"`
	Inflight    int     `json:"inflight,omitempty"`
	Duration    string  `json:"duration,omitempty"`
	Warmup      string  `json:"warmup,omitempty"`
	Rate        float64 `json:"rate,omitempty"`
	Drain       string  `json:"drain,omitempty"`
	Size        int     `json:"size,omitempty"`
	RunID       string  `json:"run_id"`
	Sessions    string  `json:"sessions,omitempty"`
	Concurrency int     `json:"concurrency"`

	GroupMembers   int `json:"group_members,omitempty"`
	GroupDevices   int `json:"group_devices,omitempty"`
	GroupConnected int `json:"group_connected,omitempty"`
	GroupSenders   int `json:"group_senders,omitempty"`

	Follows int     `json:"follows,omitempty"`
	Churn   float64 `json:"churn,omitempty"`

	MediaSize     int64 `json:"media_size,omitempty"`
	MediaCount    int   `json:"media_count,omitempty"`
	MediaParallel int   `json:"media_parallel,omitempty"`

	Businesses    int      `json:"businesses,omitempty"`
	BusinessFile  string   `json:"business_file,omitempty"`
	AdminAddr     string   `json:"admin_addr,omitempty"`
	RateLimit     int      `json:"rate_limit,omitempty"`
	SendRate      float64  `json:"send_rate,omitempty"`
	Phases        string   `json:"phases,omitempty"`
	WebhookListen string   `json:"webhook_listen,omitempty"`
	Nodes         []string `json:"nodes,omitempty"`
}

func reportConfigOf(c Config) ReportConfig {
	rc := ReportConfig{Addr: c.Addr, Mode: c.Mode, RunID: c.RunID, Sessions: c.SessionsFile,
		Concurrency: c.Concurrency, Drain: c.Drain.String(), Size: c.Size}
	switch c.Mode {
	case ModeIdle:
		rc.Conns, rc.Hold, rc.Settle = c.Conns, c.Hold.String(), c.Settle.String()
	case ModePresence:
		rc.Conns, rc.Duration, rc.Follows, rc.Churn = c.Conns, c.Duration.String(), c.Follows, c.Churn
	case ModeMedia:
		rc.Drain, rc.Size = "", 0
		rc.MediaSize, rc.MediaCount, rc.MediaParallel = c.MediaSize, c.MediaCount, c.MediaParallel
	case ModeBusiness:
		rc.Size = 0
		rc.Conns, rc.Inflight, rc.Duration, rc.Warmup, rc.Rate = c.Conns, c.Inflight, c.Duration.String(), c.Warmup.String(), c.Rate
		rc.Businesses, rc.BusinessFile, rc.AdminAddr, rc.RateLimit = c.Businesses, c.BusinessFile, c.AdminAddr, c.RateLimit
		rc.SendRate, rc.Phases, rc.WebhookListen, rc.Nodes = c.SendRate, c.Phases, c.WebhookListen, c.Nodes
	default:
		rc.Pairs, rc.Inflight, rc.Duration, rc.Warmup = c.Pairs, c.Inflight, c.Duration.String(), c.Warmup.String()
		if c.Mode == ModeRate || c.Mode == ModeGroup {
			rc.Rate = c.Rate
		}
		if c.Mode == ModeGroup {
			rc.Pairs = 0
			rc.GroupMembers, rc.GroupDevices, rc.GroupConnected, rc.GroupSenders =
				c.GroupMembers, c.GroupDevices, c.GroupConnected, c.GroupSenders
		}
	}
	return rc
}

func (r *runner) printConfig(rep Report) {
	c := r.cfg
	var b strings.Builder
	fmt.Fprintf(&b, "tern bench: mode=%s addr=%s", c.Mode, c.Addr)
	switch c.Mode {
	case ModeIdle:
		fmt.Fprintf(&b, " conns=%d hold=%s settle=%s", c.Conns, c.Hold, c.Settle)
	case ModePresence:
		fmt.Fprintf(&b, " conns=%d follows=%d churn=%g/s duration=%s drain=%s",
			c.Conns, c.Follows, c.Churn, c.Duration, c.Drain)
	case ModeMedia:
		fmt.Fprintf(&b, " media-size=%s media-count=%d media-parallel=%d kind=%s (%s in all)",
			FormatSize(c.MediaSize), c.MediaCount, c.MediaParallel, MediaKind, FormatSize(c.MediaSize*int64(c.MediaCount)))
	case ModeBusiness:
		fmt.Fprintf(&b, " businesses=%d customers=%d phases=%s rate=%g/s inflight=%d", c.Businesses, c.Conns, c.Phases, c.Rate, c.Inflight)
		if c.SendRate > 0 {
			fmt.Fprintf(&b, " send-rate=%g/s", c.SendRate)
		}
		fmt.Fprintf(&b, " rate-limit=%d duration=%s warmup=%s drain=%s", c.RateLimit, c.Duration, c.Warmup, c.Drain)
		if len(c.Nodes) > 0 {
			fmt.Fprintf(&b, " nodes=%s", strings.Join(c.Nodes, ","))
		}
	case ModeGroup:
		fmt.Fprintf(&b, " members=%d devices=%d connected=%d senders=%d rate=%g/s inflight=%d duration=%s warmup=%s drain=%s size=%d",
			c.GroupMembers, c.GroupDevices, c.GroupConnected, c.GroupSenders, c.Rate, c.Inflight, c.Duration, c.Warmup, c.Drain, c.Size)
	default:
		fmt.Fprintf(&b, " pairs=%d inflight=%d duration=%s warmup=%s drain=%s", c.Pairs, c.Inflight, c.Duration, c.Warmup, c.Drain)
		if c.Mode == ModeRate {
			fmt.Fprintf(&b, " rate=%g/s", c.Rate)
		}
		if c.Size > 0 {
			fmt.Fprintf(&b, " size=%d", c.Size)
		}
	}
	fmt.Fprintf(&b, " concurrency=%d GOMAXPROCS=%d NumCPU=%d %s\n", c.Concurrency, rep.GOMAXPROCS, rep.NumCPU, rep.GoVersion)
	r.printf("%s", b.String())
}

func mib(b float64) string { return fmt.Sprintf("%.1f MiB", b/(1<<20)) }

func (r *runner) printReport(rep *Report) {
	var b strings.Builder
	w := tabwriter.NewWriter(&b, 0, 0, 2, ' ', 0)
	fmt.Fprintln(w)
	switch {
	case rep.Idle != nil:
		writeIdle(w, rep)
	case rep.Traffic != nil:
		writeTraffic(w, rep)
	case rep.Group != nil:
		writeGroup(w, rep)
	case rep.Presence != nil:
		writePresence(w, rep)
	case rep.Media != nil:
		writeMedia(w, rep)
	case rep.Business != nil:
		writeBusiness(w, rep)
	}
	perDelivery := "cpu per delivery"
	if rep.Presence != nil {
		perDelivery = "cpu per presence event"
	}
	fmt.Fprintf(w, "server\n")
	fmt.Fprintf(w, "  rss at end\t%s\n", mib(rep.Server.RSSBytes))
	if rep.ServerBefore != nil {
		fmt.Fprintf(w, "  rss before traffic\t%s\n", mib(rep.ServerBefore.RSSBytes))
	}
	fmt.Fprintf(w, "  heap in use at end\t%s\n", mib(rep.Server.HeapInuseBytes))
	fmt.Fprintf(w, "  goroutines at end\t%.0f\n", rep.Server.Goroutines)
	fmt.Fprintf(w, "  cpu (measured window)\t%.2f cores (%.0f%% of %d CPUs)", rep.ServerCPUCores,
		100*rep.ServerCPUCores/float64(rep.NumCPU), rep.NumCPU)
	if rep.ServerCPUSeconds > 0 {
		fmt.Fprintf(w, ", %.1f s", rep.ServerCPUSeconds)
	}
	fmt.Fprintln(w)
	if rep.ServerCPUMicrosPerMsg > 0 {
		fmt.Fprintf(w, "  cpu per message\t%.1f µs\n", rep.ServerCPUMicrosPerMsg)
	}
	if rep.ServerCPUMicrosPerChange > 0 {
		fmt.Fprintf(w, "  cpu per change\t%.1f µs\n", rep.ServerCPUMicrosPerChange)
	}
	if rep.ServerCPUMicrosPerDelivery > 0 {
		fmt.Fprintf(w, "  %s\t%.2f µs\n", perDelivery, rep.ServerCPUMicrosPerDelivery)
	}
	fmt.Fprintf(w, "bench (this process)\n")
	fmt.Fprintf(w, "  cpu (measured window)\t%.2f cores (%.0f%% of %d CPUs), %.1f s\n", rep.Bench.CPUCores,
		100*rep.Bench.CPUCores/float64(rep.NumCPU), rep.NumCPU, rep.Bench.CPUSeconds)
	if rep.Bench.CPUMicrosPerMsg > 0 {
		fmt.Fprintf(w, "  cpu per message\t%.1f µs\n", rep.Bench.CPUMicrosPerMsg)
	}
	if rep.Bench.CPUMicrosPerChange > 0 {
		fmt.Fprintf(w, "  cpu per change\t%.1f µs\n", rep.Bench.CPUMicrosPerChange)
	}
	if rep.Bench.CPUMicrosPerDelivery > 0 {
		fmt.Fprintf(w, "  %s\t%.2f µs\n", perDelivery, rep.Bench.CPUMicrosPerDelivery)
	}
	fmt.Fprintf(w, "  peak rss\t%s\n", mib(float64(rep.Bench.PeakRSSBytes)))
	if m := rep.Machine; m.BusyCores > 0 || m.LoadEnd > 0 {
		fmt.Fprintf(w, "machine\n")
		fmt.Fprintf(w, "  cpu, all processes\t%.2f cores (%.0f%%); other than server and bench %.2f cores\n",
			m.BusyCores, 100*m.BusyCores/float64(rep.NumCPU), m.OtherCores)
		fmt.Fprintf(w, "  load average (1m)\t%.2f at start, %.2f at end\n", m.LoadStart, m.LoadEnd)
	}
	_ = w.Flush()
	r.printf("%s", b.String())
}

func writeIdle(w io.Writer, rep *Report) {
	ir := rep.Idle
	fmt.Fprintf(w, "idle connections (held %s)\n", time.Duration(ir.HoldSeconds*float64(time.Second)))
	fmt.Fprintf(w, "  connections held\t%d of %d (server reports %.0f), %d reconnects\n", ir.Connected, ir.Conns, ir.ServerConns, ir.Reconnects)
	fmt.Fprintf(w, "  server rss\t%s → %s (Δ %s)\n", mib(ir.Before.RSSBytes), mib(ir.After.RSSBytes), mib(ir.RSSDeltaBytes))
	fmt.Fprintf(w, "  rss per connection\t%.0f bytes (%.1f KiB)\n", ir.BytesPerConn, ir.KiBPerConn)
	fmt.Fprintf(w, "  heap in use\t%s → %s, %.0f bytes (%.1f KiB) per connection\n", mib(ir.Before.HeapInuseBytes),
		mib(ir.After.HeapInuseBytes), ir.HeapBytesPerConn, ir.HeapBytesPerConn/1024)
	fmt.Fprintf(w, "  goroutines\t%.0f → %.0f, %.2f per connection\n", ir.Before.Goroutines, ir.After.Goroutines, ir.GoroutinesPerConn)
}

func writeTraffic(w io.Writer, rep *Report) {
	tr := rep.Traffic
	fmt.Fprintf(w, "results (%s measured after %s warmup)\n",
		time.Duration(tr.WindowSeconds*float64(time.Second)), time.Duration(tr.WarmupSeconds*float64(time.Second)))
	if tr.OfferedRate > 0 {
		fmt.Fprintf(w, "  offered rate\t%.0f msg/s\n", tr.OfferedRate)
	}
	fmt.Fprintf(w, "  sent rate\t%.1f msg/s (%d sends started in the window)\n", tr.SendRate, tr.SentInWindow)
	fmt.Fprintf(w, "  completed rate\t%.1f msg/s (%d delivered receipts in the window)\n", tr.CompletedRate, tr.CompletedInWindow)
	fmt.Fprintf(w, "  server sent rate\t%.1f msg/s (tern_messages_sent_total)\n", tr.ServerSentRate)
	fmt.Fprintf(w, "  totals\tissued %d, durable %d, received %d, delivered %d\n", tr.Issued, tr.Durable, tr.Received, tr.Delivered)
	fmt.Fprintf(w, "  errors\t%d%s\n", tr.Errors, codes(tr.ErrorCodes))
	fmt.Fprintf(w, "  lost\t%d (durable, no delivered receipt %s after the end); not received %d; unanswered %d\n",
		tr.Lost, time.Duration(tr.DrainSecs*float64(time.Second)).Round(time.Millisecond), tr.NotReceived, tr.Unanswered)
	fmt.Fprintf(w, "  duplicates\t%d (sdk dedupe drops %d, reconnects %d, resends %d)\n", tr.Duplicates, tr.SDKDuplicates, tr.Reconnects, tr.Resends)
	if tr.UnmatchedReceipts > 0 || tr.ForeignMessages > 0 {
		fmt.Fprintf(w, "  from other runs\t%d receipts, %d messages\n", tr.UnmatchedReceipts, tr.ForeignMessages)
	}
	from := "send"
	if tr.OfferedRate > 0 {
		from = "due"
	}
	fmt.Fprintf(w, "latency (ms)\tcount\tp50\tp90\tp99\tp99.9\tmax\tmean\n")
	row := func(name string, s Summary) {
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", name, s.Count,
			f3(s.P50Ms), f3(s.P90Ms), f3(s.P99Ms), f3(s.P999Ms), f3(s.MaxMs), f3(s.MeanMs))
	}
	row(from+"→sent (durable)", tr.Sent)
	row(from+"→received", tr.Recv)
	row(from+"→delivered", tr.Delivery)
	if tr.Lag != nil {
		row("schedule lag", *tr.Lag)
	}
}

func writeGroup(w io.Writer, rep *Report) {
	g := rep.Group
	fmt.Fprintf(w, "group %s (%s measured after %s warmup)\n", g.ChatID,
		time.Duration(g.WindowSeconds*float64(time.Second)), time.Duration(g.WarmupSeconds*float64(time.Second)))
	fmt.Fprintf(w, "  members\t%d × %d devices: %d members connected (%d sockets), %d devices offline; %d senders\n",
		g.Members, g.DevicesPerMember, g.ConnectedMembers, g.ConnectedDevices, g.OfflineDevices, g.Senders)
	fmt.Fprintf(w, "  offered rate\t%.0f group msg/s (%d due by the end of the window", g.OfferedRate, g.Scheduled)
	if n := g.Scheduled - g.Issued; n > 0 {
		fmt.Fprintf(w, "; %d never sent: the senders fell behind", n)
	}
	fmt.Fprintf(w, ")\n")
	fmt.Fprintf(w, "  sent rate\t%.1f group msg/s (%d sent answers in the window)\n", g.SentRate, g.SentInWindow)
	fmt.Fprintf(w, "  server sent rate\t%.1f msg/s (tern_messages_sent_total)\n", g.ServerSentRate)
	fmt.Fprintf(w, "  deliveries\t%.0f/s to connected devices (%d message frames in the window)\n", g.DeliveryRate, g.DeliveriesInWindow)
	fmt.Fprintf(w, "  totals\tissued %d, durable %d, complete %d; deliveries %d of %d expected (%d per message)\n",
		g.Issued, g.Durable, g.Complete, g.Deliveries, g.ExpectedDeliveries, g.ExpectedPerMessage)
	fmt.Fprintf(w, "  lost\t%d deliveries, %d messages incomplete (after a %s drain); unanswered %d\n",
		g.Lost, g.Incomplete, time.Duration(g.DrainSeconds*float64(time.Second)).Round(time.Millisecond), g.Unanswered)
	fmt.Fprintf(w, "  errors\t%d%s\n", g.Errors, codes(g.ErrorCodes))
	fmt.Fprintf(w, "  duplicates\t%d (echoes to the sending device %d; sdk dedupe drops %d, reconnects %d, resends %d)\n",
		g.Duplicates, g.Echoes, g.SDKDuplicates, g.Reconnects, g.Resends)
	fmt.Fprintf(w, "  receipts\t%d frames at the authors' devices, %d msg_ids, %d (message, reader) pairs\n", g.Receipts, g.ReceiptIDs, g.ReceiptPairs)
	if g.Foreign > 0 {
		fmt.Fprintf(w, "  from other runs\t%d messages\n", g.Foreign)
	}
	fmt.Fprintf(w, "latency (ms)\tcount\tp50\tp90\tp99\tp99.9\tmax\tmean\n")
	row := func(name string, s Summary) {
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", name, s.Count,
			f3(s.P50Ms), f3(s.P90Ms), f3(s.P99Ms), f3(s.P999Ms), f3(s.MaxMs), f3(s.MeanMs))
	}
	row("due→sent (durable)", g.Sent)
	row("due→last device", g.Last)
	row("due→each device", g.Each)
	row("schedule lag", g.Lag)
	if c := g.Server; c != nil {
		fmt.Fprintf(w, "server per group message (its /metrics; wall time, not cpu)\n")
		fmt.Fprintf(w, "  send→sent queued\t%.2f ms mean (store the message and its inbox events, route them)\n", c.SendMs)
		fmt.Fprintf(w, "  routing\t%.2f ms (fan-outs and receipts)\n", c.RouteMs)
		fmt.Fprintf(w, "  store: acks\t%.1f calls, %.2f ms; %.0f events acked, %.0f delivered receipts\n",
			c.StoreAcks, c.StoreAckMs, c.EventsAcked, c.Receipts)
		fmt.Fprintf(w, "  store: inbox reads\t%.2f ms\n", c.StoreInboxMs)
		fmt.Fprintf(w, "  frames out\t%.0f\n", c.FramesOut)
	}
}

func writePresence(w io.Writer, rep *Report) {
	p := rep.Presence
	fmt.Fprintf(w, "presence (%s of churn, %s drain)\n", time.Duration(p.WindowSeconds*float64(time.Second)),
		time.Duration(p.DrainSeconds*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(w, "  devices\t%d, one per user, each following %d others (%d follow edges)\n", p.Devices, p.Follows, p.FollowEdges)
	fmt.Fprintf(w, "  subscribe\tevery device answered in %s (%d presence frames)\n",
		time.Duration(p.SubscribeSeconds*float64(time.Second)).Round(time.Millisecond), p.InitialFrames)
	fmt.Fprintf(w, "  churn\t%g of the devices/s = %g changes/s offered (%d due), cooldown %s\n",
		p.Churn, p.OfferedRate, p.Scheduled, time.Duration(p.CooldownSeconds*float64(time.Second)))
	fmt.Fprintf(w, "  changes\t%d made: %d offline, %d online; %d skipped (no device free), %d reconnects failed\n",
		p.Changes, p.ToOffline, p.ToOnline, p.Skipped, p.ConnectFailed)
	fmt.Fprintf(w, "  devices online\t%d at start, %d at end, %d at the fewest\n", p.OnlineStart, p.OnlineEnd, p.OnlineMin)
	fmt.Fprintf(w, "  events\t%d received of %d expected (followers online and answered at each change, %.1f per change)\n",
		p.Received, p.Expected, float64(p.Expected)/float64(max(p.Changes, 1)))
	fmt.Fprintf(w, "  delivered rate\t%.1f presence events/s (%d in the window)\n", p.EventRate, p.ReceivedInWindow)
	fmt.Fprintf(w, "  missing\t%d (follower still online after the drain); %d cut off by the follower's own going offline\n",
		p.Missing, p.LeftBefore)
	fmt.Fprintf(w, "  other frames\t%d unmatched, %d about users not followed; %d resubscribes answered with %d frames\n",
		p.Unmatched, p.Foreign, p.Resubscribes, p.ResubscribeFrames)
	fmt.Fprintf(w, "  errors\t%d%s; sdk reconnects %d\n", p.Errors, codes(p.ErrorCodes), p.Reconnects)
	fmt.Fprintf(w, "  server cpu at rest\t%.3f cores over %s before the churn (all connected and subscribed)\n",
		p.ServerRestCores, time.Duration(p.RestSeconds*float64(time.Second)).Round(time.Millisecond))
	fmt.Fprintf(w, "  server cpu above rest\t%.2f s in the window: %.1f µs per change, %.2f µs per event\n",
		p.ServerAboveRestSeconds, p.ServerAboveRestMicrosPerChange, p.ServerAboveRestMicrosPerEvent)
	if p.FramesOutPerChange > 0 {
		fmt.Fprintf(w, "  server frames out\t%.1f per change (tern_frames_out_total)\n", p.FramesOutPerChange)
	}
	fmt.Fprintf(w, "latency (ms)\tcount\tp50\tp90\tp99\tp99.9\tmax\tmean\n")
	row := func(name string, s Summary) {
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", name, s.Count,
			f3(s.P50Ms), f3(s.P90Ms), f3(s.P99Ms), f3(s.P999Ms), f3(s.MaxMs), f3(s.MeanMs))
	}
	row("change→follower", p.Latency)
	row("online→follower", p.OnlineLatency)
	row("offline→follower", p.OfflineLatency)
	row("reconnect (dial)", p.Connect)
	row("close (handshake)", p.Close)
	row("schedule lag", p.Lag)
}

// f3 prints a millisecond value with three significant digits or so.
func f3(v float64) string {
	switch {
	case v >= 100:
		return fmt.Sprintf("%.0f", v)
	case v >= 10:
		return fmt.Sprintf("%.1f", v)
	default:
		return fmt.Sprintf("%.2f", v)
	}
}

func codes(m map[string]int64) string {
	if len(m) == 0 {
		return ""
	}
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = fmt.Sprintf("%s %d", k, m[k])
	}
	return " (" + strings.Join(parts, ", ") + ")"
}
