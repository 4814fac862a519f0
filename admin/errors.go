package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"github.com/postern-dev/postern/internal/safetext"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/postern-dev/postern/admin/api"
	"github.com/postern-dev/postern/authstore"
)

// The errors of the API are *api.Error values with a code; the JSON
// handlers answer each code with its status (statusOf), the pages with
// their own words. Nothing decides by an error's message.

// codeEnrollFirst refuses an enrollment-only session anything but setting
// up two-step verification. The pages send the browser to the enrollment
// for it; the API answers it as forbidden, as it always has.
const codeEnrollFirst api.Code = "enroll_first"

func refuse(code api.Code, msg string) *api.Error { return &api.Error{Code: code, Message: msg} }

var (
	errUnauthenticated = refuse(api.Unauthenticated, "sign in or send an API token")
	errForbidden       = refuse(api.Forbidden, "not allowed for this account")
	errEnrollFirst     = refuse(codeEnrollFirst, "set up two-step verification first")
	errNoUser          = refuse(api.Forbidden, "this credential acts as no user")
	errBrowserOnly     = refuse(api.Forbidden, "only web sessions re-verify")
	errReauthRequired  = refuse(api.ReauthRequired, "confirm it is you again (POST /api/v1/session/reauth)")
	errCSRF            = refuse(api.CSRF, "missing or wrong CSRF token, or a cross-site request")
	errNotFound        = refuse(api.NotFound, "no such resource")
	errUnavailable     = &api.Error{Code: api.Unavailable, Message: "the store is unavailable; try again later", RetryAfter: 5}
	errThrottled       = &api.Error{Code: api.Throttled, Message: "too many attempts; try again later", RetryAfter: 15}
)

func invalid(msg string) *api.Error { return refuse(api.Invalid, msg) }

// statusOf is the HTTP status the API answers a code with.
func statusOf(code api.Code) int {
	switch code {
	case api.Unauthenticated:
		return http.StatusUnauthorized
	case api.Forbidden, codeEnrollFirst, api.ReauthRequired, api.CSRF:
		return http.StatusForbidden
	case api.NotFound:
		return http.StatusNotFound
	case api.Conflict:
		return http.StatusConflict
	case api.Invalid:
		return http.StatusUnprocessableEntity
	case api.Throttled:
		return http.StatusTooManyRequests
	case api.TooLarge, api.BadJSON, api.UnknownField, api.DuplicateField:
		return http.StatusBadRequest
	}
	return http.StatusServiceUnavailable
}

// asAPIError maps an error to its answer: domain errors of the store to
// not_found, conflict and invalid, ErrThrottled to throttled, anything
// else to unavailable (fail closed: an unknown failure is never reported
// as success or as the caller's fault).
func asAPIError(err error) *api.Error {
	var ae *api.Error
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, authstore.ErrThrottled):
		return errThrottled
	case errors.Is(err, authstore.ErrUnavailable):
		return errUnavailable
	case errors.Is(err, authstore.ErrNotFound):
		return refuse(api.NotFound, err.Error())
	case errors.Is(err, authstore.ErrExists), errors.Is(err, authstore.ErrState):
		return refuse(api.Conflict, err.Error())
	case errors.Is(err, authstore.ErrInvalid):
		return invalid(err.Error())
	case errors.Is(err, authstore.ErrUnauthorized):
		return invalid("the code was not accepted")
	}
	return errUnavailable
}

func (s *Server) fail(w http.ResponseWriter, err error) {
	ae := asAPIError(err)
	if ae == errUnavailable {
		s.log.Error("admin request failed", "err", err)
	}
	writeError(w, ae)
}

func writeError(w http.ResponseWriter, err error) {
	ae := asAPIError(err)
	if ae.RetryAfter > 0 {
		w.Header().Set("Retry-After", strconv.Itoa(ae.RetryAfter))
	}
	code := ae.Code
	if code == codeEnrollFirst { // secret-compare: ok (an API error code)
		code = api.Forbidden
	}
	writeJSON(w, statusOf(ae.Code), api.ErrorBody{Error: api.Error{Code: code, Message: ae.Message}})
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	data, err := json.Marshal(v)
	if err != nil {
		status, data = http.StatusInternalServerError, []byte(`{"error":{"code":"unavailable","message":"encoding failed"}}`)
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	w.Write(append(data, '\n'))
}

// maxBody is the largest JSON request body accepted.
const maxBody = 64 << 10

var (
	errTooLarge = refuse(api.TooLarge, "request body over 64 KiB")
	errBadJSON  = refuse(api.BadJSON, "request body is not one JSON object of the expected shape")
)

// decodeJSON reads one JSON value into v strictly: at most MaxBody bytes,
// every key exactly a field's name and none twice (checkKeys), nothing
// after the value. An empty body is {}.
func decodeJSON(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, maxBody+1))
	if err != nil {
		return errBadJSON
	}
	if len(data) > maxBody {
		return errTooLarge
	}
	if len(bytes.TrimSpace(data)) == 0 {
		data = []byte("{}")
	}
	if err := checkKeys(json.NewDecoder(bytes.NewReader(data)), reflect.TypeOf(v), 0); err != nil {
		return err
	}
	dec := json.NewDecoder(bytes.NewReader(data))
	dec.DisallowUnknownFields()
	if err := dec.Decode(v); err != nil {
		if msg, ok := strings.CutPrefix(err.Error(), "json: unknown field "); ok {
			return refuse(api.UnknownField, "unknown field "+clipField(msg))
		}
		return errBadJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		return errBadJSON
	}
	return nil
}

// clipField keeps an echoed field name short and safe to show.
func clipField(s string) string {
	if len(s) > 66 {
		return safetext.Show(safetext.Clip(s, 66)) + "…"
	}
	return safetext.Show(s)
}
