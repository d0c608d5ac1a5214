// Package smtp submits mail to a relay (a provider's submission server, or
// a local MTA) over SMTP, one connection per message.
//
// # Configuration
//
// A Sender is built from a URL and the From address:
//
//	smtp://user:pass@smtp.example.com:587   STARTTLS, required (port defaults to 587)
//	smtps://user:pass@smtp.example.com      TLS from the first byte (port defaults to 465)
//	smtp://127.0.0.1:25?insecure=1          no TLS at all: for a relay on this host only
//
// The user name and password are percent-encoded like any URL userinfo
// ("p%40ss" for "p@ss"); without them no AUTH is attempted. From may carry
// a display name ("Tern <no-reply@tern.example>"); its domain also names
// the Message-ID.
//
// # TLS
//
// With smtp:// the Sender refuses to send credentials or a message in the
// clear: a relay that does not offer STARTTLS, or whose certificate does
// not verify for the URL's host, gets nothing but EHLO and STARTTLS. ?insecure=1 turns
// that off and then never starts TLS, for a relay on a loopback address or
// a private link (a sidecar MTA) whose certificate could not verify anyway.
// Even then the password is sent only to a loopback host (localhost,
// 127.0.0.0/8, ::1): New refuses credentials with insecure=1 for any other
// host, as net/smtp's PLAIN auth does, because a password in the clear
// over a network is a password given away, whatever the operator meant.
// The check is done here rather than left to net/smtp so that it fails at
// start-up, not at the first email, and so that AUTH LOGIN (which net/smtp
// does not offer) obeys it too.
//
// # Authentication
//
// AUTH PLAIN if the relay offers it, else AUTH LOGIN (which some providers
// offer alone). Both send the password as it is, hence TLS.
//
// # The message
//
// RFC 5322, CRLF line endings: Date, From, To, Subject (RFC 2047 Q-encoded
// and folded when not ASCII), Message-ID (random, @ From's domain),
// MIME-Version, Content-Type text/plain; charset=utf-8,
// Content-Transfer-Encoding quoted-printable (lines of at most 76
// characters, 7-bit clean, so no relay rewrites or refuses it), and
// Auto-Submitted: auto-generated (RFC 3834), so that vacation responders
// do not answer a no-reply address.
//
// # Time
//
// One Send is bounded by the earlier of ctx's deadline and Options.Timeout,
// from connecting to QUIT; cancelling ctx fails it at once. The deadline is
// set on the connection itself, since net/smtp has no contexts.
//
// # Errors
//
// As package mail describes: a 4xx reply, a failed or dropped connection,
// and the end of ctx match mail.ErrTemporary; a 5xx reply, a relay without
// STARTTLS, a certificate that does not verify, and refused credentials do
// not. The relay's reply is a *textproto.Error in the chain, for its code.
//
// # Why net/smtp
//
// The standard library's client is frozen but does all this needs (EHLO,
// STARTTLS, AUTH through its Auth interface, dot-stuffed DATA, reply codes
// as *textproto.Error); what it lacks, contexts and a TLS policy, is a few
// lines around it. A third-party client would be a dependency for nothing.
package smtp
