package server_test

import (
	"errors"
	"net/http"
	"testing"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// TestBan: a ban closes every socket of the user on every node (4401),
// kills its tokens, and refuses its sign-ins and refreshes with forbidden
// "banned"; an unban lets it sign in again with a new code.
func TestBan(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) { testBan(t, d.start(t, server.Config{})) })
	}
}

func testBan(t *testing.T, nodes []*servertest.Node) {
	{
		ctx := ctxT(t)
		phone := "+14155550801"
		mallory := nodes[0].LoginOnly(t, phone, "phone")
		uid := mallory.Session().UserID
		old := mallory.Session()
		// A socket on the last node: the ban is made on the first.
		last := nodes[len(nodes)-1]
		c, _, err := dialWS(t, last, bearer(old.AccessToken))
		if err != nil {
			t.Fatal(err)
		}
		if err := nodes[0].Auth.Ban(ctx, store.Ban{UserID: uid, Reason: "spam", By: "ops"}); err != nil {
			t.Fatal(err)
		}
		if code := closeCode(t, c); code != wire.CloseUnauthorized {
			t.Fatalf("the banned user's socket closed with %d, want %d", code, wire.CloseUnauthorized)
		}
		if err := mallory.Do(ctx, http.MethodGet, "/v1/me", nil, nil); errCode(err) != wire.CodeUnauthorized {
			t.Fatalf("the banned user's access token: %v, want unauthorized", err)
		}
		var we *wire.Error
		fresh := last.Client(t, client.Options{})
		fresh.SetSession(old)
		if _, err := fresh.Refresh(ctx); !errors.As(err, &we) || (we.Code != wire.CodeUnauthorized && we.Code != wire.CodeForbidden) {
			t.Fatalf("refresh after the ban: %v", err)
		}
		if _, err := fresh.RequestCode(ctx, phone); err != nil {
			t.Fatal(err)
		}
		code, err := last.SMS.Code(ctx, phone)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := fresh.Verify(ctx, phone, code, "again", "android"); !errors.As(err, &we) || we.Code != wire.CodeForbidden || we.Message != "this account is banned" {
			t.Fatalf("sign-in after the ban: %v, want forbidden: banned", err)
		}
		if ds, err := last.Store.UserDevices(ctx, uid); err != nil || len(ds) != 0 {
			t.Fatalf("devices of the banned user: %v %v", ds, err)
		}
		if err := nodes[0].Auth.Unban(ctx, uid); err != nil {
			t.Fatal(err)
		}
		again := last.LoginOnly(t, phone, "back")
		if again.Session().UserID != uid {
			t.Fatalf("after the unban the phone is user %s, want %s", again.Session().UserID, uid)
		}
	}
}
