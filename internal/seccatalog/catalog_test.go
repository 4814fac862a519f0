package seccatalog

import (
	"bufio"
	"errors"
	"fmt"
	"go/ast"
	"go/parser"
	"go/token"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"
)

// catalogPath is the catalog, relative to the repository root.
const catalogPath = "docs/security.md"

// fuzzSection is the heading of the catalog's table of fuzz targets.
const fuzzSection = "Fuzz targets"

// statuses are the values a row's status may take and what each demands of
// its tests: a proven or partial row names at least one test; an untested
// row names none (one test would make it partial); a planned row may name
// tests of a part that exists.
var statuses = map[string]struct{ needTests, noTests bool }{
	"proven":   {needTests: true},
	"partial":  {needTests: true},
	"untested": {noTests: true},
	"planned":  {},
}

var (
	// idWord is a requirement id standing alone in a comment. Only the
	// five groups' letters count, and numbers start at 1.
	idWord = regexp.MustCompile(`\b[APWSC][1-9][0-9]*\b`)
	// idRange is a span of ids such as A1–A3, which cites those between too.
	idRange = regexp.MustCompile(`\b([APWSC])([1-9][0-9]*)\s*[–-]\s*([APWSC])([1-9][0-9]*)\b`)
	// controlSet follows an id that is really the ISO 6429 name of a set
	// of control characters: "the C1 controls", "C0/C1 control characters".
	controlSet = regexp.MustCompile(`(?i)^[\s-]*control`)
	// testFunc is a test, fuzz target or benchmark, split into its prefix
	// and the rest of the name.
	testFunc = regexp.MustCompile(`^(Test|Fuzz|Benchmark)(\w*)$`)
	// idPart is a part of a test name (split at "_") that is an id;
	// idLead is a first part that starts with one (TestW1ReauthWindow).
	idPart = regexp.MustCompile(`^[APWSC][1-9][0-9]*$`)
	idLead = regexp.MustCompile(`^([APWSC][1-9][0-9]*)[A-Z]`)
	// backticked is a code span of the catalog, where tests are named.
	backticked = regexp.MustCompile("`([^`]+)`")
)

// ref names a test: a function in a Go file, or (name empty) a file that
// is itself the check, such as a script CI runs.
type ref struct{ file, name string }

func (r ref) String() string {
	if r.name == "" {
		return r.file
	}
	return r.file + " " + r.name
}

// row is one requirement of the catalog.
type row struct {
	id, status string
	line       int
	refs       []ref
}

// catalog is what docs/security.md lists.
type catalog struct {
	rows map[string]*row
	fuzz []ref
}

// citation is an id cited at a place in the source; test is set when the
// citation is a test's name.
type citation struct {
	id, where string
	test      *ref
}

// source is what the repository's Go files hold.
type source struct {
	funcs map[string]map[string]bool // file → its top-level functions
	cited []citation
	fuzz  []ref
}

func TestCatalog(t *testing.T) {
	root := repoRoot(t)
	cat := readCatalog(t, root)
	src := readSource(t, root)
	t.Logf("%d rows, %d fuzz targets; %d citations in %d Go files", len(cat.rows), len(cat.fuzz), len(src.cited), len(src.funcs))
	t.Run("every cited id has a row", func(t *testing.T) {
		for _, c := range src.cited {
			if cat.rows[c.id] == nil {
				t.Errorf("%s: %s is cited, but %s has no row for it", c.where, c.id, catalogPath)
			}
		}
	})
	t.Run("each row's tests fit its status", func(t *testing.T) {
		for _, r := range sortedRows(cat) {
			if err := r.checkStatus(); err != nil {
				t.Errorf("%s:%d: %v", catalogPath, r.line, err)
			}
		}
	})
	t.Run("every listed test exists", func(t *testing.T) {
		for _, r := range sortedRows(cat) {
			for _, f := range r.refs {
				if err := src.exists(root, f); err != nil {
					t.Errorf("%s:%d: row %s lists %v", catalogPath, r.line, r.id, err)
				}
			}
		}
		for _, f := range cat.fuzz {
			if err := src.exists(root, f); err != nil {
				t.Errorf("%s: the fuzz table lists %v", catalogPath, err)
			}
		}
	})
	t.Run("a test named after a row is listed in it", func(t *testing.T) {
		for _, c := range src.cited {
			if r := cat.rows[c.id]; r != nil && c.test != nil && !slices.Contains(r.refs, *c.test) {
				t.Errorf("%s: %s is named after %s but not listed in its row (%s:%d)", c.where, c.test.name, c.id, catalogPath, r.line)
			}
		}
	})
	t.Run("every fuzz target is in the fuzz table", func(t *testing.T) {
		for _, f := range src.fuzz {
			if !slices.Contains(cat.fuzz, f) {
				t.Errorf("%v is missing from the table under %q in %s", f, fuzzSection, catalogPath)
			}
		}
	})
}

