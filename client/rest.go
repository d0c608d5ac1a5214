package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/tern-im/tern/wire"
)

// Response bodies larger than this are refused rather than buffered: no
// /v1 answer comes near it, so a bigger one is a misbehaving server.
const maxResponseBody = 32 << 20

// HTTPError is a REST error answer. It unwraps to its *wire.Error, so
// errors.As(err, &werr) with werr a *wire.Error works on every REST error;
// the status is there for tests that check it.
type HTTPError struct {
	Method string
	Path   string
	Status int
	Err    *wire.Error
}

func (e *HTTPError) Error() string {
	return fmt.Sprintf("client: %s %s: %d %v", e.Method, e.Path, e.Status, e.Err)
}

func (e *HTTPError) Unwrap() error { return e.Err }

// Do makes one REST call: body (nil for none) is sent as JSON, or as is if it
// is a []byte or json.RawMessage; a 2xx answer is decoded into out unless out
// is nil; anything else is returned as an *HTTPError. path starts with /v1.
// The access token goes with every call that has one; outside /v1/auth/, a
// 401 triggers one token refresh and one retry, which is safe because the
// server authenticates before it acts.
func (c *Client) Do(ctx context.Context, method, path string, body, out any) error {
	if strings.HasPrefix(path, "/v1/auth/") {
		return c.doOnce(ctx, method, path, body, out, c.accessToken())
	}
	return c.doAuth(ctx, method, path, body, out)
}

// doAuth calls an authenticated endpoint, refreshing the token once on 401.
func (c *Client) doAuth(ctx context.Context, method, path string, body, out any) error {
	token := c.accessToken()
	err := c.doOnce(ctx, method, path, body, out, token)
	if !isUnauthorized(err) || !c.canRefresh() {
		return err
	}
	if rerr := c.refreshFrom(ctx, token); rerr != nil {
		// The caller asked for path, not for a refresh: its 401 is the answer.
		c.log.Debug("token refresh failed", "err", rerr)
		return err
	}
	if rb, ok := body.(rawBody); ok {
		// A stream is sent again only if it can go back to its start;
		// otherwise the 401 is the answer, and the next call has the
		// fresh token.
		s, seekable := rb.r.(io.Seeker)
		if !seekable {
			return err
		}
		if _, serr := s.Seek(rb.start, io.SeekStart); serr != nil {
			return err
		}
	}
	return c.doOnce(ctx, method, path, body, out, c.accessToken())
}

func (c *Client) doOnce(ctx context.Context, method, path string, body, out any, token string) error {
	var rd io.Reader
	contentType := "application/json"
	if body != nil {
		switch b := body.(type) {
		case rawBody:
			// Hidden behind a plain Reader: the transport closes a body
			// that is a Closer (the caller's file), and a retry reads it
			// again.
			rd, contentType = struct{ io.Reader }{b.r}, b.contentType
		case []byte:
			rd = bytes.NewReader(b)
		case json.RawMessage:
			rd = bytes.NewReader(b)
		default:
			data, err := json.Marshal(body)
			if err != nil {
				return fmt.Errorf("client: %s %s: encode body: %w", method, path, err)
			}
			rd = bytes.NewReader(data)
		}
	}
	req, err := http.NewRequestWithContext(ctx, method, c.base+path, rd)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	if rb, ok := body.(rawBody); ok {
		// What net/http would see on a bytes or strings reader, which
		// the wrapper hides: a length lets the server refuse a file over
		// its limit before it is sent.
		if l, ok := rb.r.(interface{ Len() int }); ok {
			req.ContentLength = int64(l.Len())
		}
	}
	if rd != nil {
		req.Header.Set("Content-Type", contentType)
	}
	req.Header.Set("Accept", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("client: %s %s: %w", method, path, err)
	}
	defer func() {
		// Drain a little so the keep-alive connection can be reused.
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10))
		_ = resp.Body.Close()
	}()
	if resp.StatusCode < 200 || resp.StatusCode > 299 {
		return &HTTPError{Method: method, Path: path, Status: resp.StatusCode, Err: decodeError(resp)}
	}
	if out == nil || resp.StatusCode == http.StatusNoContent {
		return nil
	}
	err = json.NewDecoder(io.LimitReader(resp.Body, maxResponseBody)).Decode(out)
	if err != nil && !errors.Is(err, io.EOF) {
		return fmt.Errorf("client: %s %s: decode answer: %w", method, path, err)
	}
	return nil
}

