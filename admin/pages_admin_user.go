package admin

import (
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
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
	AppPasswords appPasswordsShown
	Sessions     []apiSession
	CodeTTLs     []codeTTL // how long a one-time code may stay valid
}

// codeTTL is one choice of how long an admin-issued code stays valid; an
// empty Value is the server's standard time.
type codeTTL struct{ Value, Label string }

// codeTTLs are the choices the console offers, the standard time first.
func (p *Pages) codeTTLs() []codeTTL {
	std := p.cfg.AdminCodeTTL
	if std <= 0 {
		std = authstore.DefaultAdminCodeTTL
	}
	out := []codeTTL{{"", spellTTL(std) + " (standard)"}}
	for _, d := range []time.Duration{time.Hour, 24 * time.Hour, 7 * 24 * time.Hour, 30 * 24 * time.Hour} {
		if d != std {
			out = append(out, codeTTL{ttlValue(d), spellTTL(d)})
		}
	}
	return out
}

// ttlValue spells d (whole hours) the way the API's ttl field reads it.
func ttlValue(d time.Duration) string {
	if d%(24*time.Hour) == 0 {
		return fmt.Sprintf("%dd", d/(24*time.Hour))
	}
	return fmt.Sprintf("%dh", d/time.Hour)
}

// spellTTL says d in days, hours or minutes.
func spellTTL(d time.Duration) string {
	n, unit := int64(d/time.Minute), "minute"
	switch {
	case d%(24*time.Hour) == 0:
		n, unit = int64(d/(24*time.Hour)), "day"
	case d%time.Hour == 0:
		n, unit = int64(d/time.Hour), "hour"
	}
	if n == 1 {
		return "1 " + unit
	}
	return fmt.Sprintf("%d %ss", n, unit)
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
	var sessions api.SessionList
	if !c.getAll(apiGet{c.userPath(), &d.User}, apiGet{c.userPath() + "/mfa", &d.MFA},
		apiGet{"/sessions?user=" + url.QueryEscape(c.r.PathValue("user")), &sessions}) {
		return
	}
	var err error
	if d.AppPasswords, err = c.appPasswords(c.userPath() + "/app-passwords"); err != nil {
		c.apiFailed(err)
		return
	}
	d.Sessions, d.CodeTTLs = sessions.Sessions, c.p.codeTTLs()
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
	c.done(c.userPagePath(), "userpassword")
}

// issuedCode is an admin-issued one-time code, shown once.
type issuedCode struct {
	User      string    `json:"-"`
	Code      string    `json:"code"`
	ExpiresAt time.Time `json:"expires_at"`
}

func (c *pageCall) issueCode() {
	var out issuedCode
	in := map[string]any{}
	if ttl := c.r.PostForm.Get("ttl"); ttl != "" {
		in["ttl"] = ttl // the API checks it
	}
	if err := c.api(http.MethodPost, c.userPath()+"/backup-code", in, &out); err != nil {
		c.actionFailed(err)
		return
	}
	c.signedIn()
	out.User = c.r.PathValue("user")
	c.render(http.StatusOK, "admin-code", "One-time code", out)
}
