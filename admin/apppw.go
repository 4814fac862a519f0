package admin

import (
	"context"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// appPasswordRoutes manage app passwords: one's own under /me, a user's
// as an admin under /users/{user}. Both call the same operations on the
// route's subject.
func (s *Server) appPasswordRoutes() []route {
	list := jsonOut(func(c *apiCall) (api.AppPasswordList, error) { return s.listAppPasswords(c.ctx(), c.P, c.subject()) })
	create := jsonIO(func(c *apiCall, in *api.NewAppPasswordRequest) (api.NewAppPasswordResponse, error) {
		return s.createAppPassword(c.ctx(), c.P, c.subject(), *in)
	})
	revoke := noContent(func(c *apiCall) error { return s.revokeAppPassword(c.ctx(), c.P, c.subject(), c.param("id")) })
	return []route{
		{Method: "GET", Path: "/api/v1/me/app-passwords", Access: accessSelf, Handle: list,
			Summary: "List own app passwords"},
		{Method: "POST", Path: "/api/v1/me/app-passwords", Access: accessSelf, Reauth: true, Handle: create,
			Summary: "Create an app password (the secret is in this answer only)"},
		{Method: "DELETE", Path: "/api/v1/me/app-passwords/{id}", Access: accessSelf, Handle: revoke,
			Summary: "Revoke an own app password (its live sessions end)"},
		{Method: "GET", Path: "/api/v1/users/{user}/app-passwords", Access: accessAdmin, Handle: list,
			Summary: "List a user's app passwords"},
		{Method: "POST", Path: "/api/v1/users/{user}/app-passwords", Access: accessAdmin, Reauth: true, Handle: create,
			Summary: "Create an app password for a user (the secret is in this answer only)"},
		{Method: "DELETE", Path: "/api/v1/users/{user}/app-passwords/{id}", Access: accessAdmin, Handle: revoke,
			Summary: "Revoke a user's app password (its live sessions end)"},
	}
}

// listAppPasswords lists user's app passwords, each with how many live
// sessions use it now.
func (s *Server) listAppPasswords(ctx context.Context, _ *principal, user string) (api.AppPasswordList, error) {
	name, err := named(user)
	if err != nil {
		return api.AppPasswordList{}, err
	}
	aps, err := s.store.ListAppPasswords(ctx, name)
	if err != nil {
		return api.AppPasswordList{}, err
	}
	out := make([]api.AppPasswordInfo, 0, len(aps))
	for _, ap := range aps {
		out = append(out, api.AppPasswordInfo{AppPassword: ap, LiveSessions: s.cfg.Sessions.CredentialSessions(name, ap.ID)})
	}
	return api.AppPasswordList{AppPasswords: out}, nil
}

func (s *Server) createAppPassword(ctx context.Context, _ *principal, user string, in api.NewAppPasswordRequest) (api.NewAppPasswordResponse, error) {
	name, err := named(user)
	if err != nil {
		return api.NewAppPasswordResponse{}, err
	}
	np := authstore.NewAppPassword{Name: in.Name, Scopes: in.Scopes}
	if in.ExpiresAt != nil {
		np.Expires = *in.ExpiresAt
	}
	ap, secret, err := s.store.CreateAppPassword(ctx, name, np)
	if err != nil {
		return api.NewAppPasswordResponse{}, err
	}
	return api.NewAppPasswordResponse{AppPassword: ap, Secret: secret}, nil
}

// revokeAppPassword revokes one of user's app passwords; the store ends
// the live sessions that use it.
func (s *Server) revokeAppPassword(ctx context.Context, _ *principal, user, id string) error {
	name, err := named(user)
	if err != nil {
		return err
	}
	return s.store.RevokeAppPassword(ctx, name, id)
}