// repoRoot is the directory holding go.mod, above the test's own.
func repoRoot(t *testing.T) string {
	t.Helper()
	dir, err := os.Getwd()
	if err != nil {
		t.Fatal(err)
	}
	for {
		if _, err := os.Stat(filepath.Join(dir, "go.mod")); err == nil {
			return dir
		}
		parent := filepath.Dir(dir)
		if parent == dir {
			t.Fatal("no go.mod above the test's directory")
		}
		dir = parent
	}
}

func (r *row) checkStatus() error {
	rule, ok := statuses[r.status]
	switch {
	case !ok:
		return fmt.Errorf("row %s: status %q is none of proven, partial, untested, planned", r.id, r.status)
	case rule.needTests && len(r.refs) == 0:
		return fmt.Errorf("row %s is %s but lists no test", r.id, r.status)
	case rule.noTests && len(r.refs) > 0:
		return fmt.Errorf("row %s is %s but lists tests (then it is partial)", r.id, r.status)
	}
	return nil
}

func sortedRows(c *catalog) []*row {
	out := make([]*row, 0, len(c.rows))
	for _, r := range c.rows {
		out = append(out, r)
	}
	slices.SortFunc(out, func(a, b *row) int { return a.line - b.line })
	return out
}

// exists reports whether the test f names is there: the function in its
// file, or the file itself when no function is named.
func (s *source) exists(root string, f ref) error {
	if f.name == "" {
		if _, err := os.Stat(filepath.Join(root, filepath.FromSlash(f.file))); err != nil {
			return fmt.Errorf("%s, which does not exist", f.file)
		}
		return nil
	}
	if !s.funcs[f.file][f.name] {
		return fmt.Errorf("%v, but that file has no func %s", f, f.name)
	}
	return nil
}

// readCatalog parses the catalog's tables: rows from every table whose
// header has id, status and tests columns, and fuzz targets from the file
// and target columns of the table under the fuzz heading.
func readCatalog(t *testing.T, root string) *catalog {
	t.Helper()
	f, err := os.Open(filepath.Join(root, filepath.FromSlash(catalogPath)))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cat := &catalog{rows: map[string]*row{}}
	var section string
	var header map[string]int
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		switch {
		case strings.HasPrefix(line, "## "):
			section, header = strings.TrimPrefix(line, "## "), nil
		case !strings.HasPrefix(line, "|"):
			header = nil
		case header == nil:
			header = columns(cells(line))
		case !isSeparator(line):
			if err := cat.add(section, header, cells(line), n); err != nil {
				t.Errorf("%s:%d: %v", catalogPath, n, err)
			}
		}
	}
	if err := sc.Err(); err != nil {
		t.Fatal(err)
	}
	return cat
}

// add takes one table row into the catalog.
func (c *catalog) add(section string, header map[string]int, cs []string, line int) error {
	at := func(col string) string {
		if i, ok := header[col]; ok && i < len(cs) {
			return cs[i]
		}
		return ""
	}
	if _, ok := header["status"]; ok {
		return c.addRow(at("id"), at("status"), at("tests"), line)
	}
	if section != fuzzSection {
		return nil
	}
	refs, err := parseRefs(at("file") + " " + at("target"))
	c.fuzz = append(c.fuzz, refs...)
	return err
}

func (c *catalog) addRow(id, status, tests string, line int) error {
	if !idPart.MatchString(id) {
		return fmt.Errorf("%q is not a requirement id", id)
	}
	if prev := c.rows[id]; prev != nil {
		return fmt.Errorf("a second row %s (the first is on line %d)", id, prev.line)
	}
	refs, err := parseRefs(tests)
	c.rows[id] = &row{id: id, status: status, line: line, refs: refs}
	return err
}

