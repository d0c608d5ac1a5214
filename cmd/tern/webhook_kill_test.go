package main

import (
	"bufio"
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/business/cloudapi"
	"github.com/tern-im/tern/wire"
)

// TestWebhooksSurviveKill is the business API's "a node killed with
// webhooks pending (none lost)" (issue 13), on real processes: two `tern
// serve` nodes on one MongoDB database (FerretDB) and RabbitMQ, one
// business (made with `tern business create` through node 1's admin
// listener) whose webhook is a receiver in the test, and one customer who
// writes to it through a load balancer.
//
//  1. The receiver answers 500 while the customer sends the first half of
//     the messages: they queue up, and the node holding the business's
//     lease shows itself by its tern_webhooks_total{result="failed"}
//     (the other node must show no POST at all: one node posts a queue).
//  2. The receiver comes back, slowly (a pause per POST), while the
//     customer sends the second half; once the holder is posting the
//     backlog, it is killed with SIGKILL, in the middle of the queue and
//     most likely in the middle of a POST. It is not restarted: the other
//     node must take the queue over when the dead node's lease runs out
//     (the lease has no flag: the default, a minute, is waited out).
//  3. The receiver must then hold every message, signed, in the order it
//     was sent, each once, except that the event in flight at the kill
//     may come twice, and right after itself; nothing more comes; the
//     customer sees every message delivered (✓✓, the webhook's ack); no
//     acked event is left in the business's queue.
func TestWebhooksSurviveKill(t *testing.T) {
	const (
		messages    = 200
		firstHalf   = messages / 2
		verifyToken = "kill-verify-5e1"
		bizPhone    = "+14155550961"
		// The POST pause while the holder works through the backlog:
		// enough that the kill finds events pending, and most likely a
		// POST in flight.
		slowPost = 40 * time.Millisecond
		// Posted before the kill: the holder is inside the backlog.
		beforeKill = 20
		// The default lease (server webhookLeaseDef, a minute, with no
		// flag) plus the backlog: a liveness bound.
		takeoverWait = 3 * time.Minute
	)
	ctx, cancel := context.WithTimeout(context.Background(), 6*time.Minute)
	defer cancel()

	// Made before the cluster, so that it closes after the nodes are
	// killed (cleanups run last first).
	hook := newWebhookSink(t, verifyToken)
	secrets := t.TempDir()
	tokenFile := filepath.Join(secrets, "admin-token")
	keyFile := filepath.Join(secrets, "master-key")
	if err := os.WriteFile(tokenFile, []byte(randomHex(16)), 0o600); err != nil {
		t.Fatal(err)
	}
	// One master key for both nodes: the app secret node 1 seals, node 2
	// must open to sign.
	if err := os.WriteFile(keyFile, []byte(randomHex(32)), 0o600); err != nil {
		t.Fatal(err)
	}
	flags := []string{"--webhook-allow-private", "--admin-addr", "127.0.0.1:0",
		"--admin-token-file", tokenFile, "--master-key-file", keyFile}
	// The webhook lease (server.Config.WebhookLease) has no flag yet, and
	// a dead holder's lease is waited out: a minute by default. Once serve
	// has --webhook-lease, a shorter one is used, above the 10 s a POST
	// may take (a lease must outlast its holder's POST).
	lease := "the default webhook lease"
	var help bytes.Buffer
	if run(ctx, []string{"serve", "--help"}, &help, io.Discard) == 0 && strings.Contains(help.String(), "  --webhook-lease duration\n") {
		flags = append(flags, "--webhook-lease", "15s")
		lease = "--webhook-lease 15s"
	}
	c := newCluster(t, 2, flags...)
	lb := newBalancer(t, c.nodes)

	// The business, through node 1's admin listener; the node checks the
	// webhook with the verification GET before it makes anything.
	var so, se bytes.Buffer
	if code := run(ctx, []string{"business", "create", "--admin-addr", c.nodes[0].logField(t, "admin listening", "addr"),
		"--admin-token-file", tokenFile, "--phone", bizPhone, "--name", "Acme Kill",
		"--webhook-url", hook.URL, "--verify-token", verifyToken}, &so, &se); code != 0 {
		t.Fatalf("business create: exit %d: %s%s", code, so.String(), se.String())
	}
	var created struct {
		PhoneNumberID string `json:"phone_number_id"`
		AppSecret     string `json:"app_secret"`
	}
	if err := json.Unmarshal(so.Bytes(), &created); err != nil || created.AppSecret == "" || created.PhoneNumberID == "" {
		t.Fatalf("business create printed %q (%v)", so.String(), err)
	}
	hook.setSecret(created.AppSecret)
	if hook.verifications() == 0 {
		t.Fatal("the business was made without the webhook's verification GET")
	}

	// The customer, through the balancer (node 1 while it lives); the
	// business's user id by its phone number, as any client finds it.
	customer := c.login(ctx, lb.url(0), phone(962), "customer", deviceOpts{})
	found, err := customer.c.Lookup(ctx, []string{bizPhone})
	if err != nil || len(found.Contacts) != 1 || found.Contacts[0].UserID == "" {
		t.Fatalf("lookup of the business's number: %+v, %v", found, err)
	}
	bizUser := found.Contacts[0].UserID

	var sentMu sync.Mutex
	var want []string                 // Cloud API message ids, in the order sent
	sentIDs := map[string]wire.Sent{} // by msg_id, for the receipts
	send := func(from, to int) error {
		for i := from; i < to; i++ {
			s, err := customer.c.Send(ctx, bizUser, wire.Body{Text: fmt.Sprintf("order %03d", i)})
			if err != nil {
				return fmt.Errorf("send %d: %w", i, err)
			}
			sentMu.Lock()
			want = append(want, business.MessageID(s.ChatID, s.MsgID))
			sentIDs[s.MsgID] = s
			sentMu.Unlock()
		}
		return nil
	}

	// 1. The receiver is down: the queue fills, and its holder shows.
	start := time.Now()
	hook.set(true, 0)
	if err := send(0, firstHalf); err != nil {
		t.Fatal(err)
	}
	t.Logf("%d messages sent in %v while the webhook failed", firstHalf, time.Since(start).Round(time.Millisecond))
	var holder, survivor *node
	eventually(t, 30*time.Second, func() string { return "no node shows a failed webhook POST" }, func() bool {
		for i, nd := range c.nodes {
			if webhookCount(t, nd, "failed") > 0 {
				holder, survivor = nd, c.nodes[1-i]
				return true
			}
		}
		return false
	})
	for _, result := range []string{"ok", "failed", "dropped"} {
		if n := webhookCount(t, survivor, result); n != 0 {
			t.Fatalf("node %s, not holding the lease, shows %v webhook POSTs %s: two nodes post one queue", survivor.id, n, result)
		}
	}
	if got := hook.delivered(); len(got) != 0 {
		t.Fatalf("%d events taken while the webhook answered 500", len(got))
	}
	t.Logf("node %s holds the business's queue (%v failed POSTs)", holder.id, webhookCount(t, holder, "failed"))

	// 2. The receiver comes back, slowly; the customer sends the rest
	// meanwhile; the holder dies inside the backlog.
	hook.set(false, slowPost)
	recovered := time.Now()
	sendErr := make(chan error, 1)
	go func() { sendErr <- send(firstHalf, messages) }()
	// The holder retries after its backoff (doubling from 1 s): a few
	// seconds to half a minute.
	eventually(t, 90*time.Second, func() string {
		return fmt.Sprintf("%d events posted by node %s since the webhook came back", len(hook.delivered()), holder.id)
	}, func() bool { return len(hook.delivered()) >= beforeKill })
	if err := holder.cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	killedAt := time.Now()
	<-holder.done
	hook.set(false, 0)
	atKill := len(hook.delivered())
	t.Logf("node %s killed %v after the webhook came back, with %d events posted", holder.id,
		killedAt.Sub(recovered).Round(time.Millisecond), atKill)
	select {
	case err := <-sendErr:
		if err != nil {
			t.Fatal(err)
		}
	case <-ctx.Done():
		t.Fatal("the customer's sends did not finish")
	}
	sentMu.Lock()
	wantAll := append([]string(nil), want...)
	sentMu.Unlock()
	if pending := len(wantAll) - atKill; pending < messages/4 {
		t.Fatalf("only %d of %d events were pending at the kill: the test did not test a kill with a backlog", pending, len(wantAll))
	}

	// 3. The survivor takes the queue over and posts the rest, up to the
	// last message sent (the queue goes in order: what is not in by then
	// is lost).
	var got []string
	last := wantAll[len(wantAll)-1]
	eventually(t, takeoverWait, func() string {
		return fmt.Sprintf("the webhook holds %d of %d messages (%d at the kill), not the last, %v after the kill; node %s's log:\n%s",
			countDistinct(got), len(wantAll), atKill, time.Since(killedAt).Round(time.Second), survivor.id, tail(survivor.log(), 20))
	}, func() bool { got = hook.delivered(); return slices.Contains(got, last) })
	done := time.Now()
	first := hook.firstAfter(killedAt)
	t.Logf("with %s, node %s took the queue over %v after the kill; the last of the %d messages at the webhook %v after the kill (%v in all)",
		lease, survivor.id, first.Sub(killedAt).Round(time.Millisecond), len(wantAll), done.Sub(killedAt).Round(time.Millisecond),
		done.Sub(start).Round(time.Millisecond))

	// Nothing more comes: two polls of the survivor.
	posts := hook.postCount()
	time.Sleep(2500 * time.Millisecond)
	if n := hook.postCount(); n != posts {
		t.Errorf("%d more POSTs after the last message came", n-posts)
	}
	got = hook.delivered()
	dups, err := checkWebhookOrder(got, wantAll)
	if err != nil {
		t.Error(err)
	}
	if dups > 1 {
		t.Errorf("%d events posted twice; one node was killed once: at most the event in flight may come again", dups)
	}
	t.Logf("%d POSTs taken, %d of them a repeat of the event in flight at the kill", len(got), dups)
	if bad, refused, statuses := hook.faults(); bad != 0 || statuses != 0 {
		t.Errorf("%d POSTs with a bad signature, body or type, %d with statuses (the business sent nothing)", bad, statuses)
	} else if refused == 0 {
		t.Error("the receiver refused nothing: the holder was not found by its failures")
	}

	// The webhook's ack is the customer's ✓✓: every message shows it.
	sentMu.Lock()
	ids := make(map[string]wire.Sent, len(sentIDs))
	for k, v := range sentIDs {
		ids[k] = v
	}
	sentMu.Unlock()
	var missing []string
	if waitLeft(deliverWait, func() int {
		missing = customer.scr.missingReceipts(wire.StatusDelivered, bizUser, ids)
		return len(missing)
	}) > 0 {
		t.Errorf("%d of %d messages never showed delivered to the customer (e.g. %s)", len(missing), len(ids), missing[0])
	}
	checkClean(t, customer)
	// Every event the business's queue acked is gone from it.
	c.checkNothingStranded(t)
	if !survivor.exited() && webhookCount(t, survivor, "failed") != 0 {
		t.Errorf("node %s counts failed POSTs to a webhook that answered 200", survivor.id)
	}
}

