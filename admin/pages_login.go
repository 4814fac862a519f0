package admin

import (
	"net/http"
	"net/url"
	"strings"
	"unicode"
	"unicode/utf8"
)

func (p *Pages) loginRoutes() []pageRoute {
	return []pageRoute{
		{"GET /login", (*pageCall).loginForm},
		{"POST /login", (*pageCall).login},
		{"GET /login/code", (*pageCall).codeForm},
		{"POST /login/code", (*pageCall).code},
		{"POST /logout", (*pageCall).logout},
	}
}

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
	d := loginData{Username: c.r.PostFormValue("username"), Next: c.r.PostFormValue("next")}
	var out struct {
		State string `json:"state"`
	}
	err := c.api(http.MethodPost, "/session", map[string]string{"username": d.Username, "password": c.r.PostFormValue("password")}, &out)
	if err != nil {
		if refused(err) {
			c.errMsg = "The username or password is not right. Check them and try again."
			c.render(http.StatusUnauthorized, "login", "Sign in", d)
			return
		}
		c.apiFailed(err)
		return
	}
	c.afterLogin(out.State, d.Next)
}

// afterLogin sends the browser to the step the API says comes next.
func (c *pageCall) afterLogin(state, next string) {
	switch state {
	case "second_factor":
		path := "/login/code"
		if next != "" {
			path += "?next=" + urlQuery(next)
		}
		c.redirect(path)
	case "enroll":
		c.redirect("/enroll")
	default:
		// Under the organisation's policy, a user without a second factor
		// is led through enrollment even while the grace period lets
		// them skip it.
		var m apiMFA
		if err := c.api(http.MethodGet, "/me/mfa", nil, &m); err == nil && m.Required && !m.Enabled {
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

// codeResult is the second step's answer.
type codeResult struct {
	State           string `json:"state"`
	UsedBackupCode  bool   `json:"used_backup_code"`
	BackupCodesLeft int    `json:"backup_codes_left"`
}

func (c *pageCall) code() {
	d := loginData{Next: c.r.PostFormValue("next"), Backup: c.r.PostFormValue("backup") == "1"}
	var out codeResult
	if err := c.api(http.MethodPost, "/session/second-factor", map[string]string{"code": c.r.PostFormValue("code")}, &out); err != nil {
		if errorCode(err) == "unauthenticated" && !c.halfSignedIn() {
			c.done("/login", "expired")
			return
		}
		if refused(err) {
			c.errMsg = "That code did not work. Codes change every 30 seconds: type the one your app shows now, or use a backup code."
			c.render(http.StatusUnauthorized, "code", "Two-step verification", d)
			return
		}
		c.apiFailed(err)
		return
	}
	if out.UsedBackupCode {
		c.signedIn()
		c.render(http.StatusOK, "backup-notice", "You have used a backup code", out)
		return
	}
	c.redirect(safeNext(d.Next))
}

// halfSignedIn reports whether the browser still holds a session cookie
// (the password step happened and has not expired).
func (c *pageCall) halfSignedIn() bool { return c.cookies[CookieName] != "" }

func (c *pageCall) logout() {
	if err := c.api(http.MethodDelete, "/session", nil, nil); err != nil && answerStatus(err) != http.StatusUnauthorized {
		c.apiFailed(err)
		return
	}
	c.done("/login", "signedout")
}
