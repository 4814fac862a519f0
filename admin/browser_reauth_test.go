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
	// Short, but long enough for the one step after bob's sign-in that must
	// fall inside it on a busy machine (policy.reauth_window may be 1s).
	const window = 5 * time.Second
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

// TestBrowserAdminReauth (W1 in the console): past the window, an
// administrator's changes to other accounts (create, set a password,
// delete after its confirmation) prompt for re-verification inline and
// complete after it without the form being filled again.
func TestBrowserAdminReauth(t *testing.T) {
	t.Parallel()
	const window = 5 * time.Second
	s := startSite(t, siteOptions{reauthWindow: window.String(), users: []siteUser{
		{name: "root", password: "root-password-1", admin: true},
	}})
	a := newTab(t, s)
	a.signIn("root", "root-password-1")
	a.expectPage("account")
	confirm := func(what string) {
		t.Helper()
		a.expectPage("reauth")
		if !a.has("#reauth-password") {
			t.Fatalf("%s: no password prompt: %q", what, a.text("main"))
		}
		a.fill("#reauth-password", "root-password-1")
		a.submit("#reauth")
	}

	time.Sleep(window + time.Second)
	a.open("/admin")
	a.fill("#new-username", "erin")
	a.fill("#new-display", "Erin Example")
	a.submit("#add-user")
	confirm("add a user")
	a.expectPage("admin-user-created")
	if pw := a.text("#new-user-password"); len(pw) < 12 {
		t.Errorf("generated password after re-verification %q", pw)
	}

	time.Sleep(window + time.Second)
	a.open("/admin/users/erin")
	a.fill("#set-password", "erin-password-2")
	a.submit("#set-password-button")
	confirm("set a password")
	a.expectPage("admin-user")
	e := newTab(t, s)
	e.signIn("erin", "erin-password-2")
	e.expectPage("account")

	time.Sleep(window + time.Second)
	a.open("/admin/users/erin")
	a.navigated("delete", chromedpClick("#delete"))
	a.expectPage("confirm")
	a.submit("#confirm")
	confirm("delete a user")
	a.expectSays("admin", ".flash", "deleted")
	if strings.Contains(a.text("#users"), "erin") {
		t.Errorf("erin is still listed after the deletion: %q", a.text("#users"))
	}
}
