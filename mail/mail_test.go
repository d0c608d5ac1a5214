package mail

import (
	"errors"
	"strings"
	"testing"
)

func TestValidate(t *testing.T) {
	ok := Message{To: "ann@example.com", Subject: "Grüße", Text: "line one\nline two\r\n\tindented\n"}
	if err := ok.Validate(); err != nil {
		t.Fatal(err)
	}
	for name, m := range map[string]Message{
		"display name":      {To: "Ann <ann@example.com>", Subject: "s", Text: "t"},
		"CRLF in To":        {To: "ann@example.com\r\nBcc: eve@example.com", Subject: "s", Text: "t"},
		"two recipients":    {To: "ann@example.com, eve@example.com", Subject: "s", Text: "t"},
		"CRLF in Subject":   {To: "ann@example.com", Subject: "hi\r\nBcc: eve@example.com", Text: "t"},
		"LF in Subject":     {To: "ann@example.com", Subject: "hi\nBcc: eve@example.com", Text: "t"},
		"tab in Subject":    {To: "ann@example.com", Subject: "a\tb", Text: "t"},
		"C1 in Subject":     {To: "ann@example.com", Subject: "a\u0085b", Text: "t"},
		"empty Subject":     {To: "ann@example.com", Text: "t"},
		"long Subject":      {To: "ann@example.com", Subject: strings.Repeat("s", MaxSubject+1), Text: "t"},
		"non-UTF-8 Subject": {To: "ann@example.com", Subject: "\xff", Text: "t"},
		"NUL in Text":       {To: "ann@example.com", Subject: "s", Text: "a\x00b"},
		"escape in Text":    {To: "ann@example.com", Subject: "s", Text: "a\x1b[2Jb"},
		"non-UTF-8 Text":    {To: "ann@example.com", Subject: "s", Text: "\xff"},
		"long Text":         {To: "ann@example.com", Subject: "s", Text: strings.Repeat("t", MaxText+1)},
	} {
		err := m.Validate()
		if !errors.Is(err, ErrInvalidMessage) {
			t.Errorf("%s: Validate() = %v, want ErrInvalidMessage", name, err)
		}
	}
	if err := (Message{To: "x", Subject: "s"}).Validate(); !errors.Is(err, ErrInvalidAddress) {
		t.Errorf("bad To: %v, want also ErrInvalidAddress", err)
	}
}
