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

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/collectors"

	"github.com/postern-dev/postern/admin"
	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/certs"
	"github.com/postern-dev/postern/config"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/imap"
	"github.com/postern-dev/postern/proxy/pop3"
	"github.com/postern-dev/postern/proxy/probe"
	"github.com/postern-dev/postern/proxy/smtp"
)

// gateway is a running postern: store, listeners, metrics.
type gateway struct {
	log       *slog.Logger
	store     *authstore.Store
	registry  *proxy.Registry
	certs     *certs.Manager
	servers   []*proxy.Server
	addrs     map[string]string // listener name → bound address
	probes    *probe.Prober     // upstream probes; set before any listener starts
	admin     *admin.Server
	ready     admin.Readiness // the probes, for /readyz
	http      []*http.Server  // the admin listener and the control socket
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
	o.Logger, o.OnRevoke, o.OnPolicy = opts.Logger, opts.OnRevoke, opts.OnPolicy
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
			log.Info("ended sessions after a credential change", "user", r.Username, "app_password", r.AppPassID,
				"cause", string(r.Cause), "sessions", n)
		}
	}, OnPolicy: g.registry.ApplyPolicy})
	if err != nil {
		return err
	}
	p, err := g.store.Policy(context.Background())
	if err != nil {
		return err
	}
	g.registry.ApplyPolicy(p)
	if g.certs, err = loadCerts(cfg, log); err != nil {
		return err
	}
	watchCtx, cancel := context.WithCancel(context.Background())
	g.stopWatch = cancel
	g.wg.Go(func() { g.certs.Watch(watchCtx) })

	promReg := prometheus.NewRegistry()
	promReg.MustRegister(collectors.NewGoCollector(), collectors.NewProcessCollector(collectors.ProcessCollectorOpts{}))
	mail, err := g.mailServers(cfg, proxy.NewMetrics(promReg))
	if err != nil {
		return err
	}
	davTargets, err := davProbe(cfg)
	if err != nil {
		return err
	}
	// The probes exist before any listener serves: logins report to them.
	g.probes = probe.New(probe.Config{Targets: append(mail.targets, davTargets...), Logger: g.log})
	g.ready = g.probes
	if err := g.listenMail(mail); err != nil {
		return err
	}
	if err := g.startDAV(cfg, promReg); err != nil {
		return err
	}
	g.wg.Go(func() { g.probes.Run(watchCtx) })
	if err := g.startAdmin(cfg, promReg); err != nil {
		return err
	}
	return g.startMaintenance(watchCtx, cfg, promReg)
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
	dialect   func() probe.Dialect
	listeners []mailListener
	upstream  config.MailUpstream
	idle      config.Duration
	adapter   func(proxy.UpstreamCredential) proxy.Protocol
}

// mailSetup is what the mail listeners need, and the probes of their
// upstreams.
type mailSetup struct {
	servers   []proxy.ServerConfig
	listeners [][]mailListener // per server
	targets   []probe.Target
}

// mailServices are the mail protocols postern can serve.
func (g *gateway) mailServices(cfg *config.Config) []mailService {
	lim := cfg.Limits
	base := proxy.Adapter{AccountURL: cfg.Admin.PublicURL, MaxLine: lim.MaxLineBytes, MaxBadCommands: lim.MaxBadCommands, Logger: g.log}
	return []mailService{
		{"imap", probe.IMAP, []mailListener{{"imaps", cfg.IMAP.ListenTLS, true}, {"imap", cfg.IMAP.ListenSTARTTLS, false}},
			cfg.Upstream.IMAP.MailUpstream, cfg.IMAP.IdleTimeout,
			func(cred proxy.UpstreamCredential) proxy.Protocol {
				return imap.New(imap.Config{Adapter: base, UpstreamCredential: cred, SendID: cfg.Upstream.IMAP.SendID})
			}},
		{"pop3", probe.POP3, []mailListener{{"pop3s", cfg.POP3.ListenTLS, true}, {"pop3", cfg.POP3.ListenSTLS, false}},
			cfg.Upstream.POP3.MailUpstream, cfg.POP3.IdleTimeout,
			func(cred proxy.UpstreamCredential) proxy.Protocol {
				return pop3.New(pop3.Config{Adapter: base, UpstreamCredential: cred, XClient: cfg.Upstream.POP3.XClient})
			}},
		{"smtp", probe.SMTP, []mailListener{{"smtps", cfg.SMTP.ListenTLS, true}, {"smtp", cfg.SMTP.ListenSTARTTLS, false}},
			cfg.Upstream.SMTP.MailUpstream, cfg.SMTP.IdleTimeout,
			func(cred proxy.UpstreamCredential) proxy.Protocol {
				return smtp.New(smtp.Config{Adapter: base, UpstreamCredential: cred, Hostname: smtpHostname(cfg.SMTP),
					Login: smtp.LoginMode(cfg.Upstream.SMTP.Login)})
			}},
	}
}

