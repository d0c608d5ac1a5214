package bench

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Series the bench reads from the server's /metrics.
const (
	mRSS        = "process_resident_memory_bytes"
	mCPU        = "process_cpu_seconds_total"
	mHeapInuse  = "go_memstats_heap_inuse_bytes"
	mGoroutines = "go_goroutines"
	mConns      = "tern_connections"
	mSent       = "tern_messages_sent_total"
)

// scrape is one reading of the server's /metrics: the value of every
// series, keyed by its name with labels as the exposition writes them.
type scrape struct {
	at     time.Time
	values map[string]float64
}

// get returns a series' value and whether the server exposes it.
func (s scrape) get(name string) (float64, bool) {
	v, ok := s.values[name]
	return v, ok
}

func (s scrape) val(name string) float64 { return s.values[name] }

// scrapeMetrics reads /metrics in the Prometheus text format.
func scrapeMetrics(ctx context.Context, hc *http.Client, base string) (scrape, error) {
	ctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, base+"/metrics", nil)
	if err != nil {
		return scrape{}, err
	}
	resp, err := hc.Do(req)
	if err != nil {
		return scrape{}, fmt.Errorf("scrape /metrics: %w", err)
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		_, _ = io.Copy(io.Discard, resp.Body)
		return scrape{}, fmt.Errorf("scrape /metrics: %s", resp.Status)
	}
	values, err := parseMetrics(resp.Body)
	if err != nil {
		return scrape{}, fmt.Errorf("scrape /metrics: %w", err)
	}
	return scrape{at: time.Now(), values: values}, nil
}

// parseMetrics reads "name{labels} value [timestamp]" lines, skipping
// comments. Label values never contain a space followed by a digit in the
// series Tern exports, but the parser splits at the closing brace anyway.
func parseMetrics(r io.Reader) (map[string]float64, error) {
	out := make(map[string]float64, 256)
	sc := bufio.NewScanner(r)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := strings.TrimSpace(sc.Text())
		if line == "" || line[0] == '#' {
			continue
		}
		var name, rest string
		if i := strings.LastIndexByte(line, '}'); i >= 0 {
			name, rest = line[:i+1], line[i+1:]
		} else if i := strings.IndexAny(line, " \t"); i >= 0 {
			name, rest = line[:i], line[i:]
		} else {
			continue
		}
		fields := strings.Fields(rest)
		if len(fields) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fields[0], 64)
		if err != nil {
			continue // NaN and friends parse; anything else is not ours to judge
		}
		out[name] = v
	}
	return out, sc.Err()
}
