package embedded

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"

	pebble "github.com/cockroachdb/pebble/v2"
	"github.com/cockroachdb/pebble/v2/bloom"
	"github.com/cockroachdb/pebble/v2/vfs"

	"github.com/tern-im/tern/store"
)

// ErrClosed is returned by every call on a closed Store. It wraps
// store.ErrClosed, which is what callers that know no adapter test for.
var ErrClosed error = closedError{}

type closedError struct{}

func (closedError) Error() string { return "store/embedded: closed" }
func (closedError) Unwrap() error { return store.ErrClosed }

// DefaultMaxBatch is the default Options.MaxBatch.
const DefaultMaxBatch = 1024

// dbDir is the Pebble directory inside the data directory. A subdirectory,
// so that the data directory can hold other files, and so that a backup or a
// restore can stage next to it on the same file system.
const dbDir = "db"

// legacyFile is the bbolt database of Tern before Pebble.
const legacyFile = "tern.db"

// Options tune a Store. The zero value is the production setting.
type Options struct {
	// MaxBatch caps how many write requests share one batch and one fsync;
	// 0 means DefaultMaxBatch.
	MaxBatch int
	// Log receives storage failures (and, at debug level, Pebble's own
	// messages); nil discards them.
	Log *slog.Logger
	// NoSync skips fsync on commit. Only for tests: a machine crash can
	// then lose acknowledged writes (Pebble's WAL keeps the database itself
	// consistent).
	NoSync bool
}

// Store is the Pebble adapter of store.Store.
type Store struct {
	db       *pebble.DB
	dir      string // the data directory
	log      *slog.Logger
	maxBatch int
	noSync   bool

	// mu orders everything that touches db against Close. Writers hold it
	// shared while they put a request on reqs, readers for the whole read
	// (Pebble panics on a closed DB, and Close fails on an open iterator);
	// Close takes it exclusively before closing reqs, so no send can hit a
	// closed channel and no read can outlive the DB.
	mu      sync.RWMutex
	closed  bool
	reqs    chan *request
	stopped chan struct{} // closed when the writer goroutine has exited

	// cache is the writer's memory of hot records (see cache.go); only the
	// writer goroutine touches it.
	cache *writerCache
	// accounts caches account records for readers (accounts_cache.go).
	accounts *accountCache
	// recent holds the message records the writer wrote last (recent.go).
	recent *recentLog
	// chatIDs maps chat numbers to chat ids for readers of feeds (feed.go);
	// a number never changes once given.
	chatIDs sync.Map
	// commits counts the batches committed, and durable those of them that
	// had to be fsynced (whether or not Options.NoSync skipped it): they
	// show group commit and lazy acks at work.
	commits, durable atomic.Int64
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database in dir and starts its writer.
// The database is the Pebble directory dir/db.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	if err := makePrivateDir(dir); err != nil {
		return nil, fmt.Errorf("store/embedded: create data dir: %w", err)
	}
	// Before Pebble reads or creates anything: its new files are private
	// (privateFS), and the old ones must be too.
	if fixed, err := tighten(dir); err != nil {
		log.Warn("store/embedded: the data directory is readable by other users, and making it private failed",
			"dir", dir, "err", err)
	} else if len(fixed) > 0 {
		log.Warn("store/embedded: the data directory was readable by other users; made it private "+
			"(directories 0700, files 0600)", "dir", dir, "changed", len(fixed))
	}
	path := filepath.Join(dir, dbDir)
	// Starting empty next to a database of the old format would look like
	// total data loss to every user; refuse, and say why.
	if _, err := os.Stat(filepath.Join(dir, legacyFile)); err == nil {
		if _, err := os.Stat(path); errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("store/embedded: %s holds a bbolt database (%s) from an older Tern, which this version cannot read; move it away to start empty", dir, legacyFile)
		}
	}
	po := pebbleOptions(log)
	db, err := pebble.Open(path, po)
	// The DB holds its own reference to the cache.
	po.Cache.Unref()
	if errors.Is(err, ErrLocked) {
		// Pebble's own words are "resource temporarily unavailable".
		return nil, fmt.Errorf("store/embedded: another Tern process holds the data directory %s "+
			"(or another program has it open): stop it first, or give this one its own data directory (%w)", dir, err)
	}
	if err != nil {
		return nil, fmt.Errorf("store/embedded: open %s: %w", path, err)
	}
	// Now that this process holds the DB's lock, no backup can be running:
	// staging directories left are from a crash during one.
	removeStaging(dir, log)
	maxBatch := opts.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	s := &Store{
		db:       db,
		dir:      dir,
		log:      log,
		maxBatch: maxBatch,
		noSync:   opts.NoSync,
		reqs:     make(chan *request, maxBatch),
		stopped:  make(chan struct{}),
		cache:    newWriterCache(),
		accounts: newAccountCache(),
		recent:   newRecentLog(),
	}
	go s.run()
	if err := s.indexMessageIDs(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	if err := s.migrateInboxes(ctx); err != nil {
		_ = s.Close()
		return nil, err
	}
	return s, nil
}

