package admin

import (
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
