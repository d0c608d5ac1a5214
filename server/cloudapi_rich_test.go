package server_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// graphDo sends one Cloud API request (body: a string as it is, anything
// else as JSON) and answers the status and the decoded JSON.
func graphDo(t *testing.T, ctx context.Context, method, url, token string, body any) (int, map[string]any) {
	t.Helper()
	var rd *bytes.Reader
	if body != nil {
		raw, ok := body.(string)
		if !ok {
			b, _ := json.Marshal(body)
			raw = string(b)
		}
		rd = bytes.NewReader([]byte(raw))
	} else {
		rd = bytes.NewReader(nil)
	}
	req, _ := http.NewRequestWithContext(ctx, method, url, rd)
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var m map[string]any
	_ = json.NewDecoder(res.Body).Decode(&m)
	return res.StatusCode, m
}

// graphCode is a Graph error's code; -1 if m is not one (fbtrace_id
// included).
func graphCode(m map[string]any) float64 {
	e, _ := m["error"].(map[string]any)
	if tr, _ := e["fbtrace_id"].(string); e == nil || tr == "" {
		return -1
	}
	c, _ := e["code"].(float64)
	return c
}

// TestBusinessRichMessages: a business registers a template and sends it
// to a customer outside the window (parameters filled in, its quick
// replies and URL button on the card), sends reply buttons and a list;
// the customer's taps reach the webhook as the Cloud API's button,
// button_reply and list_reply messages with their context; the refusals
// are the Cloud API's (132000, 132001, 131026, 100), and nobody but a
// business sends a card or taps a choice that is not on one.
func TestBusinessRichMessages(t *testing.T) {
	n, b, hook := hookedNode(t, "+14155550971")
	ctx := ctxT(t)
	customer := n.Login(t, "+14155550972", "c")
	do := func(method, path string, body any) (int, map[string]any) {
		return graphDo(t, ctx, method, n.URL+path, b.AccessToken, body)
	}
	templates := "/v23.0/" + b.WABAID + "/message_templates"
	messages := "/v23.0/" + b.PhoneNumberID + "/messages"

	def := map[string]any{"name": "order_update", "language": "en_US", "category": "utility", "parameter_format": "POSITIONAL",
		"components": []any{
			map[string]any{"type": "HEADER", "format": "TEXT", "text": "Order {{1}}"},
			map[string]any{"type": "BODY", "text": "Your order {{1}} ships {{2}}.", "example": map[string]any{"body_text": []any{[]any{"42", "today"}}}},
			map[string]any{"type": "FOOTER", "text": "Acme Inc."},
			map[string]any{"type": "BUTTONS", "buttons": []any{
				map[string]any{"type": "QUICK_REPLY", "text": "Track"},
				map[string]any{"type": "QUICK_REPLY", "text": "Stop"},
				map[string]any{"type": "URL", "text": "Details", "url": "https://acme.example/o/{{1}}"},
			}},
		}}
	code, res := do(http.MethodPost, templates, def)
	if code != http.StatusOK || res["status"] != "APPROVED" || res["category"] != "UTILITY" || res["id"] == "" {
		t.Fatalf("register: %d %v", code, res)
	}
	for name, bad := range map[string]map[string]any{
		"an upper-case name":     {"name": "Order", "language": "en_US", "category": "UTILITY", "components": []any{map[string]any{"type": "BODY", "text": "x"}}},
		"no body":                {"name": "nobody", "language": "en_US", "category": "UTILITY", "components": []any{map[string]any{"type": "FOOTER", "text": "x"}}},
		"placeholders skipping":  {"name": "skip", "language": "en_US", "category": "UTILITY", "components": []any{map[string]any{"type": "BODY", "text": "{{1}} {{3}}"}}},
		"an unknown category":    {"name": "cat", "language": "en_US", "category": "SPAM", "components": []any{map[string]any{"type": "BODY", "text": "x"}}},
		"a javascript URL":       {"name": "js", "language": "en_US", "category": "UTILITY", "components": []any{map[string]any{"type": "BODY", "text": "x"}, map[string]any{"type": "BUTTONS", "buttons": []any{map[string]any{"type": "URL", "text": "x", "url": "javascript:alert(1)"}}}}},
		"a language that is not": {"name": "lang", "language": "english!", "category": "UTILITY", "components": []any{map[string]any{"type": "BODY", "text": "x"}}},
	} {
		if code, res := do(http.MethodPost, templates, bad); code != http.StatusBadRequest || !slices.Contains([]float64{100, 131008, 131009}, graphCode(res)) {
			t.Errorf("register %s: %d %v, want 400 with code 100, 131008 or 131009", name, code, res)
		}
	}
	code, res = do(http.MethodGet, templates+"?name=order_update", nil)
	if data, _ := res["data"].([]any); code != http.StatusOK || len(data) != 1 || data[0].(map[string]any)["language"] != "en_US" {
		t.Fatalf("list: %d %v", code, res)
	}

	// A template goes out of the window: the customer never wrote.
	send := func(to string, tpl map[string]any) (int, map[string]any) {
		return do(http.MethodPost, messages, map[string]any{"messaging_product": "whatsapp", "to": to, "type": "template", "template": tpl})
	}
	params := func(ps ...string) []any {
		out := []any{}
		for _, p := range ps {
			out = append(out, map[string]any{"type": "text", "text": p})
		}
		return out
	}
	full := map[string]any{"name": "order_update", "language": map[string]any{"code": "en_US"}, "components": []any{
		map[string]any{"type": "header", "parameters": params("42")},
		map[string]any{"type": "body", "parameters": params("42", "today")},
		map[string]any{"type": "button", "sub_type": "quick_reply", "index": "0", "parameters": []any{map[string]any{"type": "payload", "payload": "track-42"}}},
		map[string]any{"type": "button", "sub_type": "url", "index": 2, "parameters": params("42")},
	}}
	for name, c := range map[string]struct {
		to   string
		tpl  map[string]any
		code float64
	}{
		"too few body parameters": {"14155550972", map[string]any{"name": "order_update", "language": map[string]any{"code": "en_US"}, "components": []any{
			map[string]any{"type": "header", "parameters": params("42")}, map[string]any{"type": "body", "parameters": params("42")}}}, 132000},
		"no such template": {"14155550972", map[string]any{"name": "nope", "language": map[string]any{"code": "en_US"}}, 132001},
		// Refused alike whatever the number: nobody learns by a bad
		// template whether a number has an account.
		"no such template, to nobody": {"14155550999", map[string]any{"name": "nope", "language": map[string]any{"code": "en_US"}}, 132001},
		"no such language":            {"14155550972", map[string]any{"name": "order_update", "language": map[string]any{"code": "de"}}, 132001},
		"a number nobody has":         {"14155550999", full, 131026},
		"the URL's suffix missing":    {"14155550972", map[string]any{"name": "order_update", "language": map[string]any{"code": "en_US"}, "components": full["components"].([]any)[:2]}, 132000},
	} {
		if code, res := send(c.to, c.tpl); code < 400 || graphCode(res) != c.code {
			t.Errorf("%s: %d %v, want code %v", name, code, res, c.code)
		}
	}
	code, res = send("14155550972", full)
	if code != http.StatusOK {
		t.Fatalf("template send: %d %v", code, res)
	}
	tplID := res["messages"].([]any)[0].(map[string]any)["id"].(string)
	f := nextWhere(t, customer, "the template", func(f wire.ServerFrame) bool { return f.Body != nil && f.Body.Card != nil })
	card := f.Body.Card
	if f.Body.Text != "Your order 42 ships today.\n\nDetails: https://acme.example/o/42" || card.Header != "Order 42" ||
		card.Footer != "Acme Inc." || card.Template != "order_update" ||
		!slices.Equal(card.Buttons, []wire.Choice{{ID: "track-42", Title: "Track"}, {ID: "Stop", Title: "Stop"}}) {
		t.Fatalf("the customer got %q with %+v", f.Body.Text, card)
	}
	// A template does not open the window: free-form is still refused.
	if code, res := do(http.MethodPost, messages, map[string]any{"messaging_product": "whatsapp", "to": "14155550972", "type": "text",
		"text": map[string]any{"body": "hi"}}); code != http.StatusBadRequest || graphCode(res) != 131047 {
		t.Fatalf("free-form after a template: %d %v", code, res)
	}

	// The customer taps "Track": the business gets a "button" message.
	if _, err := customer.Choose(ctx, b.UserID, f.MsgID, "no-such-choice"); errCode(err) != wire.CodeBadRequest {
		t.Fatalf("a choice not on the card: %v", err)
	}
	if _, err := customer.Send(ctx, b.UserID, wire.Body{Choice: "track-42"}); errCode(err) != wire.CodeBadRequest {
		t.Fatalf("a choice replying to nothing: %v", err)
	}
	if _, err := customer.Send(ctx, b.UserID, wire.Body{Text: "x", Card: &wire.Card{Buttons: []wire.Choice{{ID: "a", Title: "A"}}}}); errCode(err) != wire.CodeBadRequest {
		t.Fatalf("a customer's card: %v", err)
	}
	tap, err := customer.Choose(ctx, b.UserID, f.MsgID, "track-42")
	if err != nil {
		t.Fatal(err)
	}

	// Now the window is open: reply buttons, then a list.
	interactive := func(in map[string]any) string {
		t.Helper()
		code, res := do(http.MethodPost, messages, map[string]any{"messaging_product": "whatsapp", "to": "+14155550972", "type": "interactive", "interactive": in})
		if code != http.StatusOK {
			t.Fatalf("interactive: %d %v", code, res)
		}
		return res["messages"].([]any)[0].(map[string]any)["id"].(string)
	}
	interactive(map[string]any{"type": "button", "header": map[string]any{"type": "text", "text": "Delivery"},
		"body": map[string]any{"text": "When shall we come?"}, "footer": map[string]any{"text": "Acme"},
		"action": map[string]any{"buttons": []any{
			map[string]any{"type": "reply", "reply": map[string]any{"id": "am", "title": "Morning"}},
			map[string]any{"type": "reply", "reply": map[string]any{"id": "pm", "title": "Afternoon"}},
		}}})
	buttons := nextWhere(t, customer, "the buttons", func(f wire.ServerFrame) bool {
		return f.Body != nil && f.Body.Card != nil && len(f.Body.Card.Buttons) == 2 && f.Body.Card.Template == ""
	})
	if buttons.Body.Text != "When shall we come?" || buttons.Body.Card.Header != "Delivery" || buttons.Body.Card.Footer != "Acme" {
		t.Fatalf("buttons: %+v %+v", buttons.Body, buttons.Body.Card)
	}
	interactive(map[string]any{"type": "list", "body": map[string]any{"text": "Pick a size"},
		"action": map[string]any{"button": "Sizes", "sections": []any{
			map[string]any{"title": "Shirts", "rows": []any{
				map[string]any{"id": "s", "title": "Small", "description": "chest 90 cm"},
				map[string]any{"id": "m", "title": "Medium"},
			}},
		}}})
	list := nextWhere(t, customer, "the list", func(f wire.ServerFrame) bool { return f.Body != nil && f.Body.Card != nil && f.Body.Card.List != nil })
	if l := list.Body.Card.List; l.Button != "Sizes" || len(l.Sections) != 1 || l.Sections[0].Rows[0] != (wire.Choice{ID: "s", Title: "Small", Description: "chest 90 cm"}) {
		t.Fatalf("list: %+v", list.Body.Card.List)
	}
	pm, err := customer.Choose(ctx, b.UserID, buttons.MsgID, "pm")
	if err != nil {
		t.Fatal(err)
	}
	small, err := customer.Choose(ctx, b.UserID, list.MsgID, "s")
	if err != nil {
		t.Fatal(err)
	}

	// The webhook: three taps, each as the Cloud API says it.
	want := map[string]string{business.MessageID(tap.ChatID, tap.MsgID): "button", business.MessageID(pm.ChatID, pm.MsgID): "button_reply",
		business.MessageID(small.ChatID, small.MsgID): "list_reply"}
	got := map[string]map[string]any{}
	eventually(t, func() (bool, string) {
		hook.mu.Lock()
		defer hook.mu.Unlock()
		for _, p := range hook.bodies {
			ms, _ := value(p)["messages"].([]any)
			for _, m := range ms {
				m := m.(map[string]any)
				if _, ok := want[m["id"].(string)]; ok {
					got[m["id"].(string)] = m
				}
			}
		}
		return len(got) == 3, fmt.Sprintf("%d of 3 taps posted", len(got))
	})
	for id, kind := range want {
		m := got[id]
		ctxQuoted, _ := m["context"].(map[string]any)
		switch kind {
		case "button":
			bt, _ := m["button"].(map[string]any)
			if m["type"] != "button" || bt["payload"] != "track-42" || bt["text"] != "Track" || ctxQuoted["id"] != tplID {
				t.Errorf("template tap: %v", m)
			}
		case "button_reply":
			in, _ := m["interactive"].(map[string]any)
			r, _ := in["button_reply"].(map[string]any)
			if m["type"] != "interactive" || in["type"] != "button_reply" || r["id"] != "pm" || r["title"] != "Afternoon" || ctxQuoted["id"] == nil {
				t.Errorf("button tap: %v", m)
			}
		case "list_reply":
			in, _ := m["interactive"].(map[string]any)
			r, _ := in["list_reply"].(map[string]any)
			if m["type"] != "interactive" || in["type"] != "list_reply" || r["id"] != "s" || r["title"] != "Small" || r["description"] != "chest 90 cm" {
				t.Errorf("list tap: %v", m)
			}
		}
	}

	// Deleted, the template is gone in every language.
	if code, res := do(http.MethodDelete, templates+"?name=order_update", nil); code != http.StatusOK || res["success"] != true {
		t.Fatalf("delete: %d %v", code, res)
	}
	if code, res := send("14155550972", full); code < 400 || graphCode(res) != 132001 {
		t.Fatalf("a deleted template: %d %v", code, res)
	}
	if code, res := do(http.MethodDelete, templates+"?name=order_update", nil); code < 400 || graphCode(res) != 132001 {
		t.Fatalf("deleting again: %d %v", code, res)
	}
}

