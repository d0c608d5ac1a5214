package embedded_test

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"runtime"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/store/embedded"
	"github.com/tern-im/tern/store/storetest"
)

func open(t testing.TB, dir string, opts embedded.Options) *embedded.Store {
	t.Helper()
	s, err := embedded.Open(context.Background(), dir, opts)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

func TestConformance(t *testing.T) {
	storetest.Run(t, func(t *testing.T) store.Store {
		// The suite checks behaviour, not durability: skipping fsync keeps
		// it fast. TestReopen and the benchmarks run with fsync.
		s := open(t, t.TempDir(), embedded.Options{NoSync: true})
		t.Cleanup(func() { s.Close() })
		return s
	})
}

func TestReopen(t *testing.T) {
	storetest.RunReopen(t, func(t *testing.T, dir string) store.Store {
		return open(t, dir, embedded.Options{})
	})
}

func TestClosed(t *testing.T) {
	s := open(t, t.TempDir(), embedded.Options{NoSync: true})
	ctx := t.Context()
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	if err := s.Close(); err != nil {
		t.Fatalf("second Close: %v", err)
	}
	if _, _, err := s.EnsureUser(ctx, "+15550000001", store.NewID(store.PrefixUser), time.Now()); !errors.Is(err, embedded.ErrClosed) {
		t.Fatalf("EnsureUser after Close: %v, want ErrClosed", err)
	}
	if _, err := s.Send(ctx, store.SendRequest{Message: store.Message{ID: "m", ChatID: "c", From: "u", FromDevice: "d"}}); !errors.Is(err, embedded.ErrClosed) {
		t.Fatalf("Send after Close: %v, want ErrClosed", err)
	}
	if _, _, err := s.Inbox(ctx, "d", 0, 10); !errors.Is(err, embedded.ErrClosed) {
		t.Fatalf("Inbox after Close: %v, want ErrClosed", err)
	}
	if err := s.Ping(ctx); !errors.Is(err, embedded.ErrClosed) {
		t.Fatalf("Ping after Close: %v, want ErrClosed", err)
	}
}

// TestCloseDrains checks that writes racing Close either fail with ErrClosed
// or are committed: none is lost after having been accepted.
func TestCloseDrains(t *testing.T) {
	dir := t.TempDir()
	s := open(t, dir, embedded.Options{NoSync: true})
	ctx := t.Context()
	const n = 2000
	var ok atomic.Int64
	done := make(chan struct{})
	for i := range n {
		go func() {
			defer func() { done <- struct{}{} }()
			_, created, err := s.EnsureUser(ctx, fmt.Sprintf("+1555%07d", i), store.NewID(store.PrefixUser), time.Now())
			switch {
			case err == nil && created:
				ok.Add(1)
			case err != nil && !errors.Is(err, embedded.ErrClosed):
				t.Errorf("EnsureUser racing Close: %v", err)
			}
		}()
	}
	// Close in the middle of the stream, not before or after it.
	for ok.Load() < 20 {
		runtime.Gosched()
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	for range n {
		<-done
	}
	s = open(t, dir, embedded.Options{NoSync: true})
	defer s.Close()
	var phones []string
	for i := range n {
		phones = append(phones, fmt.Sprintf("+1555%07d", i))
	}
	us, err := s.UsersByPhones(ctx, phones)
	if err != nil {
		t.Fatal(err)
	}
	if int64(len(us)) != ok.Load() {
		t.Fatalf("%d users acknowledged before Close, %d stored", ok.Load(), len(us))
	}
}

// TestSendSkipsDeletedDevices: a send that lists a device deleted since the
// caller looked it up must not recreate that device's inbox.
func TestSendSkipsDeletedDevices(t *testing.T) {
	s := open(t, t.TempDir(), embedded.Options{NoSync: true})
	defer s.Close()
	ctx := t.Context()
	var users [2]string
	var devs [2]string
	for i := range users {
		u, _, err := s.EnsureUser(ctx, fmt.Sprintf("+155500000%02d", i), store.NewID(store.PrefixUser), time.Now())
		if err != nil {
			t.Fatal(err)
		}
		users[i], devs[i] = u.ID, store.NewID(store.PrefixDevice)
		if err := s.CreateDevice(ctx, store.Device{ID: devs[i], UserID: u.ID}); err != nil {
			t.Fatal(err)
		}
	}
	if err := s.DeleteDevice(ctx, devs[1]); err != nil {
		t.Fatal(err)
	}
	r, err := s.Send(ctx, store.SendRequest{
		ClientID: "1",
		Message:  store.Message{ID: store.NewID(store.PrefixMessage), ChatID: store.DirectChatID(users[0], users[1]), From: users[0], FromDevice: devs[0], Body: []byte(`{}`)},
		Kind:     "direct",
		Members:  users[:],
		Devices:  []string{devs[1]},
	})
	if err != nil {
		t.Fatal(err)
	}
	if len(r.Deliveries) != 0 {
		t.Fatalf("send delivered to a deleted device: %+v", r.Deliveries)
	}
	if evs, head, err := s.Inbox(ctx, devs[1], 0, 10); err != nil || len(evs) != 0 || head != 0 {
		t.Fatalf("deleted device's inbox: %d events, head %d, %v", len(evs), head, err)
	}
}

func TestBackup(t *testing.T) {
	s := open(t, t.TempDir(), embedded.Options{NoSync: true})
	defer s.Close()
	ctx := t.Context()
	u, _, err := s.EnsureUser(ctx, "+15550000001", store.NewID(store.PrefixUser), time.Now())
	if err != nil {
		t.Fatal(err)
	}
	var buf bytes.Buffer
	n, err := s.Backup(ctx, &buf)
	if err != nil {
		t.Fatal(err)
	}
	if n != int64(buf.Len()) || n == 0 {
		t.Fatalf("Backup reported %d bytes, wrote %d", n, buf.Len())
	}
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, embedded.FileName), buf.Bytes(), 0o600); err != nil {
		t.Fatal(err)
	}
	r := open(t, dir, embedded.Options{NoSync: true})
	defer r.Close()
	got, err := r.UserByPhone(ctx, "+15550000001")
	if err != nil || got.ID != u.ID {
		t.Fatalf("restored backup: %+v, %v", got, err)
	}
}