// Memory. A memtable is large enough that a burst of sends flushes rarely.
// Pebble charges memtables to the block cache: up to two in use (the active
// one and one being flushed, MemTableStopWritesThreshold) and one kept for
// reuse. The cache is made larger by that much, so that blocks keep their
// 64 MiB; a cache of 64 MiB alone would be all memtable under write load and
// hold no blocks at all, and every read of an existing key would go to the
// file and decompress a block.
const (
	memTableSize    = 32 << 20
	memTableReserve = 3 * memTableSize
	blockCacheSize  = 64 << 20
)

// pebbleOptions are the settings measured in tools/enginebench (see its
// RESULTS.md), sized for a small (2-core) node.
func pebbleOptions(log *slog.Logger) *pebble.Options {
	o := &pebble.Options{
		// Private files and directories, and a clear error for a locked
		// directory; Pebble adds its disk health checks around it
		// (WithFSDefaults below).
		FS: privateFS{vfs.Default},
		// FormatNewest of Pebble v2.1.7, named rather than FormatNewest so
		// that upgrading Pebble cannot silently ratchet the on-disk format,
		// which would make going back to the previous Tern impossible.
		FormatMajorVersion: pebble.FormatValueSeparation,
		MemTableSize:       memTableSize,
		Cache:              pebble.NewCache(blockCacheSize + memTableReserve),
		Logger:             pebbleLogger{log: log},
		// Pebble's default listener logs every flush and compaction. Only
		// the events that mean trouble are reported, and none of them is
		// fatal: a corrupt block fails the read that met it.
		EventListener: &pebble.EventListener{
			BackgroundError: func(err error) {
				log.Error("store/embedded: pebble background error", "err", err)
			},
			DataCorruption: func(info pebble.DataCorruptionInfo) {
				log.Error("store/embedded: data corruption", "info", info.String())
			},
			DiskSlow: func(info pebble.DiskSlowInfo) {
				log.Warn("store/embedded: disk slow", "info", info.String())
			},
		},
		// The WAL stays in the DB directory (WALDir unset), so that the
		// data directory is the whole state: one thing to back up or move.
	}
	// Every send looks up its idempotency key, which is nearly always
	// missing, and most other writes look up a user or device: without
	// filters each miss would read a block of every level.
	for i := range o.Levels {
		o.Levels[i].FilterPolicy = bloom.FilterPolicy(10)
	}
	o.WithFSDefaults()
	return o
}

// makePrivateDir creates dir with mode 0700 whatever the umask, if it does
// not exist.
func makePrivateDir(dir string) error {
	if _, err := os.Stat(dir); err == nil {
		return nil // tighten fixes its mode if need be
	}
	if err := os.MkdirAll(dir, dirMode); err != nil {
		return err
	}
	return os.Chmod(dir, dirMode)
}

