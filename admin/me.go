package admin

import (
	"encoding/base64"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// selfRoutes are what any signed-in user does to their own account.
func (s *Server) selfRoutes() []Route {
	return []Route{
		{Method: "GET", Path: "/api/v1/me", Access: Enroll, Handle: s.me, Out: typeOf[authstore.User](),
			Summary: "The signed-in user"},
		{Method: "PUT", Path: "/api/v1/me/password", Access: Self, Reauth: true, Guesses: true, Handle: s.mePassword,
			In: typeOf[api.ChangePasswordRequest](), Summary: "Change the account password (ends other sessions)"},
		{Method: "GET", Path: "/api/v1/me/app-passwords", Access: Self, Handle: s.meAppPasswords,
			Out: typeOf[api.AppPasswordList](), Summary: "List own app passwords"},
		{Method: "POST", Path: "/api/v1/me/app-passwords", Access: Self, Reauth: true, Handle: s.meCreateAppPassword,
			In: typeOf[api.NewAppPasswordRequest](), Out: typeOf[api.NewAppPasswordResponse](),
			Summary: "Create an app password (the secret is in this answer only)"},
		{Method: "DELETE", Path: "/api/v1/me/app-passwords/{id}", Access: Self, Handle: s.meRevokeAppPassword,
			Summary: "Revoke an own app password (its live sessions end)"},
		{Method: "GET", Path: "/api/v1/me/mfa", Access: Enroll, Handle: s.meMFA, Out: typeOf[api.MFAResponse](),
			Summary: "Own two-step verification status"},
		{Method: "POST", Path: "/api/v1/me/mfa/totp", Access: Enroll, Reauth: true, Handle: s.meBeginTOTP,
			Out: typeOf[api.TOTPEnrollment](), Summary: "Begin authenticator enrollment"},
		{Method: "GET", Path: "/api/v1/me/mfa/totp/qr.png", Access: Enroll, Handle: s.meQR, Produces: "image/png",
			Summary: "The enrollment QR code (only the session that began enrollment)"},
		{Method: "POST", Path: "/api/v1/me/mfa/totp/confirm", Access: Enroll, Handle: s.meConfirmTOTP,
			In: typeOf[api.CodeRequest](), Out: typeOf[api.ConfirmResponse](),
			Summary: "Turn two-step verification on with a first code; answers the first backup codes"},
		{Method: "DELETE", Path: "/api/v1/me/mfa", Access: Self, Reauth: true, Handle: s.meDisableMFA,
			Summary: "Turn own two-step verification off (refused while the organisation requires it)"},
		{Method: "POST", Path: "/api/v1/me/backup-codes", Access: Self, Reauth: true, Handle: s.meBackupCodes,
			Out: typeOf[api.BackupCodesResponse](), Summary: "Replace own backup codes (answered once)"},
		{Method: "GET", Path: "/api/v1/me/activity", Access: Self, Handle: s.meActivity, Out: typeOf[api.EventList](),
			Query: []string{"cursor", "limit"}, Summary: "Own audit events, newest first"},
	}
}

func (s *Server) me(c *Call) (any, error) { return s.store.GetUser(c.R.Context(), c.P.User) }

func (s *Server) mePassword(c *Call) (any, error) {
	in := c.In.(*api.ChangePasswordRequest)
	ctx := c.R.Context()
	if _, err := s.store.Authenticate(ctx, s.attempt(c, c.P.User, in.CurrentPassword)); err != nil {
		return nil, oneAnswer(err, invalid("the current password was not accepted"))
	}
	if err := s.store.SetPassword(ctx, c.P.User, in.NewPassword, in.RevokeAppPasswords); err != nil {
		return nil, err
	}
	return nil, s.afterCredentialChange(c, c.P.User)
}

func (s *Server) meAppPasswords(c *Call) (any, error) {
	return s.listAppPasswords(c.R.Context(), c.P.User)
}

func (s *Server) meCreateAppPassword(c *Call) (any, error) {
	return s.createAppPassword(c.R.Context(), c.P.User, c.In.(*api.NewAppPasswordRequest))
}

func (s *Server) meRevokeAppPassword(c *Call) (any, error) {
	return nil, s.store.RevokeAppPassword(c.R.Context(), c.P.User, c.R.PathValue("id"))
}

func (s *Server) meMFA(c *Call) (any, error) { return s.mfaStatus(c.R.Context(), c.P.User) }

func (s *Server) meBeginTOTP(c *Call) (any, error) {
	enr, err := s.store.BeginTOTP(c.R.Context(), c.P.User)
	if err != nil {
		return nil, err
	}
	if c.P.Session != nil {
		s.live.update(c.P.Session.ID, func(l *liveState) { l.qr = enr.PNG })
	}
	return api.TOTPEnrollment{Secret: enr.Secret, OtpauthURI: enr.URI, QRPNG: base64.StdEncoding.EncodeToString(enr.PNG)}, nil
}

func (s *Server) meQR(c *Call) (any, error) {
	if c.P.Session == nil {
		return nil, errNotFound
	}
	l, _ := s.live.get(c.P.Session.ID)
	if l.qr == nil {
		return nil, refuse(api.NotFound, "no enrollment begun in this session")
	}
	c.W.Header().Set("Content-Type", "image/png")
	c.W.Write(l.qr)
	return handled, nil
}

// meConfirmTOTP turns the factor on; an enrollment-only session becomes a
// full one (a new id: the sign-in is complete now).
func (s *Server) meConfirmTOTP(c *Call) (any, error) {
	codes, err := s.store.ConfirmTOTP(c.R.Context(), c.P.User, c.In.(*api.CodeRequest).Code)
	if err != nil {
		return nil, err
	}
	res := api.ConfirmResponse{BackupCodes: codes}
	if sess := c.P.Session; sess != nil {
		s.live.update(sess.ID, func(l *liveState) { l.qr = nil })
		if sess.State == StateEnroll {
			next, err := s.issue(c, sess.User, StateSignedIn, sess, false)
			if err != nil {
				return nil, err
			}
			res.CSRFToken = next.CSRF
		}
	}
	return res, nil
}

func (s *Server) meDisableMFA(c *Call) (any, error) {
	return nil, s.store.DisableMFA(c.R.Context(), c.P.User)
}

func (s *Server) meBackupCodes(c *Call) (any, error) {
	codes, err := s.store.GenerateBackupCodes(c.R.Context(), c.P.User)
	if err != nil {
		return nil, err
	}
	return api.BackupCodesResponse{BackupCodes: codes}, nil
}

func (s *Server) meActivity(c *Call) (any, error) {
	return s.queryAudit(c, authstore.AuditFilter{User: c.P.User})
}
