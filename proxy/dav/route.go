package dav

import (
	"crypto/tls"
	"log/slog"
	"net"
	"net/http"
	"net/http/httputil"
	"net/url"
	"time"
)

// route is one upstream the handler passes requests on to (the DAV
// server, or the ActiveSync server) and how that upstream learns who the
// user is.
type route struct {
	rp *httputil.ReverseProxy
	// base is the upstream's scheme and host; for ActiveSync its path
	// too. The handler's configuration holds it, so a test may move it.
	base *url.URL
	auth UpstreamAuth
	// header is the canonical trusted header of HeaderAuth; trusted are
	// every request header an upstream may trust, removed in every
	// spelling before postern sets its own.
	header  string
	trusted []string
	// masterPassword, when set, goes upstream as Basic beside the header,
	// with x-webobjects-auth-type (SOGo, trusting a proxy, logs in to IMAP
	// with it).
	masterPassword string
	// upstreamPath maps the client's canonical path to the upstream's.
	upstreamPath func(string) string
	// hint ends a 401 of this route: who needs an app password.
	hint string
}

// upstreamConfig is what a route's transport needs.
type upstreamConfig struct {
	tls                          *tls.Config
	dialTimeout, responseTimeout time.Duration
	disableKeepAlives            bool
	transport                    http.RoundTripper // replaces the built one (tests)
}

// newRoute builds rt's reverse proxy.
func (h *Handler) newRoute(rt *route, uc upstreamConfig) *route {
	tr := uc.transport
	if tr == nil {
		tr = newTransport(uc)
	}
	if h.cfg.Metrics != nil {
		tr = timedTransport{next: tr, m: h.cfg.Metrics}
	}
	rt.rp = &httputil.ReverseProxy{
		Rewrite:        rt.rewrite,
		Transport:      tr,
		ErrorHandler:   h.upstreamError,
		ModifyResponse: upstreamAnswered,
		BufferPool:     newBufferPool(),
		ErrorLog:       slog.NewLogLogger(h.log.Handler(), slog.LevelDebug),
	}
	return rt
}

func newTransport(uc upstreamConfig) *http.Transport {
	d := &net.Dialer{Timeout: uc.dialTimeout, KeepAlive: 30 * time.Second}
	return &http.Transport{
		DialContext:           d.DialContext,
		TLSClientConfig:       uc.tls.Clone(),
		TLSHandshakeTimeout:   uc.dialTimeout,
		ResponseHeaderTimeout: uc.responseTimeout,
		ExpectContinueTimeout: time.Second,
		MaxIdleConns:          256,
		MaxIdleConnsPerHost:   256,
		IdleConnTimeout:       90 * time.Second,
		DisableKeepAlives:     uc.disableKeepAlives,
		ForceAttemptHTTP2:     uc.tls != nil,
		// Bodies pass as they are: the client's Accept-Encoding goes
		// upstream, and nothing is decompressed on the way.
		DisableCompression: true,
	}
}

// rewrite builds the upstream request: the canonical path serve checked,
// mapped to the upstream's and in Go's default encoding (never the
// client's RawPath), and the query; every spelling of a header the
// upstream may trust removed (P11); the user named as the upstream
// expects.
func (rt *route) rewrite(pr *httputil.ProxyRequest) {
	pr.Out.URL = &url.URL{Scheme: rt.base.Scheme, Host: rt.base.Host,
		Path: rt.upstreamPath(pr.In.URL.Path), RawQuery: pr.In.URL.RawQuery}
	pr.Out.Host = rt.base.Host
	dropSpellings(pr.Out.Header, rt.trusted)
	up, _ := pr.In.Context().Value(userKey{}).(upstreamUser)
	switch rt.auth {
	case HeaderAuth:
		pr.Out.Header.Set(rt.header, up.name)
		if rt.masterPassword != "" {
			pr.Out.SetBasicAuth(up.name, rt.masterPassword)
			pr.Out.Header.Set(sogoAuthType, "Basic")
		}
	case StoredAuth:
		pr.Out.SetBasicAuth(up.name, up.password)
	}
}

// samePath is the DAV route's path mapping: paths are the upstream's own.
func samePath(p string) string { return p }
