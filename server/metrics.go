package server

import (
	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/tern-im/tern/routing"
)

// metrics are the tern_* series of one node.
type metrics struct {
	connections   prometheus.Gauge
	framesIn      *prometheus.CounterVec
	framesOut     prometheus.Counter
	messagesSent  prometheus.Counter
	duplicates    prometheus.Counter
	eventsAcked   prometheus.Counter
	receipts      *prometheus.CounterVec
	sendSeconds   prometheus.Histogram
	storeSeconds  *prometheus.HistogramVec
	routed        *prometheus.CounterVec
	routeSeconds  prometheus.Histogram
	pushes        *prometheus.CounterVec
	pushQueue     prometheus.Gauge
	httpRequests  *prometheus.CounterVec
	httpSeconds   *prometheus.HistogramVec
	wsRejected    *prometheus.CounterVec
	slowConsumers prometheus.Counter
	caughtUp      prometheus.Counter
	webhooks      *prometheus.CounterVec
}

func newMetrics(reg *prometheus.Registry) *metrics {
	fast := []float64{.0005, .001, .002, .005, .01, .02, .05, .1, .25, .5, 1, 2.5}
	m := &metrics{
		connections: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tern_connections",
			Help: "WebSocket connections open on this node."}),
		framesIn: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tern_frames_in_total",
			Help: "Client frames received, by type (invalid for undecodable ones)."}, []string{"type"}),
		framesOut: prometheus.NewCounter(prometheus.CounterOpts{Name: "tern_frames_out_total",
			Help: "Frames written to sockets."}),
		messagesSent: prometheus.NewCounter(prometheus.CounterOpts{Name: "tern_messages_sent_total",
			Help: "Messages stored durably and answered with sent."}),
		duplicates: prometheus.NewCounter(prometheus.CounterOpts{Name: "tern_messages_duplicate_total",
			Help: "Sends answered from the idempotency record."}),
		eventsAcked: prometheus.NewCounter(prometheus.CounterOpts{Name: "tern_events_acked_total",
			Help: "Inbox events acknowledged by devices."}),
		receipts: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tern_receipts_total",
			Help: "Receipt events created, by status."}, []string{"status"}),
		sendSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tern_send_seconds",
			Help: "Time from a send frame to its sent answer being queued.", Buckets: fast}),
		storeSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tern_store_seconds",
			Help: "Store call latency, by operation.", Buckets: fast}, []string{"op"}),
		routed: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tern_routed_total",
			Help: "Envelopes published, by result (routed, offline, error)."}, []string{"result"}),
		routeSeconds: prometheus.NewHistogram(prometheus.HistogramOpts{Name: "tern_route_seconds",
			Help: "Time to publish the envelopes of one store write (a send's fan-out, an ack's receipts) through the router, broker confirms included.", Buckets: fast}),
		pushes: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tern_push_total",
			Help: "Push wake-ups, by result: queued, coalesced, dropped, ok, retry, unregistered, failed, online, no_token, no_device, error."}, []string{"result"}),
		pushQueue: prometheus.NewGauge(prometheus.GaugeOpts{Name: "tern_push_queue",
			Help: "Pushes waiting in the store's queue (all nodes'), as this node last counted them."}),
		httpRequests: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tern_http_requests_total",
			Help: "REST requests, by route and status code."}, []string{"route", "code"}),
		httpSeconds: prometheus.NewHistogramVec(prometheus.HistogramOpts{Name: "tern_http_seconds",
			Help: "REST request latency, by route.", Buckets: fast}, []string{"route"}),
		wsRejected: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tern_ws_rejected_total",
			Help: "WebSocket upgrades refused, by reason."}, []string{"reason"}),
		slowConsumers: prometheus.NewCounter(prometheus.CounterOpts{Name: "tern_slow_consumers_total",
			Help: "Sockets closed because the client did not read fast enough."}),
		webhooks: prometheus.NewCounterVec(prometheus.CounterOpts{Name: "tern_webhooks_total",
			Help: "Business webhook POSTs, by result: ok, failed (retried later), dropped (failed past the give-up age)."}, []string{"result"}),
		caughtUp: prometheus.NewCounter(prometheus.CounterOpts{Name: "tern_inbox_check_behind_total",
			Help: "Sessions the periodic inbox check found behind their inbox (an event whose routing was lost), and resynced."}),
	}
	reg.MustRegister(m.connections, m.framesIn, m.framesOut, m.messagesSent, m.duplicates,
		m.eventsAcked, m.receipts, m.sendSeconds, m.storeSeconds, m.routed, m.routeSeconds, m.pushes, m.pushQueue,
		m.httpRequests, m.httpSeconds, m.wsRejected, m.slowConsumers, m.caughtUp, m.webhooks,
		collectors.NewGoCollector(),
		collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	return m
}

// watchLink exports the state of the router's broker link.
func watchLink(reg *prometheus.Registry, l routing.Linked) {
	flag := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	reg.MustRegister(
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tern_broker_connected",
			Help: "1 while the node's link to the broker is up. While it is down, sessions poll their inboxes every second."},
			func() float64 { return flag(l.Connected()) }),
		prometheus.NewGaugeFunc(prometheus.GaugeOpts{Name: "tern_broker_blocked",
			Help: "1 while the broker blocks this node's publishing (a RabbitMQ memory or disk alarm)."},
			func() float64 { return flag(l.Blocked()) }),
	)
}
