package cloudapi_test

import (
	"errors"
	"net/url"
	"strconv"
	"testing"

	"github.com/tern-im/tern/business/cloudapi"
)

func TestAnswerVerification(t *testing.T) {
	q := func(mode, token, challenge string) url.Values {
		return url.Values{"hub.mode": {mode}, "hub.verify_token": {token}, "hub.challenge": {challenge}}
	}
	cases := []struct {
		name       string
		query      url.Values
		token      string
		wantStatus int
		wantBody   string
	}{
		{"ok", q("subscribe", "meatyhamhock", "1158201444"), "meatyhamhock", 200, "1158201444"},
		{"wrong token", q("subscribe", "meatyhamhocks", "1158201444"), "meatyhamhock", 403, ""},
		{"wrong mode", q("unsubscribe", "meatyhamhock", "1158201444"), "meatyhamhock", 403, ""},
		{"no params", url.Values{}, "meatyhamhock", 403, ""},
		{"unconfigured token", q("subscribe", "", "1"), "", 403, ""},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			status, body := cloudapi.AnswerVerification(c.query, c.token)
			if status != c.wantStatus || body != c.wantBody {
				t.Errorf("got %d %q, want %d %q", status, body, c.wantStatus, c.wantBody)
			}
		})
	}
}

func TestVerificationRoundTrip(t *testing.T) {
	challenge, err := cloudapi.NewChallenge()
	if err != nil {
		t.Fatal(err)
	}
	n, err := strconv.ParseInt(challenge, 10, 32)
	if err != nil || n < 1_000_000_000 {
		t.Fatalf("challenge %q is not a ten-digit int32: %v", challenge, err)
	}
	raw, err := cloudapi.VerificationURL("https://hooks.example.com/wa?tenant=7", "tok en&", challenge)
	if err != nil {
		t.Fatal(err)
	}
	u, err := url.Parse(raw)
	if err != nil {
		t.Fatal(err)
	}
	if u.Host != "hooks.example.com" || u.Path != "/wa" || u.Query().Get("tenant") != "7" {
		t.Fatalf("callback URL mangled: %s", raw)
	}
	status, body := cloudapi.AnswerVerification(u.Query(), "tok en&")
	if err := cloudapi.CheckVerificationAnswer(status, []byte(body), challenge); err != nil {
		t.Fatalf("honest receiver failed: %v (%s)", err, raw)
	}
	if err := cloudapi.CheckVerificationAnswer(200, []byte(body+"\n"), challenge); err != nil {
		t.Errorf("trailing newline refused: %v", err)
	}
	status, body = cloudapi.AnswerVerification(u.Query(), "other")
	if err := cloudapi.CheckVerificationAnswer(status, []byte(body), challenge); !errors.Is(err, cloudapi.ErrVerificationRefused) {
		t.Errorf("refusal: got %v", err)
	}
	if err := cloudapi.CheckVerificationAnswer(200, []byte("OK"), challenge); !errors.Is(err, cloudapi.ErrChallengeMismatch) {
		t.Errorf("wrong echo: got %v", err)
	}
	if err := cloudapi.CheckVerificationAnswer(200, []byte(`"`+challenge+`"`), challenge); !errors.Is(err, cloudapi.ErrChallengeMismatch) {
		t.Errorf("quoted echo accepted: %v", err)
	}
	if err := cloudapi.CheckVerificationAnswer(200, nil, ""); !errors.Is(err, cloudapi.ErrChallengeMismatch) {
		t.Errorf("empty challenge accepted: %v", err)
	}
}

func TestNewChallengeVaries(t *testing.T) {
	seen := map[string]bool{}
	for i := 0; i < 20; i++ {
		c, err := cloudapi.NewChallenge()
		if err != nil {
			t.Fatal(err)
		}
		seen[c] = true
	}
	if len(seen) < 19 {
		t.Errorf("only %d distinct challenges in 20", len(seen))
	}
}

func TestVerificationURLRejects(t *testing.T) {
	for _, cb := range []string{"", "hooks.example.com/x", "ftp://hooks.example.com/", "https://", "mailto:a@b.c", "https://exa mple.com/"} {
		if _, err := cloudapi.VerificationURL(cb, "t", "1"); err == nil {
			t.Errorf("accepted %q", cb)
		} else if cb != "https://exa mple.com/" && !errors.Is(err, cloudapi.ErrInvalidCallbackURL) {
			t.Errorf("%q: error %v does not wrap ErrInvalidCallbackURL", cb, err)
		}
	}
	if _, err := cloudapi.VerificationURL("https://a.example/", "", "1"); err == nil {
		t.Error("empty verify token accepted")
	}
}
