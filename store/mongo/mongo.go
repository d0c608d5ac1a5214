package mongo

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"go.mongodb.org/mongo-driver/v2/bson"
	"go.mongodb.org/mongo-driver/v2/event"
	"go.mongodb.org/mongo-driver/v2/mongo"
	"go.mongodb.org/mongo-driver/v2/mongo/options"
	"go.mongodb.org/mongo-driver/v2/mongo/readpref"
	"go.mongodb.org/mongo-driver/v2/mongo/writeconcern"

	"github.com/tern-im/tern/store"
)

// Defaults of Config.
const (
	DefaultDatabase = "tern"
	DefaultTimeout  = 10 * time.Second
)

// Config says where the store lives and how it writes.
type Config struct {
	// URI is a MongoDB connection string (mongodb:// or mongodb+srv://).
	URI string
	// Database is the database name; "" means DefaultDatabase.
	Database string
	// WriteConcern is "majority" (the default: a write that returned
	// survives the loss of the primary) or a number of nodes such as "1"
	// (faster; a failover can lose the last writes).
	WriteConcern string
	// Log receives the rare events worth knowing about: chat locks taken
	// over from a dead node, sends completed on its behalf. nil discards.
	Log *slog.Logger
	// Timeout bounds connecting, each database operation whose context has
	// no deadline of its own, the completion of a send whose caller has
	// gone, and how long a chat lock may be held before other nodes take
	// it over. 0 means DefaultTimeout.
	Timeout time.Duration

	// monitor, set by tests, sees every command the store sends.
	monitor *event.CommandMonitor
	// readClock, set by tests, is the clock (unix ms) that ages the notes
	// a read leaves for its receipts; nil: the wall clock.
	readClock func() int64
}

// Store is the MongoDB adapter of store.Store. It is safe for concurrent
// use, and any number of Stores (nodes) may share one database.
type Store struct {
	client *mongo.Client
	log    *slog.Logger

	users, devices, codes, secrets *mongo.Collection
	chats, members, messages       *mongo.Collection
	inbox, marks, contacts         *mongo.Collection
	blocks, reports, hidden, stars *mongo.Collection
	media, mediaShares, mediaRefs  *mongo.Collection
	pushes                         *mongo.Collection
	feed, feeds                    *mongo.Collection
	admins, adminSessions, apiKeys *mongo.Collection
	audit, bans                    *mongo.Collection
	nodes                          *mongo.Collection // node reports (nodes.go)
	leases                         *mongo.Collection // leases.go
	businesses, businessTokens     *mongo.Collection // the business API's (business.go)
	windows, templates             *mongo.Collection
	callbackData                   *mongo.Collection

	timeout time.Duration
	// lockTimeout is how long a chat lock may stay with one holder before
	// a waiter takes it over (Config.Timeout; tests shorten it).
	lockTimeout time.Duration
	// readClock ages read notes (Config.readClock).
	readClock func() int64
	// chatGates queue this node's senders of one chat in memory, so that
	// only one of them at a time polls the chat's lock in the database.
	chatGates gates
	// acked remembers, per device, what this node's last ack of it left
	// in the device document, to skip reading it back (see ack.go).
	acked boundedMap[ackHead]
	// devUsers maps devices to their users, which never change, to read a
	// device's feed without reading the device first.
	devUsers boundedMap[string]
	// stopAck, set by tests, stops an ack after the step it names as a
	// node dying there would.
	stopAck func(step string) bool
	// updateBatch, if set, caps the statements of one update command
	// (bulkUpdate). Tests set it on FerretDB v1, which keeps a connection
	// per statement until the command ends and hangs at its pool's 100.
	updateBatch int
}

var _ store.Store = (*Store)(nil)

