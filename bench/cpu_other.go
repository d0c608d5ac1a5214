//go:build !unix

package bench

import "time"

// selfUsage is not measured on this platform.
func selfUsage() (cpu time.Duration, maxRSS int64) { return 0, 0 }
