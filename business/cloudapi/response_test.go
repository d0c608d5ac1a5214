package cloudapi_test

import (
	"encoding/json"
	"strings"
	"testing"

	"github.com/tern-im/tern/business/cloudapi"
)

func TestSendResponseJSON(t *testing.T) {
	b, e := cloudapi.DecodeMessagesBody([]byte(`{"messaging_product":"whatsapp","to":"1 555 123 4567","text":{"body":"hi"}}`))
	if e != nil {
		t.Fatal(e)
	}
	resp := cloudapi.NewSendResponse(*b.Send, "wamid.abc_-123")
	const want = `{"messaging_product":"whatsapp","contacts":[{"input":"1 555 123 4567","wa_id":"15551234567"}],"messages":[{"id":"wamid.abc_-123"}]}`
	if got := js(t, resp); got != want {
		t.Fatalf("got  %s\nwant %s", got, want)
	}
	resp.Messages[0].MessageStatus = cloudapi.MessageStatusAccepted
	if got := js(t, resp); !strings.HasSuffix(got, `"messages":[{"id":"wamid.abc_-123","message_status":"accepted"}]}`) {
		t.Errorf("message_status: %s", got)
	}
	// A request built in code has no ToInput; the canonical number stands in.
	if got := cloudapi.NewSendResponse(cloudapi.SendRequest{To: "+15551234567"}, "wamid.x").Contacts[0]; got.Input != "+15551234567" || got.WaID != "15551234567" {
		t.Errorf("contact %+v", got)
	}
}

func TestSuccessResponseJSON(t *testing.T) {
	if got := js(t, cloudapi.SuccessResponse{Success: true}); got != `{"success":true}` {
		t.Fatalf("got %s", got)
	}
}

func TestNewMessageID(t *testing.T) {
	seen := make(map[string]bool)
	for i := 0; i < 1000; i++ {
		id := cloudapi.NewMessageID()
		if !cloudapi.IsMessageID(id) {
			t.Fatalf("%q is not a message id", id)
		}
		if !strings.HasPrefix(id, "wamid.") || len(id) != len("wamid.")+32 {
			t.Fatalf("unexpected shape %q", id)
		}
		if strings.ContainsAny(id[6:], "+/=") {
			t.Fatalf("not URL-safe: %q", id)
		}
		if seen[id] {
			t.Fatalf("duplicate id %q", id)
		}
		seen[id] = true
	}
	// IDs must survive a JSON round trip untouched.
	id := cloudapi.NewMessageID()
	var back string
	if err := json.Unmarshal([]byte(js(t, id)), &back); err != nil || back != id {
		t.Fatalf("round trip %q -> %q", id, back)
	}
}

func TestIsMessageID(t *testing.T) {
	for _, c := range []struct {
		id   string
		want bool
	}{
		{wamid, true},
		{"wamid.HBgNNTUxNjk5MjMxODIyMhUCABEYEjgxQkVFRDVBQTVDODFDOTg3MQA=", true},
		{"wamid.a+b/c_d-e==", true},
		{"wamid.", false},
		{"wamid", false},
		{"WAMID.abc", false},
		{"abc", false},
		{"", false},
		{"wamid.abc def", false},
		{"wamid.abc\n", false},
		{"wamid.é", false},
		{"wamid." + strings.Repeat("a", 250), true},
		{"wamid." + strings.Repeat("a", 251), false},
	} {
		if got := cloudapi.IsMessageID(c.id); got != c.want {
			t.Errorf("IsMessageID(%q) = %v, want %v", c.id, got, c.want)
		}
	}
}
