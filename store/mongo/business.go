package mongo

import (
	"context"
	"errors"
	"fmt"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"

	"github.com/tern-im/tern/store"
)

// The business API's collections. Each record is one document, so every
// write is a single atomic operation. The uniqueness of phone number and
// WABA ids is the unique indexes', which makes it hold across nodes; a
// business's _id is its user id, so a user is a business at most once.
// The customer-service windows are one document per (business, customer),
// _id "<business>/<customer>", raised with $max, which no interleaving of
// raises can lower. The callback data of sent messages is one document
// per message, _id "<business>/<message>", replaced by a put and pruned
// by time through the {at} index.
const (
	collBusinesses     = "businesses"
	collBusinessTokens = "business_tokens"
	collWindows        = "business_windows"
	collTemplates      = "business_templates"
	collCallbackData   = "business_callback_data"
)

type businessDoc struct {
	ID         string    `bson:"_id"`
	Device     string    `bson:"device"`
	PhoneID    string    `bson:"phone_number_id"`
	WABA       string    `bson:"waba_id"`
	Name       string    `bson:"name,omitempty"`
	Secret     []byte    `bson:"app_secret,omitempty"`
	Webhook    string    `bson:"webhook_url,omitempty"`
	Verify     string    `bson:"verify_token,omitempty"`
	Verified   time.Time `bson:"webhook_verified,omitempty"`
	WindowRule bool      `bson:"window_rule,omitempty"`
	Rate       int       `bson:"rate,omitempty"`
	Created    time.Time `bson:"created"`
}

func (d *businessDoc) business() store.Business {
	return store.Business{UserID: d.ID, DeviceID: d.Device, PhoneNumberID: d.PhoneID, WABAID: d.WABA, Name: d.Name,
		AppSecret: d.Secret, WebhookURL: d.Webhook, VerifyToken: d.Verify, WebhookVerifiedAt: d.Verified.UTC(),
		WindowRule: d.WindowRule, RatePerSecond: d.Rate, CreatedAt: d.Created.UTC()}
}

// CreateBusiness implements store.Businesses: the insert is the check,
// against the unique indexes on _id, phone_number_id and waba_id.
func (s *Store) CreateBusiness(ctx context.Context, b store.Business) error {
	if !validID(b.UserID) || b.DeviceID == "" || b.PhoneNumberID == "" || b.WABAID == "" {
		return fmt.Errorf("create business: %w", errInvalid("user, device, phone number or WABA id"))
	}
	d := businessDoc{ID: b.UserID, Device: b.DeviceID, PhoneID: b.PhoneNumberID, WABA: b.WABAID, Name: b.Name,
		Secret: b.AppSecret, Webhook: b.WebhookURL, Verify: b.VerifyToken, Verified: b.WebhookVerifiedAt.UTC(),
		WindowRule: b.WindowRule, Rate: b.RatePerSecond, Created: b.CreatedAt.UTC()}
	_, err := s.businesses.InsertOne(ctx, d)
	if mongo.IsDuplicateKeyError(err) {
		err = fmt.Errorf("user, phone number id or WABA id is taken: %w", store.ErrConflict)
	}
	if err != nil {
		return fmt.Errorf("create business %s: %w", b.UserID, err)
	}
	return nil
}

// Business implements store.Businesses.
func (s *Store) Business(ctx context.Context, userID string) (store.Business, error) {
	b, err := s.businessBy(ctx, "_id", userID)
	if err != nil {
		return store.Business{}, fmt.Errorf("business %s: %w", userID, err)
	}
	return b, nil
}

// BusinessByPhoneNumberID implements store.Businesses.
func (s *Store) BusinessByPhoneNumberID(ctx context.Context, id string) (store.Business, error) {
	b, err := s.businessBy(ctx, "phone_number_id", id)
	if err != nil {
		return store.Business{}, fmt.Errorf("business by phone number id %s: %w", id, err)
	}
	return b, nil
}

// BusinessByWABA implements store.Businesses.
func (s *Store) BusinessByWABA(ctx context.Context, id string) (store.Business, error) {
	b, err := s.businessBy(ctx, "waba_id", id)
	if err != nil {
		return store.Business{}, fmt.Errorf("business by WABA id %s: %w", id, err)
	}
	return b, nil
}

// businessBy finds the business whose field is v (a unique index's).
func (s *Store) businessBy(ctx context.Context, field, v string) (store.Business, error) {
	var d businessDoc
	if err := s.businesses.FindOne(ctx, bson.D{{Key: field, Value: v}}).Decode(&d); err != nil {
		return store.Business{}, notFound(err)
	}
	return d.business(), nil
}

