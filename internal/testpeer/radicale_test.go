package testpeer

import (
	"net/http"
	"strings"
	"testing"
)

// TestRadicale: a private Radicale trusts X-Remote-User: with it a PROPFIND
// of the user's own principal answers 207, without it 403, and another
// user's path 403; with Users it checks Basic itself instead.
func TestRadicale(t *testing.T) {
	r := Radicale(t)
	propfind := func(t *testing.T, url, header, user, password string) int {
		req, _ := http.NewRequest("PROPFIND", url, strings.NewReader(""))
		req.Header.Set("Depth", "0")
		if header != "" {
			req.Header.Set("X-Remote-User", header)
		}
		if user != "" {
			req.SetBasicAuth(user, password)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		return resp.StatusCode
	}
	for _, tc := range []struct {
		name, path, header string
		want               int
	}{
		{"own principal", "alice/", "alice", http.StatusMultiStatus},
		{"no header", "alice/", "", http.StatusForbidden},
		{"another user's path", "bob/", "alice", http.StatusForbidden},
	} {
		if got := propfind(t, r.URL+tc.path, tc.header, "", ""); got != tc.want {
			t.Errorf("%s: %d, want %d", tc.name, got, tc.want)
		}
	}
	basic := RadicaleWith(t, RadicaleOptions{Users: map[string]string{"alice": "pw"}})
	if got := propfind(t, basic.URL+"alice/", "", "alice", "pw"); got != http.StatusMultiStatus {
		t.Errorf("htpasswd, right password: %d", got)
	}
	if got := propfind(t, basic.URL+"alice/", "alice", "alice", "wrong"); got != http.StatusUnauthorized {
		t.Errorf("htpasswd, wrong password with the header: %d, want 401", got)
	}
}
