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
// slow and single-writer. Two more of its quirks shape the code: an update
// command of 100 statements or more hangs (each statement keeps a pooled
// connection until the command ends, and the pool has 100), so the tests
// cap the statements per command (Store.updateBatch; MongoDB needs no
// cap); and $set leaves a subdocument alone when the new one has the same
// values in the same places, whatever their keys, so a group's member map
// is always written in member order (groupState.orderedGM).
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
//     feed in seq order, whatever node sends them (the chat lock, below).
//   - Per-user feed cursor: unique, gap-free, never reused after a trim,
//     and a feed only ever grows at its end: no entry appears below one a
//     reader has seen (claims by insert, below). A device's cursors are
//     its user's: they increase, and skip the entries it does not read
//     (its own messages, which the user's other devices read).
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
//   - Message info: every move of a delivered mark (by an ack) and of a
//     read mark (by a read with notify) is recorded with the time of its
//     receipts, before the ack's journal is marked done or the read's
//     note dropped, so a move whose node dies is recorded by the ack or
//     read that finishes it (a finishing ack records the time it runs at).
//     Records are upserts keeping the earliest time, so a repeat changes
//     nothing. MessageMarks answers the first record at or above the seq.
//   - Groups: a change and its log entry are one step for every reader
//     of the chat: the entry gets the chat's next seq under the chat lock,
//     and the group's new state is committed in the same conditional
//     write as that seq, so a send sees the group before or after a
//     change, never half of it, and a change that stops halfway is
//     completed by the next holder of the lock (see "Groups").
//   - EnsureUser, Secret: get-or-create decided by a unique index (phone;
//     _id). CountAttempt: one $inc. DeleteCode: one deleteOne, whose count
//     says who won. RotateRefresh: an updateOne filtered on the current
//     hash.
//
// # Documents
//
// Chat logs, feeds and memberships are keyed so that MongoDB's _id index
// serves as their unique index and their scans are _id ranges; in string
// keys numbers are zero-padded to 19 digits so that string order is numeric
// order, and ids never contain '/'; a feed's keys are BinData of one length
// (BinData sorts by length first):
//
//	users     _id user id; phone, name, about, hide_read, email (verified), created; privacy:
//	          p_seen, p_online, p_groups (absent: everyone)
//	devices   _id device id; user, name, platform, created, last_seen,
//	          refresh_hash, prev_refresh_hash, refresh_expires, push_provider,
//	          push_token; floor (its ack cursor in its user's feed); j, the
//	          journal of its last ack: {tok, cur, done}; hint, the end of
//	          its per-device inbox, in databases from before feeds
//	codes     _id phone; hash, expires, attempts, sent, window_start, window_count
//	secrets   _id name; value
//	chats     _id chat id; kind, title, members, created, seq (last committed),
//	          last_ts (of the last message), lock {t, dead} while a send holds it,
//	          dis (the disappearing timer in seconds, once one was set);
//	          a group also: desc, set {edit, send}, by (its creator) and gm
//	          {<user>: {r (role), at (joined), js (joined seq)}}, written in
//	          the order of members (its joining order)
//	members   _id "<user>/<chat>"; read, delivered (the user's watermarks),
//	          rp {s<seq>: {f, t, ts, at}} (reads whose receipts may be unsent);
//	          in a group, js (the seq the user joined at)
//	messages  _id "<chat>/<seq>"; id, chat, seq, from, dev, ts, body (the JSON
//	          bytes), reply, kind ("group" for a group change, "action" for
//	          a message action, else absent), key (the idempotency key); g,
//	          a group change's state after it (as set in the chat), until
//	          the change is committed; what actions left on a message: ed
//	          (edited ts), del (deleted), rx [{u, e}] (reactions), es (the
//	          seqs of its edit entries); exp (expires ts) and due (the same,
//	          until ExpireDue expired it; 0 while an expired entry's file
//	          is still to be released); mf, the media file a message
//	          deleted for everyone or expired no longer carries (on an
//	          expired one only until it is released); act {k, t, e, b, s},
//	          an action entry's action (kind, target, emoji, body,
//	          seconds), until the entry is erased or expires. All of these
//	          are absent when empty
//	feed      _id BinData(the user's 16 bytes ‖ cursor, 5 bytes big-endian);
//	          r, BinData(uvarint seq ‖ the chat's 16 or 32 bytes): a
//	          reference to a log entry (c and s, the chat id and seq, for a
//	          chat id of another form); or rc, a receipt {chat, ids, st, by,
//	          ts}; x, the device that skips it (the sender's); o, the one
//	          device that reads it (events moved from per-device inboxes,
//	          which may hold k and m, a whole message); n, a random tag of
//	          an entry without a reference (see "Feeds")
//	feeds     _id user id; h, the highest cursor known to hold an entry of
//	          its feed; t, its trim point
//	inbox     per-device inboxes from before feeds, emptied by the
//	          migration at Open (migrate.go)
//	contacts  _id user id; phones: the user's address book (E.164), replaced
//	          whole by SetContacts; HasContact matches one number in it
//	marks     _id "<chat>/<user>/<kind>/<seq>"; ts: a move of the user's
//	          delivered ("d") or read ("r") mark up to seq, at ts (the time
//	          of its receipts), kept for message info (MessageMarks)
//	media     _id file id; owner, key, kind, mime, size, sha256, w, h and
//	          thumb (absent when 0 or none), created; unshared (while no
//	          message carries it: the creation time, or the epoch once its
//	          last message went); rc (its references are kept); gone (the
//	          time the collector claimed it, while it deletes it)
//	media_shares
//	          _id "<file>/<chat>" and nothing else: the file was shared to
//	          the chat (see "Media files")
//	media_refs
//	          _id "<file>/<msg>"; c, the message's chat: the message
//	          carries the file (see "Media files")
//	pushes    _id device id; its queued push: user, kind, chat, msg, from,
//	          text, due, att (attempts), lease and until (the lease's end,
//	          while claimed); sent (the time of its last push, until it
//	          connects); v, a random tag rewritten by every write. All of
//	          these but v are absent when empty (see "Pushes")
//	admins    _id admin id; username, hash, totp (absent: no second
//	          factor), disabled, created
//	admin_sessions
//	          _id the session id (a digest of its token); admin, csrf, ip,
//	          created, expires. No TTL index: a new session deletes its
//	          admin's sessions that had expired by its creation
//	api_keys  _id the key's public part; admin, name, hash, created
//	audit     _id entry id (ids sort by time: the _id index orders the
//	          log); ts, actor, action, target, detail, ip
//	bans      _id user id; reason, by, ts
//
// # Indexes
//
// Besides _id, created at Open (idempotently, by every node) and listed by
// Indexes:
//
//	users     {phone: 1} unique        one user per phone
//	devices   {user: 1}                a user's devices (UserDevices, receipts,
//	                                   a group's devices in one query)
//	messages  {dev: 1, key: 1} unique  the idempotency key of a send
//	messages  {id: 1} unique           a message by its id (Message, the
//	                                   target of an action)
//	messages  {due: 1} sparse          disappearing entries by when they are
//	                                   due (ExpireDue)
//	media     {unshared: 1} sparse     files no message carries, longest idle first
//	                                   (UnsharedMediaFiles: the collector)
//	pushes    {due: 1} sparse          queued pushes by when they are due
//	                                   (ClaimPushes, PendingPushes)
//	admins    {username: 1} unique     one admin per username (CreateAdmin,
//	                                   AdminByUsername)
//	admin_sessions {admin: 1}          an admin's sessions (DeleteAdminSessions)
//	api_keys  {admin: 1}               an admin's API keys (APIKeys)
//	bans      {ts: 1}                  bans, newest first (Banned)
//
// SearchUsers is one find, in _id order: an anchored regex on phone or
// a case-insensitive one on name, which no index serves. It scans users
// until it has its limit; the dashboard's searches are rare enough for
// that, and an index for names is future work.
//
// The unique (chat, seq) and (user, cursor) indexes are the _id indexes
// of messages and feed; the _id index of marks serves MessageMarks (one
// seek per reader and kind) and keeps one record per move.
//
// # The chat lock: seq
//
// A send holds its chat while it assigns the seq and fills the feeds:
//
//  1. lock: findOneAndUpdate({_id: chat, members: sender, lock: absent},
//     {$set: {lock: {t: token}}}), which also returns the last seq S (a
//     group is locked as {_id, kind: "group", lock: absent}, and the
//     sender checked under the lock, see "Groups");
//  2. insert the message at _id "<chat>/<S+1>"; the unique (dev, key) index
//     makes this insert the idempotency check too (a duplicate key on it
//     answers the first message). The target devices are read at the
//     same time;
//  3. read the feed heads of their users, insert one entry per user and
//     raise the heads (below);
//  4. unlock: updateOne({_id: chat, "lock.t": token}, {$set: {seq: S+1},
//     $max: {last_ts}, $unset: {lock}}).
//
// That is six round trips, one of each operation whatever the number of
// members (one insertMany, one bulk update); a new chat adds the insert of
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
// device of every member but the writing one and the user it is hidden
// from, if any (a group change: see "Groups"; an action's entry in a
// group: see "Actions and expiry"), commits its seq, and goes on with its
// own. So the log stays gap-free even if the client never retries, and a
// retry answers the completed message as a duplicate. The events the
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
// # Groups
//
// A group is a chat document of kind "group" holding its whole committed
// state: name (title), description, settings, members (ids, in joining
// order) and gm (role, join time and join seq per member). A group of 1024
// members makes a document of about 110 KB. Every change goes through the
// chat lock that sends take, as a log entry of kind "group" whose
// document also holds the state after the change (field g):
//
//  1. lock: as a send, but whoever the writer is (membership is checked
//     under the lock, on the state the lock read); a taker completes what
//     it finds above the committed seq first;
//  2. run Apply on a copy of that state, validate the result, give the
//     members it adds the entry's seq;
//  3. insert the entry at S+1 with the state, reading the devices of every
//     member before or after the change (one query: devices by user $in)
//     meanwhile;
//  4. append one event to each of those devices (the writer's included),
//     and upsert the membership records of the members it adds ($max of
//     read and delivered to S, js to S+1: a record left by an earlier
//     membership is brought up, a late repeat never moves a mark back);
//  5. commit: updateOne({_id, "lock.t": token}, {$set: {seq: S+1, title,
//     desc, set, members, gm}, $max: {last_ts}, $unset: {lock}});
//  6. delete the records of the members it removed, those with js below
//     S+1 only (one re-added meanwhile keeps its new record), and unset g
//     in the entry, which nobody needs once committed.
//
// A node dying anywhere from step 3 to step 5 leaves the entry above the
// committed seq and the lock on the chat, as a send would: the next holder
// (a send or a change, after Config.Timeout or at once if the lock is
// marked dead) finds it, and rollForward does steps 4 to 6 from the state
// stored in the entry, with the chat's committed members as the members
// before. Nothing a reader sees changes before step 5: the state readers
// use is the chat's, and records of members not yet listed are skipped.
// A node dying after step 5 leaves at most records of removed members and
// the entry's g, both harmless: every reader of a record checks that the
// chat lists its user (Chats and MarkRead filter on members), and Ack's
// delivered watermark moving on such a record only sends receipts for
// messages the user did get while a member.
//
// A creation goes: records of every member; the entry at seq 1 (a
// duplicate key, or an existing chat found first, is ErrConflict); the
// chat, with the state, locked and at seq 0; then steps 4 and 5. Stopping
// before the chat leaves only records and an entry no chat points at,
// invisible (that chat id cannot be created again: ids are random).
// Stopping after it leaves a group at seq 0 that members already see,
// whose lock the next send or change takes over and completes.
//
// Member is one findOne of the chat by _id projected on "gm.<user>": one
// member's entry comes back, however large the group. It reads the
// committed state, so it is exact at every step of a write, and needs no
// membership record (whose writes lead and trail the commit). Member and
// gm keys are user ids, which must be usable as field names (no '.', no
// '$'). A group send locks the chat (which returns the group's state),
// checks the sender and Check under the lock, and reads every member's
// devices in one query while it inserts the message: the same round trips
// as a direct send, whatever the group's size. Before refusing a sender
// (not a member, or Check said no) it looks the idempotency key up: a
// resend is answered with the first message whatever changed since.
//
// # Actions and expiry
//
// A message action (reaction, edit, delete for everyone, change of the
// disappearing timer) is a send whose entry, of kind "action", records the
// action (act). Under the chat lock, before the insert, the send reads the
// target by {id, chat} (the {id} index), runs the caller's Check on it and
// works out the target's new state with store.ApplyAction; a refusal
// stores nothing (a resend is still answered as a duplicate). Once the
// entry is in the log, it erases the edits a delete takes with it
// (body ErasedEditBody, act unset), then sets the target's state (with
// mf, the file a delete takes, if any), then releases that file (see
// "Media files"), all before the commit. An entry hidden from a user who can see the target
// (ApplyAction says not applied) is stored and delivered, and writes
// nothing to the target. A timer change sets the chat's dis in the
// commit, unless it is hidden from someone (store.TimerChange); every
// later entry's exp (and due) is computed from dis as the lock read it.
// In a group, an action's entry goes only to the devices of the members
// who can see its target, those whose join seq (gm js) is at or below
// the target's seq: the head query takes those members only. rollForward,
// completing an action entry, reads the target first, delivers to the
// same members (an entry that lost its action to an expiry or an erasure
// names no target, and goes to no member of a group), applies act again
// (ApplyAction only sets state: applied to its own result it changes
// nothing; the erasures come first because a delete applied again erases
// nothing; a delete that finds its target deleted or expired releases the
// file its mf names again, as its release may not have run), and commits
// a timer change's dis as the send would.
//
// ExpireDue takes no lock. It finds due entries by the sparse {due} index,
// erases the edits each lists, then expires it with findOneAndUpdate
// ({_id, 0 < due <= now}): the tombstone of store.Expire, due and act
// unset, exp kept (ApplyAction tells an expired target by it), and of
// several sweepers one wins. The document as it was before says which
// edit entries an action added since the read: they are erased too. An
// entry that carries a media file keeps due, at 0, and notes the file in
// mf; the file is released after the expiry (never before: listed while
// its message still shows it, it could be collected), and only then are
// due and mf unset, so that a sweep that stops in between leaves the
// entry in the index, first, for the next sweep to release. Against the
// sweep, an action's write of its target is filtered on due still being
// above 0: a target expired after the action read it stays expired, and
// the edit that lost the race erases its own entry's text. Edit entries
// that expired themselves keep their tombstone: erasures skip them.
//
// # Feeds: one inbox per user
//
// Every user has one feed, read by all of its devices; each device keeps
// its own ack cursor into it (floor). A message to a group of 1024 members
// is one entry per member, 61 to 63 bytes each (a fixed-length BinData
// _id, and a reference to the log entry that holds the body once): about
// 64 KB, where per-device copies were 2,048 documents and 550 KB. The
// sender's own entry names the sending device, which skips it
// (SendResult.SenderCursor is its cursor); a receipt is stored once per
// author, not once per author device. A new device starts at its feed's
// end: what is there was for the others.
//
// An entry is inserted at _id (user, k) where k is one above max(h, t) of
// the user's feeds document: h, the highest cursor known to hold an entry,
// raised ($max) after every insert; t, the trim point, at or below every
// device's floor. On a duplicate key the writer tries k+1. The insert is
// the claim, so no counter can run ahead of the entries: a cursor is used
// only once an entry is in it, and an entry is inserted at k only after k-1
// held one. Readers therefore never see a hole that fills later (which the
// server's sessions, resuming after the last cursor they sent, could not
// tolerate), and a crashed writer leaves no gap. An insertMany carries at
// most one entry per user: MongoDB may apply the documents of an unordered
// insertMany in any order. A missing feeds document is created at the
// first write, above every cursor the user's devices held in per-device
// inboxes.
//
// Entries up to the slowest device's floor are deleted (trimFeed, run by
// an ack that may move it and by DeleteDevice), so a trimmed cursor could
// be claimed again by a writer that read h and t before the trim. Against
// that, a trim reads the entries, raises t and only then deletes the
// entries it read, by identity (the reference, or the random tag of an
// entry that has none); a writer raises h with an update filtered on t
// below its cursor, and if that finds t at or above the cursor, deletes
// its own entry by identity and claims again above t. An entry the trim
// did not read is not deleted by it, so the writer always finds its own;
// one it finds gone was read before the trim, by every device. Inbox
// returns only entries above the device's floor and t.
//
// # Acks: a journal per device
//
// An ack writes to many documents (receipts into the authors' feeds, the
// reader's delivered watermarks, the floor, the trim of the feed), and a
// node may die between any two writes. So each ack first writes down what
// it will do, replacing the device's journal (field j of the device
// document):
//
//  1. read the device (floor, user, journal), unless this node finished
//     the device's last ack: then it remembers them, and step 3's
//     compare-and-set checks that they hold;
//  2. read the feed's entries above the floor up to the cursor, the feed
//     head and the floors of the user's devices at once, then the log
//     entries the references name (author, kind); the cursor is held at
//     the feed's end;
//  3. write the journal (compare-and-set on the last one's token): the
//     cursor, done = no receipts needed (and then the floor is raised in
//     the same write, and step 5 is skipped);
//  4. move the reader's delivered watermarks (conditional
//     findOneAndUpdate, as before) and store receipts for the messages
//     this ack moved them over, and a record of each move (marks);
//  5. mark the journal done and raise the floor, in one write;
//  6. trim the feed up to the lowest floor of the user's devices.
//
// The next ack of the device reads the journal and finishes it: if it is
// not done, it sends the delivered receipts of all its messages again
// (the watermark may have moved while the receipts were never stored, and
// nothing tells which; a receipt twice is a tick set twice, one missing is
// a tick that never comes; the entries, kept while the floor is below
// them, say which messages those are), and raises the floor to the
// journal's cursor (which the device acked). A node dying before step 5
// leaves the entries above the floor, so the device is sent them again
// when it reconnects, and its ack of them is that next ack; one dying
// before step 6 leaves the trim to the device's next ack, repeated or not.
// Reads work alike: the member record notes the range a read moved the
// read mark over ("rp"), until its receipts are stored; a later read by
// the user in the chat sends the receipts of notes older than
// Config.Timeout again.
//
// # Media files
//
// A file's record is one media document, written once by CreateMediaFile
// and read by every fetch. The chats it was shared to are not in it: a
// file forwarded to thousands of chats would make an array that grows
// with every forward (toward the 16 MB document limit, with $addToSet and
// a membership test that scan it), in a document every fetch reads. Each
// share is instead a document of media_shares whose _id is
// "<file>/<chat>", so every document stays small and fixed in size:
//
//   - MediaFileShared, on every fetch by someone else than the owner, is a
//     findOne by _id: one seek of the _id index, answered from it;
//   - MediaFileChats is an _id range with a limit, DeleteMediaFile's
//     deleteMany the same range;
//   - ShareMediaFile, on the send path, is an insert of the share and
//     one of the message's reference in media_refs (a duplicate key:
//     recorded before, not an error), then an updateOne of the file,
//     filtered on gone being absent, that $unsets unshared: its match
//     count says whether the file exists unclaimed, and it takes the file
//     out of the collector's index. Two round trips of latency; a refused
//     share takes back what it inserted itself (its share only if the
//     file is missing: a claim may be taken back), on that error only.
//   - A delete for everyone and an expiry write the message's new state
//     (noting the file in mf) and then release: the message's reference
//     goes and, if no reference of the file is left (an _id range with
//     limit 1), unshared is set to the epoch unless it is set already:
//     the collector deletes the file at its next round. Each step runs
//     whether or not the one before changed anything, so a redo (a
//     rollForward that finds the target deleted or expired and reads mf,
//     a sweep that finds due at 0) completes a release that stopped.
//     The reference is inserted before the share's update so that a
//     release racing a share sees it, unless the release looked before
//     the insert and lists the file after the update: then the file is
//     listed with a reference, and the claim refuses it. On FerretDB the
//     range is a scan of media_refs (its ranges on _id are not index
//     bounds); on MongoDB an index seek.
//   - ClaimMediaFile, the collector's step before it deletes anything, is
//     an updateOne ({_id, unshared < cut-off, gone absent or older than
//     10 minutes}) setting gone to now, then a look for a reference: if
//     there is one, the claim is taken back ({_id, gone: now}, so never
//     another's). A share's reference inserted before that look is seen;
//     one inserted after it meets gone in the share's update, and the
//     send is refused. Only one claimer holds a file at a time, so one
//     that takes its claim back cannot undo the claim of another that is
//     deleting the file; a claim left by a node that stopped is taken
//     over after 10 minutes, meanwhile the file is gone to fetches.
//
// unshared is set only on the files no message carries, so the sparse
// {unshared} index holds those files alone: the collector
// (UnsharedMediaFiles, a range below its cut-off, sorted on the index key
// and limited) reads its oldest entries and never the shared files, which
// are nearly all of them. A first share that races with another only
// unsets the field twice.
//
// DeleteMediaFile deletes the document and the shares at once (one round
// trip of latency), the shares whether or not the document is still
// there, so that a deletion cut halfway is completed by its retry.
//
// # Pushes
//
// A device's push document holds its queued push, if any, and the time
// of its last push (sent), which a later QueuePush needs for the cooldown
// and which stays when the push is done: a document with sent alone is a
// cooldown, not a push. Only documents with a push have due, so the
// sparse {due} index holds the queue and nothing else. Each operation is
// one single-document write:
//
//   - ClaimPushes: findOneAndUpdate({due <= now, until absent or <= now},
//     sort {due: 1}) setting a new lease and until, once per push up to
//     the limit. The server checks the filter again as it writes, so of
//     two claimers only one leases a push; the other takes the next.
//   - DonePush and RetryPush: updateOne({_id, lease}), whose match count
//     says whether the lease was still the push's (ErrConflict if not).
//     DonePush unsets the push and sets sent; RetryPush sets due, $inc
//     att, unsets the lease.
//   - CancelPush: deleteOne, push and cooldown alike.
//   - QueuePush needs the document's sent and due to decide (the cooldown,
//     the earlier due of a replaced push), which an update could read
//     only in a pipeline: it reads the document and writes with
//     updateOne({_id, v: as read}), or inserts when there was none; a
//     write that finds v changed, or an insert that finds the document
//     there, starts over. v is random rather than a counter because a
//     CancelPush and a new push in between would bring a counter back to
//     the value read.
//   - PendingPushes counts the documents with due.
//
// # What remains possible
//
//   - A node that dies holding a chat lock stalls that chat's sends for
//     Config.Timeout (10s by default). Its half-done send (never answered
//     sent) stays out of History (which stops at the committed seq) and
//     out of some feeds until its resend or the next send in the chat
//     completes it; devices that had received it then receive it again
//     (clients deduplicate by msg_id).
//   - A holder that stalls for longer than Config.Timeout (a long GC
//     pause, a partition) loses the lock while alive. Seqs stay unique and
//     gap-free (the message _id decides, and the taker completes what it
//     finds), but that one message may land in a feed after the chat's
//     next message, and some devices may receive it twice.
//   - An ack or read that stops halfway (its node dies, or the database
//     fails under it) may have its receipts sent twice by the next ack or
//     read of the device or user: never lost, possibly duplicated. The
//     read receipts of a read that stopped wait for the user's next read
//     in that chat. Entries acked by an ack that stopped after raising the
//     floor stay stored, invisible, until the device's next ack.
//     A note is replayed once it is older than Config.Timeout by the
//     replaying node's clock: a clock that runs ahead of the noting node's
//     by more than that can replay a live read's note (a duplicate).
//   - Two acks of one device running at once (its socket replaced across
//     nodes) may send some receipts twice: the second takes the first's
//     journal as unfinished. The first then leaves the floor and the trim
//     to the second's journal.
//   - A writer with a stale head that lands an entry on a trimmed cursor
//     and dies before taking it back leaves that entry stored below the
//     trim point, invisible, for good (the message itself reaches the
//     devices again: the send is completed by the next sender, a receipt
//     by the ack journal). A writer that takes such an entry back after a
//     device saw it (through a concurrent inbox read) places it again: the
//     device is shown that event twice (clients deduplicate by msg_id).
//   - A feed keeps every entry above its slowest device's floor: a device
//     that never comes back holds its user's feed (as its own inbox did
//     before feeds) until it is deleted. A device that acks past its feed's
//     end is held at the end.
//   - Moving per-device inboxes to feeds (migrate.go) needs every node of
//     the previous version stopped. An ack that stopped halfway just
//     before the move, whose receipts were never stored, is not finished
//     by the device's next ack (its entries moved above its journal's
//     cursor): those messages may miss their delivered tick.
//   - The delivered watermark is one number per reader and chat: messages
//     below it that only a lagging device of the reader acks later get no
//     receipt of their own (the tick came with a later message's).
//   - Chat creation inserts the membership records before the chat: a
//     creation that stops halfway, or loses a race with another sender
//     using different members, leaves records that readers skip.
//   - With write concern "1", a failover can lose writes that were
//     acknowledged; with "majority" it cannot.
//   - Messages, idempotency keys and mark moves are kept forever; nothing expires by itself (there is no TTL index).
//     A disappearing message keeps its place in the log as a tombstone,
//     and only once a caller runs ExpireDue.
//   - An action whose node dies after its entry is in the log is applied
//     by the next holder of the lock, as its send is completed. An action
//     entry that expires before that (a timer shorter than the lock's
//     timeout, or a send whose ts was long past) loses its action with its
//     text: it is completed without an effect on its target and, in a
//     group, delivered to no member (its target, which says who may see
//     it, went with the action). An edit entry erased before its
//     completion (its target expired meanwhile) goes the same way.
//   - An expiry sweep that stops between the erasure of a message's edits
//     and its expiry leaves the message due, with its edits erased; the
//     next sweep expires it. One that stops after the expiry but before
//     erasing an edit stored during the sweep leaves that edit's text.
//   - An ack finishing one that stopped records the stopped ack's moves
//     at its own, later time (the first time died with the node), unless
//     a move at or above them is recorded already. Message info can then
//     show a delivery later than it happened, never earlier.
//   - A group change that stops halfway is, until the next send or change
//     to the group completes it, in some feeds but not in the group's
//     state, History or Member; a creation that stops after inserting its
//     chat shows the group (at seq 0) before its members were told. A
//     group nobody writes to again stays that way.
//   - A group writer that stalls past Config.Timeout loses its lock as a
//     sender does. Late, its record upserts can only add records of users
//     the chat does not list (readers skip them), and its deletions spare
//     a member re-added since (the js filter).
//   - A device's push document outlives the device if its last push was
//     done and it never connected again (a deleted device does not
//     connect): one small document with sent alone, never read.
//   - ClaimPushes that fails after leasing some pushes returns those
//     without the error, so that they are sent rather than left leased
//     until their lease ends.
//   - A ShareMediaFile that runs concurrently with the DeleteMediaFile of
//     its file can leave a share of no file behind (it inserted after the
//     deletion). MediaFileShared then answers true for a file that
//     MediaFile says is gone; ids are never reused, so nothing else is
//     affected.
//   - A share that meets a claim the claimer then takes back (it found a
//     reference: a release raced a share) is refused with ErrNotFound
//     although the file stays; the client may send again. A claimer
//     stalled for more than 10 minutes after its claim (or a node whose
//     clock runs 10 minutes ahead) can see its claim taken over while it
//     deletes. A node that stops between a delete for everyone's write
//     and its release leaves the release to the chat's next sender
//     (rollForward); until then the file stays.
//   - The entries of group changes cost, besides the message, one feed
//     entry per member; a change also writes the whole member
//     list and map of the chat (about 110 KB for 1024 members), once in the
//     entry and once in the commit.
package mongo
