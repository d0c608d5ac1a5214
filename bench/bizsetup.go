package bench

import (
	"bytes"
	"context"
	"crypto/rand"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"time"
)

// GraphVersion is the Graph API version in the paths business mode
// calls (the server takes any vNN.N, and none).
const GraphVersion = "v23.0"

// benchAdmin is the dashboard account business mode signs in as to change
// its businesses' settings: made through the admin listener the first
// time, given a fresh password (reset) every run after.
const benchAdmin = "tern-bench"

// bizCreds is one business as business mode uses it: the ids and secrets
// tern business create prints, and its phone and user id.
type bizCreds struct {
	UserID        string `json:"user_id,omitempty"`
	Phone         string `json:"phone"`
	PhoneNumberID string `json:"phone_number_id"`
	WABAID        string `json:"waba_id"`
	AccessToken   string `json:"access_token"`
	AppSecret     string `json:"app_secret"`
}

// businessFile keeps businesses between runs. It holds API tokens and
// app secrets: it is written with mode 0600.
type businessFile struct {
	Version    int        `json:"version"`
	Server     string     `json:"server"`
	Businesses []bizCreds `json:"businesses"`
}

func loadBusinesses(path string) (*businessFile, error) {
	data, err := os.ReadFile(path)
	if errors.Is(err, os.ErrNotExist) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("business file: %w", err)
	}
	var f businessFile
	if err := json.Unmarshal(data, &f); err != nil {
		return nil, fmt.Errorf("business file %s: %w", path, err)
	}
	if f.Version != 1 {
		return nil, fmt.Errorf("business file %s: version %d, want 1", path, f.Version)
	}
	for i, b := range f.Businesses {
		if b.Phone == "" || b.PhoneNumberID == "" || b.WABAID == "" || b.AccessToken == "" || b.AppSecret == "" {
			return nil, fmt.Errorf("business file %s: business %d lacks one of phone, phone_number_id, waba_id, access_token, app_secret", path, i)
		}
	}
	return &f, nil
}

func saveBusinesses(path string, f *businessFile) error {
	data, err := json.MarshalIndent(f, "", " ")
	if err != nil {
		return err
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".tern-bench-businesses-*")
	if err != nil {
		return fmt.Errorf("business file: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err != nil {
		tmp.Close()
		return fmt.Errorf("business file: %w", err)
	}
	if _, err := tmp.Write(append(data, '\n')); err != nil {
		tmp.Close()
		return fmt.Errorf("business file: %w", err)
	}
	if err := tmp.Close(); err != nil {
		return fmt.Errorf("business file: %w", err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		return fmt.Errorf("business file: %w", err)
	}
	return nil
}

// httpStatusError is an answer with an unexpected status.
type httpStatusError struct {
	Method, URL string
	Status      int
	Body        string
}

func (e *httpStatusError) Error() string {
	return fmt.Sprintf("%s %s: %d %s: %s", e.Method, e.URL, e.Status, http.StatusText(e.Status), e.Body)
}

// callJSON sends body (JSON, if not nil) and decodes a JSON answer into
// out (if not nil); any status but want is an *httpStatusError.
func callJSON(ctx context.Context, hc *http.Client, method, u string, hdr http.Header, body, out any, want int) (http.Header, error) {
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return nil, err
		}
		rd = bytes.NewReader(b)
	}
	ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, method, u, rd)
	if err != nil {
		return nil, err
	}
	for k, v := range hdr {
		req.Header[k] = v
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	resp, err := hc.Do(req)
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(io.LimitReader(resp.Body, 1<<20))
	if err != nil {
		return nil, fmt.Errorf("%s %s: %w", method, u, err)
	}
	if resp.StatusCode != want {
		return nil, &httpStatusError{Method: method, URL: u, Status: resp.StatusCode, Body: strings.TrimSpace(string(data))}
	}
	if out != nil {
		if err := json.Unmarshal(data, out); err != nil {
			return nil, fmt.Errorf("%s %s: the answer: %w", method, u, err)
		}
	}
	return resp.Header, nil
}

