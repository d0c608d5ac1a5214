// Package store defines Tern's domain records (users, devices, verification
// codes, chats, messages, inbox events) and the small interfaces that every
// storage adapter implements: store/embedded (the single-node default) and
// store/mongo (production). store/storetest is the conformance suite both pass.
//
// Guarantees every adapter gives:
//   - Send is durable when it returns: the message is in the chat log with the
//     next gap-free per-chat seq, and one event is in the inbox of every target
//     device with that device's next gap-free cursor. The same (FromDevice,
//     ClientID) again returns the first result with Duplicate set and stores
//     nothing.
//   - An inbox holds exactly the events not yet acked, in cursor order; Ack is
//     cumulative and idempotent.
//   - Delivered and read receipts are generated once per message and reader
//     (a per-member watermark), however many of the reader's devices ack.
//   - Acks may be made durable lazily: losing one to a crash only replays the
//     events, which clients deduplicate by msg_id.
package store
