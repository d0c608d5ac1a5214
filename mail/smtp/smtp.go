package smtp

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	netmail "net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"os"
	"strconv"
	"strings"
	"time"

	"github.com/tern-im/tern/mail"
)

// DefaultTimeout bounds one Send when Options.Timeout is zero. A relay that
// has not taken a two-kilobyte message in this time is not going to.
const DefaultTimeout = 30 * time.Second

// Default ports: submission with STARTTLS (RFC 6409) and submission over
// implicit TLS (RFC 8314).
const (
	DefaultPort    = "587"
	DefaultTLSPort = "465"
)

// Options tune a Sender; the zero value is the production default.
type Options struct {
	// TLSConfig is used for STARTTLS and smtps://. Nil means the system's
	// roots; a ServerName left empty is the URL's host. It is cloned.
	TLSConfig *tls.Config
	// Timeout bounds one Send, from connecting to QUIT; zero means
	// DefaultTimeout. A nearer deadline on the context wins.
	Timeout time.Duration
	// LocalName is the name given in EHLO; empty means "localhost", as
	// net/smtp uses. Submission servers accept any name from a client that
	// authenticates.
	LocalName string
	// Log gets a debug line per message sent. Nil means slog.Default().
	Log *slog.Logger
}

// Sender submits messages to one relay. It is safe for concurrent use.
type Sender struct {
	addr        string // host:port
	host        string // for TLS verification and errors
	implicitTLS bool   // smtps://
	insecure    bool   // smtp://...?insecure=1
	user, pass  string // no AUTH when user is empty
	from        string // envelope sender, bare
	fromHeader  string // From header, with any display name encoded
	domain      string // of from, for Message-IDs
	tls         *tls.Config
	timeout     time.Duration
	localName   string
	log         *slog.Logger
}

var _ mail.Sender = (*Sender)(nil)

// New returns a Sender for the relay at rawURL (see the package
// documentation for its form), writing as from.
func New(rawURL, from string, opts Options) (*Sender, error) {
	u, err := url.Parse(rawURL)
	if err != nil {
		// A *url.Error quotes the whole URL, password and all, into
		// whatever log line reports a bad configuration.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return nil, fmt.Errorf("mail smtp: bad URL: %w", err)
	}
	s := &Sender{
		host:      u.Hostname(),
		timeout:   opts.Timeout,
		localName: opts.LocalName,
		log:       opts.Log,
	}
	port := u.Port()
	switch u.Scheme {
	case "smtp":
		if port == "" {
			port = DefaultPort
		}
	case "smtps":
		s.implicitTLS = true
		if port == "" {
			port = DefaultTLSPort
		}
	default:
		return nil, fmt.Errorf("mail smtp: URL scheme %q, want smtp or smtps", u.Scheme)
	}
	if u.Opaque != "" || s.host == "" {
		return nil, errors.New("mail smtp: the URL has no host")
	}
	if u.Path != "" && u.Path != "/" {
		return nil, errors.New("mail smtp: the URL has a path; a relay is a host and port")
	}
	if n, err := strconv.Atoi(port); err != nil || n < 1 || n > 65535 {
		return nil, fmt.Errorf("mail smtp: bad port %q", port)
	}
	s.addr = net.JoinHostPort(s.host, port)
	q, err := url.ParseQuery(u.RawQuery)
	if err != nil {
		return nil, fmt.Errorf("mail smtp: bad URL query: %w", err)
	}
	for k, v := range q {
		// An unknown or misspelt option silently ignored could be a
		// security setting the operator believes is on.
		if k != "insecure" || len(v) != 1 {
			return nil, fmt.Errorf("mail smtp: unknown URL option %q", k)
		}
		if s.insecure, err = strconv.ParseBool(v[0]); err != nil {
			return nil, fmt.Errorf("mail smtp: insecure=%q, want 1 or 0", v[0])
		}
	}
	if s.insecure && s.implicitTLS {
		// It would read as "skip certificate checks", which it is not.
		return nil, errors.New("mail smtp: insecure applies to smtp:// only; smtps:// is always TLS")
	}
	if u.User != nil {
		s.user = u.User.Username()
		s.pass, _ = u.User.Password()
		if s.user == "" {
			return nil, errors.New("mail smtp: the URL has a password but no user name")
		}
		// NUL separates the fields of AUTH PLAIN; CR and LF end SMTP lines.
		if strings.ContainsAny(s.user+s.pass, "\x00\r\n") {
			return nil, errors.New("mail smtp: control character in the URL's user or password")
		}
		if s.insecure && !isLoopback(s.host) {
			return nil, fmt.Errorf("mail smtp: refusing to send a password in the clear to %s: insecure=1 allows credentials only to a loopback host", s.host)
		}
	}
	if err := s.setFrom(from); err != nil {
		return nil, err
	}
	if s.timeout <= 0 {
		s.timeout = DefaultTimeout
	}
	if s.localName == "" {
		s.localName = "localhost"
	}
	if strings.ContainsAny(s.localName, " \t\r\n") {
		return nil, fmt.Errorf("mail smtp: LocalName %q is not a host name", s.localName)
	}
	if s.log == nil {
		s.log = slog.Default()
	}
	if opts.TLSConfig != nil {
		s.tls = opts.TLSConfig.Clone()
	} else {
		s.tls = &tls.Config{}
	}
	if s.tls.ServerName == "" {
		s.tls.ServerName = s.host
	}
	if s.tls.MinVersion < tls.VersionTLS12 {
		s.tls.MinVersion = tls.VersionTLS12
	}
	return s, nil
}

