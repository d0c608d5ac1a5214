package store

import (
	"bytes"
	"context"
	"encoding/json"
	"time"
)

// PrefixMedia starts media ids (the media_id of the wire).
const PrefixMedia = "f"

// MediaFile is the record of an uploaded file. Its bytes are in a
// media.Store under Key; the record is what a message carries (type,
// size, hash, dimensions, thumbnail) and who may fetch it.
type MediaFile struct {
	ID     string // PrefixMedia + NewID
	Owner  string // the uploader's user id
	Key    string // the object's key in the media store
	Kind   string // image, video, audio, document or sticker
	MIME   string // as sniffed from the content
	Size   int64
	SHA256 string // hex, of the bytes stored (metadata stripped)
	// Width and Height are an image's (or a video's, when known), as
	// displayed; 0 when unknown.
	Width, Height int
	Thumbnail     []byte // a small JPEG, for images; nil when none
	CreatedAt     time.Time
}

// MediaRef is a message that carries a file: the file goes once no
// message does (deleted for everyone, expired).
type MediaRef struct {
	ChatID string
	MsgID  string
}

// MediaFiles keeps the records of uploaded files, the chats each was sent
// to (the uploader and the members of those chats may fetch it) and the
// messages that carry it (it is deleted when the last of them goes).
//
// A file is listed for the collector (UnsharedMediaFiles) from its upload
// until its first share, and again once its last reference is released,
// as idle since the time the releaser says. Files recorded before
// references were kept are never listed again once shared: a message of
// theirs without a reference must not lose its file.
//
// The collector claims a listed file (ClaimMediaFile) before it deletes
// anything: from the claim on, the file is gone to MediaFile and
// ShareMediaFile, so that a forward racing the deletion is refused rather
// than stored with a file about to go.
type MediaFiles interface {
	// CreateMediaFile stores f; ErrConflict if its id exists.
	CreateMediaFile(ctx context.Context, f MediaFile) error
	// MediaFile returns the record id; ErrNotFound if there is none, or
	// if it is claimed (ClaimMediaFile).
	MediaFile(ctx context.Context, id string) (MediaFile, error)
	// ShareMediaFile records that message msgID of chatID carries file id
	// (before the message is sent, so that a member who sees the message
	// may fetch the file) and takes the file off the collector's list.
	// Sharing again is not an error; ErrNotFound if there is no such
	// file, or if it is claimed: the message must not be sent.
	ShareMediaFile(ctx context.Context, id, chatID, msgID string) error
	// ReleaseMediaFile removes the reference of message msgID to file id.
	// If that was the file's last reference, the file is listed for the
	// collector as idle since idle: its creation time gives it the grace
	// of an upload never sent, the zero time has it go at the next
	// collection. A missing reference or file is not an error; a release
	// done again completes one that stopped halfway.
	ReleaseMediaFile(ctx context.Context, id, msgID string, idle time.Time) error
	// ClaimMediaFile takes file id for deletion, if it is still listed
	// for the collector as idle since before listedBefore and no message
	// carries it, and reports whether it did. A claimed file stays listed
	// (a collector that stops before DeleteMediaFile leaves it to the
	// next round), and is gone to MediaFile and ShareMediaFile: only then
	// may the collector delete its bytes, then DeleteMediaFile. A claim
	// left by a collector that stopped is given again: at once where
	// claims are final (one writer), after a while where a claim can be
	// taken back (see the store's docs). false, not an error, if the file
	// is missing, no longer listed, listed since, or carried.
	ClaimMediaFile(ctx context.Context, id string, listedBefore time.Time) (bool, error)
	// MediaFileShared reports whether file id was shared to chatID.
	MediaFileShared(ctx context.Context, id, chatID string) (bool, error)
	// MediaFileChats lists up to limit chats file id was shared to, in no
	// particular order.
	MediaFileChats(ctx context.Context, id string, limit int) ([]string, error)
	// MediaFileRefs lists up to limit messages that carry file id, in no
	// particular order.
	MediaFileRefs(ctx context.Context, id string, limit int) ([]MediaRef, error)
	// UnsharedMediaFiles lists up to limit files on the collector's list
	// that are idle since before before (never shared: since their
	// creation), longest idle first, claimed ones included. A file may be
	// listed that a message carried again meanwhile (a release that raced
	// a share): ClaimMediaFile refuses it, and the collector shares it
	// again to take it off the list.
	UnsharedMediaFiles(ctx context.Context, before time.Time, limit int) ([]MediaFile, error)
	// DeleteMediaFile removes the record, its shares and references (not
	// the bytes: the caller deletes those first). A missing file is not an
	// error.
	DeleteMediaFile(ctx context.Context, id string) error
}

// MediaOf is the media_id of a message body, "" if it carries no file:
// what a delete for everyone or an expiry releases (ReleaseMediaFile).
func MediaOf(body json.RawMessage) string {
	if !bytes.Contains(body, []byte(`"media_id"`)) {
		return "" // most bodies: no decoding
	}
	var b struct {
		MediaID string `json:"media_id"`
	}
	if json.Unmarshal(body, &b) != nil {
		return ""
	}
	return b.MediaID
}
