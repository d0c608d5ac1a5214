package main

import (
	"bufio"
	"io/fs"
	"os"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// cpuTime is user+system CPU time of the whole process (all threads,
// including pebble's background compactions and the GC).
func cpuTime() time.Duration {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return time.Duration(ru.Utime.Nano() + ru.Stime.Nano())
}

// writeBytes is /proc/self/io write_bytes: bytes this process caused to be
// sent to the storage layer (counted when a page cache page is dirtied).
// It returns -1 where the file is unavailable.
func writeBytes() int64 {
	f, err := os.Open("/proc/self/io")
	if err != nil {
		return -1
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		if v, ok := strings.CutPrefix(sc.Text(), "write_bytes: "); ok {
			n, err := strconv.ParseInt(strings.TrimSpace(v), 10, 64)
			if err != nil {
				return -1
			}
			return n
		}
	}
	return -1
}

// dirUsage returns the allocated size (what du counts: st_blocks*512) and
// the apparent size of all files under dir.
func dirUsage(dir string) (alloc, apparent int64) {
	filepath.WalkDir(dir, func(_ string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return nil
		}
		fi, err := d.Info()
		if err != nil {
			return nil
		}
		apparent += fi.Size()
		if st, ok := fi.Sys().(*syscall.Stat_t); ok {
			alloc += st.Blocks * 512
		}
		return nil
	})
	return alloc, apparent
}

// fsyncBaseline measures raw 4 KiB append + fdatasync on the benchmark's
// file system, as a yardstick for the engines' commit latencies.
func fsyncBaseline(dir string, d time.Duration) (p50 time.Duration, perSec float64, err error) {
	f, err := os.CreateTemp(dir, "fsync-baseline-*")
	if err != nil {
		return 0, 0, err
	}
	defer os.Remove(f.Name())
	defer f.Close()
	buf := make([]byte, 4096)
	// Allocate the extent first, so we time data syncs, not metadata updates
	// (what WAL recycling/preallocation buys the engines).
	if err := syscall.Fallocate(int(f.Fd()), 0, 0, 256<<20); err != nil {
		return 0, 0, err
	}
	if err := f.Sync(); err != nil {
		return 0, 0, err
	}
	var lats []time.Duration
	start := time.Now()
	for off := int64(0); time.Since(start) < d && off < 256<<20; off += 4096 {
		t := time.Now()
		if _, err := f.WriteAt(buf, off); err != nil {
			return 0, 0, err
		}
		if err := syscall.Fdatasync(int(f.Fd())); err != nil {
			return 0, 0, err
		}
		lats = append(lats, time.Since(t))
	}
	slices.Sort(lats)
	return lats[len(lats)/2], float64(len(lats)) / time.Since(start).Seconds(), nil
}
