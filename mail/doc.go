// Package mail sends the little email Tern sends: a verification code when
// a user adds an address (PUT /v1/me/email), and a notice when a new device
// signs in to an account. It holds the domain side: the Message, the Sender
// interface the adapters implement, the address rules the API applies to
// what users type (ParseAddress), and the texts themselves
// (VerificationMessage, NewDeviceMessage), so that wording lives in one
// place and the adapters only carry it.
//
// # Plain text only
//
// A message is one text/plain part. Both messages are a few lines, a code
// and a notice; HTML would add a second copy of each text to keep in step,
// an escaping surface for user-chosen device names, and remote content that
// mail clients block anyway, without making a code easier to read.
//
// # Header injection
//
// Two rules keep user input out of headers. The builders neutralise what
// users control (a device name, say) before it goes anywhere: control
// characters, line breaks and bidirectional overrides become spaces, and
// long values are cut. The adapters refuse (Message.Validate) any message
// whose recipient is not a bare address by ParseAddress or whose subject
// holds a control character; they never repair one, since a message that
// needs repairing is a bug upstream.
//
// # Errors
//
// errors.Is(err, ErrInvalidAddress) means the address a user typed is not
// one Tern will write to: the API answers 400. errors.Is(err,
// ErrInvalidMessage) from Send means the caller built a bad message;
// nothing was sent. errors.Is(err, ErrTemporary) means the relay could not
// take the message now (a 4xx reply, no answer, a dropped connection, the
// context's deadline): try again later. Anything else is permanent for that
// message: the relay refused it, or the adapter is misconfigured.
//
// # Adapters
//
// mail/log (the default, for development) writes each message, code
// included, to the log; mail/smtp submits it to a relay over SMTP with
// STARTTLS or implicit TLS.
package mail
