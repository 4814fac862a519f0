package admin

import (
	"net/http"
)

func (p *Pages) accountRoutes() []pageRoute {
	return []pageRoute{
		{"GET /account", (*pageCall).account},
		{"POST /account/password", (*pageCall).changePassword},
		{"GET /account/mfa/off", (*pageCall).mfaOffConfirm},
		{"POST /account/mfa/off", (*pageCall).mfaOff},
	}
}

// accountPage is the self-service page.
type accountPage struct {
	MFA          apiMFA
	AppPasswords appPasswordsShown
	Activity     []activityLine
	Scopes       []string
}

func (c *pageCall) account() {
	if !c.signedIn() {
		return
	}
	var d accountPage
	var act struct {
		Events []apiEvent `json:"events"`
	}
	if !c.getAll(apiGet{"/me/mfa", &d.MFA}, apiGet{"/me/activity", &act}) {
		return
	}
	var err error
	if d.AppPasswords, err = c.appPasswords("/me/app-passwords"); err != nil {
		c.apiFailed(err)
		return
	}
	d.Activity, d.Scopes = describeEvents(act.Events, 20), appPasswordScopes
	c.render(http.StatusOK, "account", "Your account", d)
}

func (c *pageCall) changePassword() {
	f := c.r.PostForm
	if f.Get("new_password") != f.Get("confirm_password") {
		c.formError("The new password and its confirmation differ. Type the same new password twice.")
		return
	}
	revoke := f.Get("revoke_app_passwords") == "on"
	err := c.api(http.MethodPut, "/me/password", map[string]any{
		"current_password": f.Get("current_password"), "new_password": f.Get("new_password"), "revoke_app_passwords": revoke,
	}, nil)
	if err != nil {
		c.actionFailed(err)
		return
	}
	if revoke {
		c.done("/account", "passwordall")
		return
	}
	c.done("/account", "password")
}

func (c *pageCall) mfaOffConfirm() {
	if !c.signedIn() {
		return
	}
	c.render(http.StatusOK, "confirm", "Turn off two-step verification?", confirmPage{
		Question: "Turn off two-step verification?",
		Text:     "Signing in will need only your password. Your backup codes stop working; your app passwords keep working.",
		Action:   "/account/mfa/off", Button: "Turn off", Back: "/account",
	})
}

func (c *pageCall) mfaOff() {
	if err := c.api(http.MethodDelete, "/me/mfa", nil, nil); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/account", "mfaoff")
}

// confirmPage asks before a change that cannot be undone.
type confirmPage struct {
	Question, Text, Action, Button, Back string
}

// formError shows a refusal the person can fix on the page they came from.
func (c *pageCall) formError(msg string) {
	c.fail(http.StatusUnprocessableEntity, "invalid", msg)
}
