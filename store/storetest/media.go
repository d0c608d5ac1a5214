package storetest

import (
	"bytes"
	"errors"
	"fmt"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/tern-im/tern/store"
)

// newMedia returns the record of an image uploaded by owner at ms.
func newMedia(owner string, ms int64) store.MediaFile {
	id := store.NewID(store.PrefixMedia)
	return store.MediaFile{
		ID:        id,
		Owner:     owner,
		Key:       "media/" + id,
		Kind:      "image",
		MIME:      "image/jpeg",
		Size:      123456,
		SHA256:    "9f86d081884c7d659a2feaa0c55ad015a3bf4f1b2b0b822cd15d6c15b0f00a08",
		Width:     1280,
		Height:    720,
		Thumbnail: []byte{0xff, 0xd8, 0xff, 0xe0, 0x00, 0x10, 'J', 'F', 'I', 'F', 0x00, 0xff, 0xd9},
		CreatedAt: at(ms),
	}
}

func sameMedia(got, want store.MediaFile) bool {
	return got.ID == want.ID && got.Owner == want.Owner && got.Key == want.Key && got.Kind == want.Kind &&
		got.MIME == want.MIME && got.Size == want.Size && got.SHA256 == want.SHA256 &&
		got.Width == want.Width && got.Height == want.Height && bytes.Equal(got.Thumbnail, want.Thumbnail) &&
		got.CreatedAt.Equal(want.CreatedAt)
}

func mediaIDs(fs []store.MediaFile) []string {
	ids := make([]string, 0, len(fs))
	for _, f := range fs {
		ids = append(ids, f.ID)
	}
	return ids
}

