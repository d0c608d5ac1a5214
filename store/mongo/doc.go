// Package mongo is Tern's production store: MongoDB through
// go.mongodb.org/mongo-driver/v2. It implements store.Store and passes
// store/storetest; any number of nodes (Stores) may share one database.
//
// # What it asks of the server
//
// Only what a standalone MongoDB gives: every single-document write is
// atomic (an insert against a unique index, findOneAndUpdate, an updateOne
// or deleteOne with a filter). It uses no multi-document transaction, no
// change stream, no TTL index (expiry, of verification codes for one, is
// the caller's check against the stored time) and no pipeline update.
//
// FerretDB v1 speaks the protocol but applies an update as "read the
// document, change it, write it back" without atomicity: two $inc can both
// return 6. The tests therefore run FerretDB behind a proxy that lets one
// write command through at a time (tools/ferretdb), which restores
// MongoDB's per-document atomicity. Do not run several Tern nodes on
// FerretDB v1 without such a proxy; with it, FerretDB is a test stand-in,
// slow and single-writer.
//
// # Guarantees
//
// Those of package store, and:
//
//   - A call returns after the server acknowledged its writes with the
//     configured write concern ("majority" by default: they survive the
//     loss of the primary). Reads go to the primary, so a node reads its
//     own writes and, once they returned, every other node's.
//   - Per-chat seq: unique, gap-free, and a chat's messages reach every
//     inbox in seq order, whatever node sends them (the chat lock, below).
//   - Per-device cursor: unique, gap-free, never reused after an ack, and
//     an inbox only ever grows at its end: no event appears below one a
//     reader has seen (claims by insert, below).
//   - Idempotency: the same (FromDevice, ClientID) returns the first
//     message with Duplicate set, on any node, forever (the key is stored
//     with the message). A send without a ClientID is keyed by its message
//     id.
//   - Receipts: a message acked by a reader's device gets a delivered
//     receipt, and one marked read a read receipt, even if the node dies
//     halfway (see "Acks"). While no node dies, it gets exactly one of
//     each per reader, however many of the reader's devices ack it at once
//     on whatever nodes (unless two acks of one device overlap): each
//     watermark moves by a conditional update (delivered by
//     findOneAndUpdate {delivered: {$lt: n}} then $max, read by
//     compare-and-set), and only the caller that moved it over a message
//     sends that message's receipt.
//   - EnsureUser, Secret: get-or-create decided by a unique index (phone;
//     _id). CountAttempt: one $inc. DeleteCode: one deleteOne, whose count
//     says who won. RotateRefresh: an updateOne filtered on the current
//     hash.
//
// # Documents
//
// Chat logs, inboxes and memberships are keyed so that MongoDB's _id index
// serves as their unique index and their scans are _id ranges; numbers are
// zero-padded to 19 digits so that string order is numeric order, and ids
// never contain '/':
//
//	users     _id user id; phone, name, about, hide_read, created
//	devices   _id device id; user, name, platform, created, last_seen,
//	          refresh_hash, prev_refresh_hash, refresh_expires, push_provider,
//	          push_token; hint and floor of its inbox; j, the journal of its
//	          last ack: {tok, cur, done, dc [cursors], dn [their tags]}
//	codes     _id phone; hash, expires, attempts, sent, window_start, window_count
//	secrets   _id name; value
//	chats     _id chat id; kind, title, members, created, seq (last committed),
//	          last_ts (of the last message), lock {t, dead} while a send holds it
//	members   _id "<user>/<chat>"; read, delivered (the user's watermarks),
//	          rp {s<seq>: {f, t, ts, at}} (reads whose receipts may be unsent)
//	messages  _id "<chat>/<seq>"; id, chat, seq, from, dev, ts, body (the JSON
//	          bytes), reply, key (the idempotency key)
//	inbox     _id "<device>/<cursor>"; k ("m" or "r"), m (the whole message)
//	          or r (the receipt), n (a random tag of the insert)
//
// # Indexes
//
// Besides _id, created at Open (idempotently, by every node) and listed by
// Indexes:
//
//	users     {phone: 1} unique        one user per phone
//	devices   {user: 1}                a user's devices (UserDevices, receipts)
//	messages  {dev: 1, key: 1} unique  the idempotency key of a send
//	messages  {id: 1} unique           a message by its id (Message)
//
// The unique (chat, seq) and (device, cursor) indexes are the _id indexes
// of messages and inbox.
//
// # The chat lock: seq
//
// A send holds its chat while it assigns the seq and fills the inboxes:
//
//  1. lock: findOneAndUpdate({_id: chat, members: sender, lock: absent},
//     {$set: {lock: {t: token}}}), which also returns the last seq S;
//  2. insert the message at _id "<chat>/<S+1>"; the unique (dev, key) index
//     makes this insert the idempotency check too (a duplicate key on it
//     answers the first message). The target devices' inbox heads are
//     read at the same time;
//  3. insert the inbox events and raise the devices' hints (below);
//  4. unlock: updateOne({_id: chat, "lock.t": token}, {$set: {seq: S+1},
//     $max: {last_ts}, $unset: {lock}}).
//
// That is five round trips, one of each operation whatever the number of
// devices (one insertMany, one bulk update); a new chat adds the insert of
// the chat and its membership records. This node's other senders to the
// chat wait in memory; other nodes' poll the lock with a jittered backoff
// of up to 50ms. A chat's throughput is one message per four round trips
// of the lock holder.
//
// The seq is committed in step 4, so a send that stops before step 2
// leaves no trace in the log and no gap. One that stops after step 2 (a
// node dies, or the database fails under it) leaves the lock on the chat.
// The next sender that has seen the same token for Config.Timeout (its own
// clock: nodes' clocks are never compared), or at once if the holder marked
// the lock dead on its way out, takes it over with findOneAndUpdate on that
// token, finds the message above the chat's seq, delivers it to every
// device of every member but the writing one, commits its seq, and goes on
// with its own. So the log stays gap-free even if the client never retries,
// and a retry answers the completed message as a duplicate. The events the
// taker placed come back in its SendResult, for its caller to route: the
// dead holder will never publish them.
//
// A send that fails once its insert was attempted never drops the lock: it
// marks it dead. An insert can fail after the server applied it (a
// timeout, a connection cut), and a lock dropped over an uncommitted
// message let a resend find that message by its key and answer it as sent
// while it was in no inbox (issue 7). For the same reason a resend whose
// key finds a message above the committed seq completes it (as a taker
// does) before it answers.
//
// # Inbox cursors: claims by insert
//
// An inbox event is inserted at _id "<device>/<k>" where k is one above
// max(hint, floor) of the device document: hint, the highest cursor known
// to hold an event, raised ($max) after every insert; floor, the highest
// acked cursor, raised by Ack. On a duplicate key the writer tries k+1. The
// insert is the claim, so no counter can run ahead of the events: a cursor
// is used only once an event is in it, and an event is inserted at k only
// after k-1 held one. Readers therefore never see a hole that fills later
// (which the server's sessions, resuming after the last cursor they sent,
// could not tolerate), and a crashed writer leaves no gap. An insertMany
// carries at most one event per device: MongoDB may apply the documents of
// an unordered insertMany in any order.
//
// Ack deletes events, so an acked cursor could be claimed again by a
// writer that read floor and hint before the ack. Against that, Ack reads
// the events, then the floor, raises the floor and only then deletes the
// events it read, by _id and tag; a writer raises hint with an update
// filtered on floor below its cursor, and if that finds floor at or above
// the cursor, deletes its own event (by its random tag) and claims again
// above floor. An event the ack did not read is not deleted by it, so the
// writer always finds its own. Inbox returns only events above floor.
//
// # Acks: a journal per device
//
// An ack writes to many documents (receipts into the authors' inboxes, the
// reader's delivered watermarks, the floor, the events), and a node may die
// between any two writes. So each ack first writes down what it will do,
// replacing the device's journal (field j of the device document):
//
//  1. read the events up to the cursor, then the device (floor, user,
//     journal), unless this node finished the device's last ack: then it
//     remembers them, and step 2's compare-and-set checks that they hold;
//  2. write the journal (compare-and-set on the last one's token): the
//     cursor, the events to delete (cursor and tag), done = no receipts
//     needed (and then the floor is raised in the same write, and step 4
//     is skipped);
//  3. move the reader's delivered watermarks (conditional
//     findOneAndUpdate, as before) and store receipts for the messages
//     this ack moved them over;
//  4. mark the journal done and raise the floor, in one write;
//  5. delete the events.
//
// The next ack of the device reads the journal and finishes it: if it is
// not done, it sends the delivered receipts of all its messages again
// (the watermark may have moved while the receipts were never stored, and
// nothing tells which; a receipt twice is a tick set twice, one missing is
// a tick that never comes; the events, deleted only after done, say which
// messages those are); it raises the floor to the journal's cursor
// (which the device acked) and deletes the journal's events that are still
// there. A node dying before step 4 leaves the events above the floor, so
// the device is sent them again when it reconnects, and its ack of them
// is that next ack. Reads work alike: the member record notes the range a
// read moved the read mark over ("rp"), until its receipts are stored; a
// later read by the user in the chat sends the receipts of notes older
// than Config.Timeout again.
//
// # What remains possible
//
//   - A node that dies holding a chat lock stalls that chat's sends for
//     Config.Timeout (10s by default). Its half-done send (never answered
//     sent) stays out of History (which stops at the committed seq) and
//     out of some inboxes until its resend or the next send in the chat
//     completes it; devices that had received it then receive it again
//     (clients deduplicate by msg_id).
//   - A holder that stalls for longer than Config.Timeout (a long GC
//     pause, a partition) loses the lock while alive. Seqs stay unique and
//     gap-free (the message _id decides, and the taker completes what it
//     finds), but that one message may land in an inbox after the chat's
//     next message, and some devices may receive it twice.
//   - An ack or read that stops halfway (its node dies, or the database
//     fails under it) may have its receipts sent twice by the next ack or
//     read of the device or user: never lost, possibly duplicated. The
//     read receipts of a read that stopped wait for the user's next read
//     in that chat. Events acked by an ack that stopped after raising the
//     floor stay stored, invisible, until the device's next ack.
//     A note is replayed once it is older than Config.Timeout by the
//     replaying node's clock: a clock that runs ahead of the noting node's
//     by more than that can replay a live read's note (a duplicate).
//   - Two acks of one device running at once (its socket replaced across
//     nodes) may send some receipts twice: the second takes the first's
//     journal as unfinished. The first then leaves its events and the
//     floor to the second's journal.
//   - A writer with a stale head that lands an event on an acked cursor and
//     dies before taking it back leaves that event stored below the floor
//     until the device is deleted (the message itself reaches the device
//     again: the send is completed by the next sender, a receipt by the
//     ack journal). A writer that takes such an event back after the device
//     saw it (through a concurrent inbox read) places it again: the device
//     is shown that event twice (clients deduplicate by msg_id).
//   - The delivered watermark is one number per reader and chat: messages
//     below it that only a lagging device of the reader acks later get no
//     receipt of their own (the tick came with a later message's).
//   - Chat creation inserts the membership records before the chat: a
//     creation that stops halfway, or loses a race with another sender
//     using different members, leaves records that readers skip.
//   - With write concern "1", a failover can lose writes that were
//     acknowledged; with "majority" it cannot.
//   - Messages, idempotency keys and acked-away inbox ids are kept
//     forever; nothing expires by itself (there is no TTL index).
package mongo