// pebbleLogger routes Pebble's messages to slog: its chatter (flushes,
// compactions, WAL recycling) at debug level, its errors at error level.
type pebbleLogger struct{ log *slog.Logger }

func (l pebbleLogger) Infof(format string, args ...any) {
	if l.log.Enabled(context.Background(), slog.LevelDebug) {
		l.log.Debug("store/embedded: pebble", "detail", fmt.Sprintf(format, args...))
	}
}

func (l pebbleLogger) Errorf(format string, args ...any) {
	l.log.Error("store/embedded: pebble", "err", fmt.Sprintf(format, args...))
}

// Fatalf must not return: Pebble calls it on broken invariants (a failed
// WAL or MANIFEST write among them) and carries on as if the process had
// ended. Its own default logger exits; a panic at least shows where.
func (l pebbleLogger) Fatalf(format string, args ...any) {
	msg := fmt.Sprintf(format, args...)
	l.log.Error("store/embedded: pebble fatal error", "err", msg)
	panic("store/embedded: pebble: " + msg)
}

// Close stops accepting writes, commits what is queued and closes the
// database. Closing twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.reqs)
	s.mu.Unlock()
	<-s.stopped
	// Pebble's Close syncs the WAL, which makes acks committed without
	// fsync durable too.
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store/embedded: close: %w", err)
	}
	return nil
}

// Ping implements store.Store: one point read, which exercises the read path
// without touching the disk (the bloom filters answer).
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(r reader) error {
		_, err := r.get(key(tSecrets, ""))
		return err
	})
}

// view runs fn on the live database. Reads never pass through the writer:
// Pebble serves any number of them beside it. Each single read sees a
// consistent state, but two reads may see different ones; fn reading keys
// that must agree uses snapshot.
func (s *Store) view(ctx context.Context, fn func(r reader) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	s.mu.RLock()
	defer s.mu.RUnlock()
	if s.closed {
		return ErrClosed
	}
	return fn(reader{s.db})
}

// snapshot runs fn on a snapshot of the database, for reads of several keys
// that must be consistent with each other (an inbox and its head, a chat
// list).
func (s *Store) snapshot(ctx context.Context, fn func(r reader) error) error {
	return s.view(ctx, func(r reader) error {
		snap := s.db.NewSnapshot()
		defer snap.Close()
		return fn(reader{snap})
	})
}

// reader reads one view of the keyspace: the database, a snapshot of it, or
// the writer's batch (the database plus the round's own writes).
type reader struct{ r pebble.Reader }

// get returns a copy of the value at k, nil if there is none (a present
// empty value is a non-nil empty slice).
func (x reader) get(k []byte) ([]byte, error) {
	v, closer, err := x.r.Get(k)
	if errors.Is(err, pebble.ErrNotFound) {
		return nil, nil
	}
	if err != nil {
		return nil, fmt.Errorf("get %q: %w", k, err)
	}
	out := append(make([]byte, 0, len(v)), v...)
	if err := closer.Close(); err != nil {
		return nil, fmt.Errorf("get %q: %w", k, err)
	}
	return out, nil
}

// getJSON decodes the record at k into v; ErrNotFound if there is none.
func (x reader) getJSON(k []byte, v any) error {
	raw, err := x.get(k)
	if err != nil {
		return err
	}
	return decodeJSON(k, raw, v)
}

// scan calls fn on every key in [lower, upper) in order until fn returns
// false or an error, which scan returns. k and v are only valid during the
// call.
func (x reader) scan(lower, upper []byte, fn func(k, v []byte) (bool, error)) error {
	it, err := x.r.NewIter(&pebble.IterOptions{LowerBound: lower, UpperBound: upper})
	if err != nil {
		return fmt.Errorf("iterate from %q: %w", lower, err)
	}
	for ok := it.First(); ok; ok = it.Next() {
		v, err := it.ValueAndErr()
		if err != nil {
			break // the iterator keeps the error for Close
		}
		more, err := fn(it.Key(), v)
		if err != nil {
			it.Close()
			return err
		}
		if !more {
			break
		}
	}
	if err := it.Close(); err != nil {
		return fmt.Errorf("iterate from %q: %w", lower, err)
	}
	return nil
}

