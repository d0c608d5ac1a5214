package webpush_test

import (
	"bytes"
	"context"
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
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/push/webpush"
)

// browser is one subscription: the keys a browser keeps to itself.
type browser struct {
	id   string
	key  *ecdh.PrivateKey
	auth []byte
}

// delivery is what the receiver made of one push.
type delivery struct {
	header  http.Header
	payload map[string]string
	err     error // decryption or VAPID failure
}

// receiver is the push service and the browsers behind it: it checks the
// VAPID token, decrypts each push with the subscription's private key and
// keeps what it found. Endpoint paths /push/ID answer by ID:
//
//	gone  410    missing 404    busy 503 Retry-After: 120
//	slow  429    bad     400    anything else: 201, delivered
type receiver struct {
	t     *testing.T
	srv   *httptest.Server
	vapid []byte // the node's public key, as VAPID k= must carry it

	mu       sync.Mutex
	browsers map[string]*browser
	got      map[string][]delivery
}

func newReceiver(t *testing.T, vapidPublic string) *receiver {
	t.Helper()
	pub, err := base64.RawURLEncoding.DecodeString(vapidPublic)
	if err != nil {
		t.Fatal(err)
	}
	r := &receiver{t: t, vapid: pub, browsers: map[string]*browser{}, got: map[string][]delivery{}}
	r.srv = httptest.NewUnstartedServer(http.HandlerFunc(r.serve))
	// The client may still be dialling a spare connection when a test
	// closes the server; the handshake error that logs is noise.
	r.srv.Config.ErrorLog = log.New(io.Discard, "", 0)
	r.srv.StartTLS()
	t.Cleanup(r.srv.Close)
	return r
}

// subscribe makes a browser subscription and returns it as a token.
func (r *receiver) subscribe(id string) string {
	r.t.Helper()
	key, err := ecdh.P256().GenerateKey(rand.Reader)
	if err != nil {
		r.t.Fatal(err)
	}
	auth := make([]byte, 16)
	if _, err := rand.Read(auth); err != nil {
		r.t.Fatal(err)
	}
	r.mu.Lock()
	r.browsers[id] = &browser{id: id, key: key, auth: auth}
	r.mu.Unlock()
	return push.Subscription{Endpoint: r.srv.URL + "/push/" + id, Keys: push.SubscriptionKeys{
		P256dh: base64.RawURLEncoding.EncodeToString(key.PublicKey().Bytes()),
		Auth:   base64.RawURLEncoding.EncodeToString(auth),
	}}.Token()
}

func (r *receiver) deliveries(id string) []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.got[id]...)
}

func (r *receiver) serve(w http.ResponseWriter, req *http.Request) {
	id, ok := strings.CutPrefix(req.URL.Path, "/push/")
	if req.Method != http.MethodPost || !ok {
		r.t.Errorf("receiver: unexpected %s %s", req.Method, req.URL)
		http.NotFound(w, req)
		return
	}
	switch id {
	case "gone":
		http.Error(w, "subscription expired", http.StatusGone)
		return
	case "missing":
		http.NotFound(w, req)
		return
	case "busy":
		w.Header().Set("Retry-After", "120")
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	case "slow":
		http.Error(w, "too many", http.StatusTooManyRequests)
		return
	case "bad":
		http.Error(w, "bad request", http.StatusBadRequest)
		return
	}
	r.mu.Lock()
	b := r.browsers[id]
	r.mu.Unlock()
	if b == nil {
		r.t.Errorf("receiver: push for unknown subscription %q", id)
		http.NotFound(w, req)
		return
	}
	body, err := io.ReadAll(req.Body)
	d := delivery{header: req.Header.Clone()}
	if err == nil {
		err = r.checkVAPID(req.Header.Get("Authorization"))
	}
	if err == nil {
		var plain []byte
		plain, err = decrypt(body, b.key, b.auth)
		if err == nil {
			err = json.Unmarshal(plain, &d.payload)
		}
	}
	d.err = err
	r.mu.Lock()
	r.got[id] = append(r.got[id], d)
	r.mu.Unlock()
	w.WriteHeader(http.StatusCreated)
}

