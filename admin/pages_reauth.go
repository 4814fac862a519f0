package admin

import (
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/postern-dev/postern/admin/api"
)

// Re-verification: when an action's declaration asks for a fresh
// verification, the page asks for a code (or the password, for someone
// without a second factor) right there, keeping the action's form in
// hidden fields, and runs the action once the verification is accepted.

// reauthForm is the prompt and the action it completes.
type reauthForm struct {
	Action      string
	Fields      []reauthField
	UseCode     bool
	Description string
}

type reauthField struct{ Name, Value string }

func (c *pageCall) askReauth(action string, form url.Values, status int) {
	f := reauthForm{Action: action, UseCode: c.me != nil && c.me.MFA.Enabled}
	names := make([]string, 0, len(form))
	for name := range form {
		names = append(names, name)
	}
	slices.Sort(names)
	for _, name := range names {
		if name == csrfField || name == "reauth_code" || name == "reauth_password" {
			continue
		}
		for _, v := range form[name] {
			f.Fields = append(f.Fields, reauthField{Name: name, Value: v})
		}
	}
	c.render(status, "reauth", "Confirm it is you", f)
}

func (c *pageCall) reauth() {
	action := c.form.Get("action")
	form := url.Values{}
	for name, vs := range c.form {
		if field, ok := strings.CutPrefix(name, "f."); ok {
			form[field] = vs
		}
	}
	rt, params, ok := c.p.replayable(action)
	if !ok {
		c.fail(http.StatusBadRequest, "invalid", "The change to confirm is not one this page can make.")
		return
	}
	code, password := c.form.Get("reauth_code"), c.form.Get("reauth_password")
	if password != "" {
		code = ""
	}
	sess, err := c.p.srv.reauth(c.ctx, c.who, code, password)
	if err != nil {
		if codeOf(err) == api.ReauthRequired || mistyped(err) {
			c.errMsg = "That did not work. Check it and try again."
			c.askReauth(action, form, http.StatusUnauthorized)
			return
		}
		c.failed(err)
		return
	}
	setSessionCookie(c.w, sess)
	c.replay(rt, action, params, form, c.who.rotated(sess))
}

// replayable finds the page route of action, a page that changes something
// and may follow a re-verification: a local path (W7, the same check as
// the sign-in's next) of a POST page other than the sign-in and the
// re-verification itself.
func (p *webPages) replayable(action string) (*pageRoute, map[string]string, bool) {
	if !localPath(action) || action == "/reauth" || strings.HasPrefix(action, "/login") {
		return nil, nil, false
	}
	u, err := url.Parse(action)
	if err != nil {
		return nil, nil, false
	}
	rt, params, ok := p.match(http.MethodPost, u.EscapedPath())
	if !ok || rt.pattern == "POST /reauth" {
		return nil, nil, false
	}
	return rt, params, true
}

// match finds the page route of method and an escaped path with its
// wildcards, as the page router would. A path with an empty, "." or ".."
// segment, which the router would first clean, matches none.
func (p *webPages) match(method, path string) (*pageRoute, map[string]string, bool) {
	segs := strings.Split(strings.TrimPrefix(path, "/"), "/")
	for i, seg := range segs {
		s, err := url.PathUnescape(seg)
		if err != nil || s == "" || s == "." || s == ".." {
			return nil, nil, false
		}
		segs[i] = s
	}
	for i := range p.table {
		m, pattern, _ := strings.Cut(p.table[i].pattern, " ")
		if m != method {
			continue
		}
		if params, ok := matchSegments(strings.Split(strings.TrimPrefix(pattern, "/"), "/"), segs); ok {
			return &p.table[i], params, true
		}
	}
	return nil, nil, false
}

// matchSegments matches a pattern's segments, where "{name}" takes any
// one segment, against a path's.
func matchSegments(pattern, segs []string) (map[string]string, bool) {
	if len(pattern) != len(segs) {
		return nil, false
	}
	params := map[string]string{}
	for i, want := range pattern {
		if name, ok := strings.CutPrefix(want, "{"); ok {
			params[strings.TrimSuffix(name, "}")] = segs[i]
		} else if want != segs[i] {
			return nil, false
		}
	}
	return params, true
}

// replay runs the page action with its original form, as the caller after
// the re-verification (whose session rotated), held to the action's own
// declaration.
func (c *pageCall) replay(rt *pageRoute, action string, params map[string]string, form url.Values, who *principal) {
	c.endGuess()
	form.Set(csrfField, who.Session.CSRF)
	u, _ := url.Parse(action) // replayable parsed it already
	next := &pageCall{p: c.p, w: c.w, r: c.r, ctx: c.r.Context(), path: u.EscapedPath(), uri: action,
		form: form, params: params, release: func() {}}
	next.serve(rt, who)
}