// checkWebhookOrder checks that got is want, each once and in order,
// except for events posted again right after themselves (a node that dies
// between a POST and its ack leaves that event to the next holder), and
// returns how many such repeats it found.
func checkWebhookOrder(got, want []string) (dups int, err error) {
	var once []string
	for i, id := range got {
		if i > 0 && got[i-1] == id {
			dups++
			continue
		}
		once = append(once, id)
	}
	pos := make(map[string]int, len(want))
	for i, id := range want {
		pos[id] = i
	}
	for i := 0; i < len(once) || i < len(want); i++ {
		switch {
		case i >= len(once):
			return dups, fmt.Errorf("%d of %d messages never reached the webhook (first: #%d)", len(want)-len(once), len(want), i)
		case i >= len(want):
			return dups, fmt.Errorf("the webhook took %d events more than the %d messages sent", len(once)-len(want), len(want))
		case once[i] != want[i]:
			p, known := pos[once[i]]
			if !known {
				return dups, fmt.Errorf("event %d at the webhook is no message the customer sent: %s", i, once[i])
			}
			return dups, fmt.Errorf("event %d at the webhook is message #%d, want #%d: lost, repeated or out of order (sequence near it: %v)",
				i, p, i, webhookOrder(once, pos, max(0, i-3), min(len(once), i+4)))
		}
	}
	return dups, nil
}