// decodeError reads a REST error body. Proxies and load balancers answer
// with bodies of their own, so a body that is not a wire.ErrorBody still
// yields a *wire.Error, with the code its status stands for.
func decodeError(resp *http.Response) *wire.Error {
	data, _ := io.ReadAll(io.LimitReader(resp.Body, 64<<10))
	var eb wire.ErrorBody
	if json.Unmarshal(data, &eb) == nil && eb.Error != nil && eb.Error.Code != "" {
		if eb.Error.RetryAfter == 0 {
			eb.Error.RetryAfter = retryAfterHeader(resp)
		}
		return eb.Error
	}
	msg := strings.TrimSpace(string(data))
	if len(msg) > 200 {
		msg = msg[:200]
	}
	if msg == "" {
		msg = http.StatusText(resp.StatusCode)
	}
	return &wire.Error{Code: codeForStatus(resp.StatusCode), Message: msg, RetryAfter: retryAfterHeader(resp)}
}

func retryAfterHeader(resp *http.Response) int {
	n, err := strconv.Atoi(resp.Header.Get("Retry-After"))
	if err != nil || n < 0 {
		return 0
	}
	return n
}

// codeForStatus inverts wire.HTTPStatus for answers without an error body.
func codeForStatus(status int) string {
	switch status {
	case http.StatusBadRequest:
		return wire.CodeBadRequest
	case http.StatusUnauthorized:
		return wire.CodeUnauthorized
	case http.StatusForbidden:
		return wire.CodeForbidden
	case http.StatusNotFound:
		return wire.CodeNotFound
	case http.StatusConflict:
		return wire.CodeConflict
	case http.StatusRequestEntityTooLarge:
		return wire.CodeTooLarge
	case http.StatusTooManyRequests:
		return wire.CodeRateLimited
	case http.StatusNotImplemented:
		return wire.CodeUnsupported
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		return wire.CodeUnavailable
	}
	if status >= 500 {
		return wire.CodeInternal
	}
	return wire.CodeBadRequest
}

func isUnauthorized(err error) bool {
	var werr *wire.Error
	return errors.As(err, &werr) && werr.Code == wire.CodeUnauthorized
}

// isRefused tells a refusal by the server (a 4xx answer, or an error frame)
// from a failure to reach it, which is worth retrying.
func isRefused(err error) bool {
	var herr *HTTPError
	if errors.As(err, &herr) {
		return herr.Status >= 400 && herr.Status < 500 && herr.Status != http.StatusTooManyRequests
	}
	return false
}

func (c *Client) canRefresh() bool {
	return !c.opts.NoRefresh && c.Session().RefreshToken != ""
}

// RequestCode asks the server to text a verification code to phone.
func (c *Client) RequestCode(ctx context.Context, phone string) (wire.CodeResponse, error) {
	var out wire.CodeResponse
	err := c.doOnce(ctx, http.MethodPost, "/v1/auth/code", wire.CodeRequest{Phone: phone}, &out, "")
	return out, err
}

// Verify trades a code for a new device session and keeps it.
func (c *Client) Verify(ctx context.Context, phone, code, deviceName, platform string) (wire.Session, error) {
	var s wire.Session
	req := wire.VerifyRequest{Phone: phone, Code: code, DeviceName: deviceName, Platform: platform}
	if err := c.doOnce(ctx, http.MethodPost, "/v1/auth/verify", req, &s, ""); err != nil {
		return wire.Session{}, err
	}
	c.SetSession(s)
	return s, nil
}

// Login requests a code, asks code for it (a test reads it from the SMS
// sink, the CLI from the user) and verifies it.
func (c *Client) Login(ctx context.Context, phone, deviceName, platform string,
	code func(ctx context.Context, phone string) (string, error)) (wire.Session, error) {
	if _, err := c.RequestCode(ctx, phone); err != nil {
		return wire.Session{}, err
	}
	got, err := code(ctx, phone)
	if err != nil {
		return wire.Session{}, fmt.Errorf("client: get code for %s: %w", phone, err)
	}
	return c.Verify(ctx, phone, got, deviceName, platform)
}

// Refresh rotates the tokens with the refresh token and keeps the new ones.
func (c *Client) Refresh(ctx context.Context) (wire.Session, error) {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	return c.refreshLocked(ctx)
}

// refreshFrom refreshes unless the access token is no longer stale, which
// means another caller refreshed while this one waited for refreshMu.
func (c *Client) refreshFrom(ctx context.Context, stale string) error {
	c.refreshMu.Lock()
	defer c.refreshMu.Unlock()
	if c.accessToken() != stale {
		return nil
	}
	_, err := c.refreshLocked(ctx)
	return err
}

func (c *Client) refreshLocked(ctx context.Context) (wire.Session, error) {
	old := c.Session()
	if old.RefreshToken == "" {
		return wire.Session{}, fmt.Errorf("client: refresh: %w", &wire.Error{Code: wire.CodeUnauthorized, Message: "no refresh token"})
	}
	var s wire.Session
	err := c.doOnce(ctx, http.MethodPost, "/v1/auth/refresh", wire.RefreshRequest{RefreshToken: old.RefreshToken}, &s, "")
	if err != nil {
		return wire.Session{}, err
	}
	if s.UserID == "" {
		s.UserID = old.UserID
	}
	if s.DeviceID == "" {
		s.DeviceID = old.DeviceID
	}
	if s.RefreshToken == "" {
		s.RefreshToken = old.RefreshToken
	}
	c.SetSession(s)
	c.stats.refreshes.Add(1)
	return s, nil
}

