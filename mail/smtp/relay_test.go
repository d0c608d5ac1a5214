package smtp_test

import (
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/tls"
	"crypto/x509"
	"crypto/x509/pkix"
	"errors"
	"io"
	"log"
	"math/big"
	"net"
	"net/textproto"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"
)

// certs is a self-signed certificate for 127.0.0.1: the relay's side, and
// a client configuration that trusts it and nothing else.
type certs struct {
	server, client *tls.Config
}

func newCerts(t *testing.T) certs {
	t.Helper()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tmpl := &x509.Certificate{
		SerialNumber:          big.NewInt(1),
		Subject:               pkix.Name{CommonName: "tern test relay"},
		NotBefore:             now.Add(-time.Hour),
		NotAfter:              now.Add(time.Hour),
		IPAddresses:           []net.IP{net.IPv4(127, 0, 0, 1)},
		DNSNames:              []string{"localhost"},
		KeyUsage:              x509.KeyUsageDigitalSignature | x509.KeyUsageCertSign,
		ExtKeyUsage:           []x509.ExtKeyUsage{x509.ExtKeyUsageServerAuth},
		IsCA:                  true,
		BasicConstraintsValid: true,
	}
	der, err := x509.CreateCertificate(rand.Reader, tmpl, tmpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	cert, err := x509.ParseCertificate(der)
	if err != nil {
		t.Fatal(err)
	}
	pool := x509.NewCertPool()
	pool.AddCert(cert)
	return certs{
		server: &tls.Config{Certificates: []tls.Certificate{{Certificate: [][]byte{der}, PrivateKey: key, Leaf: cert}}},
		client: &tls.Config{RootCAs: pool},
	}
}

// relayConfig shapes the test relay.
type relayConfig struct {
	tls        *tls.Config // STARTTLS is offered when set, unless implicit
	implicit   bool        // TLS from the first byte (smtps)
	user, pass string      // AUTH is required when user is set
	mechs      []string    // AUTH mechanisms; nil means PLAIN
	// insecureAuth lets AUTH run without TLS. Off, the relay offers AUTH
	// only after STARTTLS, so an authenticated delivery proves TLS ran.
	insecureAuth bool
	rcptErr      *gosmtp.SMTPError // the answer to every RCPT, if set
	dataErr      *gosmtp.SMTPError // the answer at the end of DATA, if set
}

// delivery is one message the relay took.
type delivery struct {
	from string
	to   []string
	data []byte
	tls  bool   // the session was under TLS
	user string // who authenticated, "" for nobody
}

// relay is a real SMTP server (go-smtp) on 127.0.0.1 that keeps what it is
// sent and counts what it is asked.
type relay struct {
	addr string
	cfg  relayConfig

	mu         sync.Mutex
	sessions   int // EHLOs that opened a session
	auths      int // AUTH attempts
	mails      int // MAIL commands
	deliveries []delivery
}

func startRelay(t *testing.T, cfg relayConfig) *relay {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	r := &relay{addr: l.Addr().String(), cfg: cfg}
	srv := gosmtp.NewServer(gosmtp.BackendFunc(func(c *gosmtp.Conn) (gosmtp.Session, error) {
		r.mu.Lock()
		r.sessions++
		r.mu.Unlock()
		return &session{r: r, c: c}, nil
	}))
	srv.Domain = "relay.test"
	srv.AllowInsecureAuth = cfg.insecureAuth
	// Failed handshakes are part of the tests; keep them out of the output.
	srv.ErrorLog = log.New(io.Discard, "", 0)
	switch {
	case cfg.implicit:
		l = tls.NewListener(l, cfg.tls)
	case cfg.tls != nil:
		srv.TLSConfig = cfg.tls
	}
	served := make(chan struct{})
	go func() {
		defer close(served)
		_ = srv.Serve(l)
	}()
	t.Cleanup(func() {
		_ = srv.Close()
		// Close closes only the listeners Serve has registered: a test
		// that never connects can get here before Serve has started.
		_ = l.Close()
		<-served
	})
	return r
}

func (r *relay) got() []delivery {
	r.mu.Lock()
	defer r.mu.Unlock()
	return append([]delivery(nil), r.deliveries...)
}

func (r *relay) counts() (sessions, auths, mails int) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.sessions, r.auths, r.mails
}

type session struct {
	r    *relay
	c    *gosmtp.Conn
	user string
	from string
	to   []string
}

func (s *session) AuthMechanisms() []string {
	if s.r.cfg.user == "" {
		return nil
	}
	if s.r.cfg.mechs == nil {
		return []string{sasl.Plain}
	}
	return s.r.cfg.mechs
}

func (s *session) Auth(mech string) (sasl.Server, error) {
	s.r.mu.Lock()
	s.r.auths++
	s.r.mu.Unlock()
	check := func(user, pass string) error {
		if user != s.r.cfg.user || pass != s.r.cfg.pass {
			return gosmtp.ErrAuthFailed
		}
		s.user = user
		return nil
	}
	switch mech {
	case sasl.Plain:
		return sasl.NewPlainServer(func(_, user, pass string) error { return check(user, pass) }), nil
	case sasl.Login:
		return &loginServer{check: check}, nil
	}
	return nil, gosmtp.ErrAuthUnknownMechanism
}

// loginServer is the server side of AUTH LOGIN, which go-sasl lacks.
type loginServer struct {
	check func(user, pass string) error
	step  int
	user  string
}

func (l *loginServer) Next(resp []byte) ([]byte, bool, error) {
	l.step++
	switch l.step {
	case 1:
		return []byte("Username:"), false, nil
	case 2:
		l.user = string(resp)
		return []byte("Password:"), false, nil
	}
	return nil, true, l.check(l.user, string(resp))
}

func (s *session) Mail(from string, _ *gosmtp.MailOptions) error {
	s.r.mu.Lock()
	s.r.mails++
	s.r.mu.Unlock()
	if s.r.cfg.user != "" && s.user == "" {
		return gosmtp.ErrAuthRequired
	}
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *gosmtp.RcptOptions) error {
	if s.r.cfg.rcptErr != nil {
		return s.r.cfg.rcptErr
	}
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	data, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	if s.r.cfg.dataErr != nil {
		return s.r.cfg.dataErr
	}
	_, isTLS := s.c.TLSConnectionState()
	s.r.mu.Lock()
	s.r.deliveries = append(s.r.deliveries, delivery{from: s.from, to: s.to, data: data, tls: isTLS, user: s.user})
	s.r.mu.Unlock()
	return nil
}

func (s *session) Reset() { s.from, s.to = "", nil }

func (s *session) Logout() error { return nil }

// silentServer accepts connections and never says a word, like a relay
// behind a broken firewall. Each accepted connection is signalled on the
// returned channel.
func silentServer(t *testing.T) (addr string, accepted <-chan struct{}) {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	acc := make(chan struct{}, 16)
	var (
		mu    sync.Mutex
		conns []net.Conn
	)
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			conns = append(conns, c)
			mu.Unlock()
			select {
			case acc <- struct{}{}:
			default:
			}
		}
	}()
	t.Cleanup(func() {
		_ = l.Close()
		<-done
		mu.Lock()
		defer mu.Unlock()
		for _, c := range conns {
			_ = c.Close()
		}
	})
	return l.Addr().String(), acc
}

// replyCode is the SMTP reply code in err's chain, or 0 if there is none.
func replyCode(err error) int {
	var te *textproto.Error
	if errors.As(err, &te) {
		return te.Code
	}
	return 0
}
