package config

import (
	"crypto/x509"
	"errors"
	"fmt"
	"io/fs"
	"net"
	"net/url"
	"os"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/postern-dev/postern/internal/safetext"
)

// validator collects problems; each check names the key it concerns so the
// problem can be located in the file.
type validator struct {
	src  *source
	errs []Error
}

// add records a problem, unless key's value was left out of decoding: that
// value is reported already, and its default stood in.
func (v *validator) add(key, msg string) {
	if v.src.wasDropped(key) {
		return
	}
	v.errs = append(v.errs, v.src.problem(key, msg))
}

// required reports an empty value and tells whether there is one to check.
func (v *validator) required(key, val string) bool {
	if val == "" {
		v.add(key, "required")
	}
	return val != ""
}

func (v *validator) requiredFor(key, val, why string) {
	if val == "" {
		v.add(key, "required when "+why)
	}
}

func (v *validator) oneOf(key, val string, allowed ...string) {
	if slices.Contains(allowed, val) {
		return
	}
	quoted := make([]string, len(allowed))
	for i, a := range allowed {
		quoted[i] = strconv.Quote(a)
	}
	v.add(key, fmt.Sprintf("must be one of %s; got %q", strings.Join(quoted, ", "), val))
}

func (v *validator) between(key string, n, lo, hi int) {
	if n < lo || n > hi {
		v.add(key, fmt.Sprintf("must be between %d and %d", lo, hi))
	}
}

func (v *validator) duration(key string, d Duration, lo, hi time.Duration) {
	if d.Duration < lo || d.Duration > hi {
		v.add(key, fmt.Sprintf("must be between %s and %s", Duration{lo}, Duration{hi}))
	}
}

func (v *validator) noControls(key, val string) {
	if strings.ContainsFunc(val, safetext.Unsafe) {
		v.add(key, "must not contain control characters")
	}
}

// caFile checks that path holds at least one PEM certificate: a file of
// something else would pass as readable and fail every upstream handshake.
func (v *validator) caFile(key, path string) {
	if path == "" || !v.readable(key, path) {
		return
	}
	data, err := os.ReadFile(path)
	if err != nil {
		v.add(key, fmt.Sprintf("cannot read %q: %v", path, err))
		return
	}
	if !x509.NewCertPool().AppendCertsFromPEM(data) {
		v.add(key, fmt.Sprintf("%q holds no PEM certificate", path))
	}
}

func (v *validator) optionalFile(key, path string) {
	if path != "" {
		v.readable(key, path)
	}
}

// readable checks that path is a regular file this process can open.
// Stat comes first so that a FIFO or device is refused without opening it,
// which could block.
func (v *validator) readable(key, path string) bool {
	fi, err := os.Stat(path)
	if err == nil && !fi.Mode().IsRegular() {
		v.add(key, fmt.Sprintf("%q is not a regular file", path))
		return false
	}
	if err == nil {
		var f *os.File
		if f, err = os.Open(path); err == nil {
			err = f.Close()
		}
	}
	if err != nil {
		var pe *fs.PathError
		if errors.As(err, &pe) {
			err = pe.Err
		}
		v.add(key, fmt.Sprintf("cannot read %q: %v", path, err))
		return false
	}
	return true
}

// listenAddr checks host:port, where host may be empty (all addresses) and
// port may be 0 (any free port), and returns it in canonical form.
func (v *validator) listenAddr(key, addr string) (string, bool) {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil || strings.ContainsFunc(host, isSpaceOrControl):
		v.add(key, fmt.Sprintf("invalid address %q: want host:port, where host may be empty", addr))
	case !validPort(port, 0):
		v.add(key, fmt.Sprintf("invalid address %q: port must be a number from 0 to 65535", addr))
	default:
		return net.JoinHostPort(host, port), true
	}
	return "", false
}

// dialAddr checks an upstream's host:port, where both are required.
func (v *validator) dialAddr(key, addr string) {
	host, port, err := net.SplitHostPort(addr)
	switch {
	case err != nil || host == "" || strings.ContainsFunc(host, isSpaceOrControl):
		v.add(key, fmt.Sprintf("invalid address %q: want host:port", addr))
	case !validPort(port, 1):
		v.add(key, fmt.Sprintf("invalid address %q: port must be a number from 1 to 65535", addr))
	default:
	}
}

func validPort(s string, lowest int) bool {
	if s == "" || len(s) > 5 || strings.ContainsFunc(s, func(r rune) bool { return r < '0' || r > '9' }) {
		return false
	}
	n, err := strconv.Atoi(s)
	return err == nil && n >= lowest && n <= 65535
}

// httpURL checks an absolute http or https URL. Credentials in it are
// refused: URLs end up in logs and hints, passwords must not.
func (v *validator) httpURL(key, raw string) {
	u, err := url.Parse(raw)
	switch {
	case err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || strings.ContainsFunc(raw, isSpaceOrControl):
		v.add(key, fmt.Sprintf("must be an absolute http or https URL; got %q", raw))
	case u.User != nil:
		v.add(key, "must not contain a user name or password")
	case u.Fragment != "" || u.RawQuery != "":
		v.add(key, "must not contain a query or fragment")
	default:
	}
}

// urlPath checks a path such as "/dav/calendars/". Redirects use it as is,
// and a Location of "//host" would send clients to another host.
func (v *validator) urlPath(key, p string) {
	if !strings.HasPrefix(p, "/") || strings.HasPrefix(p, "//") || strings.ContainsAny(p, "?#\\") || strings.ContainsFunc(p, isSpaceOrControl) {
		v.add(key, fmt.Sprintf("must be a URL path starting with a single \"/\"; got %q", p))
	}
}

// hostname checks a name postern gives itself in SMTP (RFC 5321 section
// 4.1.2's Domain): dot-separated labels of letters, digits and hyphens.
// Empty is allowed: the system's host name stands in.
func (v *validator) hostname(key, name string) {
	if name == "" {
		return
	}
	ok := len(name) <= 255
	for _, label := range strings.Split(name, ".") {
		ok = ok && label != "" && len(label) <= 63 && label[0] != '-' && label[len(label)-1] != '-' &&
			!strings.ContainsFunc(label, func(r rune) bool { return !isLetterOrDigit(r) && r != '-' })
	}
	if !ok {
		v.add(key, fmt.Sprintf("must be a host name such as mail.example.org; got %q", name))
	}
}

func isLetterOrDigit(r rune) bool {
	return r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9'
}

// headerName checks an HTTP field name (RFC 9110 section 5.1: a token).
func (v *validator) headerName(key, name string) {
	if name == "" || strings.ContainsFunc(name, func(r rune) bool { return !isTokenRune(r) }) {
		v.add(key, fmt.Sprintf("must be an HTTP header name; got %q", name))
	}
}

func isTokenRune(r rune) bool {
	return isLetterOrDigit(r) || strings.ContainsRune("!#$%&'*+-.^_`|~", r)
}

func isSpaceOrControl(r rune) bool {
	return r == ' ' || safetext.Unsafe(r)
}
