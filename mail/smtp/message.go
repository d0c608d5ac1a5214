package smtp

import (
	"bytes"
	"mime"
	"mime/quotedprintable"
	"strings"
	"time"

	"github.com/tern-im/tern/mail"
)

// compose renders m as an RFC 5322 message with CRLF line endings. m has
// passed Validate and to is bare, so no header value can hold a line break:
// the subject has no control characters and the text goes through
// quoted-printable, which turns every line break into CRLF and escapes
// everything else that is not printable ASCII.
func compose(fromHeader, to, id string, now time.Time, m mail.Message) []byte {
	var b bytes.Buffer
	header := func(k, v string) {
		b.WriteString(k)
		b.WriteString(": ")
		b.WriteString(v)
		b.WriteString("\r\n")
	}
	header("Date", now.Format(time.RFC1123Z))
	header("From", fromHeader)
	header("To", to)
	header("Subject", encodeSubject(m.Subject))
	header("Message-ID", "<"+id+">")
	header("MIME-Version", "1.0")
	header("Content-Type", "text/plain; charset=utf-8")
	header("Content-Transfer-Encoding", "quoted-printable")
	header("Auto-Submitted", "auto-generated")
	b.WriteString("\r\n")
	qp := quotedprintable.NewWriter(&b)
	// Writes to a bytes.Buffer do not fail.
	_, _ = qp.Write([]byte(m.Text))
	_ = qp.Close()
	// Every line of a message ends in CRLF, the last one too (the DATA
	// terminator would add it anyway; here it is on purpose).
	if !bytes.HasSuffix(b.Bytes(), []byte("\r\n")) {
		b.WriteString("\r\n")
	}
	return b.Bytes()
}

// encodeSubject leaves an ASCII subject as it is and Q-encodes any other
// (RFC 2047), folding between the encoded words so that no line grows far
// past 78 characters; readers drop the white space between adjacent
// encoded words, so the folds do not show.
func encodeSubject(s string) string {
	e := mime.QEncoding.Encode("utf-8", s)
	if e == s {
		return s
	}
	return strings.ReplaceAll(e, "?= =?", "?=\r\n =?")
}
