package server_test

import (
	"fmt"
	"net/http"
	"strings"
	"testing"

	"github.com/tern-im/tern/server/servertest"
)

// TestAdminBusinesses: an admin makes a business through the admin API,
// lists it, changes its settings, and makes and revokes its API tokens
// (a revoked token stops working on the Cloud API at once).
func TestAdminBusinesses(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	a := signedInAdmin(t, n)

	if code, _, _ := a.do(http.MethodPost, "/v1/admin/businesses", map[string]string{"phone": "+14155550921", "name": "Acme"}, false); code != http.StatusForbidden {
		t.Fatalf("create without the CSRF token: %d", code)
	}
	code, created, _ := a.do(http.MethodPost, "/v1/admin/businesses", map[string]string{"phone": "+14155550921", "name": "Acme"}, true)
	if pnid, _ := created["phone_number_id"].(string); code != http.StatusCreated || !strings.HasPrefix(created["access_token"].(string), "tbt_") || pnid == "" {
		t.Fatalf("create: %d %v", code, created)
	}
	uid := created["user_id"].(string)
	var list struct {
		Businesses []struct {
			UserID        string `json:"user_id"`
			Phone         string
			WindowRule    bool `json:"window_rule"`
			RatePerSecond int  `json:"rate_per_second"`
		}
	}
	a.getJSON("/v1/admin/businesses", &list)
	if len(list.Businesses) != 1 || list.Businesses[0].UserID != uid || list.Businesses[0].Phone != "+14155550921" ||
		!list.Businesses[0].WindowRule || list.Businesses[0].RatePerSecond != 80 {
		t.Fatalf("businesses: %+v", list)
	}
	if code, b, _ := a.do(http.MethodPatch, "/v1/admin/businesses/"+uid, map[string]any{"window_rule": false, "rate_per_second": 500}, true); code != http.StatusOK ||
		b["window_rule"] != false || b["rate_per_second"] != float64(500) {
		t.Fatalf("patch: %d %v", code, b)
	}
	if code, _, _ := a.do(http.MethodPatch, "/v1/admin/businesses/"+uid, map[string]any{"rate_per_second": 5000}, true); code != http.StatusBadRequest {
		t.Fatalf("a rate over 1000: %d", code)
	}

	code, tok, _ := a.do(http.MethodPost, "/v1/admin/businesses/"+uid+"/tokens", map[string]string{"name": "crm"}, true)
	if code != http.StatusCreated || !strings.HasPrefix(tok["access_token"].(string), "tbt_") {
		t.Fatalf("new token: %d %v", code, tok)
	}
	var tokens struct {
		Tokens []struct {
			ID   string `json:"token_id"`
			Name string
		}
	}
	a.getJSON("/v1/admin/businesses/"+uid+"/tokens", &tokens)
	if len(tokens.Tokens) != 2 {
		t.Fatalf("tokens: %+v", tokens)
	}
	cloud := func(token string) int {
		req, _ := http.NewRequestWithContext(ctx, http.MethodGet, n.URL+"/v21.0/"+created["waba_id"].(string)+"/subscribed_apps", nil)
		req.Header.Set("Authorization", "Bearer "+token)
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		return res.StatusCode
	}
	if code := cloud(tok["access_token"].(string)); code != http.StatusOK {
		t.Fatalf("the new token on the Cloud API: %d", code)
	}
	if code, _, _ := a.do(http.MethodDelete, "/v1/admin/businesses/"+uid+"/tokens/"+tok["token_id"].(string), nil, true); code != http.StatusNoContent {
		t.Fatalf("revoke: %d", code)
	}
	if code := cloud(tok["access_token"].(string)); code != http.StatusUnauthorized {
		t.Fatalf("a revoked token on the Cloud API: %d", code)
	}
	if code, _, _ := a.do(http.MethodDelete, "/v1/admin/businesses/"+uid+"/tokens/nosuch", nil, true); code != http.StatusNotFound {
		t.Fatalf("revoking no token: %d", code)
	}
	var audit struct {
		Entries []struct{ Actor, Action string }
	}
	a.getJSON("/v1/admin/audit", &audit)
	var actions []string
	for _, e := range audit.Entries {
		if e.Actor == "ops" {
			actions = append(actions, e.Action)
		}
	}
	if got := strings.Join(actions, ","); !strings.HasPrefix(got, "revoke_business_token,create_business_token,business_settings,create_business,login") {
		t.Fatalf("audit log: %s", got)
	}
}

// TestAdminSeesFailingWebhooks: while a business's webhook fails, the
// admin API says so (tries, the error, when the next try is), and stops
// saying so once a POST goes through.
func TestAdminSeesFailingWebhooks(t *testing.T) {
	n, b, hook := hookedNode(t, "+14155550931")
	ctx := ctxT(t)
	hook.mu.Lock()
	hook.failing = 1 << 30
	hook.mu.Unlock()
	a := signedInAdmin(t, n)
	customer := n.Login(t, "+14155550932", "c")
	if _, err := customer.Send(ctx, b.UserID, text("anyone there?")); err != nil {
		t.Fatal(err)
	}
	type failing struct {
		Attempts int    `json:"attempts"`
		Error    string `json:"error"`
		Since    int64  `json:"since"`
		Next     int64  `json:"next"`
	}
	var list struct {
		Businesses []struct {
			UserID  string   `json:"user_id"`
			Failing *failing `json:"webhook_failing"`
		}
	}
	eventually(t, func() (bool, string) {
		a.getJSON("/v1/admin/businesses", &list)
		f := list.Businesses[0].Failing
		return f != nil && f.Attempts >= 2, fmt.Sprintf("%+v", f)
	})
	f := list.Businesses[0].Failing
	if !strings.Contains(f.Error, "500") || f.Since == 0 || f.Next < f.Since || strings.Contains(f.Error, hook.URL+"/") {
		t.Fatalf("failing: %+v", f)
	}
	hook.mu.Lock()
	hook.failing = 0
	hook.mu.Unlock()
	eventually(t, func() (bool, string) {
		list.Businesses = nil // a field the answer leaves out would keep its old value
		a.getJSON("/v1/admin/businesses", &list)
		hook.mu.Lock()
		defer hook.mu.Unlock()
		return list.Businesses[0].Failing == nil, fmt.Sprintf("%+v after %d posts, %d taken", list.Businesses[0].Failing, hook.posts, len(hook.bodies))
	})
}
