package admin

import (
	"context"
	"crypto/rand"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// userRoutes are the accounts: one's own under /me, and the admins'
// account management under /users.
func (s *Server) userRoutes() []route {
	return []route{
		{Method: "GET", Path: "/api/v1/me", Access: accessEnroll, Handle: jsonOut(s.getUserRoute),
			Summary: "The signed-in user"},
		{Method: "PUT", Path: "/api/v1/me/password", Access: accessSelf, Reauth: true, Guesses: true,
			Handle:  jsonIn(func(c *apiCall, in *api.ChangePasswordRequest) error { return s.changePassword(c.ctx(), c.P, *in) }),
			Summary: "Change the account password (ends other sessions)"},
		{Method: "GET", Path: "/api/v1/users", Access: accessAdmin,
			Handle:  jsonOut(func(c *apiCall) (api.UserList, error) { return s.listUsers(c.ctx(), c.P) }),
			Summary: "List accounts"},
		{Method: "POST", Path: "/api/v1/users", Access: accessAdmin, Reauth: true,
			Handle: jsonIO(func(c *apiCall, in *api.NewUserRequest) (api.NewUserResponse, error) {
				return s.createUser(c.ctx(), c.P, *in)
			}),
			Summary: "Create an account (a generated password is answered once)"},
		{Method: "GET", Path: "/api/v1/users/{user}", Access: accessAdmin, Handle: jsonOut(s.getUserRoute),
			Summary: "Show an account with its two-step state"},
		{Method: "PATCH", Path: "/api/v1/users/{user}", Access: accessAdmin, Reauth: true,
			Handle: jsonIO(func(c *apiCall, in *api.UpdateUserRequest) (authstore.User, error) {
				return s.updateUser(c.ctx(), c.P, c.subject(), *in)
			}),
			Summary: "Change display name, email, role or disabled (disabling ends sessions)"},
		{Method: "DELETE", Path: "/api/v1/users/{user}", Access: accessAdmin, Reauth: true,
			Handle:  noContent(func(c *apiCall) error { return s.deleteUser(c.ctx(), c.P, c.subject()) }),
			Summary: "Delete an account and its credentials"},
		{Method: "PUT", Path: "/api/v1/users/{user}/password", Access: accessAdmin, Reauth: true,
			Handle: jsonIn(func(c *apiCall, in *api.SetPasswordRequest) error {
				return s.setPassword(c.ctx(), c.P, c.subject(), *in)
			}),
			Summary: "Set an account password"},
	}
}

func (s *Server) getUserRoute(c *apiCall) (authstore.User, error) {
	return s.getUser(c.ctx(), c.P, c.subject())
}

// named is the canonical form of a user named in a path or a form; a name
// no account can have is not found.
func named(name string) (string, error) {
	cu, err := authstore.CanonicalUsername(name)
	if err != nil {
		return "", refuse(api.NotFound, "no such user")
	}
	return cu, nil
}

func (s *Server) getUser(ctx context.Context, _ *principal, user string) (authstore.User, error) {
	name, err := named(user)
	if err != nil {
		return authstore.User{}, err
	}
	return s.store.GetUser(ctx, name)
}

func (s *Server) listUsers(ctx context.Context, _ *principal) (api.UserList, error) {
	us, err := s.store.ListUsers(ctx)
	if us == nil {
		us = []authstore.User{}
	}
	return api.UserList{Users: us}, err
}

func (s *Server) createUser(ctx context.Context, _ *principal, in api.NewUserRequest) (api.NewUserResponse, error) {
	res := api.NewUserResponse{}
	pw := in.Password
	if pw == "" {
		pw = rand.Text() // 26 base32 characters, 130 bits
		res.Password = pw
	}
	u, err := s.store.CreateUser(ctx, authstore.NewUser{Name: in.Username, Display: in.DisplayName,
		Email: in.Email, Role: in.Role, Password: pw})
	if err != nil {
		return api.NewUserResponse{}, err
	}
	res.User = u
	return res, nil
}

func (s *Server) updateUser(ctx context.Context, who *principal, user string, in api.UpdateUserRequest) (authstore.User, error) {
	name, err := named(user)
	if err != nil {
		return authstore.User{}, err
	}
	if in.DisplayName == nil && in.Email == nil && in.Role == nil && in.Disabled == nil {
		return authstore.User{}, invalid("nothing to change")
	}
	u, err := s.store.UpdateUser(ctx, name, authstore.UserUpdate{Display: in.DisplayName, Email: in.Email,
		Role: in.Role, Disabled: in.Disabled})
	if err != nil {
		return authstore.User{}, err
	}
	if u.Disabled {
		return u, s.afterCredentialChange(ctx, who, name)
	}
	return u, nil
}

func (s *Server) deleteUser(ctx context.Context, who *principal, user string) error {
	name, err := named(user)
	if err != nil {
		return err
	}
	if err := s.store.DeleteUser(ctx, name); err != nil {
		return err
	}
	return s.afterCredentialChange(ctx, who, name)
}

// changePassword is the user's own change: the current password is
// checked like a sign-in first.
func (s *Server) changePassword(ctx context.Context, who *principal, in api.ChangePasswordRequest) error {
	if _, err := s.store.Authenticate(ctx, attempt(who, who.User, in.CurrentPassword)); err != nil {
		return oneAnswer(err, invalid("the current password was not accepted"))
	}
	if err := s.store.SetPassword(ctx, who.User, in.NewPassword, in.RevokeAppPasswords); err != nil {
		return err
	}
	return s.afterCredentialChange(ctx, who, who.User)
}

// setPassword is an administrator's.
func (s *Server) setPassword(ctx context.Context, who *principal, user string, in api.SetPasswordRequest) error {
	name, err := named(user)
	if err != nil {
		return err
	}
	if err := s.store.SetPassword(ctx, name, in.Password, in.RevokeAppPasswords); err != nil {
		return err
	}
	return s.afterCredentialChange(ctx, who, name)
}

// afterCredentialChange signs the user's other web sessions out: a
// password change, reset or disable is "sign out everywhere" for the web
// too (the store already ends the mail sessions).
func (s *Server) afterCredentialChange(ctx context.Context, who *principal, user string) error {
	keep := ""
	if who.Session != nil && who.User == user {
		keep = who.Session.ID
	}
	_, err := s.store.EndWebSessions(ctx, user, keep, s.cfg.Clock.Now().Add(-s.cfg.AbsoluteTimeout))
	return err
}
