package config

import (
	"fmt"
	"reflect"
	"strings"

	"github.com/pelletier/go-toml/v2/unstable"
)

// The schema check walks the document's syntax tree against the Config
// struct's toml tags before go-toml decodes it. go-toml alone is not strict
// enough: it matches keys case-insensitively (so "Listen_TLS" would be taken
// for "listen_tls"), and a TOML integer or boolean given for a Duration
// reaches UnmarshalText and fails without a position. The walk also records
// where every key is, which Validate needs to point at the file.

var (
	configType   = reflect.TypeFor[Config]()
	durationType = reflect.TypeFor[Duration]()
)

type scanner struct {
	p      unstable.Parser
	src    *source
	errs   []Error
	arrays map[string]int // elements seen so far per array-of-tables key
}

// scope is the table that key-values are currently added to.
type scope struct {
	key string       // as displayed, "" for the root
	typ reflect.Type // nil when the table is unknown: its keys are not checked
}

// scan indexes data and reports unknown keys, values of the wrong type and
// syntax errors, in document order.
func scan(data []byte, name string) (*source, []Error) {
	s := &scanner{src: newSource(data, name), arrays: map[string]int{}}
	s.p.Reset(data)
	cur := scope{typ: configType}
	for s.p.NextExpression() {
		expr := s.p.Expression()
		switch expr.Kind {
		case unstable.Table, unstable.ArrayTable:
			cur = s.table(expr)
		case unstable.KeyValue:
			s.outermost(cur, expr)
			s.keyValue(cur, expr)
		default:
		}
	}
	if err := s.p.Error(); err != nil {
		s.errs = append(s.errs, s.src.syntaxError(data, err))
		s.src.broken = true
	}
	return s.src, s.errs
}

// outermost remembers a key-value of table sc that decoding can leave
// out when it is wrong; one inside an unknown table is ignored by
// decoding anyway.
func (s *scanner) outermost(sc scope, kv *unstable.Node) {
	if sc.typ == nil {
		return
	}
	parts, start, _ := keyParts(kv)
	key := sc.key
	for _, p := range parts {
		key = joinKey(key, p)
	}
	s.src.kvs = append(s.src.kvs, entry{key: key, start: start, end: int(kv.Raw.Offset + kv.Raw.Length)})
}

func (s *scanner) fail(off int, key, msg string) {
	s.errs = append(s.errs, s.src.at(off, key, msg))
}

// table handles a [table] or [[array.of.tables]] header.
func (s *scanner) table(expr *unstable.Node) scope {
	parts, start, end := keyParts(expr)
	sc := scope{typ: configType}
	for i, name := range parts {
		isElem := expr.Kind == unstable.ArrayTable && i == len(parts)-1
		next, msg := s.child(sc, name, isElem)
		if msg != "" {
			s.fail(start, next.key, msg)
			return scope{}
		}
		sc = next
	}
	s.src.record(sc.key, start, end)
	return sc
}

// child descends from sc into the table name, as a header or a dotted key
// does. newElem is true for the last part of a [[header]], which starts a
// new element; otherwise an array of tables stands for its last element.
func (s *scanner) child(sc scope, name string, newElem bool) (scope, string) {
	key := joinKey(sc.key, name)
	f, ok := fieldByTag(sc.typ, name)
	switch {
	case !ok:
		return scope{key: key}, unknownKey(sc.typ, name)
	case isTableArray(f.Type):
		n := s.arrays[key]
		if newElem {
			s.arrays[key] = n + 1
			return scope{key: fmt.Sprintf("%s[%d]", key, n), typ: f.Type.Elem()}, ""
		}
		if n == 0 {
			return scope{key: key}, "expected an array of tables, got a table"
		}
		return scope{key: fmt.Sprintf("%s[%d]", key, n-1), typ: f.Type.Elem()}, ""
	case newElem:
		return scope{key: key}, fmt.Sprintf("expected %s, got an array of tables", describe(f.Type))
	case isTable(f.Type):
		return scope{key: key, typ: f.Type}, ""
	default:
		return scope{key: key}, fmt.Sprintf("expected %s, got a table", describe(f.Type))
	}
}

// keyValue checks one key = value, inside the table sc.
func (s *scanner) keyValue(sc scope, kv *unstable.Node) {
	if sc.typ == nil {
		return // inside an unknown table, which is already reported
	}
	parts, start, _ := keyParts(kv)
	for _, name := range parts[:len(parts)-1] {
		next, msg := s.child(sc, name, false)
		if msg != "" {
			s.fail(start, next.key, msg)
			return
		}
		sc = next
	}
	name := parts[len(parts)-1]
	key := joinKey(sc.key, name)
	s.src.record(key, start, int(kv.Raw.Offset+kv.Raw.Length))
	f, ok := fieldByTag(sc.typ, name)
	if !ok {
		s.fail(start, key, unknownKey(sc.typ, name))
		return
	}
	s.value(key, start, f.Type, kv.Value())
}

