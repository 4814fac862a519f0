package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/cdproto/browser"
	"github.com/chromedp/cdproto/network"
	"github.com/chromedp/chromedp"

	"github.com/postern-dev/postern/internal/testpeer"
)

// updateShots writes the screenshots the tests take to docs/screenshots,
// where the README shows them: go test ./admin -run Browser -screenshots.
var updateShots = flag.Bool("screenshots", false, "write the browser tests' screenshots to docs/screenshots")

// axeEnv names a file holding axe.min.js when it is not where
// scripts/install-peers puts it.
const (
	axeEnv     = "POSTERN_AXE_JS"
	axeDefault = "/usr/local/lib/postern-peers/node_modules/axe-core/axe.min.js"
	// browserStep bounds one browser action (a page load, a query).
	browserStep = 30 * time.Second
	// wideWidth is the window the screenshots are taken in; phoneWidth the
	// narrow phone every page must fit without scrolling sideways.
	wideWidth, wideHeight   = 1100, 900
	phoneWidth, phoneHeight = 360, 740
)

// tab is one Chromium tab in a browser of its own, signed in as nobody.
type tab struct {
	t    *testing.T
	ctx  context.Context
	site *site
	axe  string
	// unchecked skips checkPage, for a browser with script switched off.
	unchecked bool
}

// newTab starts headless Chromium for t. A missing Chromium or axe-core
// skips t, or fails it when POSTERN_REQUIRE_PEERS=1.
func newTab(t *testing.T, s *site) *tab {
	t.Helper()
	bin := testpeer.RequirePeer(t, "chromium")
	axe := readAxe(t)
	opts := append(chromedp.DefaultExecAllocatorOptions[:],
		chromedp.ExecPath(bin),
		chromedp.NoSandbox, // Chromium's sandbox refuses to run as root
		chromedp.IgnoreCertErrors,
		chromedp.WindowSize(wideWidth, wideHeight),
		chromedp.UserDataDir(t.TempDir()),
	)
	actx, cancelAlloc := chromedp.NewExecAllocator(context.Background(), opts...)
	ctx, cancel := chromedp.NewContext(actx)
	t.Cleanup(func() { cancel(); cancelAlloc() })
	if err := chromedp.Do(ctx, chromedp.EmulateViewport(wideWidth, wideHeight)); err != nil {
		t.Fatalf("start chromium: %v", err)
	}
	return &tab{t: t, ctx: ctx, site: s, axe: axe}
}

func readAxe(t *testing.T) string {
	t.Helper()
	path := os.Getenv(axeEnv)
	if path == "" {
		path = axeDefault
	}
	data, err := os.ReadFile(path)
	if err != nil {
		msg := "axe-core not found (" + err.Error() + "); run scripts/install-peers or set " + axeEnv
		if os.Getenv(testpeer.RequirePeersEnv) == "1" {
			t.Fatal(msg)
		}
		t.Skip(msg)
	}
	return string(data)
}

// step runs one action with a bound, failing the test on error.
func step[T any](b *tab, what string, a chromedp.Action[T]) T {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	v, err := chromedp.Run(ctx, a)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	return v
}

// navigated runs steps that load a new document, waits for it and checks it
// as a page (headers, accessibility, width, inline script).
func (b *tab) navigated(what string, steps ...chromedp.Action[chromedp.Void]) *network.Response {
	b.t.Helper()
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	resp, err := chromedp.RunResponse(ctx, steps...)
	if err != nil {
		b.t.Fatalf("%s: %v", what, err)
	}
	if !b.unchecked {
		b.checkPage(resp)
	}
	return resp
}

// open loads a page by its path.
func (b *tab) open(path string) *network.Response {
	b.t.Helper()
	return b.navigated("open "+path, chromedp.Navigate(b.site.url(path)))
}

// submit clicks a button that sends its form, and checks the page it leads to.
func (b *tab) submit(sel string) *network.Response {
	b.t.Helper()
	return b.navigated("submit "+sel, chromedp.Click(chromedp.CSS(sel)))
}

// chromedpClick clicks the first element matching sel.
func chromedpClick(sel string) chromedp.Action[chromedp.Void] {
	return chromedp.Click(chromedp.CSS(sel))
}

