package fcmtest

import (
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
	"slices"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"
)

// ProjectID is the Firebase project of the service account that Start
// writes; sends go to /v1/projects/ProjectID/messages:send.
const ProjectID = "tern-test"

// ClientEmail is the service account's address, the iss of its assertions.
const ClientEmail = "tern-push@" + ProjectID + ".iam.gserviceaccount.com"

// Always, as the count of Fail or FailNext, makes a failure permanent.
const Always = -1

// Message is one messages:send request as the server got it.
type Message struct {
	// Bearer is the access token of the Authorization header, without
	// "Bearer ".
	Bearer string
	// Token is the registration token (message.token).
	Token string
	// Data is message.data.
	Data map[string]string
	// Android is message.android.
	Android Android
	// APNS is message.apns.
	APNS APNS
	// Notification is message.notification as it came, nil if the message
	// had none (a data-only message).
	Notification json.RawMessage
	// Status is the HTTP status the server answered.
	Status int
	// Attempt counts the sends to Token so far, this one included: 1 for
	// the first.
	Attempt int
}

// HasNotification tells whether m had a notification block, which a
// data-only message does not.
func (m Message) HasNotification() bool {
	return len(m.Notification) > 0 && string(m.Notification) != "null"
}

// Android is the part of message.android the server keeps.
type Android struct {
	CollapseKey string `json:"collapse_key"`
	Priority    string `json:"priority"`
	// TTL is as FCM takes it: seconds with an "s", such as "3600s".
	TTL string `json:"ttl"`
}

// APNS is the part of message.apns the server keeps.
type APNS struct {
	// Headers are the APNs headers, such as apns-priority.
	Headers map[string]string `json:"headers"`
	// Aps is payload.aps; a JSON number in it is a float64, so
	// content-available is float64(1).
	Aps map[string]any `json:"-"`
}

// Failure is an answer to give instead of a token's usual one.
type Failure struct {
	// Status is the HTTP status, with the FCM error body that goes with it:
	// 400 INVALID_ARGUMENT (about the message, not the token), 401
	// UNAUTHENTICATED, 403 SENDER_ID_MISMATCH, 404 UNREGISTERED, 429
	// QUOTA_EXCEEDED, 500 INTERNAL, 503 UNAVAILABLE, and for any other
	// status an UNKNOWN error.
	Status int
	// Times is how many sends get it: Always (or any negative) for every
	// one from now on; zero removes the token's override.
	Times int
	// RetryAfter, if positive, is sent as Retry-After in whole seconds. The
	// SDK waits that long before retrying a 503, so keep it off 503s.
	RetryAfter time.Duration
}

// Server is a local FCM. Its methods are safe for concurrent use.
type Server struct {
	t       testing.TB
	srv     *httptest.Server
	key     *rsa.PrivateKey
	credsAt string

	mu       sync.Mutex
	issued   map[string]bool // access tokens handed out by /token
	sends    []Message
	attempts map[string]int     // messages:send requests per registration token
	failures map[string]Failure // overrides per registration token
	changed  chan struct{}      // closed and replaced on every send
}

// Start starts a Server on 127.0.0.1 with a fresh 2048-bit RSA service
// account key; t's cleanup closes it. Failures the server sees are
// reported with t.Errorf, so t must outlive its use.
func Start(t testing.TB) *Server {
	t.Helper()
	key, err := rsa.GenerateKey(rand.Reader, 2048)
	if err != nil {
		t.Fatal(err)
	}
	s := &Server{t: t, key: key, issued: map[string]bool{}, attempts: map[string]int{},
		failures: map[string]Failure{}, changed: make(chan struct{})}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /token", s.token)
	mux.HandleFunc("POST /v1/projects/"+ProjectID+"/messages:send", s.send)
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		t.Errorf("fcmtest: unexpected %s %s", r.Method, r.URL)
		http.NotFound(w, r)
	})
	s.srv = httptest.NewServer(mux)
	t.Cleanup(s.srv.Close)

	der, err := x509.MarshalPKCS8PrivateKey(key)
	if err != nil {
		t.Fatal(err)
	}
	creds, err := json.Marshal(map[string]string{
		"type":           "service_account",
		"project_id":     ProjectID,
		"private_key_id": "key-1",
		"private_key":    string(pem.EncodeToMemory(&pem.Block{Type: "PRIVATE KEY", Bytes: der})),
		"client_email":   ClientEmail,
		"client_id":      "1234567890",
		"token_uri":      s.srv.URL + "/token",
	})
	if err != nil {
		t.Fatal(err)
	}
	s.credsAt = filepath.Join(t.TempDir(), "service-account.json")
	if err := os.WriteFile(s.credsAt, creds, 0o600); err != nil {
		t.Fatal(err)
	}
	return s
}

