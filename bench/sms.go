package bench

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"sync"
	"time"
)

// smsSink is the bench's own SMS gateway: the server's http SMS provider
// POSTs {"to": "+E164", "text": "..."} to it, and code hands the 6-digit
// code inside the text to whoever waits for that phone.
type smsSink struct {
	srv  *http.Server
	ln   net.Listener
	mu   sync.Mutex
	code map[string]string      // arrived, nobody waiting yet
	wait map[string]chan string // waiting, nothing arrived yet
	got  int
}

func startSMSSink(addr string) (*smsSink, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("sms sink: listen on %s (--sms-listen): %w", addr, err)
	}
	s := &smsSink{ln: ln, code: make(map[string]string), wait: make(map[string]chan string)}
	s.srv = &http.Server{Handler: http.HandlerFunc(s.serveHTTP), ReadHeaderTimeout: 10 * time.Second}
	go func() { _ = s.srv.Serve(ln) }()
	return s, nil
}

func (s *smsSink) close() { _ = s.srv.Close() }

func (s *smsSink) serveHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		http.Error(w, "POST only", http.StatusMethodNotAllowed)
		return
	}
	var m struct {
		To   string `json:"to"`
		Text string `json:"text"`
	}
	if err := json.NewDecoder(io.LimitReader(r.Body, 64<<10)).Decode(&m); err != nil || m.To == "" {
		http.Error(w, "want JSON {to, text}", http.StatusBadRequest)
		return
	}
	code := findCode(m.Text)
	if code == "" {
		http.Error(w, "no 6-digit code in text", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	s.got++
	if ch, ok := s.wait[m.To]; ok {
		delete(s.wait, m.To)
		ch <- code // cap 1, and only this handler sends on it
	} else {
		s.code[m.To] = code
	}
	s.mu.Unlock()
	w.WriteHeader(http.StatusAccepted)
}

// codeFor waits up to 10 s for the code texted to phone.
func (s *smsSink) codeFor(ctx context.Context, phone string) (string, error) {
	s.mu.Lock()
	if c, ok := s.code[phone]; ok {
		delete(s.code, phone)
		s.mu.Unlock()
		return c, nil
	}
	ch := make(chan string, 1)
	s.wait[phone] = ch
	s.mu.Unlock()
	t := time.NewTimer(10 * time.Second)
	defer t.Stop()
	select {
	case c := <-ch:
		return c, nil
	case <-ctx.Done():
	case <-t.C:
	}
	s.mu.Lock()
	if s.wait[phone] == ch {
		delete(s.wait, phone)
	}
	s.mu.Unlock()
	select {
	case c := <-ch: // arrived while giving up
		return c, nil
	default:
	}
	if ctx.Err() != nil {
		return "", ctx.Err()
	}
	return "", errors.New("no SMS arrived within 10s: is the server started with " +
		"--sms-provider http --sms-http-url pointing at --sms-listen?")
}

// findCode returns the first run of exactly six ASCII digits in text.
func findCode(text string) string {
	for i := 0; i < len(text); {
		if !isDigit(text[i]) {
			i++
			continue
		}
		j := i
		for j < len(text) && isDigit(text[j]) {
			j++
		}
		if j-i == 6 {
			return text[i:j]
		}
		i = j
	}
	return ""
}

func isDigit(b byte) bool { return b >= '0' && b <= '9' }
