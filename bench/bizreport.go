package bench

import (
	"fmt"
	"io"
	"time"
)

// BusinessReport is what business mode measured: a phase per direction,
// each with its own warmup, window and drain, one after the other.
type BusinessReport struct {
	Businesses int `json:"businesses"`
	// Made are the businesses made this run (the others came from the
	// business file).
	Made      int `json:"made"`
	Customers int `json:"customers"` // connected, one device each
	Nodes     int `json:"nodes"`     // the REST sends went to this many nodes in turn
	// RateLimit is the rate_per_second set on each business with the 24-hour
	// rule off; 0 when the bench had no admin token and left them as they were.
	RateLimit int `json:"rate_limit"`
	// Backlog are the POSTs that came after the webhooks were subscribed
	// and before the first phase: what the businesses' queues held from
	// before this run.
	Backlog  int64               `json:"backlog_posts"`
	Receiver ReceiverReport      `json:"receiver"`
	Webhooks *BizWebhooksReport  `json:"webhooks,omitempty"`
	Sends    *BizSendsReport     `json:"sends,omitempty"`
	Phases   map[string]BizPhase `json:"phases,omitempty"`
}

// BizPhase is what one phase's measured window cost: the server (every
// node's /metrics summed), this process, the machine.
type BizPhase struct {
	WindowSeconds    float64       `json:"window_seconds"`
	ServerCPUSeconds float64       `json:"server_cpu_seconds"`
	ServerCPUCores   float64       `json:"server_cpu_cores"`
	BenchCPUSeconds  float64       `json:"bench_cpu_seconds"`
	BenchCPUCores    float64       `json:"bench_cpu_cores"`
	Machine          MachineReport `json:"machine"`
	// ServerWebhooksOK and ServerWebhooksFailed are tern_webhooks_total over
	// the window, by result.
	ServerWebhooksOK     float64 `json:"server_webhooks_ok"`
	ServerWebhooksFailed float64 `json:"server_webhooks_failed"`
}

// BizWebhooksReport is the webhooks phase: customers write to the
// businesses at Rate messages/s in all (open loop, due times spread
// evenly), and the receiver times each message from its due time to its
// webhook POST. Counts named ...InWindow cover the window by when they
// happened; latencies the messages due in it.
type BizWebhooksReport struct {
	OfferedRate   float64 `json:"offered_rate"` // customer messages/s
	WarmupSeconds float64 `json:"warmup_seconds"`
	WindowSeconds float64 `json:"window_seconds"`
	DrainSeconds  float64 `json:"drain_seconds"`

	Scheduled  int64            `json:"scheduled"` // due before the window's end
	Issued     int64            `json:"issued"`    // sends started
	Durable    int64            `json:"durable"`   // answered sent
	Errors     int64            `json:"errors"`
	ErrorCodes map[string]int64 `json:"error_codes,omitempty"`
	Unanswered int64            `json:"unanswered"`

	SentInWindow int64   `json:"sent_in_window"`
	SentRate     float64 `json:"sent_rate"`
	// Posted counts this run's messages the receiver got (each once);
	// PostedRate those in the window per second. PostsRate is every
	// signed POST in the window per second (statuses, too).
	Posted         int64   `json:"posted"`
	PostedInWindow int64   `json:"posted_in_window"`
	PostedRate     float64 `json:"posted_rate"`
	PostsInWindow  int64   `json:"posts_in_window"`
	PostsRate      float64 `json:"posts_rate"`
	// Lost are durable messages no POST brought by the end of the drain
	// (the server may still hold them in the business's queue);
	// Duplicates messages posted more than once.
	Lost       int64 `json:"lost"`
	Duplicates int64 `json:"duplicates"`
	// Ticked are the delivered receipts (✓✓) the customers got for their
	// messages: the server acks a queue event after the webhook's 2xx.
	Ticked   int64 `json:"ticked"`
	Unticked int64 `json:"unticked"` // posted, but no ✓✓ by the end

	Sent    Summary `json:"due_to_sent"`
	Webhook Summary `json:"due_to_webhook"`
	Tick    Summary `json:"due_to_delivered_receipt"`
	Lag     Summary `json:"schedule_lag"`

	ServerCPUMicrosPerPost float64 `json:"server_cpu_us_per_post,omitempty"`
	BenchCPUMicrosPerMsg   float64 `json:"bench_cpu_us_per_msg,omitempty"`
}

