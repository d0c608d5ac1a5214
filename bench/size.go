package bench

import (
	"fmt"
	"math"
	"strconv"
	"strings"
)

// sizeUnits are the units ParseSize takes, keyed in lower case. Binary
// and decimal units are both spelled out: a bare "M" means MiB to some
// tools and MB to others, and a benchmark that moves 5% more or fewer
// bytes than its reader thinks reports a wrong MiB/s.
var sizeUnits = map[string]int64{
	"":    1,
	"b":   1,
	"kib": 1 << 10,
	"mib": 1 << 20,
	"gib": 1 << 30,
	"tib": 1 << 40,
	"kb":  1e3,
	"mb":  1e6,
	"gb":  1e9,
	"tb":  1e12,
}

// ParseSize reads a byte count: a number with an optional unit, binary
// (KiB, MiB, GiB, TiB) or decimal (B, kB, MB, GB, TB), in any case, with
// or without a space before it: "1MiB", "64 MiB", "1.5GiB", "1048576". A
// fraction must come to a whole number of bytes.
func ParseSize(s string) (int64, error) {
	t := strings.TrimSpace(s)
	if strings.HasPrefix(t, "-") {
		return 0, fmt.Errorf("size %q: must not be negative", s)
	}
	end := strings.IndexFunc(t, func(r rune) bool { return (r < '0' || r > '9') && r != '.' })
	if end < 0 {
		end = len(t)
	}
	num, unit := t[:end], strings.ToLower(strings.TrimSpace(t[end:]))
	mult, ok := sizeUnits[unit]
	if !ok {
		return 0, fmt.Errorf("size %q: unit %q: want B, KiB, MiB, GiB, TiB, kB, MB, GB or TB", s, t[end:])
	}
	if num == "" {
		return 0, fmt.Errorf("size %q: no number", s)
	}
	if !strings.Contains(num, ".") {
		n, err := strconv.ParseInt(num, 10, 64)
		if err != nil || n > math.MaxInt64/mult {
			return 0, fmt.Errorf("size %q: not a byte count that fits in 63 bits", s)
		}
		return n * mult, nil
	}
	f, err := strconv.ParseFloat(num, 64)
	if err != nil {
		return 0, fmt.Errorf("size %q: %q is not a number", s, num)
	}
	v := f * float64(mult)
	if v >= math.MaxInt64 {
		return 0, fmt.Errorf("size %q: not a byte count that fits in 63 bits", s)
	}
	if v != math.Trunc(v) {
		return 0, fmt.Errorf("size %q: not a whole number of bytes", s)
	}
	return int64(v), nil
}

// FormatSize writes n bytes in the largest binary unit that divides it
// ("64MiB", as ParseSize reads and a flag is typed), else in MiB with two
// decimals from 1 MiB up, else in bytes.
func FormatSize(n int64) string {
	for _, u := range []struct {
		name string
		size int64
	}{{"TiB", 1 << 40}, {"GiB", 1 << 30}, {"MiB", 1 << 20}, {"KiB", 1 << 10}} {
		if n >= u.size && n%u.size == 0 {
			return fmt.Sprintf("%d%s", n/u.size, u.name)
		}
	}
	if n >= 1<<20 {
		return fmt.Sprintf("%.2fMiB", float64(n)/(1<<20))
	}
	return fmt.Sprintf("%dB", n)
}
