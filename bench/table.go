package bench

import (
	"fmt"
	"strings"
)

// The four targets, in the order of the table's columns.
const (
	Direct  = "direct"  // the client logs in to Dovecot itself
	Postern = "postern" // postern in front of Dovecot
	Nginx   = "nginx"   // nginx's mail proxy with an auth_http responder
	Relay   = "relay"   // a bare TCP relay: no protocol, no authentication
)

// Targets lists the columns.
var Targets = []string{Direct, Postern, Nginx, Relay}

// Better says which way a figure improves.
type Better int

const (
	Higher Better = iota
	Lower
)

// Row is one figure measured for every target. A target missing from
// Values was not measured (or cannot be); Notes say why.
type Row struct {
	Name   string
	Unit   string
	Better Better
	Values map[string]float64
	Notes  map[string]string
	// Digits after the decimal point when printed.
	Digits int
	// NoRatios leaves the ratio columns empty: for figures that are not
	// the targets' own (such as the rest of the machine's load).
	NoRatios bool
}

// Ratio is a/b for two targets of the row, and false when either is
// missing or b is zero.
func (r Row) Ratio(a, b string) (float64, bool) {
	va, oka := r.Values[a]
	vb, okb := r.Values[b]
	if !oka || !okb || vb == 0 {
		return 0, false
	}
	return va / vb, true
}

// ratioColumns are the ratios the table prints: postern against each
// other target, and the two other proxies against the direct connection
// for scale.
var ratioColumns = [][2]string{
	{Postern, Direct}, {Postern, Nginx}, {Postern, Relay},
	{Nginx, Direct}, {Relay, Direct},
}

// Markdown renders rows as a Markdown table: values, then ratios.
func Markdown(rows []Row) string {
	var b strings.Builder
	head := append([]string{"figure"}, Targets...)
	for _, rc := range ratioColumns {
		head = append(head, rc[0]+" ÷ "+rc[1])
	}
	writeRow(&b, head)
	sep := make([]string, len(head))
	for i := range sep {
		sep[i] = "---:"
	}
	sep[0] = "---"
	writeRow(&b, sep)
	for _, r := range rows {
		cells := []string{r.Name + " (" + r.Unit + ")"}
		for _, t := range Targets {
			cells = append(cells, r.cell(t))
		}
		for _, rc := range ratioColumns {
			if q, ok := r.Ratio(rc[0], rc[1]); ok && !r.NoRatios {
				cells = append(cells, fmt.Sprintf("%.2f", q))
			} else {
				cells = append(cells, "–")
			}
		}
		writeRow(&b, cells)
	}
	return b.String()
}

func (r Row) cell(target string) string {
	v, ok := r.Values[target]
	if !ok {
		if note := r.Notes[target]; note != "" {
			return note
		}
		return "–"
	}
	return fmt.Sprintf("%.*f", r.Digits, v)
}

func writeRow(b *strings.Builder, cells []string) {
	b.WriteString("| ")
	b.WriteString(strings.Join(cells, " | "))
	b.WriteString(" |\n")
}

// Goal is one target of the issue: postern's value in row Row compared
// with Factor × the other target's value + Offset, in the row's Better
// direction (≥ for Higher, ≤ for Lower). An empty Against makes Offset
// an absolute bound.
type Goal struct {
	Row     string
	Against string
	Factor  float64
	Offset  float64
}

// Verdict is a goal checked against the measurements.
type Verdict struct {
	Goal     Goal
	Text     string // the goal in words
	Measured string // what was measured, in words
	Met      bool
	Known    bool // false: a figure is missing, so the goal is not judged
}

// Judge checks every goal against rows.
func Judge(rows []Row, goals []Goal) []Verdict {
	byName := map[string]Row{}
	for _, r := range rows {
		byName[r.Name] = r
	}
	out := make([]Verdict, 0, len(goals))
	for _, g := range goals {
		out = append(out, judge(byName[g.Row], g))
	}
	return out
}

func judge(r Row, g Goal) Verdict {
	op := "≥"
	if r.Better == Lower {
		op = "≤"
	}
	v := Verdict{Goal: g, Text: fmt.Sprintf("%s: postern %s %s", g.Row, op, goalBound(g, r.Unit))}
	p, okp := r.Values[Postern]
	o, oko := r.Values[g.Against]
	if g.Against == "" {
		o, oko = 0, true // an absolute bound: Offset alone
	}
	if r.Name == "" || !okp || !oko {
		v.Measured = "not measured"
		if note := r.Notes[Postern]; note != "" {
			v.Measured += " (postern: " + note + ")"
		}
		return v
	}
	bound := g.Factor*o + g.Offset
	v.Known = true
	if r.Better == Lower {
		v.Met = p <= bound
	} else {
		v.Met = p >= bound
	}
	if g.Against == "" {
		v.Measured = fmt.Sprintf("postern %.*f %s", r.Digits, p, r.Unit)
		return v
	}
	v.Measured = fmt.Sprintf("postern %.*f %s, %s %.*f, bound %.*f", r.Digits, p, r.Unit, g.Against, r.Digits, o, r.Digits, bound)
	if o != 0 {
		v.Measured += fmt.Sprintf(" (ratio %.2f)", p/o)
	}
	return v
}

func goalBound(g Goal, unit string) string {
	if g.Against == "" {
		return fmt.Sprintf("%g %s", g.Offset, unit)
	}
	s := g.Against
	if g.Factor != 1 {
		s = fmt.Sprintf("%.2g × %s", g.Factor, g.Against)
	}
	if g.Offset != 0 {
		s += fmt.Sprintf(" + %g %s", g.Offset, unit)
	}
	return s
}

// VerdictList renders verdicts as a Markdown list.
func VerdictList(vs []Verdict) string {
	var b strings.Builder
	for _, v := range vs {
		mark := "not judged"
		switch {
		case v.Known && v.Met:
			mark = "**met**"
		case v.Known:
			mark = "**missed**"
		}
		fmt.Fprintf(&b, "- %s — %s: %s\n", v.Text, mark, v.Measured)
	}
	return b.String()
}