// benchWorld is a population for the benchmarks: pairs of users with two
// devices each, chatting in direct chats.
type benchWorld struct {
	users   []string
	devices [][2]string
}

func newBenchWorld(b *testing.B, s *embedded.Store, pairs int) *benchWorld {
	ctx := b.Context()
	w := &benchWorld{}
	for i := range 2 * pairs {
		u, _, err := s.EnsureUser(ctx, fmt.Sprintf("+1666%07d", i), store.NewID(store.PrefixUser), time.Now())
		if err != nil {
			b.Fatal(err)
		}
		var ds [2]string
		for j := range ds {
			ds[j] = store.NewID(store.PrefixDevice)
			if err := s.CreateDevice(ctx, store.Device{ID: ds[j], UserID: u.ID, CreatedAt: time.Now()}); err != nil {
				b.Fatal(err)
			}
		}
		w.users = append(w.users, u.ID)
		w.devices = append(w.devices, ds)
	}
	return w
}

// req is message n of pair p: from one side's first device to the other
// side's two devices and the sender's second device, as the server sends.
func (w *benchWorld) req(p int, n int64, body []byte) store.SendRequest {
	from, to := 2*p+int(n%2), 2*p+1-int(n%2)
	return store.SendRequest{
		ClientID: fmt.Sprint(n),
		Message: store.Message{
			ID:         store.NewID(store.PrefixMessage),
			ChatID:     store.DirectChatID(w.users[from], w.users[to]),
			From:       w.users[from],
			FromDevice: w.devices[from][0],
			TS:         time.Now().UnixMilli(),
			Body:       body,
		},
		Kind:    "direct",
		Members: []string{w.users[from], w.users[to]},
		Devices: []string{w.devices[to][0], w.devices[to][1], w.devices[from][1]},
	}
}

var benchBody = []byte(`{"text":"The quick brown fox jumps over the lazy dog, and then some more text to make a typical chat message."}`)

// senders are the concurrency levels the benchmarks run at: group commit
// batches whatever is queued, so throughput grows with concurrent senders
// until the writer's CPU, not the fsync, is the limit.
var senders = []int{16, 64, 256, 1024}

// runSenders spreads b.N operations over n goroutines and reports msgs/s.
func runSenders(b *testing.B, n int, op func(ctx context.Context, i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	start := time.Now()
	for range n {
		wg.Go(func() {
			for {
				i := next.Add(1)
				if i > int64(b.N) {
					return
				}
				if err := op(b.Context(), i); err != nil {
					b.Error(err)
					return
				}
			}
		})
	}
	wg.Wait()
	b.ReportMetric(float64(b.N)/time.Since(start).Seconds(), "msgs/s")
}

// BenchmarkSend measures durable sends (fsync on) from concurrent senders,
// 64 chats of two users with two devices each: every send writes the log,
// three inboxes and the idempotency key.
func BenchmarkSend(b *testing.B) {
	for _, n := range senders {
		b.Run(fmt.Sprintf("senders=%d", n), func(b *testing.B) {
			s := open(b, b.TempDir(), embedded.Options{})
			defer s.Close()
			const pairs = 64
			w := newBenchWorld(b, s, pairs)
			runSenders(b, n, func(ctx context.Context, i int64) error {
				_, err := s.Send(ctx, w.req(int(i%pairs), i, benchBody))
				return err
			})
		})
	}
}

// BenchmarkSendAck is the full cycle of a message, as with online devices:
// the send, each receiving device acks it (the first ack makes a delivered
// receipt for the author's two devices), and those ack the receipt.
// msgs/s counts messages; each is 1 send and up to 5 acks.
func BenchmarkSendAck(b *testing.B) {
	for _, n := range senders {
		b.Run(fmt.Sprintf("senders=%d", n), func(b *testing.B) {
			s := open(b, b.TempDir(), embedded.Options{})
			defer s.Close()
			const pairs = 64
			w := newBenchWorld(b, s, pairs)
			runSenders(b, n, func(ctx context.Context, i int64) error {
				r, err := s.Send(ctx, w.req(int(i%pairs), i, benchBody))
				if err != nil {
					return err
				}
				for _, d := range r.Deliveries {
					rs, err := s.Ack(ctx, d.DeviceID, d.Event.Cursor)
					if err != nil {
						return err
					}
					for _, rd := range rs {
						if _, err := s.Ack(ctx, rd.DeviceID, rd.Event.Cursor); err != nil {
							return err
						}
					}
				}
				return nil
			})
		})
	}
}
