package admin_test

import (
	"strings"
	"testing"
	"time"
)

// TestBrowserAdminConsole: the org's two-step switch with a grace date
// leads a user through enrollment at sign-in; a one-time code signs the
// user in once and not twice; a reset clears the factor; a live session
// ends from the console; a plain user cannot open the console.
func TestBrowserAdminConsole(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{users: []siteUser{
		{name: "root", password: "root-password-1", admin: true},
		{name: "bob", password: "bob-password-1"},
		{name: "carol", password: "carol-password-1"}, // never signs in: counted as not enrolled
	}})
	a := newTab(t, s)
	a.signIn("root", "root-password-1")
	a.expectPage("account")
	a.open("/admin")
	a.shot("admin-console")

	grace := time.Now().AddDate(0, 0, 3).Format(time.DateOnly)
	step(a, "tick the org switch", chromedpClick("#mfa-required"))
	a.fill("#grace-until", grace)
	a.submit("#save-policy")
	a.expectPage("admin")
	if got := a.text("#policy-state"); !strings.Contains(got, "Required") || !strings.Contains(got, "Until") {
		t.Errorf("policy after saving: %q", got)
	}
	// admin (made by postern init), root, bob and carol
	if got := a.text("#not-enrolled"); !strings.HasPrefix(got, "4 users") {
		t.Errorf("not-enrolled count: %q", got)
	}

	// Bob has no second factor: signing in leads him through enrollment.
	b := newTab(t, s)
	b.signIn("bob", "bob-password-1")
	b.expectSays("enroll-intro", "#required", "requires")
	b.submit("#begin")
	b.enroll("")
	b.open("/admin")
	b.expectSays("error", "h1", "Not allowed")

	// A one-time code from the console signs Bob in once.
	a.open("/admin/users/bob")
	if got := a.text("#user-mfa"); !strings.HasPrefix(got, "On") {
		t.Errorf("bob's two-step in the console: %q", got)
	}
	a.submit("#issue-code")
	a.expectPage("admin-code")
	code := a.text("#one-time-code")
	s.remember(code)
	if !backupCodeRE.MatchString(code) {
		t.Fatalf("one-time code %q", code)
	}
	if !strings.Contains(a.text("#code-expiry"), "expires") {
		t.Errorf("no expiry shown with the one-time code")
	}
	b.signOut()
	b.signInWithBackupCode("bob", "bob-password-1", code)
	if p := b.page(); p != "backup-notice" && p != "account" {
		t.Fatalf("after the one-time code bob is on %q: %s", p, b.text("main"))
	}
	b.signOut()
	b.signInWithBackupCode("bob", "bob-password-1", code)
	b.expectSays("code", "#form-error", "did not work")

	// Reset (lost phone): the factor is cleared and enrollment comes again.
	a.open("/admin/users/bob")
	a.submit("#mfa-reset")
	a.expectPage("admin-user")
	if got := a.text("#user-mfa"); !strings.HasPrefix(got, "Off") {
		t.Errorf("bob's two-step after the reset: %q", got)
	}
	b.signIn("bob", "bob-password-1")
	b.expectPage("enroll-intro")

	// A live session ends from the console within 1 s. During the grace
	// period Bob may put enrollment off and set up his mail app.
	b.navigated("not now", chromedpClick("#later"))
	b.expectPage("account")
	imapc := s.imapLogin(t, "bob", b.createAppPassword("Mail"))
	a.open("/admin")
	if got := a.text("#sessions"); !strings.Contains(got, "bob") || !strings.Contains(got, "Mail") {
		t.Fatalf("live sessions in the console: %q", got)
	}
	a.submit("#sessions button.end-session")
	waitClosed(t, imapc, time.Now(), "the console answered End")
	a.expectSays("admin", ".flash", "ended")

	// Any user's app passwords, revoked from the console.
	a.open("/admin/users/bob")
	if got := a.text("#user-app-passwords"); !strings.Contains(got, "Mail") {
		t.Fatalf("bob's app passwords in the console: %q", got)
	}
	a.submit("#user-app-passwords button")
	a.expectSays("admin-user", ".flash", "revoked")
	if a.has("#user-app-passwords") {
		t.Errorf("the revoked app password is still listed: %q", a.text("#user-app-passwords"))
	}

	// Once the grace period is over, a sign-in without a second factor
	// may only enroll.
	a.open("/admin")
	a.fill("#grace-until", "")
	a.submit("#save-policy")
	a.expectSays("admin", "#policy-state", "Required")
	c := newTab(t, s)
	c.signIn("carol", "carol-password-1")
	c.expectPage("enroll-intro")
	if c.has("#later") {
		t.Errorf("after the grace period the enrollment page still offers to put it off")
	}
	c.open("/account")
	c.expectPage("enroll-intro")
}