// fill types a value into a form field.
func (b *tab) fill(sel, value string) {
	b.t.Helper()
	step(b, "fill "+sel, chromedp.SetValue(chromedp.CSS(sel), value))
}

// text is the visible text of the first element matching sel.
func (b *tab) text(sel string) string {
	b.t.Helper()
	return step(b, "text of "+sel, chromedp.Text(chromedp.CSS(sel)))
}

// texts is the text of every element matching sel.
func (b *tab) texts(sel string) []string {
	b.t.Helper()
	return eval[[]string](b, fmt.Sprintf(`Array.from(document.querySelectorAll(%q), e => e.textContent.trim())`, sel))
}

// has reports whether an element matches sel on the current page.
func (b *tab) has(sel string) bool {
	b.t.Helper()
	return eval[bool](b, fmt.Sprintf(`document.querySelector(%q) !== null`, sel))
}

// page is the name the current page gives itself on <main data-page>.
func (b *tab) page() string {
	b.t.Helper()
	return eval[string](b, `(document.querySelector('main[data-page]') || {dataset: {page: ''}}).dataset.page`)
}

// expectPage fails unless the current page is the named one.
func (b *tab) expectPage(name string) {
	b.t.Helper()
	if got := b.page(); got != name {
		b.t.Fatalf("on page %q, want %q; it says: %s", got, name, b.text("main"))
	}
}

// expectSays fails unless the current page is the named one and the text
// of sel on it contains want.
func (b *tab) expectSays(name, sel, want string) {
	b.t.Helper()
	b.expectPage(name)
	if got := b.text(sel); !strings.Contains(got, want) {
		b.t.Errorf("on page %q, %s says %q, want %q in it; the page says: %s", name, sel, got, want, b.text("main"))
	}
}

func eval[T any](b *tab, js string) T {
	b.t.Helper()
	return step(b, "evaluate "+js, chromedp.Evaluate[T](js, chromedp.EvalAwaitPromise))
}

// checkPage holds every page to the rules of the web side: security
// headers, no inline script, no serious accessibility problem, and no
// sideways scrolling on a 360 px phone.
func (b *tab) checkPage(resp *network.Response) {
	b.t.Helper()
	if resp == nil {
		b.t.Fatalf("no response for the page")
	}
	where := resp.URL
	checkHeaders(b.t, where, resp.Headers)
	if b.inlineScriptRuns() {
		b.t.Errorf("%s: an inline script ran despite the Content-Security-Policy", where)
	}
	for _, v := range b.axeViolations() {
		b.t.Errorf("%s: accessibility: %s", where, v)
	}
	if w := b.phoneOverflow(); w != "" {
		b.t.Errorf("%s: at %d px wide the page scrolls sideways: %s", where, phoneWidth, w)
	}
}

// checkHeaders checks the security headers every page carries.
func checkHeaders(t *testing.T, where string, h network.Headers) {
	t.Helper()
	get := func(name string) string {
		for k, v := range h {
			if strings.EqualFold(k, name) {
				s, _ := v.(string)
				return s
			}
		}
		return ""
	}
	csp := get("Content-Security-Policy")
	for _, want := range []string{"default-src 'self'", "frame-ancestors 'none'"} {
		if !strings.Contains(csp, want) {
			t.Errorf("%s: Content-Security-Policy %q lacks %q", where, csp, want)
		}
	}
	if strings.Contains(csp, "unsafe-inline") || strings.Contains(csp, "unsafe-eval") {
		t.Errorf("%s: Content-Security-Policy %q allows inline script or eval", where, csp)
	}
	for name, want := range map[string]string{
		"X-Content-Type-Options": "nosniff", "Referrer-Policy": "no-referrer",
		"Content-Language": "en",
	} {
		if got := get(name); got != want {
			t.Errorf("%s: %s = %q, want %q", where, name, got, want)
		}
	}
	if strings.HasPrefix(where, "https://") && !strings.Contains(get("Strict-Transport-Security"), "max-age=") {
		t.Errorf("%s: no Strict-Transport-Security on HTTPS", where)
	}
}

