package chat

import (
	"context"
	"errors"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// mediaShareScan bounds the chats a file's access check looks through: a
// file forwarded to more chats than that is fetched by the members of the
// first ones only (and by its uploader).
const mediaShareScan = 1000

// Media returns file id if the actor may fetch it: its uploader, or a
// member of a chat a message carried it to. Anyone else gets not_found,
// as for a file that does not exist: media ids are not for probing.
// inChat, if not "", is the chat the actor saw the file in: then that
// chat alone is checked, with two point reads, instead of the file's
// chats one by one.
func (s *Service) Media(ctx context.Context, a Actor, id, inChat string) (store.MediaFile, error) {
	ctx, cancel := s.storeCtx(ctx)
	defer cancel()
	notFound := wire.Errorf(wire.CodeNotFound, "no media %s", id)
	f, err := s.st.MediaFile(ctx, id)
	switch {
	case errors.Is(err, store.ErrNotFound):
		return store.MediaFile{}, notFound
	case err != nil:
		return store.MediaFile{}, err
	case f.Owner == a.UserID:
		return f, nil
	}
	chats := []string{inChat}
	if inChat != "" {
		shared, err := s.st.MediaFileShared(ctx, id, inChat)
		if err != nil {
			return store.MediaFile{}, err
		}
		if !shared {
			return store.MediaFile{}, notFound
		}
	} else if chats, err = s.st.MediaFileChats(ctx, id, mediaShareScan); err != nil {
		return store.MediaFile{}, err
	}
	for _, c := range chats {
		var we *wire.Error
		switch err := s.CheckMember(ctx, a, c); {
		case err == nil:
			return f, nil
		case !errors.As(err, &we):
			return store.MediaFile{}, err // the store failed: not an answer
		}
	}
	return store.MediaFile{}, notFound
}

// describe sets what a message tells of its file from the file's record.
func describe(b *wire.Body, f *store.MediaFile) {
	b.MIMEType, b.Size, b.SHA256 = f.MIME, f.Size, f.SHA256
	b.Width, b.Height, b.Thumbnail = f.Width, f.Height, f.Thumbnail
}
