// Package storetest is the conformance suite of store.Store: every adapter
// runs Run (and, if it persists to a directory, RunReopen) in its tests, so
// that all adapters keep the guarantees written in package store's docs.
//
// The suite uses only the store interface. It checks outcomes, never
// timings, so a slow adapter is slow but not flaky. Times it stores are
// whole milliseconds in UTC, and it compares message bodies as JSON values,
// so an adapter may keep times at millisecond precision and bodies in any
// JSON-equivalent form.
package storetest

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"reflect"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// Run runs the suite. newStore must return a new, empty store for each call
// and close it when the test ends (t.Cleanup).
func Run(t *testing.T, newStore func(t *testing.T) store.Store) {
	t.Run("Users", func(t *testing.T) { testUsers(t, newStore) })
	t.Run("Devices", func(t *testing.T) { testDevices(t, newStore) })
	t.Run("Codes", func(t *testing.T) { testCodes(t, newStore) })
	t.Run("Secrets", func(t *testing.T) { testSecrets(t, newStore) })
	t.Run("Messages", func(t *testing.T) { testMessages(t, newStore) })
	t.Run("Receipts", func(t *testing.T) { testReceipts(t, newStore) })
	t.Run("Chats", func(t *testing.T) { testChats(t, newStore) })
	t.Run("Groups", func(t *testing.T) { testGroups(t, newStore) })
	t.Run("GroupList", func(t *testing.T) { testGroupList(t, newStore) })
	t.Run("Marks", func(t *testing.T) { testMarks(t, newStore) })
	t.Run("Blocks", func(t *testing.T) { testBlocks(t, newStore) })
	t.Run("Reports", func(t *testing.T) { testReports(t, newStore) })
	t.Run("UserMarks", func(t *testing.T) { testUserMarks(t, newStore) })
	t.Run("Actions", func(t *testing.T) { testActions(t, newStore) })
	t.Run("MediaFiles", func(t *testing.T) { testMediaFiles(t, newStore) })
	t.Run("Pushes", func(t *testing.T) { testPushes(t, newStore) })
	t.Run("NodeReports", func(t *testing.T) { testNodeReports(t, newStore(t)) })
	t.Run("Leases", func(t *testing.T) { testLeases(t, newStore(t)) })
	t.Run("EchoToSender", func(t *testing.T) { testEchoToSender(t, newStore(t)) })
	t.Run("Businesses", func(t *testing.T) { testBusinesses(t, newStore) })
	runAdmin(t, newStore) // Admins, Bans, UserSearch
}

// base is the suite's clock: whole milliseconds, UTC.
var base = time.Date(2026, 3, 1, 12, 0, 0, 0, time.UTC)

func at(ms int64) time.Time { return base.Add(time.Duration(ms) * time.Millisecond) }

func ts(ms int64) int64 { return at(ms).UnixMilli() }

