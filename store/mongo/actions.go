package mongo

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// Message actions and disappearing messages. An action is a send: its
// entry takes the chat's next seq under the chat lock, and its effect on
// the target (store.ApplyAction) is computed under the lock from the
// target as stored, then written after the entry is in the log and before
// the commit. The entry records the action, so that rollForward, finishing
// an entry a dead holder left, applies it again: ApplyAction only sets
// state, so applying it to its own result changes nothing. An entry
// hidden from a user who can see the target is stored and delivered but
// leaves the target as it is, and a timer change hidden from someone
// leaves the chat's timer (store.TimerChange). In a group, an action's
// entry goes only to the members who can see its target (see seeing).
// The package docs ("Actions and expiry") tell how this stays whole
// against the expiry sweeper, which holds no lock.

// Fields of log entries written by actions and expiry.
const (
	fieldBody      = "body"
	fieldReply     = "reply"
	fieldEdited    = "ed"
	fieldDeleted   = "del"
	fieldReactions = "rx"
	fieldEditSeqs  = "es"
	fieldExpires   = "exp"
	fieldDue       = "due"
	fieldAction    = "act"
	// fieldReleased is the media file a message no longer carries (it
	// was deleted for everyone, or expired), written with its new state
	// so that a redo that finds that state written still knows which file
	// to release. On an expired entry it stays only until the release is
	// done (see expire); on a deleted one it stays.
	fieldReleased = "mf"
	// fieldTimer is the chat document's disappearing timer, in seconds.
	fieldTimer = "dis"
)

// actionDoc is a store.Action in its entry, without Check, which ran when
// the entry was written.
type actionDoc struct {
	Kind    string `bson:"k"`
	Target  string `bson:"t,omitempty"`
	Emoji   string `bson:"e,omitempty"`
	Body    []byte `bson:"b,omitempty"`
	Seconds int64  `bson:"s,omitempty"`
}

func actionDocOf(a *store.Action) *actionDoc {
	if a == nil {
		return nil
	}
	return &actionDoc{Kind: a.Kind, Target: a.Target, Emoji: a.Emoji, Body: a.Body, Seconds: a.Seconds}
}

func (d *actionDoc) action() *store.Action {
	if d == nil {
		return nil
	}
	return &store.Action{Kind: d.Kind, Target: d.Target, Emoji: d.Emoji, Body: d.Body, Seconds: d.Seconds}
}

// timerFields are the chat fields entry m with action a sets when it is
// committed: the disappearing timer, for a change of it that is hidden
// from nobody (store.TimerChange).
func timerFields(m *store.Message, a *store.Action) bson.D {
	n, ok := store.TimerChange(m, a)
	if !ok {
		return nil
	}
	return bson.D{{Key: fieldTimer, Value: n}}
}

// effect is what an action does to its target.
type effect struct {
	target store.Message // as the action leaves it (as it was unless applied)
	erase  []int64       // the seqs of edit entries whose text goes
	// applied: the target is written back. An entry hidden from a user
	// who can see the target changes nothing (store.ApplyAction).
	applied bool
	// released is the media file the target no longer carries (deleted
	// for everyone), if any.
	released string
}

// applyWithMedia is store.ApplyAction, which also says what media file
// the target no longer carries.
func applyWithMedia(t, m *store.Message, act *store.Action) (*effect, error) {
	file := store.MediaOf(t.Body)
	applied, erase, err := store.ApplyAction(t, m, act)
	if err != nil {
		return nil, err
	}
	eff := &effect{target: *t, erase: erase, applied: applied}
	if applied && t.Deleted && store.MediaOf(t.Body) != file {
		eff.released = file
	}
	return eff, nil
}

// seeing returns the members of group g who can see its message at seq,
// in g's order: those who joined at or before it. An action's entry goes
// to their devices only: a member who joined after its target must not
// learn of it.
func seeing(g *store.Group, seq int64) []string {
	out := make([]string, 0, len(g.Members))
	for i := range g.Members {
		if g.Members[i].JoinedSeq <= seq {
			out = append(out, g.Members[i].UserID)
		}
	}
	return out
}

