package admin_test

import (
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-imap/v2"
	"github.com/emersion/go-imap/v2/imapclient"
)

// kickLimit is P10's promise: a revoked app password's
// sessions are gone within one second.
const kickLimit = time.Second

var appPasswordRE = regexp.MustCompile(`^[a-z]{4}( [a-z]{4}){5}$`)

// imapLogin logs in through the gateway's implicit-TLS IMAP listener as a
// mail app would, announcing itself with ID, and fails t unless it worked.
func (s *site) imapLogin(t *testing.T, user, secret string) *imapclient.Client {
	t.Helper()
	c, err := s.imapTry(t, user, secret)
	if err != nil {
		t.Fatalf("IMAP login of %s through the gateway: %v", user, err)
	}
	return c
}

// imapTry logs in and returns the error, closing the client on failure.
func (s *site) imapTry(t *testing.T, user, secret string) (*imapclient.Client, error) {
	t.Helper()
	pem, err := os.ReadFile(filepath.Join(s.dir, "data", "tls", "cert.pem"))
	if err != nil {
		t.Fatal(err)
	}
	roots := x509.NewCertPool()
	roots.AppendCertsFromPEM(pem)
	c, err := imapclient.DialTLS(s.addrs["imaps"], &imapclient.Options{
		TLSConfig: &tls.Config{RootCAs: roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}})
	if err != nil {
		t.Fatalf("dial IMAP: %v", err)
	}
	if _, err := c.ID(&imap.IDData{Name: "Thunderbird"}).Wait(); err != nil {
		c.Close()
		return nil, fmt.Errorf("ID: %w", err)
	}
	if err := c.Login(user, secret).Wait(); err != nil {
		c.Close()
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	return c, nil
}

// waitClosed fails t unless the IMAP client's connection ends within
// kickLimit of start. Callers start the clock when the page answered: the
// change is made by then, and the browser's own round trip (two argon2id
// hashes for a password change, on a loaded machine) is not the kick's.
func waitClosed(t *testing.T, c *imapclient.Client, start time.Time, after string) {
	t.Helper()
	select {
	case <-c.Closed():
		if took := time.Since(start); took > kickLimit {
			t.Errorf("the IMAP session ended %v after %s, want within %v", took, after, kickLimit)
		}
	case <-time.After(2 * kickLimit):
		t.Fatalf("the IMAP session is still open %v after %s", 2*kickLimit, after)
	}
}

// createAppPassword fills the account page's form and returns the secret
// the next page shows once, as a user types it (no spaces).
func (b *tab) createAppPassword(name string) string {
	b.t.Helper()
	b.open("/account")
	b.fill("#ap-name", name)
	b.submit("#ap-create")
	b.expectPage("app-password-new")
	secret := b.text("#app-password")
	b.site.remember(secret)
	if !appPasswordRE.MatchString(secret) {
		b.t.Fatalf("app password %q is not shown as six groups of four letters", secret)
	}
	return strings.ReplaceAll(secret, " ", "")
}

// appPasswordItem is the account page's text about one app password.
func (b *tab) appPasswordItem(name string) string {
	b.t.Helper()
	for _, item := range b.texts("#app-passwords > li") {
		if strings.HasPrefix(item, name) {
			return item
		}
	}
	return ""
}

// TestBrowserAppPasswordLive: create an app password in the page, use it
// over IMAP through the gateway, see the live session and the last use on
// the page, revoke it in the page, and the IMAP session ends within 1 s
// (P10). Then change the password with "also revoke all app passwords".
func TestBrowserAppPasswordLive(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{users: []siteUser{{name: "alice", password: "alice-password-1"}}})
	b := newTab(t, s)
	b.signIn("alice", "alice-password-1")
	b.expectPage("account")

	secret := b.createAppPassword("Thunderbird on laptop")
	settings := b.text("#settings")
	if !strings.Contains(settings, "alice") || !strings.Contains(settings, "IMAP") ||
		!strings.Contains(settings, s.addrs["imaps"][strings.LastIndex(s.addrs["imaps"], ":")+1:]) {
		t.Errorf("the settings beside the new app password lack the username or the IMAP port: %q", settings)
	}
	b.shot("app-password-new")

	imapc := s.imapLogin(t, "alice", secret)
	if _, err := imapc.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT through the gateway: %v", err)
	}
	idle, err := imapc.Idle()
	if err != nil {
		t.Fatalf("IDLE: %v", err)
	}
	defer idle.Close()

	b.open("/account")
	item := b.appPasswordItem("Thunderbird on laptop")
	for _, want := range []string{"1 session", "from 127.0.0.1", "Thunderbird"} {
		if !strings.Contains(item, want) {
			t.Errorf("the account page says %q about the app password in use, want %q in it", item, want)
		}
	}
	b.shot("account")

	b.navigated("revoke link", chromedpClick(`#app-passwords a.danger-link`))
	b.expectPage("confirm")
	b.submit("#confirm")
	waitClosed(t, imapc, time.Now(), "the page answered the revoke")
	b.expectPage("account")
	if !strings.Contains(b.text(".flash"), "revoked") || b.appPasswordItem("Thunderbird on laptop") != "" {
		t.Errorf("after revoking, the page says: %q", b.text("main"))
	}
	if _, err := s.imapTry(t, "alice", secret); err == nil {
		t.Errorf("a revoked app password still logs in")
	}

	// Changing the password can revoke every app password at once.
	second := b.createAppPassword("Phone")
	phone := s.imapLogin(t, "alice", second)
	b.open("/account")
	b.fill("#current-password", "alice-password-1")
	b.fill("#new-password", "alice-password-2")
	b.fill("#confirm-password", "alice-password-2")
	step(b, "tick revoke-all", chromedpClick("#revoke-all"))
	b.submit("#change-password")
	waitClosed(t, phone, time.Now(), "the password change was answered")
	b.expectPage("account")
	if !strings.Contains(b.text(".flash"), "every app password was revoked") || !b.has("#no-app-passwords") {
		t.Errorf("after the password change the page says: %q", b.text("main"))
	}
	if _, err := s.imapTry(t, "alice", second); err == nil {
		t.Errorf("an app password still logs in after the password change revoked them all")
	}
	b.signOut()
	b.signIn("alice", "alice-password-1")
	b.expectPage("login")
	b.signIn("alice", "alice-password-2")
	b.expectPage("account")
}