// request is one write waiting for the writer goroutine. apply runs on the
// round's shared batch; it reports domain errors (not found, conflict) only
// before its first mutation, so that failing leaves nothing behind in the
// batch the other requests commit with.
type request struct {
	ctx   context.Context
	apply func(w *wtx) error
	// lazy requests (acks) may be lost in a crash: they do not make their
	// round wait for an fsync.
	lazy bool
	err  error
	done chan struct{}
}

// write hands apply to the writer and waits until it is committed (or
// failed). It waits even if ctx ends meanwhile: once applied, the write is
// durable, and the caller must learn its result.
func (s *Store) write(ctx context.Context, apply func(w *wtx) error) error {
	return s.submit(ctx, false, apply)
}

// writeLazy is write for a request whose loss in a crash is harmless (see
// wtx.sync for what that allows).
func (s *Store) writeLazy(ctx context.Context, apply func(w *wtx) error) error {
	return s.submit(ctx, true, apply)
}

func (s *Store) submit(ctx context.Context, lazy bool, apply func(w *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, apply: apply, lazy: lazy, done: make(chan struct{})}
	s.mu.RLock()
	if s.closed {
		s.mu.RUnlock()
		return ErrClosed
	}
	s.reqs <- r
	s.mu.RUnlock()
	<-r.done
	return r.err
}

// run is the writer goroutine: group commit. While one round is being
// committed (most of that time is the WAL fsync), new requests queue up in
// reqs; the next round takes all of them (up to maxBatch) into one batch and
// one commit. Under load the round grows by itself, and a lone request is
// committed at once, without waiting for company.
func (s *Store) run() {
	defer close(s.stopped)
	round := make([]*request, 0, s.maxBatch)
	for {
		r, ok := <-s.reqs
		if !ok {
			return
		}
		round = append(round[:0], r)
	fill:
		for len(round) < s.maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break fill
				}
				round = append(round, r)
			default:
				break fill
			}
		}
		s.commit(round)
		for i, r := range round {
			close(r.done)
			round[i] = nil
		}
	}
}

// commit applies round in one indexed batch, so that each request reads the
// writes of those before it, and commits it once. If the engine itself fails
// in the middle (not a domain error), the batch's state is unknown, so it is
// discarded and every request is retried in a batch of its own: one bad
// request then fails alone.
func (s *Store) commit(round []*request) {
	w := s.newWtx()
	for _, r := range round {
		if r.err = r.ctx.Err(); r.err != nil {
			continue
		}
		w.lazy = r.lazy
		r.err = r.apply(w)
		if w.err != nil {
			break
		}
	}
	if w.err == nil {
		w.finish()
	}
	if w.err != nil {
		w.discard()
		s.log.Warn("store/embedded: batch failed; retrying its requests one by one",
			"requests", len(round), "err", w.err)
		for _, r := range round {
			s.commitOne(r)
		}
		return
	}
	if err := s.flush(w); err != nil {
		s.log.Error("store/embedded: commit", "requests", len(round), "err", err)
		for _, r := range round {
			if r.err == nil {
				r.err = fmt.Errorf("store/embedded: commit: %w", err)
			}
		}
	}
}

func (s *Store) commitOne(r *request) {
	if r.err = r.ctx.Err(); r.err != nil {
		return
	}
	w := s.newWtx()
	w.lazy = r.lazy
	r.err = r.apply(w)
	if w.finish(); w.err != nil {
		r.err = fmt.Errorf("store/embedded: write: %w", w.err)
		w.discard()
		return
	}
	if err := s.flush(w); err != nil {
		s.log.Error("store/embedded: commit", "requests", 1, "err", err)
		if r.err == nil {
			r.err = fmt.Errorf("store/embedded: commit: %w", err)
		}
	}
}

