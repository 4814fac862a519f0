package bench

import (
	"strings"
	"testing"
)

func testRows() []Row {
	rate := Row{Name: "logins/s, TLS, c=16", Unit: "1/s", Better: Higher,
		Values: map[string]float64{Direct: 1000, Postern: 800, Nginx: 400, Relay: 900}}
	p99 := Row{Name: "login p99, TLS, c=16", Unit: "ms", Better: Lower, Digits: 1,
		Values: map[string]float64{Direct: 10, Postern: 25, Nginx: 20, Relay: 12}}
	plain := Row{Name: "login p99, plain, c=16", Unit: "ms", Better: Lower, Digits: 1,
		Values: map[string]float64{Direct: 5, Nginx: 8, Relay: 6},
		Notes:  map[string]string{Postern: "refused"}}
	mem := Row{Name: "memory", Unit: "KiB", Better: Lower, Digits: 1,
		Values: map[string]float64{Postern: 40, Nginx: 30, Relay: 0}}
	held := Row{Name: "held", Unit: "sessions", Better: Higher, Values: map[string]float64{Postern: 9750}}
	steady := Row{Name: "memory, steady", Unit: "KiB", Better: Lower, Digits: 1,
		Values: map[string]float64{Postern: 50}, Notes: map[string]string{Nginx: "as above"}}
	load := Row{Name: "other load", Unit: "cores", Better: Lower, Digits: 2, NoRatios: true,
		Values: map[string]float64{Direct: 0.1, Postern: 0.2, Nginx: 0.4, Relay: 0.1}}
	return []Row{rate, p99, plain, mem, held, steady, load}
}

func TestRatio(t *testing.T) {
	rows := testRows()
	tests := []struct {
		name string
		row  Row
		a, b string
		want float64
		ok   bool
	}{
		{"both present", rows[0], Postern, Nginx, 2, true},
		{"missing numerator", rows[2], Postern, Nginx, 0, false},
		{"missing denominator", rows[3], Postern, Direct, 0, false},
		{"zero denominator", rows[3], Postern, Relay, 0, false},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, ok := tt.row.Ratio(tt.a, tt.b)
			if got != tt.want || ok != tt.ok {
				t.Fatalf("Ratio(%s, %s) = %v, %v; want %v, %v", tt.a, tt.b, got, ok, tt.want, tt.ok)
			}
		})
	}
}

func TestMarkdown(t *testing.T) {
	md := Markdown(testRows())
	lines := strings.Split(strings.TrimSpace(md), "\n")
	if len(lines) != 2+len(testRows()) {
		t.Fatalf("%d lines, want header, separator and %d rows:\n%s", len(lines), len(testRows()), md)
	}
	cols := strings.Count(lines[0], "|")
	for i, l := range lines {
		if strings.Count(l, "|") != cols {
			t.Fatalf("line %d has %d cells, header %d:\n%s", i, strings.Count(l, "|"), cols, md)
		}
	}
	for _, want := range []string{
		"| logins/s, TLS, c=16 (1/s) | 1000 | 800 | 400 | 900 | 0.80 | 2.00 | 0.89 | 0.40 | 0.90 |",
		"| login p99, plain, c=16 (ms) | 5.0 | refused | 8.0 | 6.0 | – | – | – | 1.60 | 1.20 |",
		"postern ÷ nginx",
		"| memory, steady (KiB) | – | 50.0 | as above | – | – | – | – | – | – |",
		"| other load (cores) | 0.10 | 0.20 | 0.40 | 0.10 | – | – | – | – | – |",
	} {
		if !strings.Contains(md, want) {
			t.Errorf("table lacks %q:\n%s", want, md)
		}
	}
}

func TestJudge(t *testing.T) {
	goals := []Goal{
		{Row: "logins/s, TLS, c=16", Against: Nginx, Factor: 1.1},  // 800 ≥ 440
		{Row: "logins/s, TLS, c=16", Against: Relay, Factor: 0.9},  // 800 < 810
		{Row: "login p99, TLS, c=16", Against: Nginx, Factor: 1},   // 25 > 20
		{Row: "login p99, plain, c=16", Against: Nginx, Factor: 1}, // postern refused
		{Row: "memory", Against: Nginx, Factor: 1, Offset: 16},     // 40 ≤ 46
		{Row: "held", Offset: 10000},                               // 9750 < 10000
		{Row: "no such row", Against: Nginx, Factor: 1},
		{Row: "memory, steady", Against: Nginx, Factor: 1, Offset: 16}, // no nginx value there
	}
	want := []struct{ known, met bool }{
		{true, true}, {true, false}, {true, false}, {false, false}, {true, true}, {true, false}, {false, false},
		{false, false},
	}
	got := Judge(testRows(), goals)
	if len(got) != len(want) {
		t.Fatalf("%d verdicts for %d goals", len(got), len(goals))
	}
	for i, v := range got {
		t.Run(goals[i].Row+" against "+goals[i].Against, func(t *testing.T) {
			if v.Known != want[i].known || v.Met != want[i].met {
				t.Fatalf("verdict %+v, want known %v met %v", v, want[i].known, want[i].met)
			}
		})
	}
	list := VerdictList(got)
	for _, s := range []string{"**met**", "**missed**", "not judged", "postern ≤ nginx + 16 KiB", "postern ≥ 10000 sessions", "(ratio 0.89)"} {
		if !strings.Contains(list, s) {
			t.Errorf("verdicts lack %q:\n%s", s, list)
		}
	}
}