// actOn reads the target of act, the action of entry m (its seq set),
// under l, runs the caller's Check on it and works out the action's
// effect. It writes nothing.
func (s *Store) actOn(ctx context.Context, l *chatLock, m *store.Message, act *store.Action) (*effect, error) {
	t, err := s.target(ctx, l, act.Target)
	if err != nil {
		return nil, err
	}
	if act.Check != nil {
		var g *store.Group
		if l.group != nil {
			c := cloneGroup(l.group)
			g = &c
		}
		if err := act.Check(&t, g); err != nil {
			return nil, &callerError{err}
		}
	}
	return applyWithMedia(&t, m, act)
}

// target reads message msgID of l's chat as committed: one seek on the
// unique {id} index.
func (s *Store) target(ctx context.Context, l *chatLock, msgID string) (store.Message, error) {
	var d msgDoc
	err := s.messages.FindOne(ctx, bson.D{{Key: "id", Value: msgID}, {Key: "chat", Value: l.chatID}},
		options.FindOne().SetProjection(msgProjection)).Decode(&d)
	if err == nil && d.Msg.Seq > l.seq {
		err = mongo.ErrNoDocuments
	}
	if err != nil {
		return store.Message{}, fmt.Errorf("message %s in %s: %w", msgID, l.chatID, notFound(err))
	}
	return *d.Msg.message(), nil
}

// applyEffect writes eff, the effect of the action of kind in entry m,
// which is in the log: first the erasure of edit entries, then the
// target's state, then the release of the file the target no longer
// carries. The erasures come first because a delete applied again (by
// rollForward) finds its target deleted and erases nothing: they must be
// stored by the time the target says it was deleted. The release comes
// last because a file listed while its message still shows it can be
// collected from under it, if the write of the message fails; the state
// names the file (fieldReleased), so that a redo that finds the target
// deleted releases it again (reapply).
func (s *Store) applyEffect(ctx context.Context, m *store.Message, kind string, eff *effect) error {
	t := &eff.target
	if err := s.eraseEdits(ctx, t.ChatID, t.ID, eff.erase); err != nil {
		return err
	}
	filter := bson.D{{Key: "_id", Value: numKey(t.ChatID, t.Seq)}}
	if t.ExpiresTS != 0 {
		// ExpireDue holds no lock and may have expired the target since
		// it was read: the state read then must not bring it back.
		filter = append(filter, stillDue())
	}
	var note bson.D
	if eff.released != "" {
		note = bson.D{{Key: fieldReleased, Value: eff.released}}
	}
	res, err := s.messages.UpdateOne(ctx, filter, stateUpdate(t, note...))
	if err != nil {
		return fmt.Errorf("state of message %s: %w", t.ID, err)
	}
	// Whether or not the state was written: unwritten, the target expired
	// meanwhile, and shows its file no more than deleted.
	if err := s.release(ctx, eff.released, t.ID, time.Time{}); err != nil {
		return fmt.Errorf("media of message %s: %w", t.ID, err)
	}
	if res.MatchedCount == 0 && kind == store.ActionEdit {
		// Expired meanwhile: the sweep erased the edits the target
		// listed, which did not include this one yet.
		return s.eraseEdits(ctx, t.ChatID, t.ID, []int64{m.Seq})
	}
	return nil
}

// releaseNoted releases again the media file that target t's state names
// (fieldReleased), if any: a delete for everyone redone by rollForward
// finds its target deleted already, without the file in its body, and
// its release may not have run (its node stopped after the write).
// Releasing is idempotent, so one that ran is only done again.
func (s *Store) releaseNoted(ctx context.Context, t *store.Message) error {
	var d struct {
		File string `bson:"mf"`
	}
	err := s.messages.FindOne(ctx, bson.D{{Key: "_id", Value: numKey(t.ChatID, t.Seq)}},
		options.FindOne().SetProjection(bson.D{{Key: fieldReleased, Value: 1}})).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return nil
	}
	if err == nil {
		err = s.release(ctx, d.File, t.ID, time.Time{})
	}
	if err != nil {
		return fmt.Errorf("media of message %s: %w", t.ID, err)
	}
	return nil
}

