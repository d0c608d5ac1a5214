package fcm_test

import (
	"context"
	"crypto"
	"crypto/rand"
	"crypto/rsa"
	"crypto/sha256"
	"crypto/x509"
	"encoding/base64"
	"encoding/json"
	"encoding/pem"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/push/fcm"
)

const project = "tern-test"

// sent is what the fake got in one messages:send request.
type sent struct {
	Bearer  string
	Message struct {
		Token   string            `json:"token"`
		Data    map[string]string `json:"data"`
		Android struct {
			CollapseKey string `json:"collapse_key"`
			Priority    string `json:"priority"`
			TTL         string `json:"ttl"`
		} `json:"android"`
		APNS struct {
			Headers map[string]string `json:"headers"`
			Payload struct {
				Aps map[string]any `json:"aps"`
			} `json:"payload"`
		} `json:"apns"`
		Notification json.RawMessage `json:"notification"`
	} `json:"message"`
}

// fake is a local FCM HTTP v1 API with its OAuth token endpoint. What it
// answers depends on the registration token:
//
//	gone-*    404 UNREGISTERED
//	badtoken  400 INVALID_ARGUMENT blaming message.token
//	badmsg    400 INVALID_ARGUMENT about something else
//	mismatch  403 SENDER_ID_MISMATCH
//	quota     429 QUOTA_EXCEEDED, Retry-After: 30
//	flaky     503 on the first two attempts, then success
//	down      503 always
//	anything else: success
type fake struct {
	t       *testing.T
	srv     *httptest.Server
	key     *rsa.PrivateKey
	email   string
	credsAt string

	mu       sync.Mutex
	issued   map[string]bool // access tokens handed out by /token
	sends    []sent
	attempts map[string]int // messages:send requests per registration token
}

func newFake(t *testing.T) *fake {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	f := &fake{t: t, key: key, email: "tern-push@" + project + ".iam.gserviceaccount.com",
		issued: map[string]bool{}, attempts: map[string]int{}}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", f.token)
	mux.HandleFunc("POST /v1/projects/"+project+"/messages:send", f.send)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fake FCM: unexpected %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	f.srv = httptest.NewServer(mux)
	t.Cleanup(f.srv.Close)

	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     project,
		"private_key_id": "key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   f.email,
		"client_id":      "1234567890",
		"token_uri":      f.srv.URL + "/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	f.credsAt = filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(f.credsAt, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return f
}

