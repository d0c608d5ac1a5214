// Package media keeps the files users send (images, video, audio,
// documents, stickers) apart from the message store: a message refers to
// a file by its media id, and clients fetch the bytes from an expiring URL
// that needs no token, so that downloads never pass through a node's
// WebSocket or API handlers.
//
// Store is the small interface its adapters share and media/mediatest
// checks: media/fs (files under the data dir, served by Tern itself on
// HMAC-signed expiring URLs) and media/s3 (any S3-compatible object store,
// presigned GET URLs). What a file is (its kind, type, size limits,
// thumbnail, metadata stripping) is decided before it reaches a Store, in
// media/imaging and the upload handler; a Store only keeps bytes.
package media
