package admin

import (
	"context"
	"fmt"
	"net/http"
	"net/url"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// userPage is one user in the console.
type userPage struct {
	User         authstore.User
	MFA          api.MFAResponse
	AppPasswords appPasswordsShown
	Sessions     []api.LiveSession
	CodeTTLs     []codeTTL // how long a one-time code may stay valid
}

// codeTTL is one choice of how long an admin-issued code stays valid; an
// empty Value is the server's standard time.
type codeTTL struct{ Value, Label string }

// codeTTLs are the choices the console offers, the standard time first.
func (p *webPages) codeTTLs() []codeTTL {
	std := p.srv.cfg.AdminCodeTTL
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

// user is the user the page is about, as the path names them.
func (c *pageCall) user() string { return c.param("user") }

// userPagePath is the console page of that user.
func (c *pageCall) userPagePath() string { return "/admin/users/" + url.PathEscape(c.user()) }

func (c *pageCall) adminUser() {
	s, who := c.p.srv, c.who
	var d userPage
	var err error
	if d.User, err = s.getUser(c.ctx, who, c.user()); err == nil {
		d.MFA, err = s.mfaStatus(c.ctx, who, c.user())
	}
	if err == nil {
		d.AppPasswords, err = c.appPasswords(c.user())
	}
	if err != nil {
		c.failed(err)
		return
	}
	d.Sessions, d.CodeTTLs = s.liveSessions(who, c.user()).Sessions, c.p.codeTTLs()
	c.render(http.StatusOK, "admin-user", d.User.Name, d)
}

func (c *pageCall) disableUser() { c.setDisabled(true) }
func (c *pageCall) enableUser()  { c.setDisabled(false) }

func (c *pageCall) setDisabled(disabled bool) {
	if _, err := c.p.srv.updateUser(c.ctx, c.who, c.user(), api.UpdateUserRequest{Disabled: &disabled}); err != nil {
		c.actionFailed(err)
		return
	}
	c.done(c.userPagePath(), "user")
}

// userAction runs one change on the user and returns to the user's page.
func (c *pageCall) userAction(op func(ctx context.Context, who *principal, user string) error, flash string) {
	if err := op(c.ctx, c.who, c.user()); err != nil {
		c.actionFailed(err)
		return
	}
	c.done(c.userPagePath(), flash)
}

func (c *pageCall) resetUserMFA()   { c.userAction(c.p.srv.resetMFA, "mfareset") }
func (c *pageCall) disableUserMFA() { c.userAction(c.p.srv.disableUserMFA, "mfaoff") }

func (c *pageCall) revokeUserAppPassword() {
	c.userAction(func(ctx context.Context, who *principal, user string) error {
		return c.p.srv.revokeAppPassword(ctx, who, user, c.param("id"))
	}, "revoked")
}

func (c *pageCall) deleteUserConfirm() {
	name := c.user()
	c.render(http.StatusOK, "confirm", "Delete this user?", confirmPage{
		Question: "Delete the user “" + name + "”?",
		Text:     "Their sessions end now, and their app passwords, two-step verification and backup codes are removed. This cannot be undone.",
		Action:   c.userPagePath() + "/delete", Button: "Delete", Back: c.userPagePath(),
	})
}

func (c *pageCall) deleteUser() {
	if err := c.p.srv.deleteUser(c.ctx, c.who, c.user()); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/admin", "deleted")
}

func (c *pageCall) setUserPassword() {
	in := api.SetPasswordRequest{Password: c.form.Get("password"), RevokeAppPasswords: c.form.Get("revoke_app_passwords") == "on"}
	c.userAction(func(ctx context.Context, who *principal, user string) error {
		return c.p.srv.setPassword(ctx, who, user, in)
	}, "userpassword")
}

// issuedCode is an admin-issued one-time code, shown once.
type issuedCode struct {
	api.AdminCodeResponse
	User string
}

func (c *pageCall) issueCode() {
	// The operation checks the ttl the form chose.
	out, err := c.p.srv.issueAdminCode(c.ctx, c.who, c.user(), api.AdminCodeRequest{TTL: c.form.Get("ttl")})
	if err != nil {
		c.actionFailed(err)
		return
	}
	c.render(http.StatusOK, "admin-code", "One-time code", issuedCode{out, c.user()})
}