// webhookOrder is once[from:to] as positions in the send order.
func webhookOrder(once []string, pos map[string]int, from, to int) []int {
	var out []int
	for _, id := range once[from:to] {
		p, ok := pos[id]
		if !ok {
			p = -1
		}
		out = append(out, p)
	}
	return out
}

func countDistinct(ids []string) int {
	seen := make(map[string]bool, len(ids))
	for _, id := range ids {
		seen[id] = true
	}
	return len(seen)
}

// webhookCount reads tern_webhooks_total{result} from a node's /metrics;
// a result never counted is not exported, and is 0.
func webhookCount(t *testing.T, nd *node, result string) float64 {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second}
	resp, err := hc.Get("http://" + nd.addr + "/metrics")
	if err != nil {
		t.Fatalf("metrics of %s: %v", nd.id, err)
	}
	defer resp.Body.Close()
	series := `tern_webhooks_total{result="` + result + `"} `
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), series); ok {
			f, err := strconv.ParseFloat(strings.TrimSpace(v), 64)
			if err != nil {
				t.Fatalf("metric line %q: %v", sc.Text(), err)
			}
			return f
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatalf("metrics of %s: %v", nd.id, err)
	}
	return 0
}

// webhookSink is a business's webhook: it answers the verification GET,
// and takes POSTs (answering 500 while failing, after a pause while slow),
// checking each signature over the bytes it got and keeping the message
// ids in the order they came.
type webhookSink struct {
	*httptest.Server
	token string

	mu       sync.Mutex
	secret   []byte
	failing  bool
	pause    time.Duration
	verifies int
	posts    int
	refused  int
	bad      int // bad signature, not ASCII, not JSON, not a Cloud API payload
	statuses int
	ids      []string    // of the POSTs taken, in the order they came
	at       []time.Time // when each came
}

