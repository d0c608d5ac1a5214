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
			resub("contacts, not a contact", false, false)
			if err := bobREST.SetContacts(ctx, []string{"+14155550601"}); err != nil {
				t.Fatal(err)
			}
			resub("contacts, a contact", false, true)

			// Hiding your own last seen hides bob's from you.
			patch(alice, wire.PrivacyPatch{LastSeen: str("nobody")})
			resub("alice hides hers", false, false)
			patch(alice, wire.PrivacyPatch{LastSeen: str("everyone")})

			// bob hides last seen and online: his coming and going is not
			// even news to alice.
			patch(bobREST, wire.PrivacyPatch{LastSeen: str("nobody"), Online: str("same_as_last_seen")})
			resub("bob hides all", false, false)
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
			resub("bob online, online shown", true, false)
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
