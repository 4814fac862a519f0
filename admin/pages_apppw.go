package admin

import (
	"net/http"
	"net/url"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// appPasswordScopes are the protocols an app password may be limited to.
var appPasswordScopes = []string{"imap", "pop3", "smtp", "caldav", "carddav", "activesync"}

// newAppPassword is a created app password, shown once with the settings
// an app needs.
type newAppPassword struct {
	api.NewAppPasswordResponse
	Username string
	Mail     []MailSetting
}

// appPasswordRequest is the create form as the operation takes it; msg
// says what is wrong with the form.
func appPasswordRequest(f url.Values) (in api.NewAppPasswordRequest, msg string) {
	in.Name = f.Get("name")
	if scopes := f["scope"]; len(scopes) > 0 && len(scopes) < len(appPasswordScopes) {
		for _, s := range scopes {
			in.Scopes = append(in.Scopes, authstore.Protocol(s))
		}
	}
	if exp := f.Get("expires"); exp != "" {
		day, err := endOfDay(exp)
		if err != nil {
			return in, "The expiry date is not a date. Leave it empty for an app password that does not expire."
		}
		in.ExpiresAt = &day
	}
	return in, ""
}

// endOfDay is the end of a date a form's date field gives (YYYY-MM-DD),
// in UTC.
func endOfDay(date string) (time.Time, error) {
	day, err := time.Parse(time.DateOnly, date)
	return day.Add(24 * time.Hour).UTC(), err
}

func (c *pageCall) createAppPassword() {
	in, msg := appPasswordRequest(c.form)
	if msg != "" {
		c.formError(msg)
		return
	}
	out, err := c.p.srv.createAppPassword(c.ctx, c.who, c.who.User, in)
	if err != nil {
		c.actionFailed(err)
		return
	}
	c.render(http.StatusOK, "app-password-new", "Your new app password", newAppPassword{out, c.who.User, c.p.mail})
}

func (c *pageCall) revokeAppPasswordConfirm() {
	aps, err := c.appPasswords(c.who.User)
	if err != nil {
		c.failed(err)
		return
	}
	for _, ap := range aps.Active {
		if ap.ID == c.param("id") {
			c.render(http.StatusOK, "confirm", "Revoke this app password?", confirmPage{
				Question: "Revoke the app password “" + ap.Name + "”?",
				Text:     "Apps using it are signed out now and can no longer sign in with it. This cannot be undone.",
				Action:   "/account/app-passwords/" + url.PathEscape(ap.ID) + "/revoke", Button: "Revoke", Back: "/account",
			})
			return
		}
	}
	c.fail(http.StatusNotFound, "notfound", "")
}

func (c *pageCall) revokeAppPassword() {
	if err := c.p.srv.revokeAppPassword(c.ctx, c.who, c.who.User, c.param("id")); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/account", "revoked")
}

// appPasswordsShown are the app passwords of a user as the pages show
// them: those not revoked, each with how many live sessions use it, and
// how many were revoked (so that an empty list says why).
type appPasswordsShown struct {
	Active  []api.AppPasswordInfo
	Revoked int
}

// appPasswords reads user's app passwords.
func (c *pageCall) appPasswords(user string) (appPasswordsShown, error) {
	var out appPasswordsShown
	aps, err := c.p.srv.listAppPasswords(c.ctx, c.who, user)
	if err != nil {
		return out, err
	}
	for _, ap := range aps.AppPasswords {
		if ap.Revoked.IsZero() {
			out.Active = append(out.Active, ap)
		} else {
			out.Revoked++
		}
	}
	return out, nil
}