// checkVAPID verifies "vapid t=JWT, k=KEY" (RFC 8292): k is the node's
// key, the JWT is ES256-signed with it, for this origin, with a contact.
func (r *receiver) checkVAPID(h string) error {
	rest, ok := strings.CutPrefix(h, "vapid ")
	if !ok {
		return fmt.Errorf("authorization %q is not vapid", h)
	}
	params := map[string]string{}
	for _, p := range strings.Split(rest, ",") {
		k, v, _ := strings.Cut(strings.TrimSpace(p), "=")
		params[k] = v
	}
	k, err := base64.RawURLEncoding.DecodeString(params["k"])
	if err != nil || !bytes.Equal(k, r.vapid) {
		return fmt.Errorf("vapid k=%q is not the node's public key", params["k"])
	}
	pub, err := ecdsa.ParseUncompressedPublicKey(elliptic.P256(), k)
	if err != nil {
		return err
	}
	parts := strings.Split(params["t"], ".")
	if len(parts) != 3 {
		return errors.New("vapid t is not a JWT")
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
		return fmt.Errorf("vapid JWT: %w", err)
	}
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if head.Alg != "ES256" || len(sig) != 64 ||
		!ecdsa.Verify(pub, digest[:], new(big.Int).SetBytes(sig[:32]), new(big.Int).SetBytes(sig[32:])) {
		return fmt.Errorf("vapid JWT (alg %s) not signed by the node's key", head.Alg)
	}
	if claims.Aud != r.srv.URL {
		return fmt.Errorf("vapid aud %q, want %q", claims.Aud, r.srv.URL)
	}
	if claims.Sub != "mailto:ops@tern.test" {
		return fmt.Errorf("vapid sub %q", claims.Sub)
	}
	// RFC 8292: expires, and no more than 24 hours ahead.
	if now := time.Now().Unix(); claims.Exp <= now || claims.Exp > now+24*3600 {
		return fmt.Errorf("vapid exp %d out of range", claims.Exp)
	}
	return nil
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

// String keeps failure output short: what arrived, not the whole request.
func (d delivery) String() string {
	if d.err != nil {
		return "undecryptable or unauthorised: " + d.err.Error()
	}
	return fmt.Sprintf("payload %v (Urgency %s, TTL %s, Topic %s)", d.payload,
		d.header.Get("Urgency"), d.header.Get("TTL"), d.header.Get("Topic"))
}

func newNotifier(t *testing.T, cfg webpush.Config, r *receiver) *webpush.Notifier {
	t.Helper()
	cfg.HTTPClient = r.srv.Client() // trusts the receiver's test certificate
	n, err := webpush.New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return n
}

func setup(t *testing.T) (*webpush.Notifier, *receiver) {
	t.Helper()
	keys, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, keys.Public)
	return newNotifier(t, webpush.Config{VAPID: keys, Subscriber: "ops@tern.test"}, r), r
}

func TestMessageIsDecryptable(t *testing.T) {
	n, r := setup(t)
	tok := r.subscribe("alice")
	err := n.Notify(t.Context(), push.Notification{UserID: "u2", DeviceID: "d2", Provider: push.ProviderWebPush,
		Token: tok, Kind: push.KindMessage, ChatID: "c-42", MsgID: "m-7", From: "u1", Text: "héllo <there> & \"you\""})
	if err != nil {
		t.Fatal(err)
	}
	got := r.deliveries("alice")
	if len(got) != 1 || got[0].err != nil {
		t.Fatalf("deliveries %v, want 1 that decrypts", got)
	}
	d := got[0]
	want := map[string]string{"type": "message", "chat_id": "c-42", "msg_id": "m-7", "sender": "u1", "text": "héllo <there> & \"you\""}
	if fmt.Sprint(d.payload) != fmt.Sprint(want) {
		t.Errorf("payload %v, want %v", d.payload, want)
	}
	h := d.header
	if h.Get("Content-Encoding") != "aes128gcm" || h.Get("Urgency") != "high" ||
		h.Get("TTL") != strconv.Itoa(int(push.MessageTTL/time.Second)) {
		t.Errorf("headers %v", h)
	}
	topic := h.Get("Topic")
	if topic != push.CollapseID("c-42") || len(topic) > 32 {
		t.Errorf("Topic %q, want %q", topic, push.CollapseID("c-42"))
	}
}