// value checks that v has the TOML type that t decodes from; off locates
// the key the value belongs to.
func (s *scanner) value(key string, off int, t reflect.Type, v *unstable.Node) {
	switch {
	case isTable(t) && v.Kind == unstable.InlineTable:
		it := v.Children()
		for it.Next() {
			if n := it.Node(); n.Kind == unstable.KeyValue {
				s.keyValue(scope{key: key, typ: t}, n)
			}
		}
	case t.Kind() == reflect.Slice && t != durationType && v.Kind == unstable.Array:
		s.array(key, off, t.Elem(), v)
	case leafKind(t) != v.Kind || leafKind(t) == unstable.Invalid:
		s.fail(off, key, fmt.Sprintf("expected %s, got %s", describe(t), describeKind(v.Kind)))
	default:
	}
}

func (s *scanner) array(key string, off int, elem reflect.Type, v *unstable.Node) {
	i := 0
	it := v.Children()
	for it.Next() {
		n := it.Node()
		if n.Kind == unstable.Comment {
			continue
		}
		elemKey := fmt.Sprintf("%s[%d]", key, i)
		i++
		elemOff := off
		if n.Raw.Length > 0 {
			elemOff = int(n.Raw.Offset)
		}
		s.src.record(elemKey, elemOff, elemOff+int(n.Raw.Length))
		s.value(elemKey, elemOff, elem, n)
	}
}

// keyParts returns the parts of a node's (dotted) key and the byte range
// they span.
func keyParts(n *unstable.Node) (parts []string, start, end int) {
	it := n.Key()
	for it.Next() {
		k := it.Node()
		if len(parts) == 0 {
			start = int(k.Raw.Offset)
		}
		parts = append(parts, string(k.Data))
		end = int(k.Raw.Offset + k.Raw.Length)
	}
	return parts, start, end
}

// fieldByTag finds the field whose toml tag is exactly name, looking into
// embedded structs the way go-toml does.
func fieldByTag(t reflect.Type, name string) (reflect.StructField, bool) {
	for _, f := range tomlFields(t) {
		if tagName(f) == name {
			return f, true
		}
	}
	return reflect.StructField{}, false
}

// tomlFields lists the fields of struct t that hold keys, with embedded
// structs flattened.
func tomlFields(t reflect.Type) []reflect.StructField {
	var out []reflect.StructField
	for f := range t.Fields() {
		switch {
		case f.Anonymous && f.Tag.Get("toml") == "" && f.Type.Kind() == reflect.Struct:
			out = append(out, tomlFields(f.Type)...)
		case f.IsExported() && tagName(f) != "-":
			out = append(out, f)
		default:
		}
	}
	return out
}

func tagName(f reflect.StructField) string {
	name, _, _ := strings.Cut(f.Tag.Get("toml"), ",")
	if name == "" {
		return f.Name
	}
	return name
}

func isTable(t reflect.Type) bool {
	return t.Kind() == reflect.Struct && t != durationType
}

func isTableArray(t reflect.Type) bool {
	return t.Kind() == reflect.Slice && isTable(t.Elem())
}

// leafKind is the TOML type a Go type decodes from; Invalid for tables and
// arrays.
func leafKind(t reflect.Type) unstable.Kind {
	switch {
	case t == durationType || t.Kind() == reflect.String:
		return unstable.String
	case t.Kind() == reflect.Int || t.Kind() == reflect.Int64:
		return unstable.Integer
	case t.Kind() == reflect.Bool:
		return unstable.Bool
	default:
		return unstable.Invalid
	}
}

func describe(t reflect.Type) string {
	switch {
	case t == durationType:
		return `a duration such as "30s", "72h" or "90d"`
	case isTableArray(t):
		return "an array of tables"
	case isTable(t):
		return "a table"
	case t.Kind() == reflect.Slice:
		return "an array"
	case leafKind(t) == unstable.Bool:
		return "true or false"
	default:
		return describeKind(leafKind(t))
	}
}

func describeKind(k unstable.Kind) string {
	switch k {
	case unstable.String:
		return "a string"
	case unstable.Integer:
		return "an integer"
	case unstable.Float:
		return "a float"
	case unstable.Bool:
		return "a boolean"
	case unstable.Array:
		return "an array"
	case unstable.InlineTable:
		return "a table"
	case unstable.DateTime, unstable.LocalDateTime, unstable.LocalDate, unstable.LocalTime:
		return "a date or time"
	default:
		return "a value"
	}
}

// maxSuggestLen bounds the edit-distance work spent on one unknown key.
const maxSuggestLen = 64

// unknownKey names the nearest known key when there is one, since most
// unknown keys are misspellings ("listen_tsl") or the wrong case.
func unknownKey(t reflect.Type, name string) string {
	best, bestDist := "", maxSuggestLen
	if len(name) <= maxSuggestLen {
		for _, f := range tomlFields(t) {
			tag := tagName(f)
			// Two edits turn most short words into each other ("foo", "log").
			limit := min(2, len(tag)/4)
			if d := editDistance(strings.ToLower(name), tag); d <= limit && d < bestDist {
				best, bestDist = tag, d
			}
		}
	}
	if best == "" {
		return "unknown key"
	}
	return fmt.Sprintf("unknown key (did you mean %s?)", best)
}

// editDistance is the Levenshtein distance between a and b, in bytes.
func editDistance(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}
