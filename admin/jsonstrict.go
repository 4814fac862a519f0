package admin

import (
	"encoding"
	"encoding/json"
	"reflect"
	"strings"

	"github.com/postern-dev/postern/admin/api"
)

// encoding/json matches object keys to fields without regard to case and
// keeps the last of duplicate keys, so {"Role":"admin"} would set role and
// {"role":"user","role":"admin"} would pass a reviewer reading the first
// (W8). checkKeys walks the body's tokens first and refuses both; only then
// does encoding/json decode it.

// maxJSONDepth bounds the walk: no request type nests more than a few
// levels, and a body of 64 KiB of "[" must not recurse 64 Ki times.
const maxJSONDepth = 16

var (
	jsonUnmarshaler = reflect.TypeFor[json.Unmarshaler]()
	textUnmarshaler = reflect.TypeFor[encoding.TextUnmarshaler]()
)

// checkKeys reads one JSON value from dec and checks every object in it
// against t (nil: a value whose keys are not fields, as in a map): each
// key exactly a field's JSON name, and none twice.
func checkKeys(dec *json.Decoder, t reflect.Type, depth int) error {
	if depth > maxJSONDepth {
		return errBadJSON
	}
	tok, err := dec.Token()
	if err != nil {
		return errBadJSON
	}
	switch tok {
	case json.Delim('{'):
		return checkObject(dec, t, depth)
	case json.Delim('['):
		elem := elemType(t)
		for dec.More() {
			if err := checkKeys(dec, elem, depth+1); err != nil {
				return err
			}
		}
		_, err = dec.Token()
	}
	if err != nil {
		return errBadJSON
	}
	return nil
}

func checkObject(dec *json.Decoder, t reflect.Type, depth int) error {
	fields := jsonFields(t)
	seen := map[string]bool{}
	for dec.More() {
		tok, err := dec.Token()
		if err != nil {
			return errBadJSON
		}
		key := tok.(string) // the decoder only yields strings as keys
		if seen[key] {
			return refuse(api.DuplicateField, "field "+clipField(key)+" appears twice")
		}
		seen[key] = true
		var ft reflect.Type
		if fields != nil {
			var ok bool
			if ft, ok = fields[key]; !ok {
				return refuse(api.UnknownField, "unknown field "+clipField(`"`+key+`"`))
			}
		} else {
			ft = elemType(t)
		}
		if err := checkKeys(dec, ft, depth+1); err != nil {
			return err
		}
	}
	if _, err := dec.Token(); err != nil {
		return errBadJSON
	}
	return nil
}

// jsonFields maps the JSON names of struct type t's fields (through
// pointers and embedded structs) to their types; nil when t is no struct
// whose fields encoding/json fills (a map, an interface, a type that
// decodes itself).
func jsonFields(t reflect.Type) map[string]reflect.Type {
	t = deref(t)
	if t == nil || t.Kind() != reflect.Struct || decodesItself(t) {
		return nil
	}
	out := map[string]reflect.Type{}
	for _, f := range reflect.VisibleFields(t) {
		name, _, _ := strings.Cut(f.Tag.Get("json"), ",")
		switch {
		case !f.IsExported() || name == "-" || f.Anonymous && name == "" && deref(f.Type).Kind() == reflect.Struct:
			continue // unexported, skipped, or an embedded struct whose fields VisibleFields lists
		case name == "":
			name = f.Name
		}
		out[name] = f.Type
	}
	return out
}

// elemType is what an array's elements or a map's values decode into.
func elemType(t reflect.Type) reflect.Type {
	t = deref(t)
	if t != nil && !decodesItself(t) && (t.Kind() == reflect.Slice || t.Kind() == reflect.Array || t.Kind() == reflect.Map) {
		return t.Elem()
	}
	return nil
}

func deref(t reflect.Type) reflect.Type {
	for t != nil && t.Kind() == reflect.Pointer {
		t = t.Elem()
	}
	return t
}

func decodesItself(t reflect.Type) bool {
	p := reflect.PointerTo(t)
	return p.Implements(jsonUnmarshaler) || p.Implements(textUnmarshaler)
}
