package admin_test

import (
	"strings"
	"testing"
	"time"
)

// TestBrowserReauth (W1 in the browser): past policy.reauth_window a
// security change prompts inline, with the password for a user without a
// second factor and a code for one with it, and completes after the
// prompt without the form being filled again.
func TestBrowserReauth(t *testing.T) {
	t.Parallel()
	const window = 30 * time.Second // the shortest policy.reauth_window
	s := startSite(t, siteOptions{reauthWindow: window.String(), users: []siteUser{
		{name: "alice", password: "alice-password-1"}, {name: "bob", password: "bob-password-1"},
	}})
	alice, bob := newTab(t, s), newTab(t, s)
	alice.signIn("alice", "alice-password-1")
	alice.expectPage("account")
	bob.signIn("bob", "bob-password-1")
	bob.submit("#mfa-on") // within the window of the sign-in: no prompt
	secret, _ := bob.enroll("")
	bob.open("/account")

	time.Sleep(window + time.Second)

	alice.open("/account")
	alice.fill("#ap-name", "Calendar on phone")
	alice.submit("#ap-create")
	alice.expectPage("reauth")
	if !alice.has("#reauth-password") || alice.has("#reauth-code") {
		t.Errorf("a user without a second factor is not asked for the password: %q", alice.text("main"))
	}
	alice.shot("reauth")
	alice.fill("#reauth-password", "wrong-password")
	alice.submit("#reauth")
	alice.expectSays("reauth", "#form-error", "did not work")
	alice.fill("#reauth-password", "alice-password-1")
	alice.submit("#reauth")
	alice.expectPage("app-password-new")
	if !strings.Contains(alice.text("main"), "Calendar on phone") || !appPasswordRE.MatchString(alice.text("#app-password")) {
		t.Errorf("the change did not complete after the prompt: %q", alice.text("main"))
	}

	bob.submit("#new-codes")
	bob.expectPage("reauth")
	if !bob.has("#reauth-code") {
		t.Errorf("a user with a second factor is not asked for a code: %q", bob.text("main"))
	}
	// The enrollment used the current step; codes are single use (A4).
	bob.fill("#reauth-code", totpAt(t, secret, time.Now().Add(30*time.Second)))
	bob.submit("#reauth")
	bob.expectPage("backup-codes")
	bob.codes()
}
