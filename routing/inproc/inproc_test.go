package inproc_test

import (
	"testing"

	"github.com/tern-im/tern/routing"
	"github.com/tern-im/tern/routing/inproc"
	"github.com/tern-im/tern/routing/routertest"
)

func TestConformance(t *testing.T) {
	routertest.Run(t, routertest.Options{}, func(t *testing.T, nodes int) []routing.Router {
		return []routing.Router{inproc.New()}
	})
}
