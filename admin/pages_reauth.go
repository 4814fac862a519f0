package admin

import (
	"net/http"
	"net/url"
	"slices"
	"strings"
)

// Re-verification: when the API refuses an action with reauth_required, the
// page asks for a code (or the password, for someone without a second
// factor) right there, keeping the action's form in hidden fields, and runs
// the action once the API accepted the verification.

func (p *Pages) reauthRoutes() []pageRoute {
	return []pageRoute{{"POST /reauth", (*pageCall).reauth}}
}

// reauthForm is the prompt and the action it completes.
type reauthForm struct {
	Action      string
	Fields      []reauthField
	UseCode     bool
	Description string
}

type reauthField struct{ Name, Value string }

// actionFailed handles a refused action: a re-verification prompt when the
// API asks for one, otherwise the error page.
func (c *pageCall) actionFailed(err error) {
	if errorCode(err) != "reauth_required" {
		c.apiFailed(err)
		return
	}
	c.askReauth(c.r.URL.EscapedPath(), c.r.PostForm, http.StatusForbidden)
}

func (c *pageCall) askReauth(action string, form url.Values, status int) {
	if !c.signedIn() {
		return
	}
	f := reauthForm{Action: action, UseCode: c.hasSecondFactor()}
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == CSRFField || name == "reauth_code" || name == "reauth_password" {
			continue
		}
		for _, v := range form[name] {
			f.Fields = append(f.Fields, reauthField{Name: name, Value: v})
		}
	}
	c.render(status, "reauth", "Confirm it is you", f)
}

// hasSecondFactor reports whether the signed-in user verifies with a code.
func (c *pageCall) hasSecondFactor() bool {
	return c.me != nil && c.me.MFA.Enabled
}

func (c *pageCall) reauth() {
	action := c.r.PostFormValue("action")
	form := url.Values{}
	for name, vs := range c.r.PostForm {
		if field, ok := strings.CutPrefix(name, "f."); ok {
			form[field] = vs
		}
	}
	if !c.replayable(action) {
		c.fail(http.StatusBadRequest, "invalid", "The change to confirm is not one this page can make.")
		return
	}
	in := map[string]string{"code": c.r.PostFormValue("reauth_code")}
	if pw := c.r.PostFormValue("reauth_password"); pw != "" {
		in = map[string]string{"password": pw}
	}
	if err := c.api(http.MethodPost, "/session/reauth", in, nil); err != nil {
		if errorCode(err) == "reauth_required" || refused(err) && answerStatus(err) != http.StatusUnauthorized {
			c.errMsg = "That did not work. Check it and try again."
			c.askReauth(action, form, http.StatusUnauthorized)
			return
		}
		c.apiFailed(err)
		return
	}
	c.replay(action, form)
}

// replayable reports whether action is a page that changes something and
// may follow a re-verification.
func (c *pageCall) replayable(action string) bool {
	if !localPath(action) || action == "/reauth" || strings.HasPrefix(action, "/login") {
		return false
	}
	req, err := http.NewRequest(http.MethodPost, action, nil)
	if err != nil {
		return false
	}
	_, pattern := c.p.mux.Handler(req)
	return strings.HasPrefix(pattern, "POST ")
}

// replay runs the page action with its original form, on the session as it
// is after the re-verification (whose cookie may have rotated).
func (c *pageCall) replay(action string, form url.Values) {
	form.Set(CSRFField, c.csrf())
	req := c.r.Clone(c.r.Context())
	u, err := url.Parse(action)
	if err != nil { // replayable parsed it already
		c.fail(http.StatusBadRequest, "invalid", "")
		return
	}
	req.URL = &url.URL{Path: u.Path, RawPath: u.RawPath}
	req.RequestURI = action
	req.Body = http.NoBody
	req.Form, req.PostForm = nil, form
	req.Header = c.r.Header.Clone()
	req.Header.Del("Cookie")
	for name, value := range c.cookies {
		req.AddCookie(&http.Cookie{Name: name, Value: value})
	}
	c.p.mux.ServeHTTP(c.w, req)
}