// Open connects, checks that the server answers and creates the indexes
// (creating an existing index is a no-op, so every node does it at start).
func Open(ctx context.Context, cfg Config) (*Store, error) {
	if cfg.URI == "" {
		return nil, errors.New("store/mongo: no URI")
	}
	if cfg.Database == "" {
		cfg.Database = DefaultDatabase
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = DefaultTimeout
	}
	wc, err := parseWriteConcern(cfg.WriteConcern)
	if err != nil {
		return nil, err
	}
	log := cfg.Log
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	opts := options.Client().ApplyURI(cfg.URI).
		SetWriteConcern(wc).
		SetReadPreference(readpref.Primary()).
		SetTimeout(cfg.Timeout).
		SetConnectTimeout(cfg.Timeout).
		SetServerSelectionTimeout(cfg.Timeout).
		SetAppName("tern")
	if cfg.monitor != nil {
		opts.SetMonitor(cfg.monitor)
	}
	client, err := mongo.Connect(opts)
	if err != nil {
		return nil, fmt.Errorf("store/mongo: connect: %w", err)
	}
	db := client.Database(cfg.Database)
	s := &Store{
		client:      client,
		log:         log,
		users:       db.Collection(collUsers),
		devices:     db.Collection(collDevices),
		codes:       db.Collection(collCodes),
		secrets:     db.Collection(collSecrets),
		chats:       db.Collection(collChats),
		members:     db.Collection(collMembers),
		messages:    db.Collection(collMessages),
		inbox:       db.Collection(collInbox),
		marks:       db.Collection(collMarks),
		contacts:    db.Collection(collContacts),
		blocks:      db.Collection(collBlocks),
		reports:     db.Collection(collReports),
		hidden:      db.Collection(collHidden),
		stars:       db.Collection(collStars),
		media:       db.Collection(collMedia),
		mediaShares: db.Collection(collMediaShares),
		mediaRefs:   db.Collection(collMediaRefs),
		pushes:      db.Collection(collPushes),
		feed:        db.Collection(collFeed),
		feeds:       db.Collection(collFeeds),
		timeout:     cfg.Timeout,
		lockTimeout: cfg.Timeout,
		readClock:   cfg.readClock,
		acked:       boundedMap[ackHead]{limit: 1 << 16}, // about 100 bytes each
		devUsers:    boundedMap[string]{limit: 1 << 18},  // about 100 bytes each

		// The admin dashboard's (admin.go).
		admins:        db.Collection(collAdmins),
		adminSessions: db.Collection(collAdminSessions),
		apiKeys:       db.Collection(collAPIKeys),
		audit:         db.Collection(collAudit),
		bans:          db.Collection(collBans),
		nodes:         db.Collection(collNodes),
		leases:        db.Collection(collLeases),

		// The business API's (business.go).
		businesses:     db.Collection(collBusinesses),
		businessTokens: db.Collection(collBusinessTokens),
		windows:        db.Collection(collWindows),
		templates:      db.Collection(collTemplates),
		callbackData:   db.Collection(collCallbackData),
	}
	if err := s.Ping(ctx); err != nil {
		s.disconnect()
		return nil, fmt.Errorf("store/mongo: %w", err)
	}
	if err := s.createIndexes(ctx, db); err != nil {
		s.disconnect()
		return nil, fmt.Errorf("store/mongo: create indexes: %w", err)
	}
	if err := s.migrateInboxes(ctx); err != nil {
		s.disconnect()
		return nil, fmt.Errorf("store/mongo: move inboxes to feeds: %w", err)
	}
	if s.readClock == nil {
		s.readClock = nowMillis
	}
	return s, nil
}

func parseWriteConcern(s string) (*writeconcern.WriteConcern, error) {
	switch s {
	case "", "majority":
		return writeconcern.Majority(), nil
	}
	n, err := strconv.Atoi(s)
	if err != nil || n < 1 {
		return nil, fmt.Errorf("store/mongo: write concern %q: want \"majority\" or a number of nodes (1 or more)", s)
	}
	return &writeconcern.WriteConcern{W: n}, nil
}

// Ping implements store.Store: the primary answers.
func (s *Store) Ping(ctx context.Context) error {
	if err := s.client.Ping(ctx, readpref.Primary()); err != nil {
		return fmt.Errorf("ping: %w", err)
	}
	return nil
}

// Close implements store.Store. Every write has been acknowledged by the
// server when its call returned, so there is nothing to flush.
func (s *Store) Close() error {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	if err := s.client.Disconnect(ctx); err != nil && !errors.Is(err, mongo.ErrClientDisconnected) {
		return fmt.Errorf("store/mongo: close: %w", err)
	}
	return nil
}

func (s *Store) disconnect() {
	ctx, cancel := context.WithTimeout(context.Background(), s.timeout)
	defer cancel()
	_ = s.client.Disconnect(ctx)
}

// Collections.
const (
	collUsers    = "users"
	collDevices  = "devices"
	collCodes    = "codes"
	collSecrets  = "secrets"
	collChats    = "chats"
	collMembers  = "members"
	collMessages = "messages"
	collInbox    = "inbox"
)

// IndexSpec is one secondary index the store creates at Open. Every
// collection also has MongoDB's unique index on _id, which the store leans
// on most (see the package docs): it is not listed.
type IndexSpec struct {
	Collection string
	Keys       []string // ascending, in order
	Unique     bool
	// Sparse leaves out the documents that lack the (first) key: an
	// index of the few documents that have it.
	Sparse bool
	Why    string
}

