package admin

import (
	"context"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// policyRoutes are the organisation's two-step policy.
func (s *Server) policyRoutes() []route {
	return []route{
		{Method: "GET", Path: "/api/v1/policy", Access: accessAdmin,
			Handle:  jsonOut(func(c *apiCall) (api.PolicyResponse, error) { return s.policy(c.ctx(), c.P) }),
			Summary: "The organisation's two-step policy"},
		{Method: "PUT", Path: "/api/v1/policy", Access: accessAdmin, Reauth: true,
			Handle: jsonIO(func(c *apiCall, in *api.PolicyRequest) (api.PolicyResponse, error) {
				return s.setPolicy(c.ctx(), c.P, *in)
			}),
			Summary: "Require two-step verification (with an optional grace date) or not"},
	}
}

// policy is the two-step policy with how many active users have no second
// factor yet.
func (s *Server) policy(ctx context.Context, _ *principal) (api.PolicyResponse, error) {
	p, err := s.store.Policy(ctx)
	if err != nil {
		return api.PolicyResponse{}, err
	}
	us, err := s.store.ListUsers(ctx)
	if err != nil {
		return api.PolicyResponse{}, err
	}
	res := api.PolicyResponse{MFARequired: p.MFARequired, GraceUntil: utcOrNil(p.GraceUntil)}
	for _, u := range us {
		if !u.MFA.Enabled && !u.Disabled {
			res.NotEnrolled++
		}
	}
	return res, nil
}

func (s *Server) setPolicy(ctx context.Context, who *principal, in api.PolicyRequest) (api.PolicyResponse, error) {
	p := authstore.Policy{MFARequired: in.MFARequired}
	if in.GraceUntil != nil {
		if !in.MFARequired {
			return api.PolicyResponse{}, invalid("grace_until needs mfa_required")
		}
		p.GraceUntil = *in.GraceUntil
	}
	if err := s.store.SetPolicy(ctx, p); err != nil {
		return api.PolicyResponse{}, err
	}
	return s.policy(ctx, who)
}
