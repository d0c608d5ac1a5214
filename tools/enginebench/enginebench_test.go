package main

import (
	"math/rand/v2"
	"testing"
	"time"
)

// The record sizes of the simulated pattern: chat log ~250 B, inbox event ~300 B,
// idempotency ~40 B, receipt ~200 B.
func TestRecordSizes(t *testing.T) {
	w := &workload{users: 10000, chats: 10000, senders: 1, seed: 1}
	wr := newWriter(nopEngine{}, w, mode{maxBatch: 1, acks: true})
	rng := rand.New(rand.NewPCG(1, 2))
	cid := make([]byte, 16)
	r := &request{chat: 9999, from: 9998, to: 9997, fromDev: 2*9998 + 1, clientID: cid,
		body: messageBody(rng, 9999, 9998, 2*9998+1, 9997, cid, time.Now().UnixMilli()), done: make(chan error, 1)}
	var got []msgWrite
	wr.eng = recordEngine{&got}
	wr.round([]*request{r})
	<-r.done
	m := got[0]
	check := func(name string, n, lo, hi int) {
		t.Logf("%s: %d bytes", name, n)
		if n < lo || n > hi {
			t.Errorf("%s: %d bytes, want %d..%d", name, n, lo, hi)
		}
	}
	check("chat log", len(m.logVal), 240, 260)
	check("inbox event", len(m.inbox[0].val), 280, 320)
	check("idempotency", len(m.idemVal), 30, 50)
	acks := wr.buildAcks(time.Now().UnixMilli())
	check("receipt", len(acks.puts[0].val), 195, 205)
	if len(acks.dels) != 3 || len(acks.puts) != 2 {
		t.Errorf("acks: %d deletes, %d receipts; want 3 and 2", len(acks.dels), len(acks.puts))
	}
}

type nopEngine struct{}

func (nopEngine) commit([]msgWrite, *ackWork) (int, error) { return 0, nil }
func (nopEngine) ackStrategy() string                      { return "" }
func (nopEngine) count() (int, int, error)                 { return 0, 0, nil }
func (nopEngine) close() error                             { return nil }

type recordEngine struct{ got *[]msgWrite }

func (e recordEngine) commit(m []msgWrite, _ *ackWork) (int, error) {
	*e.got = append(*e.got, m...)
	return 0, nil
}
func (recordEngine) ackStrategy() string      { return "" }
func (recordEngine) count() (int, int, error) { return 0, 0, nil }
func (recordEngine) close() error             { return nil }

// Every engine in every mode: runOne checks that all messages are in the
// chat log and that every inbox is empty after the final acks.
func TestEnginesSmoke(t *testing.T) {
	w := &workload{users: 50, chats: 40, senders: 8, duration: 5 * time.Second, maxMsgs: 400, seed: 7}
	for _, e := range engines {
		for _, m := range modes {
			for _, ack := range []ackCommit{ackAuto, ackSeparate, ackFold} {
				if !m.acks && ack != ackAuto {
					continue
				}
				r, err := runOne(e, m, w, engineOpts{ack: ack, pointDeletes: m.pointDel}, t.TempDir(), false, true)
				if err != nil {
					t.Fatalf("%s %s %v: %v", e.name, m.name, ack, err)
				}
				if r.msgs != w.maxMsgs {
					t.Errorf("%s %s %v: %d msgs, want %d", e.name, m.name, ack, r.msgs, w.maxMsgs)
				}
			}
		}
	}
}
