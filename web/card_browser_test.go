package web_test

import (
	"bytes"
	"context"
	"encoding/json"
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/accessibility"
	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/dom"
	"github.com/chromedp/chromedp"
	"github.com/chromedp/chromedp/kb"

	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// TestBusinessCard: a customer writes to a business from the web client;
// the business answers through the business API with reply buttons and
// with a list. The page shows each card (header, text, footer, its
// choices); the customer taps "Afternoon", then opens "Sizes" (a dialog
// of its sections and rows, Esc closing it and the focus going back to
// the button) and picks "Small". Each tap is stored as a reply to its
// card naming the choice, with the choice's title as its text, and shows
// as a reply quoting the card.
func TestBusinessCard(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx, cancel := context.WithTimeout(t.Context(), 4*step)
	defer cancel()
	biz, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550701", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	b := browser(t)
	cleo := newTab(t, b, n.URL, "cleo")
	cleo.signIn(n, "+14155550702", "Cleo")
	// Her message opens the business's window for free-form messages.
	cleo.do(chromedp.Click(chromedp.CSS(`button[aria-label="New chat"]`)),
		chromedp.SendKeys(chromedp.CSS("#newchat-phone"), "+14155550701\n"),
		chromedp.WaitVisible(chromedp.CSS(`textarea[aria-label="Message"]`)),
		chromedp.SendKeys(chromedp.CSS(`textarea[aria-label="Message"]`), "do you deliver?\n"),
		chromedp.WaitVisible(chromedp.CSS(`li.own .tick:not([aria-label="pending"])`)))

	post := func(interactive map[string]any) {
		t.Helper()
		body, _ := json.Marshal(map[string]any{"messaging_product": "whatsapp", "to": "14155550702", "type": "interactive", "interactive": interactive})
		req, _ := http.NewRequestWithContext(ctx, http.MethodPost, n.URL+"/v23.0/"+biz.PhoneNumberID+"/messages", bytes.NewReader(body))
		req.Header.Set("Authorization", "Bearer "+biz.AccessToken)
		req.Header.Set("Content-Type", "application/json")
		res, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer res.Body.Close()
		if res.StatusCode != http.StatusOK {
			var e any
			_ = json.NewDecoder(res.Body).Decode(&e)
			t.Fatalf("the business's interactive message: %d %v", res.StatusCode, e)
		}
	}
	post(map[string]any{"type": "button", "header": map[string]any{"type": "text", "text": "Delivery"},
		"body": map[string]any{"text": "When shall we come?"}, "footer": map[string]any{"text": "Acme"},
		"action": map[string]any{"buttons": []any{
			map[string]any{"type": "reply", "reply": map[string]any{"id": "am", "title": "Morning"}},
			map[string]any{"type": "reply", "reply": map[string]any{"id": "pm", "title": "Afternoon"}},
		}}})
	cleo.do(chromedp.WaitVisible("Afternoon", byName("button", "Afternoon")))
	if !cleo.hasAX("Morning", "button") {
		t.Error(`no button named "Morning" under the card`)
	}
	card := `document.querySelector('li:not(.own) .bubble:has(.card-header)')`
	if got := cleo.eval(`[...` + card + `.querySelectorAll('p')].map(p => p.className + ':' + p.textContent).join('|')`); got != "card-header:Delivery|text:When shall we come?|card-footer:Acme" {
		t.Errorf("the card's bubble: %q, want its header, text and footer in that order", got)
	}

	post(map[string]any{"type": "list", "body": map[string]any{"text": "Pick a size"},
		"action": map[string]any{"button": "Sizes", "sections": []any{
			map[string]any{"title": "Shirts", "rows": []any{
				map[string]any{"id": "s", "title": "Small", "description": "chest 90 cm"},
				map[string]any{"id": "m", "title": "Medium"},
			}},
		}}})
	cleo.do(chromedp.WaitVisible("Sizes", byName("button", "Sizes")))
	cleo.screenshot("business-card")

	// A reply button answers at once.
	cleo.do(chromedp.Click("Afternoon", byName("button", "Afternoon")),
		chromedp.WaitVisible(chromedp.CSS(`li.own:has(.quote) .tick:not([aria-label="pending"])`)))
	if got := cleo.text(`li.own:has(.quote)`); !contains(got, "When shall we come?", "Afternoon") {
		t.Errorf("the tap shows as %q, want a reply quoting the card", got)
	}

	// The list opens as a dialog; Esc closes it, and the focus is back
	// on its button.
	focused := `document.activeElement.textContent`
	cleo.do(chromedp.Click("Sizes", byName("button", "Sizes")),
		chromedp.WaitVisible("Sizes", byName("dialog", "Sizes")),
		chromedp.WaitVisible("Small", byName("button", "Small")))
	cleo.screenshot("business-list")
	if cleo.ax("heading", "Shirts") == nil {
		t.Error(`the list's dialog has no heading "Shirts"`)
	}
	if got := axText(cleo.ax("button", "Small").Description); got != "chest 90 cm" {
		t.Errorf(`the row "Small" is described as %q, want its description`, got)
	}
	if cleo.ax("button", "Medium") == nil {
		t.Error(`the list's dialog has no row "Medium"`)
	}
	cleo.do(chromedp.KeyEvent(kb.Escape), chromedp.WaitNotVisible(chromedp.CSS("dialog")))
	if got := cleo.eval(focused); got != "Sizes" {
		t.Errorf("after Esc, the focus is on %q, want the list's button", got)
	}
	cleo.do(chromedp.Click("Sizes", byName("button", "Sizes")),
		chromedp.Click("Small", byName("button", "Small")),
		chromedp.WaitNotVisible(chromedp.CSS("dialog")),
		chromedp.Poll[chromedp.Void](`document.querySelectorAll('li.own:has(.quote) .tick:not([aria-label="pending"])').length === 2`,
			chromedp.WithPollingInterval(50*time.Millisecond)))
	if got := cleo.eval(focused); got != "Sizes" {
		t.Errorf("after a choice, the focus is on %q, want the list's button", got)
	}
	if got := cleo.eval(`[...document.querySelectorAll('li.own:has(.quote)')].at(-1).textContent`); !contains(got, "Pick a size", "Small") {
		t.Errorf("the list's choice shows as %q, want a reply quoting the list", got)
	}
	// The buttons stay: tapping again is allowed.
	if got := cleo.eval(`String([...document.querySelectorAll('.choices button')].every(b => !b.disabled))`); got != "true" {
		t.Error("a card's buttons are disabled after a tap")
	}

	// What the server stored: two replies from Cleo, each to its card,
	// naming the choice, with its title as the text.
	me, err := n.Store.UserByPhone(ctx, "+14155550702")
	if err != nil {
		t.Fatal(err)
	}
	msgs, err := n.Store.History(ctx, store.DirectChatID(me.ID, biz.UserID), 0, 50)
	if err != nil {
		t.Fatal(err)
	}
	var buttonsID, listID string
	got := map[string]string{} // choice -> "reply_to text"
	for _, m := range msgs {
		var body wire.Body
		if err := json.Unmarshal(m.Body, &body); err != nil {
			t.Fatal(err)
		}
		switch {
		case m.From == biz.UserID && body.Card != nil && body.Card.List != nil:
			listID = m.ID
		case m.From == biz.UserID && body.Card != nil:
			buttonsID = m.ID
		case m.From == me.ID && body.Choice != "":
			got[body.Choice] = m.ReplyTo + " " + body.Text
		}
	}
	if len(got) != 2 || got["pm"] != buttonsID+" Afternoon" || got["s"] != listID+" Small" {
		t.Errorf("stored choices %v, want pm replying to %s (Afternoon) and s to %s (Small)", got, buttonsID, listID)
	}
}

// byName finds elements the way assistive tools do: by their computed
// role and accessible name.
func byName(role, name string) chromedp.QueryOption {
	return chromedp.ByFunc(func(ctx context.Context, t *chromedp.Target, n *chromedp.Node) ([]cdp.NodeID, error) {
		res, err := cdp.Call(ctx, t, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{NodeID: n.NodeID, AccessibleName: name, Role: role})
		if err != nil {
			return nil, err
		}
		var ids []cdp.BackendNodeID
		for _, x := range res.Nodes {
			if !x.Ignored && x.BackendDOMNodeID != 0 {
				ids = append(ids, x.BackendDOMNodeID)
			}
		}
		if len(ids) == 0 {
			return []cdp.NodeID{}, nil
		}
		pushed, err := cdp.Call(ctx, t, dom.PushNodesByBackendIDsToFrontend, dom.PushNodesByBackendIDsToFrontendParams{BackendNodeIDs: ids})
		if err != nil {
			return nil, err
		}
		return pushed.NodeIDs, nil
	})
}

// ax is the first element of role named name, as assistive tools find it;
// nil if there is none. It searches from the root element: a search from
// the body (hasAX) misses what a modal dialog holds.
func (p *tab) ax(role, name string) *accessibility.Node {
	p.t.Helper()
	ctx, cancel := context.WithTimeout(p.ctx, step)
	defer cancel()
	var found *accessibility.Node
	err := chromedp.Do(ctx, chromedp.Func(func(ctx context.Context, tt *chromedp.Target) error {
		doc, err := chromedp.Run(ctx, chromedp.Nodes(chromedp.CSS("html")))
		if err != nil {
			return err
		}
		res, err := chromedp.Call(ctx, accessibility.QueryAXTree, accessibility.QueryAXTreeParams{
			BackendNodeID: doc[0].BackendNodeID, AccessibleName: name, Role: role})
		if err != nil {
			return err
		}
		for _, n := range res.Nodes {
			if !n.Ignored {
				found = n
				return nil
			}
		}
		return nil
	}))
	if err != nil {
		p.t.Fatalf("%s: accessibility query %q: %v", p.name, name, err)
	}
	return found
}

// axText is an accessibility value's text ("" for none).
func axText(v *accessibility.Value) string {
	var s string
	if v != nil {
		_ = json.Unmarshal(v.Value, &s)
	}
	return s
}

// contains reports whether s has every one of parts.
func contains(s string, parts ...string) bool {
	for _, p := range parts {
		if !strings.Contains(s, p) {
			return false
		}
	}
	return true
}
