package inproc

import (
	"context"
	"sync"

	"github.com/tern-im/tern/routing"
)

// Router routes within one process.
type Router struct {
	mu       sync.RWMutex
	handlers map[string]*slot
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
	s := r.handlers[deviceID]
	r.mu.RUnlock()
	if s == nil {
		return routing.ErrNoRoute
	}
	s.h.Deliver(env)
	return nil
}

// Close implements routing.Router.
func (r *Router) Close() error { return nil }
