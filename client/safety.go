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
