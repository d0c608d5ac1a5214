package embedded

import (
	"slices"
	"sync"

	"github.com/tern-im/tern/store"
)

// Every send reads the recipient's profile and both users' device lists, and
// every request authenticates a device: decoding those JSON records from
// Pebble was the largest single cost of a send in a CPU profile of the
// server under load. This process is the only writer of the database, so a
// read-through cache of account records can be kept exact: any round that
// writes an account record empties it after the commit, and a reader only
// fills it if no such round committed while it read (gen). Account writes
// (sign-ins, profile edits, disconnects) are rare next to messages, so
// emptying it whole is simpler than tracking keys and costs little.

// maxAccountEntries bounds the cache; past it, it starts over empty.
const maxAccountEntries = 200_000

type accountCache struct {
	mu          sync.Mutex
	gen         uint64
	users       map[string]store.User
	devices     map[string]store.Device
	userDevices map[string][]store.Device
}

func newAccountCache() *accountCache {
	c := &accountCache{}
	c.reset()
	return c
}

func (c *accountCache) reset() {
	c.users = make(map[string]store.User)
	c.devices = make(map[string]store.Device)
	c.userDevices = make(map[string][]store.Device)
}

// invalidate is called by the writer after a round that wrote account
// records became visible (or failed in an unknown state).
func (c *accountCache) invalidate() {
	c.mu.Lock()
	c.gen++
	c.reset()
	c.mu.Unlock()
}

func (c *accountCache) size() int {
	return len(c.users) + len(c.devices) + len(c.userDevices)
}

// cached returns the cached value for id, or the generation to fill it with.
func cached[V any](c *accountCache, m func(*accountCache) map[string]V, id string) (V, bool, uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	v, ok := m(c)[id]
	return v, ok, c.gen
}

// fill stores v for id unless an account write committed since gen.
func fill[V any](c *accountCache, m func(*accountCache) map[string]V, id string, v V, gen uint64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.gen != gen {
		return
	}
	if c.size() >= maxAccountEntries {
		c.reset()
	}
	m(c)[id] = v
}

func usersOf(c *accountCache) map[string]store.User           { return c.users }
func devicesOf(c *accountCache) map[string]store.Device       { return c.devices }
func userDevicesOf(c *accountCache) map[string][]store.Device { return c.userDevices }

// cloneDevices copies a cached list so that callers may change theirs.
func cloneDevices(ds []store.Device) []store.Device { return slices.Clone(ds) }

// isAccountTable reports whether writes to table t change what the account
// cache holds.
func isAccountTable(t byte) bool {
	switch t {
	case tUsers, tPhones, tDevices, tUserDevices:
		return true
	}
	return false
}
