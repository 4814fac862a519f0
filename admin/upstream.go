package admin

import "github.com/postern-dev/postern/admin/api"

// upstreamRoutes set and clear a user's stored upstream password. They
// change a credential, so a browser must have re-verified (W1).
func (s *Server) upstreamRoutes() []Route {
	return []Route{
		{Method: "PUT", Path: "/api/v1/users/{user}/upstream-password", Access: Admin, Reauth: true, Handle: s.setUpstreamPassword,
			In:      typeOf[api.UpstreamPasswordRequest](),
			Summary: "Set the password postern logs in upstream with for this user (login = \"stored\"); never shown again"},
		{Method: "DELETE", Path: "/api/v1/users/{user}/upstream-password", Access: Admin, Reauth: true, Handle: s.clearUpstreamPassword,
			Summary: "Forget a user's stored upstream password"},
	}
}

func (s *Server) setUpstreamPassword(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	return nil, s.store.SetUpstreamPassword(c.R.Context(), name, c.In.(*api.UpstreamPasswordRequest).Password)
}

func (s *Server) clearUpstreamPassword(c *Call) (any, error) {
	name, err := target(c)
	if err != nil {
		return nil, err
	}
	return nil, s.store.ClearUpstreamPassword(c.R.Context(), name)
}
