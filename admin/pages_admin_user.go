package admin

import (
	"net/http"
	"net/url"
	"time"
)

func (p *Pages) adminUserRoutes() []pageRoute {
	return []pageRoute{
		{"GET /admin/users/{user}", (*pageCall).adminUser},
		{"POST /admin/users/{user}/disable", func(c *pageCall) { c.patchUser(map[string]any{"disabled": true}) }},
		{"POST /admin/users/{user}/enable", func(c *pageCall) { c.patchUser(map[string]any{"disabled": false}) }},
		{"GET /admin/users/{user}/delete", (*pageCall).deleteUserConfirm},
		{"POST /admin/users/{user}/delete", (*pageCall).deleteUser},
		{"POST /admin/users/{user}/password", (*pageCall).setUserPassword},
		{"POST /admin/users/{user}/mfa/reset", func(c *pageCall) { c.userAction(http.MethodPost, "/mfa/reset", "mfareset") }},
		{"POST /admin/users/{user}/mfa/off", func(c *pageCall) { c.userAction(http.MethodDelete, "/mfa", "mfaoff") }},
		{"POST /admin/users/{user}/code", (*pageCall).issueCode},
		{"POST /admin/users/{user}/app-passwords/{id}/revoke", func(c *pageCall) {
			c.userAction(http.MethodDelete, "/app-passwords/"+url.PathEscape(c.r.PathValue("id")), "revoked")
		}},
	}
}

// userPage is one user in the console.
type userPage struct {
	User         apiUser
	MFA          apiMFA
	AppPasswords []apiAppPassword
	Sessions     []apiSession
}

// userPath is the API path of the user the page is about.
func (c *pageCall) userPath() string { return "/users/" + url.PathEscape(c.r.PathValue("user")) }

// userPagePath is the console page of that user.
func (c *pageCall) userPagePath() string { return "/admin" + c.userPath() }

func (c *pageCall) adminUser() {
	if !c.signedInAdmin() {
		return
	}
	var d userPage
	var sessions struct {
		Sessions []apiSession `json:"sessions"`
	}
	if !c.getAll(apiGet{c.userPath(), &d.User}, apiGet{c.userPath() + "/mfa", &d.MFA},
		apiGet{"/sessions?user=" + url.QueryEscape(c.r.PathValue("user")), &sessions}) {
		return
	}
	var err error
	if d.AppPasswords, err = c.appPasswords(c.userPath()+"/app-passwords", d.User.Name); err != nil {
		c.apiFailed(err)
		return
	}
	d.Sessions = sessions.Sessions
	c.render(http.StatusOK, "admin-user", d.User.Name, d)
}

func (c *pageCall) patchUser(in map[string]any) {
	if err := c.api(http.MethodPatch, c.userPath(), in, nil); err != nil {
		c.actionFailed(err)
		return
	}
	c.done(c.userPagePath(), "user")
}

// userAction runs one change on the user and returns to the user's page.
func (c *pageCall) userAction(method, sub, flash string) {
	if err := c.api(method, c.userPath()+sub, nil, nil); err != nil {
		c.actionFailed(err)
		return
	}
	c.done(c.userPagePath(), flash)
}

func (c *pageCall) deleteUserConfirm() {
	if !c.signedInAdmin() {
		return
	}
	name := c.r.PathValue("user")
	c.render(http.StatusOK, "confirm", "Delete this user?", confirmPage{
		Question: "Delete the user “" + name + "”?",
		Text:     "Their sessions end now, and their app passwords, two-step verification and backup codes are removed. This cannot be undone.",
		Action:   c.userPagePath() + "/delete", Button: "Delete", Back: c.userPagePath(),
	})
}

func (c *pageCall) deleteUser() {
	if err := c.api(http.MethodDelete, c.userPath(), nil, nil); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/admin", "deleted")
}

func (c *pageCall) setUserPassword() {
	f := c.r.PostForm
	in := map[string]any{"password": f.Get("password"), "revoke_app_passwords": f.Get("revoke_app_passwords") == "on"}
	if err := c.api(http.MethodPut, c.userPath()+"/password", in, nil); err != nil {
		c.actionFailed(err)
		return
	}
	c.done(c.userPagePath(), "password")
}

// issuedCode is an admin-issued one-time code, shown once.
type issuedCode struct {
	User      string    `json:"-"`
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (c *pageCall) issueCode() {
	var out issuedCode
	if err := c.api(http.MethodPost, c.userPath()+"/backup-code", map[string]any{}, &out); err != nil {
		c.actionFailed(err)
		return
	}
	c.signedIn()
	out.User = c.r.PathValue("user")
	c.render(http.StatusOK, "admin-code", "One-time code", out)
}
