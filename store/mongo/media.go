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

// Media files are three collections (see the package docs, "Media
// files"): collMedia holds one document per file, _id the file id;
// collMediaShares one document per (file, chat) it was shared to, _id
// "<file>/<chat>", so that MediaFileShared is a point read of the _id
// index, a file's chats an _id range, and no document grows with the
// number of chats a file is forwarded to; collMediaRefs one document per
// message that carries the file, _id "<file>/<msg>", chat in "c".
const (
	collMedia       = "media"
	collMediaShares = "media_shares"
	collMediaRefs   = "media_refs"
	// fieldUnshared is, while no message carries a file, the time since
	// when: its creation, or the zero time once its last message went.
	// A share unsets it. The sparse index on it holds these files only,
	// which is all the collector reads.
	fieldUnshared = "unshared"
	// fieldCounted marks the files whose references are kept (those
	// recorded since they are): only those are listed again when their
	// last reference goes, as an older one may be carried by messages
	// that have none.
	fieldCounted = "rc"
	// fieldClaimed is, while the collector deletes a file, the time of
	// its claim (ClaimMediaFile): the file is gone to fetches and shares.
	// The time is also the claim's identity, for its claimer to take it
	// back, and tells a claim whose claimer stopped (mediaClaimTTL).
	fieldClaimed = "gone"
)

// mediaClaimTTL is how long a claim is its claimer's alone. A collector
// round gives up after a minute; a claim this much older was left by one
// that stopped between its claim and DeleteMediaFile, and another takes
// it over. Only one claimer at a time: a claimer that takes its claim
// back must not undo the claim of another that is deleting the file.
const mediaClaimTTL = 10 * time.Minute

// idleTime is what fieldUnshared holds for a file idle since t: the zero
// time as the Unix epoch, before any cut-off the collector uses.
func idleTime(t time.Time) time.Time {
	if t.IsZero() {
		return time.UnixMilli(0).UTC()
	}
	return t.UTC().Truncate(time.Millisecond)
}

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
	Counted   bool       `bson:"rc,omitempty"`
	Claimed   *time.Time `bson:"gone,omitempty"`
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
		Width: f.Width, Height: f.Height, Thumbnail: f.Thumbnail, Created: created, Unshared: &created, Counted: true}
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
	if d.Claimed != nil {
		// Being deleted: nobody may send it now. A claim taken back
		// (ClaimMediaFile) brings it back.
		return store.MediaFile{}, fmt.Errorf("media file %s: %w", id, store.ErrNotFound)
	}
	return d.file(), nil
}

// ShareMediaFile implements store.MediaFiles, in two round trips of
// latency on the send path: the inserts of the share and the reference,
// then the update of the file, which says whether it exists unclaimed and
// takes it off the collector's list. The reference goes first so that a
// release of another reference that runs at the same time either sees it
// (and leaves the file unlisted) or lists the file before this update
// takes it off again; only a release that looked before the insert and
// lists after the update leaves the file listed with a reference, which
// ClaimMediaFile then refuses. The update is filtered on the file being
// unclaimed: once a collector claimed it, its bytes may go at any moment,
// and the message must not be sent.
func (s *Store) ShareMediaFile(ctx context.Context, id, chatID, msgID string) error {
	if !validID(id) || !validID(chatID) || !validID(msgID) {
		return fmt.Errorf("share media file: %w", errInvalid("file, chat or message id"))
	}
	shareID, refID := pairKey(id, chatID), pairKey(id, msgID)
	// newShare, newRef: this call inserted them (no duplicate key), so
	// that a refused share takes back its own inserts only, never a share
	// or a reference that was there before (a message that was sent may
	// carry it: the collector shares a file again with a reference it
	// found).
	var newShare, newRef bool
	insert := func(c *mongo.Collection, doc bson.D, inserted *bool) func() error {
		return func() error {
			_, err := c.InsertOne(ctx, doc)
			if mongo.IsDuplicateKeyError(err) {
				return nil // shared before: nothing to do
			}
			*inserted = err == nil
			return err
		}
	}
	err := parallel(
		insert(s.mediaShares, bson.D{{Key: "_id", Value: shareID}}, &newShare),
		insert(s.mediaRefs, bson.D{{Key: "_id", Value: refID}, {Key: "c", Value: chatID}}, &newRef),
	)
	var matched int64
	if err == nil {
		var res *mongo.UpdateResult
		res, err = s.media.UpdateOne(ctx,
			bson.D{{Key: "_id", Value: id}, {Key: fieldClaimed, Value: bson.D{{Key: "$exists", Value: false}}}},
			bson.D{{Key: "$unset", Value: bson.D{{Key: fieldUnshared, Value: ""}}}})
		if err == nil {
			matched = res.MatchedCount
		}
	}
	if err == nil && matched == 0 {
		// The caller may be gone, but what this call inserted must not
		// stay.
		dctx, cancel := s.detached(ctx)
		defer cancel()
		err = s.unshare(dctx, id, shareID, refID, newShare, newRef)
		if err == nil {
			err = store.ErrNotFound
		}
	}
	if err != nil {
		return fmt.Errorf("share media file %s to %s: %w", id, chatID, err)
	}
	return nil
}

