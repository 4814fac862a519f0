package dav

import (
	"errors"
	"net/url"
	"strings"
	"unicode/utf8"

	"github.com/postern-dev/postern/internal/safetext"
)

// errPathNotCanonical is why a request path was refused: the scope of an
// app password is chosen by the path's segments, so they must be the ones
// the upstream acts on (P8).
var errPathNotCanonical = errors.New("the request path is not in canonical form")

// canonicalPath returns the path of a request target when it is in the one
// form every server resolves alike, and an error otherwise. The upstream
// decodes the path once and then normalises it (Radicale, as a WSGI
// application, sees PATH_INFO decoded and drops "." and ".." segments and
// empty ones; other servers strip ";" parameters, read "\" as "/" or
// decode twice). A path that any of these steps would change is refused,
// so that the segments the scope is chosen by are the segments the
// upstream resolves:
//
//   - an origin-form path (absolute-form targets give theirs; "*" and
//     opaque targets are refused);
//   - as sent: no encoded "/", "\" or "." (%2f %5c %2e in any case);
//   - decoded: valid UTF-8 without control characters, no "\", "%" (a
//     second decoding), ";" (path parameters, "..;"), and no empty, "."
//     or ".." segment (only the last segment may be empty: a collection's
//     trailing "/").
func canonicalPath(u *url.URL) (string, error) {
	if u.Opaque != "" {
		return "", errPathNotCanonical
	}
	p := u.Path
	if !strings.HasPrefix(p, "/") || hasEncodedSeparator(u.RawPath) {
		return "", errPathNotCanonical
	}
	if !utf8.ValidString(p) || safetext.HasControl(p) || strings.ContainsAny(p, `\%;`) {
		return "", errPathNotCanonical
	}
	for rest := p[1:]; ; {
		seg, after, more := strings.Cut(rest, "/")
		if seg == "." || seg == ".." || (seg == "" && more) {
			return "", errPathNotCanonical
		}
		if !more {
			return p, nil
		}
		rest = after
	}
}

// hasEncodedSeparator reports %2f, %5c or %2e in a path as sent. (Go keeps
// the path as sent in RawPath whenever it differs from the default
// encoding, and its default encoding writes "/" and "." as they are and
// "\" as %5C, so any of these in a path as sent leaves RawPath set, or
// "\" in the decoded path.)
func hasEncodedSeparator(raw string) bool {
	raw = strings.ToLower(raw)
	return strings.Contains(raw, "%2f") || strings.Contains(raw, "%5c") || strings.Contains(raw, "%2e")
}