// reapply applies again act, the action of entry m, which a holder of the
// lock left in the log, maybe applied already, to its target t as read
// under the lock (nil: not found, with err).
//
// A delete that finds its target deleted (by itself, before its holder
// stopped, or by an earlier delete) or expired releases the file the
// target's state names again: its own release may not have run.
func (s *Store) reapply(ctx context.Context, m *store.Message, act *store.Action, t *store.Message, err error) error {
	if t != nil {
		deleted := t.Deleted
		var eff *effect
		if eff, err = applyWithMedia(t, m, act); err == nil {
			if !eff.applied {
				return nil // hidden from a user who sees the target
			}
			if err := s.applyEffect(ctx, m, act.Kind, eff); err != nil {
				return err
			}
			if act.Kind == store.ActionDelete && deleted {
				return s.releaseNoted(ctx, t)
			}
			return nil
		}
	}
	if !errors.Is(err, store.ErrNotFound) && !errors.Is(err, store.ErrConflict) {
		return err
	}
	// Its writer applied it under the lock; the target can only have
	// expired since (nothing else changes it without the lock). The entry
	// stays, as every entry does; an edit's text goes with the target's.
	s.log.Info("store/mongo: completing an action whose target has gone",
		"chat", m.ChatID, "seq", m.Seq, "target", act.Target, "err", err)
	switch {
	case act.Kind == store.ActionEdit:
		return s.eraseEdits(ctx, m.ChatID, act.Target, []int64{m.Seq})
	case act.Kind == store.ActionDelete && t != nil:
		return s.releaseNoted(ctx, t)
	}
	return nil
}

// stateUpdate gives a log entry t's body and the state actions left, and
// sets the fields extra. Fields at their zero value are removed, so that
// an entry without reactions or edits carries none of their fields.
func stateUpdate(t *store.Message, extra ...bson.E) bson.D {
	set := append(bson.D{{Key: fieldBody, Value: []byte(t.Body)}}, extra...)
	var unset bson.D
	put := func(key string, v any, zero bool) {
		if zero {
			unset = append(unset, bson.E{Key: key, Value: ""})
		} else {
			set = append(set, bson.E{Key: key, Value: v})
		}
	}
	put(fieldEdited, t.EditedTS, t.EditedTS == 0)
	put(fieldDeleted, t.Deleted, !t.Deleted)
	put(fieldReactions, reactionDocs(t.Reactions), len(t.Reactions) == 0)
	put(fieldEditSeqs, t.EditSeqs, len(t.EditSeqs) == 0)
	update := bson.D{{Key: "$set", Value: set}}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	return update
}

// notExpired matches the entries ExpireDue has not expired: those that
// never expire and those still due.
func notExpired() bson.E {
	return bson.E{Key: "$or", Value: bson.A{
		bson.D{{Key: fieldExpires, Value: bson.D{{Key: "$exists", Value: false}}}},
		bson.D{stillDue()},
	}}
}

// stillDue matches the disappearing entries ExpireDue has not expired. An
// expired entry whose file is still to be released keeps due at 0 until
// it is (see expire): it is expired, yet still in the sweep's index.
func stillDue() bson.E {
	return bson.E{Key: fieldDue, Value: bson.D{{Key: "$gt", Value: 0}}}
}