// unshare takes back the share and the reference that a refused share of
// file id inserted. The reference always goes: left behind, it would keep
// a claimed file forever (a claim that finds a reference is taken back).
// The share goes only if the file is missing: a claim may yet be taken
// back, and a send to the same chat that stored the message meanwhile
// (its insert found this one's share) needs it.
func (s *Store) unshare(ctx context.Context, id, shareID, refID string, newShare, newRef bool) error {
	if newRef {
		if _, err := s.mediaRefs.DeleteOne(ctx, bson.D{{Key: "_id", Value: refID}}); err != nil {
			return err
		}
	}
	if !newShare {
		return nil
	}
	err := s.media.FindOne(ctx, bson.D{{Key: "_id", Value: id}},
		options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if !errors.Is(err, mongo.ErrNoDocuments) {
		return err // nil: the file is there, claimed, and the share stays
	}
	_, err = s.mediaShares.DeleteOne(ctx, bson.D{{Key: "_id", Value: shareID}})
	return err
}

// ReleaseMediaFile implements store.MediaFiles: the reference's delete,
// then a look for another (an _id range with limit 1) and, if there is
// none, the listing of a counted file that is not listed yet. Each step
// runs whether or not the one before changed anything, so that a release
// cut after the delete and done again still lists the file.
func (s *Store) ReleaseMediaFile(ctx context.Context, id, msgID string, idle time.Time) error {
	if err := s.release(ctx, id, msgID, idle); err != nil {
		return fmt.Errorf("release media file %s from %s: %w", id, msgID, err)
	}
	return nil
}

// release removes the reference of message msgID to file id and lists the
// file if no reference is left. It is idempotent: a delete for everyone
// and an expiry run it after their message's new state is written, and
// again when they are redone. A file listed already keeps its time (it
// had no reference, so the time it was listed with still holds), and a
// claimed one is listed: neither is touched.
func (s *Store) release(ctx context.Context, id, msgID string, idle time.Time) error {
	if id == "" || !validID(id) || !validID(msgID) {
		return nil
	}
	if _, err := s.mediaRefs.DeleteOne(ctx, bson.D{{Key: "_id", Value: pairKey(id, msgID)}}); err != nil {
		return err
	}
	refs, err := s.MediaFileRefs(ctx, id, 1)
	if err != nil || len(refs) > 0 {
		return err
	}
	_, err = s.media.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: fieldCounted, Value: true},
		{Key: fieldUnshared, Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{{Key: "$set", Value: bson.D{{Key: fieldUnshared, Value: idleTime(idle)}}}})
	return err
}

