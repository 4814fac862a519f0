package admin

import (
	"net/http"
	"net/netip"
	"reflect"

	"github.com/postern-dev/postern/authstore"
)

// Access is who may call a route.
type Access int

const (
	// Open routes look at no credential (health, metrics, the document).
	Open Access = iota
	// SignIn routes start a sign-in: no credential, but a browser's
	// cross-site POST is refused (login CSRF).
	SignIn
	// Pending routes need a half-done sign-in: password accepted, second
	// factor not yet given.
	Pending
	// AnySession routes take any cookie session, half-done or not
	// (sign-out).
	AnySession
	// Browser routes need a cookie session that finished signing in,
	// including an enrollment-only one (re-verification).
	Browser
	// Enroll routes are what an enrollment-only session may do (two-step
	// set-up); full sessions, tokens and the CLI may call them too.
	Enroll
	// Self routes need a signed-in user, or a token acting as one.
	Self
	// Admin routes need role admin.
	Admin
)

var accessNames = map[Access]string{Open: "open", SignIn: "sign-in", Pending: "pending", AnySession: "any-session",
	Browser: "browser", Enroll: "enroll", Self: "user", Admin: "admin"}

func (a Access) String() string { return accessNames[a] }

// Route is one entry of the route table. The router, the access checks
// and the OpenAPI document are all built from the table, so they cannot
// disagree.
type Route struct {
	Method string
	Path   string // a net/http pattern path: "/api/v1/users/{user}"
	Access Access
	// Reauth requires a re-verification within policy.reauth_window for
	// cookie sessions (W1).
	Reauth bool
	// Guesses marks a route that verifies a password or code, so spends
	// a guess: at most maxGuessesPerSource run at once per address (A2).
	Guesses bool
	Summary string
	// Handle does the work. It returns the JSON answer, nil for 204, or
	// handled when it wrote the answer itself.
	Handle func(c *Call) (any, error)
	// In is the JSON request body type (decoded before Handle, strictly);
	// nil means the route takes no body.
	In reflect.Type
	// Out is the JSON answer type; nil with Produces empty means 204.
	Out reflect.Type
	// Status is the success status when not 200 or 204.
	Status int
	// Produces names a non-JSON answer's content type.
	Produces string
	// Query lists the query parameters, for the document.
	Query []string
}

// handled is what a Handle returns after writing its own answer.
var handled = &struct{ handled bool }{true}

// Call is one request being served by a route.
type Call struct {
	W      http.ResponseWriter
	R      *http.Request
	Route  *Route
	P      *Principal // nil on Open and SignIn routes
	Source netip.Addr // the client (see clientAddr)
	In     any        // *Route.In, decoded
	srv    *Server
}

// Enforce is the route-entry middleware: it resolves the caller and checks
// it against rt (Authorize), puts the audit actor into the request's
// context, then calls next. A refusal goes to fail instead; the JSON API
// answers it in the error format, pages render their own.
func (s *Server) Enforce(rt *Route, next func(c *Call), fail func(c *Call, err error)) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &Call{W: w, R: r, Route: rt, srv: s, Source: s.clientAddr(r)}
		if err := s.Authorize(c); err != nil {
			s.log.Debug("admin request refused", "method", r.Method, "route", rt.Path, "source", c.Source, "answer", asAPIError(err).Code)
			fail(c, err)
			return
		}
		if rt.Guesses {
			release, ok := s.guesses.enter(c.Source)
			if !ok {
				s.log.Debug("admin request refused", "method", r.Method, "route", rt.Path, "source", c.Source, "answer", "busy")
				fail(c, errBusy)
				return
			}
			defer release()
		}
		if c.P != nil {
			s.log.Debug("admin request", "method", r.Method, "route", rt.Path, "source", c.Source, "actor", c.P.actor(rt.Access))
			ctx := authstore.WithActor(r.Context(), authstore.Actor{Name: c.P.actor(rt.Access), Source: c.Source})
			c.R = r.WithContext(ctx)
		}
		next(c)
	})
}

// handle serves a JSON route: Enforce, then the strict body decoder
// (400), then the handler's answer.
func (s *Server) handle(rt *Route) http.Handler {
	return s.Enforce(rt, func(c *Call) {
		if rt.In != nil {
			in := reflect.New(rt.In).Interface()
			if err := decodeJSON(c.R.Body, in); err != nil {
				writeError(c.W, err)
				return
			}
			c.In = in
		}
		out, err := rt.Handle(c)
		switch {
		case err != nil:
			s.fail(c.W, err)
		case out == handled:
		case out == nil:
			c.W.WriteHeader(http.StatusNoContent)
		default:
			status := rt.Status
			if status == 0 {
				status = http.StatusOK
			}
			writeJSON(c.W, status, out)
		}
	}, func(c *Call, err error) { s.fail(c.W, err) })
}

// Authorize resolves the caller of c and enforces c.Route's entry, in
// order: credential (401), CSRF for cookie state changes (403 csrf), access
// (401/403), re-verification (403 reauth_required). It sets c.P.
func (s *Server) Authorize(c *Call) error {
	rt := c.Route
	switch rt.Access {
	case Open:
		return nil
	case SignIn:
		return s.checkOrigin(c.R)
	}
	p, err := s.Principal(c.R)
	if err != nil {
		return err
	}
	c.P = p
	if p.Session != nil && !safeMethod(c.R.Method) {
		if err := s.checkCSRF(c.R, p.Session); err != nil {
			return err
		}
	}
	if err := p.allowed(rt.Access); err != nil {
		return err
	}
	if rt.Reauth && p.Session != nil && !s.reauthFresh(p.Session) {
		return errReauthRequired
	}
	if rt.Reauth && p.Kind == KindToken && p.Role != authstore.RoleAdmin { // secret-compare: ok (kinds and roles)
		return errReauthRequired // a user token cannot re-verify; only the operator's tokens skip it
	}
	return nil
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}

// typeOf is reflect.TypeFor for route entries.
func typeOf[T any]() reflect.Type { return reflect.TypeFor[T]() }
