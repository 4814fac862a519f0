// Package dav is postern's HTTP front-end for CalDAV/CardDAV and Exchange
// ActiveSync: an HTTP handler that checks the Basic credential of every
// request with authstore and reverse proxies the request, unchanged but
// for its authentication, to the upstream DAV server, or, below the
// ActiveSync endpoint, to the ActiveSync server. Paths are the upstream's
// own, in canonical form only (P8); bodies, WBXML ones included, are
// streamed.
package dav

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"net/netip"
	"net/url"
	"strconv"
	"strings"
	"sync/atomic"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
	"github.com/postern-dev/postern/proxy"
)

// UpstreamAuth is how the proxy tells the upstream who the user is.
type UpstreamAuth int

const (
	// HeaderAuth sets UserHeader to the canonical user name (Radicale's
	// http_x_remote_user); a copy the client sent is always removed.
	HeaderAuth UpstreamAuth = iota
	// StoredAuth sends Basic with the user's stored upstream password.
	StoredAuth
)

// Config configures the DAV front-end.
type Config struct {
	// Adapter's AccountURL ends the hint of a 401; Logger gets one record
	// per failed authentication and, at debug level, one per request.
	proxy.Adapter
	// UpstreamCredential's UpstreamTLS verifies an https upstream (nil: the
	// system roots), and its UpstreamPassword serves StoredAuth.
	proxy.UpstreamCredential
	Auth     proxy.Authenticator
	Registry *proxy.Registry // nil gives the handler its own
	Metrics  *Metrics        // nil counts nothing
	// Upstream is the DAV server's base URL; only its scheme and host are
	// used, since paths are passed on as they are (once checked canonical,
	// in Go's default encoding).
	Upstream *url.URL
	// DialTimeout bounds a connection to the upstream (default
	// proxy.DefaultDialTimeout); ResponseTimeout bounds the wait for the
	// answer's header after the request was sent (default 60 s).
	DialTimeout, ResponseTimeout time.Duration
	// UpstreamAuth picks the header or the stored password.
	UpstreamAuth UpstreamAuth
	// UserHeader is the trusted header of HeaderAuth (X-Remote-User when
	// empty).
	UserHeader string
	// CalDAVPath and CardDAVPath are where /.well-known/caldav and
	// /.well-known/carddav redirect ("/" when empty).
	CalDAVPath, CardDAVPath string
	// CalDAVPrefixes and CardDAVPrefixes choose the protocol a request is
	// authenticated for, and so the app-password scope it needs, by the
	// longest matching path prefix; a "*" segment matches any one segment
	// ("/*/contacts/"). A path under neither takes either scope.
	CalDAVPrefixes, CardDAVPrefixes []string
	// TrustedProxies are the peers whose X-Forwarded-For names the client.
	// From any other peer the header is ignored and the socket's address
	// counts (P8).
	TrustedProxies []netip.Prefix
	// Realm names the Basic realm ("postern" when empty).
	Realm string
	// Transport replaces the upstream transport (tests, benchmarks).
	Transport http.RoundTripper
	// DisableKeepAlives opens a new upstream connection per request: SOGo
	// closes each after its answer without saying so, and a request sent
	// on a connection it has just closed is lost.
	DisableKeepAlives bool
	// ActiveSync, when its Upstream is set, serves Exchange ActiveSync
	// beside DAV.
	ActiveSync ActiveSyncConfig
}

// Handler is the DAV front-end. It is safe for concurrent use.
type Handler struct {
	cfg       Config
	log       *slog.Logger
	reg       *proxy.Registry
	dav       *route
	eas       *route // nil when ActiveSync is off
	easPath   string
	challenge string
	prefixes  []prefix
	idPrefix  string
	seq       atomic.Uint64
}

type prefix struct {
	segs  []string
	proto authstore.Protocol
}

// retryAfter is what a 503 tells clients to wait, in seconds.
const retryAfter = "30"

// New returns the handler for cfg.
func New(cfg Config) (*Handler, error) {
	if err := cfg.withDefaults(); err != nil {
		return nil, err
	}
	h := &Handler{
		cfg:       cfg,
		log:       cfg.Logger,
		reg:       cfg.Registry,
		challenge: fmt.Sprintf(`Basic realm=%q, charset="UTF-8"`, quotable(cfg.Realm)),
		easPath:   cfg.ActiveSync.Path,
	}
	if h.reg == nil {
		h.reg = proxy.NewRegistry()
	}
	var id [8]byte
	rand.Read(id[:])
	h.idPrefix = "dav-" + hex.EncodeToString(id[:]) + "-"
	for _, p := range cfg.CalDAVPrefixes {
		h.prefixes = append(h.prefixes, prefix{segments(p), authstore.CalDAV})
	}
	for _, p := range cfg.CardDAVPrefixes {
		h.prefixes = append(h.prefixes, prefix{segments(p), authstore.CardDAV})
	}
	header := http.CanonicalHeaderKey(cfg.UserHeader)
	h.dav = h.newRoute(&route{base: cfg.Upstream, auth: cfg.UpstreamAuth, header: header,
		trusted: append([]string{header, sogoHeaders}, forwardedHeaders...), upstreamPath: samePath,
		hint: failureHint("Calendar and contacts apps", cfg.AccountURL)},
		upstreamConfig{tls: cfg.UpstreamTLS, dialTimeout: cfg.DialTimeout, responseTimeout: cfg.ResponseTimeout,
			disableKeepAlives: cfg.DisableKeepAlives, transport: cfg.Transport})
	h.eas = h.activeSyncRoute(cfg.ActiveSync)
	return h, nil
}