// eraseEdits writes store.ErasedEditBody over the edit entries seqs of
// chatID, edits of message msgID, and drops the action they hold, which
// has the same text. An edit entry that expired itself keeps the
// tombstone it has.
func (s *Store) eraseEdits(ctx context.Context, chatID, msgID string, seqs []int64) error {
	if len(seqs) == 0 {
		return nil
	}
	body := []byte(store.ErasedEditBody(msgID))
	models := make([]mongo.WriteModel, len(seqs))
	for i, seq := range seqs {
		models[i] = mongo.NewUpdateOneModel().
			SetFilter(bson.D{{Key: "_id", Value: numKey(chatID, seq)}, {Key: "kind", Value: store.KindAction}, notExpired()}).
			SetUpdate(bson.D{
				{Key: "$set", Value: bson.D{{Key: fieldBody, Value: body}}},
				{Key: "$unset", Value: bson.D{{Key: fieldAction, Value: ""}}},
			})
	}
	if _, err := s.bulkUpdate(ctx, s.messages, models, nil); err != nil {
		return fmt.Errorf("erase the edits of %s: %w", msgID, err)
	}
	return nil
}

// expiredUpdate turns a log entry into store.Expire's tombstone, which is
// the same for every entry (Deleted stays as it is), and takes it off the
// sweeper's index, unless it carries file: then due goes to 0, which
// keeps it in the index (first) until the file is released, and the file
// is noted (see expire). The action an expired action entry holds goes
// with its text: rollForward then only delivers the entry.
func expiredUpdate(file string) bson.D {
	set := bson.D{{Key: fieldBody, Value: []byte(store.ExpiredBody)}}
	unset := bson.D{
		{Key: fieldReply, Value: ""}, {Key: fieldReactions, Value: ""}, {Key: fieldEditSeqs, Value: ""},
		{Key: fieldEdited, Value: ""}, {Key: fieldAction, Value: ""},
	}
	if file != "" {
		set = append(set, bson.E{Key: fieldDue, Value: int64(0)}, bson.E{Key: fieldReleased, Value: file})
	} else {
		unset = append(unset, bson.E{Key: fieldDue, Value: ""})
	}
	return bson.D{{Key: "$set", Value: set}, {Key: "$unset", Value: unset}}
}

// dueEntry is what ExpireDue reads of an entry it expires.
type dueEntry struct {
	ID       string  `bson:"_id"`
	MsgID    string  `bson:"id"`
	ChatID   string  `bson:"chat"`
	EditSeqs []int64 `bson:"es"`
	Body     []byte  `bson:"body"`
	Due      int64   `bson:"due"`
	// Released is, at due 0, the file of an expired entry still to be
	// released.
	Released string `bson:"mf"`
}

var dueProjection = bson.D{{Key: "id", Value: 1}, {Key: "chat", Value: 1}, {Key: fieldEditSeqs, Value: 1},
	{Key: fieldBody, Value: 1}, {Key: fieldDue, Value: 1}, {Key: fieldReleased, Value: 1}}

// ExpireDue implements store.Messages: the entries due, by the sparse
// {due} index, each expired by one conditional findOneAndUpdate, so that
// of several sweepers exactly one expires it. It takes no chat lock; see
// the package docs ("Actions and expiry") for how it stays whole against
// the actions that change an entry under the lock.
func (s *Store) ExpireDue(ctx context.Context, now int64, limit int) (int, error) {
	n := 0
	for n < limit {
		want := limit - n
		var due []dueEntry
		cur, err := s.messages.Find(ctx, bson.D{{Key: fieldDue, Value: bson.D{{Key: "$lte", Value: now}}}},
			options.Find().SetSort(bson.D{{Key: fieldDue, Value: 1}}).SetLimit(int64(want)).SetProjection(dueProjection))
		if err == nil {
			err = cur.All(ctx, &due)
		}
		if err != nil {
			return n, fmt.Errorf("expire messages: %w", err)
		}
		done := make([]bool, len(due))
		fns := make([]func() error, len(due))
		finished := 0 // releases of entries expired before (due 0)
		for i := range due {
			if due[i].Due == 0 {
				finished++
			}
			fns[i] = func() (err error) {
				done[i], err = s.expire(ctx, &due[i], now)
				return err
			}
		}
		err = parallelN(4, fns)
		got := 0
		for _, ok := range done {
			if ok {
				got++
			}
		}
		n += got
		if err != nil {
			return n, fmt.Errorf("expire messages: %w", err)
		}
		// A short page is all there was; one of which another sweeper
		// took every entry is too, near enough.
		if len(due) < want || got+finished == 0 {
			break
		}
	}
	return n, nil
}

