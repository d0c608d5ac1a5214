package server_test

import (
	"errors"
	"io"
	"log"
	"net"
	"net/http"
	"regexp"
	"strings"
	"sync"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/mail/smtp"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// mailbox is a local SMTP server that keeps what it is sent.
type mailbox struct {
	addr    string
	mu      sync.Mutex
	mails   []string // "To: ...\n" and the raw message
	arrived chan struct{}
}

func startMailbox(t *testing.T) *mailbox {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	mb := &mailbox{addr: l.Addr().String(), arrived: make(chan struct{}, 100)}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(*gosmtp.Conn) (gosmtp.Session, error) {
		return &mailSession{mb: mb}, nil
	}))
	srv.Domain = "mail.test"
	srv.ErrorLog = log.New(io.Discard, "", 0)
	go func() { _ = srv.Serve(l) }()
	t.Cleanup(func() { _ = srv.Close() })
	return mb
}

// next waits for the next mail to arrive.
func (mb *mailbox) next(t *testing.T) string {
	t.Helper()
	select {
	case <-mb.arrived:
	case <-time.After(pushWait):
		t.Fatal("no mail arrived")
	}
	mb.mu.Lock()
	defer mb.mu.Unlock()
	m := mb.mails[0]
	mb.mails = mb.mails[1:]
	return m
}

type mailSession struct {
	mb *mailbox
	to []string
}

func (s *mailSession) Mail(string, *gosmtp.MailOptions) error { return nil }
func (s *mailSession) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}
func (s *mailSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	s.mb.mu.Lock()
	s.mb.mails = append(s.mb.mails, "To: "+strings.Join(s.to, ",")+"\n"+string(b))
	s.mb.mu.Unlock()
	s.mb.arrived <- struct{}{}
	return nil
}
func (s *mailSession) Reset()        { s.to = nil }
func (s *mailSession) Logout() error { return nil }

var sixDigits = regexp.MustCompile(`\b\d{6}\b`)

