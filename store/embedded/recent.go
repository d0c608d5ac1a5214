package embedded

import (
	"hash/maphash"
	"sync/atomic"
)

// A group message is read by every connected member device's inbox read
// within milliseconds of its write: 511 point reads of one log record for
// one message to the bench's group, a quarter of an inbox read's CPU. The
// writer therefore also leaves the message records it writes in a small
// table that readers look in first. It is direct mapped (a newer record
// takes an older one's slot), lock free for readers, and only the writer
// fills it, so it needs no eviction and cannot hold a stale record: every
// write and deletion of a log record passes through it after its commit.
// A reader whose snapshot predates that commit may see the newer record;
// it only looks up records its snapshot's feed refers to, which exist in
// both, and a newer state of a message (an edit, a deletion) is the one to
// show anyway.

// recentSlots is the size of the table: about a minute of messages at the
// group bench's saturation.
const recentSlots = 1 << 13

// recentMaxRecord is the largest record the table keeps, so that it holds
// 16 MiB at most; larger messages (long texts, near the frame limit) are
// read from the database.
const recentMaxRecord = 2 << 10

type recentEntry struct {
	key string
	val []byte
}

type recentLog struct {
	seed  maphash.Seed
	slots [recentSlots]atomic.Pointer[recentEntry]
}

func newRecentLog() *recentLog { return &recentLog{seed: maphash.MakeSeed()} }

func (c *recentLog) slot(k []byte) *atomic.Pointer[recentEntry] {
	return &c.slots[maphash.Bytes(c.seed, k)&(recentSlots-1)]
}

// get returns the record at k if the table has it. The caller must not
// modify it.
func (c *recentLog) get(k []byte) ([]byte, bool) {
	if e := c.slot(k).Load(); e != nil && e.key == string(k) {
		return e.val, true
	}
	return nil, false
}

// set records that k holds v (nil: deleted) as of a commit. Writer only.
func (c *recentLog) set(k string, v []byte) {
	s := c.slot([]byte(k))
	if v != nil && len(v) <= recentMaxRecord {
		s.Store(&recentEntry{key: k, val: v})
		return
	}
	if e := s.Load(); e != nil && e.key == k {
		s.Store(nil)
	}
}

// drop takes k out of the table if it holds it. Writer only.
func (c *recentLog) drop(k string) {
	s := &c.slots[maphash.String(c.seed, k)&(recentSlots-1)]
	if e := s.Load(); e != nil && e.key == k {
		s.Store(nil)
	}
}

// clear empties the table, after a commit that failed in an unknown state.
func (c *recentLog) clear() {
	for i := range c.slots {
		c.slots[i].Store(nil)
	}
}
