package main

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/wire"
)

// The kill loop is the chaos test of an operator: three nodes under steady
// traffic, and then, again and again, one of them (in turn) is killed with
// SIGKILL at a random moment and started again. Clients reconnect through
// the load balancer and write their unanswered sends again with the same
// id. After each kill the test waits until every message answered sent so
// far is on its addressee's screen, and it counts:
//
//   - lost: answered sent, never shown (must be 0);
//   - stranded: shown more than strandedAfter after its sent answer, or
//     not at all by then (must be 0): a connected device never waits for
//     another event, another send or a reconnect;
//   - redelivered: shown again (allowed: a dying node may leave events
//     that the next completes again; clients deduplicate by msg_id).
//
// TERN_TEST_KILLS sets the number of kills (default 3, for `make test`);
// `make killloop` runs 100 and prints the figures for docs/cluster-bench.md.

const strandedAfter = 5 * time.Second

func killCount(t *testing.T) int {
	n := 3
	if v := os.Getenv("TERN_TEST_KILLS"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			t.Fatalf("TERN_TEST_KILLS=%q: want a positive number", v)
		}
		n = k
	}
	return n
}

// killSends is about how many sends go between two kills
// (TERN_TEST_KILL_SENDS, default 30).
func killSends(t *testing.T) int {
	if v := os.Getenv("TERN_TEST_KILL_SENDS"); v != "" {
		k, err := strconv.Atoi(v)
		if err != nil || k < 1 {
			t.Fatalf("TERN_TEST_KILL_SENDS=%q: want a positive number", v)
		}
		return k
	}
	return 30
}