// expire expires the entry e, due at or before now, and reports whether
// this call did (another sweeper may have). The edits e lists are erased
// first: a sweep that stops halfway leaves e due, and the next one does it
// all again. Those an action added between the read and the expiry come
// back in the document as it was before, and are erased after.
//
// The file e carries is released after the expiry, never before: listed
// while e still shows it, it could be collected from under it if the
// expiry failed. So that a sweep that stops between the two does not keep
// the file forever, the expiry leaves e in the sweep's index (due 0) with
// the file noted, and only the release takes it out; the next sweep finds
// such an entry first, and finishes it (finishRelease).
func (s *Store) expire(ctx context.Context, e *dueEntry, now int64) (bool, error) {
	if e.Due == 0 {
		return false, s.finishRelease(ctx, e.ID, e.Released, e.MsgID)
	}
	if err := s.eraseEdits(ctx, e.ChatID, e.MsgID, e.EditSeqs); err != nil {
		return false, err
	}
	// An edit keeps a message's file, and a delete for everyone releases
	// it itself (its body then names none): the file read with e is the
	// one to release.
	file := store.MediaOf(e.Body)
	// No projection: FerretDB v1 does not take one in findAndModify.
	var before dueEntry
	err := s.messages.FindOneAndUpdate(ctx,
		bson.D{{Key: "_id", Value: e.ID}, {Key: fieldDue, Value: bson.D{{Key: "$gt", Value: 0}, {Key: "$lte", Value: now}}}},
		expiredUpdate(file),
		options.FindOneAndUpdate().SetReturnDocument(options.Before)).Decode(&before)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("expire %s: %w", e.ID, err)
	}
	var more []int64
	for _, seq := range store.Expire(&store.Message{EditSeqs: before.EditSeqs}) {
		if !slices.Contains(e.EditSeqs, seq) {
			more = append(more, seq)
		}
	}
	if err := s.eraseEdits(ctx, e.ChatID, e.MsgID, more); err != nil {
		return true, err
	}
	if file == "" {
		return true, nil
	}
	return true, s.finishRelease(ctx, e.ID, file, e.MsgID)
}

// finishRelease releases file, which the expired entry id (message msgID)
// carried, and then takes the entry out of the sweep's index. Of several
// sweepers that do it at once, every one releases: releasing is
// idempotent.
func (s *Store) finishRelease(ctx context.Context, id, file, msgID string) error {
	if err := s.release(ctx, file, msgID, time.Time{}); err != nil {
		return fmt.Errorf("media of %s: %w", id, err)
	}
	_, err := s.messages.UpdateOne(ctx, bson.D{{Key: "_id", Value: id}, {Key: fieldDue, Value: int64(0)}},
		bson.D{{Key: "$unset", Value: bson.D{{Key: fieldDue, Value: ""}, {Key: fieldReleased, Value: ""}}}})
	if err != nil {
		return fmt.Errorf("expire %s: %w", id, err)
	}
	return nil
}

// Disappearing implements store.Messages: the timer as committed.
func (s *Store) Disappearing(ctx context.Context, chatID string) (int64, error) {
	if !validID(chatID) {
		return 0, nil
	}
	var c chatDoc
	err := s.chats.FindOne(ctx, bson.D{{Key: "_id", Value: chatID}},
		options.FindOne().SetProjection(bson.D{{Key: fieldTimer, Value: 1}})).Decode(&c)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("disappearing timer of %s: %w", chatID, err)
	}
	return c.Dis, nil
}