// Indexes returns the secondary indexes the store creates at Open.
func Indexes() []IndexSpec {
	return []IndexSpec{
		{Collection: collUsers, Keys: []string{"phone"}, Unique: true,
			Why: "one user per phone: EnsureUser's get-or-create, UserByPhone, UsersByPhones"},
		{Collection: collDevices, Keys: []string{"user"},
			Why: "UserDevices, and the devices a receipt goes to"},
		{Collection: collMessages, Keys: []string{"dev", "key"}, Unique: true,
			Why: "the idempotency key of a send: one message per (sending device, client id)"},
		{Collection: collReports, Keys: []string{"res", "_id"},
			Why: "open reports (no res), newest first, for the admin dashboard (Reports with openOnly); all of them are listed by _id"},
		{Collection: collStars, Keys: []string{"user", "ts", "seq"},
			Why: "a user's starred messages, newest first"},
		{Collection: collMessages, Keys: []string{"id"}, Unique: true,
			Why: "a message by its id: the target of a reply (and of reactions, edits and deletes)"},
		{Collection: collMessages, Keys: []string{fieldDue}, Sparse: true,
			Why: "disappearing messages by when they are due, for the expiry sweep (ExpireDue)"},
		{Collection: collMedia, Keys: []string{fieldUnshared}, Sparse: true,
			Why: "media files no message carries, longest idle first, for the collector (UnsharedMediaFiles)"},
		{Collection: collPushes, Keys: []string{pushDue}, Sparse: true,
			Why: "queued pushes by when they are due, for claims (ClaimPushes) and the queue's depth (PendingPushes)"},
		{Collection: collAdmins, Keys: []string{"username"}, Unique: true,
			Why: "one admin account per username: CreateAdmin's check, sign-in (AdminByUsername)"},
		{Collection: collAdminSessions, Keys: []string{"admin"},
			Why: "an admin's dashboard sessions: signing out everywhere (DeleteAdminSessions), pruning expired ones"},
		{Collection: collAPIKeys, Keys: []string{"admin"},
			Why: "an admin's API keys (APIKeys)"},
		{Collection: collBans, Keys: []string{"ts"},
			Why: "bans, newest first, for the admin dashboard (Banned)"},
		{Collection: collBusinesses, Keys: []string{"phone_number_id"}, Unique: true,
			Why: "one business per Cloud API phone_number_id: CreateBusiness's check, the business a request's URL names (BusinessByPhoneNumberID)"},
		{Collection: collBusinesses, Keys: []string{"waba_id"}, Unique: true,
			Why: "one business per WABA id: CreateBusiness's check, template requests (BusinessByWABA)"},
		{Collection: collBusinessTokens, Keys: []string{"business"},
			Why: "a business's API tokens (BusinessTokens)"},
		{Collection: collTemplates, Keys: []string{"business", "name", "language"}, Unique: true,
			Why: "one template per (business, name, language): PutTemplate's replace, a business's templates in order (Templates), a name's languages (DeleteTemplate)"},
		{Collection: collCallbackData, Keys: []string{"at"},
			Why: "the callback data of sent messages by when they were sent, oldest first, for pruning (PruneCallbackData)"},
	}
}

func (s *Store) createIndexes(ctx context.Context, db *mongo.Database) error {
	for _, ix := range Indexes() {
		keys := bson.D{}
		for _, k := range ix.Keys {
			keys = append(keys, bson.E{Key: k, Value: 1})
		}
		m := mongo.IndexModel{Keys: keys, Options: options.Index().SetName(strings.Join(ix.Keys, "_"))}
		if ix.Unique {
			m.Options.SetUnique(true)
		}
		if ix.Sparse {
			m.Options.SetSparse(true)
		}
		if _, err := db.Collection(ix.Collection).Indexes().CreateOne(ctx, m); err != nil {
			return fmt.Errorf("%s %v: %w", ix.Collection, ix.Keys, err)
		}
	}
	return nil
}

// Keys. Chat logs, inboxes and chat memberships are addressed by string
// _ids "<id>/<number>" and "<user>/<chat>", so that MongoDB's _id index is
// their (unique) index and a chat's log or a device's inbox is an _id range.
// Numbers are zero-padded to 19 digits (any int64), so that string order is
// numeric order. Ids come from the server and never hold a '/'; the range
// of id is [id+"/", id+"0"), '0' being the byte after '/'.
const (
	keySep   = '/'
	numWidth = 19
)

// validID reports whether id can lead a compound key.
func validID(id string) bool {
	return id != "" && len(id) <= 512 && !strings.ContainsRune(id, keySep)
}

