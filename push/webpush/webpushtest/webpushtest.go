package webpushtest

import (
	"bytes"
	"crypto/aes"
	"crypto/cipher"
	"crypto/ecdh"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/hkdf"
	"crypto/rand"
	"crypto/sha256"
	"encoding/base64"
	"encoding/binary"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log"
	"math/big"
	"net/http"
	"net/http/httptest"
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/push"
)

// Always, as the count of Fail or FailNext, makes a failure permanent.
const Always = -1

// Push is one push that reached a subscription.
type Push struct {
	// Endpoint is the subscription's endpoint, as in push.Subscription.
	Endpoint string
	// Header is the request's header.
	Header http.Header
	// TTL, Urgency and Topic are the request's headers of those names, as
	// they came ("" if absent).
	TTL, Urgency, Topic string
	// Plaintext is the decrypted body and Payload that as a JSON object;
	// both are nil if decryption failed.
	Plaintext []byte
	Payload   map[string]string
	// Status is what the receiver answered: 201, or 401 or 403 for a push
	// that failed the VAPID check.
	Status int
	// Err says what was wrong with the push: a VAPID check that failed, a
	// body that does not decrypt, a payload that is not a JSON object of
	// strings. Nil for a good push.
	Err error
}

// String keeps failure output short: what arrived, not the whole request.
func (p Push) String() string {
	if p.Err != nil {
		return "undecryptable or unauthorised: " + p.Err.Error()
	}
	return fmt.Sprintf("payload %v (Urgency %s, TTL %s, Topic %s)", p.Payload, p.Urgency, p.TTL, p.Topic)
}

// Failure is an answer to give instead of accepting a push.
type Failure struct {
	// Status is the HTTP status, 4xx or 5xx: 404 or 410 for a subscription
	// that is gone, 429 or 503 for a busy service, and so on.
	Status int
	// Times is how many pushes get it: Always (or any negative) for every
	// one from now on; zero removes the subscription's override.
	Times int
	// RetryAfter, if positive, is sent as Retry-After in whole seconds.
	RetryAfter time.Duration
}

// Receiver is a local push service. Its methods are safe for concurrent
// use.
type Receiver struct {
	t   testing.TB
	srv *httptest.Server

	mu         sync.Mutex
	vapid      []byte // the key that k= must carry; nil: any
	subscriber string // the sub the JWT must carry; "": any contact
	report     bool   // t.Errorf for bad pushes
	seq        int
	browsers   map[string]*browser // by endpoint
	attempts   map[string]int      // by endpoint
	failures   map[string]Failure  // by endpoint
	got        []Push
	changed    chan struct{} // closed and replaced on every push recorded
}

// browser is what a browser keeps to itself for one subscription.
type browser struct {
	key  *ecdh.PrivateKey
	auth []byte
}

