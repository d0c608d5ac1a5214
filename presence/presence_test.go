package presence

import (
	"cmp"
	"slices"
	"testing"
	"time"
)

// cluster passes messages between trackers like a broadcast: to every
// tracker, the sender included, and the replies too, until quiet.
type cluster struct {
	t       *testing.T
	nodes   []*Tracker
	changes map[*Tracker][]Change
	lose    bool // drop the next message
}

func (c *cluster) send(m *Msg) {
	if m == nil {
		return
	}
	if c.lose {
		c.lose = false
		return
	}
	// Through the wire format, as a broker would carry it.
	got, err := Decode(m.Encode())
	if err != nil {
		c.t.Fatal(err)
	}
	for _, n := range c.nodes {
		reply, ch := n.Apply(got)
		c.changes[n] = append(c.changes[n], ch...)
		c.send(reply)
	}
}

func (c *cluster) take(n *Tracker) []Change {
	ch := c.changes[n]
	c.changes[n] = nil
	return ch
}

func TestTrackerAcrossNodes(t *testing.T) {
	now := time.Unix(1_000_000, 0)
	clock := func() time.Time { return now }
	a := New("a", "boot1", 15*time.Second, clock)
	b := New("b", "boot1", 15*time.Second, clock)
	c := &cluster{t: t, nodes: []*Tracker{a, b}, changes: map[*Tracker][]Change{}}

	// First news of a node: b asks for a's snapshot and learns u1.
	msg, local := a.Connect("u1")
	if !slices.Equal(local, []Change{{User: "u1", Online: true}}) {
		t.Fatalf("a's own change: %+v", local)
	}
	c.send(msg)
	if got := c.take(b); !slices.Equal(got, []Change{{User: "u1", Online: true}}) || !b.Online("u1") {
		t.Fatalf("b after a's first change: %+v, online %v", got, b.Online("u1"))
	}
	// In step: applied directly. A second session changes nothing.
	msg, _ = a.Connect("u2")
	c.send(msg)
	if msg, _ := a.Connect("u2"); msg != nil {
		t.Fatalf("second session of u2 broadcast %+v", msg)
	}
	if got := c.take(b); !slices.Equal(got, []Change{{User: "u2", Online: true}}) {
		t.Fatalf("b after u2: %+v", got)
	}
	// Online on both nodes: going offline on one is no change for anyone.
	msg, _ = b.Connect("u1")
	c.send(msg)
	msg, local = b.Disconnect("u1", now)
	c.send(msg)
	if len(local) != 0 || len(c.take(a)) != 0 || !a.Online("u1") {
		t.Fatalf("u1 still on a: changes %+v", local)
	}

	// A lost change: the next one is out of step, b resyncs and converges.
	c.lose = true
	msg, _ = a.Disconnect("u1", now)
	c.send(msg)
	if !b.Online("u1") {
		t.Fatal("b saw a lost message")
	}
	now = now.Add(2 * time.Second) // past the per-node request limit
	msg, _ = a.Connect("u3")
	c.send(msg)
	got := c.take(b)
	if b.Online("u1") || !b.Online("u3") || len(got) != 2 {
		t.Fatalf("b after resync: %+v (u1 %v, u3 %v)", got, b.Online("u1"), b.Online("u3"))
	}

	// Heartbeats keep a alive; silence past the lease makes its users
	// offline, as of when it was last heard from.
	heard := now
	c.send(ptr(a.Beat()))
	now = now.Add(10 * time.Second)
	if got := b.Expire(); len(got) != 0 {
		t.Fatalf("expired within the lease: %+v", got)
	}
	now = now.Add(10 * time.Second)
	got = b.Expire()
	slices.SortFunc(got, func(x, y Change) int { return cmp.Compare(x.User, y.User) })
	want := []Change{{User: "u2", At: heard, Dropped: true}, {User: "u3", At: heard, Dropped: true}}
	if !slices.Equal(got, want) || b.Online("u2") {
		t.Fatalf("expiry: %+v, want %+v", got, want)
	}

	// a restarts: its new run has no users until they connect again.
	a2 := New("a", "boot2", 15*time.Second, clock)
	c.nodes = []*Tracker{a2, b}
	c.send(ptr(a2.Beat()))
	msg, _ = a2.Connect("u4")
	c.send(msg)
	if b.Online("u2") || !b.Online("u4") {
		t.Fatalf("after restart: u2 %v u4 %v", b.Online("u2"), b.Online("u4"))
	}
}

// TestRecheckIsNotTheTrackers: a recheck decodes, and applying it changes
// nothing a tracker knows (it is for the followers' side), not even
// whether the sender looks in step.
func TestRecheckIsNotTheTrackers(t *testing.T) {
	a, b := New("a", "boot1", time.Minute, nil), New("b", "boot1", time.Minute, nil)
	b.Apply(a.Beat()) // b knows a
	m, err := Decode(a.Recheck([]string{"u1", "u2"}).Encode())
	if err != nil || m.Type != TypeRecheck || !slices.Equal(m.Users, []string{"u1", "u2"}) {
		t.Fatalf("recheck round trip: %+v, %v", m, err)
	}
	if !a.Own(m) || b.Own(m) {
		t.Fatalf("Own: a %v b %v", a.Own(m), b.Own(m))
	}
	before := len(b.nodes)
	if r, ch := b.Apply(m); r != nil || ch != nil || len(b.nodes) != before {
		t.Fatalf("recheck applied: reply %v changes %v nodes %d→%d", r, ch, before, len(b.nodes))
	}
}

func TestDecodeRefuses(t *testing.T) {
	for _, in := range []string{``, `{}`, `{"type":"beat"}`, `{"type":"x","node":"a","boot":"b"}`, `[1]`} {
		if _, err := Decode([]byte(in)); err == nil {
			t.Errorf("Decode(%q) accepted", in)
		}
	}
}

func FuzzDecode(f *testing.F) {
	f.Add(Msg{Type: TypeSnapshot, Node: "a", Boot: "b", Users: []string{"u"}}.Encode())
	f.Add([]byte(`{"type":"change","node":"a","boot":"b","version":3,"user":"u","online":true}`))
	f.Add([]byte(`{"type":"recheck","node":"a","boot":"b","users":["u","v"]}`))
	f.Fuzz(func(t *testing.T, b []byte) {
		m, err := Decode(b)
		if err != nil {
			return
		}
		// Whatever decodes applies without a panic, and round-trips.
		tr := New("x", "y", time.Second, nil)
		tr.Apply(m)
		if _, err := Decode(m.Encode()); err != nil {
			t.Fatalf("re-decode of %+v: %v", m, err)
		}
	})
}

func ptr(m Msg) *Msg { return &m }
