package storetest

import (
	"bytes"
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
		wantErr(t, s.ShareMediaFile(ctx, missing, c), store.ErrNotFound, "sharing a missing file")
		// The failed share left nothing behind.
		if ok, err := s.MediaFileShared(ctx, missing, c); err != nil || ok {
			t.Fatalf("MediaFileShared of a missing file = %v, %v", ok, err)
		}
		if chats, err := s.MediaFileChats(ctx, missing, 0); err != nil || len(chats) != 0 {
			t.Fatalf("MediaFileChats of a missing file = %v, %v", chats, err)
		}
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
		must(t, s.ShareMediaFile(ctx, f.ID, c1))
		must(t, s.ShareMediaFile(ctx, f.ID, c1)) // again: not an error, listed once
		shared(c1, true)
		shared(c2, false)
		must(t, s.ShareMediaFile(ctx, f.ID, c2))
		must(t, s.ShareMediaFile(ctx, f.ID, c3))
		shared(c2, true)
		shared(c3, true)

		chats, err := s.MediaFileChats(ctx, f.ID, 0)
		must(t, err)
		if want := sorted([]string{c1, c2, c3}); !slices.Equal(sorted(chats), want) {
			t.Fatalf("MediaFileChats = %v, want %v", chats, want)
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
		must(t, s.ShareMediaFile(ctx, f20.ID, chat()))
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
		must(t, s.ShareMediaFile(ctx, f10.ID, chat()))
		must(t, s.ShareMediaFile(ctx, f10.ID, chat()))
		list(at(100), 0, f30, f40)
	})

	t.Run("Delete", func(t *testing.T) {
		s, ctx := newStore(t), t.Context()
		f, keep := newMedia(owner, 1), newMedia(owner, 2)
		must(t, s.CreateMediaFile(ctx, f))
		must(t, s.CreateMediaFile(ctx, keep))
		c1, c2 := chat(), chat()
		must(t, s.ShareMediaFile(ctx, f.ID, c1))
		must(t, s.ShareMediaFile(ctx, f.ID, c2))
		must(t, s.ShareMediaFile(ctx, keep.ID, c1))

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
		wantErr(t, s.ShareMediaFile(ctx, f.ID, c1), store.ErrNotFound, "sharing a deleted file")
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
			for range 2 {
				wg.Go(func() {
					if err := s.ShareMediaFile(ctx, f.ID, c); err != nil {
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
	})
}
