package smtp

import (
	"errors"
	"fmt"
	"net/smtp"
	"slices"
)

// auth is AUTH PLAIN (RFC 4616) or, for relays that offer only that, AUTH
// LOGIN. net/smtp's PlainAuth is not used: it decides by the host's name
// whether a password may go without TLS, where this package has already
// decided by the URL (see New), and it has no LOGIN. One auth serves one
// session: LOGIN counts its steps.
type auth struct {
	user, pass string
	insecure   bool
	login      bool
	step       int
}

func (a *auth) Start(si *smtp.ServerInfo) (string, []byte, error) {
	// New has checked this; the check here keeps the rule true whatever
	// path reaches AUTH.
	if !si.TLS && !a.insecure {
		return "", nil, errors.New("refusing to send credentials without TLS")
	}
	switch {
	case slices.Contains(si.Auth, "PLAIN"):
		return "PLAIN", []byte("\x00" + a.user + "\x00" + a.pass), nil
	case slices.Contains(si.Auth, "LOGIN"):
		a.login = true
		return "LOGIN", nil, nil
	}
	return "", nil, fmt.Errorf("the relay offers AUTH %q, none of PLAIN or LOGIN", si.Auth)
}

func (a *auth) Next(_ []byte, more bool) ([]byte, error) {
	if !more {
		return nil, nil
	}
	// LOGIN's prompts ("Username:", "Password:") vary between servers
	// and some localise them; their order does not.
	if a.login && a.step < 2 {
		a.step++
		if a.step == 1 {
			return []byte(a.user), nil
		}
		return []byte(a.pass), nil
	}
	return nil, errors.New("unexpected challenge from the relay")
}
