package admin

import (
	"net/http"
	"net/url"

	"github.com/postern-dev/postern/admin/api"
)

// accountPage is the self-service page.
type accountPage struct {
	MFA          api.MFAResponse
	AppPasswords appPasswordsShown
	Activity     []activityLine
	Scopes       []string
}

func (c *pageCall) account() {
	s, who := c.p.srv, c.who
	d := accountPage{Scopes: appPasswordScopes}
	mfa, err := s.mfaStatus(c.ctx, who, who.User)
	var act api.EventList
	if err == nil {
		act, err = s.activity(c.ctx, who, url.Values{})
	}
	if err == nil {
		d.AppPasswords, err = c.appPasswords(who.User)
	}
	if err != nil {
		c.failed(err)
		return
	}
	d.MFA, d.Activity = mfa, describeEvents(act.Events, 20)
	c.render(http.StatusOK, "account", "Your account", d)
}

func (c *pageCall) changePassword() {
	f := c.form
	if f.Get("new_password") != f.Get("confirm_password") {
		c.formError("The new password and its confirmation differ. Type the same new password twice.")
		return
	}
	in := api.ChangePasswordRequest{CurrentPassword: f.Get("current_password"), NewPassword: f.Get("new_password"),
		RevokeAppPasswords: f.Get("revoke_app_passwords") == "on"}
	if err := c.p.srv.changePassword(c.ctx, c.who, in); err != nil {
		c.actionFailed(err)
		return
	}
	if in.RevokeAppPasswords {
		c.done("/account", "passwordall")
		return
	}
	c.done("/account", "password")
}

func (c *pageCall) mfaOffConfirm() {
	c.render(http.StatusOK, "confirm", "Turn off two-step verification?", confirmPage{
		Question: "Turn off two-step verification?",
		Text:     "Signing in will need only your password. Your backup codes stop working; your app passwords keep working.",
		Action:   "/account/mfa/off", Button: "Turn off", Back: "/account",
	})
}

func (c *pageCall) mfaOff() {
	if err := c.p.srv.disableOwnMFA(c.ctx, c.who); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/account", "mfaoff")
}

// confirmPage asks before a change that cannot be undone.
type confirmPage struct {
	Question, Text, Action, Button, Back string
}
