package main

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io/fs"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"
	"github.com/prometheus/client_golang/prometheus/promhttp"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/certs"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/imap"
	"github.com/postern-dev/postern/proxy/pop3"
)

// gateway is a running postern: store, listeners, metrics.
type gateway struct {
	log       *slog.Logger
	store     *authstore.Store
	registry  *proxy.Registry
	certs     *certs.Manager
	servers   []*proxy.Server
	addrs     map[string]string // listener name → bound address
	http      *http.Server
	dav       *http.Server
	wg        sync.WaitGroup
	stopWatch context.CancelFunc
}

// openStoreForServe opens (creating on first run) the store and its keys.
func openStoreForServe(cfg *config.Config, opts authstore.Options) (*authstore.Store, error) {
	path := storePath(cfg)
	keys, err := authstore.LoadKeyFile(cfg.KeyFile)
	if err != nil {
		_, storeErr := os.Stat(path)
		_, keyErr := os.Stat(cfg.KeyFile)
		if !errors.Is(storeErr, fs.ErrNotExist) || !errors.Is(keyErr, fs.ErrNotExist) {
			return nil, err // an existing store never gets new keys
		}
		if keys, err = authstore.CreateKeyFile(cfg.KeyFile, nil); err != nil {
			return nil, err
		}
	}
	if err := os.MkdirAll(cfg.DataDir, 0o700); err != nil {
		return nil, err
	}
	o := storeOptions(cfg, keys)
	o.Logger, o.OnRevoke = opts.Logger, opts.OnRevoke
	return authstore.Open(path, o)
}

func startGateway(cfg *config.Config, log *slog.Logger) (*gateway, error) {
	g := &gateway{log: log, registry: proxy.NewRegistry(), addrs: map[string]string{}}
	if err := g.start(cfg); err != nil {
		g.shutdown(context.Background())
		return nil, err
	}
	return g, nil
}

func (g *gateway) start(cfg *config.Config) (err error) {
	log := g.log
	g.store, err = openStoreForServe(cfg, authstore.Options{Logger: log, OnRevoke: func(r authstore.Revocation) {
		if n := g.registry.Revoke(r); n > 0 {
			log.Info("ended sessions after a credential change", "user", r.Username, "app_password", r.AppPassID, "sessions", n)
		}
	}})
	if err != nil {
		return err
	}
	if g.certs, err = loadCerts(cfg, log); err != nil {
		return err
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	g.stopWatch = cancel
	g.wg.Go(func() { g.certs.Watch(watchCtx) })

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	metrics := proxy.NewMetrics(promReg)
	if err := g.startMail(cfg, metrics); err != nil {
		return err
	}
	if err := g.startDAV(cfg, promReg); err != nil {
		return err
	}
	if cfg.Admin.Listen != "" {
		return g.startHTTP(cfg.Admin.Listen, promReg)
	}
	return nil
}

func loadCerts(cfg *config.Config, log *slog.Logger) (*certs.Manager, error) {
	var pairs []certs.Pair
	for _, c := range cfg.TLS.Certificates {
		pairs = append(pairs, certs.Pair{CertFile: c.CertFile, KeyFile: c.KeyFile})
	}
	if len(pairs) == 0 {
		p, err := certs.SelfSigned(filepath.Join(cfg.DataDir, "tls"))
		if err != nil {
			return nil, err
		}
		log.Warn("serving a self-signed certificate; configure [[tls.certificates]] for real clients", "cert", p.CertFile)
		pairs = append(pairs, p)
	}
	return certs.New(certs.Options{Pairs: pairs, ReloadInterval: cfg.TLS.ReloadInterval.Duration, Logger: log})
}

// mailListener is one configured listening socket.
type mailListener struct {
	name, addr string
	implicit   bool
}

// mailService is one mail protocol: its listeners, its upstream, and how
// to build its adapter once the upstream login is known.
type mailService struct {
	name      string
	listeners []mailListener
	upstream  config.MailUpstream
	idle      config.Duration
	adapter   func(startTLS *tls.Config, master, masterPw string) proxy.Protocol
}

func (g *gateway) startMail(cfg *config.Config, metrics *proxy.Metrics) error {
	lim := cfg.Limits
	services := []mailService{
		{"imap", []mailListener{{"imaps", cfg.IMAP.ListenTLS, true}, {"imap", cfg.IMAP.ListenSTARTTLS, false}},
			cfg.Upstream.IMAP.MailUpstream, cfg.IMAP.IdleTimeout,
			func(startTLS *tls.Config, master, masterPw string) proxy.Protocol {
				return imap.New(imap.Config{Adapter: proxy.Adapter{AccountURL: cfg.Admin.PublicURL, MaxLine: lim.MaxLineBytes, MaxBadCommands: lim.MaxBadCommands, Logger: g.log}, UpstreamCredential: proxy.UpstreamCredential{UpstreamStartTLS: startTLS, MasterUser: master, MasterPassword: masterPw, UpstreamPassword: g.store.UpstreamPassword}, SendID: cfg.Upstream.IMAP.SendID})
			}},
		{"pop3", []mailListener{{"pop3s", cfg.POP3.ListenTLS, true}, {"pop3", cfg.POP3.ListenSTLS, false}},
			cfg.Upstream.POP3.MailUpstream, cfg.POP3.IdleTimeout,
			func(startTLS *tls.Config, master, masterPw string) proxy.Protocol {
				return pop3.New(pop3.Config{Adapter: proxy.Adapter{AccountURL: cfg.Admin.PublicURL, MaxLine: lim.MaxLineBytes, MaxBadCommands: lim.MaxBadCommands, Logger: g.log}, UpstreamCredential: proxy.UpstreamCredential{UpstreamStartTLS: startTLS, MasterUser: master, MasterPassword: masterPw, UpstreamPassword: g.store.UpstreamPassword}, XClient: cfg.Upstream.POP3.XClient})
			}},
	}
	for _, svc := range services {
		if !anyListener(svc.listeners) {
			continue // an unused protocol needs no upstream settings
		}
		up, startTLS, master, masterPw, err := mailUpstream(svc.upstream)
		if err != nil {
			return fmt.Errorf("upstream.%s: %w", svc.name, err)
		}
		limits := proxy.Limits{MaxConns: lim.MaxConnections, MaxConnsPerIP: lim.MaxConnectionsPerIP,
			PreAuthTimeout: lim.PreauthTimeout.Duration, IdleTimeout: svc.idle.Duration, LoginTimeout: svc.upstream.LoginTimeout.Duration}
		if err := g.listen(svc.adapter(startTLS, master, masterPw), up, limits, svc.listeners, metrics); err != nil {
			return err
		}
	}
	return nil
}

func anyListener(ls []mailListener) bool {
	for _, l := range ls {
		if l.addr != "" {
			return true
		}
	}
	return false
}

// listen opens one protocol's listeners and serves each in its own goroutine.
func (g *gateway) listen(proto proxy.Protocol, up proxy.Upstream, limits proxy.Limits, ls []mailListener, metrics *proxy.Metrics) error {
	for _, l := range ls {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("listen %s on %s: %w", l.name, l.addr, err)
		}
		srv := proxy.NewServer(proxy.ServerConfig{Protocol: proto, Auth: g.store, Registry: g.registry,
			Upstream: up, TLS: g.certs.TLSConfig(), ImplicitTLS: l.implicit, Limits: limits,
			Logger: g.log, Metrics: metrics})
		g.servers = append(g.servers, srv)
		g.addrs[l.name] = ln.Addr().String()
		g.log.Info("listening", "listener", l.name, "addr", ln.Addr().String())
		g.wg.Go(func() {
			if err := srv.Serve(ln); err != nil {
				g.log.Error("listener stopped", "listener", l.name, "err", err)
			}
		})
	}
	return nil
}

