package config

import (
	"errors"
	"slices"
	"strconv"
	"strings"

	"github.com/pelletier/go-toml/v2"
	"github.com/pelletier/go-toml/v2/unstable"
)

// source remembers where each key of a document is, so that problems found
// after decoding (by go-toml or by Validate) still point at the line that
// caused them.
type source struct {
	name    string
	lines   []int // offset of the first byte of each line
	entries []entry
	byKey   map[string]int // index in entries of each key's first occurrence
	// kvs are the document's outermost key-values (not those inside an
	// inline table or array), in file order: what decoding can leave out.
	kvs []entry
	// dropped are the keys of the key-values left out of decoding because
	// they were wrong; their defaults stood in, so Validate says nothing
	// about them.
	dropped []string
	// broken is set by a syntax error: the document cannot be decoded.
	broken bool
}

// entry is one key of the document: a key-value, a table header, or an
// element of an array of tables (keys like "tls.certificates[0]").
type entry struct {
	key        string
	start, end int // from the key's first byte to the end of its value
}

func newSource(data []byte, name string) *source {
	s := &source{name: name, lines: []int{0}, byKey: map[string]int{}}
	for i, b := range data {
		if b == '\n' {
			s.lines = append(s.lines, i+1)
		}
	}
	return s
}

func (s *source) record(key string, start, end int) {
	if _, dup := s.byKey[key]; !dup {
		s.byKey[key] = len(s.entries)
	}
	s.entries = append(s.entries, entry{key: key, start: start, end: end})
}

// drop blanks out of data the outermost key-value at off, keeping every
// line break (so that offsets and positions stay valid), and remembers its
// key. It reports false when no key-value is there or it is already gone.
func (s *source) drop(data []byte, off int) bool {
	i := slices.IndexFunc(s.kvs, func(e entry) bool { return e.start <= off && (off < e.end || off == e.start) })
	// A key's first byte is never a space, unless it was blanked already.
	if i < 0 || data[s.kvs[i].start] == ' ' {
		return false
	}
	kv := s.kvs[i]
	for j := kv.start; j < kv.end; j++ {
		if data[j] != '\n' && data[j] != '\r' {
			data[j] = ' '
		}
	}
	s.dropped = append(s.dropped, kv.key)
	return true
}

// covered reports whether key is, or lies within, one of keys.
func covered(key string, keys []string) bool {
	return slices.ContainsFunc(keys, func(k string) bool {
		rest, ok := strings.CutPrefix(key, k)
		return ok && (rest == "" || rest[0] == '.' || rest[0] == '[')
	})
}

// wasDropped reports whether key's value was left out of decoding; always
// false for a Config that did not come from a file.
func (s *source) wasDropped(key string) bool {
	return s != nil && covered(key, s.dropped)
}

// position converts a byte offset to a 1-based line and byte column, the
// same convention as go-toml's DecodeError.
func (s *source) position(off int) (line, col int) {
	i, found := slices.BinarySearch(s.lines, off)
	if !found {
		i--
	}
	return i + 1, off - s.lines[i] + 1
}

// offset is the inverse of position; -1 when the position is not in the file.
func (s *source) offset(line, col int) int {
	if line < 1 || line > len(s.lines) || col < 1 {
		return -1
	}
	return s.lines[line-1] + col - 1
}

// innermost is the most specific key whose text covers off: for an offset
// inside an inline table, the key-value within it rather than the table.
func (s *source) innermost(off int) (entry, bool) {
	best, found := entry{}, false
	for _, e := range s.entries {
		covers := e.start <= off && (off < e.end || off == e.start)
		if covers && (!found || e.start >= best.start) {
			best, found = e, true
		}
	}
	return best, found
}