// Start starts a Receiver on 127.0.0.1 with TLS; t's cleanup closes it.
// Failures it sees are reported with t.Errorf, so t must outlive its use.
func Start(t testing.TB) *Receiver {
	t.Helper()
	r := &Receiver{t: t, report: true, browsers: map[string]*browser{}, attempts: map[string]int{},
		failures: map[string]Failure{}, changed: make(chan struct{})}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	// The client may still be dialling a spare connection when a test
	// closes the server; the handshake error that logs is noise.
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

// URL is the receiver's origin, https://127.0.0.1:PORT: the aud that VAPID
// tokens for its endpoints must carry.
func (r *Receiver) URL() string { return r.srv.URL }

// Client is an HTTP client that trusts the receiver's certificate, for
// webpush.Config.HTTPClient. Close closes its idle connections.
func (r *Receiver) Client() *http.Client { return r.srv.Client() }

// Close shuts the receiver down, so that pushes fail to connect. Start's
// cleanup closes it anyway.
func (r *Receiver) Close() { r.srv.Close() }

// ExpectVAPID makes the receiver check that pushes carry this VAPID public
// key (base64url, padded or not, as webpush.VAPIDKeys.Public). Until it is
// called, any key is accepted, as long as the JWT is signed by it. It
// panics if publicKey is not a P-256 public key.
func (r *Receiver) ExpectVAPID(publicKey string) {
	k, err := push.DecodeKey(publicKey)
	if err == nil {
		_, err = ecdh.P256().NewPublicKey(k)
	}
	if err != nil {
		panic(fmt.Sprintf("webpushtest: ExpectVAPID(%q): not a P-256 public key", publicKey))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	r.vapid = k
}

// ExpectSubscriber makes the receiver check that VAPID tokens carry
// exactly this sub, such as "mailto:ops@example.org" (webpush-go puts
// "mailto:" before a contact that is not an https URL). Until it is
// called, any sub that starts with "mailto:" or "https:" is accepted.
func (r *Receiver) ExpectSubscriber(sub string) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.subscriber = sub
}

// ReportErrors sets whether a push that fails the checks fails the test
// with t.Errorf; it does by default. It is recorded with Err either way.
func (r *Receiver) ReportErrors(on bool) {
	r.mu.Lock()
	defer r.mu.Unlock()
	r.report = on
}

// NewSubscription makes a browser's subscription to the receiver: a fresh
// P-256 key pair and 16-byte auth secret, and an endpoint of its own. Its
// Token() is what a device registers.
func (r *Receiver) NewSubscription(t testing.TB) push.Subscription {
	t.Helper()
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	auth := make([]byte, 16)
	if _, err := rand.Read(auth); err != nil {
		t.Fatal(err)
	}
	r.mu.Lock()
	r.seq++
	endpoint := r.srv.URL + "/push/s" + strconv.Itoa(r.seq)
	r.browsers[endpoint] = &browser{key: key, auth: auth}
	r.mu.Unlock()
	return push.Subscription{Endpoint: endpoint, Keys: push.SubscriptionKeys{
		P256dh: base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(auth),
	}}
}

// Received is every push recorded so far, in the order they arrived.
func (r *Receiver) Received() []Push {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.got)
}

// ReceivedBy is every push recorded so far for one subscription.
func (r *Receiver) ReceivedBy(s push.Subscription) []Push {
	return by(r.Received(), s.Endpoint)
}

// Attempts is how many pushes came for s, failed by Fail or not.
func (r *Receiver) Attempts(s push.Subscription) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.attempts[s.Endpoint]
}

// WaitReceived waits until at least n pushes have been recorded and
// returns them all. If that takes longer than timeout it fails the test
// with t.Fatalf, so call it from the test's goroutine.
func (r *Receiver) WaitReceived(t testing.TB, n int, timeout time.Duration) []Push {
	t.Helper()
	return r.wait(t, timeout, func(ps []Push) bool { return len(ps) >= n },
		func(ps []Push) string { return fmt.Sprintf("%d pushes of %d", len(ps), n) })
}

// WaitReceivedBy is WaitReceived for the pushes to one subscription: it
// returns those.
func (r *Receiver) WaitReceivedBy(t testing.TB, s push.Subscription, n int, timeout time.Duration) []Push {
	t.Helper()
	ps := r.wait(t, timeout, func(ps []Push) bool { return len(by(ps, s.Endpoint)) >= n },
		func(ps []Push) string {
			return fmt.Sprintf("%d pushes of %d to %s", len(by(ps, s.Endpoint)), n, s.Endpoint)
		})
	return by(ps, s.Endpoint)
}

// WaitFor waits until cond, given every push recorded so far, returns
// true, and returns those pushes. cond is called with the receiver's lock held: it must not
// call r. If timeout passes first, WaitFor fails the test with t.Fatalf.
func (r *Receiver) WaitFor(t testing.TB, timeout time.Duration, cond func([]Push) bool) []Push {
	t.Helper()
	return r.wait(t, timeout, cond, func(ps []Push) string { return fmt.Sprintf("condition not met after %d pushes", len(ps)) })
}

func (r *Receiver) wait(t testing.TB, timeout time.Duration, cond func([]Push) bool, progress func([]Push) string) []Push {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		r.mu.Lock()
		if cond(r.got) {
			out := slices.Clone(r.got)
			r.mu.Unlock()
			return out
		}
		changed := r.changed
		r.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			r.mu.Lock()
			msg := progress(r.got)
			r.mu.Unlock()
			t.Fatalf("webpushtest: after %v: %s", timeout, msg)
			return nil
		}
	}
}

