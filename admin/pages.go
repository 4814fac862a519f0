package admin

import (
	"bytes"
	"embed"
	"fmt"
	"html/template"
	"io"
	"io/fs"
	"log/slog"
	"net/http"
	"strings"

	"github.com/postern-dev/postern/authstore"
)

// The web pages are server-rendered views over the operations the JSON
// API calls. Every page route names the API route whose declaration it
// performs (Access, Reauth, Guesses); the page's request is admitted
// through that declaration once (admit, with the session cookie and the
// form's CSRF token), and the handler then calls the operations directly
// with the admitted caller. Sessions, CSRF, roles and re-verification are
// therefore declared once, in the route table; the pages only speak to
// people.

//go:embed templates/*.html
var templateFS embed.FS

//go:embed static
var staticFS embed.FS

// MailSetting is one row of the settings a mail or calendar app needs,
// shown beside a new app password.
type MailSetting struct {
	Service  string // "IMAP", "POP3", "CalDAV", …
	Server   string // host name, or a URL for CalDAV/CardDAV
	Port     string
	Security string // "SSL/TLS", "STARTTLS"
}

// webPages serves the sign-in, account and admin pages.
type webPages struct {
	srv   *Server
	mail  []MailSetting // the client settings shown with a new app password
	pages map[string]*template.Template
	mux   *http.ServeMux
	log   *slog.Logger
	table []pageRoute
}

// pageRoute is one row of the page route table.
type pageRoute struct {
	pattern string // "GET /account"
	// use names the API route ("DELETE /api/v1/me/app-passwords/{id}")
	// whose declaration the page is held to: for an action the route that
	// does the same, for a view the one of the data it shows that needs
	// the most. "" is a page open to anyone, which changes nothing.
	use    string
	handle func(*pageCall)
	// refused renders a refusal of the admission; nil: actionFailed for a
	// POST, failed for a GET.
	refused func(*pageCall, error)
	as      *route // use, found in the route table
}

// newPages parses the templates and builds the page router.
func newPages(s *Server, mail []MailSetting) (*webPages, error) {
	p := &webPages{srv: s, mail: mail, pages: map[string]*template.Template{}, mux: http.NewServeMux(), log: s.log}
	if err := p.parseTemplates(); err != nil {
		return nil, err
	}
	static, err := fs.Sub(staticFS, "static")
	if err != nil {
		return nil, err
	}
	p.mux.Handle("GET /static/", http.StripPrefix("/static/", http.FileServerFS(static)))
	if p.table, err = p.declaredRoutes(); err != nil {
		return nil, err
	}
	for i := range p.table {
		rt := &p.table[i]
		p.mux.HandleFunc(rt.pattern, func(w http.ResponseWriter, r *http.Request) { p.newCall(w, r).serve(rt, nil) })
	}
	p.mux.HandleFunc("/", func(w http.ResponseWriter, req *http.Request) {
		c := p.newCall(w, req)
		if req.URL.Path == "/" {
			c.redirect("/account")
			return
		}
		c.fail(http.StatusNotFound, "notfound", "")
	})
	return p, nil
}

// declaredRoutes is the page route table with each row's API route found.
func (p *webPages) declaredRoutes() ([]pageRoute, error) {
	byKey := map[string]*route{"": {Access: accessOpen}}
	for i := range p.srv.routes {
		rt := &p.srv.routes[i]
		byKey[rt.Method+" "+rt.Path] = rt
	}
	table := p.routes()
	for i := range table {
		if table[i].as = byKey[table[i].use]; table[i].as == nil {
			return nil, fmt.Errorf("admin: page %s names %q, which is no API route", table[i].pattern, table[i].use)
		}
	}
	return table, nil
}

