package client

import (
	"context"
	"net/http"
	"net/url"

	"github.com/tern-im/tern/wire"
)

// Groups: a group's id is its chat id; messages go to it with Send like to a
// user. Changes reach every member's devices as "group" events.

func groupPath(chatID string, rest ...string) string {
	p := "/v1/groups/" + url.PathEscape(chatID)
	for _, r := range rest {
		p += "/" + url.PathEscape(r)
	}
	return p
}

// CreateGroup creates a group with the caller as its admin.
func (c *Client) CreateGroup(ctx context.Context, name, description string, members []string) (wire.Group, error) {
	var out wire.Group
	err := c.doAuth(ctx, http.MethodPost, "/v1/groups",
		wire.CreateGroupRequest{Name: name, Description: description, Members: members}, &out)
	return out, err
}

// Group returns a group the caller is a member of.
func (c *Client) Group(ctx context.Context, chatID string) (wire.Group, error) {
	var out wire.Group
	err := c.doAuth(ctx, http.MethodGet, groupPath(chatID), nil, &out)
	return out, err
}

// UpdateGroup changes a group's name, description or settings.
func (c *Client) UpdateGroup(ctx context.Context, chatID string, p wire.GroupPatch) (wire.Group, error) {
	var out wire.Group
	err := c.doAuth(ctx, http.MethodPatch, groupPath(chatID), p, &out)
	return out, err
}

// AddMembers adds users to a group (admins).
func (c *Client) AddMembers(ctx context.Context, chatID string, userIDs []string) (wire.Group, error) {
	var out wire.Group
	err := c.doAuth(ctx, http.MethodPost, groupPath(chatID, "members"), wire.AddMembersRequest{UserIDs: userIDs}, &out)
	return out, err
}

// RemoveMember removes a member (admins), or the caller itself: leave.
func (c *Client) RemoveMember(ctx context.Context, chatID, userID string) error {
	return c.doAuth(ctx, http.MethodDelete, groupPath(chatID, "members", userID), nil, nil)
}

// SetAdmin promotes (admin true) or demotes a member (admins).
func (c *Client) SetAdmin(ctx context.Context, chatID, userID string, admin bool) (wire.Group, error) {
	method := http.MethodPut
	if !admin {
		method = http.MethodDelete
	}
	var out wire.Group
	err := c.doAuth(ctx, method, groupPath(chatID, "admins", userID), nil, &out)
	return out, err
}

// MessageReceipts returns, to the author of message msgID in chatID, when
// each of its readers got it and read it (nil times: not yet).
func (c *Client) MessageReceipts(ctx context.Context, chatID, msgID string) (wire.ReceiptsResponse, error) {
	var out wire.ReceiptsResponse
	err := c.doAuth(ctx, http.MethodGet,
		"/v1/chats/"+url.PathEscape(chatID)+"/messages/"+url.PathEscape(msgID)+"/receipts", nil, &out)
	return out, err
}