// inlineScriptRuns adds an inline script to the page, as an injection would,
// and reports whether the browser ran it.
func (b *tab) inlineScriptRuns() bool {
	b.t.Helper()
	return eval[bool](b, `(() => {
		delete window.__posternInline;
		const s = document.createElement('script');
		s.textContent = 'window.__posternInline = true';
		document.body.appendChild(s);
		s.remove();
		return window.__posternInline === true;
	})()`)
}

// axeViolations runs axe-core on the page and lists the serious and
// critical findings.
func (b *tab) axeViolations() []string {
	b.t.Helper()
	if !eval[bool](b, `typeof window.axe === 'object'`) {
		step(b, "inject axe-core", chromedp.Evaluate[chromedp.Void](b.axe+"\n;undefined"))
	}
	raw := eval[string](b, `axe.run(document, {resultTypes: ['violations']}).then(r => JSON.stringify(
		r.violations.filter(v => v.impact === 'serious' || v.impact === 'critical').map(v =>
			v.impact + ' ' + v.id + ': ' + v.help + ' at ' + v.nodes.map(n => n.target.join(' ')).join(', '))))`)
	var out []string
	if err := json.Unmarshal([]byte(raw), &out); err != nil {
		b.t.Fatalf("axe-core result %q: %v", raw, err)
	}
	return out
}

// phoneOverflow narrows the viewport to a 360 px phone and names what sticks
// out sideways, "" when nothing does.
func (b *tab) phoneOverflow() string {
	b.t.Helper()
	step(b, "narrow viewport", chromedp.EmulateViewport(phoneWidth, phoneHeight))
	defer step(b, "widen viewport", chromedp.EmulateViewport(wideWidth, wideHeight))
	return eval[string](b, `(() => {
		const root = document.documentElement;
		if (root.scrollWidth <= root.clientWidth) return "";
		const wide = Array.from(document.querySelectorAll('body *')).filter(e => e.getBoundingClientRect().right > root.clientWidth + 0.5 || e.scrollWidth > e.clientWidth + 0.5);
		return 'document ' + root.scrollWidth + ' px; widest: ' + wide.slice(0, 3).map(e => e.tagName.toLowerCase() + (e.id ? '#' + e.id : '') + (e.className ? '.' + e.className : '')).join(', ');
	})()`)
}

// shot takes a screenshot of the whole page; with -screenshots it is saved
// as docs/screenshots/NAME.png.
func (b *tab) shot(name string) {
	b.t.Helper()
	png := step(b, "screenshot", chromedp.FullScreenshot(100))
	if !bytes.HasPrefix(png, []byte("\x89PNG")) {
		b.t.Fatalf("screenshot %s is not a PNG", name)
	}
	if !*updateShots {
		return
	}
	dir := filepath.Join("..", "docs", "screenshots")
	if err := os.MkdirAll(dir, 0o755); err != nil {
		b.t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(dir, name+".png"), png, 0o644); err != nil {
		b.t.Fatal(err)
	}
}

// download clicks a button whose answer is a file and returns the file.
func (b *tab) download(sel string) []byte {
	b.t.Helper()
	dir := b.t.TempDir()
	yes := true
	if _, err := chromedp.Call(b.ctx, browser.SetDownloadBehavior, browser.SetDownloadBehaviorParams{
		Behavior: browser.SetDownloadBehaviorBehaviorAllowAndName, DownloadPath: dir, EventsEnabled: &yes,
	}); err != nil {
		b.t.Fatalf("allow downloads: %v", err)
	}
	ctx, cancel := context.WithTimeout(b.ctx, browserStep)
	defer cancel()
	progress := chromedp.Events(ctx, browser.DownloadProgress)
	step(b, "click "+sel, chromedp.Click(chromedp.CSS(sel)))
	for ev, err := range progress {
		if err != nil {
			b.t.Fatalf("download of %s: %v", sel, err)
		}
		if ev.State == browser.DownloadProgressStateCompleted {
			data, err := os.ReadFile(filepath.Join(dir, ev.GUID))
			if err != nil {
				b.t.Fatalf("downloaded file: %v", err)
			}
			return data
		}
		if ev.State == browser.DownloadProgressStateCanceled {
			b.t.Fatalf("download of %s was cancelled", sel)
		}
	}
	return nil
}
