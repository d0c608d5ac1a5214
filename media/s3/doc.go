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
//     most videos) go up in one PUT; larger ones as a multipart upload of
//     16 MiB parts, which allows 10,000 × 16 MiB = 160 GiB objects, far
//     more than any file a messenger accepts. How the bytes are read
//     depends on the reader:
//   - A reader that is an io.ReaderAt and an io.Seeker (an *os.File, an
//     *io.SectionReader: the server passes its temporary file) is handed
//     to minio-go as an io.SectionReader from the reader's position, and
//     minio-go reads each part at its offset, up to partUploads (4) parts
//     at once, with no part buffer: an upload holds a connection and some
//     0.5 MiB per part in flight (on plain HTTP, where each 64 KiB chunk is
//     signed, most of it that chunk and its signed copy), whatever the
//     part size. A part (or a single PUT) that fails on the network is
//     retried, read again from its offset.
//   - Any other reader is passed on as a plain io.Reader, which minio-go
//     buffers a part at a time (16 MiB per such upload in flight, one part
//     after another): S3 has no streaming multipart without a buffer or
//     random access, since every part must have a known length (and, on
//     plain HTTP, a signature over its bytes). A single PUT of such a
//     reader is not retried, having no body to rewind; the buffered parts
//     of a multipart upload are.
//   - Put enforces that size is exact: a reader that ends early or has
//     more bytes fails the request before S3 completes it. A single PUT is
//     atomic in S3, and a multipart upload becomes visible only when it is
//     completed (a failed one is aborted), so a failed Put never leaves a
//     partial object, and an object that was under the key stays whole.
//     The reader's first failure cancels the upload rather than letting
//     minio-go retry the part: the reader would fail again, and the
//     retries' backoff takes seconds.
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
