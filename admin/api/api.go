// Package api is the contract of postern's admin JSON API under /api/v1:
// the request and response bodies, the error answer and its codes, and a
// small client. The server (package admin), its OpenAPI document, the web
// pages and the command line's control client all use these types, so a
// renamed field breaks the build rather than a run.
//
// The package holds no logic of the server: what a route does, who may
// call it and how its answer is computed live in package admin.
package api

import (
	"errors"
	"fmt"

	"github.com/postern-dev/postern/authstore"
)

// Code names why a request was refused. It is stable: clients and pages
// decide by it, never by an error's message.
type Code string

// The codes the API answers with.
const (
	Unauthenticated Code = "unauthenticated" // 401: no credential, or a failed sign-in step
	Forbidden       Code = "forbidden"       // 403: the credential may not do this
	ReauthRequired  Code = "reauth_required" // 403: re-verify first (POST /api/v1/session/reauth)
	CSRF            Code = "csrf"            // 403: missing or wrong CSRF token, or a cross-site request
	NotFound        Code = "not_found"       // 404
	Conflict        Code = "conflict"        // 409: exists already, or not in a state that allows it
	Invalid         Code = "invalid"         // 422: a value was refused
	Throttled       Code = "throttled"       // 429, with Retry-After
	Unavailable     Code = "unavailable"     // 503, with Retry-After: the store cannot be used
	TooLarge        Code = "too_large"       // 400: a body over 64 KiB
	BadJSON         Code = "bad_json"        // 400: not one JSON object of the expected shape
	UnknownField    Code = "unknown_field"   // 400: a key that is no field's exact name
	DuplicateField  Code = "duplicate_field" // 400: a key given twice
)

// Error is the API's error answer, {"error":{"code":"…","message":"…"}},
// and inside the server the refusal of an operation, which the JSON
// handlers answer with a status and the pages with their own words.
type Error struct {
	Code    Code   `json:"code"`
	Message string `json:"message"`
	// Status is the HTTP status the answer came with; the server derives
	// it from Code.
	Status int `json:"-"`
	// RetryAfter is how many seconds to wait before trying again (the
	// Retry-After header of throttled and unavailable answers).
	RetryAfter int `json:"-"`
}

func (e *Error) Error() string {
	if msg := e.Message; msg != "" {
		return msg
	}
	return fmt.Sprintf("%s (HTTP %d)", e.Code, e.Status)
}

// Is maps the codes onto the store's errors, so a caller tests an answer
// of the API and an error of the store alike.
func (e *Error) Is(target error) bool {
	switch e.Code {
	case NotFound:
		return target == authstore.ErrNotFound
	case Conflict:
		return target == authstore.ErrExists
	case Invalid:
		return target == authstore.ErrInvalid
	case Unavailable:
		return target == authstore.ErrUnavailable
	}
	return false
}

// ErrorBody is the error answer on the wire.
type ErrorBody struct {
	Error Error `json:"error"`
}

// CodeOf is the code of err when it is an *Error, "" otherwise.
func CodeOf(err error) Code {
	var e *Error
	if errors.As(err, &e) {
		return e.Code
	}
	return ""
}

// CookieName is the web session cookie. The __Host- prefix makes browsers
// insist on Secure, Path=/ and no Domain, so no subdomain can set it.
const CookieName = "__Host-postern"

// CSRFHeader carries the CSRF token of a cookie session's state change.
const CSRFHeader = "X-CSRF-Token"

// The states of a web session, as SignInResponse.State names them.
const (
	StateSecondFactor = "second_factor" // password accepted, code pending: grants nothing (W2)
	StateEnroll       = "enroll"        // the org requires two-step and the user has none: may only enroll
	StateSignedIn     = "signed_in"
)
