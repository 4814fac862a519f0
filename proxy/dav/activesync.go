package dav

import (
	"crypto/tls"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/postern-dev/postern/internal/safetext"
	"github.com/postern-dev/postern/proxy"
)

// ActiveSyncConfig serves Exchange ActiveSync beside DAV: requests to
// Path go to the ActiveSync server, authenticated for the activesync
// scope like any DAV request (Basic on every request, the decision
// cache, 401, 503, kicks), with their WBXML bodies streamed untouched.
type ActiveSyncConfig struct {
	// Upstream is the ActiveSync endpoint, path included (SOGo:
	// http://127.0.0.1:20000/SOGo/Microsoft-Server-ActiveSync); nil
	// turns ActiveSync off.
	Upstream *url.URL
	// Path is where clients send ActiveSync (/Microsoft-Server-ActiveSync);
	// its first segment matches in any letter case, as Exchange's does.
	Path string
	// UpstreamTLS verifies an https upstream (nil: the system roots).
	UpstreamTLS *tls.Config
	// UpstreamAuth picks the header or the stored password; UserHeader
	// is the header (x-webobjects-remote-user when empty).
	UpstreamAuth UpstreamAuth
	UserHeader   string
	// MasterPassword goes upstream as Basic beside the header, with
	// x-webobjects-auth-type: Basic: SOGo, trusting a proxy, logs in to
	// IMAP with that password as the user's imap_login (Dovecot's master
	// user).
	MasterPassword string
	// DialTimeout bounds a connection to the upstream (default
	// proxy.DefaultDialTimeout); ResponseTimeout the wait for an answer's
	// header (default 61 minutes: a phone's Ping and Sync wait up to 59).
	DialTimeout, ResponseTimeout time.Duration
	// DisableKeepAlives opens a new upstream connection per request: SOGo
	// closes each after its answer without saying so.
	DisableKeepAlives bool
	// Transport replaces the upstream transport (tests).
	Transport http.RoundTripper
}

// DefaultActiveSyncTimeout is the longest wait for an ActiveSync answer
// by default: MS-ASCMD lets a Ping's HeartbeatInterval and a Sync's Wait
// reach 59 minutes, and the answer comes after them.
const DefaultActiveSyncTimeout = 61 * time.Minute

// sogoAuthType tells SOGo, trusting a proxy, that Basic carries the
// password it logs in to IMAP with; sogoHeaders are all the headers its
// web server layer (SOPE) takes as a proxy's word: the user, that auth
// type, the server's name, port and URL it writes links with.
const (
	sogoAuthType = "X-Webobjects-Auth-Type"
	sogoHeaders  = "X-Webobjects-*"
)

// withDefaults checks an ActiveSync configuration that is on and fills in
// its defaults.
func (c *ActiveSyncConfig) withDefaults() error {
	if c.Upstream == nil {
		return nil
	}
	if c.Upstream.Host == "" || (c.Upstream.Scheme != "http" && c.Upstream.Scheme != "https") {
		return errors.New("dav: the ActiveSync upstream must be an absolute http or https URL")
	}
	if !strings.HasPrefix(c.Path, "/") || len(c.Path) < 2 || strings.HasSuffix(c.Path, "/") {
		return errors.New("dav: the ActiveSync path must be a path such as /Microsoft-Server-ActiveSync")
	}
	if c.UserHeader == "" {
		c.UserHeader = "X-Webobjects-Remote-User"
	}
	if c.DialTimeout <= 0 {
		c.DialTimeout = proxy.DefaultDialTimeout
	}
	if c.ResponseTimeout <= 0 {
		c.ResponseTimeout = DefaultActiveSyncTimeout
	}
	return nil
}

// activeSyncRoute is the route of cfg, or nil when ActiveSync is off.
func (h *Handler) activeSyncRoute(cfg ActiveSyncConfig) *route {
	if cfg.Upstream == nil {
		return nil
	}
	header := http.CanonicalHeaderKey(cfg.UserHeader)
	base := strings.TrimSuffix(cfg.Upstream.Path, "/")
	rt := &route{
		base: cfg.Upstream, auth: cfg.UpstreamAuth, header: header, masterPassword: cfg.MasterPassword,
		trusted: append([]string{header, sogoHeaders}, forwardedHeaders...),
		// The client's path past the endpoint (none, for every command
		// MS-ASHTTP defines) follows the upstream's endpoint.
		upstreamPath: func(p string) string { return base + p[len(h.easPath):] },
		hint:         failureHint("Phones and mail apps that use Exchange ActiveSync", h.cfg.AccountURL),
	}
	return h.newRoute(rt, upstreamConfig{tls: cfg.UpstreamTLS, dialTimeout: cfg.DialTimeout,
		responseTimeout: cfg.ResponseTimeout, disableKeepAlives: cfg.DisableKeepAlives, transport: cfg.Transport})
}

// isActiveSync reports whether the canonical path p is the ActiveSync
// endpoint or below it. The first segment matches in any letter case, so
// that no spelling of it reaches the DAV server with a DAV scope.
func (h *Handler) isActiveSync(p string) bool {
	n := len(h.easPath)
	return h.eas != nil && len(p) >= n && strings.EqualFold(p[:n], h.easPath) && (len(p) == n || p[n] == '/')
}

// maxDeviceField bounds a DeviceId or DeviceType in a client name:
// MS-ASHTTP allows 32 characters for each (16 bytes in the base64 form).
const maxDeviceField = 32

// activeSyncClient names the device of an ActiveSync request, as the
// User-Agent names a DAV client: "DeviceType DeviceId" from the query, in
// its plain or base64 form (MS-ASHTTP section 2.2.1.1.1), without
// characters that could forge or reorder a line where it is shown. The
// User-Agent stands in when the query names no device.
func activeSyncClient(r *http.Request) string {
	id, typ := deviceFromQuery(r.URL.RawQuery)
	name := strings.TrimSpace(safetext.Clip(typ, maxDeviceField) + " " + safetext.Clip(id, maxDeviceField))
	if name == "" {
		name = r.UserAgent()
	}
	return safetext.OneLine(strings.ToValidUTF8(name, "?"), "")
}

// deviceFromQuery reads DeviceId and DeviceType from a command's query,
// which is base64 when it is not name=value pairs naming the command.
func deviceFromQuery(raw string) (id, typ string) {
	q, _ := url.ParseQuery(raw)
	if q.Has("Cmd") || q.Has("DeviceId") {
		return q.Get("DeviceId"), q.Get("DeviceType")
	}
	if b64, err := url.QueryUnescape(raw); err == nil {
		return deviceFromBase64(b64)
	}
	return "", ""
}

// deviceFromBase64 reads the device of a base64-encoded query: a version
// byte, a command code, a two-byte locale, then the device id, the policy
// key and the device type, each after a length byte. The id is bytes, so
// it is shown in hex.
func deviceFromBase64(raw string) (id, typ string) {
	b, err := base64.StdEncoding.DecodeString(raw)
	if err != nil {
		return "", ""
	}
	rest := b[min(len(b), 4):]
	fields := make([][]byte, 0, 3)
	for range 3 {
		if len(rest) == 0 || int(rest[0]) >= len(rest) {
			return "", ""
		}
		n := int(rest[0])
		fields, rest = append(fields, rest[1:1+n]), rest[1+n:]
	}
	return hex.EncodeToString(fields[0]), string(fields[2])
}
