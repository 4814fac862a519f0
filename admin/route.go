package admin

import (
	"context"
	"net/http"
	"reflect"
)

// access is who may call a route.
type access int

const (
	// accessOpen routes look at no credential (health, metrics, the document).
	accessOpen access = iota
	// accessSignIn routes start a sign-in: no credential, but a browser's
	// cross-site POST is refused (login CSRF).
	accessSignIn
	// accessPending routes need a half-done sign-in: password accepted, second
	// factor not yet given.
	accessPending
	// accessAnySession routes take any cookie session, half-done or not
	// (sign-out).
	accessAnySession
	// accessBrowser routes need a cookie session that finished signing in,
	// including an enrollment-only one (re-verification).
	accessBrowser
	// accessEnroll routes are what an enrollment-only session may do (two-step
	// set-up); full sessions, tokens and the CLI may call them too.
	accessEnroll
	// accessSelf routes need a signed-in user, or a token acting as one.
	accessSelf
	// accessAdmin routes need role admin.
	accessAdmin
)

var accessNames = map[access]string{accessOpen: "open", accessSignIn: "sign-in", accessPending: "pending", accessAnySession: "any-session",
	accessBrowser: "browser", accessEnroll: "enroll", accessSelf: "user", accessAdmin: "admin"}

func (a access) String() string { return accessNames[a] }

// route is one entry of the route table: how a request reaches one
// operation, and the declaration the operation is held to. The router, the
// access checks and the OpenAPI document are all built from the table, so
// they cannot disagree; a page that performs the operation names the entry
// and is held to the same declaration.
type route struct {
	Method string
	Path   string // a net/http pattern path: "/api/v1/users/{user}"
	Access access
	// Reauth requires a re-verification within policy.reauth_window for
	// cookie sessions (W1).
	Reauth bool
	// Guesses marks a route that verifies a password or code, so spends
	// a guess: at most maxGuessesPerSource run at once per address (A2).
	Guesses bool
	Summary string
	// Handle calls the operation: it decodes the JSON body, calls, and
	// encodes the answer.
	Handle endpoint
	// Status is the success status when not 200 or 204.
	Status int
	// Produces names a non-JSON answer's content type.
	Produces string
	// Query lists the query parameters, for the document.
	Query []string
}

// endpoint is how a route calls its operation: the JSON body type it
// decodes (in, nil for none), the answer type (out, nil for 204 unless the
// route Produces another type), and the call. The types come from the
// call's signature (jsonIO and its kin), so the document cannot describe
// a body other than the one the call takes.
type endpoint struct {
	in, out reflect.Type
	call    func(c *apiCall) (any, error)
}

// jsonIO calls f with the decoded body and answers its result.
func jsonIO[In, Out any](f func(c *apiCall, in *In) (Out, error)) endpoint {
	return endpoint{in: reflect.TypeFor[In](), out: reflect.TypeFor[Out](), call: func(c *apiCall) (any, error) {
		return f(c, c.In.(*In))
	}}
}

// jsonOut calls f, which takes no body, and answers its result.
func jsonOut[Out any](f func(c *apiCall) (Out, error)) endpoint {
	return endpoint{out: reflect.TypeFor[Out](), call: func(c *apiCall) (any, error) { return f(c) }}
}

// jsonIn calls f with the decoded body and answers 204.
func jsonIn[In any](f func(c *apiCall, in *In) error) endpoint {
	return endpoint{in: reflect.TypeFor[In](), call: func(c *apiCall) (any, error) { return nil, f(c, c.In.(*In)) }}
}

// noContent calls f, which takes no body, and answers 204.
func noContent(f func(c *apiCall) error) endpoint {
	return endpoint{call: func(c *apiCall) (any, error) { return nil, f(c) }}
}

// writes calls f, which writes its own answer (of the route's Produces
// type).
func writes(f func(c *apiCall) error) endpoint {
	return endpoint{call: func(c *apiCall) (any, error) { return handled, f(c) }}
}

// writesIn calls f with the decoded body; f writes its own answer (of the
// route's Produces type).
func writesIn[In any](f func(c *apiCall, in *In) error) endpoint {
	return endpoint{in: reflect.TypeFor[In](), call: func(c *apiCall) (any, error) { return handled, f(c, c.In.(*In)) }}
}

// handled is what a call returns after writing its own answer.
var handled = &struct{ handled bool }{true}

// apiCall is one request being served by a route.
type apiCall struct {
	W     http.ResponseWriter
	R     *http.Request
	Route *route
	P     *principal // the caller; without a credential on accessOpen and accessSignIn routes
	In    any        // *In of the route's endpoint, decoded
}

// ctx is the request's context, carrying the audit actor.
func (c *apiCall) ctx() context.Context { return c.R.Context() }

// param is a wildcard of the route's path.
func (c *apiCall) param(name string) string { return c.R.PathValue(name) }

// subject is the account the route acts on: the path's {user}, or the
// caller's own under /api/v1/me.
func (c *apiCall) subject() string {
	if u := c.R.PathValue("user"); u != "" {
		return u
	}
	return c.P.User
}

// handle serves a JSON route: admission (admit), then the strict body
// decoder (400), then the call's answer.
func (s *Server) handle(rt *route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		c := &apiCall{W: w, R: r, Route: rt}
		p, ctx, release, err := s.admit(rt, r, s.apiPrincipal, func() string { return csrfOf(r) })
		c.P = p
		if err != nil {
			s.fail(w, err)
			return
		}
		defer release()
		c.R = r.WithContext(ctx)
		s.serveJSON(c)
	})
}

func (s *Server) serveJSON(c *apiCall) {
	rt := c.Route
	if rt.Handle.in != nil {
		in := reflect.New(rt.Handle.in).Interface()
		if err := decodeJSON(c.R.Body, in); err != nil {
			writeError(c.W, err)
			return
		}
		c.In = in
	}
	out, err := rt.Handle.call(c)
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
}

func safeMethod(m string) bool {
	return m == http.MethodGet || m == http.MethodHead || m == http.MethodOptions
}
