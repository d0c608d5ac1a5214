package mongo

import (
	"context"
	"errors"
	"fmt"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// collContacts holds address books: _id user id, phones [the saved
// numbers]. One document per user, replaced whole, so that a new book
// never mixes with the old one; an address book of thousands of numbers
// is tens of kilobytes.
const collContacts = "contacts"

// SetContacts implements store.AddressBooks.
func (s *Store) SetContacts(ctx context.Context, userID string, phones []string) error {
	if !validID(userID) {
		return fmt.Errorf("set contacts: %w", errInvalid("user id"))
	}
	for _, p := range phones {
		if p == "" {
			return fmt.Errorf("set contacts: %w", errInvalid("empty phone"))
		}
	}
	err := s.users.FindOne(ctx, bson.D{{Key: "_id", Value: userID}}, options.FindOne().SetProjection(bson.D{{Key: "_id", Value: 1}})).Err()
	if errors.Is(err, mongo.ErrNoDocuments) {
		err = store.ErrNotFound
	}
	if err == nil {
		if phones == nil {
			phones = []string{}
		}
		_, err = s.contacts.ReplaceOne(ctx, bson.D{{Key: "_id", Value: userID}},
			bson.D{{Key: "_id", Value: userID}, {Key: "phones", Value: phones}}, options.Replace().SetUpsert(true))
	}
	if err != nil {
		return fmt.Errorf("set contacts of %s: %w", userID, err)
	}
	return nil
}

// HasContact implements store.AddressBooks: the _id index finds the book,
// and the server looks for the number in it.
func (s *Store) HasContact(ctx context.Context, userID, phone string) (bool, error) {
	if !validID(userID) || phone == "" {
		return false, nil
	}
	n, err := s.contacts.CountDocuments(ctx, bson.D{{Key: "_id", Value: userID}, {Key: "phones", Value: phone}},
		options.Count().SetLimit(1))
	if err != nil {
		return false, fmt.Errorf("contact %s of %s: %w", phone, userID, err)
	}
	return n > 0, nil
}