// withDefaults checks cfg and fills in its defaults.
func (cfg *Config) withDefaults() error {
	cfg.Adapter = cfg.Adapter.WithDefaults()
	if cfg.Upstream == nil || cfg.Upstream.Host == "" || (cfg.Upstream.Scheme != "http" && cfg.Upstream.Scheme != "https") {
		return errors.New("dav: upstream must be an absolute http or https URL")
	}
	if (cfg.UpstreamAuth == StoredAuth || cfg.ActiveSync.UpstreamAuth == StoredAuth) && cfg.UpstreamPassword == nil {
		return errors.New("dav: stored upstream auth without a password source")
	}
	if cfg.UserHeader == "" {
		cfg.UserHeader = "X-Remote-User"
	}
	if cfg.Realm == "" {
		cfg.Realm = "postern"
	}
	if cfg.CalDAVPath == "" {
		cfg.CalDAVPath = "/"
	}
	if cfg.CardDAVPath == "" {
		cfg.CardDAVPath = "/"
	}
	if cfg.DialTimeout <= 0 {
		cfg.DialTimeout = proxy.DefaultDialTimeout
	}
	if cfg.ResponseTimeout <= 0 {
		cfg.ResponseTimeout = 60 * time.Second
	}
	return cfg.ActiveSync.withDefaults()
}

// failureHint is the body of a 401: the hint the mail front-ends give, for
// the apps that speak one of the handler's protocols.
func failureHint(apps, accountURL string) string {
	return proxy.FailureHint(apps, accountURL) + "\n"
}