// CredentialsFile is the path of the service-account JSON key file, for
// fcm.Config.CredentialsFile.
func (s *Server) CredentialsFile() string { return s.credsAt }

// Endpoint is the API's base URL, http://127.0.0.1:PORT/v1, for
// fcm.Config.Endpoint.
func (s *Server) Endpoint() string { return s.srv.URL + "/v1" }

// URL is the server's root, http://127.0.0.1:PORT; the token endpoint is
// URL()+"/token".
func (s *Server) URL() string { return s.srv.URL }

// Close shuts the server down, so that sends fail to connect. It waits for
// requests in progress. Start's cleanup closes it anyway.
func (s *Server) Close() { s.srv.Close() }

// Issued tells whether the token endpoint handed out bearer.
func (s *Server) Issued(bearer string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.issued[bearer]
}

// Sent is every send so far, in the order they arrived.
func (s *Server) Sent() []Message {
	s.mu.Lock()
	defer s.mu.Unlock()
	return slices.Clone(s.sends)
}

// SentTo is every send so far to one registration token.
func (s *Server) SentTo(token string) []Message {
	return filter(s.Sent(), func(m Message) bool { return m.Token == token })
}

// Delivered is every send so far that was answered 200.
func (s *Server) Delivered() []Message {
	return filter(s.Sent(), func(m Message) bool { return m.Status == http.StatusOK })
}

// Attempts is how many sends there were to token, whatever the answer.
func (s *Server) Attempts(token string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.attempts[token]
}

// WaitSent waits until there have been at least n sends, whatever their
// answers, and returns them all. If that takes longer than timeout it
// fails the test with t.Fatalf, so call it from the test's goroutine.
func (s *Server) WaitSent(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	return s.wait(t, timeout, func(ms []Message) bool { return len(ms) >= n },
		func(ms []Message) string { return fmt.Sprintf("%d sends of %d", len(ms), n) })
}

// WaitDelivered is WaitSent for sends answered 200: it returns those.
func (s *Server) WaitDelivered(t testing.TB, n int, timeout time.Duration) []Message {
	t.Helper()
	ok := func(m Message) bool { return m.Status == http.StatusOK }
	ms := s.wait(t, timeout, func(ms []Message) bool { return len(filter(ms, ok)) >= n },
		func(ms []Message) string { return fmt.Sprintf("%d delivered of %d", len(filter(ms, ok)), n) })
	return filter(ms, ok)
}

// WaitFor waits until cond, given every send so far, returns true, and
// returns those sends.
// cond is called with the server's lock held: it must not call s. If
// timeout passes first, WaitFor fails the test with t.Fatalf.
func (s *Server) WaitFor(t testing.TB, timeout time.Duration, cond func([]Message) bool) []Message {
	t.Helper()
	return s.wait(t, timeout, cond, func(ms []Message) string { return fmt.Sprintf("condition not met after %d sends", len(ms)) })
}

func (s *Server) wait(t testing.TB, timeout time.Duration, cond func([]Message) bool, progress func([]Message) string) []Message {
	t.Helper()
	deadline := time.NewTimer(timeout)
	defer deadline.Stop()
	for {
		s.mu.Lock()
		if cond(s.sends) {
			out := slices.Clone(s.sends)
			s.mu.Unlock()
			return out
		}
		changed := s.changed
		s.mu.Unlock()
		select {
		case <-changed:
		case <-deadline.C:
			s.mu.Lock()
			msg := progress(s.sends)
			s.mu.Unlock()
			t.Fatalf("fcmtest: after %v: %s", timeout, msg)
			return nil
		}
	}
}

// FailNext makes the next n sends to token answer status (see Failure),
// or every one from now on if n is Always; n == 0 removes the override.
func (s *Server) FailNext(token string, status, n int) {
	s.Fail(token, Failure{Status: status, Times: n})
}

