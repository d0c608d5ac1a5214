//go:build unix

package bench

import (
	"syscall"
	"time"
)

// selfUsage returns the CPU time (user + system) this process has used and
// its peak resident set in bytes.
func selfUsage() (cpu time.Duration, maxRSS int64) {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0, 0
	}
	cpu = time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
	// Linux reports ru_maxrss in KiB (macOS in bytes; close enough for a
	// report that says which platform it ran on).
	return cpu, int64(ru.Maxrss) * 1024
}