// parseRefs reads the code spans of a tests cell: a span holding "/" is a
// file, and the test names after it are its functions; a file with no
// name after it is a check of its own.
func parseRefs(cell string) ([]ref, error) {
	var out []ref
	file, named := "", true
	for _, m := range backticked.FindAllStringSubmatch(cell, -1) {
		tok := m[1]
		switch {
		case strings.Contains(tok, "/"):
			if !named {
				out = append(out, ref{file: file})
			}
			file, named = tok, false
		case testFunc.MatchString(tok) && file != "":
			out = append(out, ref{file, tok})
			named = true
		default:
			return out, fmt.Errorf("%q is neither a file nor a test named after one", tok)
		}
	}
	if !named {
		out = append(out, ref{file: file})
	}
	return out, nil
}

// cells splits a table line into trimmed cells; "\|" is a pipe inside one.
func cells(line string) []string {
	line = strings.TrimSuffix(strings.TrimPrefix(line, "|"), "|")
	parts := strings.Split(strings.ReplaceAll(line, `\|`, "\x00"), "|")
	for i, p := range parts {
		parts[i] = strings.TrimSpace(strings.ReplaceAll(p, "\x00", "|"))
	}
	return parts
}

func columns(header []string) map[string]int {
	m := map[string]int{}
	for i, h := range header {
		m[strings.ToLower(h)] = i
	}
	return m
}

func isSeparator(line string) bool {
	return strings.Trim(line, "|-: ") == ""
}

