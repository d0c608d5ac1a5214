// Package webpushtest is a local Web Push service with the browsers behind
// it, for tests of code that sends through push/webpush. It is a test
// helper, like net/http/httptest: import it only from _test.go files.
//
// Start serves HTTPS on 127.0.0.1 with a test certificate that only
// Client trusts, so the sender must use it:
//
//	r := webpushtest.Start(t)
//	r.ExpectVAPID(keys.Public)
//	n, err := webpush.New(webpush.Config{VAPID: keys, Subscriber: "ops@example.org", HTTPClient: r.Client()})
//	sub := r.NewSubscription(t) // give sub.Token() to the device record
//
// NewSubscription makes what a browser would: a P-256 key pair, a 16-byte
// auth secret and an endpoint of its own on the receiver. For each push
// the receiver checks the VAPID authorization (RFC 8292: "vapid t=JWT,
// k=KEY", the JWT ES256-signed by k, aud the receiver's origin, exp in
// the next 24 hours, sub a contact) and decrypts the aes128gcm body
// (RFC 8188, 8291) with the subscription's keys, and records the result
// as a Push. A push that fails the checks is answered 401 or 403 as a
// real push service would (one that does not decrypt is answered 201: only
// the browser could tell) and is reported with t.Errorf, unless
// ReportErrors(false) was called; it is recorded either way, with Err set.
//
// Fail, FailNext and Gone make a subscription answer an error instead,
// for a number of pushes or for good; such pushes are counted by Attempts
// but neither checked nor recorded. A push to an endpoint the receiver did
// not make, or anything but a POST, fails the test.
package webpushtest