// Logout signs this device out on the server and forgets its tokens.
func (c *Client) Logout(ctx context.Context) error {
	if err := c.doOnce(ctx, http.MethodPost, "/v1/auth/logout", nil, nil, c.accessToken()); err != nil {
		return err
	}
	c.sessMu.Lock()
	c.sess.AccessToken, c.sess.RefreshToken = "", ""
	c.sessMu.Unlock()
	return nil
}

// Me returns the signed-in user's profile.
func (c *Client) Me(ctx context.Context) (wire.Me, error) {
	var out wire.Me
	err := c.doAuth(ctx, http.MethodGet, "/v1/me", nil, &out)
	return out, err
}

// UpdateMe changes the profile fields set in p.
func (c *Client) UpdateMe(ctx context.Context, p wire.MePatch) (wire.Me, error) {
	var out wire.Me
	err := c.doAuth(ctx, http.MethodPatch, "/v1/me", p, &out)
	return out, err
}

// User returns another user's public profile.
func (c *Client) User(ctx context.Context, id string) (wire.User, error) {
	var out wire.User
	err := c.doAuth(ctx, http.MethodGet, "/v1/users/"+url.PathEscape(id), nil, &out)
	return out, err
}

// Lookup tells which phones belong to users.
func (c *Client) Lookup(ctx context.Context, phones []string) (wire.LookupResponse, error) {
	var out wire.LookupResponse
	err := c.doAuth(ctx, http.MethodPost, "/v1/contacts/lookup", wire.LookupRequest{Phones: phones}, &out)
	return out, err
}

// Devices lists the user's devices.
func (c *Client) Devices(ctx context.Context) (wire.DevicesResponse, error) {
	var out wire.DevicesResponse
	err := c.doAuth(ctx, http.MethodGet, "/v1/devices", nil, &out)
	return out, err
}

// DeleteDevice signs one of the user's devices out.
func (c *Client) DeleteDevice(ctx context.Context, id string) error {
	return c.doAuth(ctx, http.MethodDelete, "/v1/devices/"+url.PathEscape(id), nil, nil)
}

// RegisterPush sets the current device's push token.
func (c *Client) RegisterPush(ctx context.Context, provider, token string) error {
	return c.doAuth(ctx, http.MethodPut, "/v1/devices/current/push", wire.PushRequest{Provider: provider, Token: token}, nil)
}

// RegisterWebPush sets the current device's push address to a browser's
// Web Push subscription.
func (c *Client) RegisterWebPush(ctx context.Context, sub wire.PushSubscription) error {
	return c.doAuth(ctx, http.MethodPut, "/v1/devices/current/push", wire.PushRequest{Provider: "webpush", Subscription: &sub}, nil)
}

// UnregisterPush forgets the current device's push address.
func (c *Client) UnregisterPush(ctx context.Context) error {
	return c.doAuth(ctx, http.MethodDelete, "/v1/devices/current/push", nil, nil)
}

// VAPIDKey returns the key Web Push subscriptions are made with.
func (c *Client) VAPIDKey(ctx context.Context) (string, error) {
	var out wire.VAPIDResponse
	err := c.Do(ctx, http.MethodGet, "/v1/push/vapid", nil, &out)
	return out.PublicKey, err
}

// Chats returns the chat list, most recent activity first.
func (c *Client) Chats(ctx context.Context) (wire.ChatsResponse, error) {
	var out wire.ChatsResponse
	err := c.doAuth(ctx, http.MethodGet, "/v1/chats", nil, &out)
	return out, err
}

// History returns one page of a chat, newest first, of messages with seq
// below before (0: from the newest) and at most limit of them (0: the
// server's default).
func (c *Client) History(ctx context.Context, chatID string, before int64, limit int) (wire.HistoryResponse, error) {
	q := url.Values{}
	if before > 0 {
		q.Set("before", strconv.FormatInt(before, 10))
	}
	if limit > 0 {
		q.Set("limit", strconv.Itoa(limit))
	}
	path := "/v1/chats/" + url.PathEscape(chatID) + "/messages"
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var out wire.HistoryResponse
	err := c.doAuth(ctx, http.MethodGet, path, nil, &out)
	return out, err
}

// rawBody is a request body sent as it is, with its own content type.
type rawBody struct {
	r           io.Reader
	contentType string
	start       int64 // where a seekable r began, to send it again
}
