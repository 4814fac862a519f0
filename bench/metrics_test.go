package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// goMetrics are the Go runtime's figures postern exports on /metrics.
type goMetrics struct {
	goroutines, stackInuse, heapAlloc, heapInuse, gcCount float64
}

// readGoMetrics scrapes postern's /metrics for the runtime's memory
// figures, which explain its resident memory.
func readGoMetrics(ctx context.Context, addr string) (goMetrics, error) {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, "http://"+addr+"/metrics", nil)
	if err != nil {
		return goMetrics{}, err
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		return goMetrics{}, err
	}
	defer resp.Body.Close()
	var m goMetrics
	fields := map[string]*float64{
		"go_goroutines": &m.goroutines, "go_memstats_stack_inuse_bytes": &m.stackInuse,
		"go_memstats_heap_alloc_bytes": &m.heapAlloc, "go_memstats_heap_inuse_bytes": &m.heapInuse,
		"go_gc_duration_seconds_count": &m.gcCount,
	}
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		name, value, ok := strings.Cut(sc.Text(), " ")
		if dst := fields[name]; ok && dst != nil {
			if *dst, err = strconv.ParseFloat(value, 64); err != nil {
				return goMetrics{}, fmt.Errorf("metric %s: %w", name, err)
			}
		}
	}
	return m, sc.Err()
}

// waitGC waits until postern's garbage collector has run once more than
// it had at call time. The runtime forces a collection at least every two
// minutes, so an idle process gets there within that.
func waitGC(ctx context.Context, addr string, maxWait time.Duration) error {
	first, err := readGoMetrics(ctx, addr)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(ctx, maxWait)
	defer cancel()
	tick := time.NewTicker(time.Second)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			return fmt.Errorf("no garbage collection within %v: %w", maxWait, ctx.Err())
		case <-tick.C:
		}
		m, err := readGoMetrics(ctx, addr)
		if err != nil {
			return err
		}
		if m.gcCount > first.gcCount {
			return nil
		}
	}
}

// describe is the breakdown of m per session, for the report's notes.
func (m goMetrics) describe(sessions int) string {
	n := float64(sessions)
	return fmt.Sprintf("%.0f goroutines (%.2f a session), stacks %.1f KiB a session, heap allocated %.1f KiB a session (in use %.1f KiB)",
		m.goroutines, m.goroutines/n, m.stackInuse/n/1024, m.heapAlloc/n/1024, m.heapInuse/n/1024)
}
