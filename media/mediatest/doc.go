// Package mediatest checks that a media.Store adapter keeps the promises
// of the media.Store interface, through the adapter itself and, for URL,
// through plain HTTP GETs as a client would make them. Every adapter's
// tests call Run, so that media/fs and media/s3 (and any later adapter)
// are held to one definition of the contract instead of each test
// re-deciding what Put, Open, URL and Delete mean.
//
// The suite only uses keys under a random prefix it chooses per Run and
// deletes what it wrote when each subtest ends, so it may run against a
// shared bucket or directory. Open is called once per subtest; an adapter
// may return the same store every time or a fresh one.
//
// What the suite accepts where the interface leaves room:
//   - A Put whose reader fails must return an error and must never make a
//     partial object visible. If an older object was under the key, it may
//     stay (whole, as it was) or be gone; both adapters keep it.
//   - A URL altered to reach another key, or used after it expired, may be
//     refused with any 4xx status (both adapters answer 403); what matters
//     is that it never serves, least of all the other object's bytes.
//   - A URL for a key with no object is refused with a 4xx status (S3 may
//     answer 403 rather than 404 when the credentials cannot list).
//
// The expiry check polls until the URL is refused, with a generous
// deadline, rather than sleeping for a fixed time, so it does not flake on
// a slow machine and costs only about the ttl on a fast one.
package mediatest
