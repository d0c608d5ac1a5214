package bench

import (
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"sync/atomic"
	"time"
)

// hookTarget is what the receiver checks a business's POSTs against.
type hookTarget struct {
	secret        []byte
	verifyToken   string
	phoneNumberID string
	wabaID        string
}

// hookPayload is the part of a Cloud API webhook body the receiver reads,
// as a receiver written from Meta's documentation would.
type hookPayload struct {
	Object string `json:"object"`
	Entry  []struct {
		ID      string `json:"id"`
		Changes []struct {
			Field string `json:"field"`
			Value struct {
				Metadata struct {
					PhoneNumberID string `json:"phone_number_id"`
				} `json:"metadata"`
				Messages []struct {
					From string `json:"from"`
					ID   string `json:"id"`
					Type string `json:"type"`
					Text *struct {
						Body string `json:"body"`
					} `json:"text"`
				} `json:"messages"`
				Statuses []struct {
					ID     string `json:"id"`
					Status string `json:"status"`
				} `json:"statuses"`
			} `json:"value"`
		} `json:"changes"`
	} `json:"entry"`
}

// hookHandler is what the receiver hands each event to.
type hookHandler interface {
	// hookMessage is an inbound message's text, hookStatus a status of
	// a message the business sent; at is when its POST came (run clock).
	hookMessage(biz int, text string, at int64)
	hookStatus(biz int, id, status string, at int64)
	// hookPost is every POST with a valid signature: statuses says it
	// carried statuses rather than messages.
	hookPost(at int64, statuses bool)
}

// ReceiverReport counts what the webhook receiver got over the whole run.
type ReceiverReport struct {
	URL string `json:"url"`
	// Verifications are the GETs that echoed hub.challenge (one per
	// subscription); VerifyRefused those with a wrong token or mode.
	Verifications int64 `json:"verifications"`
	VerifyRefused int64 `json:"verify_refused"`
	Posts         int64 `json:"posts"` // POSTs with a valid signature
	// BadSignatures are POSTs whose X-Hub-Signature-256 is missing or not
	// the HMAC-SHA256 of the body under the business's app secret (answered
	// 403, so the server posts them again); must be 0.
	BadSignatures int64 `json:"bad_signatures"`
	// BadBodies are signed POSTs that are not a Cloud API webhook body;
	// WrongBusiness those about another business than the URL's.
	BadBodies     int64 `json:"bad_bodies"`
	WrongBusiness int64 `json:"wrong_business"`
}

// hookReceiver is business mode's webhook endpoint: one path per
// business (/hook/{i}), which answers the verification GET and checks,
// counts and hands on each POST.
type hookReceiver struct {
	r       *runner
	srv     *http.Server
	ln      net.Listener
	base    string
	targets atomic.Pointer[[]hookTarget]
	hh      hookHandler

	verifications, verifyRefused, posts atomic.Int64
	badSig, badBody, wrongBiz           atomic.Int64
}

// startReceiver listens on addr and hands what comes to hh; it answers
// nothing for a business until setTargets.
func (r *runner) startReceiver(addr string, hh hookHandler) (*hookReceiver, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("webhook receiver: listen on %s: %w", addr, err)
	}
	h := &hookReceiver{r: r, ln: ln, base: "http://" + ln.Addr().String(), hh: hh}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /hook/{i}", h.verify)
	mux.HandleFunc("POST /hook/{i}", h.post)
	h.srv = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second, IdleTimeout: 2 * time.Minute}
	go func() { _ = h.srv.Serve(ln) }()
	return h, nil
}

func (h *hookReceiver) close() { _ = h.srv.Close() }

func (h *hookReceiver) setTargets(ts []hookTarget) { h.targets.Store(&ts) }

func (h *hookReceiver) url(i int) string { return h.base + "/hook/" + strconv.Itoa(i) }

func (h *hookReceiver) target(r *http.Request) (int, hookTarget, bool) {
	i, err := strconv.Atoi(r.PathValue("i"))
	ts := h.targets.Load()
	if err != nil || ts == nil || i < 0 || i >= len(*ts) {
		return 0, hookTarget{}, false
	}
	return i, (*ts)[i], true
}

