package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// requestTypes are the body types of every route that takes one.
func requestTypes(t testing.TB) []reflect.Type {
	seen := map[reflect.Type]bool{}
	var out []reflect.Type
	s := &Server{}
	for _, rt := range s.table() {
		if in := rt.Handle.in; in != nil && !seen[in] {
			seen[in] = true
			out = append(out, in)
		}
	}
	if len(out) < 10 {
		t.Fatalf("only %d request types", len(out))
	}
	return out
}

// FuzzDecodeRequests feeds every JSON request decoder of the route table:
// no panic; a body over 64 KiB is too_large; an unknown field is refused;
// whatever is accepted is an object that re-encodes.
func FuzzDecodeRequests(f *testing.F) {
	for _, seed := range []string{
		`{"username":"alice","password":"x"}`, `{"code":"123456"}`, `{"name":"phone","scopes":["imap"],"expires_at":"2030-01-01T00:00:00Z"}`,
		`{"mfa_required":true,"grace_until":null}`, `{"role":"admin","disabled":true}`, `{"x":1}`, `[]`, `{} {}`, `{"name":"\u0000"}`,
		``, `null`, `{"ttl":"3d"}`, `{"display_name":null}`,
		`{"Role":"admin"}`, `{"role":"user","role":"admin"}`, `{"name":"a","NAME":"b"}`, `{"r\u006fle":"admin","role":"user"}`,
		`{"scopes":[{"a":1,"a":2}]}`, `{"grace_until":{"x":1}}`, `[[[[[[[[[[[[[[[[[[[[1]]]]]]]]]]]]]]]]]]]`, `{"name":"\ud800"}`,
	} {
		f.Add([]byte(seed))
	}
	types := requestTypes(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range types {
			v := reflect.New(typ).Interface()
			err := decodeJSON(bytes.NewReader(data), v)
			var ae *api.Error
			if err != nil && (!errors.As(err, &ae) || statusOf(ae.Code) != 400) {
				t.Fatalf("%s: %v is not a 400", typ, err)
			}
			if len(data) > maxBody && (ae == nil || ae.Code != "too_large") {
				t.Fatalf("%s: %d bytes accepted", typ, len(data))
			}
			if err == nil {
				checkExactKeys(t, typ, data)
			}
		}
	})
}

func TestDecodeJSON(t *testing.T) {
	type req struct {
		Name string `json:"name"`
	}
	cases := []struct {
		body, code string
	}{
		{`{"name":"a"}`, ""},
		{``, ""},
		{`{"name":"a","admin":true}`, "unknown_field"},
		{`{"Name":"a"}`, "unknown_field"},
		{`{"NAME":"a"}`, "unknown_field"},
		{`{"name":"a","name":"b"}`, "duplicate_field"},
		{`{"name":"a","n\u0061me":"b"}`, "duplicate_field"},
		{`{"n\u0061me":"a"}`, ""},
		{`{"name":"a"`, "bad_json"},
		{strings.Repeat("[", 20) + strings.Repeat("]", 20), "bad_json"},
		{`{"name":"a"} {"name":"b"}`, "bad_json"},
		{`{"name":1}`, "bad_json"},
		{`{"name":"` + strings.Repeat("a", maxBody) + `"}`, "too_large"},
		{`{"name":"` + strings.Repeat("a", maxBody-20) + `"}`, ""},
	}
	for _, c := range cases {
		var v req
		err := decodeJSON(strings.NewReader(c.body), &v)
		got := ""
		if err != nil {
			got = string(asAPIError(err).Code)
		}
		if got != c.code {
			t.Errorf("%.40q: %q, want %q", c.body, got, c.code)
		}
	}
	// Through a route: 400 with the error format.
	e := newEnv(t)
	e.user("root", "root-password", "admin")
	c := e.tokenClient(e.token("ops", "admin", ""))
	if r := c.do("POST", "/api/v1/users", `{"username":"x","is_admin":true}`); r.code != 400 || r.errCode() != "unknown_field" {
		t.Errorf("unknown field: %d %s", r.code, r.body)
	}
	if r := c.do("POST", "/api/v1/users", strings.Repeat(" ", maxBody+1)); r.code != 400 || r.errCode() != "too_large" {
		t.Errorf("too large: %d %s", r.code, r.body)
	}
}

// TestW8_JSONKeysMatchExactly: a key in another case, or a key given
// twice, is refused with 400 before anything changes; encoding/json alone
// would take "Role" for role and the last of two.
func TestW8_JSONKeysMatchExactly(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	c := e.tokenClient(e.token("ops", "admin", ""))
	for _, tc := range []struct{ method, path, body, code string }{
		{"POST", "/api/v1/users", `{"username":"mallory","Role":"admin"}`, "unknown_field"},
		{"POST", "/api/v1/users", `{"username":"mallory","role":"user","role":"admin"}`, "duplicate_field"},
		{"POST", "/api/v1/users", `{"username":"mallory","USERNAME":"root"}`, "unknown_field"},
		{"PATCH", "/api/v1/users/alice", `{"Role":"admin"}`, "unknown_field"},
		{"PATCH", "/api/v1/users/alice", `{"role":"user","role":"admin"}`, "duplicate_field"},
		{"PATCH", "/api/v1/users/alice", `{"display_name":"Alice","display_name":"Admin"}`, "duplicate_field"},
		{"POST", "/api/v1/tokens", `{"name":"ci","role":"user","user":"alice","Role":"admin"}`, "unknown_field"},
	} {
		before := e.auditCount()
		if r := c.do(tc.method, tc.path, tc.body); r.code != 400 || r.errCode() != tc.code {
			t.Errorf("%s %s %s: %d %s, want 400 %s", tc.method, tc.path, tc.body, r.code, r.body, tc.code)
		}
		if evs := e.eventsSince(before); len(evs) != 0 {
			t.Errorf("%s %s %s changed something:%s", tc.method, tc.path, tc.body, fmtEvents(evs))
		}
	}
	if u, err := e.st.GetUser(bg, "alice"); err != nil || u.Role != authstore.RoleUser {
		t.Errorf("alice: %+v %v", u, err)
	}
}

// checkExactKeys fails unless every key of the accepted object data is
// exactly the JSON name of a field of typ.
func checkExactKeys(t *testing.T, typ reflect.Type, data []byte) {
	var keys map[string]json.RawMessage
	if json.Unmarshal(data, &keys) != nil {
		return // null, or an empty body
	}
	names := map[string]bool{}
	for i := range typ.NumField() {
		name, _, _ := strings.Cut(typ.Field(i).Tag.Get("json"), ",")
		names[name] = true
	}
	for k := range keys {
		if !names[k] {
			t.Fatalf("%s: accepted key %q, which is no field's name: %s", typ, k, data)
		}
	}
}
