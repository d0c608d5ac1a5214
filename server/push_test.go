package server_test

import (
	"context"
	"fmt"
	"sync"
	"sync/atomic"
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
	cfg.PushCooldown = -1          // every event pushes: the second message tests the 410
	cfg.WebPushAllowPrivate = true // the receiver is on loopback
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

	// Gone: the subscription is forgotten. First the node must have
	// finished the first push: a message queued while it is still being
	// sent rides on it (one wake per burst), and would never be pushed
	// on its own. Under load that window is long.
	waitQueued(t, n.Store, 0)
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

// notifierFunc is a push.Notifier that calls itself.
type notifierFunc func(ctx context.Context, n push.Notification) error

func (f notifierFunc) Notify(ctx context.Context, n push.Notification) error { return f(ctx, n) }

// sentTokens records the tokens a notifierFunc was called with.
type sentTokens struct {
	mu sync.Mutex
	n  map[string]int
}

func (s *sentTokens) add(tok string) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.n == nil {
		s.n = map[string]int{}
	}
	s.n[tok]++
}

func (s *sentTokens) count(tok string) int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.n[tok]
}

// TestPushUnregisteredKeepsNewToken: the push service calls a token gone
// after the device registered a new one (the app reinstalled while the
// push was on its way): the new one stays.
func TestPushUnregisteredKeepsNewToken(t *testing.T) {
	var (
		sent     sentTokens
		bob      atomic.Pointer[client.Client]
		regErr   atomic.Value
		answered = make(chan struct{})
	)
	notify := notifierFunc(func(ctx context.Context, n push.Notification) error {
		sent.add(n.Token)
		if n.Token != "tok-old" {
			return nil
		}
		defer close(answered)
		if err := bob.Load().RegisterPush(ctx, push.ProviderFCM, "tok-new"); err != nil {
			regErr.Store(err)
		}
		return fmt.Errorf("fake: %w", push.ErrUnregistered)
	})
	o := servertest.Options{Server: pushConfig()}
	o.Engines.Push = notify
	n := servertest.Start(t, o)
	ctx := t.Context()
	alice := n.Login(t, "+14155550341", "alice")
	b := n.LoginOnly(t, "+14155550342", "bob")
	bob.Store(b)
	register(t, b, "tok-old")
	if _, err := alice.Send(ctx, b.Session().UserID, text("hi")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-answered:
	case <-time.After(pushWait):
		t.Fatal("no push to the old token")
	}
	if err, _ := regErr.Load().(error); err != nil {
		t.Fatalf("registering the new token: %v", err)
	}
	// The push is done once its outcome, and the token's, are settled.
	waitQueued(t, n.Store, 0)
	dev, err := n.Store.Device(ctx, b.Session().DeviceID)
	if err != nil || dev.PushProvider != push.ProviderFCM || dev.PushToken != "tok-new" {
		t.Fatalf("bob's registration %q %q (%v), want the new token kept", dev.PushProvider, dev.PushToken, err)
	}
	if c := sent.count("tok-old"); c != 1 {
		t.Fatalf("%d pushes to the old token, want 1", c)
	}
}

