// Package fs is the embedded media.Store: files under a directory on the
// node's own disk, served by Tern itself on HMAC-signed expiring URLs. It
// needs no other service, which is what a single node or a small
// deployment wants; a cluster whose nodes do not share a disk uses
// media/s3 instead.
//
// Storage:
//   - Key "a/b/c" is the file a/b/c.obj under Dir. Keys cannot contain
//     '.', so the suffix keeps object files apart from the directories of
//     longer keys ("a/b" and "a/b/c" can both exist) and from the .tmp
//     directory.
//   - Every path goes through an os.Root on Dir, so not even a symlink
//     planted inside Dir can lead a key outside it.
//   - The content type is the first line of the object's file, after a
//     short magic, rather than in a file of its own: one file is replaced
//     by one rename, so bytes and type change together and a reader never
//     sees the type of one version with the bytes of another.
//   - Put writes to a new file in Dir/.tmp, fsyncs it, renames it over the
//     object and fsyncs the object's directory: a crash leaves either the
//     old object or the new one, never a torn file, and the object is on
//     disk once Put returns nil. A failed Put removes its temporary file;
//     only a crash can leave one, and New sweeps those that have not been
//     written to for an hour.
//   - Delete leaves empty directories behind: removing them would race with
//     a Put that has just created one for its rename.
//
// Serving: URL signs key and expiry (HMAC-SHA256 under Options.Secret, so
// a URL cannot be altered to reach another key or to last longer), and
// Handler serves such URLs under /media/files/. Whoever holds a URL may
// fetch the file until it expires, without a token, so that clients can
// hand it to a media player or the browser. Files are user content served
// from Tern's own origin, so Handler fences them in: nosniff, so a browser
// takes the stored type as given; "Content-Security-Policy: sandbox", so
// an HTML or SVG file opened in a tab runs no script with the origin's
// cookies or storage; and "Content-Disposition: attachment" for everything
// but images, video and audio (and SVG, which can carry script), so
// documents are downloaded rather than rendered.
package fs