// routes is the page route table; forms post to these and work without
// JavaScript. Each row names the API route whose declaration the page is
// held to (use).
func (p *webPages) routes() []pageRoute {
	return []pageRoute{
		// Signing in and out.
		{pattern: "GET /login", handle: (*pageCall).loginForm},
		{pattern: "POST /login", use: "POST /api/v1/session", handle: (*pageCall).login},
		{pattern: "GET /login/code", handle: (*pageCall).codeForm},
		{pattern: "POST /login/code", use: "POST /api/v1/session/second-factor", handle: (*pageCall).code,
			refused: (*pageCall).codeFailed},
		{pattern: "POST /logout", use: "DELETE /api/v1/session", handle: (*pageCall).logout,
			refused: (*pageCall).logoutRefused},
		// Setting up two-step verification.
		{pattern: "GET /enroll", use: "GET /api/v1/me/mfa", handle: (*pageCall).enrollIntro},
		{pattern: "POST /enroll", use: "POST /api/v1/me/mfa/totp", handle: (*pageCall).enrollBegin},
		{pattern: "GET /enroll/qr.png", use: "GET /api/v1/me/mfa/totp/qr.png", handle: (*pageCall).enrollQR},
		{pattern: "POST /enroll/confirm", use: "POST /api/v1/me/mfa/totp/confirm", handle: (*pageCall).enrollConfirm},
		// One's own account.
		{pattern: "GET /account", use: "GET /api/v1/me/app-passwords", handle: (*pageCall).account},
		{pattern: "POST /account/password", use: "PUT /api/v1/me/password", handle: (*pageCall).changePassword},
		{pattern: "GET /account/mfa/off", use: "GET /api/v1/me", handle: (*pageCall).mfaOffConfirm},
		{pattern: "POST /account/mfa/off", use: "DELETE /api/v1/me/mfa", handle: (*pageCall).mfaOff},
		{pattern: "POST /account/app-passwords", use: "POST /api/v1/me/app-passwords", handle: (*pageCall).createAppPassword},
		{pattern: "GET /account/app-passwords/{id}/revoke", use: "GET /api/v1/me/app-passwords", handle: (*pageCall).revokeAppPasswordConfirm},
		{pattern: "POST /account/app-passwords/{id}/revoke", use: "DELETE /api/v1/me/app-passwords/{id}", handle: (*pageCall).revokeAppPassword},
		{pattern: "POST /account/backup-codes", use: "POST /api/v1/me/backup-codes", handle: (*pageCall).backupGenerate},
		{pattern: "POST /account/backup-codes.txt", handle: (*pageCall).backupDownload},
		// Confirming it is you before a security change.
		{pattern: "POST /reauth", use: "POST /api/v1/session/reauth", handle: (*pageCall).reauth},
		// The admin console.
		{pattern: "GET /admin", use: "GET /api/v1/users", handle: (*pageCall).console},
		{pattern: "POST /admin/users", use: "POST /api/v1/users", handle: (*pageCall).createUser},
		{pattern: "POST /admin/policy", use: "PUT /api/v1/policy", handle: (*pageCall).setPolicy},
		{pattern: "POST /admin/sessions/{id}/end", use: "DELETE /api/v1/sessions/{id}", handle: (*pageCall).endSession},
		{pattern: "GET /admin/users/{user}", use: "GET /api/v1/users/{user}", handle: (*pageCall).adminUser},
		{pattern: "POST /admin/users/{user}/disable", use: "PATCH /api/v1/users/{user}", handle: (*pageCall).disableUser},
		{pattern: "POST /admin/users/{user}/enable", use: "PATCH /api/v1/users/{user}", handle: (*pageCall).enableUser},
		{pattern: "GET /admin/users/{user}/delete", use: "GET /api/v1/users/{user}", handle: (*pageCall).deleteUserConfirm},
		{pattern: "POST /admin/users/{user}/delete", use: "DELETE /api/v1/users/{user}", handle: (*pageCall).deleteUser},
		{pattern: "POST /admin/users/{user}/password", use: "PUT /api/v1/users/{user}/password", handle: (*pageCall).setUserPassword},
		{pattern: "POST /admin/users/{user}/mfa/reset", use: "POST /api/v1/users/{user}/mfa/reset", handle: (*pageCall).resetUserMFA},
		{pattern: "POST /admin/users/{user}/mfa/off", use: "DELETE /api/v1/users/{user}/mfa", handle: (*pageCall).disableUserMFA},
		{pattern: "POST /admin/users/{user}/code", use: "POST /api/v1/users/{user}/backup-code", handle: (*pageCall).issueCode},
		{pattern: "POST /admin/users/{user}/app-passwords/{id}/revoke", use: "DELETE /api/v1/users/{user}/app-passwords/{id}",
			handle: (*pageCall).revokeUserAppPassword},
		// The audit log and the API tokens.
		{pattern: "GET /admin/audit", use: "GET /api/v1/audit", handle: (*pageCall).audit},
		{pattern: "GET /admin/audit/export", use: "GET /api/v1/audit/export", handle: (*pageCall).auditExport},
		{pattern: "GET /admin/tokens", use: "GET /api/v1/tokens", handle: func(c *pageCall) { c.renderTokens(tokensPage{}) }},
		{pattern: "POST /admin/tokens", use: "POST /api/v1/tokens", handle: (*pageCall).createToken},
		{pattern: "POST /admin/tokens/{id}/revoke", use: "DELETE /api/v1/tokens/{id}", handle: (*pageCall).revokeToken},
	}
}