// mailServers configures each mail protocol that has a listener.
func (g *gateway) mailServers(cfg *config.Config, metrics *proxy.Metrics) (mailSetup, error) {
	lim := cfg.Limits
	var m mailSetup
	for _, svc := range g.mailServices(cfg) {
		if !anyListener(svc.listeners) {
			continue // an unused protocol needs no upstream settings
		}
		up, startTLS, master, masterPw, err := mailUpstream(svc.upstream)
		if err != nil {
			return mailSetup{}, fmt.Errorf("upstream.%s: %w", svc.name, err)
		}
		key := "upstream." + svc.name
		proto := svc.adapter(proxy.UpstreamCredential{UpstreamTLS: startTLS, MasterUser: master, MasterPassword: masterPw,
			UpstreamPassword: g.store.UpstreamPassword})
		m.targets = append(m.targets, probeTarget(svc, key, up, proto))
		m.servers = append(m.servers, proxy.ServerConfig{Protocol: proto, Upstream: up,
			Limits: proxy.Limits{MaxConns: lim.MaxConnections, MaxConnsPerIP: lim.MaxConnectionsPerIP,
				PreAuthTimeout: lim.PreauthTimeout.Duration, IdleTimeout: svc.idle.Duration, LoginTimeout: svc.upstream.LoginTimeout.Duration},
			Metrics: metrics, LoginRefused: func() { g.probes.LoginRefused(key) }, LoginDone: func() { g.probes.Answered(key) }})
		m.listeners = append(m.listeners, svc.listeners)
	}
	return m, nil
}

// ehloChecker is a protocol whose upstream's EHLO answer the probe hands
// on (SMTP): it learns the upstream's extensions and says what its login
// misses.
type ehloChecker interface {
	CheckUpstream(ehlo []string) error
	Hostname() string
}

// probeTarget is the probe of one mail service's upstream.
func probeTarget(svc mailService, key string, up proxy.Upstream, proto proxy.Protocol) probe.Target {
	t := probe.Target{Dialect: svc.dialect(), Key: key, Upstream: up, Login: probeLogin(svc.upstream.Login)}
	if c, ok := proto.(ehloChecker); ok {
		t.SMTP = &probe.SMTPCheck{Hostname: c.Hostname(), Check: c.CheckUpstream}
	}
	return t
}

// smtpHostname is the name postern gives itself in SMTP: the configured
// one, or the system's host name.
func smtpHostname(c config.SMTP) string {
	if c.Hostname != "" {
		return c.Hostname
	}
	name, err := os.Hostname()
	if err != nil {
		return "" // smtp.New says localhost
	}
	return name
}

// probeLogin maps the configured login to what the probes need to know of
// it.
func probeLogin(m config.LoginMode) probe.Login {
	switch m {
	case config.LoginMaster:
		return probe.LoginMaster
	case config.LoginXClient:
		return probe.LoginXClient
	}
	return probe.LoginStored
}

// listenMail opens the mail listeners.
func (g *gateway) listenMail(m mailSetup) error {
	for i, sc := range m.servers {
		if err := g.listen(sc, m.listeners[i]); err != nil {
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

// listen opens one protocol's listeners and serves each in its own
// goroutine; sc carries what is particular to the protocol.
func (g *gateway) listen(sc proxy.ServerConfig, ls []mailListener) error {
	for _, l := range ls {
		if l.addr == "" {
			continue
		}
		ln, err := net.Listen("tcp", l.addr)
		if err != nil {
			return fmt.Errorf("listen %s on %s: %w", l.name, l.addr, err)
		}
		sc := sc
		sc.Auth, sc.Registry, sc.TLS, sc.ImplicitTLS, sc.Logger = g.store, g.registry, g.certs.TLSConfig(), l.implicit, g.log
		srv := proxy.NewServer(sc)
		g.servers = append(g.servers, srv)
		g.addrs[l.name] = ln.Addr().String()
		tlsMode := "starttls"
		if l.implicit {
			tlsMode = "implicit"
		}
		g.log.Info("listening", "protocol", string(sc.Protocol.Name()), "listener", l.name, "addr", ln.Addr().String(), "tls", tlsMode)
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
	pw, err := readSecretFile(u.MasterPasswordFile)
	if err != nil {
		return "", "", fmt.Errorf("master password: %w", err)
	}
	return u.MasterUser, pw, nil
}

// readSecretFile reads a password kept in a file, without the line end
// an editor leaves.
func readSecretFile(path string) (string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return "", err
	}
	return strings.TrimRight(string(data), "\r\n"), nil
}

// shutdown stops accepting, ends sessions (IMAP `* BYE`), then closes the
// store so last-used data and queued audit events are written.
func (g *gateway) shutdown(ctx context.Context) error {
	var errs []error
	for _, s := range g.servers {
		errs = append(errs, s.Shutdown(ctx))
	}
	errs = append(errs, g.shutdownDAV(ctx))
	for _, h := range g.http {
		errs = append(errs, h.Shutdown(ctx))
	}
	if g.stopWatch != nil {
		g.stopWatch()
	}
	g.wg.Wait()
	g.registry.Close()
	if g.admin != nil {
		errs = append(errs, g.admin.Close(ctx)) // web sessions' last activity, before the store closes
	}
	if g.store != nil {
		errs = append(errs, g.store.Close())
	}
	return errors.Join(errs...)
}