// ClaimMediaFile implements store.MediaFiles. MongoDB has no transaction
// across these collections, so the claim is optimistic: a conditional
// update claims the file if it is listed before the cut-off and not
// claimed by another (a claim older than mediaClaimTTL is taken over),
// then the references are read. A share whose reference came before that
// read is seen, and the claim is taken back; one whose reference comes
// after it finds the file claimed in its own update, refuses the send and
// takes its reference back.
func (s *Store) ClaimMediaFile(ctx context.Context, id string, listedBefore time.Time) (bool, error) {
	if !validID(id) {
		return false, nil
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	res, err := s.media.UpdateOne(ctx, bson.D{
		{Key: "_id", Value: id},
		{Key: fieldUnshared, Value: bson.D{{Key: "$lt", Value: listedBelow(listedBefore)}}},
		{Key: "$or", Value: bson.A{
			bson.D{{Key: fieldClaimed, Value: bson.D{{Key: "$exists", Value: false}}}},
			bson.D{{Key: fieldClaimed, Value: bson.D{{Key: "$lt", Value: now.Add(-mediaClaimTTL)}}}},
		}},
	}, bson.D{{Key: "$set", Value: bson.D{{Key: fieldClaimed, Value: now}}}})
	if err != nil {
		return false, fmt.Errorf("claim media file %s: %w", id, err)
	}
	if res.MatchedCount == 0 {
		return false, nil // gone, shared, listed since, or another's
	}
	refs, err := s.MediaFileRefs(ctx, id, 1)
	if err == nil && len(refs) == 0 {
		return true, nil
	}
	// Carried (a release that raced a share listed it), or not known to
	// be free: the claim is taken back, if it is still this one.
	dctx, cancel := s.detached(ctx)
	defer cancel()
	_, uerr := s.media.UpdateOne(dctx, bson.D{{Key: "_id", Value: id}, {Key: fieldClaimed, Value: now}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: fieldClaimed, Value: ""}}}})
	if err == nil {
		err = uerr
	}
	if err != nil {
		return false, fmt.Errorf("claim media file %s: %w", id, err)
	}
	return false, nil
}

// listedBelow is the time that the files listed as idle since before
// before are below. Times are stored in whole milliseconds, and the
// driver truncates a time to them: idle < before is idle below before
// rounded up to one.
func listedBelow(before time.Time) time.Time {
	ms := before.UnixMilli()
	if before.After(time.UnixMilli(ms)) {
		ms++
	}
	return time.UnixMilli(ms)
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

// MediaFileRefs implements store.MediaFiles; the messages come in id
// order.
func (s *Store) MediaFileRefs(ctx context.Context, id string, limit int) ([]store.MediaRef, error) {
	if !validID(id) {
		return nil, nil
	}
	opts := options.Find().SetSort(bson.D{{Key: "_id", Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.mediaRefs.Find(ctx,
		bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: rangeStart(id)}, {Key: "$lt", Value: rangeEnd(id)}}}}, opts)
	var docs []struct {
		ID   string `bson:"_id"`
		Chat string `bson:"c"`
	}
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("references of media file %s: %w", id, err)
	}
	out := make([]store.MediaRef, 0, len(docs))
	for _, d := range docs {
		out = append(out, store.MediaRef{ChatID: d.Chat, MsgID: d.ID[len(id)+1:]})
	}
	return out, nil
}

// UnsharedMediaFiles implements store.MediaFiles: a range of the sparse
// {unshared} index, which holds the files no message carries only. The sort is on
// the index's key alone, so that the server reads limit entries and sorts
// nothing.
func (s *Store) UnsharedMediaFiles(ctx context.Context, before time.Time, limit int) ([]store.MediaFile, error) {
	opts := options.Find().SetSort(bson.D{{Key: fieldUnshared, Value: 1}})
	if limit > 0 {
		opts.SetLimit(int64(limit))
	}
	cur, err := s.media.Find(ctx, bson.D{{Key: fieldUnshared, Value: bson.D{{Key: "$lt", Value: listedBelow(before)}}}}, opts)
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

// DeleteMediaFile implements store.MediaFiles. The file, its shares and
// its references go at once, in one round trip of latency. A deletion
// cut halfway leaves either shares and references of no file (MediaFile
// says it is gone, and ids are never reused) or the file without them
// (its bytes, which the caller deletes first, are gone already); a retry
// removes all, since they are deleted whether or not the file is still
// there.
func (s *Store) DeleteMediaFile(ctx context.Context, id string) error {
	if !validID(id) {
		return fmt.Errorf("delete media file: %w", errInvalid("file id"))
	}
	byFile := bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: rangeStart(id)}, {Key: "$lt", Value: rangeEnd(id)}}}}
	err := parallel(
		func() error {
			_, err := s.media.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}})
			return err
		},
		func() error {
			_, err := s.mediaShares.DeleteMany(ctx, byFile)
			return err
		},
		func() error {
			_, err := s.mediaRefs.DeleteMany(ctx, byFile)
			return err
		},
	)
	if err != nil {
		return fmt.Errorf("delete media file %s: %w", id, err)
	}
	return nil
}