// problem builds an Error for key, located where the key is in the file. A
// key inside an array element that the file does not set is located at its
// element, since the element cannot have defaults; any other absent key took
// its default and has no position.
func (s *source) problem(key, msg string) Error {
	if s == nil {
		return Error{Key: key, Msg: msg}
	}
	e := Error{File: s.name, Key: key, Msg: msg}
	i, ok := s.byKey[key]
	if !ok {
		if parent, _, cut := cutLast(key); cut && strings.HasSuffix(parent, "]") {
			i, ok = s.byKey[parent]
		}
	}
	if ok {
		e.Line, e.Column = s.position(s.entries[i].start)
	}
	return e
}

// at builds an Error located at a byte offset of the file.
func (s *source) at(off int, key, msg string) Error {
	line, col := s.position(off)
	return Error{File: s.name, Line: line, Column: col, Key: key, Msg: msg}
}

// decodeErrors turns go-toml's errors into Errors naming the key as this
// package spells it (with array indexes) at the key's position.
func (s *source) decodeErrors(err error) []Error {
	var strict *toml.StrictMissingError
	if errors.As(err, &strict) {
		out := make([]Error, 0, len(strict.Errors))
		for i := range strict.Errors {
			out = append(out, s.fromDecode(&strict.Errors[i]))
		}
		return out
	}
	var de *toml.DecodeError
	if errors.As(err, &de) {
		return []Error{s.fromDecode(de)}
	}
	return []Error{{File: s.name, Msg: strings.TrimPrefix(err.Error(), "toml: ")}}
}

// addNew appends to problems those of more that say something new: not
// at the place of a problem already listed, nor about a key that one of
// them or a dropped key-value covers.
func (s *source) addNew(problems, more []Error) []Error {
	known := slices.Clone(s.dropped)
	for _, p := range problems {
		known = append(known, p.Key)
	}
	for _, e := range more {
		samePlace := slices.ContainsFunc(problems, func(p Error) bool { return p.Line == e.Line && p.Column == e.Column })
		if !samePlace && !covered(e.Key, known) {
			problems = append(problems, e)
		}
	}
	return problems
}

func (s *source) fromDecode(de *toml.DecodeError) Error {
	line, col := de.Position()
	msg := strings.TrimPrefix(de.Error(), "toml: ")
	if msg == "unknown field" {
		msg = "unknown key"
	}
	if e, ok := s.innermost(s.offset(line, col)); ok {
		return s.at(e.start, e.key, msg)
	}
	return Error{File: s.name, Line: line, Column: col, Key: displayKey(de.Key()), Msg: msg}
}

// syntaxError locates a parser error by its highlight, which is a subslice
// of data.
func (s *source) syntaxError(data []byte, err error) Error {
	var perr *unstable.ParserError
	if !errors.As(err, &perr) {
		return Error{File: s.name, Msg: err.Error()}
	}
	off := cap(data) - cap(perr.Highlight)
	if perr.Highlight == nil || off < 0 || off > len(data) {
		return Error{File: s.name, Key: displayKey(perr.Key), Msg: perr.Message}
	}
	return s.at(off, displayKey(perr.Key), perr.Message)
}

func displayKey(parts []string) string {
	key := ""
	for _, p := range parts {
		key = joinKey(key, p)
	}
	return key
}

// joinKey appends one key part, quoted when it is not a bare TOML key.
func joinKey(prefix, part string) string {
	if part == "" || strings.ContainsFunc(part, func(r rune) bool { return !isBareKeyRune(r) }) {
		part = strconv.Quote(part)
	}
	if prefix == "" {
		return part
	}
	return prefix + "." + part
}

func isBareKeyRune(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '_' || r == '-'
}

// cutLast splits "a.b[0].c" into "a.b[0]" and "c". Keys built by joinKey
// quote any part containing a dot, so the last unquoted dot separates.
func cutLast(key string) (parent, last string, ok bool) {
	if strings.HasSuffix(key, `"`) {
		return "", "", false
	}
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return "", "", false
	}
	return key[:i], key[i+1:], true
}
