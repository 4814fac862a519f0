package admin

import (
	"net/url"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// activityRE reads the account page's activity list: each line's time and
// text.
var activityRE = regexp.MustCompile(`<li(?: class="warn")?><time datetime="([^"]+)">[^<]*</time> ([^<]*)</li>`)

// activity is the account page's "Recent security activity", as shown.
func activity(t *testing.T, page string) (times []time.Time, texts []string) {
	t.Helper()
	_, list, _ := strings.Cut(page, `id="activity"`)
	list, _, _ = strings.Cut(list, "</ul>")
	for _, m := range activityRE.FindAllStringSubmatch(list, -1) {
		at, err := time.Parse(time.RFC3339, m[1])
		if err != nil {
			t.Fatal(err)
		}
		times, texts = append(times, at), append(texts, m[2])
	}
	return times, texts
}

// TestAccountActivityNewestFirst: with more than 100 events, the account
// page shows the newest 20, newest first: a web sign-in made a minute ago
// heads the list.
func TestAccountActivityNewestFirst(t *testing.T) {
	e, _, _ := pageEnv(t)
	_, secret, err := e.st.CreateAppPassword(e.ctx(), "alice", authstore.NewAppPassword{Name: "phone"})
	if err != nil {
		t.Fatal(err)
	}
	for range 150 {
		e.clock.Advance(time.Minute)
		if _, err := e.st.Authenticate(bg, authstore.Attempt{Protocol: authstore.IMAP, Username: "alice", Secret: secret,
			Source: mustAddr("198.51.100.7:1").Addr()}); err != nil {
			t.Fatal(err)
		}
	}
	e.clock.Advance(time.Minute)
	c := e.client()
	c.remote = "192.0.2.99:4000"
	c.signIn("alice", "alice-password-1", "")
	e.clock.Advance(time.Minute)
	times, texts := activity(t, c.page("GET", "/account", nil, nil).Body.String())
	if len(texts) != 20 {
		t.Fatalf("%d activity lines, want 20: %q", len(texts), texts)
	}
	if texts[0] != "You signed in on the web from 192.0.2.99" || !times[0].Equal(e.clock.Now().Add(-time.Minute)) {
		t.Errorf("first line %s %q, want the sign-in a minute ago", times[0], texts[0])
	}
	for i := 1; i < len(times); i++ {
		if !times[i].Before(times[i-1]) {
			t.Errorf("line %d (%s) is not older than line %d (%s)", i, times[i], i-1, times[i-1])
		}
	}
}

// TestAccountSaysWhyNoAppPasswordIsListed: once the last app password is
// revoked the account page and the console say none is active, not that
// there never was one.
func TestAccountSaysWhyNoAppPasswordIsListed(t *testing.T) {
	e, admin, plain := pageEnv(t)
	noneYet := `<p id="no-app-passwords">You have no app passwords yet.</p>`
	if page := plain.page("GET", "/account", nil, nil).Body.String(); !strings.Contains(page, noneYet) {
		t.Errorf("before any app password the page does not say so:\n%s", page)
	}
	for i := range 2 {
		ap, _, err := e.st.CreateAppPassword(e.ctx(), "alice", authstore.NewAppPassword{Name: "phone"})
		if err != nil {
			t.Fatal(err)
		}
		if rec := plain.page("POST", "/account/app-passwords/"+ap.ID+"/revoke", url.Values{csrfField: {plain.csrf}}, nil); rec.Code != 303 {
			t.Fatalf("revoke: %d %s", rec.Code, rec.Body)
		}
		want := map[int]string{0: "No app password is active: the one you had was revoked, so no app can sign in with it any more.",
			1: "No app password is active: the 2 you had were revoked, so no app can sign in with them any more."}[i]
		page := plain.page("GET", "/account", nil, nil).Body.String()
		if !strings.Contains(page, want) || strings.Contains(page, noneYet) {
			t.Errorf("after revoking %d app passwords the page does not say %q:\n%s", i+1, want, page)
		}
	}
	if page := admin.page("GET", "/admin/users/alice", nil, nil).Body.String(); !strings.Contains(page, "None active; 2 revoked.") {
		t.Errorf("the console does not say alice's app passwords were revoked:\n%s", page)
	}
}

// TestAccountWarningSaysItsTimeOnce: the warning about a mail app trying
// the account password shows its time once, in the line's time.
func TestAccountWarningSaysItsTimeOnce(t *testing.T) {
	e, _, plain := pageEnv(t)
	secret := e.totpUser("alice")
	if _, err := e.st.Authenticate(bg, authstore.Attempt{Protocol: authstore.IMAP, Username: "alice", Secret: "alice-password-1",
		Source: mustAddr("198.51.100.7:1").Addr()}); err == nil {
		t.Fatal("the account password of a user with two-step worked over IMAP")
	}
	at := e.clock.Now().UTC().Format("2 Jan 2006 15:04 UTC")
	plain.signIn("alice", "alice-password-1", secret)
	_, texts := activity(t, plain.page("GET", "/account", nil, nil).Body.String())
	for _, text := range texts {
		if strings.Contains(text, "tried your account password") {
			if strings.Contains(text, at) || text != "A mail app (IMAP) tried your account password from 198.51.100.7: create an app password for it." {
				t.Errorf("warning %q", text)
			}
			return
		}
	}
	t.Errorf("no warning among %q", texts)
}
