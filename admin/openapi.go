package admin

import (
	"encoding/json"
	"fmt"
	"net/http"
	"reflect"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// The OpenAPI document is built from the route table and the Go types of
// its request and response bodies, so it cannot drift from the router.

type schemaSet struct {
	defs  map[string]any
	types map[string]reflect.Type
	err   error // two types of one name (api.X and authstore.X) would share a schema
}

var timeType = reflect.TypeFor[time.Time]()

// scopesType is an app password's scopes, the one list of protocols the
// API takes or gives.
var scopesType = reflect.TypeFor[[]authstore.Protocol]()

// schema returns the JSON Schema of t, naming struct types under
// components/schemas.
func (s *schemaSet) schema(t reflect.Type) any {
	switch {
	case t == timeType:
		return map[string]any{"type": "string", "format": "date-time"}
	case t == scopesType:
		return map[string]any{"type": "array", "items": map[string]any{"type": "string", "enum": authstore.AllScopes}}
	case t.Kind() == reflect.Pointer:
		inner := s.schema(t.Elem())
		return map[string]any{"anyOf": []any{inner, map[string]any{"type": "null"}}}
	case t.Kind() == reflect.Slice && t.Elem().Kind() == reflect.Uint8:
		return map[string]any{"type": "string", "contentEncoding": "base64"}
	case t.Kind() == reflect.Slice:
		return map[string]any{"type": "array", "items": s.schema(t.Elem())}
	case t.Kind() == reflect.Map:
		return map[string]any{"type": "object", "additionalProperties": s.schema(t.Elem())}
	case t.Kind() == reflect.Struct:
		name := t.Name()
		if other, ok := s.types[name]; ok && other != t && s.err == nil {
			s.err = fmt.Errorf("schema %s: both %s and %s", name, other, t)
		}
		s.types[name] = t
		if _, done := s.defs[name]; !done {
			s.defs[name] = nil // recursion guard
			s.defs[name] = s.object(t)
		}
		return map[string]any{"$ref": "#/components/schemas/" + name}
	case t.Kind() == reflect.Interface:
		return map[string]any{}
	}
	return map[string]any{"type": scalarType(t.Kind())}
}

func scalarType(k reflect.Kind) string {
	switch k {
	case reflect.Bool:
		return "boolean"
	case reflect.Int, reflect.Int8, reflect.Int16, reflect.Int32, reflect.Int64,
		reflect.Uint, reflect.Uint8, reflect.Uint16, reflect.Uint32, reflect.Uint64:
		return "integer"
	case reflect.Float32, reflect.Float64:
		return "number"
	}
	return "string"
}

func (s *schemaSet) object(t reflect.Type) map[string]any {
	props := map[string]any{}
	required := []string{}
	s.fields(t, props, &required)
	sort.Strings(required)
	return map[string]any{"type": "object", "properties": props, "required": required, "additionalProperties": false}
}

// fields adds t's JSON fields, following encoding/json: embedded structs
// are flattened, "-" is skipped, omitempty and omitzero make a field optional.
func (s *schemaSet) fields(t reflect.Type, props map[string]any, required *[]string) {
	for f := range t.Fields() {
		if !f.IsExported() {
			continue
		}
		tag := f.Tag.Get("json")
		if tag == "-" {
			continue
		}
		name, opts, _ := strings.Cut(tag, ",")
		if f.Anonymous && name == "" && f.Type.Kind() == reflect.Struct {
			s.fields(f.Type, props, required)
			continue
		}
		if name == "" {
			name = f.Name
		}
		props[name] = s.schema(f.Type)
		if !strings.Contains(opts, "omitempty") && !strings.Contains(opts, "omitzero") {
			*required = append(*required, name)
		}
	}
}

var pathParam = regexp.MustCompile(`\{([a-z_]+)\}`)

var errorStatuses = map[access][]int{
	accessOpen:       {},
	accessSignIn:     {400, 401, 403, 429, 503},
	accessPending:    {400, 401, 403, 429, 503},
	accessAnySession: {401, 403, 503},
	accessBrowser:    {400, 401, 403, 429, 503},
	accessEnroll:     {400, 401, 403, 404, 409, 422, 503},
	accessSelf:       {400, 401, 403, 404, 409, 422, 503},
	accessAdmin:      {400, 401, 403, 404, 409, 422, 429, 503},
}

func (s *Server) openAPIDocument() ([]byte, error) {
	set := &schemaSet{defs: map[string]any{}, types: map[string]reflect.Type{}}
	errRef := map[string]any{"$ref": "#/components/responses/Error"}
	paths := map[string]map[string]any{}
	for _, rt := range s.routes {
		op := map[string]any{
			"operationId": operationID(rt),
			"summary":     rt.Summary,
			"x-access":    rt.Access.String(),
			"x-reauth":    rt.Reauth,
		}
		if rt.Access == accessOpen || rt.Access == accessSignIn {
			op["security"] = []any{}
		}
		var params []any
		for _, m := range pathParam.FindAllStringSubmatch(rt.Path, -1) {
			params = append(params, map[string]any{"name": m[1], "in": "path", "required": true, "schema": map[string]any{"type": "string"}})
		}
		for _, q := range rt.Query {
			params = append(params, map[string]any{"name": q, "in": "query", "required": false, "schema": map[string]any{"type": "string"}})
		}
		if params != nil {
			op["parameters"] = params
		}
		if rt.Handle.in != nil {
			op["requestBody"] = map[string]any{"required": false, "content": map[string]any{
				"application/json": map[string]any{"schema": set.schema(rt.Handle.in)}}}
		}
		responses := map[string]any{}
		status := rt.Status
		switch {
		case rt.Produces != "":
			if status == 0 {
				status = http.StatusOK
			}
			responses[fmt.Sprint(status)] = map[string]any{"description": rt.Summary,
				"content": map[string]any{rt.Produces: map[string]any{"schema": map[string]any{"type": "string"}}}}
		case rt.Handle.out != nil:
			if status == 0 {
				status = http.StatusOK
			}
			responses[fmt.Sprint(status)] = map[string]any{"description": rt.Summary,
				"content": map[string]any{"application/json": map[string]any{"schema": set.schema(rt.Handle.out)}}}
		default:
			responses["204"] = map[string]any{"description": rt.Summary}
		}
		codes := errorStatuses[rt.Access]
		if rt.Path == "/readyz" {
			codes = []int{503}
		}
		for _, code := range codes {
			if code == 404 && !strings.Contains(rt.Path, "{") && rt.Method != "GET" { // secret-compare: ok (an HTTP status)
				continue
			}
			responses[fmt.Sprint(code)] = errRef
		}
		if rt.Guesses { // over maxGuessesPerSource in flight
			responses["429"] = errRef
		}
		if rt.Path == "/readyz" { // the readiness answer keeps its shape when not ready
			responses["503"] = responses["200"]
		}
		op["responses"] = responses
		if paths[rt.Path] == nil {
			paths[rt.Path] = map[string]any{}
		}
		paths[rt.Path][strings.ToLower(rt.Method)] = op
	}
	errSchema := set.schema(reflect.TypeFor[api.ErrorBody]())
	doc := map[string]any{
		"openapi": "3.1.0",
		"info": map[string]any{"title": "postern admin API", "version": "1",
			"description": "Every state change made with the session cookie needs the X-CSRF-Token header; routes marked x-reauth need a re-verification within the reauth window."},
		"security": []any{map[string]any{"bearer": []any{}}, map[string]any{"cookie": []any{}}},
		"paths":    paths,
		"components": map[string]any{
			"schemas": set.defs,
			"securitySchemes": map[string]any{
				"bearer": map[string]any{"type": "http", "scheme": "bearer", "description": "API token pst_…"},
				"cookie": map[string]any{"type": "apiKey", "in": "cookie", "name": cookieName},
			},
			"responses": map[string]any{"Error": map[string]any{"description": "An error",
				"headers": map[string]any{"Retry-After": map[string]any{"description": "seconds, on 429 and 503", "schema": map[string]any{"type": "integer"}}},
				"content": map[string]any{"application/json": map[string]any{"schema": errSchema}}}},
		},
	}
	if set.err != nil {
		return nil, set.err
	}
	return json.MarshalIndent(doc, "", "  ")
}

// operationID is a stable name for a route: method plus path words.
func operationID(rt route) string {
	words := []string{strings.ToLower(rt.Method)}
	for _, part := range strings.Split(strings.TrimPrefix(rt.Path, "/api/v1"), "/") {
		part = strings.Trim(part, "{}")
		for _, w := range strings.FieldsFunc(part, func(r rune) bool { return r == '-' || r == '.' || r == '_' }) {
			words = append(words, strings.ToUpper(w[:1])+w[1:])
		}
	}
	return strings.Join(words, "")
}
