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

// startDAV opens the CalDAV/CardDAV listener when dav.listen is set; it
// serves ActiveSync too when upstream.activesync is set.
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
	g.log.Info("listening", "listener", "dav", "addr", ln.Addr().String(), "activesync", cfg.ActiveSyncEnabled())
	g.wg.Go(func() {
		if err := g.dav.ServeTLS(ln, "", ""); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("dav listener stopped", "err", err)
		}
	})
	return nil
}

// davServer serves h over TLS with HTTP/2 and HTTP/1.1. Header reading
// is bounded like a mail pre-auth; bodies stream for as long as they move,
// and an answer may take as long as the upstream's timeout allows (there
// is no read or write timeout: an ActiveSync Ping waits up to 59 minutes).
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
	base, up, err := httpUpstream("upstream.dav", u.URL, u.CAFile)
	if err != nil {
		return nil, err
	}
	dc := dav.Config{
		Auth: g.store, Registry: g.registry, Metrics: dav.NewMetrics(reg), Upstream: base,
		DialTimeout: u.DialTimeout.Duration, ResponseTimeout: u.ResponseTimeout.Duration,
		UserHeader: u.UserHeader, DisableKeepAlives: !u.KeepAlive,
		CalDAVPath: cfg.DAV.CalDAVPath, CardDAVPath: cfg.DAV.CardDAVPath,
		CalDAVPrefixes: cfg.DAV.CalDAVPrefixes, CardDAVPrefixes: cfg.DAV.CardDAVPrefixes,
		TrustedProxies: cfg.DAV.TrustedPrefixes(),
	}
	dc.AccountURL, dc.Logger = cfg.Admin.PublicURL, g.log
	dc.UpstreamPassword = g.store.UpstreamPassword
	if u.Auth == config.DAVAuthStored {
		dc.UpstreamAuth = dav.StoredAuth
	}
	if dc.UpstreamTLS, err = upstreamTLS("upstream.dav", base, up); err != nil {
		return nil, err
	}
	if cfg.ActiveSyncEnabled() {
		if dc.ActiveSync, err = activeSyncConfig(cfg.Upstream.ActiveSync); err != nil {
			return nil, err
		}
	}
	return dav.New(dc)
}

// activeSyncConfig is the handler's ActiveSync route for upstream.activesync.
func activeSyncConfig(u config.UpstreamActiveSync) (dav.ActiveSyncConfig, error) {
	const key = "upstream.activesync"
	base, up, err := httpUpstream(key, u.URL, u.CAFile)
	if err != nil {
		return dav.ActiveSyncConfig{}, err
	}
	ac := dav.ActiveSyncConfig{Upstream: base, Path: config.ActiveSyncPath, UserHeader: u.UserHeader,
		DialTimeout: u.DialTimeout.Duration, ResponseTimeout: u.ResponseTimeout.Duration, DisableKeepAlives: !u.KeepAlive}
	if ac.UpstreamTLS, err = upstreamTLS(key, base, up); err != nil {
		return dav.ActiveSyncConfig{}, err
	}
	switch u.Auth {
	case config.DAVAuthStored:
		ac.UpstreamAuth = dav.StoredAuth
	default:
		if ac.MasterPassword, err = readSecretFile(u.MasterPasswordFile); err != nil {
			return dav.ActiveSyncConfig{}, fmt.Errorf("%s.master_password_file: %w", key, err)
		}
	}
	return ac, nil
}

// upstreamTLS is the handshake configuration of an https upstream (nil for
// http), from the one place that builds it for every upstream
// (verification on, TLS 1.2 at least).
func upstreamTLS(key string, base *url.URL, up proxy.Upstream) (*tls.Config, error) {
	if base.Scheme != "https" {
		return nil, nil
	}
	tc, err := up.ClientTLS()
	if err != nil {
		return nil, fmt.Errorf("%s.url: %w", key, err)
	}
	return tc, nil
}

// httpUpstream parses the URL of the upstream section key and names the
// server it reaches, with the trust roots of an https upstream, for the
// handler and the probe.
func httpUpstream(key, rawURL, caFile string) (*url.URL, proxy.Upstream, error) {
	base, err := url.Parse(rawURL)
	if err != nil {
		return nil, proxy.Upstream{}, fmt.Errorf("%s.url: %w", key, err)
	}
	tc := &tls.Config{}
	if caFile != "" {
		if tc.RootCAs, err = certs.CertPool(caFile); err != nil {
			return nil, proxy.Upstream{}, fmt.Errorf("%s.ca_file: %w", key, err)
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

// davProbe is the probe of upstream.dav when dav.listen is set, and of
// upstream.activesync when ActiveSync is served.
func davProbe(cfg *config.Config) ([]probe.Target, error) {
	if cfg.DAV.Listen == "" {
		return nil, nil
	}
	var targets []probe.Target
	for _, t := range []struct {
		key, url, ca string
		on           bool
	}{
		{"upstream.dav", cfg.Upstream.DAV.URL, cfg.Upstream.DAV.CAFile, true},
		{"upstream.activesync", cfg.Upstream.ActiveSync.URL, cfg.Upstream.ActiveSync.CAFile, cfg.ActiveSyncEnabled()},
	} {
		if !t.on {
			continue
		}
		base, up, err := httpUpstream(t.key, t.url, t.ca)
		if err != nil {
			return nil, err
		}
		targets = append(targets, probe.Target{Key: t.key, Upstream: up, URL: base})
	}
	return targets, nil
}

// shutdownDAV stops the DAV listener; live requests get until ctx ends.
func (g *gateway) shutdownDAV(ctx context.Context) error {
	if g.dav == nil {
		return nil
	}
	return g.dav.Shutdown(ctx)
}
