package store

import (
	"context"
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

// MediaFiles keeps the records of uploaded files and the chats each was
// sent to: the uploader and the members of those chats may fetch it.
type MediaFiles interface {
	// CreateMediaFile stores f; ErrConflict if its id exists.
	CreateMediaFile(ctx context.Context, f MediaFile) error
	// MediaFile returns the record id; ErrNotFound if there is none.
	MediaFile(ctx context.Context, id string) (MediaFile, error)
	// ShareMediaFile records that a message of chatID carries file id
	// (before the message is sent, so that a member who sees the message
	// may fetch the file). Sharing again is not an error; ErrNotFound if
	// there is no such file.
	ShareMediaFile(ctx context.Context, id, chatID string) error
	// MediaFileShared reports whether file id was shared to chatID.
	MediaFileShared(ctx context.Context, id, chatID string) (bool, error)
	// MediaFileChats lists up to limit chats file id was shared to, in no
	// particular order.
	MediaFileChats(ctx context.Context, id string, limit int) ([]string, error)
	// UnsharedMediaFiles lists up to limit files created before before
	// that were never shared, oldest first: what the collector may
	// delete.
	UnsharedMediaFiles(ctx context.Context, before time.Time, limit int) ([]MediaFile, error)
	// DeleteMediaFile removes the record and its shares (not the bytes:
	// the caller deletes those first). A missing file is not an error.
	DeleteMediaFile(ctx context.Context, id string) error
}
