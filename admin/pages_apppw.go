package admin

import (
	"net/http"
	"net/url"
	"time"
)

func (p *Pages) appPasswordRoutes() []pageRoute {
	return []pageRoute{
		{"POST /account/app-passwords", (*pageCall).createAppPassword},
		{"GET /account/app-passwords/{id}/revoke", (*pageCall).revokeAppPasswordConfirm},
		{"POST /account/app-passwords/{id}/revoke", (*pageCall).revokeAppPassword},
	}
}

// appPasswordScopes are the protocols an app password may be limited to.
var appPasswordScopes = []string{"imap", "pop3", "smtp", "caldav", "carddav"}

// newAppPassword is a created app password, shown once.
type newAppPassword struct {
	AppPassword apiAppPassword `json:"app_password"`
	Secret      string         `json:"secret"`
	Username    string         `json:"-"`
	Mail        []MailSetting  `json:"-"`
}

// appPasswordRequest is the create form as the API takes it.
func appPasswordRequest(f url.Values) (map[string]any, string) {
	in := map[string]any{"name": f.Get("name")}
	if scopes := f["scope"]; len(scopes) > 0 && len(scopes) < len(appPasswordScopes) {
		in["scopes"] = scopes
	}
	if exp := f.Get("expires"); exp != "" {
		day, err := time.Parse(time.DateOnly, exp)
		if err != nil {
			return nil, "The expiry date is not a date. Leave it empty for an app password that does not expire."
		}
		in["expires_at"] = day.Add(24 * time.Hour).UTC().Format(time.RFC3339)
	}
	return in, ""
}

func (c *pageCall) createAppPassword() {
	in, msg := appPasswordRequest(c.r.PostForm)
	if msg != "" {
		c.formError(msg)
		return
	}
	var out newAppPassword
	if err := c.api(http.MethodPost, "/me/app-passwords", in, &out); err != nil {
		c.actionFailed(err)
		return
	}
	c.signedIn()
	out.Username, out.Mail = c.me.Name, c.p.cfg.Mail
	c.render(http.StatusOK, "app-password-new", "Your new app password", out)
}

// appPasswordByID finds one of the signed-in user's app passwords.
func (c *pageCall) appPasswordByID(id string) (apiAppPassword, bool) {
	aps, err := c.appPasswords("/me/app-passwords")
	if err != nil {
		c.apiFailed(err)
		return apiAppPassword{}, false
	}
	for _, ap := range aps.Active {
		if ap.ID == id {
			return ap, true
		}
	}
	c.fail(http.StatusNotFound, "notfound", "")
	return apiAppPassword{}, false
}

func (c *pageCall) revokeAppPasswordConfirm() {
	if !c.signedIn() {
		return
	}
	ap, ok := c.appPasswordByID(c.r.PathValue("id"))
	if !ok {
		return
	}
	c.render(http.StatusOK, "confirm", "Revoke this app password?", confirmPage{
		Question: "Revoke the app password “" + ap.Name + "”?",
		Text:     "Apps using it are signed out now and can no longer sign in with it. This cannot be undone.",
		Action:   "/account/app-passwords/" + url.PathEscape(ap.ID) + "/revoke", Button: "Revoke", Back: "/account",
	})
}

func (c *pageCall) revokeAppPassword() {
	if err := c.api(http.MethodDelete, "/me/app-passwords/"+url.PathEscape(c.r.PathValue("id")), nil, nil); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/account", "revoked")
}

// appPasswordsShown are the app passwords of /me or of a user as the pages
// show them: those not revoked, each with how many live sessions use it,
// and how many were revoked (so that an empty list says why).
type appPasswordsShown struct {
	Active  []apiAppPassword
	Revoked int
}

// appPasswords reads the app passwords at an API path.
func (c *pageCall) appPasswords(path string) (appPasswordsShown, error) {
	var aps appPasswordList
	var out appPasswordsShown
	if err := c.api(http.MethodGet, path, nil, &aps); err != nil {
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
