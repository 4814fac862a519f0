package admin

import (
	"bytes"
	"encoding/json"
	"errors"
	"io"
	"net/http"
	"reflect"
	"strconv"
	"strings"

	"github.com/postern-dev/postern/authstore"
)

// apiError is an answer of the error format
// {"error":{"code":"…","message":"…"}}.
type apiError struct {
	Status     int
	Code       string
	Message    string
	RetryAfter int // seconds, for 429 and 503
}

func (e *apiError) Error() string { return e.Code + ": " + e.Message }

// errorBody is the error format on the wire.
type errorBody struct {
	Error errorDetail `json:"error"`
}

type errorDetail struct {
	Code    string `json:"code"`
	Message string `json:"message"`
}

func newError(status int, code, msg string) *apiError {
	return &apiError{Status: status, Code: code, Message: msg}
}

var (
	errUnauthenticated = newError(http.StatusUnauthorized, "unauthenticated", "sign in or send an API token")
	errForbidden       = newError(http.StatusForbidden, "forbidden", "not allowed for this account")
	errEnrollFirst     = newError(http.StatusForbidden, "forbidden", "set up two-step verification first")
	errNoUser          = newError(http.StatusForbidden, "forbidden", "this credential acts as no user")
	errReauthRequired  = newError(http.StatusForbidden, "reauth_required", "confirm it is you again (POST /api/v1/session/reauth)")
	errCSRF            = newError(http.StatusForbidden, "csrf", "missing or wrong CSRF token, or a cross-site request")
	errNotFound        = newError(http.StatusNotFound, "not_found", "no such resource")
	errUnavailable     = &apiError{Status: http.StatusServiceUnavailable, Code: "unavailable", Message: "the store is unavailable; try again later", RetryAfter: 5}
	errThrottled       = &apiError{Status: http.StatusTooManyRequests, Code: "throttled", Message: "too many attempts; try again later", RetryAfter: 15}
)

func invalid(msg string) *apiError { return newError(http.StatusUnprocessableEntity, "invalid", msg) }

// asAPIError maps an error to its answer: domain errors of the store to
// 404/409/422, ErrThrottled to 429, anything else to 503 (fail closed: an
// unknown failure is never reported as success or as the caller's fault).
func asAPIError(err error) *apiError {
	var ae *apiError
	switch {
	case errors.As(err, &ae):
		return ae
	case errors.Is(err, authstore.ErrThrottled):
		return errThrottled
	case errors.Is(err, authstore.ErrUnavailable):
		return errUnavailable
	case errors.Is(err, authstore.ErrNotFound):
		return newError(http.StatusNotFound, "not_found", err.Error())
	case errors.Is(err, authstore.ErrExists):
		return newError(http.StatusConflict, "conflict", err.Error())
	case errors.Is(err, authstore.ErrState):
		return newError(http.StatusConflict, "conflict", err.Error())
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
	writeJSON(w, ae.Status, errorBody{errorDetail{Code: ae.Code, Message: ae.Message}})
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

// MaxBody is the largest JSON request body accepted.
const MaxBody = 64 << 10

var (
	errTooLarge = newError(http.StatusBadRequest, "too_large", "request body over 64 KiB")
	errBadJSON  = newError(http.StatusBadRequest, "bad_json", "request body is not one JSON object of the expected shape")
)

// decodeJSON reads one JSON value into v strictly: at most MaxBody bytes,
// every key exactly a field's name and none twice (checkKeys), nothing
// after the value. An empty body is {}.
func decodeJSON(r io.Reader, v any) error {
	data, err := io.ReadAll(io.LimitReader(r, MaxBody+1))
	if err != nil {
		return errBadJSON
	}
	if len(data) > MaxBody {
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
			return newError(http.StatusBadRequest, "unknown_field", "unknown field "+clipField(msg))
		}
		return errBadJSON
	}
	if _, err := dec.Token(); err != io.EOF {
		return errBadJSON
	}
	return nil
}

// clipField keeps an echoed field name short and printable.
func clipField(s string) string {
	s = strings.Map(func(r rune) rune {
		if r < 0x20 || r == 0x7f {
			return '?'
		}
		return r
	}, s)
	if len(s) > 66 {
		s = strings.ToValidUTF8(s[:66], "") + "…"
	}
	return s
}