// Fail makes sends to token answer f instead of the usual, replacing any
// override the token had. It panics if f.Status is not a 4xx or 5xx.
func (s *Server) Fail(token string, f Failure) {
	if f.Times != 0 && (f.Status < 400 || f.Status > 599) {
		panic(fmt.Sprintf("fcmtest: Fail with status %d, want 4xx or 5xx", f.Status))
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if f.Times == 0 {
		delete(s.failures, token)
		return
	}
	s.failures[token] = f
}

// token is the OAuth 2 JWT-bearer grant: it checks that the assertion is
// signed by the service account's key and meant for this endpoint.
func (s *Server) token(w http.ResponseWriter, r *http.Request) {
	if err := r.ParseForm(); err != nil {
		s.t.Errorf("fcmtest: token: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if g := r.PostForm.Get("grant_type"); g != "urn:ietf:params:oauth:grant-type:jwt-bearer" {
		s.t.Errorf("fcmtest: token: grant_type %q", g)
		http.Error(w, "bad grant", http.StatusBadRequest)
		return
	}
	parts := strings.Split(r.PostForm.Get("assertion"), ".")
	if len(parts) != 3 {
		s.t.Errorf("fcmtest: token: assertion is not a JWT")
		http.Error(w, "bad assertion", http.StatusBadRequest)
		return
	}
	sig, err1 := base64.RawURLEncoding.DecodeString(parts[2])
	claimsJSON, err2 := base64.RawURLEncoding.DecodeString(parts[1])
	digest := sha256.Sum256([]byte(parts[0] + "." + parts[1]))
	if err := errors.Join(err1, err2); err != nil || rsa.VerifyPKCS1v15(&s.key.PublicKey, crypto.SHA256, digest[:], sig) != nil {
		s.t.Errorf("fcmtest: token: assertion not signed by the service account key (%v)", err)
		http.Error(w, "bad signature", http.StatusUnauthorized)
		return
	}
	var claims struct {
		Iss, Aud, Scope string
	}
	if err := json.Unmarshal(claimsJSON, &claims); err != nil {
		s.t.Errorf("fcmtest: token: claims: %v", err)
	}
	if claims.Iss != ClientEmail || claims.Aud != s.srv.URL+"/token" || !strings.Contains(claims.Scope, "https://www.googleapis.com/auth/firebase") {
		s.t.Errorf("fcmtest: token: claims %+v", claims)
	}
	s.mu.Lock()
	tok := fmt.Sprintf("ya29.fake-%d", len(s.issued)+1)
	s.issued[tok] = true
	s.mu.Unlock()
	w.Header().Set("Content-Type", "application/json")
	fmt.Fprintf(w, `{"access_token":%q,"token_type":"Bearer","expires_in":3600}`, tok)
}

// wire is the body of a messages:send request, as much of it as is kept.
type wire struct {
	Message struct {
		Token   string            `json:"token"`
		Data    map[string]string `json:"data"`
		Android Android           `json:"android"`
		APNS    struct {
			Headers map[string]string `json:"headers"`
			Payload struct {
				Aps map[string]any `json:"aps"`
			} `json:"payload"`
		} `json:"apns"`
		Notification json.RawMessage `json:"notification"`
	} `json:"message"`
}

func (s *Server) send(w http.ResponseWriter, r *http.Request) {
	var body wire
	if err := json.NewDecoder(r.Body).Decode(&body); err != nil {
		s.t.Errorf("fcmtest: send: body: %v", err)
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	b := body.Message
	m := Message{
		Bearer:       strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer "),
		Token:        b.Token,
		Data:         b.Data,
		Android:      b.Android,
		APNS:         APNS{Headers: b.APNS.Headers, Aps: b.APNS.Payload.Aps},
		Notification: b.Notification,
	}
	tok := m.Token

	s.mu.Lock()
	authorised := s.issued[m.Bearer]
	s.attempts[tok]++
	m.Attempt = s.attempts[tok]
	f, override := s.failures[tok]
	if override && f.Times > 0 {
		if f.Times--; f.Times == 0 {
			delete(s.failures, tok)
		} else {
			s.failures[tok] = f
		}
	}
	s.mu.Unlock()

	if !authorised {
		s.t.Errorf("fcmtest: send to %q with bearer %q, which the token endpoint did not issue", tok, m.Bearer)
	}
	rep := answer(tok, m.Attempt, authorised, f, override)
	m.Status = rep.status

	// Recorded before the answer goes out, so that a sender sees its send
	// in Sent as soon as it has the answer.
	s.mu.Lock()
	s.sends = append(s.sends, m)
	close(s.changed)
	s.changed = make(chan struct{})
	s.mu.Unlock()

	w.Header().Set("Content-Type", "application/json")
	if rep.retryAfter != "" {
		w.Header().Set("Retry-After", rep.retryAfter)
	}
	w.WriteHeader(rep.status)
	fmt.Fprint(w, rep.body)
}

// reply is an answer to a send.
type reply struct {
	status     int
	retryAfter string
	body       string
}

// answer is the answer to the attempt-th send to tok.
func answer(tok string, attempt int, authorised bool, f Failure, override bool) reply {
	switch {
	case !authorised:
		return fcmError(http.StatusUnauthorized, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.", "")
	case override:
		r := failure(f.Status)
		if f.RetryAfter > 0 {
			r.retryAfter = strconv.FormatInt(int64((f.RetryAfter+time.Second-1)/time.Second), 10)
		}
		return r
	case strings.HasPrefix(tok, "gone-"):
		return failure(http.StatusNotFound)
	case tok == "badtoken":
		return fcmError(http.StatusBadRequest, "INVALID_ARGUMENT", "INVALID_ARGUMENT",
			"The registration token is not a valid FCM registration token",
			`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.token","description":"Invalid registration token"}]}`)
	case tok == "badmsg":
		return failure(http.StatusBadRequest)
	case tok == "mismatch":
		return failure(http.StatusForbidden)
	case tok == "quota":
		r := failure(http.StatusTooManyRequests)
		r.retryAfter = "30"
		return r
	case tok == "down" || (tok == "flaky" && attempt <= 2):
		return failure(http.StatusServiceUnavailable)
	}
	return reply{status: http.StatusOK, body: fmt.Sprintf(`{"name":"projects/%s/messages/%d"}`, ProjectID, attempt)}
}

// failure is the FCM error that goes with status.
func failure(status int) reply {
	switch status {
	case http.StatusBadRequest:
		return fcmError(status, "INVALID_ARGUMENT", "INVALID_ARGUMENT", "Message is too big",
			`{"@type":"type.googleapis.com/google.rpc.BadRequest","fieldViolations":[{"field":"message.data","description":"too big"}]}`)
	case http.StatusUnauthorized:
		return fcmError(status, "UNAUTHENTICATED", "", "Request had invalid authentication credentials.", "")
	case http.StatusForbidden:
		return fcmError(status, "PERMISSION_DENIED", "SENDER_ID_MISMATCH", "SenderId mismatch", "")
	case http.StatusNotFound:
		return fcmError(status, "NOT_FOUND", "UNREGISTERED", "Requested entity was not found.", "")
	case http.StatusTooManyRequests:
		return fcmError(status, "RESOURCE_EXHAUSTED", "QUOTA_EXCEEDED", "Quota exceeded", "")
	case http.StatusInternalServerError:
		return fcmError(status, "INTERNAL", "INTERNAL", "Internal error encountered.", "")
	case http.StatusServiceUnavailable:
		return fcmError(status, "UNAVAILABLE", "UNAVAILABLE", "The service is currently unavailable.", "")
	}
	return fcmError(status, "UNKNOWN", "", http.StatusText(status), "")
}

// fcmError is an error answer in the shape of google.rpc.Status, with an
// FcmError detail if fcmCode is set and extraDetail after it.
func fcmError(status int, code, fcmCode, message, extraDetail string) reply {
	var details []string
	if fcmCode != "" {
		details = append(details, fmt.Sprintf(`{"@type":"type.googleapis.com/google.firebase.fcm.v1.FcmError","errorCode":%q}`, fcmCode))
	}
	if extraDetail != "" {
		details = append(details, extraDetail)
	}
	return reply{status: status, body: fmt.Sprintf(`{"error":{"code":%d,"message":%q,"status":%q,"details":[%s]}}`,
		status, message, code, strings.Join(details, ","))}
}

func filter(ms []Message, keep func(Message) bool) []Message {
	var out []Message
	for _, m := range ms {
		if keep(m) {
			out = append(out, m)
		}
	}
	return out
}
