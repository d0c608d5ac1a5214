// Package embedded is Tern's single-node store: a Pebble database in the
// directory db inside the data directory. It implements store.Store and
// passes store/storetest.
//
// # Why Pebble
//
// tools/enginebench measured bbolt, Pebble and SQLite on exactly this write
// pattern (see its RESULTS.md). With group commit Pebble took 25.4k msg/s
// against bbolt's 7.2k, at 52 against 112 µs of CPU and 3.1 against 35 KB
// written per message: a commit is one fdatasync of an append-only,
// recycled WAL, where bbolt copies every B+tree page it touches and syncs
// twice. The price is the dependency tree (cgo zstd, Prometheus, protobuf
// come with it) and a longer cold build.
//
// # Guarantees
//
//   - Every write has returned only after its batch was committed and the WAL
//     fsynced (unless Options.NoSync, for tests), acks excepted (below). A
//     Send that returned is on disk, with its chat log entry, its feed
//     entries and its idempotency key, all in the same batch: they exist
//     together or not at all.
//   - All writes are applied by one goroutine in submission order, so the
//     per-chat seq and per-user feed cursor are gap-free and a feed holds a
//     chat's messages in seq order. Read-modify-write operations
//     (EnsureUser, CountAttempt, DeleteCode, RotateRefresh, Secret) are
//     atomic without locks.
//   - A write whose context has ended before the writer reaches it is not
//     applied and returns the context's error. Once applied it is committed
//     and the caller is told so, even if its context ends while waiting.
//   - Reads go straight to the database, concurrently with each other and
//     with the writer. A read of several keys that must agree (an inbox and
//     its head, a chat list) uses a snapshot. Pebble makes a batch visible
//     a moment before its WAL fsync completes, so a read can return a write
//     whose caller has not been answered yet; after a machine crash in that
//     moment, the write may be gone although a reader saw it.
//   - After Close returns, every accepted write is committed, the WAL is
//     synced and every call returns ErrClosed (which wraps store.ErrClosed).
//
// # Group commit
//
// One fsync per message would cap a node at the disk's fsync rate. Writes
// are instead queued to a single writer goroutine, which takes every queued
// request (up to Options.MaxBatch), applies them to one indexed batch (so a
// request reads the writes of the requests before it in the round) and
// commits it once. The round grows with the load by itself: the requests
// that arrive during one fsync form the next round. If the engine fails in
// the middle of a round, the batch is discarded and its requests are retried
// one batch each, so that one bad request fails alone; domain errors (not
// found, conflict) are detected before a request writes anything, so they
// never need that. Work that needs no database state (validation, the
// encoding of records) is done on the caller's goroutine, because the
// writer is the one serial resource.
//
// The writer also keeps the small records every send and ack reads (device
// heads, feed ends, chat seqs and numbers, memberships, chats, users'
// device lists) in memory
// (cache.go): a Pebble point read costs more than the writes it guards. It
// keeps groups too, decoded: a message to a group of a thousand members
// would otherwise read and decode a 45 KB record. It is the only writer, so
// none of this can go stale, and a restart reads it afresh.
//
// # Acks
//
// The store may make acks durable lazily: a lost ack only replays events,
// which clients deduplicate. A round of nothing but acks is committed
// without an fsync. That is safe with Pebble, unlike bbolt (whose NoSync can
// leave a meta page pointing at pages that never reached the disk): the WAL
// is append-only and replayed in order, so a crash loses at most an
// unsynced tail of whole batches, and the next synced commit makes
// everything before it durable. An ack that appends delivered receipts is
// the exception: the receipts take cursors of their authors' inboxes, and
// losing them after they were delivered would hand those cursors to other
// events after a restart. Such a round is fsynced like a send.
//
// An ack trims with one point tombstone per entry, never with a range
// deletion. Range tombstones are what trimming seems to call for, but after
// one every point read re-fragments the memtable's range tombstones: in
// tools/enginebench that took 60% of Pebble's CPU and dropped it from 23.5k
// to 2.5k msg/s. Feed cursors are dense, so the keys to delete are known
// without searching (tFeedTrim says where the last trim stopped). Each
// device head records the device's ack cursor, and reads and acks start
// right after it, so that they never walk the tombstones of trimmed
// entries, which the LSM keeps until compaction drops them.
//
// # Feeds
//
// A user's devices share one inbox, the user's feed (feed.go): a message
// is stored once, in its chat's log, and each recipient user's feed gets a
// reference to it (the chat's number and the seq, a few bytes); receipts
// are stored whole, once per author. Each device has its own ack cursor in
// its head; the feed's entries up to the slowest device's cursor are
// deleted, all but the last, whose key says where the feed goes on after a
// restart. The sending device skips its own message, which its entry in
// the sender's feed names (store.SendResult.SenderCursor), so a device's
// cursors increase but may skip. A store from before feeds is migrated at
// Open: what per-device inboxes still held goes to the feeds, each event
// for its one device, above every cursor those devices had.
//
// # Layout
//
// One keyspace; the first byte of a key names its table (keys.go). Compound
// keys join ids with a 0x00 byte (ids never contain one) and end with
// big-endian numbers, so that a range scan walks a log or an inbox in order:
//
//	1  users    userID                     JSON store.User
//	2  phones   phone                      userID
//	3  devices  deviceID                   JSON store.Device
//	4  udev     userID 0 deviceID          (empty): a user's devices
//	5  codes    phone                      JSON store.Code
//	6  secrets  name                       the secret
//	7  chats    chatID                     JSON kind, title, members (not of groups), created
//	8  chatseq  chatID                     last seq u64, last message ts i64
//	9  members  userID 0 chatID            read seq u64, delivered seq u64, [group membership]
//	10 log      chatID 0 seq u64           binary message
//	11 idem     deviceID 0 clientID        seq u64, chatID
//	12 inbox    deviceID 0 cursor u64      (before feeds) binary event; emptied by the migration
//	13 heads    deviceID                   (before feeds: last cursor) u64, acked feed cursor u64, userID
//	14 msgids   msgID                      seq u64, chatID
//	15 groups   chatID                     binary group: info, settings, members
//	16 marks    chatID 0 userID 0 kind seq ts i64: a delivered or read mark reached seq (marks.go)
//	17 feed     userID 0 cursor u64        feed entry: a reference, a receipt, or an event for one device
//	18 trim     userID                     cursor u64: the feed's entries up to it are deleted
//	19 chatnums chatID                     number uvarint
//	20 chatids  number u64                 chatID
//	23 contacts userID 0 phone             (empty): the user's address book
//	30 media    fileID                     created u64, JSON store.MediaFile
//	31 mshares  fileID 0 chatID            (empty): a chat the file was shared to
//	32 unshared created u64 fileID         (empty): a file never shared (media.go)
//	33 pushes   deviceID                   JSON: the device's queued push, its last push's time (pushes.go)
//	34 pushdue  due u64 deviceID           lease end u64, or empty: a queued push, by due time
//	36 admins   adminID                    JSON store.Admin (admin.go: the dashboard's records)
//	37 anames   username                   adminID: usernames are unique
//	38 asess    sessionID                  JSON store.AdminSession
//	39 asessidx adminID 0 sessionID        (empty): an admin's sessions
//	40 apikeys  keyID                      JSON store.APIKey
//	41 akeys    adminID 0 keyID            (empty): an admin's API keys
//	42 audit    entryID                    JSON store.AuditEntry: ids sort by time
//	43 bans     userID                     JSON store.Ban
//	44 bantimes ts u64 userID              (empty): bans by time (sign bit flipped)
//
// 21 and 22 name records of the writer's cache that are never stored: a
// feed's last cursor (the feed's last key says it) and recent messages'
// heads.
//
// The last seq of a chat and the last key of a feed live in the database
// and are read inside the writer, so a restart continues both without
// reuse. The chat log and the feeds, which carry nearly all the bytes, use
// a compact binary encoding; the rest is JSON.
//
// Receipts: the members record keeps a delivered watermark per reader and
// chat. An ack makes delivered receipts only for messages above it, so a
// message gets one delivered receipt per reader however many of the reader's
// devices ack it.
//
// Media files: a share is a key of its own, so that the check of a fetch
// is a point read and a file forwarded to many chats adds keys, not bytes
// to one record. unshared holds the files no chat has yet, by creation
// time (milliseconds with the sign bit flipped, as in media's prefix): the
// collector reads its oldest keys and never walks shared files. A file's
// first share takes it out, in the share's batch; a deletion removes the
// record, its index key and its shares in one batch.
//
// Pushes: a device's record holds its queued push, if any, and when it
// was last pushed, if it was since it connected (the cooldown, which
// outlives the push and is not one). pushdue indexes the queued pushes
// by due time (milliseconds, sign bit flipped) with the lease's end as
// value: a claim reads its first keys up to now, skips those whose lease
// runs without reading their records, and leases the rest in the
// writer, which is what makes claims exclusive. PendingPushes counts its
// keys. A claim that finds nothing due (most polls) is answered by a read
// and never reaches the writer.
//
// Admin dashboard: an admin's sessions and keys are found through their
// index tables (sign out everywhere, a key list); a new session deletes
// the admin's sessions expired by its creation, as Pebble has no expiry.
// The audit log is read backwards from a key. SearchUsers walks the users
// table in id order, reading at most 200,000 records: the dashboard's
// search is rare, and an index by name is future work.
//
// Message.Kind is an optional trailer of the binary message, written only
// for group entries: records from before it existed read as Kind "".
//
// # Groups
//
// A group is its record in groups (read whole by sends, so the writer keeps
// it decoded), a members record per member that goes on with the member's
// role and joining (so Member is one point read, and read marks, acks and
// chat lists work as in a direct chat), and a chats record with its name as
// title. WriteGroup is one writer step: it runs Apply on a copy of the
// group as the step finds it, checks the result, then writes the group
// record, the members records of the members it added, changed or removed
// (deleted), the title if the name changed, and the change's entry (Kind
// store.EventGroup) at the chat's next seq, a reference to which it
// appends to the feed of every member before or after the change. A group
// send takes its members from the cached group, so its cost is that of its
// feed appends: one key of about 43 bytes per member, 44 KB for a group of
// 1024 (TestGroupMessageStoreCost; per-device copies were 535 KB). Group entries get
// no receipts and do not count as unread. A new member's marks start just
// below the entry that added it, so that nothing before it is unread or
// gets its receipts.
//
// # Engine settings
//
// For a small (2-core) node: 32 MiB memtables, a 64 MiB block cache (plus
// the memtables, which Pebble charges to the cache: about 160 MiB in all),
// 10-bit bloom filters on every level for the idempotency and other point
// lookups, and the WAL in the database directory. Pebble's own messages go
// to Options.Log at debug level; of its events only background errors,
// corruption and disk stalls are logged.
//
// # Backup
//
// Store.Backup writes a Pebble checkpoint (hard links next to the database,
// so it is cheap and does not stop writers) as a tar stream, and Restore
// unpacks one into an empty data directory.
package embedded
