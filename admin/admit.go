package admin

import (
	"context"
	"net/http"

	"github.com/postern-dev/postern/authstore"
)

// admit lets the caller of r through rt's declaration, or refuses it: it
// resolves the caller (resolve) and holds it to the declaration
// (authorize), takes one of the source's guess slots for a route that
// spends a guess, and returns r's context with the caller as the audit
// actor. The JSON routes and the pages both come through here, so a page
// can do nothing the route it names would refuse. The caller calls release
// when the request is done. On a refusal p is still the caller as far as
// it was resolved (at least its address).
func (s *Server) admit(rt *route, r *http.Request, resolve func(*http.Request) (*principal, error),
	csrf func() string) (p *principal, ctx context.Context, release func(), err error) {
	p, err = s.authorize(rt, r, resolve, csrf)
	if err != nil {
		s.log.Debug("admin request refused", "method", r.Method, "route", rt.Path, "source", p.Source, "answer", asAPIError(err).Code)
		return p, nil, nil, err
	}
	release = func() {}
	if rt.Guesses {
		var ok bool
		if release, ok = s.guesses.enter(p.Source); !ok {
			s.log.Debug("admin request refused", "method", r.Method, "route", rt.Path, "source", p.Source, "answer", "busy")
			return p, nil, nil, errBusy
		}
	}
	ctx = r.Context()
	if p.Kind != "" {
		s.log.Debug("admin request", "method", r.Method, "route", rt.Path, "source", p.Source, "actor", p.actor(rt.Access))
		ctx = p.auditing(ctx, rt.Access)
	}
	return p, ctx, release, nil
}

// authorize resolves the caller of r and enforces rt's entry, in order:
// credential (401), CSRF for cookie state changes (403 csrf; csrf is the
// token the request carries), access (401/403), re-verification (403
// reauth_required).
func (s *Server) authorize(rt *route, r *http.Request, resolve func(*http.Request) (*principal, error), csrf func() string) (*principal, error) {
	anon := s.anonymous(r)
	switch rt.Access {
	case accessOpen:
		return anon, nil
	case accessSignIn:
		return anon, s.checkOrigin(r)
	}
	p, err := resolve(r)
	if err != nil {
		return anon, err
	}
	if p.Session != nil && !safeMethod(r.Method) {
		if err := s.checkCSRF(r, p.Session, csrf()); err != nil {
			return p, err
		}
	}
	if err := p.allowed(rt.Access); err != nil {
		return p, err
	}
	if rt.Reauth && p.Session != nil && !s.reauthFresh(p.Session) {
		return p, errReauthRequired
	}
	if rt.Reauth && p.Kind == kindToken && p.Role != authstore.RoleAdmin { // secret-compare: ok (kinds and roles)
		return p, errReauthRequired // a user token cannot re-verify; only the operator's tokens skip it
	}
	return p, nil
}