// Fail makes pushes to s answer f instead of being accepted, replacing any
// override s had. It panics if f.Status is not a 4xx or 5xx.
func (r *Receiver) Fail(s push.Subscription, f Failure) {
	if f.Times != 0 && (f.Status < 400 || f.Status > 599) {
		panic(fmt.Sprintf("webpushtest: Fail with status %d, want 4xx or 5xx", f.Status))
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if f.Times == 0 {
		delete(r.failures, s.Endpoint)
		return
	}
	r.failures[s.Endpoint] = f
}

// FailNext makes the next n pushes to s answer status, or every one from
// now on if n is Always; n == 0 removes the override.
func (r *Receiver) FailNext(s push.Subscription, status, n int) {
	r.Fail(s, Failure{Status: status, Times: n})
}

// Gone makes s expired: every push to it from now on is answered 410.
func (r *Receiver) Gone(s push.Subscription) {
	r.FailNext(s, http.StatusGone, Always)
}

func (r *Receiver) serve(w http.ResponseWriter, req *http.Request) {
	endpoint := r.srv.URL + req.URL.Path
	r.mu.Lock()
	b := r.browsers[endpoint]
	if req.Method != http.MethodPost || b == nil {
		r.mu.Unlock()
		r.t.Errorf("webpushtest: unexpected %s %s: not a push to a subscription it made", req.Method, req.URL)
		http.NotFound(w, req)
		return
	}
	r.attempts[endpoint]++
	f, override := r.failures[endpoint]
	if override && f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(r.failures, endpoint)
		} else {
			r.failures[endpoint] = f
		}
	}
	vapid, subscriber, report := r.vapid, r.subscriber, r.report
	r.mu.Unlock()

	if override {
		if f.RetryAfter > 0 {
			w.Header().Set("Retry-After", strconv.FormatInt(int64((f.RetryAfter+time.Second-1)/time.Second), 10))
		}
		http.Error(w, http.StatusText(f.Status), f.Status)
		return
	}

	p := Push{Endpoint: endpoint, Header: req.Header.Clone(), TTL: req.Header.Get("TTL"),
		Urgency: req.Header.Get("Urgency"), Topic: req.Header.Get("Topic"), Status: http.StatusCreated}
	body, err := io.ReadAll(req.Body)
	if err != nil {
		p.Err = err
	} else if p.Status, p.Err = r.checkVAPID(req.Header.Get("Authorization"), vapid, subscriber); p.Err == nil {
		if ce := req.Header.Get("Content-Encoding"); ce != "aes128gcm" {
			p.Err = fmt.Errorf("content encoding %q, want aes128gcm", ce)
		} else if p.Plaintext, p.Err = decrypt(body, b.key, b.auth); p.Err == nil {
			if err := json.Unmarshal(p.Plaintext, &p.Payload); err != nil {
				p.Payload, p.Err = nil, fmt.Errorf("payload %q: %w", p.Plaintext, err)
			}
		}
	}
	if p.Err != nil && report {
		r.t.Errorf("webpushtest: push to %s: %v", endpoint, p.Err)
	}

	// Recorded before the answer goes out, so that a sender sees its push
	// in Received as soon as it has the answer.
	r.mu.Lock()
	r.got = append(r.got, p)
	location := endpoint + "/m" + strconv.Itoa(len(r.got))
	close(r.changed)
	r.changed = make(chan struct{})
	r.mu.Unlock()

	if p.Status != http.StatusCreated {
		http.Error(w, p.Err.Error(), p.Status)
		return
	}
	w.Header().Set("Location", location)
	w.WriteHeader(http.StatusCreated)
}

