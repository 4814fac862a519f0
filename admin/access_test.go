package admin

import (
	"net/http"
	"testing"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// routesWith returns the routes whose access is one of as.
func routesWith(s *Server, as ...access) []route {
	var out []route
	for _, rt := range s.routes {
		for _, a := range as {
			if rt.Access == a {
				out = append(out, rt)
			}
		}
	}
	return out
}

// TestRouteTableNeedsCredentials: every route but the open ones and the
// first sign-in step answers 401 without a credential, and with a cookie
// that names no session, and with a wrong or malformed token.
func TestRouteTableNeedsCredentials(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	callers := map[string]*client{
		"none":         e.client(),
		"stale cookie": {e: e, cookie: "AAAAAAAAAAAAAAAAAAAAAA", csrf: "x", remote: "192.0.2.1:1"},
		"wrong token":  e.tokenClient("pst_" + "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"),
		"junk token":   e.tokenClient("hello"),
	}
	rts := routesWith(e.srv, accessPending, accessAnySession, accessBrowser, accessEnroll, accessSelf, accessAdmin)
	if len(rts) < 35 {
		t.Fatalf("only %d protected routes", len(rts))
	}
	for name, c := range callers {
		expectEach(t, name, c, rts, http.StatusUnauthorized, "unauthenticated")
	}
}

// expectEach calls every route of rts as c and wants status and code.
func expectEach(t *testing.T, name string, c *client, rts []route, status int, code string) {
	t.Helper()
	for _, rt := range rts {
		if r := c.do(rt.Method, concrete(rt.Path), nil); r.code != status || (code != "" && r.errCode() != code) {
			t.Errorf("%s: %s %s: %d %s, want %d %s", name, rt.Method, rt.Path, r.code, r.body, status, code)
		}
	}
}

// TestW4_PlainUserOnAdminRoutes: every admin route refuses a plain
// user's session (fresh, with its CSRF token) and a user's token: 403.
func TestW4_PlainUserOnAdminRoutes(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	e.user("bob", "bob-password", "")
	browser := e.client()
	browser.signIn("bob", "bob-password", "")
	callers := map[string]*client{"session": browser, "user token": e.tokenClient(e.token("bobs", authstore.RoleUser, "bob"))}
	rts := routesWith(e.srv, accessAdmin)
	if len(rts) < 20 {
		t.Fatalf("only %d admin routes", len(rts))
	}
	for name, c := range callers {
		expectEach(t, name, c, rts, http.StatusForbidden, "forbidden")
	}
	// The same session is a user: its own routes work.
	browser.must(200, "GET", "/api/v1/me", nil)
}

// TestW3_CSRFOnEveryStateChange: an admin's cookie state change without
// the CSRF token, with a wrong one, from another origin or marked
// cross-site by the browser is refused with 403 csrf, route by route.
func TestW3_CSRFOnEveryStateChange(t *testing.T) {
	e := newEnv(t)
	e.user("root", "root-password", authstore.RoleAdmin)
	e.user("alice", "alice-password", "")
	admin := e.client()
	admin.signIn("root", "root-password", "")
	good := admin.csrf
	cases := map[string]func(c *client){
		"no token":               func(c *client) { c.csrf = "" },
		"wrong token":            func(c *client) { c.csrf = otherFirst(good) },
		"other origin":           func(c *client) { c.header.Set("Origin", "https://evil.example") },
		"plain-http origin":      func(c *client) { c.header.Set("Origin", "http://postern.test") },
		"cross-site fetch":       func(c *client) { c.header.Set("Sec-Fetch-Site", "cross-site") },
		"same-site (not origin)": func(c *client) { c.header.Set("Sec-Fetch-Site", "same-site") },
	}
	n := 0
	for name, mod := range cases {
		for _, rt := range e.srv.routes {
			if rt.Access < accessPending || safeMethod(rt.Method) {
				continue
			}
			n++
			c := &client{e: e, cookie: admin.cookie, csrf: good, remote: admin.remote, header: http.Header{}}
			mod(c)
			if r := c.do(rt.Method, concrete(rt.Path), nil); r.code != http.StatusForbidden || r.errCode() != "csrf" {
				t.Errorf("%s: %s %s: %d %s, want 403 csrf", name, rt.Method, rt.Path, r.code, r.body)
			}
		}
	}
	if n < 6*25 {
		t.Errorf("only %d checks", n)
	}
	// The sign-in itself refuses a cross-site POST (login CSRF).
	c := e.client()
	c.header.Set("Origin", "https://evil.example")
	if r := c.do("POST", "/api/v1/session", map[string]string{"username": "alice", "password": "alice-password"}); r.code != 403 || c.cookie != "" {
		t.Errorf("cross-site sign-in: %d %s", r.code, r.body)
	}
	// With the token and a same-origin browser the change goes through.
	admin.header.Set("Origin", "https://postern.test")
	admin.header.Set("Sec-Fetch-Site", "same-origin")
	admin.must(200, "PATCH", "/api/v1/users/alice", map[string]any{"display_name": "Alice"})
}

// TestEnrollOnlySession: when the org requires two-step and the user has
// none, the session may enroll and nothing else; confirming makes it a
// full session under a new id.
func TestEnrollOnlySession(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	if err := e.st.SetPolicy(e.ctx(), authstore.Policy{MFARequired: true}); err != nil {
		t.Fatal(err)
	}
	c := e.client()
	r := c.must(200, "POST", "/api/v1/session", map[string]string{"username": "alice", "password": "alice-password"})
	var st api.SignInResponse
	r.decode(t, &st)
	if st.State != stateEnroll {
		t.Fatalf("state %q", st.State)
	}
	expectEach(t, "enroll-only", c, routesWith(e.srv, accessSelf, accessAdmin), http.StatusForbidden, "forbidden")
	c.must(200, "GET", "/api/v1/me/mfa", nil)
	var enr api.TOTPEnrollment
	c.must(200, "POST", "/api/v1/me/mfa/totp", nil).decode(t, &enr)
	png := c.must(200, "GET", "/api/v1/me/mfa/totp/qr.png", nil)
	if png.header.Get("Content-Type") != "image/png" || len(png.body) < 100 {
		t.Errorf("qr: %q %d bytes", png.header.Get("Content-Type"), len(png.body))
	}
	before := c.cookie
	var conf api.ConfirmResponse
	c.must(200, "POST", "/api/v1/me/mfa/totp/confirm", map[string]string{"code": e.code(enr.Secret)}).decode(t, &conf)
	if len(conf.BackupCodes) != 5 || c.cookie == before {
		t.Errorf("confirm: %d codes, cookie rotated %t", len(conf.BackupCodes), c.cookie != before)
	}
	c.must(200, "GET", "/api/v1/me/app-passwords", nil)
	old := &client{e: e, cookie: before, remote: c.remote, header: http.Header{}}
	old.must(401, "GET", "/api/v1/me", nil)
}

// otherFirst changes the first character of a token.
func otherFirst(tok string) string {
	if tok[0] == 'A' {
		return "B" + tok[1:]
	}
	return "A" + tok[1:]
}
