package admin

import (
	"context"
	"encoding/base64"
	"strconv"
	"strings"
	"time"

	"github.com/postern-dev/postern/admin/api"
)

// mfaRoutes are two-step verification: one's own enrollment under /me,
// and an admin's help for a user who lost a phone.
func (s *Server) mfaRoutes() []route {
	status := jsonOut(func(c *apiCall) (api.MFAResponse, error) { return s.mfaStatus(c.ctx(), c.P, c.subject()) })
	return []route{
		{Method: "GET", Path: "/api/v1/me/mfa", Access: accessEnroll, Handle: status,
			Summary: "Own two-step verification status"},
		{Method: "POST", Path: "/api/v1/me/mfa/totp", Access: accessEnroll, Reauth: true,
			Handle:  jsonOut(func(c *apiCall) (api.TOTPEnrollment, error) { return s.beginTOTP(c.ctx(), c.P) }),
			Summary: "Begin authenticator enrollment"},
		{Method: "GET", Path: "/api/v1/me/mfa/totp/qr.png", Access: accessEnroll, Handle: writes(s.getQR), Produces: "image/png",
			Summary: "The enrollment QR code (only the session that began enrollment)"},
		{Method: "POST", Path: "/api/v1/me/mfa/totp/confirm", Access: accessEnroll, Handle: jsonIO(s.postConfirmTOTP),
			Summary: "Turn two-step verification on with a first code; answers the first backup codes"},
		{Method: "DELETE", Path: "/api/v1/me/mfa", Access: accessSelf, Reauth: true,
			Handle:  noContent(func(c *apiCall) error { return s.disableOwnMFA(c.ctx(), c.P) }),
			Summary: "Turn own two-step verification off (refused while the organisation requires it)"},
		{Method: "POST", Path: "/api/v1/me/backup-codes", Access: accessSelf, Reauth: true,
			Handle:  jsonOut(func(c *apiCall) (api.BackupCodesResponse, error) { return s.newBackupCodes(c.ctx(), c.P) }),
			Summary: "Replace own backup codes (answered once)"},
		{Method: "GET", Path: "/api/v1/users/{user}/mfa", Access: accessAdmin, Handle: status,
			Summary: "A user's two-step status"},
		{Method: "DELETE", Path: "/api/v1/users/{user}/mfa", Access: accessAdmin, Reauth: true,
			Handle:  noContent(func(c *apiCall) error { return s.disableUserMFA(c.ctx(), c.P, c.subject()) }),
			Summary: "Turn off a user's self-enabled two-step verification"},
		{Method: "POST", Path: "/api/v1/users/{user}/mfa/reset", Access: accessAdmin, Reauth: true,
			Handle:  noContent(func(c *apiCall) error { return s.resetMFA(c.ctx(), c.P, c.subject()) }),
			Summary: "Reset a user's two-step verification (lost phone); sessions end"},
		{Method: "POST", Path: "/api/v1/users/{user}/backup-code", Access: accessAdmin, Reauth: true,
			Handle: jsonIO(func(c *apiCall, in *api.AdminCodeRequest) (api.AdminCodeResponse, error) {
				return s.issueAdminCode(c.ctx(), c.P, c.subject(), *in)
			}),
			Summary: "Issue one single-use code for a locked-out user"},
	}
}

func (s *Server) getQR(c *apiCall) error {
	png, err := s.enrollmentQR(c.P)
	if err != nil {
		return err
	}
	c.W.Header().Set("Content-Type", "image/png")
	c.W.Write(png)
	return nil
}

func (s *Server) postConfirmTOTP(c *apiCall, in *api.CodeRequest) (api.ConfirmResponse, error) {
	res, next, err := s.confirmTOTP(c.ctx(), c.P, in.Code)
	if next != nil {
		setSessionCookie(c.W, next)
	}
	return res, err
}

func (s *Server) mfaStatus(ctx context.Context, _ *principal, user string) (api.MFAResponse, error) {
	name, err := named(user)
	if err != nil {
		return api.MFAResponse{}, err
	}
	u, err := s.store.GetUser(ctx, name)
	if err != nil {
		return api.MFAResponse{}, err
	}
	p, err := s.store.Policy(ctx)
	if err != nil {
		return api.MFAResponse{}, err
	}
	return api.MFAResponse{Enabled: u.MFA.Enabled, Pending: u.MFA.Pending, Source: u.MFA.Source,
		BackupCodesLeft: u.MFA.BackupRemaining, Required: p.MFARequired, GraceUntil: utcOrNil(p.GraceUntil)}, nil
}

