package admin

import (
	"strings"
	"testing"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// TestLiveSessionsFromRegistry: the listing names each session's app
// password as the registry carries it (every front-end carries the name
// its grant gave), and ending one session by id audits its owner and
// removes it.
func TestLiveSessionsFromRegistry(t *testing.T) {
	e := newEnv(t)
	e.user("alice", "alice-password", "")
	e.user("bob", "bob-password", "")
	ap, _, err := e.st.CreateAppPassword(e.ctx(), "alice", authstore.NewAppPassword{Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	e.live.add(t,
		proxy.SessionInfo{ID: "s1", Username: "alice", CredentialID: ap.ID, AppPassName: "as logged in",
			Protocol: authstore.IMAP, Remote: mustAddr("198.51.100.7:50000"), Start: epoch},
		proxy.SessionInfo{ID: "s2", Username: "alice", CredentialID: ap.ID, AppPassName: ap.Name,
			Protocol: authstore.CalDAV, Remote: mustAddr("198.51.100.7:50001"), Start: epoch.Add(1)},
		proxy.SessionInfo{ID: "s3", Username: "bob", CredentialID: "password",
			Protocol: authstore.POP3, Remote: mustAddr("198.51.100.8:50000"), Start: epoch.Add(2)},
	)
	ops := e.tokenClient(e.token("ops", authstore.RoleAdmin, ""))

	var out api.SessionList
	ops.must(200, "GET", "/api/v1/sessions?user=ALICE", nil).decode(t, &out)
	if len(out.Sessions) != 2 {
		t.Fatalf("alice's sessions: %+v", out.Sessions)
	}
	if got := out.Sessions[0].AppPasswordName; got != "as logged in" {
		t.Errorf("s1 app password name %q, want the registry's", got)
	}
	if got := out.Sessions[1].AppPasswordName; got != "laptop" {
		t.Errorf("s2 app password name %q, want the registry's", got)
	}
	ops.must(200, "GET", "/api/v1/sessions", nil).decode(t, &out)
	if len(out.Sessions) != 3 || out.Sessions[2].AppPasswordID != "" || out.Sessions[2].AppPasswordName != "" {
		t.Fatalf("all sessions: %+v", out.Sessions)
	}

	n := e.auditCount()
	ops.must(204, "DELETE", "/api/v1/sessions/s3", nil)
	evs := e.eventsSince(n)
	if len(evs) != 1 || evs[0].Kind != "session.end" || evs[0].User != "bob" || evs[0].Detail != "id=s3" {
		t.Errorf("audit: %s", fmtEvents(evs))
	}
	if left := e.live.Find(proxy.Filter{Username: "bob"}); len(left) != 0 {
		t.Errorf("bob's session still live: %+v", left)
	}
	if r := ops.do("DELETE", "/api/v1/sessions/s3", nil); r.code != 404 || r.errCode() != "not_found" {
		t.Errorf("second end: %d %s", r.code, r.body)
	}
	if len(e.live.Find(proxy.Filter{Username: "alice"})) != 2 {
		t.Error("ending bob's session touched alice's")
	}
}

// TestAppPasswordLiveSessions: both app-password listings and the pages
// built on them say how many live sessions use each app password, from the
// registry, and the count follows a kick.
func TestAppPasswordLiveSessions(t *testing.T) {
	e, admin, plain := pageEnv(t)
	e.user("bob", "bob-password-1", "")
	laptop, _, err := e.st.CreateAppPassword(e.ctx(), "alice", authstore.NewAppPassword{Name: "laptop"})
	if err != nil {
		t.Fatal(err)
	}
	phone, _, err := e.st.CreateAppPassword(e.ctx(), "alice", authstore.NewAppPassword{Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	e.live.add(t,
		proxy.SessionInfo{ID: "s1", Username: "alice", CredentialID: laptop.ID, Protocol: authstore.IMAP, Start: epoch},
		proxy.SessionInfo{ID: "s2", Username: "alice", CredentialID: laptop.ID, Protocol: authstore.CalDAV, Start: epoch},
		proxy.SessionInfo{ID: "s3", Username: "alice", CredentialID: "password", Protocol: authstore.POP3, Start: epoch},
		// Under another user the same credential id is not counted for alice.
		proxy.SessionInfo{ID: "s4", Username: "bob", CredentialID: phone.ID, Protocol: authstore.IMAP, Start: epoch},
	)
	counts := func(c *client, path string) map[string]int {
		t.Helper()
		var out api.AppPasswordList
		c.must(200, "GET", path, nil).decode(t, &out)
		m := map[string]int{}
		for _, ap := range out.AppPasswords {
			m[ap.Name] = ap.LiveSessions
		}
		return m
	}
	want := map[string]int{"laptop": 2, "phone": 0}
	for _, tc := range []struct {
		who  *client
		path string
	}{{plain, "/api/v1/me/app-passwords"}, {admin, "/api/v1/users/alice/app-passwords"}} {
		if got := counts(tc.who, tc.path); got["laptop"] != want["laptop"] || got["phone"] != want["phone"] || len(got) != 2 {
			t.Errorf("%s: %v, want %v", tc.path, got, want)
		}
	}
	if rec := plain.page("GET", "/account", nil, nil); !strings.Contains(rec.Body.String(), `<dd class="live">2 sessions</dd>`) {
		t.Errorf("account page does not say 2 sessions:\n%s", rec.Body)
	}
	if rec := admin.page("GET", "/admin/users/alice", nil, nil); !strings.Contains(rec.Body.String(), ", 2 live") {
		t.Errorf("console user page does not say 2 live:\n%s", rec.Body)
	}
	e.live.KickSession("s1", "")
	if got := counts(plain, "/api/v1/me/app-passwords"); got["laptop"] != 1 {
		t.Errorf("after a kick: %v", got)
	}
}
