package dav

import (
	"encoding/base64"
	"net/http"
	"strings"
	"testing"

	"github.com/postern-dev/postern/internal/safetext"
)

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func TestBasicCredentials(t *testing.T) {
	tests := []struct {
		name    string
		headers []string
		user    string
		pw      string
		err     error
	}{
		{"ok", []string{"Basic " + b64("alice:pass word")}, "alice", "pass word", nil},
		{"scheme case", []string{"bAsIc " + b64("alice:pw")}, "alice", "pw", nil},
		{"colon in password", []string{"Basic " + b64("alice:a:b")}, "alice", "a:b", nil},
		{"utf-8", []string{"Basic " + b64("jörg:pässwort")}, "jörg", "pässwort", nil},
		{"none", nil, "", "", errNoCredentials},
		{"two headers", []string{"Basic " + b64("alice:pw"), "Basic " + b64("bob:pw")}, "", "", errManyCredentials},
		{"other scheme", []string{"Bearer abc"}, "", "", errBadAuthorization},
		{"two spaces", []string{"Basic  " + b64("alice:pw")}, "", "", errBadAuthorization},
		{"no padding", []string{"Basic " + strings.TrimRight(b64("alice:pw"), "=")}, "", "", errBadAuthorization},
		{"CRLF inside base64", []string{"Basic YWxp\r\nY2U6cHc="}, "", "", errBadAuthorization},
		{"URL alphabet", []string{"Basic " + base64.URLEncoding.EncodeToString([]byte("a?>:pw~~"))}, "", "", errBadAuthorization},
		{"no colon", []string{"Basic " + b64("alice")}, "", "", errBadAuthorization},
		{"empty user", []string{"Basic " + b64(":pw")}, "", "", errBadAuthorization},
		{"empty password", []string{"Basic " + b64("alice:")}, "", "", errBadAuthorization},
		{"NUL", []string{"Basic " + b64("alice\x00:pw")}, "", "", errBadAuthorization},
		{"LF in password", []string{"Basic " + b64("alice:pw\nx")}, "", "", errBadAuthorization},
		{"DEL", []string{"Basic " + b64("alice:pw\x7f")}, "", "", errBadAuthorization},
		{"C1 control", []string{"Basic " + b64("alice:pw\u0085")}, "", "", errBadAuthorization},
		{"invalid UTF-8", []string{"Basic " + b64("alice:\xff\xfe")}, "", "", errBadAuthorization},
		{"too long", []string{"Basic " + b64("alice:"+strings.Repeat("x", maxAuthorization))}, "", "", errBadAuthorization},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			h := http.Header{}
			for _, v := range tt.headers {
				h.Add("Authorization", v)
			}
			user, pw, err := basicCredentials(h)
			if err != tt.err || user != tt.user || pw != tt.pw {
				t.Errorf("got %q %q %v, want %q %q %v", user, pw, err, tt.user, tt.pw, tt.err)
			}
		})
	}
}

// FuzzBasic checks the parser against net/http's Request.BasicAuth: it
// accepts nothing net/http refuses, and where both accept they agree.
func FuzzBasic(f *testing.F) {
	for _, s := range []string{"Basic " + b64("alice:pw"), "basic " + b64("a:b:c"), "Basic " + b64("\x00:\x01"),
		"Basic YWxp\nY2U6cHc=", "Basic =", "Basic " + b64("jörg:ü"), "Bearer x", "Basic  " + b64("a:b")} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, v string) {
		user, pw, err := parseBasic(v)
		r := &http.Request{Header: http.Header{"Authorization": {v}}}
		nu, np, nok := r.BasicAuth()
		if err != nil {
			return
		}
		if !nok {
			t.Fatalf("%q: accepted (%q, %q) where net/http refuses", v, user, pw)
		}
		if user != nu || pw != np {
			t.Fatalf("%q: got (%q, %q), net/http (%q, %q)", v, user, pw, nu, np)
		}
		if safetext.HasControl(user+pw) || user == "" || pw == "" {
			t.Fatalf("%q: accepted controls or empty parts", v)
		}
	})
}
