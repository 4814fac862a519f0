package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// The page route table names, for each page, the API route whose
// declaration (Access, Reauth, Guesses) it is held to; these tests drive
// the pages of the table, not a list of their own.

// TestW1_EveryReauthPageOfTheTable: for each page action whose route is
// Reauth, an admin's session (which may use every page) re-verifies on a
// frozen clock; 4:59 later the action runs, 5:01 later the page asks to
// re-verify and nothing changes.
func TestW1_EveryReauthPageOfTheTable(t *testing.T) {
	e, _, _ := pageEnv(t)
	var n int
	for _, pr := range e.srv.pages.table {
		if !pr.as.Reauth {
			continue
		}
		n++
		method, path, _ := strings.Cut(pr.pattern, " ")
		t.Run(pr.pattern, func(t *testing.T) {
			e, admin, _ := pageEnv(t)
			e.clock.Advance(20 * time.Minute) // the sign-in's window long closed, the session not idle
			admin.must(200, "GET", "/api/v1/me", nil)
			admin.must(200, "POST", "/api/v1/session/reauth", map[string]string{"password": "root-password-1"})
			form := func() url.Values { return url.Values{csrfField: {admin.csrf}} }

			e.clock.Advance(4*time.Minute + 59*time.Second)
			if rec := admin.page(method, concrete(path), form(), nil); strings.Contains(rec.Body.String(), `data-page="reauth"`) {
				t.Errorf("4:59 after re-verification: %d, asks to re-verify", rec.Code)
			}
			e.clock.Advance(2 * time.Second)
			before := e.auditCount()
			rec := admin.page(method, concrete(path), form(), nil)
			if rec.Code != http.StatusForbidden || !strings.Contains(rec.Body.String(), `data-page="reauth"`) {
				t.Errorf("5:01 after re-verification: %d, want 403 and the re-verification page\n%.300s", rec.Code, rec.Body)
			}
			if evs := e.eventsSince(before); len(evs) != 0 {
				t.Errorf("5:01 after re-verification something changed:%s", fmtEvents(evs))
			}
		})
	}
	if n < 12 {
		t.Errorf("only %d Reauth pages", n)
	}
}

// TestA2_ParallelPageSignInsFromOneAddress: the sign-in page spends a
// guess like the API's sign-in: of 50 parallel wrong sign-ins from one
// address past its free failures, while the delays are held, at most
// maxGuessesPerSource are in flight and the rest get the "Too many
// attempts" page without being verified.
func TestA2_ParallelPageSignInsFromOneAddress(t *testing.T) {
	const n = 50
	g := &sleepGate{open: make(chan struct{}), entered: make(chan struct{}, n)}
	e := newEnv(t, func(o *authstore.Options, _ *Config) { o.Sleep = g.sleep })
	if err := e.srv.EnablePages(nil); err != nil {
		t.Fatal(err)
	}
	e.user("alice", "alice-password", "")
	signIn := func(password string) int {
		c := e.client()
		c.remote = "203.0.113.5:1000"
		rec := c.page("POST", "/login", url.Values{"username": {"alice"}, "password": {password}}, nil)
		if rec.Code == http.StatusTooManyRequests && !strings.Contains(rec.Body.String(), "Too many attempts") {
			t.Errorf("a refused sign-in says:\n%.300s", rec.Body)
		}
		return rec.Code
	}
	for i := range 5 {
		signIn(fmt.Sprintf("guess-%d", i))
	}
	g.mu.Lock()
	g.shut = true
	g.mu.Unlock()
	before := e.auditCount()

	inFlight, refused, release := holdBurst(g, n, func(i int) int { return signIn(fmt.Sprintf("burst-%d", i)) })
	for _, code := range refused {
		if code != http.StatusTooManyRequests {
			t.Errorf("an answer while the delays are held: %d", code)
		}
	}
	if inFlight > maxGuessesPerSource {
		t.Errorf("%d page sign-ins from one address in flight at once, want at most %d", inFlight, maxGuessesPerSource)
	}
	release()
	verified := 0
	for _, ev := range e.eventsSince(before) {
		if ev.User == "alice" && ev.Result == "denied" {
			verified++
		}
	}
	if verified != inFlight {
		t.Errorf("%d guesses verified, %d were in flight", verified, inFlight)
	}
}