func TestClusterKillLoop(t *testing.T) {
	kills := killCount(t)
	// Each kill takes a few seconds of traffic, a restart, and the wait for
	// a dead node's chat locks (Config.Timeout): bound the whole by kills.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(kills)*45*time.Second)
	defer cancel()
	c := newCluster(t, 3)
	lb := newBalancer(t, c.nodes)
	var redelivered atomic.Int64
	opts := deviceOpts{strict: true, redeliveries: &redelivered}

	// 12 users on the three nodes; 6 of them send, each to one of the
	// other 6, so that every node holds senders and addressees.
	const pairs = 6
	var senders, addressees []*device
	for i := range pairs {
		senders = append(senders, c.login(ctx, lb.url(i%3), phone(100+i), fmt.Sprintf("s%d", i), opts))
		addressees = append(addressees, c.login(ctx, lb.url((i+1)%3), phone(200+i), fmt.Sprintf("r%d", i), opts))
	}
	all := append(slices.Clone(senders), addressees...)
	flows := make([]*flow, pairs)
	for i := range pairs {
		flows[i] = newFlow(senders[i], addressees[i], 0)
	}
	// And a group: one member on each node sends, all four must show it
	// (the sender's second device too), and the sender gets every other
	// member's receipts.
	var members []*device
	for i := range 4 {
		members = append(members, c.login(ctx, lb.url(i%3), phone(300+i), fmt.Sprintf("g%d", i), opts))
	}
	members = append(members, c.login(ctx, lb.url(1), phone(300), "g0b", opts))
	var ids []string
	for _, m := range members[1:4] {
		ids = append(ids, m.user())
	}
	g, err := members[0].c.CreateGroup(ctx, "kill loop", "", ids)
	if err != nil {
		t.Fatalf("create the group: %v", err)
	}
	flows = append(flows, newGroupFlow(members[0], g.ChatID, members[1:]...))
	all = append(all, members...)

	// Senders pause between sends, unless TERN_TEST_KILL_PAUSE says
	// otherwise (0: back to back).
	pause := 20 * time.Millisecond
	if v := os.Getenv("TERN_TEST_KILL_PAUSE"); v != "" {
		d, err := time.ParseDuration(v)
		if err != nil {
			t.Fatalf("TERN_TEST_KILL_PAUSE=%q: %v", v, err)
		}
		pause = d
	}
	var progress atomic.Int64

	plainFlows := flows
	var stranded []string
	var worst time.Duration // the longest from sent answer to screen
	started := time.Now()
	for k := range kills {
		// Traffic for a moment, a random number of sends, so that the
		// kill falls anywhere in a send, an ack or a read; then no more
		// traffic (but the sends the kill cut short, written again), so
		// that nothing but the server itself can bring what is missing.
		stop := make(chan struct{})
		traffic := runFlowsUntil(ctx, flows, pause, stop, &progress)
		at := progress.Load() + int64(killSends(t)/4+randomInt(killSends(t)))
		for progress.Load() < at {
			select {
			case err := <-traffic.failed:
				t.Fatalf("kill %d: traffic stopped: %v", k+1, err)
			case <-time.After(5 * time.Millisecond):
			}
		}
		i := k % len(c.nodes)
		victim := c.nodes[i]
		if err := victim.cmd.Process.Signal(syscall.SIGKILL); err != nil {
			t.Fatalf("kill %d: %v", k+1, err)
		}
		close(stop)
		<-victim.done
		c.restart(i, lb)
		if err := traffic.wait(); err != nil {
			t.Fatalf("kill %d: traffic: %v", k+1, err)
		}
		// Everything answered must reach its screen, each message within
		// strandedAfter of its sent answer.
		cut := time.Now()
		var what string
		if n := waitLeft(deliverWait, func() (n int) { n, what = unseen(plainFlows, cut); return n }); n > 0 {
			c.explainMissing(t, plainFlows)
			t.Fatalf("kill %d: %d messages answered sent are not on screen after %v: %s", k+1, n, deliverWait, what)
		}
		stranded = append(stranded, late(plainFlows, cut, &worst)...)
	}
	checkChats(t, plainFlows)
	checkReceipts(t, wire.StatusDelivered, plainFlows)
	checkClean(t, all...)

	var sent, toGroup int
	for _, f := range plainFlows {
		sent += len(f.answered())
		if f.chat != "" {
			toGroup += len(f.answered())
		}
	}
	cutShort, rescued := 0, 0
	for _, nd := range c.nodes {
		cutShort += strings.Count(nd.log(), "finishing an ack that stopped halfway") +
			strings.Count(nd.log(), "completed a send left unfinished")
		rescued += strings.Count(nd.log(), "inbox check: session behind")
	}
	// The figures for docs/cluster-bench.md.
	t.Logf("kill loop: %d kills in %v: %d messages answered sent (%d of them to a group of 4), 0 lost, %d stranded beyond %v (slowest %v from sent to screen), %d redelivered; %d sends or acks finished by another node; %d sessions the inbox check found behind",
		kills, time.Since(started).Round(time.Second), sent, toGroup, len(stranded), strandedAfter, worst.Round(time.Millisecond),
		redelivered.Load(), cutShort, rescued)
	if len(stranded) > 0 {
		t.Errorf("%d messages reached their screen more than %v after their sent answer: %s",
			len(stranded), strandedAfter, strings.Join(stranded[:min(len(stranded), 10)], "; "))
	}
}

func randomInt(n int) int {
	v, _ := strconv.ParseUint(randomHex(4), 16, 32)
	return int(v % uint64(n))
}

// unseen counts the messages answered sent before cut that are not on
// their addressee's screen, and names a few.
func unseen(flows []*flow, cut time.Time) (n int, what string) {
	for _, f := range flows {
		f.mu.Lock()
		for id, at := range f.at {
			if at.After(cut) {
				continue
			}
			for _, d := range f.recv {
				if m, _ := d.scr.message(id); m.MsgID == "" {
					n++
					if n <= 5 {
						what += fmt.Sprintf("%s->%s %s (seq %d, sent %v ago); ", f.from.name, d.name, id,
							f.sent[id].Seq, time.Since(at).Round(time.Millisecond))
					}
				}
			}
		}
		f.mu.Unlock()
	}
	return n, what
}

