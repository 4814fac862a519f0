package admin

import (
	"bytes"
	"errors"
	"reflect"
	"strings"
	"testing"
)

// requestTypes are the body types of every route that takes one.
func requestTypes(t testing.TB) []reflect.Type {
	seen := map[reflect.Type]bool{}
	var out []reflect.Type
	s := &Server{}
	for _, rt := range s.table() {
		if rt.In != nil && !seen[rt.In] {
			seen[rt.In] = true
			out = append(out, rt.In)
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
	} {
		f.Add([]byte(seed))
	}
	types := requestTypes(f)
	f.Fuzz(func(t *testing.T, data []byte) {
		for _, typ := range types {
			v := reflect.New(typ).Interface()
			err := decodeJSON(bytes.NewReader(data), v)
			var ae *apiError
			if err != nil && (!errors.As(err, &ae) || ae.Status != 400) {
				t.Fatalf("%s: %v is not a 400", typ, err)
			}
			if len(data) > MaxBody && (ae == nil || ae.Code != "too_large") {
				t.Fatalf("%s: %d bytes accepted", typ, len(data))
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
		{`{"name":"a"} {"name":"b"}`, "bad_json"},
		{`{"name":1}`, "bad_json"},
		{`{"name":"` + strings.Repeat("a", MaxBody) + `"}`, "too_large"},
		{`{"name":"` + strings.Repeat("a", MaxBody-20) + `"}`, ""},
	}
	for _, c := range cases {
		var v req
		err := decodeJSON(strings.NewReader(c.body), &v)
		got := ""
		if err != nil {
			got = asAPIError(err).Code
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
	if r := c.do("POST", "/api/v1/users", strings.Repeat(" ", MaxBody+1)); r.code != 400 || r.errCode() != "too_large" {
		t.Errorf("too large: %d %s", r.code, r.body)
	}
}