// verify answers the Cloud API's verification GET: hub.challenge back
// with 200 for the right token, 403 otherwise.
func (h *hookReceiver) verify(w http.ResponseWriter, r *http.Request) {
	_, t, ok := h.target(r)
	q := r.URL.Query()
	if !ok || q.Get("hub.mode") != "subscribe" ||
		subtle.ConstantTimeCompare([]byte(q.Get("hub.verify_token")), []byte(t.verifyToken)) != 1 {
		h.verifyRefused.Add(1)
		http.Error(w, "wrong verify token", http.StatusForbidden)
		return
	}
	h.verifications.Add(1)
	w.Header().Set("Content-Type", "text/plain")
	_, _ = io.WriteString(w, q.Get("hub.challenge"))
}

// validSignature checks X-Hub-Signature-256: "sha256=" and the hex
// HMAC-SHA256 of the exact body under the app secret.
func validSignature(secret, body []byte, header string) bool {
	got, ok := strings.CutPrefix(header, "sha256=")
	if !ok {
		return false
	}
	sig, err := hex.DecodeString(got)
	if err != nil {
		return false
	}
	m := hmac.New(sha256.New, secret)
	m.Write(body)
	return hmac.Equal(sig, m.Sum(nil))
}

func (h *hookReceiver) post(w http.ResponseWriter, r *http.Request) {
	at := h.r.now()
	i, t, ok := h.target(r)
	if !ok {
		http.Error(w, "no such hook", http.StatusNotFound)
		return
	}
	body, err := io.ReadAll(io.LimitReader(r.Body, 1<<20))
	if err != nil {
		http.Error(w, "read error", http.StatusBadRequest)
		return
	}
	if !validSignature(t.secret, body, r.Header.Get("X-Hub-Signature-256")) {
		h.badSig.Add(1)
		http.Error(w, "bad signature", http.StatusForbidden)
		return
	}
	h.posts.Add(1)
	var p hookPayload
	if err := json.Unmarshal(body, &p); err != nil || p.Object != "whatsapp_business_account" || len(p.Entry) == 0 {
		h.badBody.Add(1)
		w.WriteHeader(http.StatusOK) // signed by the server: taken, counted as bad
		return
	}
	statuses := false
	for _, e := range p.Entry {
		for _, c := range e.Changes {
			v := &c.Value
			if e.ID != t.wabaID || v.Metadata.PhoneNumberID != t.phoneNumberID || c.Field != "messages" {
				h.wrongBiz.Add(1)
				continue
			}
			for _, m := range v.Messages {
				text := ""
				if m.Type == "text" && m.Text != nil {
					text = m.Text.Body
				}
				h.hh.hookMessage(i, text, at)
			}
			for _, s := range v.Statuses {
				statuses = true
				h.hh.hookStatus(i, s.ID, s.Status, at)
			}
		}
	}
	h.hh.hookPost(at, statuses)
	w.WriteHeader(http.StatusOK)
}

// waitQuiet waits until no POST came for quiet, for at most limit: what a
// business's queue held from before this run is posted first. It returns
// the POSTs that came meanwhile.
func (h *hookReceiver) waitQuiet(ctx context.Context, quiet, limit time.Duration) int64 {
	start := h.posts.Load() + h.badSig.Load()
	deadline := time.Now().Add(limit)
	last, lastAt := start, time.Now()
	for time.Now().Before(deadline) && time.Since(lastAt) < quiet {
		if !sleepCtx(ctx, 50*time.Millisecond) {
			break
		}
		if n := h.posts.Load() + h.badSig.Load(); n != last {
			last, lastAt = n, time.Now()
		}
	}
	return last - start
}

func (h *hookReceiver) report() ReceiverReport {
	return ReceiverReport{URL: h.base + "/hook/{i}", Verifications: h.verifications.Load(), VerifyRefused: h.verifyRefused.Load(),
		Posts: h.posts.Load(), BadSignatures: h.badSig.Load(), BadBodies: h.badBody.Load(), WrongBusiness: h.wrongBiz.Load()}
}