// flush commits w's batch: with an fsync of the WAL if anything in it must
// be durable, without one if it only holds lazy writes. Pebble's WAL is
// append-only and replayed in order, so a crash loses at most an unsynced
// tail of whole batches; and the next synced commit makes everything before
// it durable too.
func (s *Store) flush(w *wtx) error {
	defer w.discard()
	if w.b.Empty() {
		return nil // every request failed, was canceled or had nothing to do
	}
	opts := pebble.NoSync
	if w.sync && !s.noSync {
		opts = pebble.Sync
	}
	if w.accounts {
		// After the commit, visible or not: readers must not keep what
		// they read before it (accounts_cache.go).
		defer s.accounts.invalidate()
	}
	// A reader must not find a record's old state in the table once the
	// new one is committed (a deleted text, say): rewritten records leave
	// it before the commit and come back after.
	for _, lw := range w.logWrites {
		s.recent.drop(lw.key)
	}
	if err := w.b.Commit(opts); err != nil {
		s.cache.clear()
		s.recent.clear()
		return err
	}
	for _, lw := range w.logWrites {
		s.recent.set(lw.key, lw.val)
	}
	s.commits.Add(1)
	if w.sync {
		s.durable.Add(1)
	}
	for k, v := range w.pending {
		s.cache.set(k, v)
	}
	for chatID, g := range w.groups {
		s.cache.setGroup(chatID, g)
	}
	return nil
}

// wtx is a round's write batch. Mutations go through put and del, and reads
// through get, has and scan, which keep the first engine error. After one,
// reads find nothing and writes are dropped; apply functions need not check,
// because the writer then discards the batch and the request's result is the
// engine error, whatever apply returned.
type wtx struct {
	b   *pebble.Batch
	r   reader // b: the database plus the writes made so far in the round
	err error
	// lazy is set while a lazy request (an ack) is applied.
	lazy bool
	// sync is set by every write that must be durable before its request is
	// answered: all writes of requests that are not lazy, and any inbox
	// append, lazy or not. An ack's deletions may be lost in a crash (the
	// events come again), but the receipts it appends take cursors: losing
	// those after they were delivered would hand the same cursors to other
	// events after a restart.
	sync bool

	// cache holds the committed values of the cached tables, and pending
	// this round's writes to them (nil: deleted), which reach cache only
	// if the round commits. A key not in pending was not written in the
	// round, so what the batch reads for it is committed state.
	cache *writerCache
	// logWrites are the round's writes of message records, for
	// Store.recent once the round commits.
	logWrites []recentEntry
	pending   map[string][]byte
	// devicesChanged holds the users whose device list the round changed:
	// their lists are read from the batch and not cached.
	devicesChanged map[string]bool
	// groups holds the groups the round wrote (putGroup), which reach
	// cache only if the round commits.
	groups map[string]*cachedGroup
	// accounts is set when the round wrote account records.
	accounts bool
	log      *slog.Logger
	// coalesced holds the round's receipts in large groups (receipts.go),
	// which are written by finish, once all their readers are known.
	coalesced map[string]*coalescing
}

func (s *Store) newWtx() *wtx {
	b := s.db.NewIndexedBatch()
	return &wtx{b: b, r: reader{b}, cache: s.cache, pending: make(map[string][]byte), log: s.log}
}

// discard releases the batch; it is safe after a commit too.
func (w *wtx) discard() {
	if w.b != nil {
		_ = w.b.Close() // fails only when closed twice, which the nil guards
		w.b = nil
	}
}

// setErr records an engine error met by an apply function outside the
// methods below (or injected by a test).
func (w *wtx) setErr(err error) {
	if w.err == nil {
		w.err = err
	}
}