func TestReceiptAndNoPreview(t *testing.T) {
	n, r := setup(t)
	tok := r.subscribe("bob")
	ctx := t.Context()
	if err := n.Notify(ctx, push.Notification{Token: tok, Kind: push.KindReceipt, ChatID: "c-1", MsgID: "m-1"}); err != nil {
		t.Fatal(err)
	}
	if err := n.Notify(ctx, push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c-1", MsgID: "m-2", From: "u1"}); err != nil {
		t.Fatal(err)
	}
	got := r.deliveries("bob")
	if len(got) != 2 || got[0].err != nil || got[1].err != nil {
		t.Fatalf("deliveries %v", got)
	}
	rc, msg := got[0], got[1]
	if rc.payload["type"] != "receipt" || rc.header.Get("Urgency") != "normal" ||
		rc.header.Get("TTL") != strconv.Itoa(int(push.OtherTTL/time.Second)) {
		t.Errorf("receipt: %v", rc)
	}
	if _, ok := msg.payload["text"]; ok || msg.payload["msg_id"] != "m-2" || msg.header.Get("Urgency") != "high" {
		t.Errorf("message without preview: %v", msg)
	}
	if rc.header.Get("Topic") != msg.header.Get("Topic") {
		t.Errorf("two pushes for one chat have topics %q and %q", rc.header.Get("Topic"), msg.header.Get("Topic"))
	}
}

func TestLongTextFits(t *testing.T) {
	n, r := setup(t)
	tok := r.subscribe("carol")
	// Control characters take six bytes each in JSON: the text must be cut
	// further than push.MaxText to fit one record.
	text := strings.Repeat("\x01", push.MaxText)
	if err := n.Notify(t.Context(), push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c", Text: text}); err != nil {
		t.Fatal(err)
	}
	got := r.deliveries("carol")
	if len(got) != 1 || got[0].err != nil {
		t.Fatalf("deliveries %v", got)
	}
	if s := got[0].payload["text"]; s == "" || !strings.HasPrefix(text, s) {
		t.Errorf("text of %d bytes arrived as %d bytes", len(text), len(s))
	}
}

