package admin

import (
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/postern-dev/postern/admin/api"
)

func (p *Pages) adminRoutes() []pageRoute {
	return []pageRoute{
		{"GET /admin", (*pageCall).console},
		{"POST /admin/users", (*pageCall).createUser},
		{"POST /admin/policy", (*pageCall).setPolicy},
		{"POST /admin/sessions/{id}/end", (*pageCall).endSession},
	}
}

// signedInAdmin is signedIn for the console: a plain user gets the
// "not allowed" page.
func (c *pageCall) signedInAdmin() bool {
	if !c.signedIn() {
		return false
	}
	if !isAdmin(c.me) {
		c.fail(http.StatusForbidden, "forbidden", "")
		return false
	}
	return true
}

// consolePage is the admin console's front page.
type consolePage struct {
	Query    string
	Users    []apiUser
	Total    int
	Policy   apiPolicy
	Sessions []apiSession
}

func (c *pageCall) console() {
	if !c.signedInAdmin() {
		return
	}
	d := consolePage{Query: strings.TrimSpace(c.r.URL.Query().Get("q"))}
	var users struct {
		Users []apiUser `json:"users"`
	}
	var sessions api.SessionList
	if !c.getAll(apiGet{"/users", &users}, apiGet{"/policy", &d.Policy}, apiGet{"/sessions", &sessions}) {
		return
	}
	d.Total, d.Sessions = len(users.Users), sessions.Sessions
	q := strings.ToLower(d.Query)
	for _, u := range users.Users {
		if q == "" || strings.Contains(strings.ToLower(u.Name+" "+u.Display+" "+u.Email), q) {
			d.Users = append(d.Users, u)
		}
	}
	c.render(http.StatusOK, "admin", "Admin console", d)
}

// createdUser is a new account, with its generated password if any.
type createdUser struct {
	User     apiUser `json:"user"`
	Password string  `json:"password"`
}

func (c *pageCall) createUser() {
	f := c.r.PostForm
	in := map[string]any{"username": f.Get("username")}
	for _, k := range []string{"display_name", "email", "role", "password"} {
		if v := f.Get(k); v != "" {
			in[k] = v
		}
	}
	var out createdUser
	if err := c.api(http.MethodPost, "/users", in, &out); err != nil {
		c.actionFailed(err)
		return
	}
	if out.Password == "" {
		c.done("/admin/users/"+url.PathEscape(out.User.Name), "user")
		return
	}
	c.signedIn()
	c.render(http.StatusOK, "admin-user-created", "User created", out)
}

func (c *pageCall) setPolicy() {
	f := c.r.PostForm
	in := map[string]any{"mfa_required": f.Get("mfa_required") == "on"}
	if g := f.Get("grace_until"); g != "" && f.Get("mfa_required") == "on" {
		day, err := time.Parse(time.DateOnly, g)
		if err != nil {
			c.formError("The grace date is not a date (use the date picker, or YYYY-MM-DD).")
			return
		}
		in["grace_until"] = day.Add(24 * time.Hour).UTC().Format(time.RFC3339)
	}
	if err := c.api(http.MethodPut, "/policy", in, nil); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/admin", "policy")
}

func (c *pageCall) endSession() {
	if err := c.api(http.MethodDelete, "/sessions/"+url.PathEscape(c.r.PathValue("id")), nil, nil); err != nil {
		c.actionFailed(err)
		return
	}
	back := "/admin"
	if u := c.r.PostFormValue("user"); u != "" && c.r.PostFormValue("from") == "admin-user" {
		back = "/admin/users/" + url.PathEscape(u)
	}
	c.done(back, "ended")
}
