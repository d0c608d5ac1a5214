package smtp_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/tern-im/tern/mail/smtp"
)

func TestNewAccepts(t *testing.T) {
	for _, tc := range []struct{ url, from, want string }{
		{"smtp://u:p@smtp.example.com", from, "smtp://u@smtp.example.com:587"},
		{"smtps://u:p@smtp.example.com", from, "smtps://u@smtp.example.com:465"},
		{"smtp://smtp.example.com:2525/", "no-reply@tern.test", "smtp://smtp.example.com:2525"},
		{"smtp://10.0.0.5:25?insecure=1", from, "smtp://10.0.0.5:25?insecure=1"},
		{"smtp://u:p@localhost:25?insecure=1", from, "smtp://u@localhost:25?insecure=1"},
		{"smtp://u:p@127.0.0.1:25?insecure=true", from, "smtp://u@127.0.0.1:25?insecure=1"},
		{"smtp://u:p@[::1]:25?insecure=1", from, "smtp://u@[::1]:25?insecure=1"},
		{"smtp://u:p@h.example?insecure=0", from, "smtp://u@h.example:587"},
		{"smtp://h.example", `"Tern, the messenger" <no-reply@tern.test>`, "smtp://h.example:587"},
		{"smtp://h.example", "Grüße <no-reply@Tern.TEST>", "smtp://h.example:587"},
	} {
		s, err := smtp.New(tc.url, tc.from, smtp.Options{})
		if err != nil {
			t.Errorf("New(%q, %q): %v", tc.url, tc.from, err)
			continue
		}
		if got := s.String(); got != tc.want {
			t.Errorf("New(%q).String() = %q, want %q", tc.url, got, tc.want)
		}
		// However it is printed, the password stays out.
		if out := fmt.Sprintf("%v %+v %s", s, s, s); strings.Contains(out, ":p@") {
			t.Errorf("printing the Sender shows the password: %s", out)
		}
	}
}

func TestNewRefuses(t *testing.T) {
	for _, tc := range []struct{ url, from, why string }{
		{"http://h.example", from, "scheme"},
		{"smtp:h.example", from, "opaque"},
		{"smtp://", from, "no host"},
		{"smtp://h.example/x", from, "path"},
		{"smtp://h.example:0", from, "port"},
		{"smtp://h.example:70000", from, "port"},
		{"smtp://h.example?insecure=yes", from, "bad insecure"},
		{"smtp://h.example?insecure=1&insecure=0", from, "repeated insecure"},
		{"smtp://h.example?insecur=1", from, "misspelt option"},
		{"smtp://h.example?tls=skip", from, "unknown option"},
		{"smtps://h.example?insecure=1", from, "insecure with smtps"},
		{"smtp://u:p@h.example?insecure=1", from, "password in the clear to a remote host"},
		{"smtp://u:p@10.0.0.5?insecure=1", from, "password in the clear to a private address"},
		{"smtp://:p@h.example", from, "password without user"},
		{"smtp://u:p%00x@h.example", from, "NUL in password"},
		{"smtp://u%0d%0aRSET:p@h.example", from, "CRLF in user"},
		{"smtp://h.example", "", "no From"},
		{"smtp://h.example", "no-reply", "From without domain"},
		{"smtp://h.example", "a@b.test, c@d.test", "two From"},
		{"smtp://h.example", "no-reply@localhost", "From domain"},
	} {
		if _, err := smtp.New(tc.url, tc.from, smtp.Options{}); err == nil {
			t.Errorf("New(%q, %q) succeeded; want an error (%s)", tc.url, tc.from, tc.why)
		}
	}
	if _, err := smtp.New("smtp://h.example", from, smtp.Options{LocalName: "a b"}); err == nil {
		t.Error("New accepted a LocalName with a space")
	}
	// A URL that fails to parse must not bring its password into the
	// error, which ends up in a log line.
	_, err := smtp.New("smtp://user:s3cr3t@h.example:99x", from, smtp.Options{})
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("New with a bad port: %v", err)
	}
}
