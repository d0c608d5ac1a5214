package server_test

import (
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/wire"
)

// nextPresence waits for the next presence frame about user.
func nextPresence(t *testing.T, c *client.Client, user string) wire.ServerFrame {
	t.Helper()
	deadline := time.Now().Add(wait)
	for time.Now().Before(deadline) {
		f := servertest.Next(t, c, wire.TypePresence, time.Until(deadline))
		if f.UserID == user {
			return f
		}
	}
	t.Fatalf("no presence frame about %s", user)
	return wire.ServerFrame{}
}

func wantPresence(t *testing.T, what string, f wire.ServerFrame, online, lastSeen bool) {
	t.Helper()
	if f.Online != online || (f.LastSeen != nil) != lastSeen {
		ls := "null"
		if f.LastSeen != nil {
			ls = *f.LastSeen
		}
		t.Fatalf("%s: presence online %v last_seen %s; want online %v, last_seen shown %v", what, f.Online, ls, online, lastSeen)
	}
	if f.LastSeen != nil {
		if _, err := time.Parse(time.RFC3339, *f.LastSeen); err != nil {
			t.Fatalf("%s: last_seen %q is not RFC 3339", what, *f.LastSeen)
		}
	}
}

// TestPresence: online and last seen reach a follower on another node, and
// every privacy setting hides what it says, both ways.
func TestPresence(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			nodes := d.start(t, server.Config{})
			ctx := ctxT(t)
			alice := nodes[0].Login(t, "+14155550601", "a")
			bob := nodes[len(nodes)-1].LoginOnly(t, "+14155550602", "b")
			bID := bob.Session().UserID

			// Never connected: offline, no last seen.
			if err := alice.PresenceSub(ctx, []string{bID, "u-nobody"}); err != nil {
				t.Fatal(err)
			}
			wantPresence(t, "never connected", nextPresence(t, alice, bID), false, false)

			// bob comes online on another node, then goes.
			if err := bob.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			wantPresence(t, "bob connected", nextPresence(t, alice, bID), true, true)
			if err := bob.Close(); err != nil {
				t.Fatal(err)
			}
			wantPresence(t, "bob gone", nextPresence(t, alice, bID), false, true)
			resub := func(what string, online, lastSeen bool) {
				t.Helper()
				if err := alice.PresenceSub(ctx, []string{bID}); err != nil {
					t.Fatal(err)
				}
				wantPresence(t, what, nextPresence(t, alice, bID), online, lastSeen)
			}
			resub("offline, everyone", false, true)

			// A change of privacy, address book or blocks reaches a
			// follower at once (no presence change needed); a resubscribe
			// answers the same.
			pushed := func(what string, online, lastSeen bool) {
				t.Helper()
				wantPresence(t, what, nextPresence(t, alice, bID), online, lastSeen)
			}
			// bob's last seen for contacts only: alice is not one, then is.
			bobREST := nodes[0].LoginOnly(t, "+14155550602", "b-laptop")
			patch := func(c *client.Client, p wire.PrivacyPatch) {
				t.Helper()
				if _, err := c.UpdatePrivacy(ctx, p); err != nil {
					t.Fatal(err)
				}
			}
			str := func(s string) *string { return &s }
			patch(bobREST, wire.PrivacyPatch{LastSeen: str("contacts")})
			pushed("contacts, not a contact", false, false)
			resub("contacts, not a contact", false, false)
			if err := bobREST.SetContacts(ctx, []string{"+14155550601"}); err != nil {
				t.Fatal(err)
			}
			pushed("contacts, a contact", false, true)

			// Hiding your own last seen hides bob's from you.
			patch(alice, wire.PrivacyPatch{LastSeen: str("nobody")})
			pushed("alice hides hers", false, false)
			resub("alice hides hers", false, false)
			patch(alice, wire.PrivacyPatch{LastSeen: str("everyone")})
			pushed("alice shows hers", false, true)

			// bob hides last seen and online: his coming and going is not
			// even news to alice.
			patch(bobREST, wire.PrivacyPatch{LastSeen: str("nobody"), Online: str("same_as_last_seen")})
			pushed("bob hides all", false, false)
			bob2 := nodes[len(nodes)-1].LoginOnly(t, "+14155550602", "b-tablet")
			if err := bob2.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			servertest.None(t, alice, wire.TypePresence, 500*time.Millisecond)
			resub("bob online, hidden", false, false)

			// Online visible to everyone while last seen stays hidden:
			// alice sees him online, and offline when he goes, with no
			// last seen either time.
			patch(bobREST, wire.PrivacyPatch{Online: str("everyone")})
			pushed("bob online, online shown", true, false)
			if err := bob2.Close(); err != nil {
				t.Fatal(err)
			}
			wantPresence(t, "bob gone, online shown", nextPresence(t, alice, bID), false, false)
		})
	}
}

