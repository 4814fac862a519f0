package admin

import (
	"context"
	"net/http"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// Handlers shared by /me and /users/{user}: each takes the target user.

type appPasswordList struct {
	AppPasswords []appPasswordInfo `json:"app_passwords"`
}

// appPasswordInfo is an app password with how many live sessions use it
// right now, counted by the live-session registry.
type appPasswordInfo struct {
	authstore.AppPassword
	LiveSessions int `json:"live_sessions"`
}

type newAppPasswordRequest struct {
	Name      string               `json:"name"`
	Scopes    []authstore.Protocol `json:"scopes,omitempty"`
	ExpiresAt *time.Time           `json:"expires_at,omitempty"`
}

type newAppPasswordResponse struct {
	AppPassword authstore.AppPassword `json:"app_password"`
	Secret      string                `json:"secret"` // shown once
}

type mfaResponse struct {
	Enabled         bool       `json:"enabled"`
	Pending         bool       `json:"pending"` // enrollment begun, not confirmed
	Source          string     `json:"source"`  // "self", "policy" or ""
	BackupCodesLeft int        `json:"backup_codes_left"`
	Required        bool       `json:"required"` // the organisation requires two-step
	GraceUntil      *time.Time `json:"grace_until,omitempty"`
}

type backupCodesResponse struct {
	BackupCodes []string `json:"backup_codes"`
}

type eventList struct {
	Events     []authstore.Event `json:"events"`
	NextCursor string            `json:"next_cursor,omitempty"`
}

func (s *Server) listAppPasswords(ctx context.Context, user string) (any, error) {
	aps, err := s.store.ListAppPasswords(ctx, user)
	if err != nil {
		return nil, err
	}
	out := make([]appPasswordInfo, 0, len(aps))
	for _, ap := range aps {
		out = append(out, appPasswordInfo{AppPassword: ap, LiveSessions: s.cfg.Sessions.CredentialSessions(user, ap.ID)})
	}
	return appPasswordList{AppPasswords: out}, nil
}

func (s *Server) createAppPassword(ctx context.Context, user string, in *newAppPasswordRequest) (any, error) {
	np := authstore.NewAppPassword{Name: in.Name, Scopes: in.Scopes}
	if in.ExpiresAt != nil {
		np.Expires = *in.ExpiresAt
	}
	ap, secret, err := s.store.CreateAppPassword(ctx, user, np)
	if err != nil {
		return nil, err
	}
	return newAppPasswordResponse{AppPassword: ap, Secret: secret}, nil
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
	res := mfaResponse{Enabled: u.MFA.Enabled, Pending: u.MFA.Pending, Source: u.MFA.Source,
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
	_, err := s.store.EndWebSessions(c.R.Context(), user, keep, s.cfg.Clock.Now().Add(-s.cfg.AbsoluteTimeout))
	return err
}

// target is the canonical user named in the path.
func target(c *Call) (string, error) {
	name, err := authstore.CanonicalUsername(c.R.PathValue("user"))
	if err != nil {
		return "", newError(http.StatusNotFound, "not_found", "no such user")
	}
	return name, nil
}