// UpdateBusiness implements store.Businesses: one update that sets every
// field but the ids and the creation time (and unsets the empty ones, as
// an insert leaves them out), so the unique indexes never change.
func (s *Store) UpdateBusiness(ctx context.Context, b store.Business) error {
	var set, unset bson.D
	field := func(k string, v any, empty bool) {
		if empty {
			unset = append(unset, bson.E{Key: k, Value: ""})
		} else {
			set = append(set, bson.E{Key: k, Value: v})
		}
	}
	field("name", b.Name, b.Name == "")
	field("app_secret", b.AppSecret, len(b.AppSecret) == 0)
	field("webhook_url", b.WebhookURL, b.WebhookURL == "")
	field("verify_token", b.VerifyToken, b.VerifyToken == "")
	field("webhook_verified", b.WebhookVerifiedAt.UTC(), b.WebhookVerifiedAt.IsZero())
	field("window_rule", b.WindowRule, !b.WindowRule)
	field("rate", b.RatePerSecond, b.RatePerSecond == 0)
	var update bson.D
	if len(set) > 0 {
		update = append(update, bson.E{Key: "$set", Value: set})
	}
	if len(unset) > 0 {
		update = append(update, bson.E{Key: "$unset", Value: unset})
	}
	res, err := s.businesses.UpdateOne(ctx, bson.D{{Key: "_id", Value: b.UserID}}, update)
	if err == nil && res.MatchedCount == 0 {
		err = store.ErrNotFound
	}
	if err != nil {
		return fmt.Errorf("update business %s: %w", b.UserID, err)
	}
	return nil
}

// defaultBusinessList is the page of ListBusinesses when the caller names
// none.
const defaultBusinessList = 50

// ListBusinesses implements store.Businesses: a walk of the _id index
// from after.
func (s *Store) ListBusinesses(ctx context.Context, after string, limit int) ([]store.Business, error) {
	if limit < 1 {
		limit = defaultBusinessList
	}
	filter := bson.D{}
	if after != "" {
		filter = bson.D{{Key: "_id", Value: bson.D{{Key: "$gt", Value: after}}}}
	}
	cur, err := s.businesses.Find(ctx, filter,
		options.Find().SetSort(bson.D{{Key: "_id", Value: 1}}).SetLimit(int64(limit)))
	var docs []businessDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("list businesses: %w", err)
	}
	out := make([]store.Business, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].business())
	}
	return out, nil
}

type businessTokenDoc struct {
	ID       string    `bson:"_id"`
	Business string    `bson:"business"`
	Name     string    `bson:"name,omitempty"`
	Hash     []byte    `bson:"hash"`
	Created  time.Time `bson:"created"`
}

func (d *businessTokenDoc) token() store.BusinessToken {
	return store.BusinessToken{ID: d.ID, UserID: d.Business, Name: d.Name, Hash: d.Hash, CreatedAt: d.Created.UTC()}
}

// PutBusinessToken implements store.Businesses.
func (s *Store) PutBusinessToken(ctx context.Context, t store.BusinessToken) error {
	if t.ID == "" || t.UserID == "" {
		return fmt.Errorf("put business token: %w", errInvalid("token or business id"))
	}
	d := businessTokenDoc{ID: t.ID, Business: t.UserID, Name: t.Name, Hash: t.Hash, Created: t.CreatedAt.UTC()}
	_, err := s.businessTokens.ReplaceOne(ctx, bson.D{{Key: "_id", Value: t.ID}}, d, options.Replace().SetUpsert(true))
	if err != nil {
		return fmt.Errorf("put business token %s: %w", t.ID, err)
	}
	return nil
}

// BusinessToken implements store.Businesses.
func (s *Store) BusinessToken(ctx context.Context, id string) (store.BusinessToken, error) {
	var d businessTokenDoc
	if err := s.businessTokens.FindOne(ctx, bson.D{{Key: "_id", Value: id}}).Decode(&d); err != nil {
		return store.BusinessToken{}, fmt.Errorf("business token %s: %w", id, notFound(err))
	}
	return d.token(), nil
}

// BusinessTokens implements store.Businesses (the {business} index).
func (s *Store) BusinessTokens(ctx context.Context, userID string) ([]store.BusinessToken, error) {
	cur, err := s.businessTokens.Find(ctx, bson.D{{Key: "business", Value: userID}},
		options.Find().SetSort(bson.D{{Key: "created", Value: 1}, {Key: "_id", Value: 1}}))
	var docs []businessTokenDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("business tokens of %s: %w", userID, err)
	}
	out := make([]store.BusinessToken, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].token())
	}
	return out, nil
}

