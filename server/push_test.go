package server_test

import (
	"fmt"
	"testing"
	"time"

	"github.com/tern-im/tern/client"
	"github.com/tern-im/tern/push"
	"github.com/tern-im/tern/push/fcm"
	"github.com/tern-im/tern/push/fcm/fcmtest"
	"github.com/tern-im/tern/push/webpush/webpushtest"
	"github.com/tern-im/tern/server"
	"github.com/tern-im/tern/server/servertest"
	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// pushWait bounds waits for a push: the delay, a poll, and the FCM SDK's
// own retries of a 503 (0, 1, 2 and 4 s) on a busy machine.
const pushWait = 30 * time.Second

// pushConfig is a node that pushes one second after a device went missing
// and looks for due pushes often, so that the tests do not wait long.
func pushConfig() server.Config {
	return server.Config{PushDelay: time.Second, PushPoll: 100 * time.Millisecond}
}

func fcmNotifier(t *testing.T, f *fcmtest.Server) push.Notifier {
	t.Helper()
	n, err := fcm.New(t.Context(), fcm.Config{CredentialsFile: f.CredentialsFile(), Endpoint: f.Endpoint()})
	if err != nil {
		t.Fatal(err)
	}
	return n
}

// eventually polls cond until it holds, and fails the test with what cond
// last said if pushWait passes first. The conditions here are in stores
// and fakes that signal nothing, so polling is the only way to wait.
func eventually(t *testing.T, cond func() (bool, string)) {
	t.Helper()
	deadline := time.Now().Add(pushWait)
	for {
		ok, why := cond()
		if ok {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("after %v: %s", pushWait, why)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// waitQueued waits until the store's push queue holds want pushes (0:
// every wake was sent, dropped or cancelled).
func waitQueued(t *testing.T, st store.Store, want int) {
	t.Helper()
	eventually(t, func() (bool, string) {
		n, err := st.PendingPushes(t.Context())
		if err != nil {
			t.Fatal(err)
		}
		return n == want, fmt.Sprintf("%d pushes queued, want %d", n, want)
	})
}

func register(t *testing.T, c *client.Client, token string) {
	t.Helper()
	if err := c.RegisterPush(t.Context(), push.ProviderFCM, token); err != nil {
		t.Fatal(err)
	}
}

// TestPushFCM drives the FCM path end to end, through the Firebase SDK and
// its OAuth flow, to a local fake of FCM, on one embedded node and on a
// three-node cluster (pushes queued by one node may be sent by another):
// a burst to an offline device makes one push with the first message's
// payload; a connected device, and one that connects within the delay,
// get none; a token FCM calls unregistered is forgotten; a 503 is retried.
func TestPushFCM(t *testing.T) {
	for _, cluster := range []bool{false, true} {
		name := "embedded"
		if cluster {
			name = "cluster"
		}
		t.Run(name, func(t *testing.T) {
			f := fcmtest.Start(t)
			o := servertest.Options{Server: pushConfig()}
			o.Engines.Push = fcmNotifier(t, f)
			nodes := []*servertest.Node{servertest.Start(t, o)}
			if cluster {
				nodes = servertest.StartCluster(t, 3, o)
			}
			at := func(i int) *servertest.Node { return nodes[i%len(nodes)] }
			ctx := t.Context()
			alice := at(0).Login(t, "+14155550301", "alice")
			carol := at(1).Login(t, "+14155550303", "carol") // connected: never pushed
			register(t, carol, "tok-carol")
			bob := at(2).LoginOnly(t, "+14155550302", "bob") // signed in, socket closed
			register(t, bob, "tok-bob")

			first, err := alice.Send(ctx, carol.Session().UserID, text("here"))
			if err != nil {
				t.Fatal(err)
			}
			servertest.Next(t, carol, wire.TypeMessage, wait)
			var ids []string
			for _, s := range []string{"one", "two", "three"} {
				r, err := alice.Send(ctx, bob.Session().UserID, text(s))
				if err != nil {
					t.Fatal(err)
				}
				ids = append(ids, r.MsgID)
			}
			got := f.WaitDelivered(t, 1, pushWait)[0]
			waitQueued(t, at(0).Store, 0)
			if n := len(f.SentTo("tok-bob")); n != 1 {
				t.Fatalf("%d pushes to bob for a burst of 3, want 1", n)
			}
			d := got.Data
			if got.Token != "tok-bob" || d["type"] != "message" || d["chat_id"] != store.DirectChatID(alice.Session().UserID, bob.Session().UserID) ||
				d["msg_id"] != ids[0] || d["sender"] != alice.Session().UserID || d["text"] != "" {
				t.Fatalf("push %+v, want bob's, naming the burst's first message, no text", got)
			}
			if got.Android.CollapseKey != d["chat_id"] || got.Android.Priority != "high" || got.HasNotification() {
				t.Fatalf("android %+v (notification %v): want the chat as collapse key, high priority, data only", got.Android, got.HasNotification())
			}
			if n := f.Attempts("tok-carol"); n != 0 {
				t.Fatalf("carol, connected, was pushed %d times (after %s)", n, first.MsgID)
			}

			// Dave connects within the delay: no push. Erin, offline and
			// pushed after him, shows his would have been sent by then
			// (claims take the earliest due first).
			dave := at(1).LoginOnly(t, "+14155550304", "dave")
			register(t, dave, "tok-dave")
			erin := at(2).LoginOnly(t, "+14155550305", "erin")
			register(t, erin, "tok-erin")
			if _, err := alice.Send(ctx, dave.Session().UserID, text("quick")); err != nil {
				t.Fatal(err)
			}
			if err := dave.Connect(ctx); err != nil {
				t.Fatal(err)
			}
			servertest.Next(t, dave, wire.TypeMessage, wait)
			if _, err := alice.Send(ctx, erin.Session().UserID, text("later")); err != nil {
				t.Fatal(err)
			}
			f.WaitFor(t, pushWait, func(ms []fcmtest.Message) bool {
				for _, m := range ms {
					if m.Token == "tok-erin" && m.Status == 200 {
						return true
					}
				}
				return false
			})
			waitQueued(t, at(0).Store, 0)
			if n := f.Attempts("tok-dave"); n != 0 {
				t.Fatalf("dave connected within the delay and was pushed %d times", n)
			}

			// A token FCM says is gone is forgotten; a 503 is retried.
			frank := at(0).LoginOnly(t, "+14155550306", "frank")
			register(t, frank, "gone-frank")
			gina := at(1).LoginOnly(t, "+14155550307", "gina")
			register(t, gina, "tok-gina")
			f.FailNext("tok-gina", 503, 2)
			for _, to := range []*client.Client{frank, gina} {
				if _, err := alice.Send(ctx, to.Session().UserID, text("x")); err != nil {
					t.Fatal(err)
				}
			}
			f.WaitFor(t, pushWait, func(ms []fcmtest.Message) bool {
				for _, m := range ms {
					if m.Token == "tok-gina" && m.Status == 200 {
						return true
					}
				}
				return false
			})
			if n := f.Attempts("tok-gina"); n != 3 {
				t.Fatalf("gina's push took %d attempts, want 3 (two 503s)", n)
			}
			waitQueued(t, at(0).Store, 0)
			dev, err := at(0).Store.Device(ctx, frank.Session().DeviceID)
			if err != nil || dev.PushToken != "" || f.Attempts("gone-frank") != 1 {
				t.Fatalf("frank's unregistered token: %q after %d attempts (%v), want it forgotten after 1", dev.PushToken, f.Attempts("gone-frank"), err)
			}
		})
	}
}

// TestPushPreview: with previews on, the push carries the text.
func TestPushPreview(t *testing.T) {
	f := fcmtest.Start(t)
	cfg := pushConfig()
	cfg.PushPreview = true
	o := servertest.Options{Server: cfg}
	o.Engines.Push = fcmNotifier(t, f)
	n := servertest.Start(t, o)
	alice := n.Login(t, "+14155550311", "alice")
	bob := n.LoginOnly(t, "+14155550312", "bob")
	register(t, bob, "tok-bob")
	if _, err := alice.Send(t.Context(), bob.Session().UserID, text("see you at 8")); err != nil {
		t.Fatal(err)
	}
	if got := f.WaitDelivered(t, 1, pushWait)[0]; got.Data["text"] != "see you at 8" {
		t.Fatalf("push data %v, want the text", got.Data)
	}
}

// TestPushQueueSurvivesNode: a push queued by a node that stops before it
// is due is sent by another node of the cluster.
func TestPushQueueSurvivesNode(t *testing.T) {
	f := fcmtest.Start(t)
	cfg := pushConfig()
	cfg.PushDelay = 3 * time.Second
	o := servertest.Options{Server: cfg}
	o.Engines.Push = fcmNotifier(t, f)
	nodes := servertest.StartCluster(t, 2, o)
	alice := nodes[0].Login(t, "+14155550321", "alice")
	bob := nodes[1].LoginOnly(t, "+14155550322", "bob")
	register(t, bob, "tok-bob")
	if _, err := alice.Send(t.Context(), bob.Session().UserID, text("hi")); err != nil {
		t.Fatal(err)
	}
	// The wake is in the store once alice's node counted it queued.
	waitQueued(t, nodes[1].Store, 1)
	_ = alice.Close()
	nodes[0].Stop()
	if got := f.WaitDelivered(t, 1, pushWait)[0]; got.Token != "tok-bob" {
		t.Fatalf("push to %q, want bob's", got.Token)
	}
}

// TestWebPush: a browser's subscription gets an encrypted, VAPID-signed
// push (the receiver decrypts it and checks the signature with the key of
// GET /v1/push/vapid); a subscription the push service calls gone is
// forgotten; bad subscriptions are refused.
func TestWebPush(t *testing.T) {
	r := webpushtest.Start(t)
	cfg := pushConfig()
	cfg.PushCooldown = -1 // every event pushes: the second message tests the 410
	o := servertest.Options{Server: cfg}
	o.Engines.WebPushContact = "ops@tern.test"
	o.Engines.WebPushClient = r.Client()
	n := servertest.Start(t, o)
	ctx := t.Context()
	alice := n.Login(t, "+14155550331", "alice")
	key, err := alice.VAPIDKey(ctx)
	if err != nil || key == "" {
		t.Fatalf("VAPID key %q, %v", key, err)
	}
	r.ExpectVAPID(key)
	r.ExpectSubscriber("mailto:ops@tern.test")

	bob := n.LoginOnly(t, "+14155550332", "bob")
	sub := r.NewSubscription(t)
	wsub := wire.PushSubscription{Endpoint: sub.Endpoint, Keys: wire.PushSubscriptionKeys{P256DH: sub.Keys.P256dh, Auth: sub.Keys.Auth}}
	if err := bob.RegisterWebPush(ctx, wsub); err != nil {
		t.Fatal(err)
	}
	m, err := alice.Send(ctx, bob.Session().UserID, text("hello"))
	if err != nil {
		t.Fatal(err)
	}
	got := r.WaitReceivedBy(t, sub, 1, pushWait)[0]
	if got.Err != nil || got.Payload["type"] != "message" || got.Payload["msg_id"] != m.MsgID ||
		got.Payload["sender"] != alice.Session().UserID || got.Urgency != "high" || got.Topic == "" {
		t.Fatalf("web push %v", got)
	}

	// Gone: the subscription is forgotten.
	r.Gone(sub)
	if _, err := alice.Send(ctx, bob.Session().UserID, text("again")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() (bool, string) {
		dev, err := n.Store.Device(ctx, bob.Session().DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		return dev.PushToken == "" && r.Attempts(sub) == 2,
			fmt.Sprintf("subscription after 410: %q, %d attempts", dev.PushToken, r.Attempts(sub))
	})

	for _, bad := range []wire.PushRequest{
		{Provider: "webpush", Subscription: &wire.PushSubscription{Endpoint: "http://push.example/x", Keys: wsub.Keys}},
		{Provider: "webpush", Subscription: &wire.PushSubscription{Endpoint: sub.Endpoint, Keys: wire.PushSubscriptionKeys{P256DH: "AAAA", Auth: sub.Keys.Auth}}},
		{Provider: "webpush", Token: "x"},
		{Provider: "fcm", Subscription: &wsub},
		{Provider: "pigeon", Token: "x"},
	} {
		err := bob.Do(ctx, "PUT", "/v1/devices/current/push", bad, nil)
		if errCode(err) != wire.CodeBadRequest {
			t.Errorf("PUT push %+v: %v, want bad_request", bad, err)
		}
	}
	if err := bob.UnregisterPush(ctx); err != nil {
		t.Fatal(err)
	}
}
