package dav

import (
	"encoding/base64"
	"errors"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/postern-dev/postern/internal/safetext"
)

// maxAuthorization caps the Authorization header: a user name and an app
// password take well under 200 bytes; an account password at most 1024.
const maxAuthorization = 4096

var (
	errNoCredentials    = errors.New("no credentials")
	errManyCredentials  = errors.New("more than one Authorization header")
	errBadAuthorization = errors.New("malformed Basic credentials")
)

// basicCredentials reads the one Basic credential of h (P8):
// exactly one Authorization header, the "Basic" scheme, one space, standard
// base64 with padding and nothing else, UTF-8 without control characters,
// a non-empty user name and password, and at most maxAuthorization bytes.
// It accepts a subset of what net/http's Request.BasicAuth accepts and,
// where both accept, returns the same user name and password.
func basicCredentials(h http.Header) (user, password string, err error) {
	vals := h.Values("Authorization")
	switch {
	case len(vals) == 0:
		return "", "", errNoCredentials
	case len(vals) > 1:
		return "", "", errManyCredentials
	}
	return parseBasic(vals[0])
}

func parseBasic(v string) (user, password string, err error) {
	const prefix = "Basic "
	if len(v) > maxAuthorization || len(v) <= len(prefix) || !strings.EqualFold(v[:len(prefix)], prefix) {
		return "", "", errBadAuthorization
	}
	enc := v[len(prefix):]
	// base64.StdEncoding skips CR and LF inside its input; nothing else may
	// be there either.
	for i := 0; i < len(enc); i++ {
		if c := enc[i]; !(c >= 'A' && c <= 'Z' || c >= 'a' && c <= 'z' || c >= '0' && c <= '9' || c == '+' || c == '/' || c == '=') {
			return "", "", errBadAuthorization
		}
	}
	raw, err := base64.StdEncoding.Strict().DecodeString(enc)
	if err != nil {
		return "", "", errBadAuthorization
	}
	s := string(raw)
	user, password, ok := strings.Cut(s, ":")
	if !ok || user == "" || password == "" || !utf8.ValidString(s) || safetext.HasControl(s) {
		return "", "", errBadAuthorization
	}
	return user, password, nil
}