// late lists the messages answered sent before cut that reached their
// screen more than strandedAfter after their answer, and forgets them so
// that the next call does not list them again.
func late(flows []*flow, cut time.Time, worst *time.Duration) []string {
	var out []string
	for _, f := range flows {
		f.mu.Lock()
		for id, at := range f.at {
			if at.After(cut) {
				continue
			}
			for _, d := range f.recv {
				_, arrived := d.scr.message(id)
				*worst = max(*worst, arrived.Sub(at))
				if arrived.Sub(at) > strandedAfter {
					out = append(out, fmt.Sprintf("%s->%s seq %d after %v", f.from.name, d.name,
						f.sent[id].Seq, arrived.Sub(at).Round(time.Millisecond)))
				}
			}
			delete(f.at, id) // checked
		}
		f.mu.Unlock()
	}
	return out
}

// restart starts node i again after it died, with the same node id and
// flags, and points the balancer at it.
func (c *cluster) restart(i int, lb *balancer) {
	t := c.t
	t.Helper()
	nd := c.nodes[i]
	p := startTern(t, t.TempDir(), c.sms.URL, nd.args...)
	// The old process's log stays readable for the failure report.
	p.mu.Lock()
	old := p.logs.String()
	p.logs.Reset()
	p.logs.WriteString(nd.log() + old)
	p.mu.Unlock()
	c.nodes[i] = &node{proc: p, id: nd.id, addr: strings.TrimPrefix(p.url, "http://"), args: nd.args}
	lb.moved(i, c.nodes[i].addr)
}

// explainMissing logs what the database holds about every message that is
// not on its addressee's screen: the chat's committed seq and lock, the
// message, the addressee's devices (hint, floor, ack journal) and inbox,
// and the nodes' log lines that name the message.
func (c *cluster) explainMissing(t *testing.T, flows []*flow) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	mc, err := mongo.Connect(options.Client().ApplyURI(c.mongoURI))
	if err != nil {
		t.Logf("explain: %v", err)
		return
	}
	defer mc.Disconnect(context.Background())
	db := mc.Database(c.db)
	dump := func(coll string, filter bson.D) string {
		cur, err := db.Collection(coll).Find(ctx, filter, options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}))
		if err != nil {
			return err.Error()
		}
		var docs []bson.M
		if err := cur.All(ctx, &docs); err != nil {
			return err.Error()
		}
		var b strings.Builder
		for _, d := range docs {
			if m, ok := d["m"].(bson.M); ok {
				delete(m, "body")
			}
			delete(d, "body")
			fmt.Fprintf(&b, "\n    %v", d)
		}
		return b.String()
	}
	shown := 0
	for _, f := range flows {
		f.mu.Lock()
		sent := maps2slice(f.sent)
		f.mu.Unlock()
		for _, s := range sent {
			if m, _ := f.to.scr.message(s.MsgID); m.MsgID != "" || shown >= 3 {
				continue
			}
			shown++
			dev := f.to.sess.DeviceID
			t.Logf("MISSING %s->%s msg %s chat %s seq %d (device %s)", f.from.name, f.to.name, s.MsgID, s.ChatID, s.Seq, dev)
			t.Logf("  chat:%s", dump("chats", bson.D{{Key: "_id", Value: s.ChatID}}))
			t.Logf("  message:%s", dump("messages", bson.D{{Key: "id", Value: s.MsgID}}))
			t.Logf("  device:%s", dump("devices", bson.D{{Key: "_id", Value: dev}}))
			t.Logf("  inbox:%s", dump("inbox", bson.D{{Key: "_id", Value: bson.D{
				{Key: "$gt", Value: dev + "/"}, {Key: "$lt", Value: dev + "0"}}}}))
			t.Logf("  screen of %s: last seq %d, %d messages", f.to.name, f.to.scr.lastSeqOf(s.ChatID), f.to.scr.count())
			for _, nd := range c.nodes {
				for _, line := range strings.Split(nd.log(), "\n") {
					if strings.Contains(line, s.MsgID) || strings.Contains(line, s.ChatID) || strings.Contains(line, dev) {
						t.Logf("  %s: %s", nd.id, line)
					}
				}
			}
		}
	}
}

func maps2slice(m map[string]wire.Sent) []wire.Sent {
	out := make([]wire.Sent, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

func (s *screen) lastSeqOf(chat string) int64 {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.lastSeq[chat]
}
