package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/url"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-dev/postern/certs"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/dav"
	"github.com/postern-dev/postern/proxy/probe"
)

// startDAV opens the CalDAV/CardDAV listener when dav.listen is set.
func (g *gateway) startDAV(cfg *config.Config, reg prometheus.Registerer) error {
	if cfg.DAV.Listen == "" {
		return nil
	}
	h, err := newDAVHandler(cfg, g, reg)
	if err != nil {
		return err
	}
	ln, err := net.Listen("tcp", cfg.DAV.Listen)
	if err != nil {
		return fmt.Errorf("listen dav on %s: %w", cfg.DAV.Listen, err)
	}
	g.addrs["dav"] = ln.Addr().String()
	g.dav = davServer(h, g.certs.TLSConfig(), cfg.Limits.PreauthTimeout.Duration)
	// Failed handshakes and broken clients are routine on a public port.
	g.dav.ErrorLog = slog.NewLogLogger(g.log.Handler(), slog.LevelDebug)
	g.log.Info("listening", "listener", "dav", "addr", ln.Addr().String())
	g.wg.Go(func() {
		if err := g.dav.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("dav listener stopped", "err", err)
		}
	})
	return nil
}

// davServer serves h over TLS with HTTP/2 and HTTP/1.1. Header reading
// is bounded like a mail pre-auth; bodies stream for as long as they move.
func davServer(h http.Handler, tc *tls.Config, headerTimeout time.Duration) *http.Server {
	tc = tc.Clone()
	tc.NextProtos = []string{"h2", "http/1.1"}
	return &http.Server{
		Handler:           h,
		ConnContext:       dav.ConnContext,
		TLSConfig:         tc,
		ReadHeaderTimeout: headerTimeout,
		IdleTimeout:       5 * time.Minute,
		MaxHeaderBytes:    64 << 10,
	}
}

func newDAVHandler(cfg *config.Config, g *gateway, reg prometheus.Registerer) (*dav.Handler, error) {
	u := cfg.Upstream.DAV
	base, up, err := davUpstream(u)
	if err != nil {
		return nil, err
	}
	dc := dav.Config{
		Auth: g.store, Registry: g.registry, Metrics: dav.NewMetrics(reg), Upstream: base,
		DialTimeout: u.DialTimeout.Duration, ResponseTimeout: u.ResponseTimeout.Duration,
		UserHeader: u.UserHeader,
		CalDAVPath: cfg.DAV.CalDAVPath, CardDAVPath: cfg.DAV.CardDAVPath,
		CalDAVPrefixes: cfg.DAV.CalDAVPrefixes, CardDAVPrefixes: cfg.DAV.CardDAVPrefixes,
		TrustedProxies: cfg.DAV.TrustedPrefixes(),
	}
	dc.AccountURL, dc.Logger = cfg.Admin.PublicURL, g.log
	dc.UpstreamPassword = g.store.UpstreamPassword
	if u.Auth == config.DAVAuthStored {
		dc.UpstreamAuth = dav.StoredAuth
	}
	if base.Scheme == "https" {
		// The handshake configuration comes from the one place that builds
		// it for every upstream (verification on, TLS 1.2 at least).
		if dc.UpstreamTLS, err = up.ClientTLS(); err != nil {
			return nil, fmt.Errorf("upstream.dav.url: %w", err)
		}
	}
	return dav.New(dc)
}

// davUpstream parses upstream.dav's URL and names the server it reaches,
// with the trust roots of an https upstream, for the handler and the probe.
func davUpstream(u config.UpstreamDAV) (*url.URL, proxy.Upstream, error) {
	base, err := url.Parse(u.URL)
	if err != nil {
		return nil, proxy.Upstream{}, fmt.Errorf("upstream.dav.url: %w", err)
	}
	tc := &tls.Config{}
	if u.CAFile != "" {
		if tc.RootCAs, err = certs.CertPool(u.CAFile); err != nil {
			return nil, proxy.Upstream{}, fmt.Errorf("upstream.dav.ca_file: %w", err)
		}
	}
	addr := base.Host
	if base.Port() == "" {
		port := "80"
		if base.Scheme == "https" {
			port = "443"
		}
		addr = net.JoinHostPort(base.Hostname(), port)
	}
	return base, proxy.Upstream{Address: addr, TLS: tc}, nil
}

// davProbe is the probe of upstream.dav when dav.listen is set.
func davProbe(cfg *config.Config) ([]probe.Target, error) {
	if cfg.DAV.Listen == "" {
		return nil, nil
	}
	base, up, err := davUpstream(cfg.Upstream.DAV)
	if err != nil {
		return nil, err
	}
	return []probe.Target{{Key: "upstream.dav", Upstream: up, URL: base}}, nil
}

// shutdownDAV stops the DAV listener; live requests get until ctx ends.
func (g *gateway) shutdownDAV(ctx context.Context) error {
	if g.dav == nil {
		return nil
	}
	return g.dav.Shutdown(ctx)
}
