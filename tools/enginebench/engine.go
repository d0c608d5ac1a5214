package main

import (
	"encoding/binary"
	"fmt"
)

// inboxPut is one event written into a device inbox.
type inboxPut struct {
	device uint64
	cursor uint64
	val    []byte
}

// rangeDel removes every event of one device inbox with cursor <= upTo
// (a device acks "everything up to cursor N"). from is the first cursor not
// deleted yet; engines in point-delete mode delete from..upTo one by one
// instead of issuing a range delete (inbox cursors are dense).
type rangeDel struct {
	device uint64
	from   uint64
	upTo   uint64
}

// msgWrite is everything one chat message writes. The writer goroutine has
// already assigned the chat seq and the inbox cursors.
type msgWrite struct {
	chat    uint64
	seq     uint64
	logVal  []byte // ~250 B JSON chat-log record
	idemDev uint64 // sending device
	idemID  []byte // 16 B client message id
	idemVal []byte // ~40 B
	inbox   [3]inboxPut
	metaVal []byte // small chat-meta record (last seq)
}

// ackWork is the non-durable part of a writer round: inbox deletions for
// acked events and the read-receipt events they trigger.
type ackWork struct {
	dels []rangeDel
	puts []inboxPut
}

func (a *ackWork) empty() bool { return len(a.dels) == 0 && len(a.puts) == 0 }

func (a *ackWork) reset() {
	a.dels = a.dels[:0]
	a.puts = a.puts[:0]
}

// ackCommit selects how the non-durable ack work of a round is committed.
type ackCommit int

const (
	// ackAuto lets each engine use its preferred strategy: bbolt and SQLite
	// fold (fewer bytes written per message than separate, measured),
	// pebble separate with NoSync.
	ackAuto ackCommit = iota
	// ackSeparate commits acks in their own batch/transaction, without
	// fsync where the engine can do that safely (pebble NoSync, SQLite
	// synchronous=NORMAL); bbolt has no safe per-tx no-sync, so it fsyncs.
	ackSeparate
	// ackFold puts the acks into the same fsynced batch/transaction as the
	// round's messages. A round with only acks is committed like ackSeparate.
	ackFold
)

func (a ackCommit) String() string {
	switch a {
	case ackSeparate:
		return "separate"
	case ackFold:
		return "fold"
	}
	return "auto"
}

func parseAckCommit(s string) (ackCommit, error) {
	switch s {
	case "auto":
		return ackAuto, nil
	case "separate":
		return ackSeparate, nil
	case "fold":
		return ackFold, nil
	}
	return 0, fmt.Errorf("unknown -ack-commit %q (auto, separate, fold)", s)
}

type engineOpts struct {
	ack          ackCommit
	pointDeletes bool
}

// engine is one storage backend. Only the single writer goroutine calls it.
type engine interface {
	// commit applies one round. When it returns, msgs must be durable
	// (fsynced). acks may be applied without fsync.
	// It returns how many msgs were dropped as idempotency duplicates.
	commit(msgs []msgWrite, acks *ackWork) (dups int, err error)
	// ackStrategy reports the strategy actually used for acks.
	ackStrategy() string
	// count returns the number of chat-log records and inbox events, to
	// check the run (after the final ack drain the inboxes must be empty).
	count() (chatLog, inbox int, err error)
	// close makes everything durable and closes the store.
	close() error
}

// compactFunc reclaims the space of deleted data of a closed store
// (open, compact, close).
type compactFunc func(dir string) error

type engineDef struct {
	name    string
	module  string // module@version, for the report
	open    func(dir string, o engineOpts) (engine, error)
	compact compactFunc
	inAll   bool // part of -engine all
}

var engines = []engineDef{
	{name: "bbolt", module: "go.etcd.io/bbolt v1.5.0", open: openBolt, compact: compactBolt, inAll: true},
	{name: "pebble", module: "github.com/cockroachdb/pebble/v2 v2.1.7", open: openPebble2, compact: compactPebble2, inAll: true},
	{name: "pebble-v1", module: "github.com/cockroachdb/pebble v1.1.5", open: openPebble1, compact: compactPebble1},
	{name: "sqlite", module: "modernc.org/sqlite v1.60.1", open: openSQLite, compact: compactSQLite, inAll: true},
}

// Binary keys shared by the key/value engines (bbolt, pebble). Big-endian
// so that byte order equals numeric order.

func appendU64(b []byte, v uint64) []byte { return binary.BigEndian.AppendUint64(b, v) }

// chatLogKey = chat id | seq
func chatLogKey(b []byte, chat, seq uint64) []byte { return appendU64(appendU64(b, chat), seq) }

// idemKey = device id | client message id
func idemKey(b []byte, dev uint64, id []byte) []byte { return append(appendU64(b, dev), id...) }

// inboxKey = device id | cursor
func inboxKey(b []byte, dev, cursor uint64) []byte { return appendU64(appendU64(b, dev), cursor) }

// metaKey = chat id
func metaKey(b []byte, chat uint64) []byte { return appendU64(b, chat) }
