// Package push wakes devices that no node holds, so they connect and drain
// their inbox. The inbox is the truth: a push is only a hint, it may be
// late, collapsed with the next one for the same chat, or lost, and the
// device learns nothing from it that it will not also find in its inbox.
//
// # Payload
//
// Every provider carries the same small map, built by Data:
//
//	{"type": "message"|"receipt"|..., "chat_id", "msg_id"?, "sender"?, "text"?}
//
// "text" is there only when the caller put the message text in the
// Notification, which it does only with previews on. The sender is under
// "sender" because FCM reserves "from". Pushes for one chat replace each
// other while undelivered: FCM's collapse key and APNs' collapse id are the
// chat id, the Web Push Topic is CollapseID of it. Messages go with high
// priority and a four-week time to live, everything else with normal
// priority and an hour.
//
// # Tokens
//
// A Notification names its adapter in Provider and carries the device's
// push address in Token, as the device registered it: an FCM registration
// token, or for Web Push the subscription's JSON ({endpoint, keys: {p256dh,
// auth}}, see Subscription).
//
// # Errors
//
// Adapters sort failures for the caller (a durable queue): errors.Is(err,
// ErrUnregistered) means forget the token, errors.Is(err, ErrTemporary)
// means try again later, no sooner than RetryAfter(err) if it is not zero;
// anything else is permanent for that notification. Context cancellation
// and deadlines count as temporary.
//
// # Adapters
//
// push/log (the default) writes a log line; push/fcm sends through Firebase
// Cloud Messaging, for Android and iOS apps; push/webpush sends Web Push
// (RFC 8030, 8291, 8292) to browsers. Mux routes by provider, and
// NotifyAll sends in batches where an adapter can.
package push