// get returns the value at k (nil if none) as of the round so far. The
// caller must not modify it: it may be the cache's.
func (w *wtx) get(k []byte) []byte {
	if w.err != nil {
		return nil
	}
	if !cachedTable(k[0]) {
		v, err := w.r.get(k)
		w.setErr(err)
		return v
	}
	if v, ok := w.pending[string(k)]; ok {
		return v
	}
	if v, ok := w.cache.vals[string(k)]; ok {
		return v
	}
	v, err := w.r.get(k)
	if err != nil {
		w.setErr(err)
		return nil
	}
	w.cache.set(string(k), v)
	return v
}

func (w *wtx) has(k []byte) bool { return w.get(k) != nil }

// getJSON decodes the record at k into v: ErrNotFound if there is none,
// errCorrupt if it does not decode, the engine's error if the read failed.
func (w *wtx) getJSON(k []byte, v any) error {
	raw := w.get(k)
	if w.err != nil {
		return w.err
	}
	return decodeJSON(k, raw, v)
}

// scan is reader.scan on the round so far; an error of fn is returned, one
// of the engine is also recorded.
func (w *wtx) scan(lower, upper []byte, fn func(k, v []byte) (bool, error)) error {
	if w.err != nil {
		return w.err
	}
	var fnErr error
	err := w.r.scan(lower, upper, func(k, v []byte) (bool, error) {
		more, err := fn(k, v)
		fnErr = err
		return more, err
	})
	if err != nil && fnErr == nil {
		w.setErr(err)
	}
	return err
}

// put sets k to v. The batch copies both, so callers may reuse them.
func (w *wtx) put(k, v []byte) {
	if w.err != nil {
		return
	}
	if err := w.b.Set(k, v, nil); err != nil {
		w.err = fmt.Errorf("put %q: %w", k, err)
		return
	}
	w.sync = w.sync || !w.lazy
	w.noteWrite(k, v)
}

// del deletes k with a point tombstone. Never a range deletion: every point
// read after one re-fragments the memtable's range tombstones, which cost
// Pebble 60% of its CPU in tools/enginebench.
func (w *wtx) del(k []byte) {
	if w.err != nil {
		return
	}
	if err := w.b.Delete(k, nil); err != nil {
		w.err = fmt.Errorf("delete %q: %w", k, err)
		return
	}
	w.sync = w.sync || !w.lazy
	w.noteWrite(k, nil)
}

// noteWrite keeps the cache right about a write of k (v nil: a deletion).
func (w *wtx) noteWrite(k, v []byte) {
	if isAccountTable(k[0]) {
		w.accounts = true
	}
	if k[0] == tLog {
		var val []byte
		if v != nil {
			val = append(make([]byte, 0, len(v)), v...)
		}
		w.logWrites = append(w.logWrites, recentEntry{key: string(k), val: val})
	}
	switch {
	case cachedTable(k[0]):
		var val []byte
		if v != nil {
			val = append(make([]byte, 0, len(v)), v...)
		}
		w.pending[string(k)] = val
	case k[0] == tUserDevices:
		user := string(k[1 : 1+bytes.IndexByte(k[1:], sep)])
		w.cache.dropDevices(user)
		if w.devicesChanged == nil {
			w.devicesChanged = make(map[string]bool)
		}
		w.devicesChanged[user] = true
	}
}

// head returns the state of device's inbox as of the round so far.
func (w *wtx) head(device string) head {
	return decodeHead(w.get(key(tHeads, device)))
}

// userDeviceIDs lists the device ids of userID as of the round so far.
// The caller must not modify the list: it may be the cache's.
func (w *wtx) userDeviceIDs(userID string) []string {
	if w.err != nil {
		return nil
	}
	changed := w.devicesChanged[userID]
	if ids, ok := w.cache.devices[userID]; ok && !changed {
		return ids
	}
	ids, err := userDeviceIDs(w.r, userID)
	if err != nil {
		w.setErr(err)
		return nil
	}
	if !changed {
		w.cache.setDevices(userID, ids)
	}
	return ids
}
