package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/tern-im/tern/wire"
)

// Block blocks userID: its direct messages to you are never delivered, and
// presence and typing stop both ways.
func (c *Client) Block(ctx context.Context, userID string) error {
	return c.doAuth(ctx, http.MethodPut, "/v1/blocks/"+url.PathEscape(userID), nil, nil)
}

// Unblock ends a block.
func (c *Client) Unblock(ctx context.Context, userID string) error {
	return c.doAuth(ctx, http.MethodDelete, "/v1/blocks/"+url.PathEscape(userID), nil, nil)
}

// Blocks lists the users you block, oldest first.
func (c *Client) Blocks(ctx context.Context) ([]wire.Block, error) {
	var out wire.Blocks
	err := c.doAuth(ctx, http.MethodGet, "/v1/blocks", nil, &out)
	return out.Blocks, err
}

// Report reports a user (and, with req.Block, blocks it); it returns the
// report's id.
func (c *Client) Report(ctx context.Context, req wire.ReportRequest) (string, error) {
	var out wire.ReportCreated
	err := c.doAuth(ctx, http.MethodPost, "/v1/reports", req, &out)
	return out.ReportID, err
}

// DeleteForMe hides a message from your own history, on all your devices.
func (c *Client) DeleteForMe(ctx context.Context, chatID, msgID string) error {
	return c.doAuth(ctx, http.MethodDelete, "/v1/chats/"+url.PathEscape(chatID)+"/messages/"+url.PathEscape(msgID), nil, nil)
}

// Star stars (on) or unstars a message.
func (c *Client) Star(ctx context.Context, chatID, msgID string, on bool) error {
	method := http.MethodPut
	if !on {
		method = http.MethodDelete
	}
	return c.doAuth(ctx, method, "/v1/chats/"+url.PathEscape(chatID)+"/messages/"+url.PathEscape(msgID)+"/star", nil, nil)
}

// Starred lists your starred messages, newest star first.
func (c *Client) Starred(ctx context.Context) ([]wire.Message, error) {
	var out wire.StarredResponse
	err := c.doAuth(ctx, http.MethodGet, "/v1/starred", nil, &out)
	return out.Messages, err
}
