package server_test

import (
	"fmt"
	"net/http"
	"slices"
	"testing"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// TestBusinessSendsText: a business's system, speaking the Cloud API,
// answers a customer within the 24-hour window (text, a reply, a
// reaction, mark-read), and is refused the way the Cloud API refuses:
// a bad token (190), another business's number (100/33), a number nobody
// has (131026), a customer who never wrote (131047), a type not built yet
// (131051), malformed JSON (100).
func TestBusinessSendsText(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550961", Name: "Acme"})
	if err != nil {
		t.Fatal(err)
	}
	other, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550962", Name: "Other"})
	if err != nil {
		t.Fatal(err)
	}
	customer := n.Login(t, "+14155550963", "c")
	stranger := n.Login(t, "+14155550964", "s")
	asked, err := customer.Send(ctx, b.UserID, text("is my order shipped?"))
	if err != nil {
		t.Fatal(err)
	}
	askedID := business.MessageID(asked.ChatID, asked.MsgID)

	post := func(path, token string, body any) (int, map[string]any) {
		return graphDo(t, ctx, http.MethodPost, n.URL+path, token, body)
	}
	path := "/v21.0/" + b.PhoneNumberID + "/messages"
	textTo := func(to, body string) map[string]any {
		return map[string]any{"messaging_product": "whatsapp", "recipient_type": "individual", "to": to, "type": "text",
			"text": map[string]any{"preview_url": false, "body": body}}
	}

	code, res := post(path, b.AccessToken, textTo("14155550963", "Yes, it left today."))
	if code != http.StatusOK || res["messaging_product"] != "whatsapp" {
		t.Fatalf("send: %d %v", code, res)
	}
	contacts := res["contacts"].([]any)[0].(map[string]any)
	wamid := res["messages"].([]any)[0].(map[string]any)["id"].(string)
	if contacts["input"] != "14155550963" || contacts["wa_id"] != "14155550963" || len(wamid) < 10 || wamid[:6] != "wamid." {
		t.Fatalf("send answer: %v", res)
	}
	f := nextWhere(t, customer, "the business's answer", func(f wire.ServerFrame) bool { return f.Body != nil && f.Body.Text != "" })
	if f.From != b.UserID || f.Body.Text != "Yes, it left today." || business.MessageID(f.ChatID, f.MsgID) != wamid {
		t.Fatalf("the customer got %+v (answered id %s)", f, wamid)
	}
	// Without the version in the path, a reply to the customer's question.
	reply := textTo("+14155550963", "Tracking number: 42")
	reply["context"] = map[string]any{"message_id": askedID}
	if code, res := post("/"+b.PhoneNumberID+"/messages", b.AccessToken, reply); code != http.StatusOK {
		t.Fatalf("reply: %d %v", code, res)
	}
	f = nextWhere(t, customer, "the reply", func(f wire.ServerFrame) bool { return f.Body != nil && f.Body.Text == "Tracking number: 42" })
	if f.ReplyTo != asked.MsgID {
		t.Fatalf("the reply's reply_to: %q, want %q", f.ReplyTo, asked.MsgID)
	}
	react := map[string]any{"messaging_product": "whatsapp", "to": "14155550963", "type": "reaction",
		"reaction": map[string]any{"message_id": askedID, "emoji": "👍"}}
	if code, res := post(path, b.AccessToken, react); code != http.StatusOK {
		t.Fatalf("reaction: %d %v", code, res)
	}
	nextWhere(t, customer, "the reaction", func(f wire.ServerFrame) bool {
		return f.Body != nil && f.Body.Reaction != nil && f.Body.Reaction.MsgID == asked.MsgID
	})
	if code, res := post(path, b.AccessToken, map[string]any{"messaging_product": "whatsapp", "status": "read", "message_id": askedID}); code != http.StatusOK || res["success"] != true {
		t.Fatalf("mark read: %d %v", code, res)
	}
	for {
		r := servertest.Next(t, customer, wire.TypeReceipt, wait)
		if r.Status == wire.StatusRead && slices.Contains(r.MsgIDs, asked.MsgID) {
			break
		}
	}

	for _, c := range []struct {
		name  string
		path  string
		token string
		body  any
		code  int
		graph float64
	}{
		{"a bad token", path, "tbt_nope.nope", textTo("14155550963", "x"), http.StatusUnauthorized, 190},
		{"no token", path, "", textTo("14155550963", "x"), http.StatusUnauthorized, 190},
		{"another business's number", "/v21.0/" + other.PhoneNumberID + "/messages", b.AccessToken, textTo("14155550963", "x"), http.StatusBadRequest, 100},
		// With the window on, as for anyone who never wrote: which numbers
		// have accounts is not learnt by trying.
		{"a number nobody has", path, b.AccessToken, textTo("14155550999", "x"), http.StatusBadRequest, 131047},
		{"a customer who never wrote", path, b.AccessToken, textTo("14155550964", "buy now"), http.StatusBadRequest, 131047},
		{"a location, which Tern does not send", path, b.AccessToken, map[string]any{"messaging_product": "whatsapp", "to": "14155550963", "type": "location",
			"location": map[string]any{"latitude": 1, "longitude": 2}}, http.StatusBadRequest, 131051},
		{"malformed JSON", path, b.AccessToken, `{"messaging_product":`, http.StatusBadRequest, 100},
		// The same answer by every path, whether the number has an
		// account or not.
		{"a reaction sent to a stranger", path, b.AccessToken, map[string]any{"messaging_product": "whatsapp", "to": "14155550964", "type": "reaction",
			"reaction": map[string]any{"message_id": askedID, "emoji": "👍"}}, http.StatusBadRequest, 131047},
		{"a reaction sent to nobody", path, b.AccessToken, map[string]any{"messaging_product": "whatsapp", "to": "14155550999", "type": "reaction",
			"reaction": map[string]any{"message_id": askedID, "emoji": "👍"}}, http.StatusBadRequest, 131047},
		{"a Graph path not served", "/v21.0/" + b.PhoneNumberID + "/whatsapp_business_profile", b.AccessToken, `{}`, http.StatusBadRequest, 100},
		{"a message of another chat", path, b.AccessToken, map[string]any{"messaging_product": "whatsapp", "status": "read",
			"message_id": business.MessageID("du1.u2", "m1")}, http.StatusBadRequest, 131009},
	} {
		code, res := post(c.path, c.token, c.body)
		if code != c.code || graphCode(res) != c.graph {
			t.Errorf("%s: %d %v, want %d with code %v", c.name, code, res, c.code, c.graph)
		}
	}
	_ = stranger // signed in, never wrote: the window is closed for it

	// Over the number's rate (1/s here): 130429.
	rec, err := n.Store.Business(ctx, b.UserID)
	if err != nil {
		t.Fatal(err)
	}
	rec.RatePerSecond = 1
	if err := n.Store.UpdateBusiness(ctx, rec); err != nil {
		t.Fatal(err)
	}
	limited := 0
	for i := range 5 {
		code, res := post(path, b.AccessToken, textTo("14155550963", fmt.Sprint("burst ", i)))
		if code == http.StatusTooManyRequests && graphCode(res) == 130429 {
			limited++
		} else if code != http.StatusOK {
			t.Fatalf("burst %d: %d %v", i, code, res)
		}
	}
	if limited == 0 {
		t.Fatal("5 sends at once at 1/s: none refused with 130429")
	}
}
