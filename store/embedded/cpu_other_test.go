//go:build !unix

package embedded_test

import "time"

// cpuTime is not available here; the benchmarks then report no CPU figure.
func cpuTime() (time.Duration, bool) { return 0, false }
