package admin

import (
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// TestConsoleOneTimeCodeTTL: the console's one-time code form offers how
// long the code stays valid, passes the choice to the API, and the code
// shown works until then and not after; without a choice the standard time
// applies, and a made-up value is refused in plain words.
func TestConsoleOneTimeCodeTTL(t *testing.T) {
	e, admin, _ := pageEnv(t)
	e.totpUser("alice") // a one-time code is for a user with two-step on
	page := admin.page("GET", "/admin/users/alice", nil, nil).Body.String()
	for _, want := range []string{`<label for="code-ttl">`, `<option value="">3 days (standard)</option>`,
		`<option value="1h">1 hour</option>`, `<option value="7d">7 days</option>`} {
		if !strings.Contains(page, want) {
			t.Errorf("user page lacks %s", want)
		}
	}
	if strings.Contains(page, `<option value="3d">`) {
		t.Error("the standard time is offered twice")
	}
	issue := func(ttl string) (code, body string) {
		t.Helper()
		form := url.Values{csrfField: {admin.csrf}}
		if ttl != "" {
			form.Set("ttl", ttl)
		}
		rec := admin.page("POST", "/admin/users/alice/code", form, nil)
		body = rec.Body.String()
		if rec.Code != 200 {
			return "", body
		}
		_, rest, _ := strings.Cut(body, `id="one-time-code" class="secret">`)
		code, _, _ = strings.Cut(rest, "<")
		return code, body
	}
	when := func(d time.Duration) string { return e.clock.Now().Add(d).UTC().Format("2 Jan 2006 15:04 UTC") }

	verify := func(code string) error {
		_, err := e.st.VerifySecondFactor(e.ctx(), "alice", code,
			authstore.Attempt{Protocol: authstore.Web, Username: "alice", Source: mustAddr("192.0.2.1:1").Addr()})
		return err
	}
	if _, bad := issue("99d"); !strings.Contains(bad, "between 1m and 30d") {
		t.Errorf("a ttl over 30 days was not refused in words:\n%s", bad)
	}
	code, body := issue("1h")
	if code == "" || !strings.Contains(body, "It expires on "+when(time.Hour)+".") {
		t.Fatalf("1h code page:\n%s", body)
	}
	e.clock.Advance(time.Hour)
	if err := verify(code); err == nil {
		t.Error("a 1 h code still works after an hour")
	}
	admin.signIn("root", "root-password-1", "") // an hour idle ended the console session
	code, body = issue("")
	if code == "" || !strings.Contains(body, "It expires on "+when(authstore.DefaultAdminCodeTTL)+".") {
		t.Fatalf("standard code page:\n%s", body)
	}
	e.clock.Advance(time.Hour)
	if err := verify(code); err != nil {
		t.Errorf("a standard code after an hour: %v", err)
	}
}