// readSource parses every Go file of the repository, skipping hidden
// directories, testdata and vendor.
func readSource(t *testing.T, root string) *source {
	t.Helper()
	src := &source{funcs: map[string]map[string]bool{}}
	fset := token.NewFileSet()
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() {
			if path != root && (strings.HasPrefix(d.Name(), ".") || d.Name() == "testdata" || d.Name() == "vendor") {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasSuffix(path, ".go") {
			return nil
		}
		f, err := parser.ParseFile(fset, path, nil, parser.ParseComments|parser.SkipObjectResolution)
		if err != nil {
			return err
		}
		rel, err := filepath.Rel(root, path)
		if err != nil {
			return err
		}
		src.add(fset, filepath.ToSlash(rel), f)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return src
}

// add records a file's top-level functions, the ids its test names cite
// and those its comments cite. Code and string literals are not read:
// IMAP tags ("P1 LOGIN"), percentile fields and curve names live there.
func (s *source) add(fset *token.FileSet, file string, f *ast.File) {
	s.funcs[file] = map[string]bool{}
	for _, d := range f.Decls {
		if fn, ok := d.(*ast.FuncDecl); ok && fn.Recv == nil {
			s.addFunc(fset, file, fn)
		}
	}
	for _, g := range f.Comments {
		for _, c := range g.List {
			pos := fset.Position(c.Slash)
			for i, text := range strings.Split(c.Text, "\n") {
				for _, id := range idsInComment(text) {
					s.cited = append(s.cited, citation{id: id, where: fmt.Sprintf("%s:%d", file, pos.Line+i)})
				}
			}
		}
	}
}

func (s *source) addFunc(fset *token.FileSet, file string, fn *ast.FuncDecl) {
	name := fn.Name.Name
	s.funcs[file][name] = true
	if !strings.HasSuffix(file, "_test.go") {
		return
	}
	test := ref{file, name}
	if strings.HasPrefix(name, "Fuzz") {
		s.fuzz = append(s.fuzz, test)
	}
	where := fmt.Sprintf("%s:%d", file, fset.Position(fn.Name.Pos()).Line)
	for _, id := range idsInTestName(name) {
		s.cited = append(s.cited, citation{id: id, where: where, test: &test})
	}
}

// idsInTestName is the ids a test, fuzz target or benchmark is named
// after: parts of the name (split at "_") that are ids, and an id leading
// the first part.
func idsInTestName(name string) []string {
	m := testFunc.FindStringSubmatch(name)
	if m == nil {
		return nil
	}
	var ids []string
	for i, part := range strings.Split(m[2], "_") {
		if idPart.MatchString(part) {
			ids = append(ids, part)
		} else if l := idLead.FindStringSubmatch(part); i == 0 && l != nil {
			ids = append(ids, l[1])
		}
	}
	return ids
}

// idsInComment is the ids one comment line cites. A C id followed by the
// word "control" names the ISO 6429 control-character set, which comments
// on input checks mention ("C0 and C1 controls"), so it does not count.
// Percentiles are written in lower case in comments (p50, p99), as the
// benchmark reports print them, so an upper-case one is taken for an id
// and fails here rather than pass unseen.
func idsInComment(text string) []string {
	var ids []string
	for _, m := range idWord.FindAllStringIndex(text, -1) {
		id := text[m[0]:m[1]]
		if id[0] == 'C' && controlSet.MatchString(text[m[1]:]) {
			continue
		}
		ids = append(ids, id)
	}
	for _, m := range idRange.FindAllStringSubmatch(text, -1) {
		lo, errLo := strconv.Atoi(m[2])
		hi, errHi := strconv.Atoi(m[4])
		if m[1] != m[3] || errors.Join(errLo, errHi) != nil {
			continue
		}
		for n := lo + 1; n < hi; n++ {
			ids = append(ids, m[1]+strconv.Itoa(n))
		}
	}
	return ids
}

func TestIdsInComment(t *testing.T) {
	tests := []struct {
		text string
		want []string
	}{
		{"// USER must not reveal which names exist (A9).", []string{"A9"}},
		{"// Limits tune the failure budgets (A1–A3).", []string{"A1", "A3", "A2"}},
		{"// P1-P4 hold for SMTP", []string{"P1", "P4", "P2", "P3"}},
		{"// hasControl reports C0 controls and DEL, and the C1 controls as runes.", nil},
		{"// C0/C1 control characters are refused", nil},
		{"// ends sessions on every node (C3)", []string{"C3"}},
		{"// latency p50 and p99", nil},
		{"// latency P50", []string{"P50"}},
		{"// IPv6 /64, RFC 3501, SHA256, W3C, a1 LOGIN, P0", nil},
		{"// (W1, W2; S5)", []string{"W1", "W2", "S5"}},
	}
	for _, tt := range tests {
		if got := idsInComment(tt.text); !slices.Equal(got, tt.want) {
			t.Errorf("idsInComment(%q) = %q, want %q", tt.text, got, tt.want)
		}
	}
}

func TestIdsInTestName(t *testing.T) {
	tests := []struct {
		name string
		want []string
	}{
		{"TestA1_AccountBudget", []string{"A1"}},
		{"TestDAV_P8_StrictBasicAndClientAddress", []string{"P8"}},
		{"TestW1ReauthWindow", []string{"W1"}},
		{"TestP13", []string{"P13"}},
		{"FuzzPreAuth", nil},
		{"TestE2E_POP3", nil},
		{"TestSTARTTLSUnavailable", nil},
		{"TestMain", nil},
		{"helperA1_x", nil},
	}
	for _, tt := range tests {
		if got := idsInTestName(tt.name); !slices.Equal(got, tt.want) {
			t.Errorf("idsInTestName(%q) = %q, want %q", tt.name, got, tt.want)
		}
	}
}

func TestParseRefs(t *testing.T) {
	tests := []struct {
		cell string
		want []ref
		err  bool
	}{
		{"`a/x_test.go` `TestA` `TestB`<br>`b/y_test.go` `FuzzC`", []ref{{"a/x_test.go", "TestA"}, {"a/x_test.go", "TestB"}, {"b/y_test.go", "FuzzC"}}, false},
		{"`scripts/check` and `a/x_test.go` `BenchmarkD`", []ref{{"scripts/check", ""}, {"a/x_test.go", "BenchmarkD"}}, false},
		{"", nil, false},
		{"`TestA` before any file", nil, true},
		{"`a/x_test.go` `helper`", nil, true},
	}
	for _, tt := range tests {
		got, err := parseRefs(tt.cell)
		if (err != nil) != tt.err || (!tt.err && !slices.Equal(got, tt.want)) {
			t.Errorf("parseRefs(%q) = %v, %v; want %v, error %t", tt.cell, got, err, tt.want, tt.err)
		}
	}
}