func TestErrorMapping(t *testing.T) {
	n, r := setup(t)
	ctx := t.Context()
	notify := func(tok string) error {
		return n.Notify(ctx, push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c"})
	}
	for _, id := range []string{"gone", "missing"} {
		if err := notify(r.subscribe(id)); !errors.Is(err, push.ErrUnregistered) || errors.Is(err, push.ErrTemporary) {
			t.Errorf("%s: %v, want ErrUnregistered", id, err)
		}
	}
	err := notify(r.subscribe("busy"))
	if d, ok := push.RetryAfter(err); !ok || d != 2*time.Minute || errors.Is(err, push.ErrUnregistered) {
		t.Errorf("busy: %v (retry after %v), want ErrTemporary after 2m", err, d)
	}
	if err := notify(r.subscribe("slow")); !errors.Is(err, push.ErrTemporary) {
		t.Errorf("slow: %v, want ErrTemporary", err)
	}
	err = notify(r.subscribe("bad"))
	if err == nil || errors.Is(err, push.ErrTemporary) || errors.Is(err, push.ErrUnregistered) {
		t.Errorf("bad: %v, want a permanent error", err)
	}
	// Subscriptions that can never work are dropped without a request.
	insecure := strings.Replace(r.subscribe("plain"), "https://", "http://", 1)
	for name, tok := range map[string]string{"fcm token": "dGhpcyBpcyBub3QgSlNPTg", "http endpoint": insecure, "empty": ""} {
		if err := notify(tok); !errors.Is(err, push.ErrUnregistered) {
			t.Errorf("%s: %v, want ErrUnregistered", name, err)
		}
	}
	if got := r.deliveries("plain"); len(got) != 0 {
		t.Errorf("an http endpoint was pushed to")
	}
}

func TestUnreachableIsTemporary(t *testing.T) {
	n, r := setup(t)
	tok := r.subscribe("dave")
	r.srv.Close()
	err := n.Notify(t.Context(), push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c"})
	if !errors.Is(err, push.ErrTemporary) {
		t.Errorf("closed server: %v, want ErrTemporary", err)
	}
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	if err := n.Notify(ctx, push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c"}); !errors.Is(err, push.ErrTemporary) {
		t.Errorf("cancelled: %v, want ErrTemporary", err)
	}
}

func TestNotifyAll(t *testing.T) {
	keys, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	r := newReceiver(t, keys.Public)
	// mailto: given or not, the token's sub is the same.
	n := newNotifier(t, webpush.Config{VAPID: keys, Subscriber: "mailto:ops@tern.test", Concurrency: 4}, r)
	ns := make([]push.Notification, 30)
	for i := range ns {
		ns[i] = push.Notification{Token: r.subscribe(fmt.Sprint("b", i)), Kind: push.KindMessage,
			ChatID: fmt.Sprint("c", i%3), MsgID: fmt.Sprint("m", i)}
	}
	ns[11].Token = r.subscribe("gone")
	errs := n.NotifyAll(t.Context(), ns)
	if len(errs) != len(ns) {
		t.Fatalf("%d results for %d notifications", len(errs), len(ns))
	}
	for i, err := range errs {
		if i == 11 {
			if !errors.Is(err, push.ErrUnregistered) {
				t.Errorf("11: %v, want ErrUnregistered", err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		got := r.deliveries(fmt.Sprint("b", i))
		if len(got) != 1 || got[0].err != nil || got[0].payload["msg_id"] != ns[i].MsgID {
			t.Errorf("b%d: deliveries %v", i, got)
		}
	}
}

func TestNewChecksConfig(t *testing.T) {
	a, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	b, err := webpush.GenerateKeys()
	if err != nil {
		t.Fatal(err)
	}
	if a == b {
		t.Fatal("GenerateKeys made the same pair twice")
	}
	pub, _ := base64.RawURLEncoding.DecodeString(a.Public)
	priv, _ := base64.RawURLEncoding.DecodeString(a.Private)
	if len(pub) != 65 || pub[0] != 4 || len(priv) != 32 {
		t.Errorf("key sizes %d/%d, want 65 (uncompressed) and 32", len(pub), len(priv))
	}
	padded := webpush.VAPIDKeys{Public: base64.URLEncoding.EncodeToString(pub), Private: base64.URLEncoding.EncodeToString(priv)}
	if _, err := webpush.New(webpush.Config{VAPID: padded, Subscriber: "https://tern.test/contact"}); err != nil {
		t.Errorf("padded keys, https contact: %v", err)
	}
	for name, cfg := range map[string]webpush.Config{
		"mismatched pair": {VAPID: webpush.VAPIDKeys{Public: a.Public, Private: b.Private}, Subscriber: "ops@tern.test"},
		"no private key":  {VAPID: webpush.VAPIDKeys{Public: a.Public}, Subscriber: "ops@tern.test"},
		"no subscriber":   {VAPID: a},
		"bad subscriber":  {VAPID: a, Subscriber: "ops"},
	} {
		if _, err := webpush.New(cfg); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}
