package admin

import (
	"context"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// tokenRoutes manage the API tokens.
func (s *Server) tokenRoutes() []route {
	return []route{
		{Method: "GET", Path: "/api/v1/tokens", Access: accessAdmin,
			Handle:  jsonOut(func(c *apiCall) (api.TokenList, error) { return s.listTokens(c.ctx(), c.P) }),
			Summary: "API tokens (never their secrets)"},
		{Method: "POST", Path: "/api/v1/tokens", Access: accessAdmin, Reauth: true,
			Handle: jsonIO(func(c *apiCall, in *api.NewTokenRequest) (api.NewTokenResponse, error) {
				return s.createToken(c.ctx(), c.P, *in)
			}),
			Summary: "Create an API token (the secret is in this answer only)"},
		{Method: "DELETE", Path: "/api/v1/tokens/{id}", Access: accessAdmin,
			Handle:  noContent(func(c *apiCall) error { return s.revokeToken(c.ctx(), c.P, c.param("id")) }),
			Summary: "Revoke an API token"},
	}
}

func (s *Server) listTokens(ctx context.Context, _ *principal) (api.TokenList, error) {
	ts, err := s.store.ListTokens(ctx)
	return api.TokenList{Tokens: ts}, err
}

// createToken makes an admin token unless in names another role.
func (s *Server) createToken(ctx context.Context, _ *principal, in api.NewTokenRequest) (api.NewTokenResponse, error) {
	nt := authstore.NewToken{Name: in.Name, Role: in.Role, User: in.User}
	if nt.Role == "" {
		nt.Role = authstore.RoleAdmin
	}
	if in.ExpiresAt != nil {
		nt.Expires = *in.ExpiresAt
	}
	tok, secret, err := s.store.CreateToken(ctx, nt)
	if err != nil {
		return api.NewTokenResponse{}, err
	}
	return api.NewTokenResponse{Token: tok, Secret: secret}, nil
}

func (s *Server) revokeToken(ctx context.Context, _ *principal, id string) error {
	return s.store.RevokeToken(ctx, id)
}
