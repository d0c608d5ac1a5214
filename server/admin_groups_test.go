package server_test

import (
	"net/http"
	"strings"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// TestAdminGroupsAndReports: an admin finds a group by its name, sees its
// members, and deletes it (every member's device is told, and nobody can
// post to it any more); works through the reports queue: a dismissed
// report leaves the queue and cannot be resolved twice; a ban from a
// report signs the reported user out.
func TestAdminGroupsAndReports(t *testing.T) {
	n := servertest.Start(t, servertest.Options{})
	ctx := ctxT(t)
	a := signedInAdmin(t, n)

	alice := n.Login(t, "+14155550981", "a")
	bob := n.Login(t, "+14155550982", "b")
	carol := n.Login(t, "+14155550983", "c")
	aID, bID := alice.Session().UserID, bob.Session().UserID
	g, err := alice.CreateGroup(ctx, "Book club (Tuesdays)", "", []string{bID, carol.Session().UserID})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := alice.CreateGroup(ctx, "Chess", "", []string{bID}); err != nil {
		t.Fatal(err)
	}

	var list struct {
		Groups []wire.Group
	}
	a.getJSON("/v1/admin/groups?q=BOOK%20CLUB%20(", &list)
	if len(list.Groups) != 1 || list.Groups[0].ChatID != g.ChatID || len(list.Groups[0].Members) != 3 {
		t.Fatalf("groups named like book club: %+v", list.Groups)
	}
	a.getJSON("/v1/admin/groups", &list)
	if len(list.Groups) != 2 {
		t.Fatalf("all groups: %+v", list.Groups)
	}
	var one struct {
		wire.Group
		People map[string]struct{ Phone string }
	}
	a.getJSON("/v1/admin/groups/"+g.ChatID, &one)
	if one.People[aID].Phone != "+14155550981" || len(one.Members) != 3 {
		t.Fatalf("group detail: %+v", one)
	}
	var user struct {
		Groups []struct {
			ChatID string `json:"chat_id"`
			Name   string
		}
	}
	a.getJSON("/v1/admin/users/"+bID, &user)
	if len(user.Groups) != 2 {
		t.Fatalf("bob's groups on his page: %+v", user.Groups)
	}

	if code, _, _ := a.do(http.MethodDelete, "/v1/admin/groups/"+g.ChatID, nil, false); code != http.StatusForbidden {
		t.Fatalf("delete without the CSRF token: %d", code)
	}
	if code, body, _ := a.do(http.MethodDelete, "/v1/admin/groups/"+g.ChatID, nil, true); code != http.StatusNoContent {
		t.Fatalf("delete: %d %v", code, body)
	}
	for name, c := range map[string]*client.Client{"alice": alice, "bob": bob, "carol": carol} {
		f := nextGroupEvent(t, c, g.ChatID)
		if f.Change != wire.ChangeDeleted || f.By != wire.SystemUser || f.Group == nil || len(f.Group.Members) != 0 {
			t.Fatalf("%s's event of the deletion: %+v", name, f)
		}
	}
	if _, err := alice.Send(ctx, g.ChatID, text("still here?")); errCode(err) != wire.CodeForbidden {
		t.Fatalf("a send to the deleted group: %v", err)
	}
	if code, _, _ := a.do(http.MethodDelete, "/v1/admin/groups/"+g.ChatID, nil, true); code != http.StatusNoContent {
		t.Fatalf("deleting again: %d (nothing to do is not an error)", code)
	}
	if code, _, _ := a.do(http.MethodDelete, "/v1/admin/groups/gnosuchgroup", nil, true); code != http.StatusNotFound {
		t.Fatalf("deleting no group: %d", code)
	}

	// Reports.
	direct := directChat(t, alice, bob)
	m, err := alice.Send(ctx, bID, text("buy cheap watches"))
	if err != nil {
		t.Fatal(err)
	}
	first, err := bob.Report(ctx, wire.ReportRequest{UserID: aID, ChatID: direct, MsgIDs: []string{m.MsgID}, Reason: "spam"})
	if err != nil {
		t.Fatal(err)
	}
	type report struct {
		ID         string `json:"report_id"`
		UserID     string `json:"user_id"`
		Resolution string
		Messages   []wire.Message
	}
	var reports struct{ Reports []report }
	a.getJSON("/v1/admin/reports", &reports)
	if len(reports.Reports) != 1 || reports.Reports[0].ID != first || len(reports.Reports[0].Messages) != 1 ||
		reports.Reports[0].Messages[0].Body.Text != "buy cheap watches" {
		t.Fatalf("open reports: %+v", reports)
	}
	if code, _, _ := a.do(http.MethodPost, "/v1/admin/reports/"+first+"/dismiss", nil, false); code != http.StatusForbidden {
		t.Fatalf("dismiss without the CSRF token: %d", code)
	}
	if code, _, _ := a.do(http.MethodPost, "/v1/admin/reports/"+first+"/frobnicate", nil, true); code != http.StatusNotFound {
		t.Fatalf("an unknown action: %d", code)
	}
	if code, body, _ := a.do(http.MethodPost, "/v1/admin/reports/"+first+"/dismiss", nil, true); code != http.StatusNoContent {
		t.Fatalf("dismiss: %d %v", code, body)
	}
	if code, _, _ := a.do(http.MethodPost, "/v1/admin/reports/"+first+"/ban", nil, true); code != http.StatusConflict {
		t.Fatalf("a ban from a dismissed report: %d", code)
	}
	a.getJSON("/v1/admin/reports", &reports)
	if len(reports.Reports) != 0 {
		t.Fatalf("open reports after the dismissal: %+v", reports)
	}
	a.getJSON("/v1/admin/reports?status=all", &reports)
	if len(reports.Reports) != 1 || reports.Reports[0].Resolution != "dismissed" {
		t.Fatalf("all reports: %+v", reports)
	}

	second, err := carol.Report(ctx, wire.ReportRequest{UserID: aID, Reason: "threats"})
	if err != nil {
		t.Fatal(err)
	}
	if code, body, _ := a.do(http.MethodPost, "/v1/admin/reports/"+second+"/ban", nil, true); code != http.StatusNoContent {
		t.Fatalf("ban from a report: %d %v", code, body)
	}
	var banned struct {
		Ban *struct{ Reason string }
	}
	a.getJSON("/v1/admin/users/"+aID, &banned)
	if banned.Ban == nil || !strings.Contains(banned.Ban.Reason, "threats") {
		t.Fatalf("alice after the ban: %+v", banned)
	}
	if _, err := alice.Send(ctx, bID, text("after the ban")); err == nil {
		t.Fatal("a banned user's socket still sends")
	}

	var audit struct {
		Entries []struct{ Action, Target string }
	}
	a.getJSON("/v1/admin/audit", &audit)
	want := map[string]string{"delete_group": g.ChatID, "report_dismissed": first, "report_banned": second, "ban": aID, "view_user": bID}
	for _, e := range audit.Entries {
		if want[e.Action] == e.Target {
			delete(want, e.Action)
		}
	}
	if len(want) != 0 {
		t.Fatalf("audit log lacks %v: %+v", want, audit.Entries)
	}
}

// nextGroupEvent returns c's next group event of chatID.
func nextGroupEvent(t *testing.T, c *client.Client, chatID string) wire.ServerFrame {
	t.Helper()
	deadline := time.Now().Add(wait)
	for {
		f, err := servertest.NextFrame(c, wire.TypeGroup, time.Until(deadline))
		if err != nil {
			t.Fatalf("group event of %s: %v", chatID, err)
		}
		if f.ChatID == chatID && f.Change == wire.ChangeDeleted {
			return f
		}
	}
}
