// Package s3 is the media.Store of a cluster: files in a bucket of any
// S3-compatible object store (AWS S3, MinIO, Ceph RGW, versitygw, ...),
// which every node reaches, so that a file put through one node can be
// opened through any other and clients download it from the object store
// itself, on presigned GET URLs, without the bytes passing through Tern.
//
// Choices, and why:
//   - Path-style requests (endpoint/bucket/key), never virtual-host style:
//     they work with every S3-compatible server and need no wildcard DNS
//     or certificate for bucket subdomains. AWS still serves them.
//   - The region is fixed in Options (us-east-1 unless told otherwise)
//     rather than looked up: the client then never asks the server for the
//     bucket's location, and presigning needs no network at all.
//   - Open creates the bucket if it is missing, so a fresh MinIO needs no
//     setup step, and tolerates another node creating it at the same time.
//     It checks the bucket before returning, so a wrong endpoint or wrong
//     keys fail at start-up rather than at the first upload.
//   - Keys are object names as they are (behind Options.Prefix, if set):
//     media.ValidKey keeps them to [a-z0-9_-/], which needs no escaping in
//     a URL path and has no meaning to S3.
//   - Put streams. Objects up to partSize (16 MiB: photos, voice notes,
//     most videos) go up in one PUT, read straight from the caller's
//     reader; larger ones as a multipart upload of 16 MiB parts, one part
//     buffered at a time. S3 has no streaming multipart without a buffer:
//     every part must have a known length (and, on plain HTTP, a
//     signature over its bytes). 16 MiB bounds the memory of a large
//     upload (n concurrent ones hold n × 16 MiB) and still allows 10,000 × 16 MiB = 160 GiB objects, far more
//     than any file a messenger accepts. The reader is passed on as a
//     plain io.Reader, never as the io.ReaderAt or io.Seeker it may also
//     be, because the client library would then read parts at absolute
//     offsets from 0, ignoring the reader's position. (So a single PUT is
//     not retried on a network error, having no body to rewind; the
//     buffered parts of a multipart upload are.)
//   - Put enforces that size is exact: a reader that ends early or has
//     more bytes fails the request before S3 completes it. A single PUT is
//     atomic in S3, and a multipart upload becomes visible only when it is
//     completed (a failed one is aborted), so a failed Put never leaves a
//     partial object, and an object that was under the key stays whole.
//     What no remote store can promise: a Put whose connection or ctx
//     fails after S3 had the whole body may return an error although S3
//     stored the object.
//   - URL presigns a GET (AWS signature V4 in the query string). The
//     signature covers the bucket, the key and the expiry, so a URL cannot
//     be changed to reach another object or to last longer, and it needs
//     no call to S3. S3 accepts expiries from 1 second to 7 days; URL
//     clamps ttl into that range and counts it in whole seconds from the
//     signing second, and the expiry it returns is read back from the
//     signed URL, so it is exact.
//
// What S3 does not do that media/fs does: the object store serves the
// bytes with the stored Content-Type and no nosniff, sandbox or
// attachment headers. The URLs are on the object store's origin, not
// Tern's, so a hostile HTML file reaches no Tern cookie or storage; do not
// serve the bucket from a host under Tern's own site.
package s3