// TestPushShutdown: a clean stop waits for the push it is sending to be
// answered and recorded, and moves the wakes still in memory to the
// store's queue, so that the node started again on the store sends them.
func TestPushShutdown(t *testing.T) {
	var (
		sent     sentTokens
		entered  = make(chan struct{}, 1)
		release  = make(chan struct{})
		finished atomic.Bool
	)
	notify := notifierFunc(func(ctx context.Context, n push.Notification) error {
		sent.add(n.Token)
		if n.Token == "tok-held" {
			select {
			case entered <- struct{}{}:
			default:
			}
			<-release // whatever ctx says: a slow push service
			finished.Store(true)
		}
		return nil
	})
	o := servertest.Options{Dir: t.TempDir(), Server: pushConfig()}
	o.Engines.Push = notify
	n1 := servertest.Start(t, o)
	ctx := t.Context()
	alice := n1.Login(t, "+14155550351", "alice")
	bob := n1.LoginOnly(t, "+14155550352", "bob")
	register(t, bob, "tok-held")
	carol := n1.LoginOnly(t, "+14155550353", "carol")
	register(t, carol, "tok-carol")
	if _, err := alice.Send(ctx, bob.Session().UserID, text("held")); err != nil {
		t.Fatal(err)
	}
	select {
	case <-entered:
	case <-time.After(pushWait):
		t.Fatal("bob's push was not sent")
	}
	// A wake for carol is in memory, not yet in the store, when the node
	// stops.
	waitQueued(t, n1.Store, 1) // bob's, being sent
	server.PendWake(n1.Srv, carol.Session().DeviceID, "chat-c", "msg-c")

	stopped := make(chan struct{})
	go func() {
		defer close(stopped)
		sctx, cancel := context.WithTimeout(context.Background(), pushWait)
		defer cancel()
		n1.Srv.Shutdown(sctx)
	}()
	waitQueued(t, n1.Store, 2) // carol's wake, flushed by the stop
	close(release)
	select {
	case <-stopped:
	case <-time.After(pushWait):
		t.Fatal("Shutdown did not return")
	}
	if !finished.Load() {
		t.Fatal("Shutdown returned while bob's push was being sent")
	}
	if q, err := n1.Store.PendingPushes(ctx); err != nil || q != 1 {
		t.Fatalf("after the stop %d pushes queued (%v), want carol's only: bob's was recorded as sent", q, err)
	}
	n1.Stop()

	n2 := servertest.Start(t, o)
	eventually(t, func() (bool, string) {
		return sent.count("tok-carol") == 1, fmt.Sprintf("%d pushes to carol after the restart", sent.count("tok-carol"))
	})
	waitQueued(t, n2.Store, 0)
	if c := sent.count("tok-held"); c != 1 {
		t.Fatalf("bob was pushed %d times, want once", c)
	}
}

// TestWebPushPrivateEndpoint: a subscription whose endpoint is on a
// loopback or private address is refused, and one that leads there by the
// time it is pushed (a name that resolves elsewhere now) is forgotten at
// once, not retried.
func TestWebPushPrivateEndpoint(t *testing.T) {
	r := webpushtest.Start(t)
	o := servertest.Options{Server: pushConfig()}
	o.Engines.WebPushContact = "ops@tern.test" // the node's own client: public addresses only
	n := servertest.Start(t, o)
	ctx := t.Context()
	alice := n.Login(t, "+14155550361", "alice")
	bob := n.LoginOnly(t, "+14155550362", "bob")
	sub := r.NewSubscription(t) // https://127.0.0.1:port/...
	keys := wire.PushSubscriptionKeys{P256DH: sub.Keys.P256dh, Auth: sub.Keys.Auth}
	for _, endpoint := range []string{sub.Endpoint, "https://10.1.2.3/push/x", "https://[::1]/push/x", "https://localhost/push/x"} {
		err := bob.RegisterWebPush(ctx, wire.PushSubscription{Endpoint: endpoint, Keys: keys})
		if errCode(err) != wire.CodeBadRequest {
			t.Errorf("PUT push with endpoint %s: %v, want bad_request", endpoint, err)
		}
	}

	// Stored as if its host had resolved to a public address when it was
	// registered.
	if err := n.Store.SetPush(ctx, bob.Session().DeviceID, push.ProviderWebPush, sub.Token()); err != nil {
		t.Fatal(err)
	}
	if _, err := alice.Send(ctx, bob.Session().UserID, text("hi")); err != nil {
		t.Fatal(err)
	}
	eventually(t, func() (bool, string) {
		dev, err := n.Store.Device(ctx, bob.Session().DeviceID)
		if err != nil {
			t.Fatal(err)
		}
		q, err := n.Store.PendingPushes(ctx)
		if err != nil {
			t.Fatal(err)
		}
		return dev.PushToken == "" && q == 0, fmt.Sprintf("subscription %q, %d pushes queued", dev.PushToken, q)
	})
	if a := r.Attempts(sub); a != 0 {
		t.Fatalf("%d requests reached the loopback endpoint", a)
	}
}