// TestBusinessWindow: the 24-hour rule by the message times: a customer
// whose last message is 25 hours old gets no free-form message (131047),
// but a template; writing again opens the window, whether or not the
// webhook has taken the message yet (no webhook here); with the rule off,
// free-form goes out regardless.
func TestBusinessWindow(t *testing.T) {
	var offset atomic.Int64 // how far the chat clock is behind
	n := servertest.Start(t, servertest.Options{ChatNow: func() time.Time { return time.Now().Add(-time.Duration(offset.Load())) }})
	ctx := ctxT(t)
	b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550981", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	customer := n.Login(t, "+14155550982", "c")
	messages := "/v23.0/" + b.PhoneNumberID + "/messages"
	send := func(body map[string]any) (int, map[string]any) {
		body["messaging_product"], body["to"] = "whatsapp", "14155550982"
		return graphDo(t, ctx, http.MethodPost, n.URL+messages, b.AccessToken, body)
	}
	freeForm := map[string]any{"type": "text", "text": map[string]any{"body": "still there?"}}

	offset.Store(int64(25 * time.Hour))
	if _, err := customer.Send(ctx, b.UserID, text("hello, yesterday")); err != nil {
		t.Fatal(err)
	}
	offset.Store(0)
	if code, res := send(freeForm); code != http.StatusBadRequest || graphCode(res) != 131047 {
		t.Fatalf("25 hours after the customer wrote: %d %v", code, res)
	}
	if code, res := graphDo(t, ctx, http.MethodPost, n.URL+"/v23.0/"+b.WABAID+"/message_templates", b.AccessToken,
		map[string]any{"name": "nudge", "language": "en", "category": "MARKETING", "components": []any{map[string]any{"type": "BODY", "text": "We miss you"}}}); code != http.StatusOK {
		t.Fatalf("register: %d %v", code, res)
	}
	if code, res := send(map[string]any{"type": "template", "template": map[string]any{"name": "nudge", "language": map[string]any{"code": "en"}}}); code != http.StatusOK {
		t.Fatalf("a template out of the window: %d %v", code, res)
	}
	if _, err := customer.Send(ctx, b.UserID, text("back again")); err != nil {
		t.Fatal(err)
	}
	if code, res := send(freeForm); code != http.StatusOK {
		t.Fatalf("right after the customer wrote: %d %v", code, res)
	}

	// The rule off: free-form to a customer who wrote long ago.
	other := n.Login(t, "+14155550983", "o")
	offset.Store(int64(48 * time.Hour))
	if _, err := other.Send(ctx, b.UserID, text("long ago")); err != nil {
		t.Fatal(err)
	}
	offset.Store(0)
	rec, err := n.Store.Business(ctx, b.UserID)
	if err != nil {
		t.Fatal(err)
	}
	rec.WindowRule = false
	if err := n.Store.UpdateBusiness(ctx, rec); err != nil {
		t.Fatal(err)
	}
	body := map[string]any{"messaging_product": "whatsapp", "to": "14155550983", "type": "text", "text": map[string]any{"body": "news"}}
	if code, res := graphDo(t, ctx, http.MethodPost, n.URL+messages, b.AccessToken, body); code != http.StatusOK {
		t.Fatalf("with the rule off: %d %v", code, res)
	}
}
