package smtp_test

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"mime"
	"mime/quotedprintable"
	"net"
	netmail "net/mail"
	"os"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	gosmtp "github.com/emersion/go-smtp"
	"go.uber.org/goleak"

	"github.com/tern-im/tern/mail"
	"github.com/tern-im/tern/mail/smtp"
)

func TestMain(m *testing.M) { goleak.VerifyTestMain(m) }

const from = "Tern <no-reply@tern.test>"

func newSender(t *testing.T, rawURL string, opts smtp.Options) *smtp.Sender {
	t.Helper()
	s, err := smtp.New(rawURL, from, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// parsed is a delivered message taken apart.
type parsed struct {
	header netmail.Header
	body   string // decoded from quoted-printable, CRLF turned back into LF
}

// parse reads a delivery as a mail reader would, and checks what holds for
// every message: CRLF line endings only, lines within RFC 5322's limit
// (body lines within quoted-printable's 76), the MIME headers.
func parse(t *testing.T, data []byte) parsed {
	t.Helper()
	if i := bytes.IndexByte(bytes.ReplaceAll(data, []byte("\r\n"), nil), '\n'); i >= 0 {
		t.Errorf("bare LF in the message: %q", data)
	}
	if bytes.IndexByte(bytes.ReplaceAll(data, []byte("\r\n"), nil), '\r') >= 0 {
		t.Errorf("bare CR in the message: %q", data)
	}
	head, body, ok := bytes.Cut(data, []byte("\r\n\r\n"))
	if !ok {
		t.Fatalf("no header/body separator in %q", data)
	}
	for line := range strings.SplitSeq(string(head), "\r\n") {
		if len(line) > 998 {
			t.Errorf("header line of %d bytes", len(line))
		}
	}
	for line := range strings.SplitSeq(string(body), "\r\n") {
		if len(line) > 76 {
			t.Errorf("body line of %d bytes: %q", len(line), line)
		}
		for _, c := range []byte(line) {
			if c >= 0x80 {
				t.Errorf("8-bit byte in body line %q", line)
				break
			}
		}
	}
	msg, err := netmail.ReadMessage(bytes.NewReader(data))
	if err != nil {
		t.Fatal(err)
	}
	for k, want := range map[string]string{
		"Mime-Version":              "1.0",
		"Content-Transfer-Encoding": "quoted-printable",
		"Auto-Submitted":            "auto-generated",
	} {
		if got := msg.Header.Get(k); got != want {
			t.Errorf("%s: %q, want %q", k, got, want)
		}
	}
	mt, params, err := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if err != nil || mt != "text/plain" || !strings.EqualFold(params["charset"], "utf-8") {
		t.Errorf("Content-Type %q: %v", msg.Header.Get("Content-Type"), err)
	}
	if _, err := msg.Header.Date(); err != nil {
		t.Errorf("Date %q: %v", msg.Header.Get("Date"), err)
	}
	if id := msg.Header.Get("Message-Id"); !regexp.MustCompile(`^<[A-Z2-7]{26}@tern\.test>$`).MatchString(id) {
		t.Errorf("Message-ID %q", id)
	}
	if f, err := msg.Header.AddressList("From"); err != nil || len(f) != 1 || f[0].Name != "Tern" || f[0].Address != "no-reply@tern.test" {
		t.Errorf("From %q: %v %v", msg.Header.Get("From"), f, err)
	}
	dec, err := io.ReadAll(quotedprintable.NewReader(msg.Body))
	if err != nil {
		t.Fatal(err)
	}
	return parsed{header: msg.Header, body: strings.ReplaceAll(string(dec), "\r\n", "\n")}
}

func subject(t *testing.T, h netmail.Header) string {
	t.Helper()
	s, err := new(mime.WordDecoder).DecodeHeader(h.Get("Subject"))
	if err != nil {
		t.Fatalf("Subject %q: %v", h.Get("Subject"), err)
	}
	return s
}

// TestSTARTTLSAuthAndMessage sends through a relay that offers AUTH only
// after STARTTLS, and checks the envelope and the message byte by byte.
func TestSTARTTLSAuthAndMessage(t *testing.T) {
	c := newCerts(t)
	r := startRelay(t, relayConfig{tls: c.server, user: "tern", pass: "s3cret p@ss"})
	s := newSender(t, "smtp://tern:s3cret%20p%40ss@"+r.addr, smtp.Options{TLSConfig: c.client})

	text := "Grüße, Ann! Ваш код: 482913 ✓\n" +
		"\n" +
		".\n" + // alone on a line, a dot would end DATA if not stuffed
		".. and a line that starts with dots\n" +
		"trailing space \n" +
		"tab\there\r\n" +
		strings.Repeat("long line, ", 40) + "end\n" +
		"=?utf-8?q?not_an_encoded_word?= = 3D\n" +
		"no newline at the end"
	m := mail.Message{To: "Ann.Lee@Example.COM", Subject: "Ваш код 482913 — Tern ✓ " + strings.Repeat("ü", 40), Text: text}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := r.got()
	if len(got) != 1 {
		t.Fatalf("%d deliveries", len(got))
	}
	d := got[0]
	if d.from != "no-reply@tern.test" || !slices.Equal(d.to, []string{"Ann.Lee@example.com"}) {
		t.Errorf("envelope from %q to %q", d.from, d.to)
	}
	if !d.tls || d.user != "tern" {
		t.Errorf("tls %v, user %q: want TLS and user tern", d.tls, d.user)
	}
	if !bytes.Contains(d.data, []byte("?=\r\n =?")) {
		t.Errorf("the long encoded Subject is not folded: %q", d.data)
	}
	p := parse(t, d.data)
	if got := subject(t, p.header); got != m.Subject {
		t.Errorf("Subject %q, want %q", got, m.Subject)
	}
	if got := p.header.Get("To"); got != "Ann.Lee@example.com" {
		t.Errorf("To %q", got)
	}
	// The last line gets its line break: every line of a message ends in one.
	want := strings.ReplaceAll(text, "\r\n", "\n") + "\n"
	if p.body != want {
		t.Errorf("body\n%q\nwant\n%q", p.body, want)
	}
}

// TestBuiltMessages sends both builders' messages and reads them back.
func TestBuiltMessages(t *testing.T) {
	c := newCerts(t)
	r := startRelay(t, relayConfig{tls: c.server, user: "u", pass: "p"})
	s := newSender(t, "smtp://u:p@"+r.addr, smtp.Options{TLSConfig: c.client})
	v := mail.VerificationMessage("ann@example.com", "482913", "")
	n := mail.NewDeviceMessage("ann@example.com", mail.NewDevice{
		Name: "Ann’s Pixel\r\nBcc: eve@example.com", Platform: "android", IP: "203.0.113.7", At: time.Now(),
	})
	for _, m := range []mail.Message{v, n} {
		if err := s.Send(context.Background(), m); err != nil {
			t.Fatal(err)
		}
	}
	got := r.got()
	if len(got) != 2 {
		t.Fatalf("%d deliveries", len(got))
	}
	for i, m := range []mail.Message{v, n} {
		p := parse(t, got[i].data)
		if s := subject(t, p.header); s != m.Subject {
			t.Errorf("Subject %q, want %q", s, m.Subject)
		}
		if p.body != m.Text {
			t.Errorf("body %q, want %q", p.body, m.Text)
		}
		// Exactly the headers Tern writes: nothing a device name added.
		var keys []string
		for k := range p.header {
			keys = append(keys, k)
		}
		slices.Sort(keys)
		want := []string{"Auto-Submitted", "Content-Transfer-Encoding", "Content-Type", "Date", "From", "Message-Id", "Mime-Version", "Subject", "To"}
		if !slices.Equal(keys, want) {
			t.Errorf("headers %q, want %q", keys, want)
		}
		if !slices.Equal(got[i].to, []string{"ann@example.com"}) {
			t.Errorf("recipients %q", got[i].to)
		}
	}
}

// TestInjectionRefused sends messages that try to add headers or
// recipients: Send refuses them before it connects.
func TestInjectionRefused(t *testing.T) {
	c := newCerts(t)
	r := startRelay(t, relayConfig{tls: c.server})
	s := newSender(t, "smtp://"+r.addr, smtp.Options{TLSConfig: c.client})
	for _, m := range []mail.Message{
		{To: "ann@example.com\r\nBcc: eve@example.com", Subject: "s", Text: "t"},
		{To: "ann@example.com>\r\nRCPT TO:<eve@example.com", Subject: "s", Text: "t"},
		{To: "ann@example.com, eve@example.com", Subject: "s", Text: "t"},
		{To: "Ann <ann@example.com>", Subject: "s", Text: "t"},
		{To: "ann@example.com", Subject: "hello\r\nBcc: eve@example.com", Text: "t"},
		{To: "ann@example.com", Subject: "hello\nBcc: eve@example.com", Text: "t"},
		{To: "ann@example.com", Subject: "hello\rBcc: eve@example.com", Text: "t"},
	} {
		err := s.Send(context.Background(), m)
		if !errors.Is(err, mail.ErrInvalidMessage) || errors.Is(err, mail.ErrTemporary) {
			t.Errorf("Send(%q): %v, want ErrInvalidMessage", m, err)
		}
	}
	if sessions, _, _ := r.counts(); sessions != 0 {
		t.Errorf("the relay saw %d sessions", sessions)
	}
}

// TestNoSTARTTLS: smtp:// against a relay without STARTTLS sends neither
// credentials nor mail, unless the URL says insecure=1.
func TestNoSTARTTLS(t *testing.T) {
	r := startRelay(t, relayConfig{user: "u", pass: "p", insecureAuth: true})
	m := mail.Message{To: "ann@example.com", Subject: "s", Text: "t"}

	err := newSender(t, "smtp://u:p@"+r.addr, smtp.Options{}).Send(context.Background(), m)
	if err == nil || errors.Is(err, mail.ErrTemporary) || !strings.Contains(err.Error(), "STARTTLS") {
		t.Fatalf("Send without STARTTLS: %v, want a permanent error naming STARTTLS", err)
	}
	if _, auths, mails := r.counts(); auths != 0 || mails != 0 {
		t.Fatalf("the relay got %d AUTH and %d MAIL without TLS", auths, mails)
	}

	if err := newSender(t, "smtp://u:p@"+r.addr+"?insecure=1", smtp.Options{}).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := r.got()
	if len(got) != 1 || got[0].tls || got[0].user != "u" {
		t.Fatalf("deliveries %+v, want one in the clear as u", got)
	}

	// Without credentials, to a relay without AUTH.
	open := startRelay(t, relayConfig{})
	if err := newSender(t, "smtp://"+open.addr+"?insecure=1", smtp.Options{}).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := open.got(); len(got) != 1 || got[0].user != "" {
		t.Fatalf("deliveries %+v", got)
	}
}

// TestImplicitTLS sends over smtps://.
func TestImplicitTLS(t *testing.T) {
	c := newCerts(t)
	r := startRelay(t, relayConfig{tls: c.server, implicit: true, user: "u", pass: "p"})
	s := newSender(t, "smtps://u:p@"+r.addr, smtp.Options{TLSConfig: c.client})
	m := mail.Message{To: "ann@example.com", Subject: "ok", Text: "über TLS\n"}
	if err := s.Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	got := r.got()
	if len(got) != 1 || !got[0].tls || got[0].user != "u" {
		t.Fatalf("deliveries %+v, want one under TLS as u", got)
	}
	if p := parse(t, got[0].data); p.body != m.Text {
		t.Errorf("body %q", p.body)
	}
}

// TestAuthLogin: a relay offering only AUTH LOGIN.
func TestAuthLogin(t *testing.T) {
	c := newCerts(t)
	r := startRelay(t, relayConfig{tls: c.server, user: "u", pass: "p", mechs: []string{"LOGIN"}})
	m := mail.Message{To: "ann@example.com", Subject: "s", Text: "t"}
	if err := newSender(t, "smtp://u:p@"+r.addr, smtp.Options{TLSConfig: c.client}).Send(context.Background(), m); err != nil {
		t.Fatal(err)
	}
	if got := r.got(); len(got) != 1 || got[0].user != "u" {
		t.Fatalf("deliveries %+v", got)
	}
	err := newSender(t, "smtp://u:wrong@"+r.addr, smtp.Options{TLSConfig: c.client}).Send(context.Background(), m)
	if replyCode(err) != 535 || errors.Is(err, mail.ErrTemporary) {
		t.Fatalf("wrong password over LOGIN: %v", err)
	}
}

// TestWrongPassword: the relay refuses the credentials; nothing is sent and
// trying again will not help.
func TestWrongPassword(t *testing.T) {
	c := newCerts(t)
	r := startRelay(t, relayConfig{tls: c.server, user: "u", pass: "p"})
	err := newSender(t, "smtp://u:nope@"+r.addr, smtp.Options{TLSConfig: c.client}).
		Send(context.Background(), mail.Message{To: "ann@example.com", Subject: "s", Text: "t"})
	if err == nil || errors.Is(err, mail.ErrTemporary) || replyCode(err) != 535 {
		t.Fatalf("Send with a wrong password: %v, want a permanent 535", err)
	}
	if strings.Contains(err.Error(), "nope") {
		t.Errorf("the error quotes the password: %v", err)
	}
	if _, auths, mails := r.counts(); auths != 1 || mails != 0 {
		t.Errorf("%d AUTH, %d MAIL; want 1, 0", auths, mails)
	}
}

// TestUntrustedCertificate: without the test's root, the relay's
// certificate does not verify, and nothing but EHLO and STARTTLS is sent.
func TestUntrustedCertificate(t *testing.T) {
	c := newCerts(t)
	m := mail.Message{To: "ann@example.com", Subject: "s", Text: "t"}
	for _, implicit := range []bool{false, true} {
		r := startRelay(t, relayConfig{tls: c.server, implicit: implicit, user: "u", pass: "p"})
		scheme := "smtp"
		if implicit {
			scheme = "smtps"
		}
		err := newSender(t, scheme+"://u:p@"+r.addr, smtp.Options{}).Send(context.Background(), m)
		var cv *tls.CertificateVerificationError
		if !errors.As(err, &cv) || errors.Is(err, mail.ErrTemporary) {
			t.Errorf("%s: %v, want a permanent certificate error", scheme, err)
		}
		if _, auths, mails := r.counts(); auths != 0 || mails != 0 {
			t.Errorf("%s: %d AUTH, %d MAIL", scheme, auths, mails)
		}
	}
	// Verification is against the URL's host: the certificate is for
	// 127.0.0.1 and localhost, not for another name.
	r := startRelay(t, relayConfig{tls: c.server})
	cfg := c.client.Clone()
	cfg.ServerName = "relay.example"
	err := newSender(t, "smtp://"+r.addr, smtp.Options{TLSConfig: cfg}).Send(context.Background(), m)
	var cv *tls.CertificateVerificationError
	if !errors.As(err, &cv) {
		t.Errorf("wrong name: %v, want a certificate error", err)
	}
}

// TestReplies: a 4xx reply is temporary, a 5xx is not, at RCPT and at the
// end of DATA.
func TestReplies(t *testing.T) {
	c := newCerts(t)
	busy := &gosmtp.SMTPError{Code: 451, EnhancedCode: gosmtp.EnhancedCode{4, 3, 0}, Message: "try again later"}
	gone := &gosmtp.SMTPError{Code: 550, EnhancedCode: gosmtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	for _, tc := range []struct {
		name      string
		cfg       relayConfig
		code      int
		temporary bool
	}{
		{"451 at RCPT", relayConfig{rcptErr: busy}, 451, true},
		{"550 at RCPT", relayConfig{rcptErr: gone}, 550, false},
		{"451 at DATA", relayConfig{dataErr: busy}, 451, true},
		{"550 at DATA", relayConfig{dataErr: gone}, 550, false},
	} {
		t.Run(tc.name, func(t *testing.T) {
			tc.cfg.tls = c.server
			r := startRelay(t, tc.cfg)
			err := newSender(t, "smtp://"+r.addr, smtp.Options{TLSConfig: c.client}).
				Send(context.Background(), mail.Message{To: "ann@example.com", Subject: "s", Text: "t"})
			if err == nil {
				t.Fatal("Send succeeded")
			}
			if got := replyCode(err); got != tc.code {
				t.Errorf("reply code %d, want %d (%v)", got, tc.code, err)
			}
			if got := errors.Is(err, mail.ErrTemporary); got != tc.temporary {
				t.Errorf("temporary %v, want %v (%v)", got, tc.temporary, err)
			}
		})
	}
}

// TestSilentServer: a relay that accepts the connection and never answers
// holds Send only until the context's deadline, or Options.Timeout, or
// until the context is cancelled.
func TestSilentServer(t *testing.T) {
	addr, _ := silentServer(t)
	m := mail.Message{To: "ann@example.com", Subject: "s", Text: "t"}

	t.Run("context deadline", func(t *testing.T) {
		ctx, cancel := context.WithTimeout(context.Background(), 100*time.Millisecond)
		defer cancel()
		err := newSender(t, "smtp://"+addr, smtp.Options{}).Send(ctx, m)
		if !errors.Is(err, mail.ErrTemporary) || !errors.Is(err, context.DeadlineExceeded) {
			t.Fatalf("Send: %v, want temporary and DeadlineExceeded", err)
		}
	})
	t.Run("Options.Timeout", func(t *testing.T) {
		err := newSender(t, "smtp://"+addr, smtp.Options{Timeout: 100 * time.Millisecond}).Send(context.Background(), m)
		if !errors.Is(err, mail.ErrTemporary) || !errors.Is(err, os.ErrDeadlineExceeded) {
			t.Fatalf("Send: %v, want temporary and a deadline error", err)
		}
	})
	t.Run("cancel", func(t *testing.T) {
		// A server of its own, so that no connection of the subtests
		// above can signal this one's accept.
		addr, accepted := silentServer(t)
		ctx, cancel := context.WithCancel(context.Background())
		defer cancel()
		done := make(chan error, 1)
		go func() { done <- newSender(t, "smtp://"+addr, smtp.Options{}).Send(ctx, m) }()
		<-accepted // Send is connected and waiting for the greeting
		cancel()
		err := <-done
		if !errors.Is(err, mail.ErrTemporary) || !errors.Is(err, context.Canceled) {
			t.Fatalf("Send: %v, want temporary and Canceled", err)
		}
	})
}

// TestConnectionRefused: nobody listening is temporary.
func TestConnectionRefused(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	_ = l.Close()
	err = newSender(t, "smtp://"+addr, smtp.Options{}).
		Send(context.Background(), mail.Message{To: "ann@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, mail.ErrTemporary) {
		t.Fatalf("Send: %v, want temporary", err)
	}
}

// TestDroppedConnection: a relay that greets and hangs up mid-session.
func TestDroppedConnection(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		c, err := l.Accept()
		if err != nil {
			return
		}
		defer c.Close()
		fmt.Fprintf(c, "220 relay.test ready\r\n")
		_, _ = bufio.NewReader(c).ReadString('\n') // EHLO, then hang up
	}()
	t.Cleanup(func() { _ = l.Close(); <-served })
	err = newSender(t, "smtp://"+l.Addr().String(), smtp.Options{}).
		Send(context.Background(), mail.Message{To: "ann@example.com", Subject: "s", Text: "t"})
	if !errors.Is(err, mail.ErrTemporary) {
		t.Fatalf("Send: %v, want temporary", err)
	}
}
