package client

import (
	"context"
	"net/url"

	"github.com/tern-im/tern/wire"
)

// React sets the user's reaction to msgID in the chat with to (a user or
// group id); emoji "" takes it back.
func (c *Client) React(ctx context.Context, to, msgID, emoji string) (wire.Sent, error) {
	return c.Send(ctx, to, wire.Body{Reaction: &wire.ReactionAction{MsgID: msgID, Emoji: emoji}})
}

// Edit replaces the text of the user's own message msgID.
func (c *Client) Edit(ctx context.Context, to, msgID, text string) (wire.Sent, error) {
	return c.Send(ctx, to, wire.Body{Edit: &wire.EditAction{MsgID: msgID, Text: text}})
}

// DeleteForEveryone deletes msgID for every member of the chat.
func (c *Client) DeleteForEveryone(ctx context.Context, to, msgID string) (wire.Sent, error) {
	return c.Send(ctx, to, wire.Body{Delete: &wire.DeleteAction{MsgID: msgID}})
}

// SetDisappearing sets chatID's disappearing timer (0 turns it off).
func (c *Client) SetDisappearing(ctx context.Context, chatID string, seconds int64) (wire.ChatSettings, error) {
	var out wire.ChatSettings
	err := c.doAuth(ctx, "PATCH", "/v1/chats/"+url.PathEscape(chatID), wire.ChatPatch{DisappearingSeconds: &seconds}, &out)
	return out, err
}

// ChatSettings returns chatID's settings.
func (c *Client) ChatSettings(ctx context.Context, chatID string) (wire.ChatSettings, error) {
	var out wire.ChatSettings
	err := c.doAuth(ctx, "GET", "/v1/chats/"+url.PathEscape(chatID), nil, &out)
	return out, err
}

// Choose taps choice id of the card on a business's message msgID: a
// reply whose text the server sets to the choice's title.
func (c *Client) Choose(ctx context.Context, to, msgID, id string) (wire.Sent, error) {
	return c.SendWithID(ctx, c.NewID(), to, wire.Body{Choice: id}, msgID)
}