// DeleteBusinessToken implements store.Businesses.
func (s *Store) DeleteBusinessToken(ctx context.Context, id string) error {
	if _, err := s.businessTokens.DeleteOne(ctx, bson.D{{Key: "_id", Value: id}}); err != nil {
		return fmt.Errorf("delete business token %s: %w", id, err)
	}
	return nil
}

// RaiseWindow implements store.Businesses: an upsert with $max.
func (s *Store) RaiseWindow(ctx context.Context, businessID, customerID string, ts int64) error {
	if !validID(businessID) || !validID(customerID) || ts <= 0 {
		return fmt.Errorf("raise window: %w", errInvalid("business id, customer id or time"))
	}
	// Two upserts of one new _id at once can both miss and one of them
	// then fails on the duplicate key (MongoDB retries that itself for an
	// _id filter; FerretDB may not). The record exists then, and the
	// retry applies $max to it.
	var err error
	for range 2 {
		_, err = s.windows.UpdateOne(ctx, bson.D{{Key: "_id", Value: pairKey(businessID, customerID)}},
			bson.D{{Key: "$max", Value: bson.D{{Key: "ts", Value: ts}}}}, options.UpdateOne().SetUpsert(true))
		if err == nil || !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("raise window of %s with %s: %w", businessID, customerID, err)
	}
	return nil
}

// Window implements store.Businesses.
func (s *Store) Window(ctx context.Context, businessID, customerID string) (int64, error) {
	if !validID(businessID) || !validID(customerID) {
		return 0, nil // no such pair can have been raised
	}
	var d struct {
		TS int64 `bson:"ts"`
	}
	err := s.windows.FindOne(ctx, bson.D{{Key: "_id", Value: pairKey(businessID, customerID)}}).Decode(&d)
	if errors.Is(err, mongo.ErrNoDocuments) {
		return 0, nil
	}
	if err != nil {
		return 0, fmt.Errorf("window of %s with %s: %w", businessID, customerID, err)
	}
	return d.TS, nil
}

// templateDoc is a template in one language. Its _id is the server's: the
// unique {business, name, language} index is its key, and orders a
// business's templates.
type templateDoc struct {
	Business   string    `bson:"business"`
	Name       string    `bson:"name"`
	Language   string    `bson:"language"`
	Category   string    `bson:"category,omitempty"`
	Status     string    `bson:"status,omitempty"`
	Components []byte    `bson:"components,omitempty"`
	Created    time.Time `bson:"created"`
}

func (d *templateDoc) template() store.Template {
	return store.Template{UserID: d.Business, Name: d.Name, Language: d.Language, Category: d.Category,
		Status: d.Status, Components: d.Components, CreatedAt: d.Created.UTC()}
}

func templateFilter(userID, name, language string) bson.D {
	return bson.D{{Key: "business", Value: userID}, {Key: "name", Value: name}, {Key: "language", Value: language}}
}

// PutTemplate implements store.Businesses: an upsert by the unique index.
func (s *Store) PutTemplate(ctx context.Context, t store.Template) error {
	if t.UserID == "" || t.Name == "" || t.Language == "" {
		return fmt.Errorf("put template: %w", errInvalid("business id, template name or language"))
	}
	d := templateDoc{Business: t.UserID, Name: t.Name, Language: t.Language, Category: t.Category, Status: t.Status,
		Components: t.Components, Created: t.CreatedAt.UTC()}
	// Two upserts of one new template at once can both miss, and the
	// unique index then refuses one of them: the template exists, and the
	// retry replaces it.
	var err error
	for range 2 {
		_, err = s.templates.ReplaceOne(ctx, templateFilter(t.UserID, t.Name, t.Language), d,
			options.Replace().SetUpsert(true))
		if err == nil || !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("put template %s/%s of %s: %w", t.Name, t.Language, t.UserID, err)
	}
	return nil
}

// Template implements store.Businesses.
func (s *Store) Template(ctx context.Context, userID, name, language string) (store.Template, error) {
	var d templateDoc
	if err := s.templates.FindOne(ctx, templateFilter(userID, name, language)).Decode(&d); err != nil {
		return store.Template{}, fmt.Errorf("template %s/%s of %s: %w", name, language, userID, notFound(err))
	}
	return d.template(), nil
}

