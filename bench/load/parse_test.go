package load

import (
	"errors"
	"fmt"
	"testing"
	"time"
)

func TestLiteralSize(t *testing.T) {
	tests := []struct {
		line string
		want int64
		ok   bool
	}{
		{"* 1 FETCH (BODY[] {1048576}", 1048576, true},
		{"* 1 FETCH (BODY[] {12+}", 12, true},
		{"* 1 FETCH (BODY[] {0}", 0, true},
		{"b1 OK done", 0, false},
		{"* OK {not a number}", 0, false},
		{"* OK {-5}", 0, false},
		{"* OK }", 0, false},
		{"* OK {}", 0, false},
		{"* 1 FETCH (BODY[] {99999999999999999999}", 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.line, func(t *testing.T) {
			n, ok := literalSize(tt.line)
			if n != tt.want || ok != tt.ok {
				t.Fatalf("literalSize(%q) = %d, %v; want %d, %v", tt.line, n, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestQuote(t *testing.T) {
	tests := []struct{ in, want string }{
		{"alice", `"alice"`},
		{`pa"ss`, `"pa\"ss"`},
		{`back\slash`, `"back\\slash"`},
		{"", `""`},
	}
	for _, tt := range tests {
		t.Run(tt.in, func(t *testing.T) {
			if got := quote(tt.in); got != tt.want {
				t.Fatalf("quote(%q) = %s, want %s", tt.in, got, tt.want)
			}
		})
	}
}

func TestSummarize(t *testing.T) {
	ms := func(ns ...int) []time.Duration {
		out := make([]time.Duration, len(ns))
		for i, n := range ns {
			out[i] = time.Duration(n) * time.Millisecond
		}
		return out
	}
	hundred := make([]int, 100)
	for i := range hundred {
		hundred[i] = 100 - i // 100 … 1, unsorted on purpose
	}
	tests := []struct {
		name          string
		in            []time.Duration
		p50, p99, max time.Duration
	}{
		{"empty", nil, 0, 0, 0},
		{"one", ms(7), 7 * time.Millisecond, 7 * time.Millisecond, 7 * time.Millisecond},
		{"two", ms(9, 1), time.Millisecond, 9 * time.Millisecond, 9 * time.Millisecond},
		{"hundred", ms(hundred...), 50 * time.Millisecond, 99 * time.Millisecond, 100 * time.Millisecond},
		{"outlier", ms(1, 1, 1, 1, 1, 1, 1, 1, 1, 500), time.Millisecond, 500 * time.Millisecond, 500 * time.Millisecond},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			s := Summarize(tt.in)
			if s.N != len(tt.in) || s.P50 != tt.p50 || s.P99 != tt.p99 || s.Max != tt.max {
				t.Fatalf("Summarize = %+v, want n=%d p50=%v p99=%v max=%v", s, len(tt.in), tt.p50, tt.p99, tt.max)
			}
		})
	}
}

func TestParseKB(t *testing.T) {
	status := "Name:\tpostern\nVmPeak:\t 1000 kB\nVmRSS:\t   13712 kB\nThreads:\t7\n"
	rollup := "55d0-7ffc ---p 00000000 00:00 0 [rollup]\nRss:  2048 kB\nPss:  1536 kB\n"
	tests := []struct {
		name, data, key string
		want            int64
		err             error
	}{
		{"status", status, "VmRSS:", 13712 << 10, nil},
		{"rollup", rollup, "Pss:", 1536 << 10, nil},
		{"zombie", "Name:\tdovecot\nState:\tZ (zombie)\n", "VmRSS:", 0, errNoLine},
		{"not kB", "VmRSS:\t 12 MB\n", "VmRSS:", 0, nil},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseKB([]byte(tt.data), tt.key)
			switch {
			case tt.name == "not kB":
				if err == nil {
					t.Fatalf("parseKB = %d, want an error", got)
				}
			case !errors.Is(err, tt.err) || (tt.err == nil && err != nil):
				t.Fatalf("parseKB error %v, want %v", err, tt.err)
			case got != tt.want:
				t.Fatalf("parseKB = %d, want %d", got, tt.want)
			}
		})
	}
}

// statLine is /proc/<pid>/stat with the given command name, parent and
// utime, stime, cutime, cstime.
const statLine = "4242 (%s) S %d 4242 4242 0 -1 4194560 100 0 0 0 %d %d %d %d 20 0 1 0 1234 5678 90"

func TestStatFields(t *testing.T) {
	tests := []struct {
		name, comm string
		ppid       int
		times      [4]int64
	}{
		{"plain", "nginx", 1, [4]int64{10, 20, 30, 40}},
		{"spaces and parentheses in the name", "a) b (c", 77, [4]int64{1, 2, 3, 4}},
		{"zero", "imap", 3, [4]int64{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			stat := []byte(fmt.Sprintf(statLine, tt.comm, tt.ppid, tt.times[0], tt.times[1], tt.times[2], tt.times[3]))
			pp, ok := parentOf(stat)
			if !ok || pp != tt.ppid {
				t.Fatalf("parentOf = %d, %v; want %d", pp, ok, tt.ppid)
			}
			ticks, err := cpuTicks(stat)
			want := tt.times[0] + tt.times[1] + tt.times[2] + tt.times[3]
			if err != nil || ticks != want {
				t.Fatalf("cpuTicks = %d, %v; want %d", ticks, err, want)
			}
		})
	}
	if _, err := cpuTicks([]byte("1 (x) S 1 2")); err == nil {
		t.Fatal("cpuTicks of a short line: no error")
	}
}

func TestParseBusy(t *testing.T) {
	tests := []struct {
		name, stat string
		want       time.Duration
		bad        bool
	}{
		// user nice system idle iowait irq softirq steal guest guest_nice
		{"all fields", "cpu  100 5 50 9000 40 3 2 1 7 0\ncpu0 1 2 3 4 5 6 7 8\n", 161 * clockTick, false},
		{"no guest", "cpu 10 0 10 500 5 0 0 0\n", 20 * clockTick, false},
		{"not the cpu line", "intr 1 2 3\n", 0, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := parseBusy([]byte(tt.stat))
			if (err != nil) != tt.bad || got != tt.want {
				t.Fatalf("parseBusy = %v, %v; want %v (error %v)", got, err, tt.want, tt.bad)
			}
		})
	}
}
