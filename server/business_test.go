package server_test

import (
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/tern-im/tern/business"
	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// TestCreateBusiness: a business is made from a free phone number, with
// a webhook URL that answered the Cloud API's verification first; its
// token and secret are shown once (only a digest of the token is kept);
// people chat with it like with anyone, and their messages wait in its
// API device's inbox, the webhook queue. Taken numbers and webhook URLs
// that do not echo the challenge are refused, leaving nothing behind.
func TestCreateBusiness(t *testing.T) {
	n := servertest.Start(t, servertest.Options{Server: server.Config{WebhookAllowPrivate: true}})
	ctx := ctxT(t)
	hook := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		if r.Method != http.MethodGet || q.Get("hub.mode") != "subscribe" || q.Get("hub.verify_token") != "s3cret-verify" {
			http.Error(w, "no", http.StatusForbidden)
			return
		}
		_, _ = w.Write([]byte(q.Get("hub.challenge")))
	}))
	t.Cleanup(hook.Close)

	if _, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550991", Name: "Acme", WebhookURL: hook.URL, VerifyToken: "wrong"}); errCode(err) != wire.CodeBadRequest {
		t.Fatalf("a webhook that refuses the verification: %v", err)
	}
	b, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+1 415 555 0991", Name: " Acme Support ", WebhookURL: hook.URL, VerifyToken: "s3cret-verify"})
	if err != nil {
		t.Fatalf("create (after a refused attempt on the same number): %v", err)
	}
	if len(b.PhoneNumberID) != 15 || len(b.WABAID) != 15 || b.PhoneNumberID == b.WABAID || len(b.AppSecret) != 64 {
		t.Fatalf("created: %+v", b)
	}
	rec, err := n.Store.BusinessByPhoneNumberID(ctx, b.PhoneNumberID)
	if err != nil || rec.UserID != b.UserID || rec.Name != "Acme Support" || rec.WABAID != b.WABAID || !rec.WindowRule ||
		rec.RatePerSecond != business.DefaultRatePerSecond || rec.WebhookURL != hook.URL || rec.WebhookVerifiedAt.IsZero() {
		t.Fatalf("stored business: %+v, %v", rec, err)
	}
	id, secret, err := business.ParseToken(b.AccessToken)
	if err != nil {
		t.Fatal(err)
	}
	tok, err := n.Store.BusinessToken(ctx, id)
	if err != nil || tok.UserID != b.UserID || !business.CheckToken(tok.Hash, secret) || string(tok.Hash) == secret {
		t.Fatalf("stored token: %+v, %v", tok, err)
	}
	dev, err := n.Store.Device(ctx, rec.DeviceID)
	if err != nil || dev.UserID != b.UserID || dev.Platform != "business_api" {
		t.Fatalf("the API device: %+v, %v", dev, err)
	}

	if _, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550991", Name: "Again"}); errCode(err) != wire.CodeConflict {
		t.Fatalf("the same number again: %v", err)
	}
	person := n.Login(t, "+14155550992", "p")
	if _, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550992", Name: "Mine"}); errCode(err) != wire.CodeConflict {
		t.Fatalf("a person's number: %v", err)
	}
	for _, bad := range []server.NewBusiness{{Phone: "12", Name: "x"}, {Phone: "+14155550993"}, {Phone: "+14155550993", Name: "x", WebhookURL: hook.URL}} {
		if _, err := n.Srv.CreateBusiness(ctx, bad); errCode(err) != wire.CodeBadRequest {
			t.Fatalf("create %+v: %v", bad, err)
		}
	}

	// Nobody signs in on a business's number: it is used through the API.
	if _, err := n.Srv.CreateBusiness(ctx, server.NewBusiness{Phone: "+14155550994", Name: "Signs"}); err != nil {
		t.Fatal(err)
	}
	signer := n.Client(t, client.Options{})
	if _, err := signer.RequestCode(ctx, "+14155550994"); err != nil {
		t.Fatal(err)
	}
	code, err := n.SMS.Code(ctx, "+14155550994")
	if err != nil {
		t.Fatal(err)
	}
	if _, err := signer.Verify(ctx, "+14155550994", code, "phone", "android"); errCode(err) != wire.CodeForbidden {
		t.Fatalf("a sign-in on a business's number: %v", err)
	}

	// A customer writes to the business: the message waits in the API
	// device's inbox.
	sent, err := person.Send(ctx, b.UserID, text("do you ship to Lisbon?"))
	if err != nil {
		t.Fatal(err)
	}
	events, _, err := n.Store.Inbox(ctx, rec.DeviceID, 0, 10)
	if err != nil || len(events) != 1 || events[0].Message.ID != sent.MsgID {
		t.Fatalf("the business's queue: %+v, %v", events, err)
	}
}
