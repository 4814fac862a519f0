package config

import (
	"cmp"
	"fmt"
	"slices"
	"strings"

	"github.com/postern-dev/postern/internal/safetext"
)

// Error is one problem in a configuration.
type Error struct {
	File string // empty for a Config that did not come from a file
	// Line and Column (1-based, column in bytes) locate the key; both are 0
	// when the key took its default value.
	Line, Column int
	Key          string // dotted, as in "upstream.imap.address"; empty for the whole file
	Msg          string
}

// Error formats the problem as FILE:LINE:COL: KEY: message, leaving out the
// parts that are unknown. Control characters are escaped so that one problem
// is always one line, whatever the file contained.
func (e *Error) Error() string {
	var b strings.Builder
	if e.File != "" {
		b.WriteString(e.File)
		b.WriteString(":")
	}
	if e.Line > 0 {
		fmt.Fprintf(&b, "%d:%d:", e.Line, e.Column)
	}
	if b.Len() > 0 {
		b.WriteString(" ")
	}
	if e.Key != "" {
		b.WriteString(e.Key)
		b.WriteString(": ")
	}
	b.WriteString(e.Msg)
	return safetext.Show(b.String())
}

// Errors is every problem found in one configuration; Parse, load and
// Validate return it (as *Errors) for anything wrong with the content.
type Errors struct {
	List []Error
}

// Error prints one problem per line, in file order; problems with keys that
// are not in the file come last.
func (e *Errors) Error() string {
	lines := make([]string, len(e.List))
	for i := range e.List {
		lines[i] = e.List[i].Error()
	}
	return strings.Join(lines, "\n")
}

// Unwrap exposes each problem to errors.As.
func (e *Errors) Unwrap() []error {
	errs := make([]error, len(e.List))
	for i := range e.List {
		errs[i] = &e.List[i]
	}
	return errs
}

// errorsOf returns nil for no problems, so that callers never hold a non-nil
// error interface wrapping an empty list.
func errorsOf(list []Error) error {
	if len(list) == 0 {
		return nil
	}
	slices.SortStableFunc(list, func(a, b Error) int {
		if (a.Line == 0) != (b.Line == 0) {
			return cmp.Compare(b.Line, a.Line) // the one without a line goes last
		}
		return cmp.Or(cmp.Compare(a.Line, b.Line), cmp.Compare(a.Column, b.Column))
	})
	return &Errors{List: list}
}
