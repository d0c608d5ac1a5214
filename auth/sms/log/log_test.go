package log

import (
	"bytes"
	"context"
	"log/slog"
	"strings"
	"testing"
)

func TestSendLogsCode(t *testing.T) {
	var buf bytes.Buffer
	s := Sender{Log: slog.New(slog.NewTextHandler(&buf, nil))}
	if err := s.Send(context.Background(), "+12025550143", "Your Tern code is 123456."); err != nil {
		t.Fatal(err)
	}
	out := buf.String()
	for _, want := range []string{"level=INFO", "msg=sms", "to=+12025550143", `text="Your Tern code is 123456."`} {
		if !strings.Contains(out, want) {
			t.Errorf("log %q lacks %q", out, want)
		}
	}
}
