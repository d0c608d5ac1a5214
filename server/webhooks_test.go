package server_test

import (
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"net/http/httptest"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/business/cloudapi"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// hookReceiver is a business's webhook server: it answers the
// verification, checks every POST's signature over the bytes it got, and
// keeps the payloads; failing makes it answer 500 (the post counted).
type hookReceiver struct {
	*httptest.Server
	secret  string
	mu      sync.Mutex
	bodies  []map[string]any
	failing int // answer 500 to this many more posts
	posts   int
	gets    int
	badSigs int
}

func newHookReceiver(t *testing.T) *hookReceiver {
	h := &hookReceiver{}
	h.Server = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if r.Method == http.MethodGet {
			h.mu.Lock()
			h.gets++
			h.mu.Unlock()
			status, body := cloudapi.AnswerVerification(r.URL.Query(), "verify-me")
			w.WriteHeader(status)
			_, _ = io.WriteString(w, body)
			return
		}
		body, _ := io.ReadAll(r.Body)
		h.mu.Lock()
		defer h.mu.Unlock()
		h.posts++
		if h.failing > 0 {
			h.failing--
			http.Error(w, "down for maintenance", http.StatusInternalServerError)
			return
		}
		if !cloudapi.VerifySignature([]byte(h.secret), body, r.Header.Get(cloudapi.SignatureHeader)) {
			h.badSigs++
		}
		for _, c := range body {
			if c > 0x7e {
				h.badSigs++ // not ASCII: counted as a fault too
				break
			}
		}
		var m map[string]any
		_ = json.Unmarshal(body, &m)
		h.bodies = append(h.bodies, m)
	}))
	t.Cleanup(h.Close)
	return h
}

// hookedNode starts a node that posts webhooks without delay and makes a
// business on phone whose webhook is a new receiver, which knows the
// business's app secret.
func hookedNode(t *testing.T, phone string) (*servertest.Node, server.BusinessCreated, *hookReceiver) {
	t.Helper()
	n := servertest.Start(t, servertest.Options{Server: server.Config{WebhookAllowPrivate: true,
		WebhookPoll: 50 * time.Millisecond, WebhookRetry: 100 * time.Millisecond}})
	hook := newHookReceiver(t)
	b, err := n.Srv.CreateBusiness(ctxT(t), server.NewBusiness{Phone: phone, Name: "Acme", WebhookURL: hook.URL, VerifyToken: "verify-me"})
	if err != nil {
		t.Fatal(err)
	}
	hook.mu.Lock()
	hook.secret = b.AppSecret
	hook.mu.Unlock()
	return n, b, hook
}

// value returns payload i's changes[0].value.
func value(p map[string]any) map[string]any {
	return p["entry"].([]any)[0].(map[string]any)["changes"].([]any)[0].(map[string]any)["value"].(map[string]any)
}

