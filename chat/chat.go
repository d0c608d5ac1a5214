package chat

import (
	"context"
	"errors"
	"log/slog"
	"time"

	"github.com/tern-im/tern/store"
	"github.com/tern-im/tern/wire"
)

// Store is what the rules read and write.
type Store interface {
	store.Users
	store.AddressBooks
	store.Blocks
	store.Reports
	store.UserMarks
	store.Devices
	store.Messages
	store.Groups
	store.MediaFiles
}

// Dispatcher routes stored inbox events. Dispatch publishes deliveries as
// one batch and wakes the devices that no node holds; it returns once the
// router took them (a broker confirmed them), so a caller that answers
// after it never promises an event that could still be lost with this node.
// The group is the state after a group change, for rendering its events
// (nil for other deliveries). Poke asks the holders of every device of
// users but except to re-read their inboxes.
type Dispatcher interface {
	Dispatch(ctx context.Context, ds []store.Delivery, g *store.Group)
	Poke(ctx context.Context, users []string, except string)
	// Typing hands an ephemeral frame to every device of users; devices
	// nobody holds miss it.
	Typing(ctx context.Context, users []string, frame []byte)
}

// Config holds the rules' limits. Zero fields take DefaultConfig's.
type Config struct {
	MaxTextBytes     int // text + caption of one message
	MaxGroupSize     int // members of one group
	MaxGroupName     int // characters
	MaxGroupAbout    int // characters of a group's description
	StoreTimeout     time.Duration
	MaxHistoryLimit  int
	DefaultHistLimit int
	// EditWindow is how long after sending an author may edit a message;
	// DeleteWindow how long it (or a group admin) may delete it for
	// everyone.
	EditWindow   time.Duration
	DeleteWindow time.Duration
}

// DefaultConfig returns the production defaults.
func DefaultConfig() Config {
	return Config{
		MaxTextBytes:     16 << 10,
		MaxGroupSize:     1024,
		MaxGroupName:     100,
		MaxGroupAbout:    512,
		StoreTimeout:     30 * time.Second,
		MaxHistoryLimit:  200,
		DefaultHistLimit: 50,
		EditWindow:       15 * time.Minute,
		DeleteWindow:     48 * time.Hour,
	}
}

func (c Config) withDefaults() Config {
	d := DefaultConfig()
	if c.MaxTextBytes <= 0 {
		c.MaxTextBytes = d.MaxTextBytes
	}
	if c.MaxGroupSize <= 0 {
		c.MaxGroupSize = d.MaxGroupSize
	}
	if c.MaxGroupName <= 0 {
		c.MaxGroupName = d.MaxGroupName
	}
	if c.MaxGroupAbout <= 0 {
		c.MaxGroupAbout = d.MaxGroupAbout
	}
	if c.StoreTimeout <= 0 {
		c.StoreTimeout = d.StoreTimeout
	}
	if c.MaxHistoryLimit <= 0 {
		c.MaxHistoryLimit = d.MaxHistoryLimit
	}
	if c.EditWindow <= 0 {
		c.EditWindow = d.EditWindow
	}
	if c.DeleteWindow <= 0 {
		c.DeleteWindow = d.DeleteWindow
	}
	if c.DefaultHistLimit <= 0 || c.DefaultHistLimit > c.MaxHistoryLimit {
		c.DefaultHistLimit = min(d.DefaultHistLimit, c.MaxHistoryLimit)
	}
	return c
}

// Actor is the user and device a request comes from.
type Actor struct {
	UserID   string
	DeviceID string
}

// Service applies the rules. It is safe for concurrent use.
type Service struct {
	st  Store
	d   Dispatcher
	cfg Config
	now func() time.Time
	log *slog.Logger
}

// New returns a Service. now may be nil (the wall clock).
func New(st Store, d Dispatcher, cfg Config, now func() time.Time, log *slog.Logger) *Service {
	if now == nil {
		now = time.Now
	}
	if log == nil {
		log = slog.Default()
	}
	return &Service{st: st, d: d, cfg: cfg.withDefaults(), now: now, log: log}
}

// Config returns the limits in force.
func (s *Service) Config() Config { return s.cfg }

// Now is the time by the chat rules' clock.
func (s *Service) Now() time.Time { return s.now() }

// storeCtx bounds one store call: a hung database answers the client with
// an error instead of holding its request forever.
func (s *Service) storeCtx(ctx context.Context) (context.Context, context.CancelFunc) {
	return context.WithTimeout(ctx, s.cfg.StoreTimeout)
}

// Error maps an error of the store (or of the rules) to the wire error a
// client gets. Client-caused store errors get their codes here, once;
// anything else is internal, and the caller logs it.
func Error(err error) *wire.Error {
	var we *wire.Error
	switch {
	case err == nil:
		return nil
	case errors.As(err, &we):
		return we
	case errors.Is(err, store.ErrNotMember):
		return wire.Errorf(wire.CodeForbidden, "not a member of this chat")
	case errors.Is(err, store.ErrNotFound):
		return wire.Errorf(wire.CodeNotFound, "not found")
	case errors.Is(err, store.ErrInvalid):
		return wire.Errorf(wire.CodeBadRequest, "%s", err.Error())
	case errors.Is(err, store.ErrConflict):
		return wire.Errorf(wire.CodeConflict, "conflict")
	case errors.Is(err, store.ErrClosed), errors.Is(err, context.Canceled):
		return wire.Errorf(wire.CodeUnavailable, "server is shutting down")
	case errors.Is(err, context.DeadlineExceeded):
		return wire.Errorf(wire.CodeUnavailable, "the store did not answer in time; try again")
	}
	return wire.Errorf(wire.CodeInternal, "internal error")
}

// isGroup reports whether id names a group chat.
func isGroup(id string) bool { return len(id) > 1 && id[:1] == store.PrefixGroup }