// quotable is s for a quoted-string of a header (RFC 9110 §5.6.4): without
// what could end or split the header, and without the quote and the
// backslash, which would end or escape the string.
func quotable(s string) string {
	return strings.NewReplacer(`"`, "", `\`, "").Replace(safetext.OneLine(s, ""))
}

// ServeHTTP answers discovery itself, authenticates everything else and
// passes it on.
func (h *Handler) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	start := time.Now()
	sw := &statusWriter{ResponseWriter: w}
	h.serve(sw, r, start)
	h.cfg.Metrics.request(r.Method, sw.code(), time.Since(start))
	if h.log.Enabled(r.Context(), slog.LevelDebug) {
		h.log.LogAttrs(r.Context(), slog.LevelDebug, "dav request",
			slog.String("method", r.Method), slog.String("path", r.URL.Path),
			slog.Int("status", sw.code()), slog.String("source", h.clientAddr(r).String()),
			slog.Duration("duration", time.Since(start)))
	}
}

func (h *Handler) serve(relay http.ResponseWriter, r *http.Request, start time.Time) {
	// Every answer but the relayed one is postern's own, given before the
	// request went upstream: w reads the request body first.
	w := &ownAnswer{ResponseWriter: relay, r: r}
	path, err := canonicalPath(r.URL)
	if err != nil {
		h.log.LogAttrs(r.Context(), slog.LevelInfo, "dav path refused",
			slog.String("path", safetext.Raw(r.URL.EscapedPath())), slog.String("source", h.clientAddr(r).String()),
			slog.String("method", r.Method))
		http.Error(w, pathRefusal, http.StatusBadRequest)
		return
	}
	switch path {
	case "/.well-known/caldav":
		h.redirect(w, h.cfg.CalDAVPath)
		return
	case "/.well-known/carddav":
		h.redirect(w, h.cfg.CardDAVPath)
		return
	}
	rt, proto, client := h.route(r, path)
	user, secret, err := basicCredentials(r.Header)
	switch {
	case errors.Is(err, errNoCredentials):
		h.unauthorized(w, rt) // iOS sends nothing until challenged
		return
	case errors.Is(err, errManyCredentials):
		h.authFailed(r, "", err)
		http.Error(w, "Bad Request: one Authorization header, please.", http.StatusBadRequest)
		return
	case err != nil:
		h.authFailed(r, "", err)
		h.unauthorized(w, rt)
		return
	}
	source := h.clientAddr(r)
	cs := connStateOf(r.Context())
	authStart := time.Now()
	ad, err := proxy.Admit(r.Context(), h.reg, h.cfg.Auth, authstore.Attempt{
		Protocol: proto,
		Username: user,
		Secret:   secret,
		Source:   source.Addr(),
		Client:   client,
		Renewal:  cs.renewal(user, secret),
		Upstream: true,
	})
	h.cfg.Metrics.auth(time.Since(authStart), err)
	cs.settle(user, secret, err == nil)
	if err != nil {
		h.authFailed(r, user, err)
		if errors.Is(err, authstore.ErrUnauthorized) {
			h.unauthorized(w, rt)
		} else {
			unavailable(w)
		}
		return
	}
	grant := ad.Grant
	ctx, cancel := context.WithCancelCause(r.Context())
	defer cancel(nil)
	release, err := ad.Track(proxy.SessionInfo{
		ID: h.newID(), Protocol: proto, Remote: source, Client: client, Start: start,
	}, func(reason string) {
		cancel(errors.New(reason))
		// The upstream round trip ends only once its copy of the request
		// body does, and a write to a client that stopped reading blocks:
		// both wake now.
		rc := http.NewResponseController(relay)
		_ = rc.SetReadDeadline(time.Unix(1, 0))
		_ = rc.SetWriteDeadline(time.Unix(1, 0))
	})
	if err != nil { // a kick during the login: a refused credential
		h.authFailed(r, user, err)
		h.unauthorized(w, rt)
		return
	}
	defer release()
	// The upstream's answer settles the sign-in (upstreamAnswered,
	// upstreamError); a request that ends without one, cut by a kick or by
	// the client, signed in all the same.
	defer grant.Settle(nil, "")
	up := upstreamUser{name: grant.Username, grant: grant}
	if rt.auth == StoredAuth {
		if up.password, err = h.cfg.UpstreamPassword(ctx, grant.Username); err != nil {
			grant.Settle(err, "store")
			h.log.Warn("dav stored upstream password unavailable", "user", grant.Username, "err", err)
			unavailable(w)
			return
		}
	}
	rt.rp.ServeHTTP(relay, r.WithContext(context.WithValue(ctx, userKey{}, up)))
}

// route picks the upstream of a request by its canonical path, the
// protocol it is authenticated for and the client's name: below the
// ActiveSync endpoint, ActiveSync and the device the query names;
// elsewhere, CalDAV or CardDAV by prefix and the User-Agent.
func (h *Handler) route(r *http.Request, path string) (*route, authstore.Protocol, string) {
	if h.isActiveSync(path) {
		return h.eas, authstore.ActiveSync, activeSyncClient(r)
	}
	return h.dav, h.protocolOf(path), r.UserAgent()
}

type userKey struct{}

// upstreamUser is who the upstream request speaks for, and the grant
// that the upstream's answer settles.
type upstreamUser struct {
	name, password string
	grant          authstore.Grant
}

// upstreamError answers a failed upstream round trip.
func (h *Handler) upstreamError(w http.ResponseWriter, r *http.Request, err error) {
	if cause := context.Cause(r.Context()); cause != nil && r.Context().Err() != nil {
		h.log.Info("dav request ended", "path", r.URL.Path, "reason", cause.Error())
		panic(http.ErrAbortHandler) // kicked or client gone: drop the connection
	}
	h.log.Warn("dav upstream failed", "method", r.Method, "path", r.URL.Path, "err", err)
	upstreamFailed(r)
	unavailable(w)
}

// upstreamAnswered settles a sign-in by the upstream's answer: a gateway
// error (a web server in front of the DAV server whose backend is down)
// is passed on to the client and is no sign-in either.
func upstreamAnswered(resp *http.Response) error {
	switch resp.StatusCode {
	case http.StatusBadGateway, http.StatusServiceUnavailable, http.StatusGatewayTimeout:
		upstreamFailed(resp.Request)
	default:
		up, _ := resp.Request.Context().Value(userKey{}).(upstreamUser)
		up.grant.Settle(nil, "")
	}
	return nil
}

// upstreamFailed audits r's sign-in as unavailable, and forgets the
// credential its connection had accepted, so that the connection's next
// request is audited too: once the upstream answers, that is the sign-in.
func upstreamFailed(r *http.Request) {
	up, _ := r.Context().Value(userKey{}).(upstreamUser)
	up.grant.Settle(proxy.ErrUpstream, "upstream_error")
	connStateOf(r.Context()).settle("", "", false)
}

func (h *Handler) redirect(w http.ResponseWriter, to string) {
	w.Header().Set("Location", to)
	w.WriteHeader(http.StatusMovedPermanently)
}

func (h *Handler) unauthorized(w http.ResponseWriter, rt *route) {
	w.Header().Set("WWW-Authenticate", h.challenge)
	w.Header().Set("Content-Type", "text/plain; charset=utf-8")
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(http.StatusUnauthorized)
	_, _ = w.Write([]byte(rt.hint))
}

func unavailable(w http.ResponseWriter) {
	w.Header().Set("Retry-After", retryAfter)
	http.Error(w, "Service temporarily unavailable; try again later.", http.StatusServiceUnavailable)
}

// authFailed logs one failed authentication (never the secret).
func (h *Handler) authFailed(r *http.Request, user string, err error) {
	h.log.LogAttrs(r.Context(), slog.LevelInfo, "dav authentication failed",
		slog.String("user", safetext.Raw(user)), slog.String("source", h.clientAddr(r).String()),
		slog.String("method", r.Method), slog.String("reason", err.Error()))
}

// newID names one live request in the registry: a random prefix per
// handler and a counter, so a request costs no read of the random source.
func (h *Handler) newID() string {
	return h.idPrefix + strconv.FormatUint(h.seq.Add(1), 36)
}