func testMediaFiles(t *testing.T, newStore func(t *testing.T) store.Store) {
	owner := store.NewID(store.PrefixUser)
	chat := func() string { return store.NewID(store.PrefixGroup) }
	msg := func() string { return store.NewID(store.PrefixMessage) }

	t.Run("CreateAndRead", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		f := newMedia(owner, 1234)
		must(t, s.CreateMediaFile(ctx, f))
		got, err := s.MediaFile(ctx, f.ID)
		must(t, err)
		if !sameMedia(got, f) {
			t.Fatalf("MediaFile = %+v, want %+v", got, f)
		}
		// A document without dimensions or thumbnail reads back without them.
		bare := store.MediaFile{ID: store.NewID(store.PrefixMedia), Owner: owner, Key: "k", Kind: "document",
			MIME: "application/pdf", Size: 1, SHA256: "00", CreatedAt: at(1)}
		must(t, s.CreateMediaFile(ctx, bare))
		if got, err := s.MediaFile(ctx, bare.ID); err != nil || !sameMedia(got, bare) || len(got.Thumbnail) != 0 {
			t.Fatalf("MediaFile(bare) = %+v, %v, want %+v", got, err, bare)
		}

		// A second create of the id fails and changes nothing.
		other := newMedia(store.NewID(store.PrefixUser), 5678)
		other.ID = f.ID
		wantErr(t, s.CreateMediaFile(ctx, other), store.ErrConflict, "a media id used twice")
		if got, err := s.MediaFile(ctx, f.ID); err != nil || !sameMedia(got, f) {
			t.Fatalf("after a conflicting create: %+v, %v, want %+v", got, err, f)
		}
	})

	t.Run("NotFound", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		missing, c := store.NewID(store.PrefixMedia), chat()
		_, err := s.MediaFile(ctx, missing)
		wantErr(t, err, store.ErrNotFound, "MediaFile of a missing id")
		wantErr(t, s.ShareMediaFile(ctx, missing, c, msg()), store.ErrNotFound, "sharing a missing file")
		// The failed share left nothing behind.
		if ok, err := s.MediaFileShared(ctx, missing, c); err != nil || ok {
			t.Fatalf("MediaFileShared of a missing file = %v, %v", ok, err)
		}
		if chats, err := s.MediaFileChats(ctx, missing, 0); err != nil || len(chats) != 0 {
			t.Fatalf("MediaFileChats of a missing file = %v, %v", chats, err)
		}
		if refs, err := s.MediaFileRefs(ctx, missing, 0); err != nil || len(refs) != 0 {
			t.Fatalf("MediaFileRefs of a missing file = %v, %v", refs, err)
		}
		// Releasing what is not there is not an error.
		must(t, s.ReleaseMediaFile(ctx, missing, msg(), time.Time{}))
	})

	t.Run("Share", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		f := newMedia(owner, 1)
		must(t, s.CreateMediaFile(ctx, f))
		c1, c2, c3 := chat(), chat(), store.DirectChatID(owner, store.NewID(store.PrefixUser))
		shared := func(c string, want bool) {
			t.Helper()
			got, err := s.MediaFileShared(ctx, f.ID, c)
			must(t, err)
			if got != want {
				t.Fatalf("MediaFileShared(%s) = %v, want %v", c, got, want)
			}
		}
		shared(c1, false)
		m1 := msg()
		must(t, s.ShareMediaFile(ctx, f.ID, c1, m1))
		must(t, s.ShareMediaFile(ctx, f.ID, c1, m1)) // again: not an error, listed once
		shared(c1, true)
		shared(c2, false)
		must(t, s.ShareMediaFile(ctx, f.ID, c2, msg()))
		must(t, s.ShareMediaFile(ctx, f.ID, c3, msg()))
		shared(c2, true)
		shared(c3, true)

		chats, err := s.MediaFileChats(ctx, f.ID, 0)
		must(t, err)
		if want := sorted([]string{c1, c2, c3}); !slices.Equal(sorted(chats), want) {
			t.Fatalf("MediaFileChats = %v, want %v", chats, want)
		}
		refs, err := s.MediaFileRefs(ctx, f.ID, 0)
		must(t, err)
		if len(refs) != 3 || !slices.Contains(refs, store.MediaRef{ChatID: c1, MsgID: m1}) {
			t.Fatalf("MediaFileRefs = %+v, want 3 with %s in %s", refs, m1, c1)
		}
		if one, err := s.MediaFileRefs(ctx, f.ID, 1); err != nil || len(one) != 1 || !slices.Contains(refs, one[0]) {
			t.Fatalf("MediaFileRefs(limit 1) = %+v, %v, want one of %+v", one, err, refs)
		}
		two, err := s.MediaFileChats(ctx, f.ID, 2)
		must(t, err)
		if len(two) != 2 || two[0] == two[1] || !slices.Contains(chats, two[0]) || !slices.Contains(chats, two[1]) {
			t.Fatalf("MediaFileChats(limit 2) = %v, want two of %v", two, chats)
		}

		// Shares are per file: another file, and an id that is a prefix
		// of this one, have none.
		g := newMedia(owner, 2)
		must(t, s.CreateMediaFile(ctx, g))
		if ok, err := s.MediaFileShared(ctx, g.ID, c1); err != nil || ok {
			t.Fatalf("MediaFileShared of an unshared file = %v, %v", ok, err)
		}
		if chats, err := s.MediaFileChats(ctx, f.ID[:len(f.ID)-1], 0); err != nil || len(chats) != 0 {
			t.Fatalf("MediaFileChats of a prefix of the id = %v, %v", chats, err)
		}
		// Sharing does not change the record.
		if got, err := s.MediaFile(ctx, f.ID); err != nil || !sameMedia(got, f) {
			t.Fatalf("after sharing: %+v, %v, want %+v", got, err, f)
		}
	})

	t.Run("Unshared", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		var fs []store.MediaFile
		// Created out of order: the list is by creation time, not by id.
		for _, ms := range []int64{40, 10, 30, 20} {
			f := newMedia(owner, ms)
			must(t, s.CreateMediaFile(ctx, f))
			fs = append(fs, f)
		}
		f40, f10, f30, f20 := fs[0], fs[1], fs[2], fs[3]
		must(t, s.ShareMediaFile(ctx, f20.ID, chat(), msg()))
		list := func(before time.Time, limit int, want ...store.MediaFile) {
			t.Helper()
			got, err := s.UnsharedMediaFiles(ctx, before, limit)
			must(t, err)
			if !slices.Equal(mediaIDs(got), mediaIDs(want)) {
				t.Fatalf("UnsharedMediaFiles(%v, %d) = %v, want %v", before, limit, mediaIDs(got), mediaIDs(want))
			}
			for i := range got {
				if !sameMedia(got[i], want[i]) {
					t.Fatalf("UnsharedMediaFiles: %+v, want %+v", got[i], want[i])
				}
			}
		}
		list(at(10), 0)                                 // created at before is not before it
		list(at(30), 0, f10)                            // f20 is shared
		list(at(30).Add(time.Microsecond), 0, f10, f30) // 30 ms is before 30.001
		list(at(100), 0, f10, f30, f40)
		list(at(100), 2, f10, f30)
		list(at(100), 1, f10)

		// A file leaves the list at its first share, for good.
		must(t, s.ShareMediaFile(ctx, f10.ID, chat(), msg()))
		must(t, s.ShareMediaFile(ctx, f10.ID, chat(), msg()))
		list(at(100), 0, f30, f40)
	})

	t.Run("Delete", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		f, keep := newMedia(owner, 1), newMedia(owner, 2)
		must(t, s.CreateMediaFile(ctx, f))
		must(t, s.CreateMediaFile(ctx, keep))
		c1, c2 := chat(), chat()
		must(t, s.ShareMediaFile(ctx, f.ID, c1, msg()))
		must(t, s.ShareMediaFile(ctx, f.ID, c2, msg()))
		must(t, s.ShareMediaFile(ctx, keep.ID, c1, msg()))

		must(t, s.DeleteMediaFile(ctx, f.ID))
		_, err := s.MediaFile(ctx, f.ID)
		wantErr(t, err, store.ErrNotFound, "MediaFile after delete")
		for _, c := range []string{c1, c2} {
			if ok, err := s.MediaFileShared(ctx, f.ID, c); err != nil || ok {
				t.Fatalf("MediaFileShared after delete = %v, %v", ok, err)
			}
		}
		if chats, err := s.MediaFileChats(ctx, f.ID, 0); err != nil || len(chats) != 0 {
			t.Fatalf("MediaFileChats after delete = %v, %v", chats, err)
		}
		wantErr(t, s.ShareMediaFile(ctx, f.ID, c1, msg()), store.ErrNotFound, "sharing a deleted file")
		must(t, s.DeleteMediaFile(ctx, f.ID)) // again: not an error
		must(t, s.DeleteMediaFile(ctx, store.NewID(store.PrefixMedia)))

		// The other file is untouched.
		if got, err := s.MediaFile(ctx, keep.ID); err != nil || !sameMedia(got, keep) {
			t.Fatalf("the other file: %+v, %v", got, err)
		}
		if ok, err := s.MediaFileShared(ctx, keep.ID, c1); err != nil || !ok {
			t.Fatalf("the other file's share: %v, %v", ok, err)
		}

		// An unshared file leaves the collector's list with its record.
		u := newMedia(owner, 3)
		must(t, s.CreateMediaFile(ctx, u))
		if got, err := s.UnsharedMediaFiles(ctx, at(100), 0); err != nil || !slices.Equal(mediaIDs(got), []string{u.ID}) {
			t.Fatalf("UnsharedMediaFiles before delete = %v, %v", mediaIDs(got), err)
		}
		must(t, s.DeleteMediaFile(ctx, u.ID))
		if got, err := s.UnsharedMediaFiles(ctx, at(100), 0); err != nil || len(got) != 0 {
			t.Fatalf("UnsharedMediaFiles after delete = %v, %v", mediaIDs(got), err)
		}

		// The id created again starts with no shares, unshared.
		must(t, s.CreateMediaFile(ctx, f))
		if chats, err := s.MediaFileChats(ctx, f.ID, 0); err != nil || len(chats) != 0 {
			t.Fatalf("MediaFileChats of the id created again = %v, %v", chats, err)
		}
		if got, err := s.UnsharedMediaFiles(ctx, at(100), 0); err != nil || !slices.Equal(mediaIDs(got), []string{f.ID}) {
			t.Fatalf("UnsharedMediaFiles with the id created again = %v, %v", mediaIDs(got), err)
		}
	})

	t.Run("ConcurrentShares", func(t *testing.T) {
		// A file forwarded to many chats at once: every share is recorded,
		// and so is each chat shared twice at the same time.
		s, ctx := newStore(t), t.Context()
		f := newMedia(owner, 1)
		must(t, s.CreateMediaFile(ctx, f))
		const n = 40
		chats := make([]string, n)
		for i := range chats {
			chats[i] = chat()
		}
		var wg sync.WaitGroup
		errs := make(chan error, 2*n)
		for _, c := range chats {
			m := msg()
			for range 2 {
				wg.Go(func() {
					if err := s.ShareMediaFile(ctx, f.ID, c, m); err != nil {
						errs <- fmt.Errorf("share to %s: %w", c, err)
					}
				})
			}
		}
		wg.Wait()
		close(errs)
		for err := range errs {
			t.Fatal(err)
		}
		got, err := s.MediaFileChats(ctx, f.ID, 0)
		must(t, err)
		if !slices.Equal(sorted(got), sorted(chats)) {
			t.Fatalf("MediaFileChats after %d concurrent shares: %d chats %v", n, len(got), got)
		}
		for _, c := range chats {
			if ok, err := s.MediaFileShared(ctx, f.ID, c); err != nil || !ok {
				t.Fatalf("MediaFileShared(%s) = %v, %v", c, ok, err)
			}
		}
		if got, err := s.UnsharedMediaFiles(ctx, at(100), 0); err != nil || len(got) != 0 {
			t.Fatalf("UnsharedMediaFiles after the shares = %v, %v", mediaIDs(got), err)
		}
		if refs, err := s.MediaFileRefs(ctx, f.ID, 0); err != nil || len(refs) != n {
			t.Fatalf("MediaFileRefs after %d concurrent shares of %d messages: %d, %v", 2*n, n, len(refs), err)
		}
	})

	t.Run("Release", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		f, other := newMedia(owner, 50), newMedia(owner, 60)
		must(t, s.CreateMediaFile(ctx, f))
		must(t, s.CreateMediaFile(ctx, other))
		c1, c2, m1, m2, m3 := chat(), chat(), msg(), msg(), msg()
		must(t, s.ShareMediaFile(ctx, f.ID, c1, m1))
		must(t, s.ShareMediaFile(ctx, f.ID, c1, m2))
		must(t, s.ShareMediaFile(ctx, f.ID, c2, m3))
		must(t, s.ShareMediaFile(ctx, other.ID, c1, m1)) // m1 carries another file too (a refused send's id reused)
		list := func(before time.Time, want ...store.MediaFile) {
			t.Helper()
			got, err := s.UnsharedMediaFiles(ctx, before, 0)
			must(t, err)
			if !slices.Equal(mediaIDs(got), mediaIDs(want)) {
				t.Fatalf("UnsharedMediaFiles(%v) = %v, want %v", before, mediaIDs(got), mediaIDs(want))
			}
		}
		list(at(1000))

		// Releasing some of the references lists nothing; again, or a
		// message that never carried it, changes nothing.
		must(t, s.ReleaseMediaFile(ctx, f.ID, m1, time.Time{}))
		must(t, s.ReleaseMediaFile(ctx, f.ID, m1, time.Time{}))
		must(t, s.ReleaseMediaFile(ctx, f.ID, msg(), time.Time{}))
		must(t, s.ReleaseMediaFile(ctx, f.ID, m3, time.Time{}))
		list(at(1000))
		refs, err := s.MediaFileRefs(ctx, f.ID, 0)
		must(t, err)
		if !slices.Equal(refs, []store.MediaRef{{ChatID: c1, MsgID: m2}}) {
			t.Fatalf("MediaFileRefs after two releases = %+v, want only %s", refs, m2)
		}
		// The shares stay: who saw the file in a chat may still fetch it.
		if ok, err := s.MediaFileShared(ctx, f.ID, c2); err != nil || !ok {
			t.Fatalf("MediaFileShared after its chat's message was released = %v, %v", ok, err)
		}

		// The last release lists it, as idle since the zero time: before
		// any cut-off, ahead of files long idle.
		must(t, s.ReleaseMediaFile(ctx, f.ID, m2, time.Time{}))
		list(at(-1_000_000), f)
		if refs, err := s.MediaFileRefs(ctx, f.ID, 0); err != nil || len(refs) != 0 {
			t.Fatalf("MediaFileRefs after the last release = %+v, %v", refs, err)
		}
		if got, err := s.MediaFile(ctx, f.ID); err != nil || !sameMedia(got, f) {
			t.Fatalf("the released file's record: %+v, %v, want %+v", got, err, f)
		}
		// The other file of m1 is not touched by f's releases.
		if refs, err := s.MediaFileRefs(ctx, other.ID, 0); err != nil || len(refs) != 1 {
			t.Fatalf("the other file's references: %+v, %v", refs, err)
		}

		// Carried again, it leaves the list; released with its creation
		// time, it is listed as an upload never sent.
		m4 := msg()
		must(t, s.ShareMediaFile(ctx, f.ID, c2, m4))
		list(at(1000))
		must(t, s.ReleaseMediaFile(ctx, f.ID, m4, f.CreatedAt))
		list(at(50))
		list(at(51), f)
		must(t, s.ReleaseMediaFile(ctx, other.ID, m1, other.CreatedAt))
		list(at(1000), f, other)

		// Deleting it takes its references with it.
		must(t, s.ShareMediaFile(ctx, f.ID, c1, m4))
		must(t, s.DeleteMediaFile(ctx, f.ID))
		if refs, err := s.MediaFileRefs(ctx, f.ID, 0); err != nil || len(refs) != 0 {
			t.Fatalf("MediaFileRefs after delete = %+v, %v", refs, err)
		}
		list(at(1000), other)
	})

	t.Run("ReleasedByDeleteAndExpiry", func(t *testing.T) {
		// A delete for everyone and an expiry release the file of their
		// message in the store's own step: no caller can forget it.
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		carry := func(f store.MediaFile, clientID string, ms int64) store.Message {
			t.Helper()
			req := direct(w.alice, w.a1, w.bob, clientID, ms, "", w.b1)
			req.Message.Body = []byte(fmt.Sprintf(`{"media_id":%q,"caption":"look"}`, f.ID))
			must(t, s.ShareMediaFile(ctx, f.ID, w.chatAB, req.Message.ID))
			return send(t, s, req).Message
		}
		listed := func(want ...store.MediaFile) {
			t.Helper()
			got, err := s.UnsharedMediaFiles(ctx, at(-1_000_000), 0)
			must(t, err)
			if !slices.Equal(sorted(mediaIDs(got)), sorted(mediaIDs(want))) {
				t.Fatalf("files released = %v, want %v", mediaIDs(got), mediaIDs(want))
			}
		}
		deleted, twice, expired := newMedia(w.alice, 1), newMedia(w.alice, 2), newMedia(w.alice, 3)
		for _, f := range []store.MediaFile{deleted, twice, expired} {
			must(t, s.CreateMediaFile(ctx, f))
		}
		m1 := carry(deleted, "m1", 1)
		m2 := carry(twice, "m2", 2)
		m3 := carry(twice, "m3", 3)
		listed()

		// An edit and a reaction keep the file.
		send(t, s, actionReq(w.alice, w.a1, w.bob, "e", 4, &store.Action{Kind: store.ActionEdit, Target: m1.ID,
			Body: []byte(fmt.Sprintf(`{"media_id":%q,"caption":"edited"}`, deleted.ID))}))
		send(t, s, actionReq(w.bob, w.b1, w.alice, "r", 5, &store.Action{Kind: store.ActionReaction, Target: m1.ID, Emoji: "👍"}))
		listed()
		send(t, s, actionReq(w.alice, w.a1, w.bob, "d1", 6, &store.Action{Kind: store.ActionDelete, Target: m1.ID}))
		listed(deleted)
		// A file two messages carry goes with the second.
		send(t, s, actionReq(w.alice, w.a1, w.bob, "d2", 7, &store.Action{Kind: store.ActionDelete, Target: m2.ID}))
		listed(deleted)
		send(t, s, actionReq(w.alice, w.a1, w.bob, "d3", 8, &store.Action{Kind: store.ActionDelete, Target: m3.ID}))
		listed(deleted, twice)

		send(t, s, actionReq(w.alice, w.a1, w.bob, "on", 9, &store.Action{Kind: store.ActionDisappearing, Seconds: 60}))
		carry(expired, "m4", 10)
		if n, err := s.ExpireDue(ctx, ts(10)+59_999, 10); err != nil || n != 0 {
			t.Fatalf("ExpireDue before the time: %d, %v", n, err)
		}
		listed(deleted, twice)
		if n, err := s.ExpireDue(ctx, ts(10)+60_000, 10); err != nil || n != 1 {
			t.Fatalf("ExpireDue: %d, %v", n, err)
		}
		listed(deleted, twice, expired)
		for _, f := range []store.MediaFile{deleted, twice, expired} {
			if refs, err := s.MediaFileRefs(ctx, f.ID, 0); err != nil || len(refs) != 0 {
				t.Fatalf("references of %s left: %+v, %v", f.ID, refs, err)
			}
		}
	})

	t.Run("ExpiryOfTwoMessagesOfOneFile", func(t *testing.T) {
		// Two messages that carry one file expire in one sweep: the file
		// is listed once, with no reference left.
		s, ctx := newStore(t), t.Context()
		w := newWorld(t, s)
		f := newMedia(w.alice, 1)
		must(t, s.CreateMediaFile(ctx, f))
		send(t, s, actionReq(w.alice, w.a1, w.bob, "on", 2, &store.Action{Kind: store.ActionDisappearing, Seconds: 60}))
		for i, id := range []string{"m1", "m2"} {
			req := direct(w.alice, w.a1, w.bob, id, int64(3+i), "", w.b1)
			req.Message.Body = []byte(fmt.Sprintf(`{"media_id":%q}`, f.ID))
			must(t, s.ShareMediaFile(ctx, f.ID, w.chatAB, req.Message.ID))
			send(t, s, req)
		}
		if got, err := s.UnsharedMediaFiles(ctx, at(1_000_000), 0); err != nil || len(got) != 0 {
			t.Fatalf("UnsharedMediaFiles before the expiry = %v, %v", mediaIDs(got), err)
		}
		if n, err := s.ExpireDue(ctx, ts(4)+60_000, 10); err != nil || n != 2 {
			t.Fatalf("ExpireDue = %d, %v; want 2", n, err)
		}
		got, err := s.UnsharedMediaFiles(ctx, at(-1_000_000), 0)
		must(t, err)
		if !slices.Equal(mediaIDs(got), []string{f.ID}) {
			t.Fatalf("UnsharedMediaFiles after the expiry = %v, want [%s] once", mediaIDs(got), f.ID)
		}
		if refs, err := s.MediaFileRefs(ctx, f.ID, 0); err != nil || len(refs) != 0 {
			t.Fatalf("MediaFileRefs after the expiry = %+v, %v", refs, err)
		}
		// Another sweep changes nothing.
		if n, err := s.ExpireDue(ctx, ts(4)+120_000, 10); err != nil || n != 0 {
			t.Fatalf("ExpireDue again = %d, %v; want 0", n, err)
		}
		if got, err := s.UnsharedMediaFiles(ctx, at(-1_000_000), 0); err != nil || !slices.Equal(mediaIDs(got), []string{f.ID}) {
			t.Fatalf("UnsharedMediaFiles after another sweep = %v, %v", mediaIDs(got), err)
		}
	})

	t.Run("Claim", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		claim := func(f store.MediaFile, before time.Time, want bool) {
			t.Helper()
			got, err := s.ClaimMediaFile(ctx, f.ID, before)
			must(t, err)
			if got != want {
				t.Fatalf("ClaimMediaFile(%s, %v) = %v, want %v", f.ID, before, got, want)
			}
		}
		if ok, err := s.ClaimMediaFile(ctx, store.NewID(store.PrefixMedia), at(100)); err != nil || ok {
			t.Fatalf("ClaimMediaFile of a missing file = %v, %v", ok, err)
		}

		// An upload never sent: claimed only once listed before the
		// cut-off.
		f, keep := newMedia(owner, 10), newMedia(owner, 20)
		must(t, s.CreateMediaFile(ctx, f))
		must(t, s.CreateMediaFile(ctx, keep))
		claim(f, at(10), false)
		claim(f, at(11), true)
		// Claimed, it is gone to lookups and shares (a forward racing the
		// collector is refused, and leaves nothing behind), yet still
		// listed, for a collector that stopped to be followed.
		_, err := s.MediaFile(ctx, f.ID)
		wantErr(t, err, store.ErrNotFound, "MediaFile of a claimed file")
		c, m := chat(), msg()
		wantErr(t, s.ShareMediaFile(ctx, f.ID, c, m), store.ErrNotFound, "sharing a claimed file")
		if refs, err := s.MediaFileRefs(ctx, f.ID, 0); err != nil || len(refs) != 0 {
			t.Fatalf("MediaFileRefs after a refused share = %+v, %v", refs, err)
		}
		if got, err := s.UnsharedMediaFiles(ctx, at(100), 0); err != nil || !slices.Equal(mediaIDs(got), []string{f.ID, keep.ID}) {
			t.Fatalf("UnsharedMediaFiles with a claimed file = %v, %v", mediaIDs(got), err)
		}
		must(t, s.ReleaseMediaFile(ctx, f.ID, m, time.Time{}))
		if got, err := s.UnsharedMediaFiles(ctx, at(100), 0); err != nil || !slices.Equal(mediaIDs(got), []string{f.ID, keep.ID}) {
			t.Fatalf("UnsharedMediaFiles after a release of a claimed file = %v, %v", mediaIDs(got), err)
		}
		must(t, s.DeleteMediaFile(ctx, f.ID))
		if got, err := s.UnsharedMediaFiles(ctx, at(100), 0); err != nil || !slices.Equal(mediaIDs(got), []string{keep.ID}) {
			t.Fatalf("UnsharedMediaFiles after the claimed file's deletion = %v, %v", mediaIDs(got), err)
		}
		// The other file is untouched.
		if got, err := s.MediaFile(ctx, keep.ID); err != nil || !sameMedia(got, keep) {
			t.Fatalf("the other file: %+v, %v", got, err)
		}

		// A file a message carries is not claimed; once its last
		// reference is released, it is, at once if released with the
		// zero time, after the cut-off passes its time if with another.
		g := newMedia(owner, 30)
		must(t, s.CreateMediaFile(ctx, g))
		m1, m2 := msg(), msg()
		must(t, s.ShareMediaFile(ctx, g.ID, c, m1))
		must(t, s.ShareMediaFile(ctx, g.ID, c, m2))
		claim(g, at(1000), false)
		must(t, s.ReleaseMediaFile(ctx, g.ID, m1, time.Time{}))
		claim(g, at(1000), false)
		must(t, s.ReleaseMediaFile(ctx, g.ID, m2, g.CreatedAt))
		claim(g, at(30), false)
		claim(g, at(31), true)
		_, err = s.MediaFile(ctx, g.ID)
		wantErr(t, err, store.ErrNotFound, "MediaFile of a claimed file")
		wantErr(t, s.ShareMediaFile(ctx, g.ID, c, msg()), store.ErrNotFound, "sharing a claimed file")
		if ok, err := s.MediaFileShared(ctx, g.ID, c); err != nil || !ok {
			t.Fatalf("MediaFileShared of a claimed file shared before = %v, %v", ok, err)
		}

		h := newMedia(owner, 40)
		must(t, s.CreateMediaFile(ctx, h))
		m3 := msg()
		must(t, s.ShareMediaFile(ctx, h.ID, c, m3))
		must(t, s.ReleaseMediaFile(ctx, h.ID, m3, time.Time{}))
		claim(h, at(-1_000_000), true)
	})

	t.Run("ClaimRacingShares", func(t *testing.T) {
		// A claim and shares of the file at the same time: once a claim
		// succeeds, no share does, and the file keeps no reference; a
		// claim that fails leaves the file to every share that succeeded.
		s, ctx := newStore(t), t.Context()
		for round := range 20 {
			f := newMedia(owner, int64(round))
			must(t, s.CreateMediaFile(ctx, f))
			const n = 4
			var (
				wg      sync.WaitGroup
				claimed bool
				errs    [n]error
				refs    [n]store.MediaRef
			)
			wg.Go(func() {
				var err error
				if claimed, err = s.ClaimMediaFile(ctx, f.ID, at(1_000_000)); err != nil {
					t.Error(err)
				}
			})
			for i := range n {
				refs[i] = store.MediaRef{ChatID: chat(), MsgID: msg()}
				wg.Go(func() { errs[i] = s.ShareMediaFile(ctx, f.ID, refs[i].ChatID, refs[i].MsgID) })
			}
			wg.Wait()
			got, err := s.MediaFileRefs(ctx, f.ID, 0)
			must(t, err)
			for i, err := range errs {
				switch {
				case err != nil && !errors.Is(err, store.ErrNotFound):
					t.Fatalf("round %d: share: %v", round, err)
				case err == nil && claimed:
					t.Fatalf("round %d: a share succeeded and the file was claimed", round)
				case err == nil && !slices.Contains(got, refs[i]):
					t.Fatalf("round %d: the reference of a share that succeeded is missing: %+v", round, got)
				case err != nil && slices.Contains(got, refs[i]):
					t.Fatalf("round %d: a refused share left its reference: %+v", round, got)
				}
			}
			if _, err := s.MediaFile(ctx, f.ID); claimed != errors.Is(err, store.ErrNotFound) {
				t.Fatalf("round %d: claimed %v, MediaFile: %v", round, claimed, err)
			}
		}
	})

	t.Run("ClaimRacingRelease", func(t *testing.T) {
		// A share and the release of the file's last other reference at
		// the same time may leave the file listed, but never claimable
		// while the share's reference is there.
		s, ctx := newStore(t), t.Context()
		for round := range 20 {
			f := newMedia(owner, int64(round))
			must(t, s.CreateMediaFile(ctx, f))
			c, m1, m2 := chat(), msg(), msg()
			must(t, s.ShareMediaFile(ctx, f.ID, c, m1))
			var wg sync.WaitGroup
			wg.Go(func() {
				if err := s.ReleaseMediaFile(ctx, f.ID, m1, time.Time{}); err != nil {
					t.Error(err)
				}
			})
			wg.Go(func() {
				if err := s.ShareMediaFile(ctx, f.ID, c, m2); err != nil {
					t.Error(err)
				}
			})
			wg.Wait()
			if ok, err := s.ClaimMediaFile(ctx, f.ID, at(1_000_000)); err != nil || ok {
				t.Fatalf("round %d: ClaimMediaFile of a file a message carries = %v, %v", round, ok, err)
			}
			if _, err := s.MediaFile(ctx, f.ID); err != nil {
				t.Fatalf("round %d: MediaFile after a refused claim: %v", round, err)
			}
			// And a share of it (the collector's, to take it off the list)
			// succeeds.
			must(t, s.ShareMediaFile(ctx, f.ID, c, m2))
			if got, err := s.UnsharedMediaFiles(ctx, at(1_000_000), 0); err != nil || len(got) != 0 {
				t.Fatalf("round %d: UnsharedMediaFiles after the share = %v, %v", round, mediaIDs(got), err)
			}
		}
	})
}
