package admin

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"

	"github.com/postern-dev/postern/admin/api"
)

// loginData fills the sign-in and second-step forms.
type loginData struct {
	Username string
	Next     string
	Backup   bool
}

// safeNext is where to go after signing in: a local path, never another
// site, and never back into the sign-in.
func safeNext(next string) string {
	if !localPath(next) || strings.HasPrefix(next, "/login") {
		return "/account"
	}
	return next
}

// localPath reports whether s is a path on this site that no browser can
// read as another one (W7): printable characters only (browsers drop tabs
// and newlines, so "/\t/host" would become "//host"), no backslash (read
// as "/"), no scheme or host after parsing, and neither s nor its decoded
// path starts with "//".
func localPath(s string) bool {
	if !strings.HasPrefix(s, "/") || strings.HasPrefix(s, "//") || !printablePath(s) {
		return false
	}
	u, err := url.Parse(s)
	if err != nil || u.Scheme != "" || u.Host != "" || u.User != nil || u.Opaque != "" {
		return false
	}
	return !strings.HasPrefix(u.Path, "//") && printablePath(u.Path)
}

// printablePath reports whether s holds only printable characters other
// than the backslash and the space (a path taken from a URL has its spaces
// encoded).
func printablePath(s string) bool {
	return utf8.ValidString(s) && !strings.ContainsFunc(s, func(r rune) bool { return r == '\\' || !unicode.IsPrint(r) || r == ' ' })
}

func (c *pageCall) loginForm() {
	c.render(http.StatusOK, "login", "Sign in", loginData{Next: c.r.URL.Query().Get("next")})
}

func (c *pageCall) login() {
	d := loginData{Username: c.form.Get("username"), Next: c.form.Get("next")}
	sess, err := c.p.srv.signIn(c.ctx, c.who, sessionCookie(c.r), d.Username, c.form.Get("password"))
	if err != nil {
		if codeOf(err) == api.Unauthenticated || mistyped(err) {
			c.errMsg = "The username or password is not right. Check them and try again."
			c.render(http.StatusUnauthorized, "login", "Sign in", d)
			return
		}
		c.failed(err)
		return
	}
	setSessionCookie(c.w, sess)
	c.afterLogin(sess, d.Next)
}

// afterLogin sends the browser to the step the new session is at.
func (c *pageCall) afterLogin(sess *session, next string) {
	switch sess.State {
	case stateSecondFactor:
		path := "/login/code"
		if next != "" {
			path += "?next=" + url.QueryEscape(next)
		}
		c.redirect(path)
	case stateEnroll:
		c.redirect("/enroll")
	default:
		// Under the organisation's policy, a user without a second factor
		// is led through enrollment even while the grace period lets
		// them skip it.
		if m, err := c.p.srv.mfaStatus(c.ctx, c.who, sess.User); err == nil && m.Required && !m.Enabled {
			c.redirect("/enroll")
			return
		}
		c.redirect(safeNext(next))
	}
}

func (c *pageCall) codeForm() {
	q := c.r.URL.Query()
	c.render(http.StatusOK, "code", "Two-step verification", loginData{Next: q.Get("next"), Backup: q.Get("backup") == "1"})
}

func (c *pageCall) code() {
	sess, res, err := c.p.srv.secondFactor(c.ctx, c.who, c.form.Get("code"))
	if err != nil {
		c.codeFailed(err)
		return
	}
	setSessionCookie(c.w, sess)
	if out := secondFactorAnswer(sess, res); out.UsedBackupCode {
		c.as(c.who.rotated(sess))
		c.render(http.StatusOK, "backup-notice", "You have used a backup code", out)
		return
	}
	c.redirect(safeNext(c.form.Get("next")))
}

// codeFailed answers a second step that did not sign in: without the
// first step's session the sign-in starts over, a wrong code is said on
// the form.
func (c *pageCall) codeFailed(err error) {
	d := loginData{Next: c.form.Get("next"), Backup: c.form.Get("backup") == "1"}
	switch code := codeOf(err); {
	case code == api.Unauthenticated && sessionCookie(c.r) == "": // secret-compare: ok (an API error code)
		c.done("/login", "expired")
	case code == api.Unauthenticated || mistyped(err): // secret-compare: ok (an API error code)
		c.errMsg = "That code did not work. Codes change every 30 seconds: type the one your app shows now, or use a backup code."
		c.render(http.StatusUnauthorized, "code", "Two-step verification", d)
	default:
		c.failed(err)
	}
}

func (c *pageCall) logout() {
	if err := c.p.srv.signOut(c.ctx, c.who); err != nil {
		c.failed(err)
		return
	}
	clearCookie(c.w)
	c.done("/login", "signedout")
}

// logoutRefused: a browser whose session is gone is signed out already.
func (c *pageCall) logoutRefused(err error) {
	if codeOf(err) == api.Unauthenticated {
		c.done("/login", "signedout")
		return
	}
	c.failed(err)
}