// checkVAPID verifies "vapid t=JWT, k=KEY" (RFC 8292): k is the expected
// key if there is one, the JWT is ES256-signed with it, for this origin,
// with the expected contact, and expires within a day. It returns the
// status to answer: 201, 401 for a bad token, 403 for the wrong key.
func (r *Receiver) checkVAPID(h string, want []byte, subscriber string) (int, error) {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return http.StatusUnauthorized, fmt.Errorf("authorization %q is not vapid", h)
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = v
	}
	k, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil {
		return http.StatusUnauthorized, fmt.Errorf("vapid k=%q is not base64url", params["k"])
	}
	if want != nil && !bytes.Equal(k, want) {
		return http.StatusForbidden, fmt.Errorf("vapid k=%q is not the node's public key", params["k"])
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k)
	if err != nil {
		return http.StatusUnauthorized, fmt.Errorf("vapid k: %w", err)
	}
	parts := strings.Split(params["t"], ".")
	if len(parts) != 3 {
		return http.StatusUnauthorized, errors.New("vapid t is not a JWT")
	}
	var head struct{ Alg string }
	var claims struct {
		Aud, Sub string
		Exp      int64
	}
	hj, err1 := base64.RawURLEncoding.DecodeString(parts[0])
	cj, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	sig, err3 := base64.RawURLEncoding.DecodeString(parts[2])
	if err := errors.Join(err1, err2, err3, json.Unmarshal(hj, &head), json.Unmarshal(cj, &claims)); err != nil {
		return http.StatusUnauthorized, fmt.Errorf("vapid JWT: %w", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if head.Alg != "ES256" || len(sig) != 64 ||
		!ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return http.StatusUnauthorized, fmt.Errorf("vapid JWT (alg %s) not signed by the node's key", head.Alg)
	}
	if claims.Aud != r.srv.URL {
		return http.StatusUnauthorized, fmt.Errorf("vapid aud %q, want %q", claims.Aud, r.srv.URL)
	}
	if subscriber != "" && claims.Sub != subscriber {
		return http.StatusUnauthorized, fmt.Errorf("vapid sub %q, want %q", claims.Sub, subscriber)
	}
	if subscriber == "" && !strings.HasPrefix(claims.Sub, "mailto:") && !strings.HasPrefix(claims.Sub, "https:") {
		return http.StatusUnauthorized, fmt.Errorf("vapid sub %q is not a mailto: or https: contact", claims.Sub)
	}
	// RFC 8292: expires, and no more than 24 hours ahead.
	if now := time.Now().Unix(); claims.Exp <= now || claims.Exp > now+24*3600 {
		return http.StatusUnauthorized, fmt.Errorf("vapid exp %d out of range", claims.Exp)
	}
	return http.StatusCreated, nil
}

// decrypt opens an aes128gcm body (RFC 8188) with the subscription's keys
// (RFC 8291).
func decrypt(body []byte, ua *ecdh.PrivateKey, auth []byte) ([]byte, error) {
	if len(body) < 21 {
		return nil, errors.New("body shorter than the header")
	}
	salt, rs, idlen := body[:16], binary.BigEndian.Uint32(body[16:20]), int(body[20])
	if len(body) < 21+idlen || rs < 18 {
		return nil, errors.New("bad header")
	}
	asPublic, records := body[21:21+idlen], body[21+idlen:]
	as, err := ecdh.P256().NewPublicKey(asPublic)
	if err != nil {
		return nil, fmt.Errorf("key id is not the sender's P-256 key: %w", err)
	}
	secret, err := ua.ECDH(as)
	if err != nil {
		return nil, err
	}
	info := "WebPush: info\x00" + string(ua.PublicKey().Bytes()) + string(asPublic)
	ikm, err := hkdf.Key(sha256.New, secret, auth, info, 32)
	if err != nil {
		return nil, err
	}
	cek, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: aes128gcm\x00", 16)
	if err != nil {
		return nil, err
	}
	nonce, err := hkdf.Key(sha256.New, ikm, salt, "Content-Encoding: nonce\x00", 12)
	if err != nil {
		return nil, err
	}
	block, err := aes.NewCipher(cek)
	if err != nil {
		return nil, err
	}
	gcm, err := cipher.NewGCM(block)
	if err != nil {
		return nil, err
	}
	var out []byte
	for seq := uint64(0); len(records) > 0; seq++ {
		rec := records[:min(int(rs), len(records))]
		records = records[len(rec):]
		iv := bytes.Clone(nonce)
		binary.BigEndian.PutUint64(iv[4:], binary.BigEndian.Uint64(iv[4:])^seq)
		plain, err := gcm.Open(nil, iv, rec, nil)
		if err != nil {
			return nil, fmt.Errorf("record %d: %w", seq, err)
		}
		end := len(plain) - 1
		for end >= 0 && plain[end] == 0 {
			end--
		}
		want := byte(1)
		if len(records) == 0 {
			want = 2
		}
		if end < 0 || plain[end] != want {
			return nil, fmt.Errorf("record %d: bad padding delimiter", seq)
		}
		out = append(out, plain[:end]...)
	}
	return out, nil
}

func by(ps []Push, endpoint string) []Push {
	var out []Push
	for _, p := range ps {
		if p.Endpoint == endpoint {
			out = append(out, p)
		}
	}
	return out
}
