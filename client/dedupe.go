package client

// dedupe remembers the last n msg_ids seen. A ring holds them in arrival
// order so the oldest is forgotten when a new one comes; the map answers
// lookups. Both grow with use up to n, so an idle client of a load
// generator costs nothing. Only one goroutine (the reader) uses it.
type dedupe struct {
	n    int
	ring []string
	next int // where the next id goes once the ring is full
	set  map[string]struct{}
}

func newDedupe(n int) *dedupe {
	return &dedupe{n: n, set: make(map[string]struct{})}
}

// seen reports whether id was seen in the window, and remembers it if not.
func (d *dedupe) seen(id string) bool {
	if _, ok := d.set[id]; ok {
		return true
	}
	if len(d.ring) < d.n {
		d.ring = append(d.ring, id)
	} else {
		delete(d.set, d.ring[d.next])
		d.ring[d.next] = id
		d.next = (d.next + 1) % d.n
	}
	d.set[id] = struct{}{}
	return false
}