// TestPresenceAnswerOnce: a change that happens just before a presence_sub
// is in its answer, and is not told a second time after it (a client could
// not tell the repeat from a later change).
func TestPresenceAnswerOnce(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			nodes := d.start(t, server.Config{})
			ctx := ctxT(t)
			alice := nodes[0].Login(t, "+14155550611", "a")
			for i := 0; i < 4; i++ {
				bob := nodes[0].LoginOnly(t, "+14155550612", "b")
				bID := bob.Session().UserID
				if err := bob.Connect(ctx); err != nil {
					t.Fatal(err)
				}
				if err := alice.PresenceSub(ctx, []string{bID}); err != nil {
					t.Fatal(err)
				}
				// bob's socket is open before his node has him online: the
				// answer may say offline and the change follow it, but
				// nothing is said twice.
				f := nextPresence(t, alice, bID)
				if !f.Online {
					f = nextPresence(t, alice, bID)
				}
				wantPresence(t, "bob online", f, true, true)
				servertest.None(t, alice, wire.TypePresence, 300*time.Millisecond)
				if err := bob.Close(); err != nil {
					t.Fatal(err)
				}
				wantPresence(t, "bob gone", nextPresence(t, alice, bID), false, true)
				if err := alice.PresenceSub(ctx, nil); err != nil {
					t.Fatal(err)
				}
			}
		})
	}
}

// TestPresenceFollowsBlocksAndSettings: two users online, each following
// the other on another node; a block, an unblock and a privacy change are
// seen by both at once, with no presence change to carry them.
func TestPresenceFollowsBlocksAndSettings(t *testing.T) {
	for _, d := range deployments {
		t.Run(d.name, func(t *testing.T) {
			nodes := d.start(t, server.Config{})
			ctx := ctxT(t)
			alice := nodes[0].Login(t, "+14155550621", "a")
			bob := nodes[len(nodes)-1].Login(t, "+14155550622", "b")
			aID, bID := alice.Session().UserID, bob.Session().UserID
			both := func(what string, online, lastSeen bool) {
				t.Helper()
				wantPresence(t, what+" (alice's view)", nextPresence(t, alice, bID), online, lastSeen)
				wantPresence(t, what+" (bob's view)", nextPresence(t, bob, aID), online, lastSeen)
			}
			for _, p := range []struct {
				c    *client.Client
				user string
			}{{alice, bID}, {bob, aID}} {
				// Each may answer offline before the other's node has it
				// online; the change follows.
				if err := p.c.PresenceSub(ctx, []string{p.user}); err != nil {
					t.Fatal(err)
				}
				if f := nextPresence(t, p.c, p.user); !f.Online {
					wantPresence(t, "online", nextPresence(t, p.c, p.user), true, true)
				}
			}

			if err := bob.Block(ctx, aID); err != nil {
				t.Fatal(err)
			}
			both("blocked", false, false)
			if err := bob.Unblock(ctx, aID); err != nil {
				t.Fatal(err)
			}
			both("unblocked", true, true)
			// Reporting with a block hides as a block does.
			if _, err := alice.Report(ctx, wire.ReportRequest{UserID: bID, Reason: "spam", Block: true}); err != nil {
				t.Fatal(err)
			}
			both("reported and blocked", false, false)
			if err := alice.Unblock(ctx, bID); err != nil {
				t.Fatal(err)
			}
			both("unblocked again", true, true)

			// alice hides everything: bob no longer sees her online, and
			// she sees no one's.
			hide := "nobody"
			same := "same_as_last_seen"
			if _, err := alice.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &hide, Online: &same}); err != nil {
				t.Fatal(err)
			}
			both("alice hides all", false, false)
			every := "everyone"
			if _, err := alice.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &every, Online: &every}); err != nil {
				t.Fatal(err)
			}
			both("alice shows all", true, true)
			// Online, last seen hidden: bob sees her online without a last
			// seen, and she sees no one's.
			if _, err := alice.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &hide}); err != nil {
				t.Fatal(err)
			}
			both("alice hides her last seen", true, false)
			if _, err := alice.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &every}); err != nil {
				t.Fatal(err)
			}
			both("alice shows her last seen", true, true)
			// A patch that changes nothing visible says nothing.
			if _, err := alice.UpdatePrivacy(ctx, wire.PrivacyPatch{LastSeen: &every}); err != nil {
				t.Fatal(err)
			}
			servertest.None(t, alice, wire.TypePresence, 300*time.Millisecond)
			servertest.None(t, bob, wire.TypePresence, 100*time.Millisecond)
		})
	}
}
