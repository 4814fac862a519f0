package admin

import (
	"errors"
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

func (s *Server) signInRoutes() []Route {
	return []Route{
		{Method: "POST", Path: "/api/v1/session", Access: SignIn, Guesses: true, Handle: s.signIn,
			In: typeOf[api.SignInRequest](), Out: typeOf[api.SignInResponse](),
			Summary: "Sign in with username and password; a second step may follow"},
		{Method: "POST", Path: "/api/v1/session/second-factor", Access: Pending, Guesses: true, Handle: s.secondFactor,
			In: typeOf[api.CodeRequest](), Out: typeOf[api.SecondFactorResponse](),
			Summary: "Finish signing in with an authenticator, backup or admin-issued code"},
		{Method: "POST", Path: "/api/v1/session/reauth", Access: Browser, Guesses: true, Handle: s.reauth,
			In: typeOf[api.ReauthRequest](), Out: typeOf[api.ReauthResponse](),
			Summary: "Re-verify (code, or password without a second factor) before a security change"},
		{Method: "DELETE", Path: "/api/v1/session", Access: AnySession, Handle: s.signOut,
			Summary: "Sign out (the session ends on the server)"},
	}
}

func (s *Server) attempt(c *Call, user, secret string) authstore.Attempt {
	return authstore.Attempt{Protocol: authstore.Web, Username: user, Secret: secret, Source: c.Source,
		Client: c.R.UserAgent()}
}

// signIn is the JSON step of SignIn.
func (s *Server) signIn(c *Call) (any, error) {
	in := c.In.(*api.SignInRequest)
	sess, err := s.SignIn(c, in.Username, in.Password)
	if err != nil {
		return nil, err
	}
	return api.SignInResponse{State: sess.State, CSRFToken: sess.CSRF}, nil
}

// SignIn checks a password through the same decision and limiter as the
// mail protocols and starts a session (setting the cookie) whose State
// says what comes next. Whatever session the browser had ends first.
// Every credential failure is the same error (A9); page handlers render
// it as one message.
func (s *Server) SignIn(c *Call, username, password string) (*Session, error) {
	ctx := c.R.Context()
	if ck, err := c.R.Cookie(CookieName); err == nil && ck.Value != "" {
		if err := s.endSession(ctx, ck.Value); err != nil {
			return nil, err
		}
	}
	g, err := s.store.Authenticate(ctx, s.attempt(c, username, password))
	if err != nil {
		return nil, oneAnswer(err, errSignInFailed)
	}
	state, err := s.stateAfterPassword(c, g.Username)
	if err != nil {
		return nil, err
	}
	return s.issue(c, g.Username, state, nil, state != StateSecondFactor)
}

// stateAfterPassword: a second step when the user has a factor; only
// enrollment when the org requires one, its grace is over and the user has
// none.
func (s *Server) stateAfterPassword(c *Call, user string) (string, error) {
	u, err := s.store.GetUser(c.R.Context(), user)
	if err != nil {
		return "", err
	}
	if u.MFA.Enabled {
		return StateSecondFactor, nil
	}
	p, err := s.store.Policy(c.R.Context())
	if err != nil {
		return "", err
	}
	if p.MFARequired && !s.cfg.Now().Before(p.GraceUntil) {
		return StateEnroll, nil
	}
	return StateSignedIn, nil
}

func (s *Server) secondFactor(c *Call) (any, error) {
	sess, res, err := s.SecondFactor(c, c.In.(*api.CodeRequest).Code)
	if err != nil {
		return nil, err
	}
	return api.SecondFactorResponse{State: StateSignedIn, UsedBackupCode: res.Method != "totp",
		BackupCodesLeft: res.BackupRemaining, CSRFToken: sess.CSRF}, nil
}

// SecondFactor finishes the half-done sign-in of c.P.Session with a code
// and rotates the session.
func (s *Server) SecondFactor(c *Call, code string) (*Session, authstore.FactorResult, error) {
	old := c.P.Session
	res, err := s.store.VerifySecondFactor(c.R.Context(), old.User, code, s.attempt(c, old.User, ""))
	if err != nil {
		return nil, res, oneAnswer(err, errSignInFailed)
	}
	sess, err := s.issue(c, old.User, StateSignedIn, old, true)
	return sess, res, err
}

func (s *Server) reauth(c *Call) (any, error) {
	in := c.In.(*api.ReauthRequest)
	sess, err := s.Reauth(c, in.Code, in.Password)
	if err != nil {
		return nil, err
	}
	return api.ReauthResponse{ReauthUntil: s.ReauthUntil(sess), CSRFToken: sess.CSRF}, nil
}

// Reauth re-verifies the person at the keyboard: their code when they
// have a second factor, else their password. It charges the same limiter
// as a sign-in and rotates the session.
func (s *Server) Reauth(c *Call, code, password string) (*Session, error) {
	old := c.P.Session
	ctx := c.R.Context()
	u, err := s.store.GetUser(ctx, old.User)
	if err != nil {
		return nil, err
	}
	if u.MFA.Enabled {
		_, err = s.store.VerifySecondFactor(ctx, old.User, code, s.attempt(c, old.User, ""))
	} else {
		_, err = s.store.Authenticate(ctx, s.attempt(c, old.User, password))
	}
	if err != nil {
		return nil, oneAnswer(err, errReauthFailed)
	}
	return s.issue(c, old.User, old.State, old, true)
}

func (s *Server) signOut(c *Call) (any, error) { return nil, s.SignOut(c) }

// SignOut ends c.P.Session on the server and clears the cookie.
func (s *Server) SignOut(c *Call) error {
	sess := c.P.Session
	if err := s.endSession(c.R.Context(), sess.ID); err != nil {
		return err
	}
	clearCookie(c.W)
	return s.store.Record(c.R.Context(), authstore.Event{Kind: "web.signout", User: sess.User, Protocol: authstore.Web, Result: "ok"})
}