func newWebhookSink(t *testing.T, token string) *webhookSink {
	h := &webhookSink{token: token}
	h.Server = httptest.NewServer(http.HandlerFunc(h.serve))
	t.Cleanup(h.Close)
	return h
}

func (h *webhookSink) serve(w http.ResponseWriter, r *http.Request) {
	if r.Method == http.MethodGet {
		status, body := cloudapi.AnswerVerification(r.URL.Query(), h.token)
		h.mu.Lock()
		h.verifies++
		h.mu.Unlock()
		w.WriteHeader(status)
		_, _ = io.WriteString(w, body)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	h.mu.Lock()
	h.posts++
	if h.failing {
		h.refused++
		h.mu.Unlock()
		http.Error(w, "down for maintenance", http.StatusInternalServerError)
		return
	}
	ok := err == nil && r.Method == http.MethodPost &&
		cloudapi.VerifySignature(h.secret, body, r.Header.Get(cloudapi.SignatureHeader))
	for _, c := range body {
		if c > 0x7e {
			ok = false // the Cloud API's JSON is ASCII
		}
	}
	var p struct {
		Object string `json:"object"`
		Entry  []struct {
			Changes []struct {
				Field string `json:"field"`
				Value struct {
					Messages []struct {
						ID   string `json:"id"`
						Type string `json:"type"`
					} `json:"messages"`
					Statuses []json.RawMessage `json:"statuses"`
				} `json:"value"`
			} `json:"changes"`
		} `json:"entry"`
	}
	if json.Unmarshal(body, &p) != nil || p.Object != "whatsapp_business_account" || len(p.Entry) == 0 {
		ok = false
	}
	now := time.Now()
	for _, e := range p.Entry {
		for _, ch := range e.Changes {
			h.statuses += len(ch.Value.Statuses)
			for _, m := range ch.Value.Messages {
				if m.Type != "text" {
					ok = false
				}
				h.ids = append(h.ids, m.ID)
				h.at = append(h.at, now)
			}
		}
	}
	if !ok {
		h.bad++
	}
	pause := h.pause
	h.mu.Unlock()
	// Taken (kept above) before the answer: a node killed during the
	// pause never sees the 200, and posts the event again.
	if pause > 0 {
		time.Sleep(pause)
	}
	w.WriteHeader(http.StatusOK)
}

func (h *webhookSink) setSecret(s string) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.secret = []byte(s)
}

// set makes the webhook fail (500) or not, and pause before each answer.
func (h *webhookSink) set(failing bool, pause time.Duration) {
	h.mu.Lock()
	defer h.mu.Unlock()
	h.failing, h.pause = failing, pause
}

func (h *webhookSink) delivered() []string {
	h.mu.Lock()
	defer h.mu.Unlock()
	return append([]string(nil), h.ids...)
}

func (h *webhookSink) verifications() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.verifies
}

func (h *webhookSink) postCount() int {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.posts
}

func (h *webhookSink) faults() (bad, refused, statuses int) {
	h.mu.Lock()
	defer h.mu.Unlock()
	return h.bad, h.refused, h.statuses
}

// firstAfter is when the first event taken after t came (zero if none).
func (h *webhookSink) firstAfter(t time.Time) time.Time {
	h.mu.Lock()
	defer h.mu.Unlock()
	for _, at := range h.at {
		if at.After(t) {
			return at
		}
	}
	return time.Time{}
}
