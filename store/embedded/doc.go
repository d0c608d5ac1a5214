// Package embedded is Tern's single-node store: one bbolt file, tern.db, in
// the data directory. It implements store.Store and passes store/storetest.
//
// # Guarantees
//
//   - Every write has returned only after its transaction was committed and
//     fsynced (unless Options.NoSync, for tests). A Send that returned is on
//     disk, with its chat log entry, its inbox events and its idempotency
//     key, all in the same transaction: they exist together or not at all.
//   - All writes are applied by one goroutine in submission order, so the
//     per-chat seq and per-device cursor are gap-free and an inbox holds a
//     chat's messages in seq order. Read-modify-write operations
//     (EnsureUser, CountAttempt, DeleteCode, RotateRefresh, Secret) are
//     atomic without locks.
//   - A write whose context has ended before the writer reaches it is not
//     applied and returns the context's error. Once applied it is committed
//     and the caller is told so, even if its context ends while waiting.
//   - Reads run in their own read transactions, concurrently with each other
//     and with the writer, and each sees one consistent snapshot.
//   - After Close returns, every accepted write is committed and every call
//     returns ErrClosed.
//
// # Group commit
//
// A bbolt commit costs two fsyncs whatever it contains, so one commit per
// message would cap a node at a few hundred messages per second. Writes are
// instead queued to a single writer goroutine, which takes every queued
// request (up to Options.MaxBatch), applies them in one read-write
// transaction and commits once. The batch grows with the load by itself: the
// requests that arrive during one fsync form the next batch. If the engine
// fails in the middle of a batch, the batch is rolled back and its requests
// are retried one transaction each, so that one bad request fails alone;
// domain errors (not found, conflict) are detected before a request writes
// anything, so they never need that. Work that needs no database state
// (validation, deduplication, finding the reader of an ack) is
// done on the caller's goroutine, because the writer is the one serial
// resource.
//
// Acks are committed with the same fsync as everything else. The store may
// make them durable lazily, but bbolt has no safe way to do so: with
// DB.NoSync a commit's meta page can reach the disk before its data pages, so
// a power cut would corrupt the file rather than merely forget some acks.
// Under load acks share the batches of sends, so they cost little.
//
// # Layout
//
// One bucket per record kind; compound keys join ids with a 0x00 byte (ids
// never contain one) and end with big-endian numbers, so that a range scan
// walks a log or an inbox in order:
//
//	users    userID                     JSON store.User
//	phones   phone                      userID
//	devices  deviceID                   JSON store.Device
//	udev     userID 0 deviceID          (empty): a user's devices
//	codes    phone                      JSON store.Code
//	secrets  name                       the secret
//	chats    chatID                     JSON kind, title, members, created
//	chatseq  chatID                     last seq u64, last message ts i64
//	members  userID 0 chatID            read seq u64, delivered seq u64
//	log      chatID 0 seq u64           binary message
//	idem     deviceID 0 clientID        seq u64, chatID
//	inbox    deviceID 0 cursor u64      binary event (the whole message)
//	heads    deviceID                   last cursor u64
//
// The last seq of a chat and the head of an inbox live in the database and
// are read inside the write transaction, so a restart continues both without
// reuse. The chat log and the inboxes, which carry nearly all the bytes, use a
// compact binary encoding; the rest is JSON.
//
// Receipts: the members record keeps a delivered watermark per reader and
// chat. An ack makes delivered receipts only for messages above it, so a
// message gets one delivered receipt per reader however many of the reader's
// devices ack it.
package embedded
