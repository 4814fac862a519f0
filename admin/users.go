package admin

import (
	"crypto/rand"
	"strconv"
	"strings"
	"time"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// userRoutes are the admins' account management.
func (s *Server) userRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/api/v1/users", Access: Admin, Handle: s.listUsers, Out: typeOf[api.UserList](),
			Summary: "List accounts"},
		{Method: "POST", Path: "/api/v1/users", Access: Admin, Reauth: true, Handle: s.createUser,
			In: typeOf[api.NewUserRequest](), Out: typeOf[api.NewUserResponse](),
			Summary: "Create an account (a generated password is answered once)"},
		{Method: "GET", Path: "/api/v1/users/{user}", Access: Admin, Handle: s.getUser, Out: typeOf[authstore.User](),
			Summary: "Show an account with its two-step state"},
		{Method: "PATCH", Path: "/api/v1/users/{user}", Access: Admin, Reauth: true, Handle: s.updateUser,
			In: typeOf[api.UpdateUserRequest](), Out: typeOf[authstore.User](),
			Summary: "Change display name, email, role or disabled (disabling ends sessions)"},
		{Method: "DELETE", Path: "/api/v1/users/{user}", Access: Admin, Reauth: true, Handle: s.deleteUser,
			Summary: "Delete an account and its credentials"},
		{Method: "PUT", Path: "/api/v1/users/{user}/password", Access: Admin, Reauth: true, Handle: s.setPassword,
			In: typeOf[api.SetPasswordRequest](), Summary: "Set an account password"},
		{Method: "GET", Path: "/api/v1/users/{user}/app-passwords", Access: Admin, Handle: s.userAppPasswords,
			Out: typeOf[api.AppPasswordList](), Summary: "List a user's app passwords"},
		{Method: "POST", Path: "/api/v1/users/{user}/app-passwords", Access: Admin, Reauth: true, Handle: s.userCreateAppPassword,
			In: typeOf[api.NewAppPasswordRequest](), Out: typeOf[api.NewAppPasswordResponse](),
			Summary: "Create an app password for a user (the secret is in this answer only)"},
		{Method: "DELETE", Path: "/api/v1/users/{user}/app-passwords/{id}", Access: Admin, Handle: s.userRevokeAppPassword,
			Summary: "Revoke a user's app password (its live sessions end)"},
		{Method: "GET", Path: "/api/v1/users/{user}/mfa", Access: Admin, Handle: s.userMFA, Out: typeOf[api.MFAResponse](),
			Summary: "A user's two-step status"},
		{Method: "DELETE", Path: "/api/v1/users/{user}/mfa", Access: Admin, Reauth: true, Handle: s.userDisableMFA,
			Summary: "Turn off a user's self-enabled two-step verification"},
		{Method: "POST", Path: "/api/v1/users/{user}/mfa/reset", Access: Admin, Reauth: true, Handle: s.userResetMFA,
			Summary: "Reset a user's two-step verification (lost phone); sessions end"},
		{Method: "POST", Path: "/api/v1/users/{user}/backup-code", Access: Admin, Reauth: true, Handle: s.userAdminCode,
			In: typeOf[api.AdminCodeRequest](), Out: typeOf[api.AdminCodeResponse](),
			Summary: "Issue one single-use code for a locked-out user"},
	}
}

func (s *Server) listUsers(c *Call) (any, error) {
	us, err := s.store.ListUsers(c.R.Context())
	if err != nil {
		return nil, err
	}
	if us == nil {
		us = []authstore.User{}
	}
	return api.UserList{Users: us}, nil
}

func (s *Server) createUser(c *Call) (any, error) {
	in := c.In.(*api.NewUserRequest)
	res := api.NewUserResponse{}
	pw := in.Password
	if pw == "" {
		pw = rand.Text() // 26 base32 characters, 130 bits
		res.Password = pw
	}
	u, err := s.store.CreateUser(c.R.Context(), authstore.NewUser{Name: in.Username, Display: in.DisplayName,
		Email: in.Email, Role: in.Role, Password: pw})
	if err != nil {
		return nil, err
	}
	res.User = u
	return res, nil
}

