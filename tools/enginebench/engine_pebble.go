package main

import (
	"errors"
	"fmt"
	"os"

	"github.com/cockroachdb/pebble"
	"github.com/cockroachdb/pebble/bloom"
)

// One keyspace; a one-byte table prefix stands in for bbolt's buckets.
const (
	pChatLog = 'c'
	pIdem    = 'i'
	pInbox   = 'q'
	pMeta    = 'm'
)

// pebble v1.1.5: what `go get github.com/cockroachdb/pebble@latest` resolves to.
type pebble1Engine struct {
	db    *pebble.DB
	fold  bool
	point bool
	key   []byte
	key2  []byte
}

func pebble1Options() *pebble.Options {
	opts := &pebble.Options{
		FormatMajorVersion: pebble.FormatNewest,
		MemTableSize:       32 << 20,
		Levels:             make([]pebble.LevelOptions, 7),
		Logger:             quietLogger{},
	}
	for i := range opts.Levels {
		opts.Levels[i].FilterPolicy = bloom.FilterPolicy(10) // idempotency lookups miss
	}
	opts.Cache = pebble.NewCache(64 << 20)
	return opts
}

func openPebble1(dir string, o engineOpts) (engine, error) {
	opts := pebble1Options()
	defer opts.Cache.Unref()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return nil, err
	}
	return &pebble1Engine{db: db, fold: o.ack == ackFold, point: o.pointDeletes}, nil
}

func (e *pebble1Engine) ackStrategy() string {
	if e.fold {
		return "same batch as msgs"
	}
	return "own batch, NoSync"
}

func (e *pebble1Engine) applyAcks(b *pebble.Batch, acks *ackWork) error {
	for _, d := range acks.dels {
		if e.point {
			for c := d.from; c <= d.upTo; c++ {
				e.key = inboxKey(append(e.key[:0], pInbox), d.device, c)
				if err := b.Delete(e.key, nil); err != nil {
					return err
				}
			}
			continue
		}
		e.key = inboxKey(append(e.key[:0], pInbox), d.device, 0)
		e.key2 = inboxKey(append(e.key2[:0], pInbox), d.device, d.upTo+1)
		if err := b.DeleteRange(e.key, e.key2, nil); err != nil {
			return err
		}
	}
	for _, p := range acks.puts {
		e.key = inboxKey(append(e.key[:0], pInbox), p.device, p.cursor)
		if err := b.Set(e.key, p.val, nil); err != nil {
			return err
		}
	}
	return nil
}

func (e *pebble1Engine) commit(msgs []msgWrite, acks *ackWork) (int, error) {
	b := e.db.NewBatch()
	defer func() { b.Close() }()
	if !acks.empty() {
		if err := e.applyAcks(b, acks); err != nil {
			return 0, err
		}
		if !e.fold || len(msgs) == 0 {
			// Not fsynced: the next Sync commit syncs the WAL up to and
			// including this batch, and losing it in a crash only means
			// devices see (and ack) a few events again.
			if err := b.Commit(pebble.NoSync); err != nil {
				return 0, err
			}
			b.Close()
			b = e.db.NewBatch()
		}
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	dups := 0
	for i := range msgs {
		m := &msgs[i]
		e.key = idemKey(append(e.key[:0], pIdem), m.idemDev, m.idemID)
		_, closer, err := e.db.Get(e.key)
		if err == nil {
			closer.Close()
			dups++
			continue
		}
		if !errors.Is(err, pebble.ErrNotFound) {
			return 0, err
		}
		if err := b.Set(e.key, m.idemVal, nil); err != nil {
			return 0, err
		}
		e.key = chatLogKey(append(e.key[:0], pChatLog), m.chat, m.seq)
		if err := b.Set(e.key, m.logVal, nil); err != nil {
			return 0, err
		}
		for _, p := range m.inbox {
			e.key = inboxKey(append(e.key[:0], pInbox), p.device, p.cursor)
			if err := b.Set(e.key, p.val, nil); err != nil {
				return 0, err
			}
		}
		e.key = metaKey(append(e.key[:0], pMeta), m.chat)
		if err := b.Set(e.key, m.metaVal, nil); err != nil {
			return 0, err
		}
	}
	return dups, b.Commit(pebble.Sync)
}

func (e *pebble1Engine) count() (chatLog, inbox int, err error) {
	countPrefix := func(p byte) (int, error) {
		it, err := e.db.NewIter(&pebble.IterOptions{LowerBound: []byte{p}, UpperBound: []byte{p + 1}})
		if err != nil {
			return 0, err
		}
		n := 0
		for it.First(); it.Valid(); it.Next() {
			n++
		}
		return n, it.Close()
	}
	if chatLog, err = countPrefix(pChatLog); err != nil {
		return 0, 0, err
	}
	inbox, err = countPrefix(pInbox)
	return chatLog, inbox, err
}

func (e *pebble1Engine) close() error {
	// Make any NoSync tail durable before closing.
	if err := e.db.LogData(nil, pebble.Sync); err != nil {
		return err
	}
	return e.db.Close()
}

// compactPebble1 flushes and compacts the whole key space, dropping deleted
// data and tombstones.
func compactPebble1(dir string) error {
	opts := pebble1Options()
	defer opts.Cache.Unref()
	db, err := pebble.Open(dir, opts)
	if err != nil {
		return err
	}
	if err := db.Compact([]byte{0}, []byte{0xff}, true); err != nil {
		db.Close()
		return err
	}
	return db.Close()
}

// quietLogger drops pebble's informational logging but keeps errors.
type quietLogger struct{}

func (quietLogger) Infof(string, ...interface{}) {}
func (quietLogger) Errorf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "pebble: "+format+"\n", args...)
}
func (quietLogger) Fatalf(format string, args ...interface{}) {
	fmt.Fprintf(os.Stderr, "pebble fatal: "+format+"\n", args...)
	os.Exit(1)
}
