package bench

import (
	"math"
	"math/bits"
	"sync/atomic"
	"time"
)

// Recorder layout. Values are nanoseconds. Below 2^subBits every value has
// its own bucket; above, each power of two is split into 2^(subBits-1)
// buckets, so a bucket is at most 1/2^(subBits-1) (0.8%) wide relative to
// its values, as in an HdrHistogram with two significant digits.
const (
	subBits    = 8
	subCount   = 1 << subBits // 256
	subHalf    = subCount / 2 // 128
	maxShift   = 64 - subBits // largest shift of a 64-bit value
	numBuckets = (maxShift + 2) * subHalf
)

// Recorder is a log-linear latency histogram that many goroutines record
// into at once without locks. Its memory is fixed (about 60 KiB) however
// many values it records; percentiles are exact to within 0.8%.
type Recorder struct {
	counts [numBuckets]atomic.Uint64
	n      atomic.Uint64
	sum    atomic.Uint64 // nanoseconds; overflows after 584 years in total
	min    atomic.Int64  // math.MaxInt64 until the first value
	max    atomic.Int64
}

// NewRecorder returns an empty Recorder.
func NewRecorder() *Recorder {
	r := &Recorder{}
	r.min.Store(math.MaxInt64)
	return r
}

func bucketOf(v uint64) int {
	if v < subCount {
		return int(v)
	}
	shift := bits.Len64(v) - subBits
	return shift*subHalf + int(v>>uint(shift))
}

// bucketRange returns the smallest and largest value of bucket i.
func bucketRange(i int) (lo, hi uint64) {
	if i < subCount {
		return uint64(i), uint64(i)
	}
	shift := uint(i/subHalf - 1)
	m := uint64(i - int(shift)*subHalf)
	lo = m << shift
	return lo, lo + (1 << shift) - 1
}

// Record adds one duration; negative durations count as zero.
func (r *Recorder) Record(d time.Duration) {
	v := int64(d)
	if v < 0 {
		v = 0
	}
	r.counts[bucketOf(uint64(v))].Add(1)
	r.n.Add(1)
	r.sum.Add(uint64(v))
	for {
		old := r.max.Load()
		if v <= old || r.max.CompareAndSwap(old, v) {
			break
		}
	}
	for {
		old := r.min.Load()
		if v >= old || r.min.CompareAndSwap(old, v) {
			break
		}
	}
}

// Count is the number of values recorded.
func (r *Recorder) Count() uint64 { return r.n.Load() }

// Quantile returns the value at quantile q (0 < q <= 1): the upper end of
// the bucket holding it, never more than the largest value recorded. It is
// 0 when nothing was recorded.
func (r *Recorder) Quantile(q float64) time.Duration {
	n := r.n.Load()
	if n == 0 {
		return 0
	}
	rank := uint64(math.Ceil(q * float64(n)))
	rank = max(rank, 1)
	rank = min(rank, n)
	var seen uint64
	mx := r.max.Load()
	for i := range r.counts {
		seen += r.counts[i].Load()
		if seen >= rank {
			_, hi := bucketRange(i)
			return time.Duration(min(int64(hi), mx))
		}
	}
	return time.Duration(mx)
}

// Summary is a latency distribution in milliseconds, as reports show it.
type Summary struct {
	Count  uint64  `json:"count"`
	MeanMs float64 `json:"mean_ms"`
	MinMs  float64 `json:"min_ms"`
	P50Ms  float64 `json:"p50_ms"`
	P90Ms  float64 `json:"p90_ms"`
	P99Ms  float64 `json:"p99_ms"`
	P999Ms float64 `json:"p999_ms"`
	MaxMs  float64 `json:"max_ms"`
}

func ms(d time.Duration) float64 { return float64(d) / 1e6 }

// Summary returns the recorder's distribution. Quantiles come from one
// pass each over the buckets, so call it after recording has stopped for a
// consistent result.
func (r *Recorder) Summary() Summary {
	n := r.n.Load()
	if n == 0 {
		return Summary{}
	}
	return Summary{
		Count:  n,
		MeanMs: float64(r.sum.Load()) / float64(n) / 1e6,
		MinMs:  ms(time.Duration(r.min.Load())),
		P50Ms:  ms(r.Quantile(0.50)),
		P90Ms:  ms(r.Quantile(0.90)),
		P99Ms:  ms(r.Quantile(0.99)),
		P999Ms: ms(r.Quantile(0.999)),
		MaxMs:  ms(time.Duration(r.max.Load())),
	}
}
