package auth

import (
	"time"

	"github.com/tern-im/tern/wire"
)

func rateLimited(wait time.Duration, format string, args ...any) *wire.Error {
	e := wire.Errorf(wire.CodeRateLimited, format, args...)
	e.RetryAfter = ceilSeconds(wait)
	return e
}

// ceilSeconds rounds up and never answers 0, because a client told to retry
// after 0 seconds would retry at once and be refused again.
func ceilSeconds(d time.Duration) int {
	s := int((d + time.Second - 1) / time.Second)
	if s < 1 {
		s = 1
	}
	return s
}

func errUnauthorized(msg string) *wire.Error {
	return wire.Errorf(wire.CodeUnauthorized, "%s", msg)
}