// Templates implements store.Businesses (the {business, name, language}
// index).
func (s *Store) Templates(ctx context.Context, userID string) ([]store.Template, error) {
	cur, err := s.templates.Find(ctx, bson.D{{Key: "business", Value: userID}},
		options.Find().SetSort(bson.D{{Key: "name", Value: 1}, {Key: "language", Value: 1}}))
	var docs []templateDoc
	if err == nil {
		err = cur.All(ctx, &docs)
	}
	if err != nil {
		return nil, fmt.Errorf("templates of %s: %w", userID, err)
	}
	out := make([]store.Template, 0, len(docs))
	for i := range docs {
		out = append(out, docs[i].template())
	}
	return out, nil
}

// DeleteTemplate implements store.Businesses: every language in one
// command (the index's {business, name} prefix).
func (s *Store) DeleteTemplate(ctx context.Context, userID, name string) error {
	_, err := s.templates.DeleteMany(ctx, bson.D{{Key: "business", Value: userID}, {Key: "name", Value: name}})
	if err != nil {
		return fmt.Errorf("delete template %s of %s: %w", name, userID, err)
	}
	return nil
}

// callbackDataDoc is the callback data of one message. business and msg
// repeat the _id's parts, which a message id holding a '/' (a Cloud API
// id may) would make ambiguous to split.
type callbackDataDoc struct {
	ID       string    `bson:"_id"`
	Business string    `bson:"business"`
	Msg      string    `bson:"msg"`
	Data     string    `bson:"data"`
	At       time.Time `bson:"at"`
}

// PutCallbackData implements store.Businesses: a replace by _id, upserted.
func (s *Store) PutCallbackData(ctx context.Context, businessID, msgID, data string, at time.Time) error {
	if !validID(businessID) || msgID == "" {
		return fmt.Errorf("put callback data: %w", errInvalid("business or message id"))
	}
	id := pairKey(businessID, msgID)
	d := callbackDataDoc{ID: id, Business: businessID, Msg: msgID, Data: data, At: at.UTC()}
	// Two upserts of one new _id at once can both miss, and one then fails
	// on the duplicate key (see RaiseWindow): the record exists, and the
	// retry replaces it.
	var err error
	for range 2 {
		_, err = s.callbackData.ReplaceOne(ctx, bson.D{{Key: "_id", Value: id}}, d, options.Replace().SetUpsert(true))
		if err == nil || !mongo.IsDuplicateKeyError(err) {
			break
		}
	}
	if err != nil {
		return fmt.Errorf("put callback data of %s of %s: %w", msgID, businessID, err)
	}
	return nil
}

// CallbackData implements store.Businesses: a point read of the _id index.
func (s *Store) CallbackData(ctx context.Context, businessID, msgID string) (string, error) {
	err := store.ErrNotFound
	var d callbackDataDoc
	if validID(businessID) && msgID != "" {
		err = notFound(s.callbackData.FindOne(ctx, bson.D{{Key: "_id", Value: pairKey(businessID, msgID)}},
			options.FindOne().SetProjection(bson.D{{Key: "data", Value: 1}})).Decode(&d))
	}
	if err != nil {
		return "", fmt.Errorf("callback data of %s of %s: %w", msgID, businessID, err)
	}
	return d.Data, nil
}

// PruneCallbackData implements store.Businesses. A delete cannot be
// limited, so each page is the oldest ids (the {at} index, in order),
// then one delete of them. The delete repeats the time condition: a
// record put again between the two, with a newer time, stays.
func (s *Store) PruneCallbackData(ctx context.Context, before time.Time, limit int) (int, error) {
	// Times are stored in whole milliseconds (see listedBelow).
	old := bson.D{{Key: "at", Value: bson.D{{Key: "$lt", Value: listedBelow(before)}}}}
	n := 0
	for n < limit {
		want := limit - n
		var docs []struct {
			ID string `bson:"_id"`
		}
		cur, err := s.callbackData.Find(ctx, old, options.Find().SetSort(bson.D{{Key: "at", Value: 1}}).
			SetLimit(int64(want)).SetProjection(bson.D{{Key: "_id", Value: 1}}))
		if err == nil {
			err = cur.All(ctx, &docs)
		}
		if err != nil {
			return n, fmt.Errorf("prune callback data: %w", err)
		}
		if len(docs) == 0 {
			break
		}
		ids := make(bson.A, len(docs))
		for i := range docs {
			ids[i] = docs[i].ID
		}
		res, err := s.callbackData.DeleteMany(ctx, append(bson.D{{Key: "_id", Value: bson.D{{Key: "$in", Value: ids}}}}, old...))
		if err != nil {
			return n, fmt.Errorf("prune callback data: %w", err)
		}
		n += int(res.DeletedCount)
		// A short page is all there was; one another node pruned all of
		// meanwhile is too, near enough.
		if len(docs) < want || res.DeletedCount == 0 {
			break
		}
	}
	return n, nil
}
