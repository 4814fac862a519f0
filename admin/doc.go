// Package admin serves postern's admin side over HTTPS and the control
// socket: the JSON API under /api/v1, /healthz, /readyz, /metrics and the
// OpenAPI document. It owns web sessions, CSRF protection and the
// re-verification window; the store (authstore) owns every credential and
// decision, and the proxy's registry owns live mail sessions. It never
// reads a secret back out of the store, and never decides a credential
// itself: sign-in and re-verification go through authstore.Authenticate and
// VerifySecondFactor with protocol "web", so they share the mail
// protocols' failure budgets.
//
// # The route table
//
// Every route is one Route entry (method, path, handler, Access, Reauth,
// Guesses, body types). New builds the router from the table, Authorize enforces
// each entry, and the OpenAPI document is generated from it, so the three
// cannot disagree. Server.table lists the tables; page routes add theirs
// there.
//
// # Who may call what
//
// Principal resolves a request's caller, in order: the control socket
// (admin "cli:<uid>"), a bearer token (pst_…, role admin or a user's own,
// audited as "token:<name>"), or the __Host-postern cookie. Authorize then
// checks, for the route entry:
//
//   - a credential (401 unauthenticated); a half-done sign-in counts as
//     none except for Pending and AnySession routes (W2);
//   - for a cookie state change, the CSRF token (header X-CSRF-Token or
//     form field csrf_token, see CSRFToken) and the browser's
//     Sec-Fetch-Site/Origin (403 csrf);
//   - the Access level (403 forbidden; an enrollment-only session may
//     only call Enroll routes);
//   - with Reauth, a re-verification within Config.ReauthWindow on the
//     injected monotonic clock (403 reauth_required). Admin tokens and the
//     control socket are the operator and skip CSRF and re-verification.
//
// A route marked Guesses (it verifies a password or code) then takes one
// of the few slots its client's address has for such requests in flight
// (429 throttled when none is free), so parallel guesses from one address
// wait for the store's per-source delay like sequential ones.
//
// Page handlers reuse the same machinery: build a Route with the page's
// Access and Reauth and wrap the page with Server.Enforce (which runs
// Authorize and hands refusals to the page's own error renderer), read the
// caller from Call.P, embed CSRFToken(c.P.Session) in
// forms (field csrf_token), and use ReauthUntil to show the window. The
// sign-in steps are SignIn, SecondFactor, Reauth and SignOut, shared by the
// JSON routes and the pages; their errors are *apiError values whose
// status and code a page maps to its own message.
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
