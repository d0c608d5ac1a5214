package embedded_test

import (
	"archive/tar"
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"reflect"
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

// seedOne stores a user with a device, a chat and one message to it, and
// returns the user and the message.
func seedOne(t *testing.T, s *embedded.Store) (store.User, store.SendResult) {
	t.Helper()
	ctx := t.Context()
	w := newBenchWorld(t, s, 1)
	r, err := s.Send(ctx, w.req(0, 1, benchBody))
	if err != nil {
		t.Fatal(err)
	}
	u, err := s.User(ctx, w.users[1])
	if err != nil {
		t.Fatal(err)
	}
	return u, r
}

func TestBackupRestore(t *testing.T) {
	dataDir := t.TempDir()
	s := open(t, dataDir, embedded.Options{NoSync: true})
	defer s.Close()
	ctx := t.Context()
	u, sent := seedOne(t, s)
	// An ack is committed without fsync; the backup must still hold it.
	ackd := sent.Deliveries[0]
	if _, err := s.Ack(ctx, ackd.DeviceID, ackd.Event.Cursor); err != nil {
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
	if left, _ := filepath.Glob(filepath.Join(dataDir, ".staging-*")); len(left) > 0 {
		t.Fatalf("Backup left %v in the data dir", left)
	}

	dir := filepath.Join(t.TempDir(), "restored") // Restore creates it
	if err := embedded.Restore(ctx, bytes.NewReader(buf.Bytes()), dir); err != nil {
		t.Fatal(err)
	}
	r := open(t, dir, embedded.Options{NoSync: true})
	defer r.Close()
	if got, err := r.UserByPhone(ctx, u.Phone); err != nil || got.ID != u.ID {
		t.Fatalf("restored backup: UserByPhone = %+v, %v", got, err)
	}
	// Every inbox is as it was, the ack (and the receipt it made) included.
	for _, d := range sent.Deliveries {
		want, wantHead, err := s.Inbox(ctx, d.DeviceID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		got, head, err := r.Inbox(ctx, d.DeviceID, 0, 0)
		if err != nil {
			t.Fatal(err)
		}
		if !reflect.DeepEqual(got, want) || head != wantHead {
			t.Fatalf("restored inbox of %s: %+v head %d; want %+v head %d", d.DeviceID, got, head, want, wantHead)
		}
		if d.DeviceID == ackd.DeviceID && len(got) != 0 {
			t.Fatalf("restored inbox of %s still holds the acked event", d.DeviceID)
		}
	}
	// The restored store goes on where the original was.
	if _, err := r.Send(ctx, store.SendRequest{
		ClientID: "1", // a duplicate: the idempotency key came along
		Message:  store.Message{ID: store.NewID(store.PrefixMessage), ChatID: sent.Message.ChatID, From: sent.Message.From, FromDevice: sent.Message.FromDevice, Body: benchBody},
	}); err != nil {
		t.Fatal(err)
	}
	if h, err := r.History(ctx, sent.Message.ChatID, 0, 0); err != nil || len(h) != 1 {
		t.Fatalf("restored history: %d messages, %v; the resend was not recognised", len(h), err)
	}
}

// TestBackupWhileWriting takes a backup while senders and acks run. The
// restored store must hold every send answered before the backup began and
// be consistent: gap-free logs and inboxes in order below their heads.
func TestBackupWhileWriting(t *testing.T) {
	s := open(t, t.TempDir(), embedded.Options{NoSync: true})
	defer s.Close()
	ctx := t.Context()
	const pairs = 8
	w := newBenchWorld(t, s, pairs)
	var (
		stop atomic.Bool
		wg   sync.WaitGroup
		sent [pairs]atomic.Int64 // the last seq answered, per chat
	)
	for p := range pairs {
		wg.Go(func() {
			for i := int64(1); !stop.Load(); i++ {
				r, err := s.Send(ctx, w.req(p, i, benchBody))
				if err != nil {
					t.Error(err)
					return
				}
				sent[p].Store(r.Message.Seq)
				if i%3 == 0 { // leave some events unacked
					continue
				}
				d := r.Deliveries[0]
				if _, err := s.Ack(ctx, d.DeviceID, d.Event.Cursor); err != nil {
					t.Error(err)
					return
				}
			}
		})
	}
	for p := range pairs {
		for sent[p].Load() < 20 && !t.Failed() {
			time.Sleep(time.Millisecond)
		}
	}
	var before [pairs]int64
	for p := range pairs {
		before[p] = sent[p].Load()
	}
	var buf bytes.Buffer
	_, err := s.Backup(ctx, &buf)
	time.Sleep(20 * time.Millisecond) // let writes run on after the checkpoint
	stop.Store(true)
	wg.Wait()
	if err != nil {
		t.Fatal(err)
	}

	dir := t.TempDir()
	if err := embedded.Restore(ctx, &buf, dir); err != nil {
		t.Fatal(err)
	}
	r := open(t, dir, embedded.Options{NoSync: true})
	defer r.Close()
	for p := range pairs {
		chatID := store.DirectChatID(w.users[2*p], w.users[2*p+1])
		hist, err := r.History(ctx, chatID, 0, 0)
		if err != nil {
			t.Fatalf("chat %d, %d messages sent before the backup: %v", p, before[p], err)
		}
		if int64(len(hist)) < before[p] {
			t.Fatalf("chat %d: %d messages restored, %d were sent before the backup", p, len(hist), before[p])
		}
		for i, m := range hist {
			if want := int64(len(hist) - i); m.Seq != want {
				t.Fatalf("chat %d: restored log has seq %d at position %d, want %d", p, m.Seq, i, want)
			}
		}
		c, err := r.Chat(ctx, chatID)
		if err != nil || c.LastSeq != int64(len(hist)) {
			t.Fatalf("chat %d: LastSeq %d with %d messages, %v", p, c.LastSeq, len(hist), err)
		}
		for _, u := range []int{2 * p, 2*p + 1} {
			for _, dev := range w.devices[u] {
				evs, head, err := r.Inbox(ctx, dev, 0, 0)
				if err != nil {
					t.Fatal(err)
				}
				// Restored messages not written by the device, in seq
				// order, at increasing cursors (acked ones are gone), and
				// receipts.
				var seq int64
				for i, ev := range evs {
					if i > 0 && ev.Cursor <= evs[i-1].Cursor || ev.Cursor > head {
						t.Fatalf("inbox of %s: cursor %d at %d of %d, head %d: not increasing", dev, ev.Cursor, i, len(evs), head)
					}
					if ev.Message == nil {
						continue
					}
					if ev.Message.Seq <= seq {
						t.Fatalf("inbox of %s: seq %d after %d", dev, ev.Message.Seq, seq)
					}
					seq = ev.Message.Seq
					if ev.Message.FromDevice == dev || ev.Message.Seq > int64(len(hist)) || hist[int64(len(hist))-ev.Message.Seq].ID != ev.Message.ID {
						t.Fatalf("inbox of %s: message %s (seq %d) is not one of the restored log's for it", dev, ev.Message.ID, ev.Message.Seq)
					}
				}
			}
		}
		// Seqs continue after the restored log.
		res, err := r.Send(ctx, w.req(p, 1<<40, benchBody))
		if err != nil || res.Message.Seq != int64(len(hist))+1 {
			t.Fatalf("chat %d: send after restore got seq %d, %v; want %d", p, res.Message.Seq, err, len(hist)+1)
		}
	}
}

func TestRestoreRefusesNonEmptyDir(t *testing.T) {
	s := open(t, t.TempDir(), embedded.Options{NoSync: true})
	defer s.Close()
	seedOne(t, s)
	var buf bytes.Buffer
	if _, err := s.Backup(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	dir := t.TempDir()
	keep := filepath.Join(dir, "keep")
	if err := os.WriteFile(keep, []byte("x"), 0o600); err != nil {
		t.Fatal(err)
	}
	if err := embedded.Restore(t.Context(), &buf, dir); err == nil {
		t.Fatal("Restore into a non-empty dir succeeded")
	}
	if entries, _ := os.ReadDir(dir); len(entries) != 1 {
		t.Fatalf("Restore refused, but changed the dir: %v", entries)
	}
}

// TestRestoreRefusesDamagedBackups: a truncated stream (including one cut
// exactly between two entries, which tar itself reads as a clean end) and a
// tar that is no Tern backup fail, and leave the directory empty.
func TestRestoreRefusesDamagedBackups(t *testing.T) {
	s := open(t, t.TempDir(), embedded.Options{NoSync: true})
	defer s.Close()
	seedOne(t, s)
	var buf bytes.Buffer
	if _, err := s.Backup(t.Context(), &buf); err != nil {
		t.Fatal(err)
	}
	full := buf.Bytes()
	// Headers are 512-byte blocks with "ustar" at offset 257.
	var lastHeader int
	for off := 0; off+512 <= len(full); off += 512 {
		if bytes.HasPrefix(full[off+257:], []byte("ustar")) {
			lastHeader = off
		}
	}
	if lastHeader == 0 {
		t.Fatal("no second tar header found")
	}
	var foreign bytes.Buffer
	tw := tar.NewWriter(&foreign)
	if err := tw.WriteHeader(&tar.Header{Name: "db/CURRENT", Size: 1, Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	tw.Write([]byte("x"))
	tw.Close()

	cases := map[string][]byte{
		"cut between entries": full[:lastHeader],
		"cut inside an entry": full[:lastHeader+512+1],
		"cut in half":         full[:len(full)/2],
		"empty":               nil,
		"not a Tern backup":   foreign.Bytes(),
	}
	for name, data := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := embedded.Restore(t.Context(), bytes.NewReader(data), dir); err == nil {
				t.Fatal("Restore succeeded")
			}
			if entries, _ := os.ReadDir(dir); len(entries) != 0 {
				t.Fatalf("a failed Restore left %v", entries)
			}
		})
	}
}

// TestOpenRefusesBboltDir: a data dir of the bbolt era must not be taken
// for a new, empty one.
func TestOpenRefusesBboltDir(t *testing.T) {
	dir := t.TempDir()
	if err := os.WriteFile(filepath.Join(dir, "tern.db"), []byte("bolt"), 0o600); err != nil {
		t.Fatal(err)
	}
	if s, err := embedded.Open(t.Context(), dir, embedded.Options{}); err == nil {
		s.Close()
		t.Fatal("Open started an empty store next to a bbolt database")
	}
}

// benchWorld is a population for the benchmarks: pairs of users with two
// devices each, chatting in direct chats.
type benchWorld struct {
	users   []string
	devices [][2]string
}

func newBenchWorld(b testing.TB, s *embedded.Store, pairs int) *benchWorld {
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

// runSenders spreads b.N operations over n goroutines and reports msgs/s
// and the CPU time of the whole process (senders, writer, Pebble's
// compactions, GC) per message.
func runSenders(b *testing.B, n int, op func(ctx context.Context, i int64) error) {
	var next atomic.Int64
	var wg sync.WaitGroup
	b.ResetTimer()
	cpu0, cpuOK := cpuTime()
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
	if cpu1, ok := cpuTime(); ok && cpuOK {
		b.ReportMetric(float64((cpu1-cpu0).Microseconds())/float64(b.N), "cpu-µs/msg")
	}
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
