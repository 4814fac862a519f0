package admin_test

import (
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/pquerna/otp/totp"
)

// The user's side in the browser: enrollment, backup codes, the backup-code
// notice. Every page visited is also held to checkPage.

var backupCodeRE = regexp.MustCompile(`^\d{4} \d{4} \d{4}$`)

// signIn fills the sign-in form and sends it.
func (b *tab) signIn(user, password string) {
	b.t.Helper()
	b.open("/login")
	b.fill("#username", user)
	b.fill("#password", password)
	b.submit("#signin")
}

// signOut uses the header's sign-out button.
func (b *tab) signOut() {
	b.t.Helper()
	b.submit("header form button")
	b.expectPage("login")
}

// signInWithBackupCode signs in and gives a backup (or admin-issued) code
// at the second step.
func (b *tab) signInWithBackupCode(user, password, code string) {
	b.t.Helper()
	b.signIn(user, password)
	b.expectPage("code")
	b.navigated("use a backup code", chromedpClick("#use-backup"))
	b.enterCode(code)
}

// code enters a second-step code on the page it is on and sends it.
func (b *tab) enterCode(code string) {
	b.t.Helper()
	b.fill("#code", code)
	b.submit("#verify")
}

// totpNow is the current code of a secret as the page shows it.
func totpNow(t *testing.T, grouped string) string {
	t.Helper()
	return totpAt(t, grouped, time.Now())
}

func totpAt(t *testing.T, grouped string, at time.Time) string {
	t.Helper()
	code, err := totp.GenerateCode(strings.ReplaceAll(grouped, " ", ""), at)
	if err != nil {
		t.Fatalf("TOTP code from the page's secret %q: %v", grouped, err)
	}
	return code
}

// enroll goes through the enrollment page the tab is on and returns the
// secret and the first backup codes.
func (b *tab) enroll(shot string) (secret string, codes []string) {
	b.t.Helper()
	b.expectPage("enroll")
	secret = b.text("#secret")
	if !regexp.MustCompile(`^([A-Z2-7]{4} )+[A-Z2-7]{1,4}$`).MatchString(secret) {
		b.t.Errorf("secret %q is not grouped in fours", secret)
	}
	if uri := eval[string](b, `document.querySelector('#otpauth').getAttribute('href')`); !strings.HasPrefix(uri, "otpauth://totp/") {
		b.t.Errorf("otpauth link %q", uri)
	}
	if w := eval[int](b, `(async () => { const i = document.querySelector('img.qr'); await i.decode(); return i.naturalWidth; })()`); w < 100 {
		b.t.Errorf("the QR code image is %d px wide", w)
	}
	if shot != "" {
		b.shot(shot)
	}
	b.site.remember(secret)
	b.fill("#code", totpNow(b.t, secret))
	b.submit("#confirm")
	b.expectPage("backup-codes")
	return secret, b.codes()
}

// codes are the backup codes the page shows, checked for their form.
func (b *tab) codes() []string {
	b.t.Helper()
	codes := b.texts("#codes li")
	b.site.remember(codes...)
	if len(codes) != 5 {
		b.t.Fatalf("%d backup codes shown, want 5: %q", len(codes), codes)
	}
	for _, c := range codes {
		if !backupCodeRE.MatchString(c) {
			b.t.Errorf("backup code %q is not shown as 1234 5678 9012", c)
		}
	}
	return codes
}

// TestBrowserEnrollAndBackupCodes: sign in, enroll TOTP from the secret on
// the page, keep and download the first backup codes; sign in with one,
// see the notice with 4 left, generate new codes, and an old one fails.
func TestBrowserEnrollAndBackupCodes(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{users: []siteUser{{name: "alice", password: "alice-password-1"}}})
	b := newTab(t, s)

	b.open("/login")
	b.shot("sign-in")
	b.signIn("alice", "alice-password-1")
	b.expectPage("account")
	if got := b.text("#mfa-state"); !strings.Contains(got, "Off") {
		t.Errorf("two-step state %q before enrolling", got)
	}
	b.submit("#mfa-on")
	secret, first := b.enroll("enrollment")
	b.shot("backup-codes")
	file := string(b.download("#download"))
	var inFile []string
	for _, line := range strings.Split(file, "\n") {
		if backupCodeRE.MatchString(line) {
			inFile = append(inFile, line)
		}
	}
	if !slices.Equal(inFile, first) {
		t.Errorf("downloaded file holds %q, the page showed %q", inFile, first)
	}
	b.open("/account")
	if got := b.text("#mfa-state"); !strings.Contains(got, "On") {
		t.Errorf("two-step state %q after enrolling", got)
	}

	// A backup code signs in once and leads to the notice.
	b.signOut()
	b.signIn("alice", "alice-password-1")
	b.expectPage("code")
	b.shot("second-step")
	b.navigated("use a backup code", chromedpClick("#use-backup"))
	b.enterCode(first[0])
	b.expectPage("backup-notice")
	if got := b.text("#codes-left"); got != "You have 4 backup codes left." {
		t.Errorf("notice says %q", got)
	}
	b.shot("backup-code-notice")
	b.submit("#generate")
	second := b.codes()
	if slices.Contains(second, first[1]) {
		t.Fatalf("the new set repeats an old code")
	}

	// The old set is void; the new one works; a TOTP code works.
	b.signOut()
	b.signInWithBackupCode("alice", "alice-password-1", first[1])
	b.expectSays("code", "#form-error", "did not work")
	b.enterCode(second[0])
	b.expectPage("backup-notice")
	b.submit("#continue")
	b.expectPage("account")
	b.signOut()
	b.signIn("alice", "alice-password-1")
	// The enrollment's code may be the current one, and codes are single
	// use (A4): take the next step's code, within the ±1 step tolerance.
	b.enterCode(totpAt(t, secret, time.Now().Add(30*time.Second)))
	b.expectPage("account")

	// A mail app still using the account password is named on the page,
	// with what to do about it.
	if _, err := s.imapTry(t, "alice", "alice-password-1"); err == nil {
		t.Fatalf("the account password logged in over IMAP with two-step verification on")
	}
	want := "A mail app (IMAP) tried your account password"
	err := waitFor(b.ctx, 10*time.Second, func() (bool, error) {
		b.open("/account")
		for _, line := range b.texts("#activity li.warn") {
			if strings.Contains(line, want) && strings.Contains(line, "from 127.0.0.1") && strings.Contains(line, "create an app password") {
				return true, nil
			}
		}
		return false, nil
	})
	if err != nil {
		t.Errorf("the activity list never said %q: %q", want, b.texts("#activity li"))
	}

	// Self-enabled, so it can be turned off again, after a confirmation.
	b.navigated("turn off", chromedpClick("#mfa-off"))
	b.expectPage("confirm")
	b.submit("#confirm")
	b.expectPage("account")
	if got := b.text("#mfa-state"); !strings.Contains(got, "Off") {
		t.Errorf("two-step state %q after turning it off", got)
	}
}
