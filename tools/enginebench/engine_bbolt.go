package main

import (
	"bytes"
	"encoding/binary"
	"os"
	"path/filepath"

	bolt "go.etcd.io/bbolt"
)

var (
	bChatLog = []byte("chatlog")
	bIdem    = []byte("idem")
	bInbox   = []byte("inbox")
	bMeta    = []byte("meta")
)

type boltEngine struct {
	db       *bolt.DB
	separate bool
	point    bool
}

func boltOptions() *bolt.Options {
	return &bolt.Options{
		// The settings etcd runs with: a hashmap freelist that is not
		// written on every commit (it is rebuilt by a scan on open).
		FreelistType:   bolt.FreelistMapType,
		NoFreelistSync: true,
		// Avoid remapping while the file grows (remap blocks the writer).
		InitialMmapSize: 1 << 30,
	}
}

func openBolt(dir string, o engineOpts) (engine, error) {
	db, err := bolt.Open(filepath.Join(dir, "tern.db"), 0o600, boltOptions())
	if err != nil {
		return nil, err
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, n := range [][]byte{bChatLog, bIdem, bInbox, bMeta} {
			if _, err := tx.CreateBucketIfNotExists(n); err != nil {
				return err
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, err
	}
	// bbolt's only no-fsync switch is DB.NoSync, and a crash after a
	// NoSync commit can leave a valid meta page pointing at pages that never
	// reached the disk, i.e. a corrupt file rather than a lost tail. So acks
	// are never committed without fsync here; by default they ride in the
	// same fsynced transaction as the round's messages.
	return &boltEngine{db: db, separate: o.ack == ackSeparate, point: o.pointDeletes}, nil
}

func (e *boltEngine) ackStrategy() string {
	if e.separate {
		return "own tx, fsync"
	}
	return "same tx as msgs"
}

func (e *boltEngine) applyAcks(tx *bolt.Tx, acks *ackWork) error {
	in := tx.Bucket(bInbox)
	var victims [][]byte
	for _, d := range acks.dels {
		if e.point {
			for c := d.from; c <= d.upTo; c++ {
				if err := in.Delete(inboxKey(nil, d.device, c)); err != nil {
					return err
				}
			}
			continue
		}
		prefix := appendU64(nil, d.device)
		victims = victims[:0]
		c := in.Cursor()
		for k, _ := c.Seek(prefix); k != nil && bytes.HasPrefix(k, prefix); k, _ = c.Next() {
			if binary.BigEndian.Uint64(k[8:]) > d.upTo {
				break
			}
			victims = append(victims, bytes.Clone(k))
		}
		// Delete after iterating: deleting under a moving cursor can skip keys.
		for _, k := range victims {
			if err := in.Delete(k); err != nil {
				return err
			}
		}
	}
	for _, p := range acks.puts {
		// bbolt keeps references to key and value until commit: fresh slices.
		if err := in.Put(inboxKey(nil, p.device, p.cursor), p.val); err != nil {
			return err
		}
	}
	return nil
}

func (e *boltEngine) commit(msgs []msgWrite, acks *ackWork) (int, error) {
	if !acks.empty() && (e.separate || len(msgs) == 0) {
		if err := e.db.Update(func(tx *bolt.Tx) error { return e.applyAcks(tx, acks) }); err != nil {
			return 0, err
		}
		acks = &ackWork{}
	}
	if len(msgs) == 0 {
		return 0, nil
	}
	dups := 0
	err := e.db.Update(func(tx *bolt.Tx) error {
		dups = 0
		if !acks.empty() {
			if err := e.applyAcks(tx, acks); err != nil {
				return err
			}
		}
		cl, id, in, mt := tx.Bucket(bChatLog), tx.Bucket(bIdem), tx.Bucket(bInbox), tx.Bucket(bMeta)
		for i := range msgs {
			m := &msgs[i]
			ik := idemKey(nil, m.idemDev, m.idemID)
			if id.Get(ik) != nil {
				dups++
				continue
			}
			if err := id.Put(ik, m.idemVal); err != nil {
				return err
			}
			if err := cl.Put(chatLogKey(nil, m.chat, m.seq), m.logVal); err != nil {
				return err
			}
			for _, p := range m.inbox {
				if err := in.Put(inboxKey(nil, p.device, p.cursor), p.val); err != nil {
					return err
				}
			}
			if err := mt.Put(metaKey(nil, m.chat), m.metaVal); err != nil {
				return err
			}
		}
		return nil
	})
	return dups, err
}

func (e *boltEngine) count() (chatLog, inbox int, err error) {
	err = e.db.View(func(tx *bolt.Tx) error {
		chatLog = tx.Bucket(bChatLog).Stats().KeyN
		inbox = tx.Bucket(bInbox).Stats().KeyN
		return nil
	})
	return chatLog, inbox, err
}

func (e *boltEngine) close() error { return e.db.Close() }

// compactBolt copies the live data into a fresh file (bbolt never shrinks
// its file in place; freed pages are only reused).
func compactBolt(dir string) error {
	path := filepath.Join(dir, "tern.db")
	src, err := bolt.Open(path, 0o600, boltOptions())
	if err != nil {
		return err
	}
	defer src.Close()
	dst, err := bolt.Open(path+".compact", 0o600, boltOptions())
	if err != nil {
		return err
	}
	if err := bolt.Compact(dst, src, 64<<20); err != nil {
		dst.Close()
		return err
	}
	if err := dst.Close(); err != nil {
		return err
	}
	if err := src.Close(); err != nil {
		return err
	}
	return os.Rename(path+".compact", path)
}