func must(t testing.TB, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

func wantErr(t testing.TB, err, target error, what string) {
	t.Helper()
	if !errors.Is(err, target) {
		t.Fatalf("%s: got error %v, want %v", what, err, target)
	}
}

// world is the cast most message tests use: alice with devices a1 and a2,
// bob with b1 and b2, carol with c1.
type world struct {
	s                      store.Store
	alice, bob, carol      string
	a1, a2, b1, b2, c1     string
	chatAB, chatAC, chatBC string
}

func newWorld(t *testing.T, s store.Store) *world {
	t.Helper()
	w := &world{s: s}
	w.alice = newUser(t, s, "+15550000001")
	w.bob = newUser(t, s, "+15550000002")
	w.carol = newUser(t, s, "+15550000003")
	w.a1 = newDevice(t, s, w.alice, "a1").ID
	w.a2 = newDevice(t, s, w.alice, "a2").ID
	w.b1 = newDevice(t, s, w.bob, "b1").ID
	w.b2 = newDevice(t, s, w.bob, "b2").ID
	w.c1 = newDevice(t, s, w.carol, "c1").ID
	w.chatAB = store.DirectChatID(w.alice, w.bob)
	w.chatAC = store.DirectChatID(w.alice, w.carol)
	w.chatBC = store.DirectChatID(w.bob, w.carol)
	return w
}

func newUser(t testing.TB, s store.Store, phone string) string {
	t.Helper()
	u, _, err := s.EnsureUser(t.Context(), phone, store.NewID(store.PrefixUser), base)
	must(t, err)
	return u.ID
}

func newDevice(t testing.TB, s store.Store, userID, name string) store.Device {
	t.Helper()
	d := store.Device{
		ID:             store.NewID(store.PrefixDevice),
		UserID:         userID,
		Name:           name,
		Platform:       "android",
		CreatedAt:      base,
		LastSeen:       base,
		RefreshHash:    []byte("refresh-" + name),
		RefreshExpires: at(30 * 24 * 3600 * 1000),
	}
	must(t, s.CreateDevice(t.Context(), d))
	return d
}

func body(text string) json.RawMessage {
	b, _ := json.Marshal(map[string]string{"text": text})
	return b
}

// direct builds the request of a direct message from (user, device) to
// user to, delivered to devices.
func direct(from, fromDevice, to, clientID string, ms int64, text string, devices ...string) store.SendRequest {
	members := []string{from, to}
	if from == to {
		members = members[:1]
	}
	return store.SendRequest{
		ClientID: clientID,
		Message: store.Message{
			ID:         store.NewID(store.PrefixMessage),
			ChatID:     store.DirectChatID(from, to),
			From:       from,
			FromDevice: fromDevice,
			TS:         ts(ms),
			Body:       body(text),
		},
		Kind:    "direct",
		Members: members,
		Devices: devices,
	}
}

func send(t testing.TB, s store.Store, req store.SendRequest) store.SendResult {
	t.Helper()
	r, err := s.Send(t.Context(), req)
	if err != nil {
		t.Fatalf("send %q from %s: %v", req.ClientID, req.Message.FromDevice, err)
	}
	return r
}

func inbox(t testing.TB, s store.Store, device string) ([]store.Event, int64) {
	t.Helper()
	evs, head, err := s.Inbox(t.Context(), device, 0, 10000)
	must(t, err)
	return evs, head
}

func ack(t testing.TB, s store.Store, device string, cursor int64) []store.Delivery {
	t.Helper()
	ds, err := s.Ack(t.Context(), device, cursor)
	if err != nil {
		t.Fatalf("ack %s up to %d: %v", device, cursor, err)
	}
	return ds
}

func cursors(evs []store.Event) []int64 {
	out := make([]int64, len(evs))
	for i, e := range evs {
		out[i] = e.Cursor
	}
	return out
}

func span(from, to int64) []int64 {
	var out []int64
	for i := from; i <= to; i++ {
		out = append(out, i)
	}
	return out
}

func jsonEqual(a, b json.RawMessage) bool {
	var x, y any
	if json.Unmarshal(a, &x) != nil || json.Unmarshal(b, &y) != nil {
		return bytes.Equal(a, b)
	}
	return reflect.DeepEqual(x, y)
}

func diffMessage(got, want store.Message) string {
	switch {
	case got.ID != want.ID:
		return fmt.Sprintf("ID %q, want %q", got.ID, want.ID)
	case got.ChatID != want.ChatID:
		return fmt.Sprintf("ChatID %q, want %q", got.ChatID, want.ChatID)
	case got.Seq != want.Seq:
		return fmt.Sprintf("Seq %d, want %d", got.Seq, want.Seq)
	case got.From != want.From || got.FromDevice != want.FromDevice:
		return fmt.Sprintf("From %s/%s, want %s/%s", got.From, got.FromDevice, want.From, want.FromDevice)
	case got.TS != want.TS:
		return fmt.Sprintf("TS %d, want %d", got.TS, want.TS)
	case got.ReplyTo != want.ReplyTo:
		return fmt.Sprintf("ReplyTo %q, want %q", got.ReplyTo, want.ReplyTo)
	case !jsonEqual(got.Body, want.Body):
		return fmt.Sprintf("Body %s, want %s", got.Body, want.Body)
	}
	return ""
}

func checkMessage(t testing.TB, what string, got, want store.Message) {
	t.Helper()
	if d := diffMessage(got, want); d != "" {
		t.Fatalf("%s: %s", what, d)
	}
}

// byDevice groups deliveries by device and fails on a delivery whose
// event has no cursor or the wrong payload for its kind.
func byDevice(t testing.TB, ds []store.Delivery) map[string][]store.Event {
	t.Helper()
	m := map[string][]store.Event{}
	for _, d := range ds {
		e := d.Event
		if e.Cursor <= 0 {
			t.Fatalf("delivery to %s has cursor %d", d.DeviceID, e.Cursor)
		}
		switch e.Kind {
		case store.EventMessage:
			if e.Message == nil || e.Receipt != nil {
				t.Fatalf("message event to %s: Message %v, Receipt %v", d.DeviceID, e.Message, e.Receipt)
			}
		case store.EventReceipt:
			if e.Receipt == nil || e.Message != nil {
				t.Fatalf("receipt event to %s: Message %v, Receipt %v", d.DeviceID, e.Message, e.Receipt)
			}
		default:
			t.Fatalf("delivery to %s has kind %q", d.DeviceID, e.Kind)
		}
		m[d.DeviceID] = append(m[d.DeviceID], e)
	}
	return m
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	slices.Sort(keys)
	return keys
}

func sorted(s []string) []string {
	s = slices.Clone(s)
	slices.Sort(s)
	return s
}

// wantReceipt is a receipt the test expects, minus its time.
type wantReceipt struct {
	chatID string
	status string
	by     string
	msgIDs []string
}

// checkReceipts checks that ds are exactly one receipt per (device, want):
// every device in devices gets every receipt in wants, nothing else.
func checkReceipts(t testing.TB, what string, ds []store.Delivery, devices []string, wants ...wantReceipt) {
	t.Helper()
	got := byDevice(t, ds)
	if len(wants) == 0 {
		devices = nil
	}
	if !slices.Equal(sortedKeys(got), sorted(devices)) {
		t.Fatalf("%s: receipts went to %v, want %v", what, sortedKeys(got), sorted(devices))
	}
	for dev, evs := range got {
		if len(evs) != len(wants) {
			t.Fatalf("%s: %d receipts to %s, want %d", what, len(evs), dev, len(wants))
		}
		for _, w := range wants {
			i := slices.IndexFunc(evs, func(e store.Event) bool {
				return e.Kind == store.EventReceipt && e.Receipt.ChatID == w.chatID
			})
			if i < 0 {
				t.Fatalf("%s: no receipt for chat %s to %s", what, w.chatID, dev)
			}
			r := evs[i].Receipt
			if r.Status != w.status || r.By != w.by || !slices.Equal(r.MsgIDs, w.msgIDs) {
				t.Fatalf("%s: receipt to %s is %s by %s for %v; want %s by %s for %v",
					what, dev, r.Status, r.By, r.MsgIDs, w.status, w.by, w.msgIDs)
			}
			if r.TS <= 0 {
				t.Fatalf("%s: receipt to %s has TS %d", what, dev, r.TS)
			}
		}
	}
}

// checkInboxHas checks that every delivery is in its device's inbox at its
// cursor, with the same content.
func checkInboxHas(t testing.TB, s store.Store, ds []store.Delivery) {
	t.Helper()
	for dev, want := range byDevice(t, ds) {
		evs, _ := inbox(t, s, dev)
		for _, w := range want {
			i := slices.IndexFunc(evs, func(e store.Event) bool { return e.Cursor == w.Cursor })
			if i < 0 {
				t.Fatalf("inbox of %s lacks delivered cursor %d (has %v)", dev, w.Cursor, cursors(evs))
			}
			g := evs[i]
			if g.Kind != w.Kind {
				t.Fatalf("inbox of %s at %d: kind %s, delivered %s", dev, w.Cursor, g.Kind, w.Kind)
			}
			switch w.Kind {
			case store.EventMessage:
				if g.Message == nil {
					t.Fatalf("inbox of %s at %d: message event without message", dev, w.Cursor)
				}
				checkMessage(t, fmt.Sprintf("inbox of %s at %d", dev, w.Cursor), *g.Message, *w.Message)
			case store.EventReceipt:
				if g.Receipt == nil || !reflect.DeepEqual(*g.Receipt, *w.Receipt) {
					t.Fatalf("inbox of %s at %d: receipt %+v, delivered %+v", dev, w.Cursor, g.Receipt, w.Receipt)
				}
			}
		}
	}
}

// canceled returns a context that is already done.
func canceled() context.Context {
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	return ctx
}

// race runs f(0) .. f(n-1) on n goroutines released at once, so that their
// calls overlap as much as the scheduler allows, and waits for all.
func race(n int, f func(i int)) {
	var ready, done sync.WaitGroup
	start := make(chan struct{})
	ready.Add(n)
	for i := range n {
		done.Go(func() {
			ready.Done()
			<-start
			f(i)
		})
	}
	ready.Wait()
	close(start)
	done.Wait()
}

// evID names an event for comparisons: a message by its id, a receipt by
// its status and message ids.
func evID(e store.Event) string {
	switch {
	case e.Message != nil:
		return e.Message.ID
	case e.Receipt != nil:
		return "receipt " + e.Receipt.Status + " " + strings.Join(e.Receipt.MsgIDs, ",")
	}
	return "?"
}

// checkInbox reads device's inbox and checks that it holds exactly want
// (evIDs) in order, at strictly increasing cursors, and that its head is at
// least the last of them. An adapter may keep one inbox per user, whose
// cursors skip what is not for the device (its own messages), so cursors
// are increasing, not necessarily consecutive.
func checkInbox(t testing.TB, s store.Store, device, what string, want ...string) ([]store.Event, int64) {
	t.Helper()
	evs, head := inbox(t, s, device)
	got := make([]string, len(evs))
	for i, e := range evs {
		got[i] = evID(e)
		if i > 0 && e.Cursor <= evs[i-1].Cursor {
			t.Fatalf("%s: cursors %v are not increasing", what, cursors(evs))
		}
	}
	if !slices.Equal(got, want) {
		t.Fatalf("%s: inbox holds %v, want %v", what, got, want)
	}
	if len(evs) > 0 && (evs[0].Cursor < 1 || head < evs[len(evs)-1].Cursor) {
		t.Fatalf("%s: cursors %v with head %d", what, cursors(evs), head)
	}
	return evs, head
}

// receiptID is the evID of a receipt.
func receiptID(status string, msgIDs ...string) string {
	return "receipt " + status + " " + strings.Join(msgIDs, ",")
}