func bearer(token string) http.Header {
	return http.Header{"Authorization": {"Bearer " + token}}
}

// randomHex returns n random bytes in hex.
func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b)
	return hex.EncodeToString(b)
}

// checkBusinessSource fails early, before any customer signs up, when the
// run could not get its businesses: too few in the business file and no
// admin token to make the rest.
func (r *runner) checkBusinessSource() error {
	cfg := &r.cfg
	if cfg.AdminToken != "" {
		return nil
	}
	have := 0
	if cfg.BusinessFile != "" {
		f, err := loadBusinesses(cfg.BusinessFile)
		if err != nil {
			return err
		}
		if f != nil {
			have = len(f.Businesses)
		}
	}
	if have < cfg.Businesses {
		return fmt.Errorf("business mode needs %d businesses and has %d: give the node's admin token (--admin-token, with --admin-addr) "+
			"to make them, or a --business-file that holds them", cfg.Businesses, have)
	}
	return nil
}

// setupBusinesses returns cfg.Businesses businesses: those of the business
// file, and new ones made through the admin listener for the rest (saved
// to the file). Their phones come from a series of their own.
func (r *runner) setupBusinesses(ctx context.Context) ([]bizCreds, int, error) {
	cfg := &r.cfg
	var saved *businessFile
	if cfg.BusinessFile != "" {
		f, err := loadBusinesses(cfg.BusinessFile)
		if err != nil {
			return nil, 0, err
		}
		saved = f
	}
	if saved == nil {
		saved = &businessFile{Version: 1, Server: cfg.Addr}
	} else {
		if saved.Server != cfg.Addr {
			r.printf("note: %s was made against %s, not %s\n", cfg.BusinessFile, saved.Server, cfg.Addr)
		}
		r.printf("businesses: %d saved in %s\n", len(saved.Businesses), cfg.BusinessFile)
	}
	need := cfg.Businesses - len(saved.Businesses)
	if need <= 0 {
		return saved.Businesses[:cfg.Businesses], 0, nil
	}
	if cfg.AdminToken == "" {
		return nil, 0, fmt.Errorf("business mode needs %d more businesses: give the node's admin token (--admin-token, with --admin-addr) "+
			"to make them, or a --business-file that holds them", need)
	}
	phones := newPhoneSeries("business/" + r.runID)
	next := len(saved.Businesses)
	made := 0
	for made < need {
		phone := phones.phone(next)
		next++
		var b bizCreds
		_, err := callJSON(ctx, r.hc, http.MethodPost, cfg.AdminAddr+"/admin/v1/businesses", bearer(cfg.AdminToken),
			map[string]string{"phone": phone, "name": fmt.Sprintf("Bench Business %d", len(saved.Businesses)+1)}, &b, http.StatusCreated)
		var herr *httpStatusError
		if errors.As(err, &herr) && herr.Status == http.StatusConflict && next < len(saved.Businesses)+need+20 {
			continue // a number in use: the next
		}
		if err != nil {
			return nil, made, fmt.Errorf("make business %s through the admin listener %s: %w", phone, cfg.AdminAddr, err)
		}
		b.Phone = phone
		saved.Businesses = append(saved.Businesses, b)
		made++
	}
	if cfg.BusinessFile != "" {
		if err := saveBusinesses(cfg.BusinessFile, saved); err != nil {
			return nil, made, err
		}
	}
	return saved.Businesses[:cfg.Businesses], made, nil
}

// adminSession is a sign-in to the admin API (/v1/admin) as benchAdmin.
type adminSession struct {
	r      *runner
	cookie string
	csrf   string
}

