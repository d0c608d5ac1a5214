// Package imaging decides what an uploaded file is and makes images safe
// to pass on, before the upload handler hands the bytes to a media.Store.
//
// The client's Content-Type is a claim by the sender, and the recipients'
// apps act on the type the server states: a file must therefore be named
// by its bytes (Sniff), and a kind only takes the types its recipients'
// apps can show (an "image" that is really a program, or a video sent as
// a voice note, is refused with a *TypeError, HTTP 415). Documents take
// anything: they are served with a sandboxing CSP as attachments.
//
// A photo tells more than its picture: EXIF carries where (GPS) and when
// it was taken and with which phone, XMP and IPTC what an editor added,
// JFIF and EXIF thumbnails what a crop cut away. Process writes what
// others download without any of that, changing nothing else: JPEG, PNG
// and WebP are rewritten block by block, keeping the image data byte for
// byte, since encoding again would lose quality on every forward. The one
// exception is the EXIF orientation, which the stripped tag no longer
// carries: a JPEG or PNG taken sideways is encoded again upright (a
// WebP, which cannot be encoded here, keeps that one tag).
//
// A thumbnail is made on the server, never taken from the client, so it
// cannot show something other than the picture, and the size reported is
// the size of the picture as displayed.
//
// The Image kind leaves out HEIC/HEIF and AVIF although phones take
// photos in them: nothing here decodes them, so their EXIF could be
// neither read nor stripped, nor a thumbnail made. Phones convert to JPEG
// when sharing; the original file can still be sent as a document,
// which, like any document, is passed on as it is.
//
// Images are decoded in memory, so an image is refused by the size its
// header claims before anything is decoded (Options.MaxPixels), and the
// structure of a JPEG (segments, progressive scans) and of a RIFF or PNG
// container is bounded before decoding, since a small file can claim a
// huge picture or cost a decoder minutes.
//
// Everything here is a pure function of the bytes it is given: files are
// read through io.ReaderAt and written to an io.Writer, and there is no
// state between calls.
package imaging
