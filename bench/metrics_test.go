package bench

import (
	"bufio"
	"context"
	"fmt"
	"net/http"
	"strconv"
	"strings"
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

// describe is the growth from base to m per session, for the report's
// notes.
func (m goMetrics) describe(base goMetrics, sessions int) string {
	n := float64(sessions)
	per := func(v, b float64) float64 { return (v - b) / n }
	return fmt.Sprintf("%.2f goroutines a session, stacks %.1f KiB a session, heap objects not yet freed %.1f KiB a session (heap spans in use %.1f KiB)",
		per(m.goroutines, base.goroutines), per(m.stackInuse, base.stackInuse)/1024,
		per(m.heapAlloc, base.heapAlloc)/1024, per(m.heapInuse, base.heapInuse)/1024)
}
