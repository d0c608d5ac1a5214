package embedded

import "github.com/tern-im/tern/store"

// A send reads about ten keys before it writes: its chat, the sender's
// membership, the chat's seq, each target's inbox head (which also says
// whether the device exists), and the idempotency key, nearly always
// missing. An ack that makes receipts lists the author's devices. A Pebble point read
// walks the batch, the memtables and every level's filters, so on the single
// writer goroutine these reads cost more than the writes they guard. The
// writer therefore remembers the small, hot records it reads and writes.
// It is the only writer, so what it remembers cannot go stale; it starts
// empty, so a restart reads everything afresh from the database.
//
// A group message needs the group (its members, and its settings for
// SendRequest.Check) and every member's device list. For a group of a
// thousand members, reading and decoding its record each time would cost
// more than the whole send, so decoded groups are remembered too, and the
// device lists come from the same per-user lists receipts use.

// cachedTable reports whether the writer caches the records of table t:
// small records read by nearly every send or ack. The rest (accounts, and
// the large records: logs, inboxes) go to the database every time.
func cachedTable(t byte) bool {
	switch t {
	case tHeads, tChatSeq, tMembers, tChats, tFeedTrim, tChatNums, tChatIDs:
		return true
	}
	return false
}

// maxCacheBytes bounds the writer's cache: room for the records of tens of
// thousands of active devices and chats.
const maxCacheBytes = 16 << 20

// entryOverhead approximates what an entry costs besides its key and value
// (map slot, string and slice headers).
const entryOverhead = 64

// writerCache holds committed state as of the last committed round: the
// records of the cached tables (key -> value, nil for a record known not to
// exist), users' device lists and decoded groups. Only the writer goroutine
// uses it.
type writerCache struct {
	vals    map[string][]byte
	devices map[string][]string // userID -> device ids, as userDeviceIDs
	// groups holds decoded groups by chat id, nil for one known not to
	// exist. A cached group is never modified: Apply and Check get copies.
	groups map[string]*cachedGroup
	bytes  int
}

// cachedGroup is a decoded group (nil: none) and what it costs the cache.
type cachedGroup struct {
	g    *store.Group
	size int
}

// newCachedGroup is g, decoded from a record of n bytes.
func newCachedGroup(chatID string, g *store.Group, n int) *cachedGroup {
	size := len(chatID) + entryOverhead + n
	if g != nil {
		size += len(g.Members) * memberOverhead
	}
	return &cachedGroup{g: g, size: size}
}

func newWriterCache() *writerCache {
	return &writerCache{
		vals:    make(map[string][]byte),
		devices: make(map[string][]string),
		groups:  make(map[string]*cachedGroup),
	}
}

// memberOverhead approximates what a decoded store.Member costs besides its
// strings.
const memberOverhead = 64

// setGroup remembers g as the committed state of the group chatID.
func (c *writerCache) setGroup(chatID string, g *cachedGroup) {
	c.dropGroup(chatID)
	c.groups[chatID] = g
	c.bytes += g.size
	if c.bytes > maxCacheBytes {
		c.shrink()
	}
}

// dropGroup forgets the group chatID. Forgetting is always safe.
func (c *writerCache) dropGroup(chatID string) {
	if old, ok := c.groups[chatID]; ok {
		c.bytes -= old.size
		delete(c.groups, chatID)
	}
}

func listSize(user string, ids []string) int {
	n := len(user) + entryOverhead
	for _, id := range ids {
		n += len(id) + 16
	}
	return n
}

// setDevices remembers the committed device list of user.
func (c *writerCache) setDevices(user string, ids []string) {
	c.dropDevices(user)
	c.devices[user] = ids
	c.bytes += listSize(user, ids)
	if c.bytes > maxCacheBytes {
		c.shrink()
	}
}

// dropDevices forgets the device list of user. Forgetting is always safe.
func (c *writerCache) dropDevices(user string) {
	if old, ok := c.devices[user]; ok {
		c.bytes -= listSize(user, old)
		delete(c.devices, user)
	}
}

// set remembers v (nil: absent) as the committed value of k. v is kept: the
// caller must not modify it afterwards.
func (c *writerCache) set(k string, v []byte) {
	if old, ok := c.vals[k]; ok {
		c.bytes -= len(k) + len(old) + entryOverhead
	}
	c.vals[k] = v
	c.bytes += len(k) + len(v) + entryOverhead
	if c.bytes > maxCacheBytes {
		c.shrink()
	}
}

// shrink drops entries until the cache is at three quarters of its bound.
// Map iteration starts at a random place, which makes this a random
// eviction: cheap, and good enough for a working set that mostly fits.
func (c *writerCache) shrink() {
	for user := range c.devices {
		if c.bytes <= maxCacheBytes/4*3 {
			return
		}
		c.dropDevices(user)
	}
	for k, v := range c.vals {
		if c.bytes <= maxCacheBytes/4*3 {
			return
		}
		delete(c.vals, k)
		c.bytes -= len(k) + len(v) + entryOverhead
	}
	// Groups last: a large one costs the most to read back.
	for chatID := range c.groups {
		if c.bytes <= maxCacheBytes/4*3 {
			return
		}
		c.dropGroup(chatID)
	}
}

// clear forgets everything: after a failed commit the database's state is
// not known.
func (c *writerCache) clear() {
	clear(c.vals)
	clear(c.devices)
	clear(c.groups)
	c.bytes = 0
}