// adminSignIn makes benchAdmin through the admin listener (or gives it a
// fresh password, if it exists) and signs in with it.
func (r *runner) adminSignIn(ctx context.Context) (*adminSession, error) {
	cfg := &r.cfg
	password := randomHex(16)
	account := map[string]string{"username": benchAdmin, "password": password}
	_, err := callJSON(ctx, r.hc, http.MethodPost, cfg.AdminAddr+"/admin/v1/admins", bearer(cfg.AdminToken), account, nil, http.StatusCreated)
	var herr *httpStatusError
	if errors.As(err, &herr) && herr.Status == http.StatusConflict {
		_, err = callJSON(ctx, r.hc, http.MethodPost, cfg.AdminAddr+"/admin/v1/admins/reset", bearer(cfg.AdminToken), account, nil, http.StatusOK)
	}
	if err != nil {
		return nil, fmt.Errorf("admin account %s: %w", benchAdmin, err)
	}
	var me struct {
		CSRF string `json:"csrf_token"`
	}
	h, err := callJSON(ctx, r.hc, http.MethodPost, cfg.Addr+"/v1/admin/login", nil, account, &me, http.StatusOK)
	if err != nil {
		return nil, fmt.Errorf("admin sign-in as %s: %w", benchAdmin, err)
	}
	s := &adminSession{r: r, csrf: me.CSRF}
	for _, c := range (&http.Response{Header: h}).Cookies() {
		if c.Name == "tern_admin" {
			s.cookie = c.Value
		}
	}
	if s.cookie == "" || s.csrf == "" {
		return nil, fmt.Errorf("admin sign-in as %s: no session cookie or CSRF token in the answer", benchAdmin)
	}
	return s, nil
}

func (s *adminSession) header() http.Header {
	return http.Header{"Cookie": {"tern_admin=" + s.cookie}, "X-Csrf-Token": {s.csrf}}
}

// settings sets a business's rate and turns its 24-hour rule off, so that
// neither caps what the bench measures unless asked (RateLimit).
func (s *adminSession) settings(ctx context.Context, userID string, rate int) error {
	body := map[string]any{"window_rule": false, "rate_per_second": rate}
	_, err := callJSON(ctx, s.r.hc, http.MethodPatch, s.r.cfg.Addr+"/v1/admin/businesses/"+url.PathEscape(userID), s.header(), body, nil, http.StatusOK)
	if err != nil {
		return fmt.Errorf("business %s settings: %w", userID, err)
	}
	return nil
}

func (s *adminSession) signOut(ctx context.Context) {
	_, _ = callJSON(ctx, s.r.hc, http.MethodPost, s.r.cfg.Addr+"/v1/admin/logout", s.header(), nil, nil, http.StatusNoContent)
}

// subscribe points business b's webhook at callback through the Cloud
// API (POST /{waba_id}/subscribed_apps), which the server verifies with
// a GET to it first.
func (r *runner) subscribe(ctx context.Context, b bizCreds, callback, verifyToken string) error {
	u := r.cfg.Addr + "/" + GraphVersion + "/" + b.WABAID + "/subscribed_apps"
	var ok struct {
		Success bool `json:"success"`
	}
	_, err := callJSON(ctx, r.hc, http.MethodPost, u, bearer(b.AccessToken),
		map[string]string{"override_callback_uri": callback, "verify_token": verifyToken}, &ok, http.StatusOK)
	if err == nil && !ok.Success {
		err = errors.New("the answer is not success")
	}
	if err != nil {
		var herr *httpStatusError
		if errors.As(err, &herr) && strings.Contains(herr.Body, "public address") {
			return fmt.Errorf("subscribe %s's webhook: %w; start the server with --webhook-allow-private, "+
				"since the bench's receiver is on %s", b.Phone, err, callback)
		}
		return fmt.Errorf("subscribe %s's webhook: %w", b.Phone, err)
	}
	return nil
}

// unsubscribe removes business b's webhook, so that the server stops
// posting to a receiver that is gone (its queue keeps what comes).
func (r *runner) unsubscribe(ctx context.Context, b bizCreds) error {
	u := r.cfg.Addr + "/" + GraphVersion + "/" + b.WABAID + "/subscribed_apps"
	if _, err := callJSON(ctx, r.hc, http.MethodDelete, u, bearer(b.AccessToken), nil, nil, http.StatusOK); err != nil {
		return fmt.Errorf("unsubscribe %s's webhook: %w", b.Phone, err)
	}
	return nil
}