// BizSendsReport is the sends phase: the businesses POST text messages
// to their customers through the Cloud API, from Inflight workers, as
// fast as they go (closed loop) or at SendRate in all (open loop; then
// latencies count from the due time). Each accepted send owes a message
// at the customer and two statuses at the receiver: sent (the business's
// own message, echoed into its queue) and delivered (the customer's
// device acked it).
type BizSendsReport struct {
	Workers       int     `json:"workers"`
	OfferedRate   float64 `json:"offered_rate,omitempty"` // open loop
	WarmupSeconds float64 `json:"warmup_seconds"`
	WindowSeconds float64 `json:"window_seconds"`
	DrainSeconds  float64 `json:"drain_seconds"`

	// Scheduled is, open loop, the sends due before the window's end;
	// those not Issued never went out (the workers fell behind).
	Scheduled int64 `json:"scheduled,omitempty"`
	Issued    int64 `json:"issued"`   // POSTs started
	Accepted  int64 `json:"accepted"` // answered 200 with a message id
	// Errors are POSTs answered otherwise, by Graph error code (130429:
	// the number's rate; a closed-loop worker then waits 50 ms) or
	// http_<status> or transport.
	Errors     int64            `json:"errors"`
	ErrorCodes map[string]int64 `json:"error_codes,omitempty"`
	Unanswered int64            `json:"unanswered"`

	AcceptedInWindow int64   `json:"accepted_in_window"`
	AcceptedRate     float64 `json:"accepted_rate"`
	// ServerSendMs is the server's own mean time per send request
	// (tern_http_seconds of the route over the window: every request,
	// those refused for the rate included).
	ServerSendMs float64 `json:"server_send_ms,omitempty"`

	Received         int64   `json:"received"` // distinct messages at the customers
	ReceivedInWindow int64   `json:"received_in_window"`
	ReceivedRate     float64 `json:"received_rate"`
	Lost             int64   `json:"lost"`       // accepted, not at the customer by the end
	Unexpected       int64   `json:"unexpected"` // at a customer, but not answered 200
	Duplicates       int64   `json:"duplicates"`

	// Statuses owed (2 × Accepted) and posted for this run's messages;
	// StatusesRate the status entries posted in the window per second.
	StatusesOwed      int64   `json:"statuses_owed"`
	StatusesSent      int64   `json:"statuses_sent"`
	StatusesDelivered int64   `json:"statuses_delivered"`
	StatusesRead      int64   `json:"statuses_read"`
	StatusesFailed    int64   `json:"statuses_failed"`
	StatusesOther     int64   `json:"statuses_other"`
	StatusDuplicates  int64   `json:"status_duplicates"`
	StatusesInWindow  int64   `json:"statuses_in_window"`
	StatusesRate      float64 `json:"statuses_rate"`
	StatusPostsRate   float64 `json:"status_posts_rate"`
	// StatusesForeign are statuses of messages this run did not send (a
	// reused business's queue from before).
	StatusesForeign int64 `json:"statuses_foreign"`

	Send      Summary `json:"send_to_answer"`
	Receive   Summary `json:"send_to_customer"`
	SentSt    Summary `json:"send_to_sent_status"`
	Delivered Summary `json:"send_to_delivered_status"`
	Lag       Summary `json:"schedule_lag"`

	ServerCPUMicrosPerSend float64 `json:"server_cpu_us_per_send,omitempty"`
	BenchCPUMicrosPerSend  float64 `json:"bench_cpu_us_per_send,omitempty"`
}

