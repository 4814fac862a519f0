package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// pageCall is one page request: the browser's request, the answer being
// written, and the caller as its page route admitted it.
type pageCall struct {
	p    *webPages
	w    http.ResponseWriter
	r    *http.Request
	ctx  context.Context // r's, with the caller as the audit actor once admitted
	path string          // the page's escaped path: the action a re-verification completes
	uri  string          // the page's path and query
	form url.Values      // the POST form
	// params are the path's wildcards when the call is a replayed action;
	// nil: the request's own.
	params  map[string]string
	who     *principal      // the caller; without a credential on open pages
	me      *authstore.User // the signed-in user, for the layout; nil before sign-in
	flash   string
	errMsg  string
	release func() // frees the guess slot the admission took
}

func (p *webPages) newCall(w http.ResponseWriter, r *http.Request) *pageCall {
	c := &pageCall{p: p, w: w, r: r, ctx: r.Context(), path: r.URL.EscapedPath(), uri: r.URL.RequestURI(),
		who: p.srv.anonymous(r), release: func() {}}
	if r.Method == http.MethodPost {
		r.Body = http.MaxBytesReader(w, r.Body, maxBody)
		r.ParseForm() // a malformed body leaves the form empty, which every handler refuses
		c.form = r.PostForm
	}
	c.flash = flashes[r.URL.Query().Get("done")]
	return c
}

// serve admits the call through its route's declaration, then runs the
// page. who, when not nil, is the caller already known (a replayed
// action); otherwise the request's cookie names it.
func (c *pageCall) serve(rt *pageRoute, who *principal) {
	resolve := c.p.srv.pagePrincipal
	if who != nil {
		resolve = func(*http.Request) (*principal, error) { return who, nil }
	}
	p, ctx, release, err := c.p.srv.admit(rt.as, c.r, resolve, func() string { return c.form.Get(csrfField) })
	c.as(p)
	if err != nil {
		switch {
		case rt.refused != nil:
			rt.refused(c, err)
		case c.r.Method == http.MethodPost:
			c.actionFailed(err)
		default:
			c.failed(err)
		}
		return
	}
	c.ctx, c.release = ctx, release
	defer c.endGuess()
	rt.handle(c)
}

// as makes who the caller the page acts for and shows: a signed-in
// session gets the navigation.
func (c *pageCall) as(who *principal) {
	c.who, c.me = who, nil
	if who.Session != nil && who.Session.State != stateSecondFactor {
		c.me = &who.account
	}
}

// endGuess frees the admission's guess slot before the request ends.
func (c *pageCall) endGuess() {
	c.release()
	c.release = func() {}
}

// param is a wildcard of the page's path.
func (c *pageCall) param(name string) string {
	if c.params != nil {
		return c.params[name]
	}
	return c.r.PathValue(name)
}

// csrf is the CSRF token the forms of this page carry: the caller's
// session's, which changes when a sign-in step or a re-verification
// rotates it. An open page looks the cookie's session up without
// counting it as activity.
func (c *pageCall) csrf() string {
	if c.who.Session != nil {
		return c.who.Session.CSRF
	}
	id := sessionCookie(c.r)
	if len(id) != sessionIDLen {
		return ""
	}
	ws, err := c.p.srv.store.GetWebSession(c.ctx, id)
	if err != nil {
		return ""
	}
	return ws.CSRF
}

// redirect sends the browser to a page with 303 (after a POST, a GET).
func (c *pageCall) redirect(path string) {
	http.Redirect(c.w, c.r, path, http.StatusSeeOther)
}

// done redirects to a page that shows one of the fixed flash messages.
func (c *pageCall) done(path, flash string) {
	sep := "?"
	if strings.Contains(path, "?") {
		sep = "&"
	}
	c.redirect(path + sep + "done=" + url.QueryEscape(flash))
}

// actionFailed handles a refused action: a re-verification prompt when the
// declaration asks for one, otherwise the error page.
func (c *pageCall) actionFailed(err error) {
	if codeOf(err) != api.ReauthRequired {
		c.failed(err)
		return
	}
	c.askReauth(c.path, c.form, http.StatusForbidden)
}