// TestBusinessWebhooks: a customer's messages reach the business's
// webhook in order, signed over the exact ASCII bytes, once each, also
// across a receiver that fails for a while; the customer sees ✓✓ once the
// webhook took them; the business's message gets delivered and read
// statuses, each with the send's biz_opaque_callback_data; the window
// opens from the queue.
func TestBusinessWebhooks(t *testing.T) {
	n, b, hook := hookedNode(t, "+14155550951")
	ctx := ctxT(t)
	hook.mu.Lock()
	hook.failing = 3
	hook.mu.Unlock()

	customer := n.Login(t, "+14155550952", "c")
	var sent []wire.Sent
	for _, text := range []string{"héllo 👋", "second", "third"} {
		m, err := customer.Send(ctx, b.UserID, wire.Body{Text: text})
		if err != nil {
			t.Fatal(err)
		}
		sent = append(sent, m)
	}
	eventually(t, func() (bool, string) {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return len(hook.bodies) == 3, fmt.Sprintf("%d payloads after %d posts", len(hook.bodies), hook.posts)
	})
	// The failures and the deliveries are counted for the operators.
	mres, err := http.Get(n.URL + "/metrics")
	if err != nil {
		t.Fatal(err)
	}
	metrics, _ := io.ReadAll(mres.Body)
	mres.Body.Close()
	if !strings.Contains(string(metrics), `tern_webhooks_total{result="failed"} 3`) || !strings.Contains(string(metrics), `tern_webhooks_total{result="ok"}`) {
		t.Errorf("webhook metrics: %s", grepLines(string(metrics), "tern_webhooks_total"))
	}
	// The business's API device is woken by nobody: no push was queued.
	if queued, err := n.Store.PendingPushes(ctx); err != nil || queued != 0 {
		jobs, _ := n.Store.ClaimPushes(ctx, time.Now().Add(time.Hour), time.Now().Add(2*time.Hour), 10)
		t.Errorf("pushes queued for the business's messages: %d, %v: %+v", queued, err, jobs)
	}
	hook.mu.Lock()
	if hook.badSigs != 0 || hook.posts != 6 {
		t.Errorf("%d bad signatures or non-ASCII bodies, %d posts (want 0, and 3 failures + 3)", hook.badSigs, hook.posts)
	}
	for i, p := range hook.bodies {
		v := value(p)
		m := v["messages"].([]any)[0].(map[string]any)
		if p["object"] != "whatsapp_business_account" || v["metadata"].(map[string]any)["phone_number_id"] != b.PhoneNumberID ||
			m["from"] != "14155550952" || m["id"] != business.MessageID(sent[i].ChatID, sent[i].MsgID) ||
			m["text"].(map[string]any)["body"] != []string{"héllo 👋", "second", "third"}[i] {
			t.Errorf("payload %d: %v", i, p)
		}
	}
	hook.mu.Unlock()
	// Taken by the webhook: delivered, for the customer.
	for got := map[string]bool{}; len(got) < 3; {
		r := servertest.Next(t, customer, wire.TypeReceipt, wait)
		if r.Status == wire.StatusDelivered {
			for _, id := range r.MsgIDs {
				got[id] = true
			}
		}
	}

	// The business answers (the window is open); the customer's phone
	// takes it and reads it: two statuses.
	req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/v21.0/"+b.PhoneNumberID+"/messages",
		strings.NewReader(`{"messaging_product":"whatsapp","to":"14155550952","type":"text","text":{"body":"hi!"},"biz_opaque_callback_data":"ticket-7 ✓"}`))
	req.Header.Set("Authorization", "Bearer "+b.AccessToken)
	req.Header.Set("Content-Type", "application/json")
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	var answer cloudapi.SendResponse
	_ = json.NewDecoder(res.Body).Decode(&answer)
	res.Body.Close()
	if res.StatusCode != http.StatusOK || len(answer.Messages) != 1 {
		t.Fatalf("send: %d %+v", res.StatusCode, answer)
	}
	f := nextWhere(t, customer, "the answer", func(f wire.ServerFrame) bool { return f.Body != nil && f.Body.Text == "hi!" })
	if err := customer.Read(ctx, f.ChatID, f.Seq); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() (bool, string) {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		var seen []string
		for _, p := range hook.bodies[3:] {
			for _, st := range value(p)["statuses"].([]any) {
				st := st.(map[string]any)
				if st["id"] == answer.Messages[0].ID && st["recipient_id"] == "14155550952" {
					seen = append(seen, st["status"].(string))
					if st["biz_opaque_callback_data"] != "ticket-7 ✓" {
						seen = append(seen, fmt.Sprintf("(%s without its callback data: %v)", st["status"], st))
					}
				}
			}
		}
		// "sent" first (stored with the message); then in the order they
		// were stored: a phone may say "read" before its ack says
		// "delivered" (Meta's statuses may come so too).
		first := len(seen) > 0 && seen[0] == "sent"
		slices.Sort(seen)
		return first && strings.Join(seen, ",") == "delivered,read,sent", fmt.Sprintf("statuses of the answer: %v", seen)
	})
	if ts, err := n.Store.Window(ctx, b.UserID, customer.Session().UserID); err != nil || ts == 0 {
		t.Fatalf("the window after the customer's messages: %d, %v", ts, err)
	}
}

