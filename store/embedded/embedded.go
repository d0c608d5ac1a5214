package embedded

import (
	"context"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"os"
	"path/filepath"
	"sync"
	"sync/atomic"
	"time"

	bolt "go.etcd.io/bbolt"
	bolterrors "go.etcd.io/bbolt/errors"

	"github.com/tern-im/tern/store"
)

// ErrClosed is returned by every call on a closed Store.
var ErrClosed = errors.New("store/embedded: closed")

// FileName is the database file inside the data directory.
const FileName = "tern.db"

// DefaultMaxBatch is the default Options.MaxBatch.
const DefaultMaxBatch = 1024

// Options tune a Store. The zero value is the production setting.
type Options struct {
	// MaxBatch caps how many write requests share one transaction and one
	// fsync; 0 means DefaultMaxBatch.
	MaxBatch int
	// Log receives storage failures; nil discards them.
	Log *slog.Logger
	// NoSync skips fsync on commit. Only for tests: a machine crash can
	// then lose or corrupt the database.
	NoSync bool
}

// Store is the bbolt adapter of store.Store.
type Store struct {
	db       *bolt.DB
	log      *slog.Logger
	maxBatch int

	// mu orders enqueuing against Close: writers hold it shared while they
	// put a request on reqs, Close takes it exclusively before closing reqs,
	// so no send can hit a closed channel.
	mu      sync.RWMutex
	closed  bool
	reqs    chan *request
	stopped chan struct{} // closed when the writer goroutine has exited
	// isClosed mirrors closed for readers, which must not wait for mu.
	isClosed atomic.Bool
}

var _ store.Store = (*Store)(nil)

// Open opens (creating if needed) the database in dir and starts its writer.
func Open(ctx context.Context, dir string, opts Options) (*Store, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("store/embedded: create data dir: %w", err)
	}
	path := filepath.Join(dir, FileName)
	db, err := bolt.Open(path, 0o600, &bolt.Options{
		// Fail instead of hanging forever when another process holds the
		// file lock (a second tern on the same data dir).
		Timeout: 2 * time.Second,
		// Not writing the freelist makes every commit smaller; the price is
		// a scan of the file at open, which is cheap next to the fsyncs saved.
		NoFreelistSync: true,
		FreelistType:   bolt.FreelistMapType,
		// A large initial map (address space only) means growth seldom has to
		// remap, which would wait for every open read transaction.
		InitialMmapSize: 256 << 20,
		NoSync:          opts.NoSync,
	})
	if err != nil {
		return nil, fmt.Errorf("store/embedded: open %s: %w", path, err)
	}
	err = db.Update(func(tx *bolt.Tx) error {
		for _, name := range allBuckets {
			if _, err := tx.CreateBucketIfNotExists(name); err != nil {
				return fmt.Errorf("create bucket %s: %w", name, err)
			}
		}
		return nil
	})
	if err != nil {
		db.Close()
		return nil, fmt.Errorf("store/embedded: init %s: %w", path, err)
	}
	maxBatch := opts.MaxBatch
	if maxBatch <= 0 {
		maxBatch = DefaultMaxBatch
	}
	log := opts.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	s := &Store{
		db:       db,
		log:      log,
		maxBatch: maxBatch,
		reqs:     make(chan *request, maxBatch),
		stopped:  make(chan struct{}),
	}
	go s.run()
	return s, nil
}

// Close stops accepting writes, commits what is queued and closes the file.
// Closing twice is harmless.
func (s *Store) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	s.isClosed.Store(true)
	close(s.reqs)
	s.mu.Unlock()
	<-s.stopped
	if err := s.db.Close(); err != nil {
		return fmt.Errorf("store/embedded: close: %w", err)
	}
	return nil
}

// Ping implements store.Store.
func (s *Store) Ping(ctx context.Context) error {
	return s.view(ctx, func(*bolt.Tx) error { return nil })
}

// Backup writes a consistent snapshot of the whole database to w, without
// stopping writers, and returns the bytes written. The snapshot is a valid
// tern.db file.
func (s *Store) Backup(ctx context.Context, w io.Writer) (int64, error) {
	var n int64
	err := s.view(ctx, func(tx *bolt.Tx) error {
		var err error
		n, err = tx.WriteTo(ctxWriter{ctx: ctx, w: w})
		return err
	})
	if err != nil {
		return n, fmt.Errorf("store/embedded: backup: %w", err)
	}
	return n, nil
}

// ctxWriter lets a long backup stop when its context ends: bbolt's WriteTo
// knows no context, but it fails on the first failed write.
type ctxWriter struct {
	ctx context.Context
	w   io.Writer
}

func (c ctxWriter) Write(p []byte) (int, error) {
	if err := c.ctx.Err(); err != nil {
		return 0, err
	}
	return c.w.Write(p)
}

