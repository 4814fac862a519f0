package admin

import (
	"context"
	"crypto/rand"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/netip"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/clock"
	"github.com/postern-dev/postern/proxy"
)

// Readiness reports whether the gateway can serve mail: each configured
// upstream answered its last probe. It returns the names of those that did
// not. The gateway implements it; nil means "no upstream is probed".
type Readiness interface {
	Ready() (bool, []string)
}

// Sessions is what the admin API needs of the proxy's live-session
// registry (*proxy.Registry implements it): find and end sessions by filter,
// end one by id, and count an app password's sessions, each through the
// registry's indexes.
type Sessions interface {
	Find(f proxy.Filter) []proxy.SessionInfo
	Kick(f proxy.Filter, reason string) int
	KickSession(id, reason string) (proxy.SessionInfo, bool)
	CredentialSessions(user, id string) int
}

// Config configures a Server. Zero durations get the defaults.
type Config struct {
	Store    *authstore.Store // required
	Sessions Sessions         // required
	Ready    Readiness
	Metrics  prometheus.Gatherer // nil: /metrics answers 404
	// TrustedProxies are the peers whose X-Forwarded-For is believed.
	TrustedProxies []netip.Prefix
	// Plain marks an admin listener without TLS (behind a reverse proxy
	// on loopback); Origin checks then accept http and https.
	Plain bool

	ReauthWindow    time.Duration // default 5 min (W1)
	IdleTimeout     time.Duration // default 30 min
	AbsoluteTimeout time.Duration // default 12 h
	AdminCodeTTL    time.Duration // default authstore.DefaultAdminCodeTTL
	// Clock's readings must carry the monotonic clock (the system clock's
	// do): re-verification windows and idle timeouts are measured on it,
	// so a wall-clock step cannot stretch them. Nil: the system clock.
	Clock  clock.Clock
	Rand   io.Reader
	Logger *slog.Logger
}

func (c Config) withDefaults() Config {
	if c.ReauthWindow == 0 {
		c.ReauthWindow = 5 * time.Minute
	}
	if c.IdleTimeout == 0 {
		c.IdleTimeout = 30 * time.Minute
	}
	if c.AbsoluteTimeout == 0 {
		c.AbsoluteTimeout = 12 * time.Hour
	}
	if c.AdminCodeTTL == 0 {
		c.AdminCodeTTL = authstore.DefaultAdminCodeTTL
	}
	c.Clock = clock.Or(c.Clock)
	if c.Rand == nil {
		c.Rand = rand.Reader
	}
	if c.Logger == nil {
		c.Logger = slog.New(slog.DiscardHandler)
	}
	return c
}

// Server is the admin HTTP side: the JSON API, health and metrics, and
// (through the same handler) the control socket.
type Server struct {
	cfg     Config
	store   *authstore.Store
	log     *slog.Logger
	routes  []route
	mux     *http.ServeMux
	live    *liveTable
	guesses *guessGate
	openapi []byte
	pages   *webPages // nil until EnablePages
}

// New builds the server and its router from the route table.
func New(cfg Config) (*Server, error) {
	if cfg.Store == nil || cfg.Sessions == nil {
		return nil, errors.New("admin: Store and Sessions are required")
	}
	cfg = cfg.withDefaults()
	s := &Server{cfg: cfg, store: cfg.Store, log: cfg.Logger, live: newLiveTable(), guesses: newGuessGate()}
	s.routes = s.table()
	s.mux = http.NewServeMux()
	for i := range s.routes {
		rt := &s.routes[i]
		s.mux.Handle(rt.Method+" "+rt.Path, s.handle(rt))
	}
	s.mux.HandleFunc("/", s.fallback)
	doc, err := s.openAPIDocument()
	if err != nil {
		return nil, fmt.Errorf("admin: openapi document: %w", err)
	}
	s.openapi = doc
	return s, nil
}

// table is every route the server serves: the API, health and metrics.
// Page routes add their own table here.
func (s *Server) table() []route {
	return append(s.openRoutes(), s.apiRoutes()...)
}

// Handler serves the table over HTTP(S).
func (s *Server) Handler() http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		h := w.Header()
		h.Set("X-Content-Type-Options", "nosniff")
		h.Set("Cache-Control", "no-store")
		h.Set("Referrer-Policy", "no-referrer")
		h.Set("X-Frame-Options", "DENY")
		if !s.cfg.Plain {
			h.Set("Strict-Transport-Security", "max-age=31536000")
		}
		s.mux.ServeHTTP(w, r)
	})
}

// Listen checks that an admin listener may run as configured: plain HTTP
// only on a loopback address (a reverse proxy in front terminates TLS).
func Listen(addr string, tlsConfig *tls.Config) (net.Listener, error) {
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("listen admin on %s: %w", addr, err)
	}
	if tlsConfig != nil {
		return tls.NewListener(ln, tlsConfig), nil
	}
	ap, err := netip.ParseAddrPort(ln.Addr().String())
	if err != nil || !ap.Addr().IsLoopback() {
		ln.Close()
		return nil, fmt.Errorf("admin.tls = false needs a loopback address in admin.listen, not %s", addr)
	}
	return ln, nil
}

// HTTPServer returns an http.Server for the handler with the timeouts
// every admin listener uses.
func (s *Server) HTTPServer(h http.Handler) *http.Server {
	return &http.Server{Handler: h, ReadHeaderTimeout: 10 * time.Second, ReadTimeout: 30 * time.Second,
		WriteTimeout: 5 * time.Minute, IdleTimeout: 2 * time.Minute, MaxHeaderBytes: 64 << 10,
		ErrorLog: slog.NewLogLogger(s.log.Handler(), slog.LevelDebug)}
}

// Serve serves the admin handler on ln until ctx ends.
func (s *Server) Serve(ctx context.Context, ln net.Listener) error {
	srv := s.HTTPServer(s.Handler())
	return serveUntil(ctx, srv, ln)
}

func serveUntil(ctx context.Context, srv *http.Server, ln net.Listener) error {
	done := make(chan struct{})
	defer close(done)
	go func() {
		select {
		case <-ctx.Done():
			sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
			defer cancel()
			srv.Shutdown(sctx)
		case <-done:
		}
	}()
	err := srv.Serve(ln)
	if errors.Is(err, http.ErrServerClosed) {
		return nil
	}
	return err
}

// clientAddr is the address a request came from: the peer, or with a
// trusted proxy as the peer, the last X-Forwarded-For hop that is not
// itself a trusted proxy (P8: an untrusted peer cannot pick its address).
func (s *Server) clientAddr(r *http.Request) netip.Addr {
	return proxy.ClientAddr(r, s.cfg.TrustedProxies).Addr()
}
