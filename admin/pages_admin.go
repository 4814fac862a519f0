package admin

import (
	"net/http"
	"net/url"
	"strings"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// consolePage is the admin console's front page.
type consolePage struct {
	Query    string
	Users    []authstore.User
	Total    int
	Policy   api.PolicyResponse
	Sessions []api.LiveSession
}

func (c *pageCall) console() {
	s, who := c.p.srv, c.who
	d := consolePage{Query: strings.TrimSpace(c.r.URL.Query().Get("q"))}
	users, err := s.listUsers(c.ctx, who)
	if err == nil {
		d.Policy, err = s.policy(c.ctx, who)
	}
	if err != nil {
		c.failed(err)
		return
	}
	d.Total, d.Sessions = len(users.Users), s.liveSessions(who, "").Sessions
	q := strings.ToLower(d.Query)
	for _, u := range users.Users {
		if q == "" || strings.Contains(strings.ToLower(u.Name+" "+u.Display+" "+u.Email), q) {
			d.Users = append(d.Users, u)
		}
	}
	c.render(http.StatusOK, "admin", "Admin console", d)
}

func (c *pageCall) createUser() {
	f := c.form
	in := api.NewUserRequest{Username: f.Get("username"), DisplayName: f.Get("display_name"), Email: f.Get("email"),
		Role: authstore.Role(f.Get("role")), Password: f.Get("password")}
	out, err := c.p.srv.createUser(c.ctx, c.who, in)
	if err != nil {
		c.actionFailed(err)
		return
	}
	if out.Password == "" {
		c.done("/admin/users/"+url.PathEscape(out.User.Name), "user")
		return
	}
	c.render(http.StatusOK, "admin-user-created", "User created", out)
}

func (c *pageCall) setPolicy() {
	f := c.form
	in := api.PolicyRequest{MFARequired: f.Get("mfa_required") == "on"}
	if g := f.Get("grace_until"); g != "" && in.MFARequired {
		day, err := endOfDay(g)
		if err != nil {
			c.formError("The grace date is not a date (use the date picker, or YYYY-MM-DD).")
			return
		}
		in.GraceUntil = &day
	}
	if _, err := c.p.srv.setPolicy(c.ctx, c.who, in); err != nil {
		c.actionFailed(err)
		return
	}
	c.done("/admin", "policy")
}

func (c *pageCall) endSession() {
	if err := c.p.srv.endLiveSession(c.ctx, c.who, c.param("id")); err != nil {
		c.actionFailed(err)
		return
	}
	back := "/admin"
	if u := c.form.Get("user"); u != "" && c.form.Get("from") == "admin-user" {
		back = "/admin/users/" + url.PathEscape(u)
	}
	c.done(back, "ended")
}
