package client

import (
	"context"
	"net/http"

	"github.com/tern-im/tern/wire"
)

// Privacy returns the caller's privacy settings.
func (c *Client) Privacy(ctx context.Context) (wire.Privacy, error) {
	var out wire.Privacy
	err := c.doAuth(ctx, http.MethodGet, "/v1/me/privacy", nil, &out)
	return out, err
}

// UpdatePrivacy changes the privacy settings set in p.
func (c *Client) UpdatePrivacy(ctx context.Context, p wire.PrivacyPatch) (wire.Privacy, error) {
	var out wire.Privacy
	err := c.doAuth(ctx, http.MethodPatch, "/v1/me/privacy", p, &out)
	return out, err
}

// SetContacts saves the caller's address book, replacing the one saved
// before: the users with those numbers are its contacts.
func (c *Client) SetContacts(ctx context.Context, phones []string) error {
	if phones == nil {
		phones = []string{}
	}
	return c.doAuth(ctx, http.MethodPut, "/v1/contacts", wire.ContactsRequest{Phones: phones}, nil)
}