func (f *fake) notifier(t *testing.T) *fcm.Notifier {
	t.Helper()
	n, err := fcm.New(t.Context(), fcm.Config{CredentialsFile: f.credsAt, Endpoint: f.srv.URL + "/v1"})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// token is the OAuth 2 JWT-bearer grant: it checks that the assertion is
// signed by the service account's key and meant for this endpoint.
func (f *fake) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		f.t.Errorf("token: grant_type %q", g)
		http.Error(w, "bad grant", http.StatusBadRequest)
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		f.t.Errorf("token: assertion is not a JWT")
		http.Error(w, "bad assertion", http.StatusBadRequest)
		return
	}
	sig, err1 := base64.RawURLEncoding.DecodeString(parts[2])
	claimsJSON, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := errors.Join(err1, err2); err != nil || rsa.VerifyPKCS1v15(&f.key.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		f.t.Errorf("token: assertion not signed by the service account key (%v)", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var claims struct {
		Iss, Aud, Scope string
	}
	if err := json.Unmarshal(claimsJSON, &claims); err != nil {
		f.t.Errorf("token: claims: %v", err)
	}
	if claims.Iss != f.email || claims.Aud != f.srv.URL+"/token" || !strings.Contains(claims.Scope, "https://www.googleapis.com/auth/firebase") {
		f.t.Errorf("token: claims %+v", claims)
	}
	f.mu.Lock()
	tok := fmt.Sprintf("ya29.fake-%d", len(f.issued)+1)
	f.issued[tok] = true
	f.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
}

func fcmError(w http.ResponseWriter, status int, code, fcmCode, message, extraDetail string) {
	details := ""
	if fcmCode != "" {
		details = fmt.Sprintf(`{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":%q}`, fcmCode)
	}
	if extraDetail != "" {
		details += "," + extraDetail
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	fmt.Fprintf(w, `{"error":{"code":%d,"message":%q,"status":%q,"details":[%s]}}`, status, message, code, details)
}

func (f *fake) send(w http.ResponseWriter, r *http.Request) {
	var s sent
	if err := json.NewDecoder(r.Body).Decode(&s); err != nil {
		f.t.Errorf("send: body: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s.Bearer = strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")
	tok := s.Message.Token
	f.mu.Lock()
	authorised := f.issued[s.Bearer]
	f.sends = append(f.sends, s)
	f.attempts[tok]++
	attempt := f.attempts[tok]
	f.mu.Unlock()
	if !authorised {
		fcmError(w, http.StatusUnauthorized, "UNAUTHENTICATED", "", "bad bearer "+s.Bearer, "")
		return
	}
	switch {
	case strings.HasPrefix(tok, "gone-"):
		fcmError(w, http.StatusNotFound, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.", "")
	case tok == "badtoken":
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
			"The registration token is not a valid FCM registration token",
			`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}`)
	case tok == "badmsg":
		fcmError(w, http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Message is too big",
			`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.data","description":"too big"}]}`)
	case tok == "mismatch":
		fcmError(w, http.StatusForbidden, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch", "")
	case tok == "quota":
		w.Header().Set("Retry-After", "30")
		fcmError(w, http.StatusTooManyRequests, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded", "")
	case tok == "down" || (tok == "flaky" && attempt <= 2):
		fcmError(w, http.StatusServiceUnavailable, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", "")
	default:
		w.Header().Set("Content-Type", "application/json")
		fmt.Fprintf(w, `{"name":"projects/%s/messages/%d"}`, project, attempt)
	}
}

// got returns the requests the fake got for a registration token.
func (f *fake) got(tok string) []sent {
	f.mu.Lock()
	defer f.mu.Unlock()
	var out []sent
	for _, s := range f.sends {
		if s.Message.Token == tok {
			out = append(out, s)
		}
	}
	return out
}

func (f *fake) authorised(bearer string) bool {
	f.mu.Lock()
	defer f.mu.Unlock()
	return f.issued[bearer]
}

func TestMessage(t *testing.T) {
	f := newFake(t)
	n := f.notifier(t)
	err := n.Notify(t.Context(), push.Notification{UserID: "u2", DeviceID: "d2", Provider: push.ProviderFCM,
		Token: "tok-msg", Kind: push.KindMessage, ChatID: "c-42", MsgID: "m-7", From: "u1", Text: "hello there"})
	if err != nil {
		t.Fatal(err)
	}
	got := f.got("tok-msg")
	if len(got) != 1 {
		t.Fatalf("fake got %d requests, want 1", len(got))
	}
	s := got[0]
	if !f.authorised(s.Bearer) {
		t.Errorf("bearer %q was not issued by the token endpoint", s.Bearer)
	}
	m := s.Message
	want := map[string]string{"type": "message", "chat_id": "c-42", "msg_id": "m-7", "sender": "u1", "text": "hello there"}
	if fmt.Sprint(m.Data) != fmt.Sprint(want) {
		t.Errorf("data = %v, want %v", m.Data, want)
	}
	if len(m.Notification) != 0 {
		t.Errorf("message has a notification block %s: it should be data-only", m.Notification)
	}
	if m.Android.CollapseKey != "c-42" || m.Android.Priority != "high" {
		t.Errorf("android = %+v, want collapse_key c-42, priority high", m.Android)
	}
	if m.Android.TTL != strconv.Itoa(int(push.MessageTTL/time.Second))+"s" {
		t.Errorf("android ttl = %q, want %v", m.Android.TTL, push.MessageTTL)
	}
	h := m.APNS.Headers
	if h["apns-collapse-id"] != "c-42" || h["apns-priority"] != "5" || h["apns-push-type"] != "background" {
		t.Errorf("apns headers = %v", h)
	}
	if exp, err := strconv.ParseInt(h["apns-expiration"], 10, 64); err != nil || exp <= time.Now().Unix() {
		t.Errorf("apns-expiration = %q, want a time to come", h["apns-expiration"])
	}
	if m.APNS.Payload.Aps["content-available"] != float64(1) {
		t.Errorf("aps = %v, want content-available 1", m.APNS.Payload.Aps)
	}
}

func TestReceiptAndNoPreview(t *testing.T) {
	f := newFake(t)
	n := f.notifier(t)
	ctx := t.Context()
	if err := n.Notify(ctx, push.Notification{Token: "tok-rcpt", Kind: push.KindReceipt, ChatID: "c-1", MsgID: "m-1"}); err != nil {
		t.Fatal(err)
	}
	// A message without preview: no text in the payload.
	if err := n.Notify(ctx, push.Notification{Token: "tok-quiet", Kind: push.KindMessage, ChatID: "c-1", MsgID: "m-2", From: "u1"}); err != nil {
		t.Fatal(err)
	}
	r := f.got("tok-rcpt")[0].Message
	if r.Data["type"] != "receipt" || r.Android.Priority != "normal" || r.APNS.Headers["apns-priority"] != "5" {
		t.Errorf("receipt: data %v, android %+v, apns %v", r.Data, r.Android, r.APNS.Headers)
	}
	if r.Android.TTL != strconv.Itoa(int(push.OtherTTL/time.Second))+"s" {
		t.Errorf("receipt ttl = %q, want %v", r.Android.TTL, push.OtherTTL)
	}
	q := f.got("tok-quiet")[0].Message
	if _, ok := q.Data["text"]; ok {
		t.Errorf("payload without preview has text: %v", q.Data)
	}
	if q.Data["msg_id"] != "m-2" || q.Data["sender"] != "u1" || q.Android.Priority != "high" {
		t.Errorf("message without preview: data %v, android %+v", q.Data, q.Android)
	}
}

func TestBatch(t *testing.T) {
	f := newFake(t)
	n := f.notifier(t)
	// Over SendEach's 500, so it takes two calls; a few fail in between.
	const size = 523
	ns := make([]push.Notification, size)
	for i := range ns {
		ns[i] = push.Notification{Token: fmt.Sprintf("tok-%03d", i), Kind: push.KindMessage, ChatID: fmt.Sprintf("c-%d", i%7), MsgID: fmt.Sprintf("m-%d", i)}
	}
	ns[3].Token = "gone-3"
	ns[510].Token = "gone-510"
	ns[77].Token = ""
	errs := n.NotifyAll(t.Context(), ns)
	if len(errs) != size {
		t.Fatalf("%d results for %d notifications", len(errs), size)
	}
	for i, err := range errs {
		switch i {
		case 3, 510, 77:
			if !errors.Is(err, push.ErrUnregistered) {
				t.Errorf("%d (%q): %v, want ErrUnregistered", i, ns[i].Token, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%d: %v", i, err)
			continue
		}
		got := f.got(ns[i].Token)
		if len(got) != 1 {
			t.Errorf("%s: %d requests, want 1", ns[i].Token, len(got))
			continue
		}
		m := got[0].Message
		if m.Data["msg_id"] != ns[i].MsgID || m.Android.CollapseKey != ns[i].ChatID || !f.authorised(got[0].Bearer) {
			t.Errorf("%s: got %+v", ns[i].Token, m)
		}
	}
	if got := f.got(""); len(got) != 0 {
		t.Errorf("an empty token was sent")
	}
}

func TestErrorMapping(t *testing.T) {
	f := newFake(t)
	n := f.notifier(t)
	notify := func(tok string) error {
		return n.Notify(t.Context(), push.Notification{Token: tok, Kind: push.KindMessage, ChatID: "c"})
	}
	for _, tok := range []string{"gone-1", "badtoken", "mismatch", ""} {
		if err := notify(tok); !errors.Is(err, push.ErrUnregistered) || errors.Is(err, push.ErrTemporary) {
			t.Errorf("%q: %v, want ErrUnregistered", tok, err)
		}
	}
	err := notify("badmsg")
	if err == nil || errors.Is(err, push.ErrUnregistered) || errors.Is(err, push.ErrTemporary) {
		t.Errorf("badmsg: %v, want a permanent error", err)
	}
	err = notify("quota")
	if d, ok := push.RetryAfter(err); !ok || d != 30*time.Second {
		t.Errorf("quota: %v (retry after %v), want ErrTemporary after 30s", err, d)
	}
	if got := len(f.got("quota")); got != 1 {
		t.Errorf("quota: %d requests: the SDK retries only 503", got)
	}
}

func TestRetriesUnavailable(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	n := f.notifier(t)
	if err := n.Notify(t.Context(), push.Notification{Token: "flaky", Kind: push.KindMessage, ChatID: "c"}); err != nil {
		t.Fatalf("flaky: %v, want delivered after retries", err)
	}
	if got := len(f.got("flaky")); got != 3 {
		t.Errorf("flaky: %d requests, want 3 (two 503s, then success)", got)
	}
}

func TestUnavailableGivesUp(t *testing.T) {
	t.Parallel()
	f := newFake(t)
	n := f.notifier(t)
	// The SDK's own backoff is about 7 s in all; the deadline only keeps a
	// hang from lasting the whole test run.
	ctx, cancel := context.WithTimeout(t.Context(), 2*time.Minute)
	defer cancel()
	err := n.Notify(ctx, push.Notification{Token: "down", Kind: push.KindMessage, ChatID: "c"})
	if !errors.Is(err, push.ErrTemporary) || errors.Is(err, push.ErrUnregistered) {
		t.Fatalf("down: %v, want ErrTemporary", err)
	}
	if ctx.Err() != nil {
		t.Fatalf("down: gave up only at the deadline: %v", err)
	}
	if got := len(f.got("down")); got != 5 {
		t.Errorf("down: %d requests, want 5 (the SDK's 4 retries)", got)
	}
}

func TestCancelledIsTemporary(t *testing.T) {
	f := newFake(t)
	n := f.notifier(t)
	ctx, cancel := context.WithCancel(t.Context())
	cancel()
	err := n.Notify(ctx, push.Notification{Token: "tok", Kind: push.KindMessage, ChatID: "c"})
	if !errors.Is(err, push.ErrTemporary) {
		t.Errorf("cancelled: %v, want ErrTemporary", err)
	}
}

func TestNewRefusesBadCredentials(t *testing.T) {
	dir := t.TempDir()
	write := func(name, body string) string {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, []byte(body), 0o600); err != nil {
			t.Fatal(err)
		}
		return p
	}
	for name, path := range map[string]string{
		"missing":       filepath.Join(dir, "nope.json"),
		"not json":      write("bad.json", "{"),
		"user creds":    write("user.json", `{"type":"authorized_user","project_id":"p"}`),
		"external":      write("ext.json", `{"type":"external_account","project_id":"p"}`),
		"no project id": write("noproj.json", `{"type":"service_account"}`),
		"no file":       "",
	} {
		if _, err := fcm.New(t.Context(), fcm.Config{CredentialsFile: path}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
	f := newFake(t)
	if _, err := fcm.New(t.Context(), fcm.Config{CredentialsFile: f.credsAt, Endpoint: "fcm.local/v1"}); err == nil {
		t.Errorf("an endpoint without scheme: accepted")
	}
}
