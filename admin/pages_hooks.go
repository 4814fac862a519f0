package admin

import (
	"errors"
	"net/http"
	"net/url"

	"github.com/postern-dev/postern/admin/api"
)

// What the pages rely on from the API's session machinery.
const csrfHeader = CSRFHeader

// csrf is the CSRF token the forms of this page carry: the one bound to the
// session cookie as it is now (it changes when the cookie rotates).
func (c *pageCall) csrf() string {
	if c.p.cfg.CSRFToken == nil {
		return ""
	}
	return c.p.cfg.CSRFToken(c.r.Context(), c.cookies[CookieName])
}

// refused reports whether the API turned down what the person typed (a
// code, a password, a form field), as opposed to the session or the server.
func refused(err error) bool {
	switch answerStatus(err) {
	case http.StatusUnauthorized, http.StatusUnprocessableEntity, http.StatusBadRequest, http.StatusConflict:
		return true
	}
	return false
}

// statusOf is the HTTP status of an API refusal, 0 for other errors.
func answerStatus(err error) int {
	var ae *api.Error
	if errors.As(err, &ae) {
		return ae.Status
	}
	return 0
}

func urlQuery(s string) string { return url.QueryEscape(s) }
