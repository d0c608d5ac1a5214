package inproc

import (
	"context"
	"errors"
	"sync"

	"github.com/tern-im/tern/routing"
)

// ErrClosed is returned by a closed router.
var ErrClosed = errors.New("routing/inproc: router closed")

// Router routes within one process.
type Router struct {
	mu          sync.RWMutex
	closed      bool
	handlers    map[string]*slot
	onBroadcast func(routing.Envelope)
}

// slot identifies one Attach, so that a late detach of a replaced handler
// does not remove its successor.
type slot struct{ h routing.Handler }

// New returns an empty router.
func New() *Router { return &Router{handlers: make(map[string]*slot)} }

// Attach implements routing.Router.
func (r *Router) Attach(_ context.Context, deviceID string, h routing.Handler) (func(), error) {
	s := &slot{h: h}
	r.mu.Lock()
	if r.closed {
		r.mu.Unlock()
		return nil, ErrClosed
	}
	r.handlers[deviceID] = s
	r.mu.Unlock()
	var once sync.Once
	return func() {
		once.Do(func() {
			r.mu.Lock()
			if r.handlers[deviceID] == s {
				delete(r.handlers, deviceID)
			}
			r.mu.Unlock()
		})
	}, nil
}

// Publish implements routing.Router.
func (r *Router) Publish(_ context.Context, deviceID string, env routing.Envelope) error {
	r.mu.RLock()
	s, closed := r.handlers[deviceID], r.closed
	r.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if s == nil {
		return routing.ErrNoRoute
	}
	s.h.Deliver(env)
	return nil
}

// Broadcast implements routing.Broadcaster: this process is every node.
func (r *Router) Broadcast(_ context.Context, env routing.Envelope) error {
	r.mu.RLock()
	fn, closed := r.onBroadcast, r.closed
	r.mu.RUnlock()
	if closed {
		return ErrClosed
	}
	if fn != nil {
		fn(env)
	}
	return nil
}

// OnBroadcast implements routing.Broadcaster.
func (r *Router) OnBroadcast(fn func(routing.Envelope)) {
	r.mu.Lock()
	r.onBroadcast = fn
	r.mu.Unlock()
}

// Close implements routing.Router.
func (r *Router) Close() error {
	r.mu.Lock()
	r.closed = true
	clear(r.handlers)
	r.mu.Unlock()
	return nil
}