// failed turns a refusal into the page that says what to do, by its code.
func (c *pageCall) failed(err error) {
	ae := asAPIError(err)
	switch ae.Code {
	case api.Unauthenticated:
		if c.r.Method == http.MethodGet {
			c.redirect("/login?next=" + url.QueryEscape(c.uri))
		} else {
			c.done("/login", "expired")
		}
	case codeEnrollFirst:
		c.redirect("/enroll")
	case api.CSRF:
		c.fail(http.StatusForbidden, "csrf", "")
	case api.Forbidden:
		c.fail(http.StatusForbidden, "forbidden", "")
	case api.Throttled:
		wait := ""
		if ae.RetryAfter > 0 {
			wait = fmt.Sprintf("Try again in %d seconds.", ae.RetryAfter)
		}
		c.fail(http.StatusTooManyRequests, "throttled", wait)
	case api.NotFound:
		c.fail(http.StatusNotFound, "notfound", "")
	case api.Unavailable:
		c.p.log.Error("page request failed", "path", c.r.URL.Path, "err", err)
		c.fail(http.StatusServiceUnavailable, "unavailable", "")
	default:
		c.fail(http.StatusBadRequest, "invalid", ae.Message)
	}
}

// codeOf is the code of err's answer: a store's error has one too.
func codeOf(err error) api.Code { return asAPIError(err).Code }

// mistyped reports whether err turns down what the person typed (a code,
// a password, a form field), as opposed to the session or the server.
func mistyped(err error) bool {
	switch asAPIError(err).Code {
	case api.Invalid, api.Conflict:
		return true
	}
	return false
}

// formError shows a refusal the person can fix on the page they came from.
func (c *pageCall) formError(msg string) {
	c.fail(http.StatusUnprocessableEntity, "invalid", msg)
}

// errorPage says in plain words what happened and the way forward.
type errorPage struct {
	Heading, Text, Action, Href string
	Detail                      string
}

var errorPages = map[string]errorPage{
	"notfound":    {Heading: "Page not found", Text: "There is no page at this address. It may have been moved, or the link was mistyped.", Action: "Go to your account", Href: "/account"},
	"forbidden":   {Heading: "Not allowed", Text: "Your account cannot open this page. Only administrators can change other people's accounts.", Action: "Go to your account", Href: "/account"},
	"csrf":        {Heading: "This form has expired", Text: "The form was sent from another site, or it is older than your current sign-in. Nothing was changed.", Action: "Start again", Href: "/account"},
	"throttled":   {Heading: "Too many attempts", Text: "There were too many attempts for this account or from your network. Wait a little and try again.", Action: "Back to sign-in", Href: "/login"},
	"unavailable": {Heading: "postern is unavailable", Text: "The server cannot read or write its store right now. Nothing was changed; try again in a minute.", Action: "Try again", Href: ""},
	"invalid":     {Heading: "That did not work", Text: "The server refused the change.", Action: "Go back to your account", Href: "/account"},
}

// fail renders an error page.
func (c *pageCall) fail(status int, kind, detail string) {
	e := errorPages[kind]
	if e.Href == "" {
		e.Href = c.uri
	}
	e.Detail = detail
	c.render(status, "error", e.Heading, e)
}

// flashes are the fixed notices a redirect may ask for with ?done=.
var flashes = map[string]string{
	"expired":      "Your session ended. Sign in again to go on.",
	"signedout":    "You have signed out.",
	"revoked":      "The app password was revoked, and the apps that used it were signed out.",
	"password":     "Your password was changed.",
	"userpassword": "The user's password was changed.",
	"passwordall":  "Your password was changed, and every app password was revoked.",
	"mfaoff":       "Two-step verification is off.",
	"user":         "The user was saved.",
	"deleted":      "The user was deleted.",
	"mfareset":     "Two-step verification was reset; the user sets it up again at the next sign-in.",
	"ended":        "The session was ended.",
	"policy":       "The organisation's two-step policy was saved.",
	"tokenrevoked": "The API token was revoked.",
	"enrolled":     "Two-step verification is on.",
}
