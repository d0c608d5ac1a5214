package mongo

import "sync"

// boundedMap is a map safe for concurrent use that holds at most limit
// entries: when full, it forgets one to make room. Its users only cache
// what they can read again.
type boundedMap[V any] struct {
	mu    sync.Mutex
	m     map[string]V
	limit int
}

func (c *boundedMap[V]) get(k string) (V, bool) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := c.m[k]
	return v, ok
}

func (c *boundedMap[V]) put(k string, v V) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.m == nil {
		c.m = make(map[string]V)
	}
	if _, ok := c.m[k]; !ok && len(c.m) >= max(c.limit, 1) {
		for old := range c.m {
			delete(c.m, old)
			break
		}
	}
	c.m[k] = v
}

func (c *boundedMap[V]) drop(k string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	delete(c.m, k)
}
