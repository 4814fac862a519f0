// Package admin serves postern's admin side over HTTPS and the control
// socket: the JSON API under /api/v1, /healthz, /readyz, /metrics, the
// OpenAPI document, and the web pages. It owns web sessions, CSRF
// protection and the re-verification window; the store (authstore) owns
// every credential and decision, and the proxy's registry owns live mail
// sessions. It never reads a secret back out of the store, and never
// decides a credential itself: sign-in and re-verification go through
// authstore.Authenticate and VerifySecondFactor with protocol "web", so
// they share the mail protocols' failure budgets. The request and response
// types of the API are package admin/api, which the command line's control
// client uses too.
//
// # Operations
//
// Each thing the admin side does is one typed operation on the Server that
// takes the acting principal (revokeAppPassword(ctx, who, user, id),
// createUser(ctx, who, in), signIn, setPolicy, …), grouped by concern:
// signin.go, users.go, apppw.go, mfa.go, upstream.go, policy.go,
// livesessions.go, audit.go, tokens.go. The JSON routes, the pages and, through
// the JSON routes, the control socket all call them. An operation refuses
// with an *api.Error whose code (enroll_first, reauth_required, not_found,
// …) the JSON routes answer with a status (statusOf) and the pages with
// their own words; errors of the store map to codes in asAPIError. Nothing
// decides by an error's message.
//
// # The route table
//
// Every route is one route entry: method, path, the declaration the
// operation is held to (access, Reauth, Guesses) and an endpoint that
// decodes the JSON body, calls the operation and encodes its answer
// (jsonIO and its kin, whose types the OpenAPI document reads). New
// builds the router from the table and the OpenAPI document from the same
// entries, so they cannot disagree. Every page route names the API route
// whose declaration it is held to.
//
// # Who may call what
//
// admit lets a request through a declaration, for the JSON routes and the
// pages alike. It resolves the caller (a principal): the control socket's
// peer (admin "cli:<uid>"), a bearer token (pst_…, role admin or a user's
// own, audited as "token:<name>"; JSON routes only), or the __Host-postern
// cookie. authorize then checks, for the entry:
//
//   - a credential (401 unauthenticated); a half-done sign-in counts as
//     none except for accessPending and accessAnySession routes (W2);
//   - for a cookie state change, the CSRF token (header X-CSRF-Token, or
//     the form field csrf_token) and the browser's Sec-Fetch-Site/Origin
//     (403 csrf);
//   - the access level (403 forbidden; an enrollment-only session may
//     only call accessEnroll routes and is refused with enroll_first,
//     which the API answers as forbidden);
//   - with Reauth, a re-verification within Config.ReauthWindow on the
//     injected monotonic clock (403 reauth_required). Admin tokens and the
//     control socket are the operator and skip CSRF and re-verification.
//
// A route marked Guesses (it verifies a password or code) then takes one
// of the few slots its client's address has for such requests in flight
// (429 throttled when none is free), so parallel guesses from one address
// wait for the store's per-source delay like sequential ones. admit puts
// the caller into the context as the audit actor.
//
// # Pages
//
// A page request is admitted once, through the declaration its route
// names, with the form's CSRF token; the handler then calls operations
// with the admitted principal and renders. Sign-in, the second step,
// re-verification and sign-out set or clear the cookie themselves and go
// on as the rotated session. When an action needs a re-verification the
// page asks for it and then replays the action in-process, to a local
// path only (localPath, the check behind the sign-in's next too).
//
// # Web sessions
//
// A session id is 128 random bits in the __Host-postern cookie (Secure,
// HttpOnly, SameSite=Strict), stored in the store under its HMAC and
// written only at sign-in, re-verification and sign-out; every step of a
// sign-in and every re-verification issues a new id and deletes the old
// one. Sessions end after 30 idle minutes and 12 hours in all (a half-done
// sign-in after 10 minutes), and at sign-out, on the server. Activity and
// re-verification times are kept in memory on the monotonic clock; after a
// restart a session counts from its stored times (Close saves the last
// activity at shutdown) and must re-verify again.
package admin
