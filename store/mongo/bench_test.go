package mongo

import (
	"fmt"
	"runtime"
	"sync/atomic"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// benchCast is n users with two devices each.
type benchCast struct {
	users   []string
	devices [][2]string
}

func newBenchCast(b *testing.B, s store.Store, n int) benchCast {
	b.Helper()
	ctx := b.Context()
	var c benchCast
	for i := range n {
		u, _, err := s.EnsureUser(ctx, fmt.Sprintf("+1555%07d", i), store.NewID(store.PrefixUser), time.Now())
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
		c.users = append(c.users, u.ID)
		c.devices = append(c.devices, ds)
	}
	return c
}

// BenchmarkSend measures Send of a direct message to three inboxes (the
// recipient's two devices and the sender's other one) from parallel
// senders (2 or 8 goroutines on this machine's 2 cores): each in a chat of
// its own (the usual case), or all in one chat (the chat lock's worst case).
func BenchmarkSend(b *testing.B) {
	for _, bc := range []struct {
		oneChat bool
		p       int // goroutines per GOMAXPROCS
	}{{false, 1}, {false, 4}, {true, 4}} {
		name := fmt.Sprintf("chats=own/senders=%d", bc.p*runtime.GOMAXPROCS(0))
		if bc.oneChat {
			name = fmt.Sprintf("chats=one/senders=%d", bc.p*runtime.GOMAXPROCS(0))
		}
		b.Run(name, func(b *testing.B) {
			s := newStore(b)
			c := newBenchCast(b, s, 32)
			var senders atomic.Int64
			b.SetParallelism(bc.p)
			b.ResetTimer()
			t0 := time.Now()
			b.RunParallel(func(pb *testing.PB) {
				k := int(senders.Add(1)) - 1
				from, to := (2*k)%len(c.users), (2*k+1)%len(c.users)
				if bc.oneChat {
					from, to = k%2, 1-k%2
				}
				for i := 0; pb.Next(); i++ {
					req := directReq(c.users[from], c.devices[from][0], c.users[to], fmt.Sprintf("%d-%d", k, i),
						c.devices[to][0], c.devices[to][1], c.devices[from][1])
					if _, err := s.Send(b.Context(), req); err != nil {
						b.Error(err)
						return
					}
				}
			})
			b.ReportMetric(float64(b.N)/time.Since(t0).Seconds(), "msgs/s")
		})
	}
}

// BenchmarkAck measures Ack of one message by its recipient, which also
// sends a delivered receipt to the author's two devices. The author's
// devices ack their receipts too (untimed), as clients do, so that inboxes
// stay short: FerretDB scans a whole collection for a range query.
func BenchmarkAck(b *testing.B) {
	s := newStore(b)
	c := newBenchCast(b, s, 2)
	ctx := b.Context()
	for i := 0; b.Loop(); i++ {
		b.StopTimer()
		r, err := s.Send(ctx, directReq(c.users[0], c.devices[0][0], c.users[1], fmt.Sprint(i), c.devices[1][0]))
		if err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		ds, err := s.Ack(ctx, c.devices[1][0], r.Deliveries[0].Event.Cursor)
		if err != nil || len(ds) != 2 {
			b.Fatalf("ack: %d deliveries, %v", len(ds), err)
		}
		b.StopTimer()
		for _, d := range ds {
			if _, err := s.Ack(ctx, d.DeviceID, d.Event.Cursor); err != nil {
				b.Fatal(err)
			}
		}
		b.StartTimer()
	}
}

// BenchmarkHeads measures one Heads call of the inbox check: the heads of
// 500 devices (the server's batch), each with an event in its inbox.
func BenchmarkHeads(b *testing.B) {
	s := newStore(b)
	c := newBenchCast(b, s, 250)
	ctx := b.Context()
	var ids []string
	for i := 0; i < len(c.users); i += 2 {
		req := directReq(c.users[i], c.devices[i][0], c.users[i+1], "h", c.devices[i+1][0], c.devices[i+1][1], c.devices[i][1])
		if _, err := s.Send(ctx, req); err != nil {
			b.Fatal(err)
		}
	}
	for _, ds := range c.devices {
		ids = append(ids, ds[0], ds[1])
	}
	for b.Loop() {
		hs, err := s.Heads(ctx, ids)
		if err != nil || len(hs) != len(ids) {
			b.Fatalf("Heads: %d of %d, %v", len(hs), len(ids), err)
		}
	}
}
