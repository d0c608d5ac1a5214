// Package fcm is the push adapter for Firebase Cloud Messaging (HTTP v1,
// through firebase.google.com/go/v4), which reaches Android apps directly
// and iOS apps through APNs.
//
// It sends data-only messages: the payload of push.Data, the chat id as
// Android collapse key and APNs collapse id, Android priority high for
// messages and normal otherwise, and a content-available APNs payload.
//
// # Retries
//
// The SDK retries by itself, and this package adds no retries of its own:
// a 503 and any transport error (including a failed OAuth token fetch) are
// tried again up to 4 times, after 0, 1, 2 and 4 seconds, or after the
// response's Retry-After if that is longer (giving up at once if it is over
// two minutes). So a call against a dead service ends after about 7
// seconds, unless ctx ends it sooner. Nothing else is retried: 429 and 500
// come back at once. Whatever is still failing then comes back as
// push.ErrTemporary with the response's Retry-After, for the caller's queue
// to try later.
//
// # Errors
//
// UNREGISTERED and an INVALID_ARGUMENT that blames the token become
// push.ErrUnregistered; 429 (QUOTA_EXCEEDED), 500 (INTERNAL), 503
// (UNAVAILABLE), transport failures and the end of ctx become
// push.ErrTemporary; anything else (a bad message, bad credentials,
// SENDER_ID_MISMATCH, which the wrong project's credentials get for every
// token, an APNs certificate problem) is returned as a permanent error.
package fcm
