package config

import (
	"reflect"
	"strings"
)

// schemaKey is one key of the schema, found by reflection over the toml
// tags, so that tests follow the struct instead of a hand-kept list.
type schemaKey struct {
	key  string // "upstream.imap.address"; elements of arrays as "tls.certificates[].cert_file"
	typ  reflect.Type
	elem bool // inside an array of tables
}

func schemaKeys(t reflect.Type, prefix string, elem bool) []schemaKey {
	var out []schemaKey
	for _, f := range tomlFields(t) {
		key := tagName(f)
		if prefix != "" {
			key = prefix + "." + key
		}
		switch {
		case isTable(f.Type):
			out = append(out, schemaKeys(f.Type, key, elem)...)
		case isTableArray(f.Type):
			out = append(out, schemaKey{key: key, typ: f.Type, elem: elem})
			out = append(out, schemaKeys(f.Type.Elem(), key+"[]", true)...)
		default:
			out = append(out, schemaKey{key: key, typ: f.Type, elem: elem})
		}
	}
	return out
}

// docSetting writes a one-key document setting key to the TOML text val.
func docSetting(key, val string) string {
	i := strings.LastIndexByte(key, '.')
	if i < 0 {
		return key + " = " + val + "\n"
	}
	return "[" + key[:i] + "]\n" + key[i+1:] + " = " + val + "\n"
}