// TestBusinessWebhooksCluster: on two nodes one of them posts a
// business's queue at a time (no event twice, all in order, whichever
// node the customer is on); when that node stops, the other takes the
// queue over once the lease ends.
func TestBusinessWebhooksCluster(t *testing.T) {
	nodes := servertest.StartCluster(t, 2, servertest.Options{Server: server.Config{WebhookAllowPrivate: true,
		WebhookPoll: 50 * time.Millisecond, WebhookRetry: 100 * time.Millisecond, WebhookLease: time.Second}})
	ctx := ctxT(t)
	hook := newHookReceiver(t)
	b, err := nodes[0].Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550941", Name: "Acme", WebhookURL: hook.URL, VerifyToken: "verify-me"})
	if err != nil {
		t.Fatal(err)
	}
	hook.mu.Lock()
	hook.secret = b.AppSecret
	hook.mu.Unlock()
	customer := nodes[1].Login(t, "+14155550942", "c")
	var want []string
	send := func(from, to int) {
		for i := from; i < to; i++ {
			m, err := customer.Send(ctx, b.UserID, wire.Body{Text: fmt.Sprint("message ", i)})
			if err != nil {
				t.Fatal(err)
			}
			want = append(want, business.MessageID(m.ChatID, m.MsgID))
		}
	}
	got := func() []string {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		var ids []string
		for _, p := range hook.bodies {
			for _, m := range value(p)["messages"].([]any) {
				ids = append(ids, m.(map[string]any)["id"].(string))
			}
		}
		return ids
	}
	send(0, 10)
	eventually(t, func() (bool, string) {
		return len(got()) >= len(want), fmt.Sprintf("%d of %d delivered", len(got()), len(want))
	})
	nodes[0].Stop()
	send(10, 15)
	eventually(t, func() (bool, string) {
		return len(got()) >= len(want), fmt.Sprintf("%d of %d delivered after node 0 stopped", len(got()), len(want))
	})
	if g := got(); !slices.Equal(g, want) {
		pos := func(id string) int { return slices.Index(want, id) }
		var order []int
		for _, id := range g {
			order = append(order, pos(id))
		}
		t.Fatalf("delivered %d events, in the order of the sends: %v; want each once, in order", len(g), order)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if hook.badSigs != 0 {
		t.Fatalf("%d bad signatures", hook.badSigs)
	}
}

// TestBusinessSubscribedApps: a business without a webhook sets one the
// Cloud API's way (POST /{waba_id}/subscribed_apps with
// override_callback_uri, checked with the verification GET first), gets
// its customers' messages there, lists it, and removes it.
func TestBusinessSubscribedApps(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{WebhookAllowPrivate: true, WebhookPoll: 50 * time.Millisecond}})
	ctx := ctxT(t)
	hook := newHookReceiver(t)
	b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550931", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	hook.mu.Lock()
	hook.secret = b.AppSecret
	hook.mu.Unlock()
	call := func(method, path, body string) (int, map[string]any) {
		req, _ := http.NewRequestWithContext(ctx, method, n.URL+path, strings.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+b.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		var m map[string]any
		_ = json.NewDecoder(res.Body).Decode(&m)
		return res.StatusCode, m
	}
	sub := "/v21.0/" + b.WABAID + "/subscribed_apps"
	if code, res := call(http.MethodPost, sub, `{"override_callback_uri":"`+hook.URL+`","verify_token":"wrong"}`); code != http.StatusBadRequest {
		t.Fatalf("a URL that fails the verification: %d %v", code, res)
	}
	if code, _ := call(http.MethodPost, "/v21.0/"+b.PhoneNumberID+"/subscribed_apps", `{}`); code != http.StatusBadRequest {
		t.Fatalf("subscribed_apps on the phone number id, not the WABA: %d", code)
	}
	if code, res := call(http.MethodPost, sub, `{"override_callback_uri":"`+hook.URL+`","verify_token":"verify-me"}`); code != http.StatusOK || res["success"] != true {
		t.Fatalf("subscribe: %d %v", code, res)
	}
	if code, res := call(http.MethodGet, sub, ""); code != http.StatusOK || len(res["data"].([]any)) != 1 ||
		res["data"].([]any)[0].(map[string]any)["override_callback_uri"] != hook.URL {
		t.Fatalf("subscriptions: %d %v", code, res)
	}
	customer := n.Login(t, "+14155550932", "c")
	if _, err := customer.Send(ctx, b.UserID, wire.Body{Text: "hello"}); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() (bool, string) {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return len(hook.bodies) == 1 && hook.badSigs == 0, fmt.Sprintf("%d payloads, %d bad", len(hook.bodies), hook.badSigs)
	})
	if code, _ := call(http.MethodDelete, sub, ""); code != http.StatusOK {
		t.Fatalf("unsubscribe: %d", code)
	}
	if rec, err := n.Store.Business(ctx, b.UserID); err != nil || rec.WebhookURL != "" {
		t.Fatalf("after unsubscribing: %+v, %v", rec, err)
	}
}

// grepLines returns the lines of text that contain sub.
func grepLines(text, sub string) string {
	var out []string
	for _, l := range strings.Split(text, "\n") {
		if strings.Contains(l, sub) {
			out = append(out, l)
		}
	}
	return strings.Join(out, "\n")
}

// TestWebhooksArePublicOnly: without WebhookAllowPrivate a webhook on a
// loopback address is refused when the business is made (and by
// subscribed_apps), and the receiver gets no request, not even the
// verification.
func TestWebhooksArePublicOnly(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{MediaLinkAllowPrivate: true}})
	ctx := ctxT(t)
	hook := newHookReceiver(t)
	if _, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550941", Name: "Acme", WebhookURL: hook.URL, VerifyToken: "verify-me"}); err == nil {
		t.Fatal("a business made with a webhook on 127.0.0.1")
	}
	b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550942", Name: "Beta"})
	if err != nil {
		t.Fatal(err)
	}
	code, res := graphDo(t, ctx, http.MethodPost, n.URL+"/v23.0/"+b.WABAID+"/subscribed_apps", b.AccessToken,
		map[string]string{"override_callback_uri": hook.URL, "verify_token": "verify-me"})
	if code != http.StatusBadRequest || graphCode(res) < 0 {
		t.Fatalf("subscribed_apps with a loopback URL: %d %v", code, res)
	}
	hook.mu.Lock()
	defer hook.mu.Unlock()
	if hook.posts != 0 || hook.gets != 0 {
		t.Fatalf("the receiver got %d GETs and %d POSTs", hook.gets, hook.posts)
	}
}
