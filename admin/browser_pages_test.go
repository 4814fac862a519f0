package admin_test

import (
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/cdp"
	"github.com/chromedp/cdproto/emulation"
	"github.com/chromedp/cdproto/page"
	"github.com/chromedp/chromedp"
)

// TestBrowserNoFraming: a page of another site that frames a postern page
// gets an empty frame (frame-ancestors 'none'), so no click can be
// hijacked.
func TestBrowserNoFraming(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{users: []siteUser{{name: "alice", password: "alice-password-1"}}})
	b := newTab(t, s)
	for _, path := range []string{"/login", "/account", "/login/code", "/no-such-page"} {
		framer := httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
			fmt.Fprintf(w, `<!doctype html><html lang="en"><title>framer</title><iframe src="%s" title="victim"></iframe>`, s.url(path))
		}))
		step(b, "open a page that frames "+path, chromedp.Navigate(framer.URL))
		var loaded string
		err := waitFor(b.ctx, 10*time.Second, func() (bool, error) {
			tree, err := chromedp.Call(b.ctx, page.GetFrameTree, cdp.Empty{})
			if err != nil {
				return false, err
			}
			for _, child := range tree.FrameTree.ChildFrames {
				loaded = child.Frame.URL
				if child.Frame.UnreachableURL != "" || strings.HasPrefix(loaded, "chrome-error:") {
					return true, nil
				}
			}
			return false, nil
		})
		framer.Close()
		if err != nil {
			t.Errorf("%s rendered inside another site's frame (frame at %q)", path, loaded)
		}
	}
}

// TestBrowserErrorPages: a missing page and a page that needs signing in
// answer in plain words with the way forward.
func TestBrowserErrorPages(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{users: []siteUser{{name: "alice", password: "alice-password-1"}}})
	b := newTab(t, s)
	if resp := b.open("/no-such-page"); resp.Status != http.StatusNotFound {
		t.Errorf("a missing page answers %d", resp.Status)
	}
	b.expectPage("error")
	if got := b.text("h1"); got != "Page not found" {
		t.Errorf("a missing page says %q", got)
	}
	b.open("/account")
	b.expectPage("login")
	if loc := step(b, "location", chromedp.Location()); !strings.HasSuffix(loc, "/login?next=%2Faccount") {
		t.Errorf("an unsigned visit to /account lands on %s", loc)
	}
	b.fill("#username", "alice")
	b.fill("#password", "wrong-password")
	b.submit("#signin")
	b.expectSays("login", "#form-error", "not right")
	b.fill("#password", "alice-password-1")
	b.submit("#signin")
	b.expectPage("account") // back where the visit began
}

// TestBrowserWithoutJavaScript: with script switched off in the browser,
// signing in, creating an app password and revoking it all work; the
// script only adds Copy buttons, which then stay hidden.
func TestBrowserWithoutJavaScript(t *testing.T) {
	t.Parallel()
	s := startSite(t, siteOptions{users: []siteUser{{name: "alice", password: "alice-password-1"}}})
	b := newTab(t, s)
	if _, err := chromedp.Call(b.ctx, emulation.SetScriptExecutionDisabled, emulation.SetScriptExecutionDisabledParams{Value: true}); err != nil {
		t.Fatalf("switch script off: %v", err)
	}
	b.unchecked = true // axe-core is script too; the other tests hold these pages to checkPage
	b.signIn("alice", "alice-password-1")
	b.expectPage("account")
	b.createAppPassword("No-script mail app")
	if visible := eval[bool](b, `!document.querySelector('button.copy').hidden`); visible {
		t.Errorf("a Copy button shows without script")
	}
	b.open("/account")
	b.navigated("revoke link", chromedpClick(`#app-passwords a.danger-link`))
	b.submit("#confirm")
	b.expectSays("account", ".flash", "revoked")
}