// setFrom parses the From address: a display name is allowed (it is
// configuration, not user input), the address itself must pass
// mail.ParseAddress.
func (s *Sender) setFrom(from string) error {
	a, err := netmail.ParseAddress(from)
	if err != nil {
		return fmt.Errorf("mail smtp: From %q: %w", from, err)
	}
	addr, err := mail.ParseAddress(a.Address)
	if err != nil {
		return fmt.Errorf("mail smtp: From %q: %w", from, err)
	}
	s.from = addr
	s.domain = addr[strings.LastIndexByte(addr, '@')+1:]
	s.fromHeader = addr
	if a.Name != "" {
		// String quotes or RFC 2047-encodes the name as it needs.
		s.fromHeader = (&netmail.Address{Name: a.Name, Address: addr}).String()
	}
	return nil
}

// isLoopback reports whether host, as written in the URL, can only be this
// machine.
func isLoopback(host string) bool {
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// String describes the relay without the password, so that a Sender in a
// log line or a %v does not leak it.
func (s *Sender) String() string {
	scheme := "smtp"
	if s.implicitTLS {
		scheme = "smtps"
	}
	u := url.URL{Scheme: scheme, Host: s.addr}
	if s.user != "" {
		u.User = url.User(s.user)
	}
	if s.insecure {
		u.RawQuery = "insecure=1"
	}
	return u.String()
}

// Send implements mail.Sender.
func (s *Sender) Send(ctx context.Context, m mail.Message) error {
	if err := m.Validate(); err != nil {
		return fmt.Errorf("mail smtp: %w", err)
	}
	to, _ := mail.ParseAddress(m.To) // Validate has accepted it
	now := time.Now()
	id := rand.Text() + "@" + s.domain
	msg := compose(s.fromHeader, to, id, now, m)
	deadline := now.Add(s.timeout)
	if d, ok := ctx.Deadline(); ok && d.Before(deadline) {
		deadline = d
	}
	if err := s.send(ctx, deadline, to, msg); err != nil {
		return classify(ctx, err)
	}
	s.log.DebugContext(ctx, "mail sent", "relay", s.addr, "message_id", id)
	return nil
}

// errClear is returned when sending would put credentials or a message on
// the wire without TLS.
var errClear = errors.New("the relay does not offer STARTTLS; refusing to send in the clear (insecure=1 allows it for a local relay)")

// send runs one SMTP session. Its errors name the step that failed.
func (s *Sender) send(ctx context.Context, deadline time.Time, to string, msg []byte) error {
	dctx, cancel := context.WithDeadline(ctx, deadline)
	defer cancel()
	conn, err := s.dial(dctx)
	if err != nil {
		return fmt.Errorf("connect to %s: %w", s.addr, err)
	}
	defer conn.Close()
	// net/smtp knows no contexts: the deadline bounds every read and write
	// on the connection, and cancelling ctx moves it into the past, which
	// fails whatever I/O is blocked at that moment.
	if err := conn.SetDeadline(deadline); err != nil {
		return fmt.Errorf("set deadline: %w", err)
	}
	stop := context.AfterFunc(ctx, func() { _ = conn.SetDeadline(time.Unix(1, 0)) })
	defer stop()

	c, err := smtp.NewClient(conn, s.host)
	if err != nil {
		return fmt.Errorf("greeting: %w", err)
	}
	defer c.Close()
	if err := c.Hello(s.localName); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if !s.implicitTLS && !s.insecure {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			// Extension hides a failed EHLO; Noop reports it (net/smtp
			// keeps the EHLO error and returns it without sending).
			if err := c.Noop(); err != nil {
				return fmt.Errorf("EHLO: %w", err)
			}
			return errClear
		}
		if err := c.StartTLS(s.tls); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if s.user != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			if err := c.Noop(); err != nil {
				return fmt.Errorf("EHLO: %w", err)
			}
			return errors.New("the relay does not offer AUTH, and the URL has credentials")
		}
		if err := c.Auth(&auth{user: s.user, pass: s.pass, insecure: s.insecure}); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
	}
	if err := c.Mail(s.from); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	// The relay has taken the message: a failed QUIT must not make the
	// caller send it again.
	if err := c.Quit(); err != nil {
		s.log.DebugContext(ctx, "mail: QUIT failed after the message was accepted", "relay", s.addr, "err", err)
	}
	return nil
}