// numKey returns id/NNNNNNNNNNNNNNNNNNN.
func numKey(id string, n int64) string {
	var digits [20]byte
	d := strconv.AppendInt(digits[:0], max(n, 0), 10)
	b := make([]byte, 0, len(id)+1+numWidth)
	b = append(b, id...)
	b = append(b, keySep)
	for range numWidth - len(d) {
		b = append(b, '0')
	}
	return string(append(b, d...))
}

// pairKey returns a/b.
func pairKey(a, b string) string { return a + string(keySep) + b }

// rangeStart and rangeEnd bound the keys that start with id/.
func rangeStart(id string) string { return id + string(keySep) }
func rangeEnd(id string) string   { return id + string(keySep+1) }

// errInvalid is a request refused whatever the store holds: it wraps
// store.ErrInvalid, which callers tell from an outage.
func errInvalid(what string) error {
	return fmt.Errorf("store/mongo: invalid %s: %w", what, store.ErrInvalid)
}

// callerError carries an error of the caller's own function (Apply,
// Check) through the store's wrapping: Send and WriteGroup return it as it
// came.
type callerError struct{ err error }

func (e *callerError) Error() string { return e.err.Error() }
func (e *callerError) Unwrap() error { return e.err }

// notFound maps the driver's "no document" to store.ErrNotFound.
func notFound(err error) error {
	if errors.Is(err, mongo.ErrNoDocuments) {
		return store.ErrNotFound
	}
	return err
}

// newToken returns a random string that names one holder of a lock.
func newToken() string {
	return strconv.FormatUint(rand.Uint64(), 36) + strconv.FormatUint(rand.Uint64(), 36)
}

// detached returns a context for finishing a write that must not stop
// halfway when its caller gives up: the caller's values, no cancelation,
// the store's timeout.
func (s *Store) detached(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(context.WithoutCancel(ctx), s.timeout)
}

// parallel runs fns concurrently and returns the first error. The store's
// hot paths issue independent round trips this way, so that they cost one
// round trip of latency.
func parallel(fns ...func() error) error {
	if len(fns) == 1 {
		return fns[0]()
	}
	errs := make([]error, len(fns))
	var wg sync.WaitGroup
	for i, f := range fns[1:] {
		wg.Go(func() { errs[i+1] = f() })
	}
	errs[0] = fns[0]()
	wg.Wait()
	for _, err := range errs {
		if err != nil {
			return err
		}
	}
	return nil
}

// gates is a set of per-key mutexes that exist while someone holds or
// waits for them.
type gates struct {
	mu sync.Mutex
	m  map[string]*gate
}

type gate struct {
	ch   chan struct{} // holds a token while the gate is locked
	refs int
}

// lock waits for key's gate; the returned func unlocks it.
func (g *gates) lock(ctx context.Context, key string) (func(), error) {
	g.mu.Lock()
	if g.m == nil {
		g.m = make(map[string]*gate)
	}
	e := g.m[key]
	if e == nil {
		e = &gate{ch: make(chan struct{}, 1)}
		g.m[key] = e
	}
	e.refs++
	g.mu.Unlock()
	put := func() {
		g.mu.Lock()
		if e.refs--; e.refs == 0 {
			delete(g.m, key)
		}
		g.mu.Unlock()
	}
	select {
	case e.ch <- struct{}{}:
		return func() { <-e.ch; put() }, nil
	case <-ctx.Done():
		put()
		return nil, ctx.Err()
	}
}

// bulkUpdate runs the update models against coll, unordered, and returns
// how many documents they matched. Its commands (one, unless updateBatch
// caps them) run concurrently; the error is the first one that ignore does
// not excuse (nil: none).
func (s *Store) bulkUpdate(ctx context.Context, coll *mongo.Collection, models []mongo.WriteModel, ignore func(error) bool) (int64, error) {
	if len(models) == 0 {
		return 0, nil
	}
	n := s.updateBatch
	if n <= 0 {
		n = len(models)
	}
	var (
		mu      sync.Mutex
		matched int64
	)
	fns := make([]func() error, 0, (len(models)+n-1)/max(n, 1))
	for chunk := range slices.Chunk(models, max(n, 1)) {
		fns = append(fns, func() error {
			res, err := coll.BulkWrite(ctx, chunk, options.BulkWrite().SetOrdered(false))
			if res != nil {
				mu.Lock()
				matched += res.MatchedCount
				mu.Unlock()
			}
			if err != nil && (ignore == nil || !ignore(err)) {
				return err
			}
			return nil
		})
	}
	if len(fns) == 0 {
		return 0, nil
	}
	err := parallel(fns...)
	return matched, err
}

// sleep waits d or until ctx ends.
func sleep(ctx context.Context, d time.Duration) error {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return nil
	case <-ctx.Done():
		return ctx.Err()
	}
}
