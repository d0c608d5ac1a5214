package server

import (
	"slices"
	"testing"
	"time"
)

// TestCountMinute: sends land in the minute of the report that counted
// them; the window keeps an hour; a clock that jumps starts afresh
// instead of filling the gap (or keeping counts in a future minute).
func TestCountMinute(t *testing.T) {
	var n nodeStats
	t0 := time.Date(2026, 12, 6, 12, 0, 5, 0, time.UTC)
	n.sent.Add(3)
	n.countMinute(t0)
	n.sent.Add(2)
	n.countMinute(t0.Add(30 * time.Second))
	n.sent.Add(4)
	n.countMinute(t0.Add(2 * time.Minute))
	if n.firstMinute != t0.Truncate(time.Minute).UnixMilli() || !slices.Equal(n.minutes, []int64{5, 0, 4}) {
		t.Fatalf("after three reports: first %d, minutes %v", n.firstMinute, n.minutes)
	}
	// An hour and more later: the window slides; only the last 60 stay.
	for i := 3; i < 70; i++ {
		n.sent.Add(1)
		n.countMinute(t0.Add(time.Duration(i) * time.Minute))
	}
	if len(n.minutes) != minuteWindow || n.firstMinute != t0.Truncate(time.Minute).Add(10*time.Minute).UnixMilli() {
		t.Fatalf("after 70 minutes: %d minutes from %d", len(n.minutes), n.firstMinute)
	}
	// A clock set a year ahead (or back): one fresh minute, not 500,000.
	for _, jump := range []time.Duration{365 * 24 * time.Hour, -48 * time.Hour} {
		n.sent.Add(7)
		at := t0.Add(jump)
		n.countMinute(at)
		if n.firstMinute != at.Truncate(time.Minute).UnixMilli() || !slices.Equal(n.minutes, []int64{7}) {
			t.Fatalf("after a jump of %v: first %d, minutes %v", jump, n.firstMinute, n.minutes)
		}
	}
}