func (s *Server) getUser(c *Call) (any, error) {
	u, err := target(c)
	if err != nil {
		return nil, err
	}
	return s.store.GetUser(c.R.Context(), u)
}

func (s *Server) updateUser(c *Call) (any, error) {
	in := c.In.(*api.UpdateUserRequest)
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	if in.DisplayName == nil && in.Email == nil && in.Role == nil && in.Disabled == nil {
		return nil, invalid("nothing to change")
	}
	u, err := s.store.UpdateUser(c.R.Context(), name, authstore.UserUpdate{Display: in.DisplayName, Email: in.Email,
		Role: in.Role, Disabled: in.Disabled})
	if err != nil {
		return nil, err
	}
	if u.Disabled {
		return u, s.afterCredentialChange(c, name)
	}
	return u, nil
}

func (s *Server) deleteUser(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	if err := s.store.DeleteUser(c.R.Context(), name); err != nil {
		return nil, err
	}
	return nil, s.afterCredentialChange(c, name)
}

func (s *Server) setPassword(c *Call) (any, error) {
	in := c.In.(*api.SetPasswordRequest)
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	if err := s.store.SetPassword(c.R.Context(), name, in.Password, in.RevokeAppPasswords); err != nil {
		return nil, err
	}
	return nil, s.afterCredentialChange(c, name)
}

func (s *Server) userAppPasswords(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	if _, err := s.store.GetUser(c.R.Context(), name); err != nil {
		return nil, err
	}
	return s.listAppPasswords(c.R.Context(), name)
}

func (s *Server) userCreateAppPassword(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	return s.createAppPassword(c.R.Context(), name, c.In.(*api.NewAppPasswordRequest))
}

func (s *Server) userRevokeAppPassword(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	return nil, s.store.RevokeAppPassword(c.R.Context(), name, c.R.PathValue("id"))
}

func (s *Server) userMFA(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	return s.mfaStatus(c.R.Context(), name)
}

// userDisableMFA is for a factor the user turned on themselves; one the
// organisation's policy made them add is reset, not switched off.
func (s *Server) userDisableMFA(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	u, err := s.store.GetUser(c.R.Context(), name)
	if err != nil {
		return nil, err
	}
	if u.MFA.Enabled && u.MFA.Source != "self" {
		return nil, refuse(api.Conflict, "the factor was added under the organisation's policy; reset it instead")
	}
	return nil, s.store.DisableMFA(c.R.Context(), name)
}

func (s *Server) userResetMFA(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	if err := s.store.ResetMFA(c.R.Context(), name); err != nil {
		return nil, err
	}
	return nil, s.afterCredentialChange(c, name)
}

func (s *Server) userAdminCode(c *Call) (any, error) {
	in := c.In.(*api.AdminCodeRequest)
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	ttl := s.cfg.AdminCodeTTL
	if in.TTL != "" {
		if ttl, err = parseTTL(in.TTL); err != nil {
			return nil, err
		}
	}
	code, err := s.store.IssueAdminCode(c.R.Context(), name, ttl)
	if err != nil {
		return nil, err
	}
	return api.AdminCodeResponse{Code: code, ExpiresAt: s.cfg.Now().Add(ttl).UTC()}, nil
}

// parseTTL reads "72h", "30m" or "3d", between a minute and 30 days.
func parseTTL(s string) (time.Duration, error) {
	var d time.Duration
	var err error
	if days, ok := strings.CutSuffix(s, "d"); ok {
		var n int
		n, err = strconv.Atoi(days)
		d = time.Duration(n) * 24 * time.Hour
	} else {
		d, err = time.ParseDuration(s)
	}
	if err != nil || d < time.Minute || d > 30*24*time.Hour {
		return 0, invalid("ttl must be a duration between 1m and 30d")
	}
	return d, nil
}