// TestEmail: a user adds an email address with a code mailed to it
// through a real SMTP exchange (a local server), and is then told by mail
// when a new device signs in; a wrong code, someone else's code and a bad
// address are refused; DELETE removes the address.
func TestEmail(t *testing.T) {
	mb := startMailbox(t)
	sender, err := smtp.New("smtp://"+mb.addr+"?insecure=1", "tern@mail.test", smtp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := servertest.Options{}
	o.Engines.Mail = sender
	n := servertest.Start(t, o)
	ctx := t.Context()
	alice := n.Login(t, "+14155550401", "alice")
	bob := n.Login(t, "+14155550402", "bob")

	put := func(c *client.Client, req wire.EmailRequest, out any) error {
		return c.Do(ctx, http.MethodPut, "/v1/me/email", req, out)
	}
	if err := put(alice, wire.EmailRequest{Email: "not an address"}, nil); errCode(err) != wire.CodeBadRequest {
		t.Fatalf("bad address: %v", err)
	}
	var cr wire.CodeResponse
	if err := put(alice, wire.EmailRequest{Email: "Alice@Example.COM"}, &cr); err != nil || cr.ExpiresIn <= 0 {
		t.Fatalf("request code: %+v %v", cr, err)
	}
	m := mb.next(t)
	code := sixDigits.FindString(m[strings.Index(m, "\r\n\r\n"):])
	// The domain is lower-cased; the local part is the user's own.
	if !strings.HasPrefix(m, "To: Alice@example.com") || code == "" {
		t.Fatalf("verification mail (code %q):\n%q", code, m)
	}
	wrong := "000000"
	if code == wrong {
		wrong = "111111"
	}
	if err := put(alice, wire.EmailRequest{Email: "Alice@example.com", Code: wrong}, nil); errCode(err) != wire.CodeInvalidCode {
		t.Fatalf("wrong code: %v", err)
	}
	// Alice's code proves nothing for bob.
	if err := put(bob, wire.EmailRequest{Email: "Alice@example.com", Code: code}, nil); errCode(err) != wire.CodeInvalidCode {
		t.Fatalf("someone else's code: %v", err)
	}
	var me wire.Me
	if err := put(alice, wire.EmailRequest{Email: "Alice@EXAMPLE.com", Code: code}, &me); err != nil || me.Email != "Alice@example.com" {
		t.Fatalf("verify: %+v %v", me, err)
	}
	if err := alice.Do(ctx, http.MethodGet, "/v1/me", nil, &me); err != nil || me.Email != "Alice@example.com" {
		t.Fatalf("GET /v1/me: %+v %v", me, err)
	}

	// A new device: a notice, naming it.
	n.LoginOnly(t, "+14155550401", "alice's tablet")
	notice := mb.next(t)
	if !strings.HasPrefix(notice, "To: Alice@example.com") || !strings.Contains(notice, "alice's tablet") {
		t.Fatalf("new device notice:\n%s", notice)
	}
	// Without an address, none: bob signs in again, then alice removes
	// hers and signs in again; the next mail is the one bob asks for.
	n.LoginOnly(t, "+14155550402", "bob again")
	if err := alice.Do(ctx, http.MethodDelete, "/v1/me/email", nil, nil); err != nil {
		t.Fatal(err)
	}
	n.LoginOnly(t, "+14155550401", "alice again")
	if err := put(bob, wire.EmailRequest{Email: "bob@example.com"}, nil); err != nil {
		t.Fatal(err)
	}
	if m := mb.next(t); !strings.HasPrefix(m, "To: bob@example.com") {
		t.Fatalf("a notice went to a user without an address, or after its removal:\n%s", m)
	}
}

// TestEmailUnsupported: a node without mail says so.
func TestEmailUnsupported(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	alice := n.Login(t, "+14155550411", "alice")
	err := alice.Do(t.Context(), http.MethodPut, "/v1/me/email", wire.EmailRequest{Email: "a@example.com"}, nil)
	if errCode(err) != wire.CodeUnsupported {
		t.Fatalf("PUT /v1/me/email without mail: %v", err)
	}
}

// TestEmailCodesPerUser: one user cannot have codes mailed to any number
// of addresses: past EmailCodesPerUserHour it is rate_limited, whatever
// address it names; a request that mails nothing spends nothing. Errors
// about an email code speak of the address, not of a phone number.
func TestEmailCodesPerUser(t *testing.T) {
	mb := startMailbox(t)
	sender, err := smtp.New("smtp://"+mb.addr+"?insecure=1", "tern@mail.test", smtp.Options{})
	if err != nil {
		t.Fatal(err)
	}
	o := servertest.Options{Server: server.Config{EmailCodesPerUserHour: 2}}
	o.Engines.Mail = sender
	n := servertest.Start(t, o)
	ctx := t.Context()
	alice := n.Login(t, "+14155550421", "alice")
	bob := n.Login(t, "+14155550422", "bob")
	put := func(c *client.Client, req wire.EmailRequest) error {
		return c.Do(ctx, http.MethodPut, "/v1/me/email", req, nil)
	}

	var we *wire.Error
	err = put(alice, wire.EmailRequest{Email: "nobody@example.com", Code: "123456"})
	if !errors.As(err, &we) || we.Code != wire.CodeInvalidCode || !strings.Contains(we.Message, "email address") || strings.Contains(we.Message, "phone") {
		t.Fatalf("a code for an address none was sent to: %v, want invalid_code about the email address", err)
	}
	if err := put(alice, wire.EmailRequest{Email: "not an address"}); errCode(err) != wire.CodeBadRequest {
		t.Fatalf("bad address: %v", err)
	}
	if err := put(alice, wire.EmailRequest{Email: "one@example.com"}); err != nil {
		t.Fatal(err)
	}
	mb.next(t)
	// The same address again at once: refused by its own resend wait,
	// which mails nothing.
	if err := put(alice, wire.EmailRequest{Email: "one@example.com"}); errCode(err) != wire.CodeRateLimited {
		t.Fatalf("the same address at once: %v, want rate_limited", err)
	}
	if err := put(alice, wire.EmailRequest{Email: "two@example.com"}); err != nil {
		t.Fatalf("second address: %v", err)
	}
	mb.next(t)
	err = put(alice, wire.EmailRequest{Email: "three@example.com"})
	if !errors.As(err, &we) || we.Code != wire.CodeRateLimited || we.RetryAfter <= 0 {
		t.Fatalf("third address within the hour: %v, want rate_limited with a retry_after", err)
	}
	// Another user's codes are its own.
	if err := put(bob, wire.EmailRequest{Email: "bob@example.com"}); err != nil {
		t.Fatalf("another user: %v", err)
	}
	if m := mb.next(t); !strings.HasPrefix(m, "To: bob@example.com") {
		t.Fatalf("a mail went to someone alice named after her limit:\n%s", m)
	}
}
