package server

import (
	"testing"
	"time"
)

// TestWakeCooldown: a device is pushed once per burst: events within the
// cooldown after its push wake it no more, the first after it does, and a
// device that connected starts afresh.
func TestWakeCooldown(t *testing.T) {
	now := time.Unix(1000, 0)
	counts := map[string]int{}
	q := newWakeQueue(3*time.Second, func() time.Time { return now }, func(o string) { counts[o]++ })
	send := func() []wake {
		ws := q.take()
		for _, w := range ws {
			q.pushed(w.device)
		}
		return ws
	}
	q.add(wake{device: "d1", chatID: "c"})
	q.add(wake{device: "d1", chatID: "c"}) // queued already: one wake
	if ws := send(); len(ws) != 1 {
		t.Fatalf("first burst: %d wakes, want 1", len(ws))
	}
	now = now.Add(2 * time.Second)
	q.add(wake{device: "d1", chatID: "c"})
	q.add(wake{device: "d2", chatID: "c"})
	if ws := send(); len(ws) != 1 || ws[0].device != "d2" || counts["coalesced"] != 1 {
		t.Fatalf("within the cooldown: %+v (coalesced %d), want only d2", ws, counts["coalesced"])
	}
	now = now.Add(1500 * time.Millisecond)
	q.add(wake{device: "d1", chatID: "c"})
	if ws := send(); len(ws) != 1 || ws[0].device != "d1" {
		t.Fatalf("after the cooldown: %+v, want d1", ws)
	}
	q.forget("d1") // it connected
	q.add(wake{device: "d1", chatID: "c"})
	if ws := send(); len(ws) != 1 {
		t.Fatalf("after a connect: %+v, want d1 again", ws)
	}
	off := newWakeQueue(-1, func() time.Time { return now }, func(string) {})
	for range 3 {
		off.add(wake{device: "d1", chatID: "c"})
		ws := off.take()
		for _, w := range ws {
			off.pushed(w.device)
		}
		if len(ws) != 1 {
			t.Fatalf("cooldown off: %d wakes, want 1 each time", len(ws))
		}
	}
}
