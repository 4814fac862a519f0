package admin

import (
	"context"
	"errors"
	"net/http"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// errSignInFailed is the one answer to every failed sign-in step: unknown
// user, wrong password or code, disabled user, throttled (A9). The bytes
// are fixed; only a store failure answers differently (503).
var errSignInFailed = refuse(api.Unauthenticated, "sign-in failed")

// errReauthFailed is the one answer to every failed re-verification.
var errReauthFailed = refuse(api.ReauthRequired, "verification failed")

func oneAnswer(err, answer error) error {
	if errors.Is(err, authstore.ErrUnavailable) || !errors.Is(err, authstore.ErrUnauthorized) {
		return err
	}
	return answer
}

// signInRoutes are the steps of a web sign-in. Each step that succeeds
// rotates the session, so its route sends the new cookie.
func (s *Server) signInRoutes() []route {
	return []route{
		{Method: "POST", Path: "/api/v1/session", Access: accessSignIn, Guesses: true, Handle: jsonIO(s.postSession),
			Summary: "Sign in with username and password; a second step may follow"},
		{Method: "POST", Path: "/api/v1/session/second-factor", Access: accessPending, Guesses: true, Handle: jsonIO(s.postSecondFactor),
			Summary: "Finish signing in with an authenticator, backup or admin-issued code"},
		{Method: "POST", Path: "/api/v1/session/reauth", Access: accessBrowser, Guesses: true, Handle: jsonIO(s.postReauth),
			Summary: "Re-verify (code, or password without a second factor) before a security change"},
		{Method: "DELETE", Path: "/api/v1/session", Access: accessAnySession, Handle: noContent(s.deleteSession),
			Summary: "Sign out (the session ends on the server)"},
	}
}

func (s *Server) postSession(c *apiCall, in *api.SignInRequest) (api.SignInResponse, error) {
	sess, err := s.signIn(c.ctx(), c.P, sessionCookie(c.R), in.Username, in.Password)
	if err != nil {
		return api.SignInResponse{}, err
	}
	setSessionCookie(c.W, sess)
	return api.SignInResponse{State: sess.State, CSRFToken: sess.CSRF}, nil
}

func (s *Server) postSecondFactor(c *apiCall, in *api.CodeRequest) (api.SecondFactorResponse, error) {
	sess, res, err := s.secondFactor(c.ctx(), c.P, in.Code)
	if err != nil {
		return api.SecondFactorResponse{}, err
	}
	setSessionCookie(c.W, sess)
	return secondFactorAnswer(sess, res), nil
}

// secondFactorAnswer says how the second step went.
func secondFactorAnswer(sess *session, res authstore.FactorResult) api.SecondFactorResponse {
	return api.SecondFactorResponse{State: stateSignedIn, UsedBackupCode: res.Method != "totp",
		BackupCodesLeft: res.BackupRemaining, CSRFToken: sess.CSRF}
}

func (s *Server) postReauth(c *apiCall, in *api.ReauthRequest) (api.ReauthResponse, error) {
	sess, err := s.reauth(c.ctx(), c.P, in.Code, in.Password)
	if err != nil {
		return api.ReauthResponse{}, err
	}
	setSessionCookie(c.W, sess)
	return api.ReauthResponse{ReauthUntil: s.reauthUntil(sess), CSRFToken: sess.CSRF}, nil
}

func (s *Server) deleteSession(c *apiCall) error {
	if err := s.signOut(c.ctx(), c.P); err != nil {
		return err
	}
	clearCookie(c.W)
	return nil
}

// sessionCookie is the session id r's cookie names, "" without one.
func sessionCookie(r *http.Request) string {
	if ck, err := r.Cookie(cookieName); err == nil {
		return ck.Value
	}
	return ""
}

func attempt(who *principal, user, secret string) authstore.Attempt {
	return authstore.Attempt{Protocol: authstore.Web, Username: user, Secret: secret, Source: who.Source, Client: who.Client}
}

// signIn checks a password through the same decision and limiter as the
// mail protocols and starts a session whose State says what comes next.
// The session the browser had (old, its cookie's id) ends first. Every
// credential failure is the same error (A9).
func (s *Server) signIn(ctx context.Context, who *principal, old, username, password string) (*session, error) {
	if old != "" {
		if err := s.endSession(ctx, old); err != nil {
			return nil, err
		}
	}
	g, err := s.store.Authenticate(ctx, attempt(who, username, password))
	if err != nil {
		return nil, oneAnswer(err, errSignInFailed)
	}
	state, err := s.stateAfterPassword(ctx, g.Username)
	if err != nil {
		return nil, err
	}
	return s.issue(ctx, g.Username, state, nil, state != stateSecondFactor)
}

// stateAfterPassword: a second step when the user has a factor; only
// enrollment when the org requires one, its grace is over and the user has
// none.
func (s *Server) stateAfterPassword(ctx context.Context, user string) (string, error) {
	u, err := s.store.GetUser(ctx, user)
	if err != nil {
		return "", err
	}
	if u.MFA.Enabled {
		return stateSecondFactor, nil
	}
	p, err := s.store.Policy(ctx)
	if err != nil {
		return "", err
	}
	if p.MFARequired && !s.cfg.Clock.Now().Before(p.GraceUntil) {
		return stateEnroll, nil
	}
	return stateSignedIn, nil
}

// secondFactor finishes the half-done sign-in of who's session with a
// code and rotates the session.
func (s *Server) secondFactor(ctx context.Context, who *principal, code string) (*session, authstore.FactorResult, error) {
	old := who.Session
	res, err := s.store.VerifySecondFactor(ctx, old.User, code, attempt(who, old.User, ""))
	if err != nil {
		return nil, res, oneAnswer(err, errSignInFailed)
	}
	sess, err := s.issue(ctx, old.User, stateSignedIn, old, true)
	return sess, res, err
}

// reauth re-verifies the person at the keyboard: their code when they
// have a second factor, else their password. It charges the same limiter
// as a sign-in and rotates the session.
func (s *Server) reauth(ctx context.Context, who *principal, code, password string) (*session, error) {
	old := who.Session
	u, err := s.store.GetUser(ctx, old.User)
	if err != nil {
		return nil, err
	}
	if u.MFA.Enabled {
		_, err = s.store.VerifySecondFactor(ctx, old.User, code, attempt(who, old.User, ""))
	} else {
		_, err = s.store.Authenticate(ctx, attempt(who, old.User, password))
	}
	if err != nil {
		return nil, oneAnswer(err, errReauthFailed)
	}
	return s.issue(ctx, old.User, old.State, old, true)
}

// signOut ends who's session on the server; the caller clears the cookie.
func (s *Server) signOut(ctx context.Context, who *principal) error {
	sess := who.Session
	if err := s.endSession(ctx, sess.ID); err != nil {
		return err
	}
	return s.store.Record(ctx, authstore.Event{Kind: "web.signout", User: sess.User, Protocol: authstore.Web, Result: "ok"})
}
