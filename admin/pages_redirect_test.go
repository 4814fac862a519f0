package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
	"unicode"
)

// hostileNext are `next` targets a browser could read as another site.
var hostileNext = map[string]string{
	"tab":                 "/\t/evil.example:8443/path",
	"newline":             "/\n/evil.example/path",
	"carriage return":     "/\r\n/evil.example/path",
	"encoded tab":         "/%09/evil.example/path",
	"encoded slash":       "/%2F/evil.example/path",
	"backslash":           "/\\evil.example/path",
	"encoded backslash":   "/%5Cevil.example/path",
	"two slashes":         "//evil.example/path",
	"scheme":              "https://evil.example/path",
	"scheme-relative tab": "\t//evil.example",
	"user info":           "//user@evil.example",
	"bidi control":        "/\u202e/evil.example",
}

// checkLocal fails unless loc is a path on this site no browser reads
// as another one: it starts with one "/", holds printable ASCII only, and
// parses without scheme or host.
func checkLocal(t *testing.T, what, loc string) {
	t.Helper()
	u, err := url.Parse(loc)
	bad := strings.ContainsFunc(loc, func(r rune) bool { return r > unicode.MaxASCII || !unicode.IsPrint(r) || r == '\\' })
	if err != nil || bad || !strings.HasPrefix(loc, "/") || strings.HasPrefix(loc, "//") || u.Host != "" || u.Scheme != "" {
		t.Errorf("%s: Location %q is not a local path", what, loc)
	}
}

// TestW7_NextAfterSignInIsLocal: every hostile `next`, after a sign-in
// with a password and after one with a second step, sends the browser to
// its account page; a local `next` is kept.
func TestW7_NextAfterSignInIsLocal(t *testing.T) {
	e, _, _ := pageEnv(t)
	e.user("bob", "bob-password-1", "")
	secret := e.totpUser("bob")
	signIn := func(user, password, next string) string {
		t.Helper()
		c := e.client()
		rec := c.page("POST", "/login", url.Values{"username": {user}, "password": {password}, "next": {next}}, nil)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("sign-in as %s: %d\n%.300s", user, rec.Code, rec.Body)
		}
		loc := rec.Header().Get("Location")
		for _, ck := range rec.Result().Cookies() {
			c.cookie = ck.Value
		}
		if user != "bob" {
			return loc
		}
		code, err := url.Parse(loc)
		if err != nil || code.Path != "/login/code" {
			t.Fatalf("after bob's password: Location %q", loc)
		}
		ws, err := e.st.GetWebSession(bg, c.cookie)
		if err != nil {
			t.Fatal(err)
		}
		rec = c.page("POST", "/login/code", url.Values{csrfField: {ws.CSRF}, "code": {e.code(secret)}, "next": {code.Query().Get("next")}}, nil)
		e.clock.Advance(30 * time.Second)
		if rec.Code != http.StatusSeeOther {
			t.Fatalf("bob's second step: %d\n%.300s", rec.Code, rec.Body)
		}
		return rec.Header().Get("Location")
	}
	for _, user := range []struct{ name, password string }{{"alice", "alice-password-1"}, {"bob", "bob-password-1"}} {
		for name, next := range hostileNext {
			loc := signIn(user.name, user.password, next)
			checkLocal(t, user.name+": "+name, loc)
			if loc != "/account" {
				t.Errorf("%s: %s: Location %q, want /account", user.name, name, loc)
			}
		}
		if loc := signIn(user.name, user.password, "/admin/audit?kind=login&user=bob"); loc != "/admin/audit?kind=login&user=bob" {
			t.Errorf("%s: a local next became %q", user.name, loc)
		}
	}
}

// TestW7_ReauthReplaysOnlyLocalActions: the re-verification page refuses
// to replay its form to any hostile action, before verifying anything.
func TestW7_ReauthReplaysOnlyLocalActions(t *testing.T) {
	e, _, plain := pageEnv(t)
	for name, action := range hostileNext {
		before := e.auditCount()
		rec := plain.page("POST", "/reauth", url.Values{csrfField: {plain.csrf}, "action": {action},
			"reauth_password": {"alice-password-1"}, "f.name": {"x"}}, nil)
		if rec.Code != http.StatusBadRequest || rec.Header().Get("Location") != "" {
			t.Errorf("%s: %d Location %q, want 400 and none", name, rec.Code, rec.Header().Get("Location"))
		}
		if evs := e.eventsSince(before); len(evs) != 0 {
			t.Errorf("%s: something was verified or changed:%s", name, fmtEvents(evs))
		}
	}
	// A local action of the page table is replayed after the verification.
	rec := plain.page("POST", "/reauth", url.Values{csrfField: {plain.csrf}, "action": {"/account/app-passwords"},
		"reauth_password": {"alice-password-1"}, "f.name": {"phone"}}, nil)
	if rec.Code != http.StatusOK || !strings.Contains(rec.Body.String(), `data-page="app-password-new"`) {
		t.Errorf("a local action: %d\n%.300s", rec.Code, rec.Body)
	}
	if aps, err := e.st.ListAppPasswords(e.ctx(), "alice"); err != nil || len(aps) != 1 {
		t.Errorf("after the replay alice has %d app passwords (%v)", len(aps), err)
	}
}
