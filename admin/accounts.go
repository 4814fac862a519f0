package admin

import (
	"context"
	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// Handlers shared by /me and /users/{user}: each takes the target user.

func (s *Server) listAppPasswords(ctx context.Context, user string) (any, error) {
	aps, err := s.store.ListAppPasswords(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]api.AppPasswordInfo, 0, len(aps))
	for _, ap := range aps {
		out = append(out, api.AppPasswordInfo{AppPassword: ap, LiveSessions: s.cfg.Sessions.CredentialSessions(user, ap.ID)})
	}
	return api.AppPasswordList{AppPasswords: out}, nil
}

func (s *Server) createAppPassword(ctx context.Context, user string, in *api.NewAppPasswordRequest) (any, error) {
	np := authstore.NewAppPassword{Name: in.Name, Scopes: in.Scopes}
	if in.ExpiresAt != nil {
		np.Expires = *in.ExpiresAt
	}
	ap, secret, err := s.store.CreateAppPassword(ctx, user, np)
	if err != nil {
		return nil, err
	}
	return api.NewAppPasswordResponse{AppPassword: ap, Secret: secret}, nil
}

func (s *Server) mfaStatus(ctx context.Context, user string) (any, error) {
	u, err := s.store.GetUser(ctx, user)
	if err != nil {
		return nil, err
	}
	p, err := s.store.Policy(ctx)
	if err != nil {
		return nil, err
	}
	res := api.MFAResponse{Enabled: u.MFA.Enabled, Pending: u.MFA.Pending, Source: u.MFA.Source,
		BackupCodesLeft: u.MFA.BackupRemaining, Required: p.MFARequired}
	if !p.GraceUntil.IsZero() {
		g := p.GraceUntil.UTC()
		res.GraceUntil = &g
	}
	return res, nil
}

// afterCredentialChange signs the user's other web sessions out: a
// password change, reset or disable is "sign out everywhere" for the web
// too (the store already ends the mail sessions).
func (s *Server) afterCredentialChange(c *Call, user string) error {
	keep := ""
	if c.P.Session != nil && c.P.User == user {
		keep = c.P.Session.ID
	}
	_, err := s.store.EndWebSessions(c.R.Context(), user, keep, s.cfg.Now().Add(-s.cfg.AbsoluteTimeout))
	return err
}

// target is the canonical user named in the path.
func target(c *Call) (string, error) {
	name, err := authstore.CanonicalUsername(c.R.PathValue("user"))
	if err != nil {
		return "", refuse(api.NotFound, "no such user")
	}
	return name, nil
}
