package admin

import (
	"context"
	"errors"
	"net/http"
	"net/netip"
	"strings"

	"github.com/postern-dev/postern/authstore"
)

// Principal kinds.
const (
	kindSession = "session" // a browser's cookie session
	kindToken   = "token"   // Authorization: Bearer pst_…
	kindCLI     = "cli"     // the control socket
)

// principal is who makes a request, and from where: every operation
// takes the principal it acts for.
type principal struct {
	Kind string // "" for a caller without a credential (sign-in, open routes)
	// User is the canonical user the principal acts as on /me routes;
	// empty for the CLI and for admin tokens made without a user.
	User string
	Role authstore.Role
	// Name is what the audit log calls the principal: the user for
	// sessions, the token's name, or "cli:<uid>".
	Name    string
	Session *session // cookie principals only
	// Source is the client's address (see clientAddr), Client its
	// User-Agent: what a sign-in attempt records.
	Source netip.Addr
	Client string
	// account is the session's user as the request found it.
	account authstore.User
}

// anonymous is the caller of r before any credential is looked at.
func (s *Server) anonymous(r *http.Request) *principal {
	return &principal{Source: s.clientAddr(r), Client: r.UserAgent()}
}

// rotated is p acting through its session's successor (a sign-in step
// or a re-verification rotated the id).
func (p *principal) rotated(sess *session) *principal {
	next := *p
	next.Session = sess
	return &next
}

// auditing is ctx with the principal as the audit actor of what it changes
// through a route of access a.
func (p *principal) auditing(ctx context.Context, a access) context.Context {
	return authstore.WithActor(ctx, authstore.Actor{Name: p.actor(a), Source: p.Source})
}

// actor is the audit actor: "admin:alice" or "self:alice" for a session
// (by the route acted through), "token:<name>", "cli:<uid>".
func (p *principal) actor(a access) string {
	switch p.Kind {
	case kindToken:
		return "token:" + p.Name
	case kindCLI:
		return p.Name
	case kindSession:
		if a == accessAdmin {
			return "admin:" + p.Name
		}
		return "self:" + p.Name
	}
	return "unknown"
}

// allowed checks the principal against a route's access level. A
// half-done sign-in is no credential at all for anything but its next step
// and sign-out (W2).
func (p *principal) allowed(a access) error {
	var state string
	if p.Session != nil {
		state = p.Session.State
	}
	switch a {
	case accessPending:
		if state != stateSecondFactor {
			return errUnauthenticated
		}
		return nil
	case accessAnySession:
		if p.Session == nil {
			return errUnauthenticated
		}
		return nil
	}
	if state == stateSecondFactor {
		return errUnauthenticated
	}
	switch a {
	case accessBrowser:
		if p.Session == nil {
			return errBrowserOnly
		}
	case accessEnroll:
	case accessSelf:
		if state == stateEnroll {
			return errEnrollFirst
		}
	case accessAdmin:
		if state == stateEnroll {
			return errEnrollFirst
		}
		if p.Role != authstore.RoleAdmin {
			return errForbidden
		}
		return nil
	}
	if p.User == "" && a != accessBrowser {
		return errNoUser
	}
	return nil
}

// apiPrincipal returns the signed-in principal of a request: a bearer token,
// the control socket's peer, or a live cookie session (which may be a
// half-done sign-in; check with the route's access level). It answers
// errUnauthenticated when there is none.
func (s *Server) apiPrincipal(r *http.Request) (*principal, error) {
	h := r.Header.Values("Authorization")
	if _, cli := controlPeer(r.Context()); cli || len(h) == 0 {
		return s.pagePrincipal(r)
	}
	p := s.anonymous(r)
	if err := s.tokenPrincipal(r.Context(), h, p); err != nil {
		return nil, err
	}
	return p, nil
}

// pagePrincipal is the caller of a page: the control socket's peer, or
// the session of the cookie. Pages take no bearer token.
func (s *Server) pagePrincipal(r *http.Request) (*principal, error) {
	p := s.anonymous(r)
	if uid, ok := controlPeer(r.Context()); ok {
		p.Kind, p.Role, p.Name = kindCLI, authstore.RoleAdmin, "cli:"+uid
		return p, nil
	}
	if err := s.sessionPrincipal(r, p); err != nil {
		return nil, err
	}
	return p, nil
}

// sessionPrincipal makes p the principal of r's cookie session.
func (s *Server) sessionPrincipal(r *http.Request, p *principal) error {
	sess, err := s.sessionOf(r)
	if err != nil {
		return err
	}
	u, err := s.activeUser(r.Context(), sess.User)
	if err != nil {
		return err
	}
	p.Kind, p.User, p.Role, p.Name, p.Session, p.account = kindSession, u.Name, u.Role, u.Name, sess, u
	return nil
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

// tokenPrincipal makes p the principal of a bearer token.
func (s *Server) tokenPrincipal(ctx context.Context, h []string, p *principal) error {
	secret, ok := strings.CutPrefix(h[0], "Bearer ")
	if len(h) != 1 || !ok {
		return errUnauthenticated
	}
	tok, err := s.store.VerifyToken(ctx, strings.TrimSpace(secret))
	if err != nil {
		if errors.Is(err, authstore.ErrUnauthorized) {
			return errUnauthenticated
		}
		return err
	}
	if tok.User != "" {
		if _, err := s.activeUser(ctx, tok.User); err != nil {
			return err
		}
	}
	p.Kind, p.Role, p.Name, p.User = kindToken, tok.Role, tok.Name, tok.User
	return nil
}
