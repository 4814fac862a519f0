package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"

	"github.com/postern-dev/postern/admin/api"
)

// pageCall is one page request: the browser's request, the answer being
// written, and the API session cookies as they change during the request
// (sign-in and re-verification rotate them).
type pageCall struct {
	p        *Pages
	w        http.ResponseWriter
	r        *http.Request
	cookies  map[string]string
	me       *apiUser
	flash    string
	errMsg   string
	formCSRF string
}

func (p *Pages) newCall(w http.ResponseWriter, r *http.Request) *pageCall {
	c := &pageCall{p: p, w: w, r: r, cookies: map[string]string{}}
	if r.Method == http.MethodPost && r.PostForm == nil {
		r.Body = http.MaxBytesReader(w, r.Body, MaxBody)
		r.ParseForm() // a malformed body leaves the form empty, which every handler refuses
	}
	for _, ck := range r.Cookies() {
		c.cookies[ck.Name] = ck.Value
	}
	c.flash = flashes[r.URL.Query().Get("done")]
	return c
}

// apiAnswer is what the API answered one in-process call.
type apiAnswer struct {
	status int
	header http.Header
	body   bytes.Buffer
}

func (a *apiAnswer) Header() http.Header         { return a.header }
func (a *apiAnswer) Write(p []byte) (int, error) { return a.body.Write(p) }
func (a *apiAnswer) WriteHeader(status int) {
	if a.status == 0 {
		a.status = status
	}
}

// errorCode is the API's error code of err, "" when err is no API answer.
func errorCode(err error) string { return string(api.CodeOf(err)) }

// api calls the JSON API as the browser would, decoding a 2xx answer into
// out (when not nil); any other answer is an *api.Error.
func (c *pageCall) api(method, path string, in, out any) error {
	var body io.Reader = http.NoBody
	if in != nil {
		data, err := json.Marshal(in)
		if err != nil {
			return err
		}
		body = bytes.NewReader(data)
	}
	req, err := http.NewRequestWithContext(c.r.Context(), method, "/api/v1"+path, body)
	if err != nil {
		return err
	}
	req.RemoteAddr, req.TLS, req.Host = c.r.RemoteAddr, c.r.TLS, c.r.Host
	for _, h := range []string{"Origin", "Sec-Fetch-Site", "User-Agent", "X-Forwarded-For"} {
		if v := c.r.Header.Get(h); v != "" {
			req.Header.Set(h, v)
		}
	}
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	req.Header.Set("Accept", "application/json")
	if tok := c.csrfFromForm(); tok != "" {
		req.Header.Set(csrfHeader, tok)
	}
	for name, value := range c.cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	ans := &apiAnswer{header: http.Header{}}
	c.p.cfg.API.ServeHTTP(ans, req)
	if ans.status == 0 {
		ans.status = http.StatusOK
	}
	c.takeCookies(ans.header)
	if ans.status >= 300 {
		ae := &api.Error{Status: ans.status}
		ae.RetryAfter, _ = strconv.Atoi(ans.header.Get("Retry-After"))
		var body api.ErrorBody
		if json.Unmarshal(ans.body.Bytes(), &body) == nil {
			ae.Code, ae.Message = body.Error.Code, body.Error.Message
		}
		return ae
	}
	if out == nil || ans.body.Len() == 0 {
		return nil
	}
	if raw, ok := out.(*[]byte); ok {
		*raw = bytes.Clone(ans.body.Bytes())
		return nil
	}
	return json.Unmarshal(ans.body.Bytes(), out)
}

// apiGet is one GET whose answer a page shows.
type apiGet struct {
	path string
	out  any
}

// getAll makes the GETs a page shows; on a refusal it renders the answer
// and reports false.
func (c *pageCall) getAll(gets ...apiGet) bool {
	for _, g := range gets {
		if err := c.api(http.MethodGet, g.path, nil, g.out); err != nil {
			c.apiFailed(err)
			return false
		}
	}
	return true
}

// takeCookies passes the API's cookies on to the browser and uses them for
// the rest of this request.
func (c *pageCall) takeCookies(h http.Header) {
	for _, line := range h.Values("Set-Cookie") {
		c.w.Header().Add("Set-Cookie", line)
		ck, err := http.ParseSetCookie(line)
		if err != nil {
			continue
		}
		if ck.MaxAge < 0 || ck.Value == "" {
			delete(c.cookies, ck.Name)
		} else {
			c.cookies[ck.Name] = ck.Value
		}
	}
}

// csrfFromForm is the CSRF token the page's form carried.
func (c *pageCall) csrfFromForm() string {
	if c.formCSRF != "" {
		return c.formCSRF
	}
	if c.r.Method == http.MethodPost {
		return c.r.PostFormValue(CSRFField)
	}
	return ""
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

// signedIn loads the signed-in user, or sends the browser to sign in and
// reports false.
func (c *pageCall) signedIn() bool {
	var me apiUser
	if err := c.api(http.MethodGet, "/me", nil, &me); err != nil {
		c.apiFailed(err)
		return false
	}
	c.me = &me
	return true
}

// apiFailed turns an API refusal into the page that says what to do.
func (c *pageCall) apiFailed(err error) {
	var ae *api.Error
	if !errors.As(err, &ae) {
		c.p.log.Error("page: API call", "path", c.r.URL.Path, "err", err)
		c.fail(http.StatusInternalServerError, "internal", "")
		return
	}
	switch {
	case ae.Status == http.StatusUnauthorized:
		if c.r.Method == http.MethodGet {
			c.redirect("/login?next=" + url.QueryEscape(c.r.URL.RequestURI()))
		} else {
			c.done("/login", "expired")
		}
	case ae.Status == http.StatusForbidden && ae.Message == errEnrollFirst.Message:
		c.redirect("/enroll")
	case ae.Code == "csrf":
		c.fail(http.StatusForbidden, "csrf", "")
	case ae.Status == http.StatusForbidden && ae.Code != "reauth_required":
		c.fail(http.StatusForbidden, "forbidden", "")
	case ae.Status == http.StatusTooManyRequests:
		wait := ""
		if ae.RetryAfter > 0 {
			wait = fmt.Sprintf("Try again in %d seconds.", ae.RetryAfter)
		}
		c.fail(http.StatusTooManyRequests, "throttled", wait)
	case ae.Status == http.StatusNotFound:
		c.fail(http.StatusNotFound, "notfound", "")
	case ae.Status >= 500:
		c.fail(http.StatusServiceUnavailable, "unavailable", "")
	default:
		c.fail(http.StatusBadRequest, "invalid", ae.Message)
	}
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
	"internal":    {Heading: "Something went wrong", Text: "The server could not finish this request. Nothing you did caused it; try again, and tell your administrator if it keeps happening.", Action: "Go to your account", Href: "/account"},
	"invalid":     {Heading: "That did not work", Text: "The server refused the change.", Action: "Go back to your account", Href: "/account"},
}

// fail renders an error page.
func (c *pageCall) fail(status int, kind, detail string) {
	e := errorPages[kind]
	if e.Href == "" {
		e.Href = c.r.URL.RequestURI()
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
