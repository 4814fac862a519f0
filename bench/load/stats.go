package load

import (
	"slices"
	"time"
)

// Summary describes a set of latencies.
type Summary struct {
	N             int
	P50, P99, Max time.Duration
}

// Summarize sorts d in place and returns its summary; percentiles are
// nearest-rank, so they are always latencies that were observed.
func Summarize(d []time.Duration) Summary {
	if len(d) == 0 {
		return Summary{}
	}
	slices.Sort(d)
	return Summary{N: len(d), P50: percentile(d, 50), P99: percentile(d, 99), Max: d[len(d)-1]}
}

// percentile is the nearest-rank percentile p of sorted, non-empty d.
func percentile(d []time.Duration, p int) time.Duration {
	rank := (p*len(d) + 99) / 100 // ceil(p/100 * n)
	return d[max(rank, 1)-1]
}
