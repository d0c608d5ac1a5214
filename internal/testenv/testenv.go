// Package testenv decides what a test does when an outside service it needs
// (RabbitMQ, MongoDB, a tool binary) is missing: skip loudly on a developer's
// machine, fail in CI, where .ci/run provides every service and sets
// TERN_TEST_REQUIRE=1 so that nothing is silently skipped.
package testenv

import (
	"fmt"
	"os"
	"testing"
)

// Required reports whether missing services must fail tests.
func Required() bool { return os.Getenv("TERN_TEST_REQUIRE") == "1" }

// Unavailable skips (or, when Required, fails) t because a service is
// missing; the message says what and how to provide it.
func Unavailable(t testing.TB, format string, args ...any) {
	t.Helper()
	msg := fmt.Sprintf(format, args...)
	if Required() {
		t.Fatalf("REQUIRED SERVICE MISSING (TERN_TEST_REQUIRE=1): %s", msg)
	}
	t.Skipf("SKIPPING: %s", msg)
}