func (s *Sender) dial(ctx context.Context) (net.Conn, error) {
	d := &net.Dialer{}
	if s.implicitTLS {
		td := &tls.Dialer{NetDialer: d, Config: s.tls}
		return td.DialContext(ctx, "tcp", s.addr)
	}
	return d.DialContext(ctx, "tcp", s.addr)
}

// classify wraps a failed session's error for the caller: with
// mail.ErrTemporary if trying again later may work, and with the context's
// error if the context ended it.
func classify(ctx context.Context, err error) error {
	cause := context.Cause(ctx)
	if cause == nil {
		// The connection deadline and the context's timer fire at the same
		// instant, but the timer may not have run yet when the I/O error
		// arrives: past the context's deadline, it is the context's.
		if d, ok := ctx.Deadline(); ok && !time.Now().Before(d) {
			cause = context.DeadlineExceeded
		}
	}
	if cause != nil {
		if errors.Is(err, cause) {
			return fmt.Errorf("mail smtp: %w: %w", mail.ErrTemporary, err)
		}
		return fmt.Errorf("mail smtp: %w: %w (%w)", mail.ErrTemporary, err, cause)
	}
	if temporary(err) {
		return fmt.Errorf("mail smtp: %w: %w", mail.ErrTemporary, err)
	}
	return fmt.Errorf("mail smtp: %w", err)
}

// temporary reports whether the relay may take the message later: it
// answered 4xx, or the connection failed, timed out or dropped. A 5xx, a
// certificate that does not verify and the TLS policy are permanent: the
// same message to the same relay would fail the same way.
func temporary(err error) bool {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code >= 400 && te.Code < 500
	}
	var cv *tls.CertificateVerificationError
	if errors.As(err, &cv) {
		return false
	}
	var ne net.Error
	return errors.As(err, &ne) || errors.Is(err, os.ErrDeadlineExceeded) ||
		errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF)
}