// TestBrowserAdminPages: the rest of the console: search, create (with a
// generated password shown once), disable and enable, set a password,
// delete after a confirmation, the audit log with a filter and its export,
// and API tokens.
func TestBrowserAdminPages(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{users: []siteUser{
		{name: "root", password: "root-password-1", admin: true}, {name: "carol", password: "carol-password-1"},
	}})
	a := newTab(t, s)
	a.signIn("root", "root-password-1")
	a.open("/admin?q=CAR")
	if got := a.texts("#users a.user-link"); len(got) != 1 || got[0] != "carol" {
		t.Errorf("searching for CAR lists %q", got)
	}

	a.open("/admin")
	a.fill("#new-username", "dave")
	a.fill("#new-display", "Dave Lee")
	a.submit("#add-user")
	a.expectPage("admin-user-created")
	if pw := a.text("#new-user-password"); len(pw) < 12 {
		t.Errorf("generated password %q", pw)
	}
	a.navigated("continue", chromedpClick("main a.button"))
	a.expectPage("admin-user")
	a.submit("#disable")
	if got := a.text("#user-state"); got != "disabled" {
		t.Errorf("after disabling: %q", got)
	}
	a.submit("#enable")
	if got := a.text("#user-state"); got != "active" {
		t.Errorf("after enabling: %q", got)
	}
	a.fill("#set-password", "dave-password-2")
	a.submit("#set-password-button")
	a.expectPage("admin-user")
	d := newTab(t, s)
	d.signIn("dave", "dave-password-2")
	d.expectPage("account")

	a.navigated("delete", chromedpClick("#delete"))
	a.expectPage("confirm")
	a.submit("#confirm")
	a.expectPage("admin")
	if strings.Contains(a.text("#users"), "dave") || !strings.Contains(a.text(".flash"), "deleted") {
		t.Errorf("after deleting dave the console says %q", a.text("main"))
	}

	a.open("/admin/audit?kind=user.delete")
	if got := a.texts("#events li"); len(got) != 1 || !strings.Contains(got[0], "dave") || !strings.Contains(got[0], "admin:root") {
		t.Errorf("audit filtered to user.delete: %q", got)
	}
	export := string(a.download("#export"))
	if !strings.Contains(export, `"kind":"user.delete"`) || strings.Contains(export, `"kind":"user.create"`) {
		t.Errorf("the export of the filtered audit log:\n%s", export)
	}

	// Carol turned two-step on herself; an admin may turn it off.
	c := newTab(t, s)
	c.signIn("carol", "carol-password-1")
	c.submit("#mfa-on")
	c.enroll("")
	a.open("/admin/users/carol")
	a.submit("#mfa-off")
	a.expectPage("admin-user")
	if got := a.text("#user-mfa"); !strings.HasPrefix(got, "Off") {
		t.Errorf("carol's two-step after an admin turned it off: %q", got)
	}

	a.open("/admin/tokens")
	a.fill("#t-name", "backup job")
	a.submit("#create-token")
	a.expectPage("tokens")
	if secret := a.text("#token-secret"); !strings.HasPrefix(secret, "pst_") {
		t.Errorf("new token %q", secret)
	}
	a.submit("#tokens button")
	a.expectPage("tokens")
	if a.has("#tokens") || !strings.Contains(a.text(".flash"), "revoked") {
		t.Errorf("after revoking the token: %q", a.text("main"))
	}
}
