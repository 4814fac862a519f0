package admin

import (
	"html"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// markup is one user-controlled text seeded with markup: an element of its
// own and an attribute-breaking tail, both marked with the field's key so a
// raw copy on a page points at the field that leaked.
type markup struct{ key, text string }

func newMarkup(key string) markup {
	return markup{key, "<b id=" + key + ">\"'><svg onload=" + key + ">"}
}

// usernameMarkup is markup a username can hold (no space or slash).
func usernameMarkup(key string) markup {
	return markup{key, "<b_" + key + ">\"'><svg_" + key + ">"}
}

// raws are the pieces of m that must never reach a page unescaped.
func (m markup) raws() []string {
	head, _, _ := strings.Cut(m.text, ">")
	_, tail, _ := strings.Cut(m.text, "'>")
	return []string{head, "'>" + tail}
}

// escaped is how m reads once HTML-escaped in text or a quoted attribute.
func (m markup) escaped() string { return html.EscapeString(m.text) }

// w8Site is a store whose every user-controlled text carries markup.
type w8Site struct {
	e                                 *env
	root, user                        *client
	userSecret                        string
	name, display, email, apppw, imap markup
	ua, token, reason, next, name2    markup
	apppw2, apppw3                    markup
	apppwID                           string
	all                               []markup
}

func newW8Site(t *testing.T) *w8Site {
	e, root, _ := pageEnv(t)
	s := &w8Site{e: e, root: root, name: usernameMarkup("un"), display: newMarkup("dn"), email: newMarkup("em"),
		apppw: newMarkup("ap"), imap: newMarkup("id"), ua: newMarkup("ua"), token: newMarkup("tk"), reason: newMarkup("rs"),
		next: newMarkup("nx"), name2: usernameMarkup("u2"), apppw2: newMarkup("a2"), apppw3: newMarkup("a3")}
	s.all = []markup{s.name, s.display, s.email, s.apppw, s.imap, s.ua, s.token, s.reason, s.next, s.name2, s.apppw2, s.apppw3}
	ctx := e.ctx()
	e.user(s.name.text, "user-password-1", "")
	display, email := s.display.text, s.email.text+"@example.org"
	if _, err := e.st.UpdateUser(ctx, s.name.text, authstore.UserUpdate{Display: &display, Email: &email}); err != nil {
		t.Fatal(err)
	}
	s.userSecret = e.totpUser(s.name.text)
	ap, secret, err := e.st.CreateAppPassword(ctx, s.name.text, authstore.NewAppPassword{Name: s.apppw.text})
	if err != nil {
		t.Fatal(err)
	}
	s.apppwID = ap.ID
	// The client an IMAP ID names, and a DAV client's User-Agent, each
	// become an app password's last-used client.
	s.use(secret, authstore.IMAP, s.imap.text)
	_, davSecret, err := e.st.CreateAppPassword(ctx, s.name.text, authstore.NewAppPassword{Name: "calendar"})
	if err != nil {
		t.Fatal(err)
	}
	s.use(davSecret, authstore.CalDAV, s.ua.text)
	e.live.add(t, proxy.SessionInfo{ID: "s1", Username: s.name.text, CredentialID: ap.ID, AppPassName: s.apppw.text,
		Client: s.imap.text, Protocol: authstore.IMAP, Remote: mustAddr("198.51.100.7:50000"), Start: epoch})
	// An API token named with markup acts on the user: the audit log and
	// the user's activity name it.
	ops := e.tokenClient(e.token(s.token.text, authstore.RoleAdmin, ""))
	ops.must(200, "POST", "/api/v1/users/"+url.PathEscape(s.name.text)+"/app-passwords", map[string]string{"name": "by token"})
	if err := e.st.Record(ctx, authstore.Event{Kind: "login", User: s.name.text, Result: "denied", Reason: s.reason.text}); err != nil {
		t.Fatal(err)
	}
	s.user = e.client()
	s.user.signIn(s.name.text, "user-password-1", s.userSecret)
	return s
}

func (s *w8Site) use(secret string, p authstore.Protocol, client string) {
	s.e.t.Helper()
	if _, err := s.e.st.Authenticate(bg, authstore.Attempt{Protocol: p, Username: s.name.text, Secret: secret,
		Source: mustAddr("198.51.100.7:1").Addr(), Client: client}); err != nil {
		s.e.t.Fatal(err)
	}
}

// check fails when any seeded markup is raw on the page, or when one the
// page shows is not there escaped.
func (s *w8Site) check(t *testing.T, what, body string, shows ...markup) {
	t.Helper()
	for _, m := range s.all {
		for _, raw := range m.raws() {
			if strings.Contains(body, raw) {
				t.Errorf("%s: %s is raw on the page: %q", what, m.key, raw)
			}
		}
	}
	for _, m := range shows {
		if !strings.Contains(body, m.escaped()) {
			t.Errorf("%s: %s is not shown escaped (%q)", what, m.key, m.escaped())
		}
	}
}

// TestW8_MarkupEscapedOnEveryPage: markup in every user-controlled text
// (usernames, display names, emails, app-password names, clients named by
// IMAP ID and by User-Agent, API token names, audit reasons, the sign-in's
// next) is escaped wherever a page shows it, and raw on no page of the
// page table, for an administrator and for the user.
func TestW8_MarkupEscapedOnEveryPage(t *testing.T) {
	s := newW8Site(t)
	user := url.PathEscape(s.name.text)
	get := func(c *client, path string) string {
		t.Helper()
		return c.page("GET", path, nil, nil).Body.String()
	}
	for _, tc := range []struct {
		who   *client
		path  string
		shows []markup
	}{
		{s.user, "/account", []markup{s.name, s.display, s.apppw, s.imap, s.ua, s.token}},
		{s.user, "/account/app-passwords/" + s.apppwID + "/revoke", []markup{s.apppw}},
		{s.root, "/admin", []markup{s.name, s.display, s.apppw, s.imap}},
		{s.root, "/admin/users/" + user, []markup{s.name, s.display, s.email, s.apppw, s.imap}},
		{s.root, "/admin/users/" + user + "/delete", []markup{s.name}},
		{s.root, "/admin/audit", []markup{s.name, s.token, s.reason}},
		{s.root, "/admin/audit?" + url.Values{"user": {s.name.text}, "kind": {s.next.text}}.Encode(), []markup{s.name, s.next}},
		{s.root, "/admin/tokens", []markup{s.token}},
		{s.e.client(), "/login?next=" + url.QueryEscape(s.next.text), []markup{s.next}},
	} {
		s.check(t, "GET "+tc.path, get(tc.who, tc.path), tc.shows...)
	}
	// Every page of the table, for both.
	fill := strings.NewReplacer("{user}", user, "{id}", s.apppwID)
	for _, r := range s.e.srv.pages.routes() {
		method, path, _ := strings.Cut(r.pattern, " ")
		if method != "GET" {
			continue
		}
		for _, c := range []*client{s.root, s.user} {
			s.check(t, "GET "+path, get(c, fill.Replace(path)))
		}
	}

	// Pages that show what a form just sent.
	body := s.user.page("POST", "/account/app-passwords", url.Values{csrfField: {s.user.csrf}, "name": {s.apppw2.text}}, nil).Body.String()
	s.check(t, "new app password", body, s.apppw2)
	created := s.root.page("POST", "/admin/users", url.Values{csrfField: {s.root.csrf}, "username": {s.name2.text}}, nil).Body.String()
	s.check(t, "new user", created, s.name2)
	code := s.root.page("POST", "/admin/users/"+user+"/code", url.Values{csrfField: {s.root.csrf}}, nil).Body.String()
	s.check(t, "one-time code", code, s.name)
	s.e.clock.Advance(6 * time.Minute)
	body = s.user.page("POST", "/account/app-passwords", url.Values{csrfField: {s.user.csrf}, "name": {s.apppw3.text}}, nil).Body.String()
	s.check(t, "re-verification prompt", body, s.apppw3)
	if !strings.Contains(body, `data-page="reauth"`) {
		t.Errorf("no re-verification prompt:\n%.300s", body)
	}
}
