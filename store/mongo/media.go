package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// Media files are two collections (see the package docs, "Media files"):
// collMedia holds one document per file, _id the file id; collMediaShares
// one document per (file, chat) it was shared to, _id "<file>/<chat>", so
// that MediaFileShared is a point read of the _id index, a file's chats an
// _id range, and no document grows with the number of chats a file is
// forwarded to.
const (
	collMedia       = "media"
	collMediaShares = "media_shares"
	// fieldUnshared is a file's creation time while no chat has it; the
	// first share unsets it. The sparse index on it holds the unshared
	// files only, which is all the collector reads.
	fieldUnshared = "unshared"
)

type mediaDoc struct {
	ID        string     `bson:"_id"`
	Owner     string     `bson:"owner"`
	Key       string     `bson:"key"`
	Kind      string     `bson:"kind"`
	MIME      string     `bson:"mime"`
	Size      int64      `bson:"size"`
	SHA256    string     `bson:"sha256"`
	Width     int        `bson:"w,omitempty"`
	Height    int        `bson:"h,omitempty"`
	Thumbnail []byte     `bson:"thumb,omitempty"`
	Created   time.Time  `bson:"created"`
	Unshared  *time.Time `bson:"unshared,omitempty"`
}

func (d *mediaDoc) file() store.MediaFile {
	return store.MediaFile{ID: d.ID, Owner: d.Owner, Key: d.Key, Kind: d.Kind, MIME: d.MIME, Size: d.Size,
		SHA256: d.SHA256, Width: d.Width, Height: d.Height, Thumbnail: d.Thumbnail, CreatedAt: d.Created}
}

// CreateMediaFile implements store.MediaFiles: one insert, which the _id
// index makes the conflict check too.
func (s *Store) CreateMediaFile(ctx context.Context, f store.MediaFile) error {
	if !validID(f.ID) || !validID(f.Owner) {
		return fmt.Errorf("create media file: %w", errInvalid("file or owner id"))
	}
	created := f.CreatedAt.UTC().Truncate(time.Millisecond)
	d := mediaDoc{ID: f.ID, Owner: f.Owner, Key: f.Key, Kind: f.Kind, MIME: f.MIME, Size: f.Size, SHA256: f.SHA256,
		Width: f.Width, Height: f.Height, Thumbnail: f.Thumbnail, Created: created, Unshared: &created}
	_, err := s.media.InsertOne(ctx, d)
	if mongo.IsDuplicateKeyError(err) {
		err = store.ErrConflict
	}
	if err != nil {
		return fmt.Errorf("create media file %s: %w", f.ID, err)
	}
	return nil
}

// MediaFile implements store.MediaFiles.
func (s *Store) MediaFile(ctx context.Context, id string) (store.MediaFile, error) {
	var d mediaDoc
	if err := s.media.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.MediaFile{}, fmt.Errorf("media file %s: %w", id, notFound(err))
	}
	return d.file(), nil
}

// ShareMediaFile implements store.MediaFiles. It runs on the send path,
// so its two writes go at once, one round trip of latency: the update of
// the file, which says whether it exists and takes it out of the
// collector's index, and the insert of the share. Only when the file turns
// out missing does a third take the share back.
func (s *Store) ShareMediaFile(ctx context.Context, id, chatID string) error {
	if !validID(id) || !validID(chatID) {
		return fmt.Errorf("share media file: %w", errInvalid("file or chat id"))
	}
	shareID := pairKey(id, chatID)
	var matched int64
	err := parallel(
		func() error {
			res, err := s.media.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}},
				bson.D{{Key: "$unset", Value: bson.D{{Key: fieldUnshared, Value: ""}}}})
			if err == nil {
				matched = res.MatchedCount
			}
			return err
		},
		func() error {
			_, err := s.mediaShares.InsertOne(ctx, bson.D{{Key: "_id", Value: shareID}})
			if mongo.IsDuplicateKeyError(err) {
				return nil // shared before: nothing to do
			}
			return err
		},
	)
	if err == nil && matched == 0 {
		// The caller may be gone, but a share of no file must not stay.
		dctx, cancel := s.detached(ctx)
		defer cancel()
		_, err = s.mediaShares.DeleteOne(dctx, bson.D{{Key: "_id", Value: shareID}})
		if err == nil {
			err = store.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("share media file %s to %s: %w", id, chatID, err)
	}
	return nil
}

// MediaFileShared implements store.MediaFiles: a point read of the _id
// index, which the projection lets the server answer from the index alone.
func (s *Store) MediaFileShared(ctx context.Context, id, chatID string) (bool, error) {
	if !validID(id) || !validID(chatID) {
		return false, nil
	}
	err := s.mediaShares.FindOne(ctx, bson.D{{Key: "_id", Value: pairKey(id, chatID)}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("share of media file %s to %s: %w", id, chatID, err)
	}
	return true, nil
}

// MediaFileChats implements store.MediaFiles; the chats come in id order.
func (s *Store) MediaFileChats(ctx context.Context, id string, limit int) ([]string, error) {
	if !validID(id) {
		return nil, nil
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.mediaShares.Find(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: rangeStart(id)}, {Key: "$lt", Value: rangeEnd(id)}}}}, opts)
	var docs []struct {
		ID string `bson:"_id"`
	}
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("chats of media file %s: %w", id, err)
	}
	out := make([]string, 0, len(docs))
	for _, d := range docs {
		out = append(out, d.ID[len(id)+1:])
	}
	return out, nil
}

// UnsharedMediaFiles implements store.MediaFiles: a range of the sparse
// {unshared} index, which holds the unshared files only. The sort is on
// the index's key alone, so that the server reads limit entries and sorts
// nothing.
func (s *Store) UnsharedMediaFiles(ctx context.Context, before time.Time, limit int) ([]store.MediaFile, error) {
	// Times are stored in whole milliseconds, and the driver truncates a
	// time to them: created < before is created below before rounded up.
	ms := before.UnixMilli()
	if before.After(time.UnixMilli(ms)) {
		ms++
	}
	opts := options.Find().SetSort(bson.D{{Key: fieldUnshared, Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.media.Find(ctx, bson.D{{Key: fieldUnshared, Value: bson.D{{Key: "$lt", Value: time.UnixMilli(ms)}}}}, opts)
	var docs []mediaDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("unshared media files: %w", err)
	}
	out := make([]store.MediaFile, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].file())
	}
	return out, nil
}

// DeleteMediaFile implements store.MediaFiles. The file and its shares go
// at once, in one round trip of latency. A deletion cut halfway leaves
// either shares of no file (MediaFile says it is gone, and ids are never
// reused) or the file without its shares (its bytes, which the caller
// deletes first, are gone already); a retry removes both, since the
// shares are deleted whether or not the file is still there.
func (s *Store) DeleteMediaFile(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("delete media file: %w", errInvalid("file id"))
	}
	err := parallel(
		func() error {
			_, err := s.media.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
			return err
		},
		func() error {
			_, err := s.mediaShares.DeleteMany(ctx,
				bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: rangeStart(id)}, {Key: "$lt", Value: rangeEnd(id)}}}})
			return err
		},
	)
	if err != nil {
		return fmt.Errorf("delete media file %s: %w", id, err)
	}
	return nil
}