// ServeHTTP serves a page with the security headers every page carries.
func (p *webPages) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	p.headers(w.Header())
	p.mux.ServeHTTP(w, r)
}

// headers are set on every page and asset: no inline script or style, no
// framing, no referrer leaking a path, no sniffing, HTTPS only once seen.
func (p *webPages) headers(h http.Header) {
	h.Set("Content-Security-Policy", "default-src 'self'; frame-ancestors 'none'; form-action 'self'; base-uri 'none'")
	h.Set("X-Content-Type-Options", "nosniff")
	h.Set("Referrer-Policy", "no-referrer")
	h.Set("X-Frame-Options", "DENY")
	h.Set("Content-Language", "en")
	h.Set("Cache-Control", "no-store")
	if !p.srv.cfg.Plain {
		h.Set("Strict-Transport-Security", "max-age=63072000")
	}
}

// parseTemplates pairs the layout with each page template.
func (p *webPages) parseTemplates() error {
	layout, err := template.New("layout.html").Funcs(templateFuncs).ParseFS(templateFS, "templates/layout.html")
	if err != nil {
		return err
	}
	names, err := fs.Glob(templateFS, "templates/*.html")
	if err != nil {
		return err
	}
	for _, n := range names {
		name := strings.TrimSuffix(strings.TrimPrefix(n, "templates/"), ".html")
		if name == "layout" {
			continue
		}
		t, err := template.Must(layout.Clone()).ParseFS(templateFS, n)
		if err != nil {
			return err
		}
		p.pages[name] = t
	}
	return nil
}

// brokenPage is the answer when a page cannot be rendered at all.
func (c *pageCall) brokenPage() {
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.WriteHeader(http.StatusInternalServerError)
	io.WriteString(c.w, `<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Something went wrong · postern</title>`+
		`<link rel="stylesheet" href="/static/style.css"></head><body><main data-page="error"><h1>Something went wrong</h1>`+
		`<p>The server could not show this page. Nothing you did caused it; try again, and tell your administrator if it keeps happening.</p>`+
		`<p><a href="/account">Go to your account</a></p></main></body></html>`)
}

// view is what every template gets.
type view struct {
	Title string
	Page  string
	Me    *authstore.User // nil before sign-in
	CSRF  string
	Flash string
	Error string
	Data  any
}

// render writes a page with status.
func (c *pageCall) render(status int, page, title string, data any) {
	t := c.p.pages[page]
	if t == nil {
		c.p.log.Error("no such page template", "page", page)
		c.brokenPage()
		return
	}
	v := view{Title: title, Page: page, Me: c.me, CSRF: c.csrf(), Flash: c.flash, Error: c.errMsg, Data: data}
	var buf bytes.Buffer
	if err := t.ExecuteTemplate(&buf, "layout.html", v); err != nil {
		c.p.log.Error("render page", "page", page, "err", err)
		c.brokenPage()
		return
	}
	c.w.Header().Set("Content-Type", "text/html; charset=utf-8")
	c.w.WriteHeader(status)
	c.w.Write(buf.Bytes())
}
