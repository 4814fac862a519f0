package admin

import (
	"context"
	"errors"
	"net/http"
	"strings"

	"github.com/postern-dev/postern/authstore"
)

// Principal kinds.
const (
	KindSession = "session" // a browser's cookie session
	KindToken   = "token"   // Authorization: Bearer pst_…
	KindCLI     = "cli"     // the control socket
)

// Principal is who makes a request.
type Principal struct {
	Kind string
	// User is the canonical user the principal acts as on /me routes;
	// empty for the CLI and for admin tokens made without a user.
	User string
	Role authstore.Role
	// Name is what the audit log calls the principal: the user for
	// sessions, the token's name, or "cli:<uid>".
	Name    string
	Session *Session // cookie principals only
}

// actor is the audit actor: "admin:alice" or "self:alice" for a session
// (by the route acted through), "token:<name>", "cli:<uid>".
func (p *Principal) actor(a Access) string {
	switch p.Kind {
	case KindToken:
		return "token:" + p.Name
	case KindCLI:
		return p.Name
	case KindSession:
		if a == Admin {
			return "admin:" + p.Name
		}
		return "self:" + p.Name
	}
	return "unknown"
}

// allowed checks the principal against a route's access level. A
// half-done sign-in is no credential at all for anything but its next step
// and sign-out (W2).
func (p *Principal) allowed(a Access) error {
	var state string
	if p.Session != nil {
		state = p.Session.State
	}
	switch a {
	case Pending:
		if state != StateSecondFactor {
			return errUnauthenticated
		}
		return nil
	case AnySession:
		if p.Session == nil {
			return errUnauthenticated
		}
		return nil
	}
	if state == StateSecondFactor {
		return errUnauthenticated
	}
	switch a {
	case Browser:
		if p.Session == nil {
			return errBrowserOnly
		}
	case Enroll:
	case Self:
		if state == StateEnroll {
			return errEnrollFirst
		}
	case Admin:
		if state == StateEnroll {
			return errEnrollFirst
		}
		if p.Role != authstore.RoleAdmin {
			return errForbidden
		}
		return nil
	}
	if p.User == "" && a != Browser {
		return errNoUser
	}
	return nil
}

// Principal returns the signed-in principal of a request: a bearer token,
// the control socket's peer, or a live cookie session (which may be a
// half-done sign-in; check with the route's access level). It answers
// errUnauthenticated when there is none.
func (s *Server) Principal(r *http.Request) (*Principal, error) {
	ctx := r.Context()
	if uid, ok := controlPeer(ctx); ok {
		return &Principal{Kind: KindCLI, Role: authstore.RoleAdmin, Name: "cli:" + uid}, nil
	}
	if h := r.Header.Values("Authorization"); len(h) > 0 {
		return s.tokenPrincipal(ctx, h)
	}
	sess, err := s.sessionOf(r)
	if err != nil {
		return nil, err
	}
	u, err := s.activeUser(ctx, sess.User)
	if err != nil {
		return nil, err
	}
	return &Principal{Kind: KindSession, User: u.Name, Role: u.Role, Name: u.Name, Session: sess}, nil
}

// activeUser is the account a credential acts as: a deleted or disabled
// one makes the credential no credential at all.
func (s *Server) activeUser(ctx context.Context, name string) (authstore.User, error) {
	u, err := s.store.GetUser(ctx, name)
	switch {
	case errors.Is(err, authstore.ErrNotFound), err == nil && u.Disabled:
		return u, errUnauthenticated
	}
	return u, err
}

func (s *Server) tokenPrincipal(ctx context.Context, h []string) (*Principal, error) {
	secret, ok := strings.CutPrefix(h[0], "Bearer ")
	if len(h) != 1 || !ok {
		return nil, errUnauthenticated
	}
	tok, err := s.store.VerifyToken(ctx, strings.TrimSpace(secret))
	if err != nil {
		if errors.Is(err, authstore.ErrUnauthorized) {
			return nil, errUnauthenticated
		}
		return nil, err
	}
	p := &Principal{Kind: KindToken, Role: tok.Role, Name: tok.Name, User: tok.User}
	if tok.User != "" {
		if _, err := s.activeUser(ctx, tok.User); err != nil {
			return nil, err
		}
	}
	return p, nil
}