func writeBusiness(w io.Writer, rep *Report) {
	br := rep.Business
	rl := "left as they were (no admin token)"
	if br.RateLimit > 0 {
		rl = fmt.Sprintf("rate_per_second %d, 24-hour rule off", br.RateLimit)
	}
	fmt.Fprintf(w, "business API: %d businesses (%d made now; %s), %d customers connected, REST to %d node(s)\n",
		br.Businesses, br.Made, rl, br.Customers, br.Nodes)
	rc := br.Receiver
	fmt.Fprintf(w, "  webhook receiver\t%s: %d verification GETs answered, %d signed POSTs; bad signatures %d, bad bodies %d, wrong business %d\n",
		rc.URL, rc.Verifications, rc.Posts, rc.BadSignatures, rc.BadBodies, rc.WrongBusiness)
	if br.Backlog > 0 {
		fmt.Fprintf(w, "  backlog\t%d POSTs of events from before this run came first\n", br.Backlog)
	}
	row := func(name string, s Summary) {
		fmt.Fprintf(w, "  %s\t%d\t%s\t%s\t%s\t%s\t%s\t%s\n", name, s.Count,
			f3(s.P50Ms), f3(s.P90Ms), f3(s.P99Ms), f3(s.P999Ms), f3(s.MaxMs), f3(s.MeanMs))
	}
	cost := func(p BizPhase, per string, n float64, benchPer float64) {
		fmt.Fprintf(w, "  server cpu\t%.2f cores (%.1f s)", p.ServerCPUCores, p.ServerCPUSeconds)
		if n > 0 {
			fmt.Fprintf(w, ", %.0f µs per %s", p.ServerCPUSeconds/n*1e6, per)
		}
		fmt.Fprintf(w, "; webhooks ok %.0f, failed %.0f (tern_webhooks_total)\n", p.ServerWebhooksOK, p.ServerWebhooksFailed)
		fmt.Fprintf(w, "  bench cpu\t%.2f cores (%.1f s)", p.BenchCPUCores, p.BenchCPUSeconds)
		if benchPer > 0 {
			fmt.Fprintf(w, ", %.0f µs per %s", benchPer, per)
		}
		fmt.Fprintf(w, "; machine %.2f cores busy, other %.2f\n", p.Machine.BusyCores, p.Machine.OtherCores)
	}
	if wr := br.Webhooks; wr != nil {
		fmt.Fprintf(w, "webhooks phase (%s measured after %s warmup, %s drain)\n", secs(wr.WindowSeconds), secs(wr.WarmupSeconds),
			secs(wr.DrainSeconds).Round(time.Millisecond))
		fmt.Fprintf(w, "  offered\t%g customer msg/s (%d due)\n", wr.OfferedRate, wr.Scheduled)
		fmt.Fprintf(w, "  sent rate\t%.1f msg/s answered sent in the window\n", wr.SentRate)
		fmt.Fprintf(w, "  webhook rate\t%.1f messages/s posted (%d in the window); %.1f POSTs/s of any kind\n",
			wr.PostedRate, wr.PostedInWindow, wr.PostsRate)
		fmt.Fprintf(w, "  totals\tissued %d, durable %d, posted %d, ✓✓ %d\n", wr.Issued, wr.Durable, wr.Posted, wr.Ticked)
		fmt.Fprintf(w, "  lost\t%d (durable, not posted by the end of the drain); %d posted without ✓✓; duplicates %d; unanswered %d\n",
			wr.Lost, wr.Unticked, wr.Duplicates, wr.Unanswered)
		fmt.Fprintf(w, "  errors\t%d%s\n", wr.Errors, codes(wr.ErrorCodes))
		cost(br.Phases[PhaseWebhooks], "POST", float64(wr.PostsInWindow), wr.BenchCPUMicrosPerMsg)
		fmt.Fprintf(w, "latency (ms)\tcount\tp50\tp90\tp99\tp99.9\tmax\tmean\n")
		row("due→sent (durable)", wr.Sent)
		row("due→webhook POST", wr.Webhook)
		row("due→✓✓ (webhook acked)", wr.Tick)
		row("schedule lag", wr.Lag)
	}
	if sr := br.Sends; sr != nil {
		how := fmt.Sprintf("closed loop, %d workers", sr.Workers)
		from := "send"
		if sr.OfferedRate > 0 {
			how, from = fmt.Sprintf("%g/s offered, %d workers", sr.OfferedRate, sr.Workers), "due"
		}
		fmt.Fprintf(w, "sends phase (%s; %s measured after %s warmup, %s drain)\n", how, secs(sr.WindowSeconds), secs(sr.WarmupSeconds),
			secs(sr.DrainSeconds).Round(time.Millisecond))
		fmt.Fprintf(w, "  accepted rate\t%.1f sends/s (%d answered 200 in the window)", sr.AcceptedRate, sr.AcceptedInWindow)
		if sr.ServerSendMs > 0 {
			fmt.Fprintf(w, "; server %.2f ms per request (refused ones included)", sr.ServerSendMs)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  received rate\t%.1f msg/s at the customers (%d in the window)\n", sr.ReceivedRate, sr.ReceivedInWindow)
		fmt.Fprintf(w, "  totals\tissued %d, accepted %d, received %d", sr.Issued, sr.Accepted, sr.Received)
		if n := sr.Scheduled - sr.Issued; sr.OfferedRate > 0 && n > 0 {
			fmt.Fprintf(w, "; %d of %d due never sent: the workers fell behind", n, sr.Scheduled)
		}
		fmt.Fprintln(w)
		fmt.Fprintf(w, "  lost\t%d (accepted, not at the customer by the end of the drain); unexpected %d; duplicates %d; unanswered %d\n",
			sr.Lost, sr.Unexpected, sr.Duplicates, sr.Unanswered)
		fmt.Fprintf(w, "  errors\t%d%s\n", sr.Errors, codes(sr.ErrorCodes))
		fmt.Fprintf(w, "  statuses\t%d sent + %d delivered posted of %d owed; read %d, failed %d, other %d, twice %d, not this run's %d\n",
			sr.StatusesSent, sr.StatusesDelivered, sr.StatusesOwed, sr.StatusesRead, sr.StatusesFailed, sr.StatusesOther,
			sr.StatusDuplicates, sr.StatusesForeign)
		fmt.Fprintf(w, "  status rate\t%.1f statuses/s in %.1f POSTs/s in the window\n", sr.StatusesRate, sr.StatusPostsRate)
		cost(br.Phases[PhaseSends], "send", float64(sr.AcceptedInWindow), sr.BenchCPUMicrosPerSend)
		fmt.Fprintf(w, "latency (ms)\tcount\tp50\tp90\tp99\tp99.9\tmax\tmean\n")
		row(from+"→200", sr.Send)
		row(from+"→customer", sr.Receive)
		row(from+"→sent status POST", sr.SentSt)
		row(from+"→delivered status POST", sr.Delivered)
		if sr.OfferedRate > 0 {
			row("schedule lag", sr.Lag)
		}
	}
}

func secs(s float64) time.Duration { return time.Duration(s * float64(time.Second)) }
