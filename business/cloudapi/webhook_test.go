package cloudapi_test

import (
	"encoding/json"
	"testing"
	"time"

	"github.com/tern-im/tern/business/cloudapi"
)

var (
	testMeta = cloudapi.Metadata{DisplayPhoneNumber: "15550783881", PhoneNumberID: "106540352242922"}
	testAt   = time.Unix(1749416383, 0)
)

func mustJSON(t *testing.T, v any) string {
	t.Helper()
	b, err := cloudapi.MarshalASCII(v)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

func TestWebhookTextMessage(t *testing.T) {
	p := cloudapi.NewMessagesPayload("102290129340398", testMeta,
		cloudapi.WebhookContact{Profile: cloudapi.Profile{Name: "Sheena Nelson"}, WaID: "+16505551234"},
		cloudapi.NewInboundText("+16505551234", wamid, testAt, "Does it come in another color?"))
	const want = `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"contacts":[{"profile":{"name":"Sheena Nelson"},"wa_id":"16505551234"}],"messages":[{"from":"16505551234","id":"` + wamid + `","timestamp":"1749416383","type":"text","text":{"body":"Does it come in another color?"}}]},"field":"messages"}]}]}`
	if got := mustJSON(t, p); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestWebhookStatus(t *testing.T) {
	s := cloudapi.NewStatus(wamid, cloudapi.StatusDelivered, testAt, "+16505551234")
	s.BizOpaqueCallbackData = "order-42"
	p := cloudapi.NewStatusPayload("102290129340398", testMeta, s)
	const want = `{"object":"whatsapp_business_account","entry":[{"id":"102290129340398","changes":[{"value":{"messaging_product":"whatsapp","metadata":{"display_phone_number":"15550783881","phone_number_id":"106540352242922"},"statuses":[{"id":"` + wamid + `","status":"delivered","timestamp":"1749416383","recipient_id":"16505551234","biz_opaque_callback_data":"order-42"}]},"field":"messages"}]}]}`
	if got := mustJSON(t, p); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
}

func TestWebhookFailedStatus(t *testing.T) {
	s := cloudapi.NewFailedStatus(wamid, testAt, "16505551234", cloudapi.ErrReEngagement())
	const want = `{"id":"` + wamid + `","status":"failed","timestamp":"1749416383","recipient_id":"16505551234","errors":[{"code":131047,"title":"Re-engagement message","message":"Re-engagement message","error_data":{"details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."}}]}`
	if got := mustJSON(t, s); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	if s := cloudapi.NewFailedStatus(wamid, testAt, "1", nil); s.Errors != nil || s.Status != "failed" {
		t.Errorf("nil cause: %+v", s)
	}
}

func TestWebhookInboundShapes(t *testing.T) {
	img, err := cloudapi.NewInboundMedia("15550000002", wamid, testAt, cloudapi.MessageTypeImage,
		cloudapi.InboundMedia{Caption: "café", MimeType: "image/jpeg", SHA256: "ab+/c=", ID: "923699576041120"})
	if err != nil {
		t.Fatal(err)
	}
	doc, err := cloudapi.NewInboundMedia("15550000002", wamid, testAt, cloudapi.MessageTypeDocument,
		cloudapi.InboundMedia{Filename: "a.pdf", MimeType: "application/pdf", SHA256: "x", ID: "1"})
	if err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name string
		msg  cloudapi.InboundMessage
		want string
	}{
		{"image meta bytes", img, `{"from":"15550000002","id":"` + wamid + `","timestamp":"1749416383","type":"image","image":{"caption":"caf\u00e9","mime_type":"image\/jpeg","sha256":"ab+\/c=","id":"923699576041120"}}`},
		{"document", doc, `{"from":"15550000002","id":"` + wamid + `","timestamp":"1749416383","type":"document","document":{"filename":"a.pdf","mime_type":"application\/pdf","sha256":"x","id":"1"}}`},
		{"reaction", cloudapi.NewInboundReaction("+15550000002", wamid, testAt, wamid, "👍"),
			`{"from":"15550000002","id":"` + wamid + `","timestamp":"1749416383","type":"reaction","reaction":{"message_id":"` + wamid + `","emoji":"\ud83d\udc4d"}}`},
		{"reaction removed", cloudapi.NewInboundReaction("15550000002", wamid, testAt, wamid, ""),
			`{"from":"15550000002","id":"` + wamid + `","timestamp":"1749416383","type":"reaction","reaction":{"message_id":"` + wamid + `","emoji":""}}`},
		{"button reply with context", cloudapi.NewInboundButtonReply("15550000002", wamid, testAt, cloudapi.Reply{ID: "change", Title: "Change"}).WithContext("+15550783881", wamid),
			`{"context":{"from":"15550783881","id":"` + wamid + `"},"from":"15550000002","id":"` + wamid + `","timestamp":"1749416383","type":"interactive","interactive":{"type":"button_reply","button_reply":{"id":"change","title":"Change"}}}`},
		{"list reply", cloudapi.NewInboundListReply("15550000002", wamid, testAt, cloudapi.ListReply{ID: "r1", Title: "Row", Description: "Desc"}),
			`{"from":"15550000002","id":"` + wamid + `","timestamp":"1749416383","type":"interactive","interactive":{"type":"list_reply","list_reply":{"id":"r1","title":"Row","description":"Desc"}}}`},
		{"template button", cloudapi.NewInboundButton("15550000002", wamid, testAt, "YES", "Yes"),
			`{"from":"15550000002","id":"` + wamid + `","timestamp":"1749416383","type":"button","button":{"payload":"YES","text":"Yes"}}`},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			got, err := cloudapi.MarshalMeta(c.msg)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
			var back cloudapi.InboundMessage
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			again, _ := cloudapi.MarshalMeta(back)
			if string(again) != string(got) {
				t.Errorf("decode/encode changed bytes: %s", again)
			}
		})
	}
}

func TestNewInboundMediaRejectsNonMedia(t *testing.T) {
	for _, kind := range []string{"text", "reaction", "", "gif"} {
		if _, err := cloudapi.NewInboundMedia("1", wamid, testAt, kind, cloudapi.InboundMedia{}); err == nil {
			t.Errorf("kind %q accepted", kind)
		}
	}
}

func TestTimestamp(t *testing.T) {
	if got := cloudapi.Timestamp(time.Date(2024, 1, 28, 17, 7, 25, 999, time.FixedZone("x", 3600))); got != "1706458045" {
		t.Errorf("got %s", got)
	}
}

func TestWebhookErrorFrom(t *testing.T) {
	w := cloudapi.WebhookErrorFrom(cloudapi.ErrTooManyCalls())
	if w.Code != 4 || w.Title != "Application request limit reached" || w.ErrorData != nil {
		t.Errorf("got %+v", w)
	}
}
