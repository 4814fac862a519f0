package admin

import (
	"context"

	"github.com/postern-dev/postern/admin/api"
)

// upstreamRoutes set and clear a user's stored upstream password. They
// change a credential, so a browser must have re-verified (W1).
func (s *Server) upstreamRoutes() []route {
	return []route{
		{Method: "PUT", Path: "/api/v1/users/{user}/upstream-password", Access: accessAdmin, Reauth: true,
			Handle: jsonIn(func(c *apiCall, in *api.UpstreamPasswordRequest) error {
				return s.setUpstreamPassword(c.ctx(), c.P, c.subject(), in.Password)
			}),
			Summary: "Set the password postern logs in upstream with for this user (login = \"stored\"); never shown again"},
		{Method: "DELETE", Path: "/api/v1/users/{user}/upstream-password", Access: accessAdmin, Reauth: true,
			Handle:  noContent(func(c *apiCall) error { return s.clearUpstreamPassword(c.ctx(), c.P, c.subject()) }),
			Summary: "Forget a user's stored upstream password"},
	}
}

func (s *Server) setUpstreamPassword(ctx context.Context, _ *principal, user, password string) error {
	name, err := named(user)
	if err != nil {
		return err
	}
	return s.store.SetUpstreamPassword(ctx, name, password)
}

func (s *Server) clearUpstreamPassword(ctx context.Context, _ *principal, user string) error {
	name, err := named(user)
	if err != nil {
		return err
	}
	return s.store.ClearUpstreamPassword(ctx, name)
}
