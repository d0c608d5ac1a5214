package client

import (
	"context"
	"io"
	"net/http"
	"net/url"

	"github.com/tern-im/tern/wire"
)

// UploadMedia uploads a file (streamed from r) of the declared
// contentType; kind ("image", "video", "audio", "document", "sticker")
// may be empty, and then the server decides by the file's type. The
// answer's MediaID goes into a message body; its URL fetches the file
// (Download) until ExpiresTS.
func (c *Client) UploadMedia(ctx context.Context, r io.Reader, contentType, kind string) (wire.Media, error) {
	var out wire.Media
	path := "/v1/media"
	if kind != "" {
		path += "?kind=" + url.QueryEscape(kind)
	}
	body := rawBody{r: r, contentType: contentType}
	if s, ok := r.(io.Seeker); ok {
		if pos, err := s.Seek(0, io.SeekCurrent); err == nil {
			body.start = pos
		}
	}
	err := c.doAuth(ctx, http.MethodPost, path, body, &out)
	return out, err
}

// Media returns a file's media object with a fresh URL. chatID, if not
// "", is the chat whose message carried it (a cheaper check).
func (c *Client) Media(ctx context.Context, mediaID, chatID string) (wire.Media, error) {
	var out wire.Media
	path := "/v1/media/" + url.PathEscape(mediaID)
	if chatID != "" {
		path += "?chat_id=" + url.QueryEscape(chatID)
	}
	err := c.doAuth(ctx, http.MethodGet, path, nil, &out)
	return out, err
}
