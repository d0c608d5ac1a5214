package cloudapi_test

import (
	"encoding/json"
	"errors"
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/tern-im/tern/business/cloudapi"
)

func TestErrorJSON(t *testing.T) {
	withTrace := func(e *cloudapi.Error) *cloudapi.Error {
		e.FBTraceID = "Az8or2yhqkZfEZ-_4Qn_Bam"
		return e
	}
	withSubcode := withTrace(cloudapi.ErrRateLimitHit())
	withSubcode.Subcode = 2494055
	cases := []struct {
		name string
		err  *cloudapi.Error
		want string
	}{
		{
			name: "re-engagement",
			err:  withTrace(cloudapi.ErrReEngagement()),
			want: `{"error":{"message":"(#131047) Re-engagement message","type":"OAuthException","code":131047,"error_data":{"messaging_product":"whatsapp","details":"Message failed to send because more than 24 hours have passed since the customer last replied to this number."},"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}`,
		},
		{
			name: "subcode after error_data",
			err:  withSubcode,
			want: `{"error":{"message":"(#130429) Rate limit hit","type":"OAuthException","code":130429,"error_data":{"messaging_product":"whatsapp","details":"Cloud API message throughput has been reached."},"error_subcode":2494055,"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}`,
		},
		{
			name: "bad token has no error_data",
			err:  withTrace(cloudapi.ErrInvalidAccessToken("")),
			want: `{"error":{"message":"Invalid OAuth access token - Cannot parse access token","type":"OAuthException","code":190,"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}`,
		},
		{
			name: "object not found",
			err:  withTrace(cloudapi.ErrObjectNotFound("POST", "106540352242922")),
			want: `{"error":{"message":"Unsupported post request. Object with ID '106540352242922' does not exist, cannot be loaded due to missing permissions, or does not support this operation. Please read the Graph API documentation at https://developers.facebook.com/docs/graph-api","type":"GraphMethodException","code":100,"error_subcode":33,"fbtrace_id":"Az8or2yhqkZfEZ-_4Qn_Bam"}}`,
		},
		{
			name: "html characters kept",
			err:  cloudapi.ErrInvalidParameter(`text.body <b> & "q"`),
			want: `{"error":{"message":"(#100) Invalid parameter","type":"OAuthException","code":100,"error_data":{"messaging_product":"whatsapp","details":"text.body <b> & \"q\""}}}`,
		},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			// MarshalASCII keeps <, > and & literal as Graph does; plain
			// json.Marshal escapes them, which must still decode the same.
			got, err := cloudapi.MarshalASCII(c.err)
			if err != nil {
				t.Fatal(err)
			}
			if string(got) != c.want {
				t.Fatalf("got  %s\nwant %s", got, c.want)
			}
			std, err := json.Marshal(c.err)
			if err != nil {
				t.Fatal(err)
			}
			var a, b any
			_ = json.Unmarshal(got, &a)
			_ = json.Unmarshal(std, &b)
			if !reflect.DeepEqual(a, b) {
				t.Errorf("json.Marshal differs in meaning: %s", std)
			}
			var back cloudapi.Error
			if err := json.Unmarshal(got, &back); err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(&back, c.err) {
				t.Errorf("round trip: got %+v want %+v", back, *c.err)
			}
		})
	}
}

func TestErrorUnmarshalRejectsNonError(t *testing.T) {
	var e cloudapi.Error
	if err := json.Unmarshal([]byte(`{"success":true}`), &e); err == nil {
		t.Fatal("accepted a body without an error object")
	}
}

func TestErrorStatusAndCodes(t *testing.T) {
	cases := []struct {
		err    *cloudapi.Error
		code   int
		status int
	}{
		{cloudapi.ErrInvalidParameter("x"), 100, 400},
		{cloudapi.ErrRequiredParameter("x"), 131008, 400},
		{cloudapi.ErrParameterValueNotValid("x"), 131009, 400},
		{cloudapi.ErrInvalidAccessToken("Error validating access token: Session has expired"), 190, 401},
		{cloudapi.ErrTooManyCalls(), 4, 429},
		{cloudapi.ErrRateLimitIssues(), 80007, 429},
		{cloudapi.ErrRateLimitHit(), 130429, 429},
		{cloudapi.ErrUndeliverable(), 131026, 400},
		{cloudapi.ErrReEngagement(), 131047, 400},
		{cloudapi.ErrUnsupportedMessageType(), 131051, 400},
		{cloudapi.ErrMediaDownload("x"), 131052, 400},
		{cloudapi.ErrMediaUpload("x"), 131053, 400},
		{cloudapi.ErrTemplateParamCount("x"), 132000, 400},
		{cloudapi.ErrTemplateNotFound("x"), 132001, 404},
		{cloudapi.ErrPermissionDenied("x"), 10, 403},
		{cloudapi.ErrAPIPermission("x"), 200, 403},
		{cloudapi.ErrParameterNotValid("x"), 33, 400},
		{cloudapi.ErrObjectNotFound("GET", "1"), 100, 400},
		{cloudapi.NewError(0, "AuthException", ""), 0, 401},
		{cloudapi.NewError(299, "API Permission", ""), 299, 403},
		{cloudapi.NewError(2, "API Service", ""), 2, 503},
		{cloudapi.NewError(131000, "Something went wrong", ""), 131000, 500},
	}
	for _, c := range cases {
		t.Run(c.err.Message, func(t *testing.T) {
			if c.err.Code != c.code {
				t.Errorf("code %d, want %d", c.err.Code, c.code)
			}
			if got := c.err.HTTPStatus(); got != c.status {
				t.Errorf("HTTPStatus %d, want %d", got, c.status)
			}
			if c.err.Type == "" {
				t.Error("empty type")
			}
			prefix := "(#" + itoa(c.err.Code) + ") "
			if c.err.Code != 190 && c.err.Subcode == 0 && !strings.HasPrefix(c.err.Message, prefix) {
				t.Errorf("message %q lacks %q", c.err.Message, prefix)
			}
		})
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestErrorTitleAndString(t *testing.T) {
	e := cloudapi.ErrReEngagement()
	if e.Title() != "Re-engagement message" {
		t.Errorf("title %q", e.Title())
	}
	if s := e.Error(); !strings.Contains(s, "(#131047) Re-engagement message") || !strings.Contains(s, "24 hours") {
		t.Errorf("Error() %q", s)
	}
	var target *cloudapi.Error
	var err error = e
	if !errors.As(err, &target) || target.Code != 131047 {
		t.Error("errors.As failed")
	}
}

func TestNewTraceID(t *testing.T) {
	a, b := cloudapi.NewTraceID(), cloudapi.NewTraceID()
	if a == b || len(a) != 22 {
		t.Errorf("trace ids %q %q", a, b)
	}
}