// mailUpstream maps an upstream section to the proxy's dialer, the TLS
// config a STARTTLS upgrade uses (nil otherwise) and the master login.
func mailUpstream(u config.MailUpstream) (up proxy.Upstream, startTLS *tls.Config, master, masterPw string, err error) {
	if up, startTLS, err = upstream(u); err != nil {
		return
	}
	master, masterPw, err = masterLogin(u)
	return
}

// upstream maps an upstream section to the proxy's dialer and, for
// STARTTLS, the TLS config the protocol upgrades with. Both modes get
// their handshake configuration from proxy.Upstream.ClientTLS.
func upstream(u config.MailUpstream) (proxy.Upstream, *tls.Config, error) {
	tc := &tls.Config{ServerName: u.ServerName}
	if u.CAFile != "" {
		var err error
		if tc.RootCAs, err = certs.CertPool(u.CAFile); err != nil {
			return proxy.Upstream{}, nil, err
		}
	}
	up := proxy.Upstream{Address: u.Address, TLS: tc, DialTimeout: u.DialTimeout.Duration}
	switch u.Security {
	case config.SecurityImplicit:
		up.Security = proxy.Implicit
		_, err := up.ClientTLS() // refuse a bad address at start, not at the first login
		return up, nil, err
	case config.SecurityStartTLS:
		up.Security = proxy.StartTLS
		startTLS, err := up.ClientTLS()
		return up, startTLS, err
	default:
		up.Security = proxy.None
		return up, nil, nil
	}
}

func masterLogin(u config.MailUpstream) (user, password string, err error) {
	if u.Login != config.LoginMaster {
		return "", "", nil
	}
	data, err := os.ReadFile(u.MasterPasswordFile)
	if err != nil {
		return "", "", fmt.Errorf("master password: %w", err)
	}
	return u.MasterUser, strings.TrimRight(string(data), "\r\n"), nil
}

func (g *gateway) startHTTP(addr string, reg *prometheus.Registry) error {
	mux := http.NewServeMux()
	mux.Handle("GET /metrics", promhttp.HandlerFor(reg, promhttp.HandlerOpts{}))
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) {
		if _, err := g.store.Policy(r.Context()); err != nil {
			http.Error(w, "store unavailable", http.StatusServiceUnavailable)
			return
		}
		fmt.Fprintln(w, "ok")
	})
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return fmt.Errorf("listen admin on %s: %w", addr, err)
	}
	g.addrs["admin"] = ln.Addr().String()
	g.http = &http.Server{Handler: mux, ReadHeaderTimeout: 10 * time.Second}
	g.wg.Go(func() {
		if err := g.http.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			g.log.Error("admin listener stopped", "err", err)
		}
	})
	return nil
}

// shutdown stops accepting, ends sessions (IMAP `* BYE`), then closes the
// store so last-used data and queued audit events are written.
func (g *gateway) shutdown(ctx context.Context) error {
	var errs []error
	for _, s := range g.servers {
		errs = append(errs, s.Shutdown(ctx))
	}
	errs = append(errs, g.shutdownDAV(ctx))
	if g.http != nil {
		errs = append(errs, g.http.Shutdown(ctx))
	}
	if g.stopWatch != nil {
		g.stopWatch()
	}
	g.wg.Wait()
	if g.store != nil {
		errs = append(errs, g.store.Close())
	}
	return errors.Join(errs...)
}
