package admin

import (
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// The page route table, called the way an attacker would: as a plain user
// on the console (W4), and without the CSRF token or from another site
// (W3). The browser tests drive the same pages through their happy paths.

// pageEnv is an env serving the pages, with a signed-in admin and a plain
// user.
func pageEnv(t *testing.T) (e *env, admin, plain *client) {
	t.Helper()
	e = newEnv(t)
	if err := e.srv.EnablePages(nil); err != nil {
		t.Fatal(err)
	}
	e.user("root", "root-password-1", authstore.RoleAdmin)
	e.user("alice", "alice-password-1", "")
	admin, plain = e.client(), e.client()
	admin.signIn("root", "root-password-1", "")
	plain.signIn("alice", "alice-password-1", "")
	return e, admin, plain
}

// pagePaths are the page routes with their wildcards filled.
func pagePaths(e *env, method string) []string {
	var out []string
	for _, r := range e.srv.pages.routes() {
		m, path, _ := strings.Cut(r.pattern, " ")
		if m == method {
			out = append(out, concrete(path))
		}
	}
	return out
}

func TestW4_ConsolePagesAsPlainUser(t *testing.T) {
	e, _, plain := pageEnv(t)
	for _, method := range []string{http.MethodGet, http.MethodPost} {
		for _, path := range pagePaths(e, method) {
			if !strings.HasPrefix(path, "/admin") {
				continue
			}
			before := e.auditCount()
			var form url.Values
			if method == http.MethodPost {
				form = url.Values{csrfField: {plain.csrf}, "mfa_required": {"on"}, "username": {"mallory"}, "password": {"mallory-password-1"}}
			}
			rec := plain.page(method, path, form, nil)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), "Not allowed") {
				t.Errorf("%s %s as a plain user: %d\n%.300s", method, path, rec.Code, rec.Body)
			}
			if evs := e.eventsSince(before); len(evs) != 0 {
				t.Errorf("%s %s as a plain user changed something:%s", method, path, fmtEvents(evs))
			}
		}
	}
}

func TestW3_PageFormsNeedTheirTokenAndTheirSite(t *testing.T) {
	e, admin, _ := pageEnv(t)
	crossSite := http.Header{"Sec-Fetch-Site": {"cross-site"}, "Origin": {"https://evil.example"}}
	for _, path := range pagePaths(e, http.MethodPost) {
		form := url.Values{"mfa_required": {"on"}, "username": {"mallory"}, "password": {"mallory-password-1"},
			"name": {"x"}, "action": {"/account/password"}, "code": {"1234 5678 9012"}}
		cases := map[string]struct {
			form   url.Values
			header http.Header
		}{
			"without the token": {form, nil},
			"from another site": {withToken(form, admin.csrf), crossSite},
		}
		for name, tc := range cases {
			if path == "/login" && name == "without the token" {
				continue // signing in has no session to hold a token yet; the origin check guards it
			}
			if path == "/account/backup-codes.txt" {
				continue // echoes the codes the form carries as a file and changes nothing
			}
			before := e.auditCount()
			rec := admin.page(http.MethodPost, path, tc.form, tc.header)
			if rec.Code != http.StatusForbidden {
				t.Errorf("POST %s %s: %d, want 403\n%.300s", path, name, rec.Code, rec.Body)
			}
			if evs := e.eventsSince(before); len(evs) != 0 {
				t.Errorf("POST %s %s changed something:%s", path, name, fmtEvents(evs))
			}
		}
	}
}

func withToken(f url.Values, token string) url.Values {
	out := url.Values{csrfField: {token}}
	for k, v := range f {
		out[k] = v
	}
	return out
}

// TestPageHeaders: every page answer, error pages included, renders and
// carries the headers that keep it out of frames and inline script out of it.
func TestPageHeaders(t *testing.T) {
	e, admin, _ := pageEnv(t)
	for _, path := range append(pagePaths(e, http.MethodGet), "/no-such-page", "/static/style.css") {
		rec := admin.page(http.MethodGet, path, nil, nil)
		if rec.Code >= 500 {
			t.Errorf("GET %s as an admin: %d\n%.300s", path, rec.Code, rec.Body)
		}
		h := rec.Header()
		csp := h.Get("Content-Security-Policy")
		if !strings.Contains(csp, "default-src 'self'") || !strings.Contains(csp, "frame-ancestors 'none'") || strings.Contains(csp, "unsafe") {
			t.Errorf("GET %s: Content-Security-Policy %q", path, csp)
		}
		if h.Get("X-Content-Type-Options") != "nosniff" || h.Get("Referrer-Policy") != "no-referrer" || h.Get("Strict-Transport-Security") == "" {
			t.Errorf("GET %s: headers %v", path, h)
		}
		if strings.Contains(rec.Body.String(), " style=") || strings.Contains(rec.Body.String(), "<script>") {
			t.Errorf("GET %s: inline style or script in the page", path)
		}
	}
}

func TestDescribeEvent(t *testing.T) {
	at := time.Date(2026, 3, 4, 5, 6, 0, 0, time.UTC)
	for _, tc := range []struct {
		ev   authstore.Event
		want string
		warn bool
	}{
		{authstore.Event{Kind: "login", Protocol: authstore.IMAP, Result: "denied", Reason: "account_password_needs_app_password", Source: "198.51.100.7", Time: at},
			"A mail app (IMAP) tried your account password from 198.51.100.7: create an app password for it.", true},
		{authstore.Event{Kind: "login", Protocol: authstore.Web, Result: "ok", Source: "198.51.100.7"}, "You signed in on the web from 198.51.100.7", false},
		{authstore.Event{Kind: "login", Protocol: authstore.POP3, Result: "denied", Reason: "wrong_secret"}, "A mail app (POP3) failed to sign in", true},
		{authstore.Event{Kind: "mfa.reset", Actor: "admin:root", User: "alice"}, "Two-step verification was reset by the administrator root", false},
		{authstore.Event{Kind: "apppw.create", Actor: "self:alice", User: "alice"}, "An app password was created", false},
		{authstore.Event{Kind: "user.password", Actor: "cli:0", User: "alice"}, "The account password was changed by the server's operator", false},
		{authstore.Event{Kind: "user.create", Actor: "setup:demo", User: "alice"}, "The account was created during set-up", false},
	} {
		got, ok := describeEvent(tc.ev)
		if !ok || got.Text != tc.want || got.Warn != tc.warn {
			t.Errorf("%+v: %q warn=%t, want %q warn=%t", tc.ev, got.Text, got.Warn, tc.want, tc.warn)
		}
	}
	if _, ok := describeEvent(authstore.Event{Kind: "token.create"}); ok {
		t.Errorf("an event the owner has no words for is listed")
	}
}

// An administrator who sets someone else's password is told it was that
// user's, not "your", password.
func TestAdminSetPasswordNoticeNamesTheUser(t *testing.T) {
	_, admin, _ := pageEnv(t)
	rec := admin.page("POST", "/admin/users/alice/password", url.Values{csrfField: {admin.csrf}, "password": {"alice-new-password-2"}}, nil)
	loc := rec.Header().Get("Location")
	if rec.Code != http.StatusSeeOther || !strings.Contains(loc, "done=userpassword") {
		t.Fatalf("set password: %d, Location %q", rec.Code, loc)
	}
	body := admin.page("GET", loc, nil, nil).Body.String()
	if !strings.Contains(body, "The user&#39;s password was changed.") || strings.Contains(body, "Your password was changed") {
		t.Fatalf("the notice does not name the user's password:\n%s", body)
	}
}
