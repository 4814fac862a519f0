package main

import (
	"errors"
	"fmt"
	"net"
	"net/http"
	"path/filepath"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-dev/postern/admin"
	"github.com/postern-dev/postern/config"
)

// startAdmin serves the admin side: the HTTPS (or, on loopback by explicit
// choice, plain HTTP) listener when admin.listen is set, and always the
// control socket the CLI talks to while the server runs.
func (g *gateway) startAdmin(cfg *config.Config, reg *prometheus.Registry) error {
	srv, err := admin.New(admin.Config{Store: g.store, Sessions: g.registry, Ready: g.ready, Metrics: reg,
		TrustedProxies: cfg.Admin.TrustedPrefixes(), Plain: !cfg.Admin.TLS,
		ReauthWindow: cfg.Policy.ReauthWindow.Duration, AdminCodeTTL: cfg.Policy.AdminCodeTTL.Duration, Logger: g.log})
	if err != nil {
		return err
	}
	g.admin = srv
	if err := srv.EnablePages(g.mailSettings(cfg)); err != nil {
		return err
	}
	if cfg.Admin.Listen != "" {
		tc := g.certs.TLSConfig()
		if !cfg.Admin.TLS {
			tc = nil
		}
		ln, err := admin.Listen(cfg.Admin.Listen, tc)
		if err != nil {
			return err
		}
		scheme := "https"
		if tc == nil {
			scheme = "http"
		}
		g.addrs["admin"] = ln.Addr().String()
		g.log.Info("listening", "listener", "admin", "addr", ln.Addr().String(), "scheme", scheme)
		g.serveHTTP("admin", srv.HTTPServer(srv.Handler()), ln)
	}
	path := filepath.Join(cfg.DataDir, admin.ControlSocket)
	ln, err := srv.ListenControl(path)
	if err != nil {
		return err
	}
	g.addrs["control"] = path
	g.log.Info("listening", "listener", "control", "addr", path)
	g.serveHTTP("control", srv.ControlServer(), ln)
	return nil
}

func (g *gateway) serveHTTP(name string, h *http.Server, ln net.Listener) {
	g.http = append(g.http, h)
	g.wg.Go(func() {
		if err := h.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error(fmt.Sprintf("%s listener stopped", name), "err", err)
		}
	})
}
