// Package http sends SMS through a generic HTTP gateway: one POST of the JSON
// object {"to": "+E164", "text": "..."} per message. Any 2xx answer means the
// gateway took the message; anything else, or no answer within the timeout,
// is an error, and auth then tells the user to try again.
package http

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	nethttp "net/http"
	"net/url"
	"time"
)

// DefaultTimeout bounds one gateway call when New gets no client.
const DefaultTimeout = 10 * time.Second

// Sender posts messages to one gateway URL.
type Sender struct {
	url    string
	client *nethttp.Client
}

// New returns a Sender posting to url. A nil client means one with
// DefaultTimeout; the context of each Send can shorten that further.
func New(url string, client *nethttp.Client) *Sender {
	if client == nil {
		client = &nethttp.Client{Timeout: DefaultTimeout}
	}
	return &Sender{url: url, client: client}
}

type message struct {
	To   string `json:"to"`
	Text string `json:"text"`
}

// Send implements auth.Sender.
func (s *Sender) Send(ctx context.Context, to, text string) error {
	body, err := json.Marshal(message{To: to, Text: text})
	if err != nil {
		return fmt.Errorf("sms http: encode: %w", err)
	}
	if _, ok := ctx.Deadline(); !ok && s.client.Timeout == 0 {
		// A client without a timeout and a context without a deadline
		// could hold a sign-in request forever on a stuck gateway.
		var cancel context.CancelFunc
		ctx, cancel = context.WithTimeout(ctx, DefaultTimeout)
		defer cancel()
	}
	req, err := nethttp.NewRequestWithContext(ctx, nethttp.MethodPost, s.url, bytes.NewReader(body))
	if err != nil {
		return fmt.Errorf("sms http: build request: %w", err)
	}
	req.Header.Set("Content-Type", "application/json")
	resp, err := s.client.Do(req)
	if err != nil {
		// The *url.Error would repeat the URL, which may carry the
		// gateway's API key, into the log line that reports this error.
		var ue *url.Error
		if errors.As(err, &ue) {
			err = ue.Err
		}
		return fmt.Errorf("sms http: post: %w", err)
	}
	defer resp.Body.Close()
	// Draining a bounded amount lets the connection be reused. The body is
	// not quoted in the error: a gateway may echo the message, code and all.
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return fmt.Errorf("sms http: gateway answered %s", resp.Status)
	}
	return nil
}