// view runs a read transaction. Reads never pass through the writer: bbolt
// lets any number of them run beside the one write transaction.
func (s *Store) view(ctx context.Context, fn func(tx *bolt.Tx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	if s.isClosed.Load() {
		return ErrClosed
	}
	err := s.db.View(fn)
	if errors.Is(err, bolterrors.ErrDatabaseNotOpen) {
		return ErrClosed
	}
	return err
}

// request is one write waiting for the writer goroutine. apply runs inside
// the batch's shared transaction; it reports domain errors (not found,
// conflict) only before its first mutation, so that failing leaves nothing
// behind in the transaction the other requests commit with.
type request struct {
	ctx   context.Context
	apply func(w *wtx) error
	err   error
	done  chan struct{}
}

// write hands apply to the writer and waits until it is committed (or
// failed). It waits even if ctx ends meanwhile: once applied, the write is
// durable, and the caller must learn its result.
func (s *Store) write(ctx context.Context, apply func(w *wtx) error) error {
	if err := ctx.Err(); err != nil {
		return err
	}
	r := &request{ctx: ctx, apply: apply, done: make(chan struct{})}
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

// run is the writer goroutine: group commit. While one batch is being
// committed (most of that time is the fsyncs), new requests queue up in
// reqs; the next round takes all of them (up to maxBatch) into one
// transaction and one commit. Under load the batch grows by itself, and a
// lone request is committed at once, without waiting for company.
func (s *Store) run() {
	defer close(s.stopped)
	batch := make([]*request, 0, s.maxBatch)
	for {
		r, ok := <-s.reqs
		if !ok {
			return
		}
		batch = append(batch[:0], r)
	fill:
		for len(batch) < s.maxBatch {
			select {
			case r, ok := <-s.reqs:
				if !ok {
					break fill
				}
				batch = append(batch, r)
			default:
				break fill
			}
		}
		s.commit(batch)
		for i, r := range batch {
			close(r.done)
			batch[i] = nil
		}
	}
}

// commit applies batch in one transaction. If the engine itself fails in the
// middle (not a domain error), the transaction's state is unknown, so it is
// rolled back and every request is retried in a transaction of its own: one
// bad request then fails alone.
func (s *Store) commit(batch []*request) {
	tx, err := s.db.Begin(true)
	if err != nil {
		s.fail(batch, fmt.Errorf("store/embedded: begin: %w", err))
		return
	}
	w := newWtx(tx)
	for _, r := range batch {
		if r.err = r.ctx.Err(); r.err != nil {
			continue
		}
		r.err = r.apply(w)
		if w.err != nil {
			if err := tx.Rollback(); err != nil {
				s.log.Error("store/embedded: rollback", "err", err)
			}
			s.log.Warn("store/embedded: batch failed; retrying its requests one by one",
				"requests", len(batch), "err", w.err)
			for _, r := range batch {
				s.commitOne(r)
			}
			return
		}
	}
	if err := tx.Commit(); err != nil {
		s.log.Error("store/embedded: commit", "requests", len(batch), "err", err)
		for _, r := range batch {
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
	tx, err := s.db.Begin(true)
	if err != nil {
		r.err = fmt.Errorf("store/embedded: begin: %w", err)
		return
	}
	w := newWtx(tx)
	r.err = r.apply(w)
	if w.err != nil {
		r.err = fmt.Errorf("store/embedded: write: %w", w.err)
		if err := tx.Rollback(); err != nil {
			s.log.Error("store/embedded: rollback", "err", err)
		}
		return
	}
	if err := tx.Commit(); err != nil {
		s.log.Error("store/embedded: commit", "requests", 1, "err", err)
		if r.err == nil {
			r.err = fmt.Errorf("store/embedded: commit: %w", err)
		}
	}
}

func (s *Store) fail(batch []*request, err error) {
	s.log.Error("store/embedded: batch failed", "requests", len(batch), "err", err)
	for _, r := range batch {
		r.err = err
	}
}

// wtx is the batch's write transaction with its buckets looked up once.
// Mutations go through put and del, which keep the first engine error:
// after one, apply functions may run on, and the writer rolls back.
type wtx struct {
	tx  *bolt.Tx
	err error

	users, phones, devices, userDevices, codes, secrets *bolt.Bucket
	chats, chatSeq, members, log, idem, inbox, heads    *bolt.Bucket
}

func newWtx(tx *bolt.Tx) *wtx {
	w := &wtx{tx: tx}
	w.users = tx.Bucket(bktUsers)
	w.phones = tx.Bucket(bktPhones)
	w.devices = tx.Bucket(bktDevices)
	w.userDevices = tx.Bucket(bktUserDevices)
	w.codes = tx.Bucket(bktCodes)
	w.secrets = tx.Bucket(bktSecrets)
	w.chats = tx.Bucket(bktChats)
	w.chatSeq = tx.Bucket(bktChatSeq)
	w.members = tx.Bucket(bktMembers)
	w.log = tx.Bucket(bktLog)
	w.idem = tx.Bucket(bktIdem)
	w.inbox = tx.Bucket(bktInbox)
	w.heads = tx.Bucket(bktHeads)
	// Logs and inboxes grow at the end of each key range and are trimmed at
	// the start, so splitting pages fuller than bbolt's default half
	// leaves fewer, denser pages.
	w.log.FillPercent = 0.9
	w.inbox.FillPercent = 0.9
	return w
}

func (w *wtx) put(b *bolt.Bucket, k, v []byte) {
	if w.err != nil {
		return
	}
	if err := b.Put(k, v); err != nil {
		w.err = fmt.Errorf("put %q: %w", k, err)
	}
}

func (w *wtx) del(b *bolt.Bucket, k []byte) {
	if w.err != nil {
		return
	}
	if err := b.Delete(k); err != nil {
		w.err = fmt.Errorf("delete %q: %w", k, err)
	}
}

// setErr records an engine error met by an apply function outside put/del
// (a corrupt record found after mutating has begun).
func (w *wtx) setErr(err error) {
	if w.err == nil {
		w.err = err
	}
}