// utcOrNil is t in UTC, or nil for the zero time.
func utcOrNil(t time.Time) *time.Time {
	if t.IsZero() {
		return nil
	}
	t = t.UTC()
	return &t
}

// beginTOTP starts an authenticator enrollment for who; a web session
// keeps the QR code to serve it (enrollmentQR).
func (s *Server) beginTOTP(ctx context.Context, who *principal) (api.TOTPEnrollment, error) {
	enr, err := s.store.BeginTOTP(ctx, who.User)
	if err != nil {
		return api.TOTPEnrollment{}, err
	}
	if who.Session != nil {
		s.live.update(who.Session.ID, func(l *liveState) { l.qr = enr.PNG })
	}
	return api.TOTPEnrollment{Secret: enr.Secret, OtpauthURI: enr.URI, QRPNG: base64.StdEncoding.EncodeToString(enr.PNG)}, nil
}

// enrollmentQR is the QR code of the enrollment who's session began.
func (s *Server) enrollmentQR(who *principal) ([]byte, error) {
	if who.Session == nil {
		return nil, errNotFound
	}
	l, _ := s.live.get(who.Session.ID)
	if l.qr == nil {
		return nil, refuse(api.NotFound, "no enrollment begun in this session")
	}
	return l.qr, nil
}

// confirmTOTP turns the factor on; an enrollment-only session becomes a
// full one under a new id (next), whose cookie the caller sends.
func (s *Server) confirmTOTP(ctx context.Context, who *principal, code string) (res api.ConfirmResponse, next *session, err error) {
	codes, err := s.store.ConfirmTOTP(ctx, who.User, code)
	if err != nil {
		return res, nil, err
	}
	res.BackupCodes = codes
	if sess := who.Session; sess != nil {
		s.live.update(sess.ID, func(l *liveState) { l.qr = nil })
		if sess.State == stateEnroll {
			if next, err = s.issue(ctx, sess.User, stateSignedIn, sess, false); err != nil {
				return api.ConfirmResponse{}, nil, err
			}
			res.CSRFToken = next.CSRF
		}
	}
	return res, next, nil
}

func (s *Server) disableOwnMFA(ctx context.Context, who *principal) error {
	return s.store.DisableMFA(ctx, who.User)
}

func (s *Server) newBackupCodes(ctx context.Context, who *principal) (api.BackupCodesResponse, error) {
	codes, err := s.store.GenerateBackupCodes(ctx, who.User)
	return api.BackupCodesResponse{BackupCodes: codes}, err
}

// disableUserMFA is for a factor the user turned on themselves; one the
// organisation's policy made them add is reset, not switched off.
func (s *Server) disableUserMFA(ctx context.Context, who *principal, user string) error {
	u, err := s.getUser(ctx, who, user)
	if err != nil {
		return err
	}
	if u.MFA.Enabled && u.MFA.Source != "self" {
		return refuse(api.Conflict, "the factor was added under the organisation's policy; reset it instead")
	}
	return s.store.DisableMFA(ctx, u.Name)
}

// resetMFA is for a lost phone: the factor goes and the user's sessions
// end.
func (s *Server) resetMFA(ctx context.Context, who *principal, user string) error {
	name, err := named(user)
	if err != nil {
		return err
	}
	if err := s.store.ResetMFA(ctx, name); err != nil {
		return err
	}
	return s.afterCredentialChange(ctx, who, name)
}

// issueAdminCode issues one single-use code for a locked-out user, valid
// for in.TTL or the configured time.
func (s *Server) issueAdminCode(ctx context.Context, _ *principal, user string, in api.AdminCodeRequest) (api.AdminCodeResponse, error) {
	name, err := named(user)
	if err != nil {
		return api.AdminCodeResponse{}, err
	}
	ttl := s.cfg.AdminCodeTTL
	if in.TTL != "" {
		if ttl, err = parseTTL(in.TTL); err != nil {
			return api.AdminCodeResponse{}, err
		}
	}
	code, err := s.store.IssueAdminCode(ctx, name, ttl)
	if err != nil {
		return api.AdminCodeResponse{}, err
	}
	return api.AdminCodeResponse{Code: code, ExpiresAt: s.cfg.Clock.Now().Add(ttl).UTC()}, nil
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
