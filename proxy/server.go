package proxy

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/netip"
	"sync"
	"syscall"
	"time"

	"github.com/postern-dev/postern/authstore"
)

// Limits bounds what one listener lets clients hold.
type Limits struct {
	MaxConns      int // open connections on the listener; 0 = no cap
	MaxConnsPerIP int // per IPv4 address or IPv6 /64; 0 = no cap
	// PreAuthTimeout is the absolute time from accept to a successful login,
	// TLS handshake included (default 60 s).
	PreAuthTimeout time.Duration
	// IdleTimeout ends a relayed session when neither direction moved for
	// this long (default 31 min: RFC 9051 §5.4 asks at least 30 for IMAP;
	// POP3 listeners should set 10 min).
	IdleTimeout time.Duration
	// LoginTimeout bounds the proxy's own login to the upstream (default
	// DefaultLoginTimeout).
	LoginTimeout time.Duration
}

func (l Limits) withDefaults() Limits {
	if l.PreAuthTimeout <= 0 {
		l.PreAuthTimeout = 60 * time.Second
	}
	if l.IdleTimeout <= 0 {
		l.IdleTimeout = 31 * time.Minute
	}
	if l.LoginTimeout <= 0 {
		l.LoginTimeout = DefaultLoginTimeout
	}
	return l
}

// ServerConfig is everything one mail listener needs.
type ServerConfig struct {
	Protocol Protocol
	Auth     Authenticator
	Registry *Registry // shared by every listener; nil gives the server its own
	Upstream Upstream
	TLS      *tls.Config // the server's certificates
	// ImplicitTLS handshakes at accept (993, 995); otherwise the front-end
	// offers STARTTLS/STLS with TLS.
	ImplicitTLS bool
	Limits      Limits
	Logger      *slog.Logger // nil discards
	Metrics     *Metrics     // nil counts nothing
	// LoginRefused, when set, is told each time the upstream refused the
	// proxy's own login (ErrLoginRefused): with a master user that is a
	// configuration problem worth more than a line per login.
	LoginRefused func()
	// LoginDone, when set, is told of each login the upstream accepted: the
	// upstream evidently answers, whatever its last probe said.
	LoginDone func()
}

// Server accepts clients of one protocol and runs their sessions.
type Server struct {
	cfg   ServerConfig
	lim   Limits
	proto string
	log   *slog.Logger
	reg   *Registry
	bufs  sync.Pool // relay buffers for connections that cannot splice
	// park is how long a relay direction stays in a blocking copy without
	// traffic before it falls back to a one-byte read that holds no buffer
	// or splice pipe; tests shorten it.
	park time.Duration

	mu        sync.Mutex
	closing   bool
	listeners map[net.Listener]struct{}
	sessions  map[*session]struct{}
	perIP     map[netip.Prefix]int
	wg        sync.WaitGroup
	done      chan struct{} // closed by Shutdown
}

// NewServer returns a server for cfg; Serve starts it.
func NewServer(cfg ServerConfig) *Server {
	s := &Server{
		cfg:       cfg,
		lim:       cfg.Limits.withDefaults(),
		proto:     string(cfg.Protocol.Name()),
		log:       cfg.Logger,
		reg:       cfg.Registry,
		park:      time.Second,
		listeners: make(map[net.Listener]struct{}),
		sessions:  make(map[*session]struct{}),
		perIP:     make(map[netip.Prefix]int),
		done:      make(chan struct{}),
	}
	if s.log == nil {
		s.log = slog.New(slog.DiscardHandler)
	}
	s.log = s.log.With("protocol", s.proto)
	if s.reg == nil {
		s.reg = NewRegistry()
	}
	s.bufs.New = func() any { b := make([]byte, relayBufSize); return &b }
	return s
}

// Serve accepts connections on ln until Shutdown, then returns nil.
func (s *Server) Serve(ln net.Listener) error {
	if !s.addListener(ln) {
		ln.Close()
		return nil
	}
	defer s.removeListener(ln)
	var b backoff
	for {
		c, err := ln.Accept()
		if err == nil {
			b.recovered(s.log, ln)
			s.admit(c)
			continue
		}
		if s.isClosing() {
			return nil
		}
		if !temporary(err) {
			return fmt.Errorf("accept on %s: %w", ln.Addr(), err)
		}
		if !s.pause(b.next(s.log, ln, err)) {
			return nil
		}
	}
}

// backoff spaces an accept loop's retries while it is out of descriptors
// or memory, as net/http does, so established relays keep their share.
// It logs once when the trouble starts and once when accepting works
// again: a loop stuck for an hour must not write a line a second.
type backoff struct {
	delay    time.Duration
	failures int
	since    time.Time
}

// next notes a failed accept and returns how long to wait.
func (b *backoff) next(log *slog.Logger, ln net.Listener, err error) time.Duration {
	if b.failures == 0 {
		b.since = time.Now()
		log.Warn("accept failed; retrying with backoff until it works", "listener", ln.Addr().String(), "err", err)
	}
	b.failures++
	b.delay = min(max(2*b.delay, 5*time.Millisecond), time.Second)
	return b.delay
}

// recovered ends a run of failures, if there was one.
func (b *backoff) recovered(log *slog.Logger, ln net.Listener) {
	if b.failures == 0 {
		return
	}
	log.Info("accepting again", "listener", ln.Addr().String(), "failed_accepts", b.failures,
		"after", time.Since(b.since).Round(time.Millisecond).String())
	*b = backoff{}
}

func temporary(err error) bool {
	for _, e := range []error{syscall.EMFILE, syscall.ENFILE, syscall.ENOBUFS, syscall.ENOMEM, syscall.ECONNABORTED} {
		if errors.Is(err, e) {
			return true
		}
	}
	var ne net.Error
	return errors.As(err, &ne) && ne.Timeout()
}

// pause waits d and reports false when the server shuts down meanwhile.
func (s *Server) pause(d time.Duration) bool {
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-s.done:
		return false
	}
}

// Shutdown stops accepting, ends every session (pre-auth ones included)
// with Bye("server shutting down") and waits until their goroutines are
// gone or ctx ends.
func (s *Server) Shutdown(ctx context.Context) error {
	s.mu.Lock()
	if !s.closing {
		s.closing = true
		close(s.done)
	}
	for ln := range s.listeners {
		ln.Close()
	}
	sessions := make([]*session, 0, len(s.sessions))
	for sess := range s.sessions {
		sessions = append(sessions, sess)
	}
	s.mu.Unlock()
	for _, sess := range sessions {
		sess.end(reasonShutdown)
	}
	finished := make(chan struct{})
	go func() {
		s.wg.Wait()
		close(finished)
	}()
	select {
	case <-finished:
		return nil
	case <-ctx.Done():
		return fmt.Errorf("shutdown of %s server: %w", s.proto, ctx.Err())
	}
}

func (s *Server) isClosing() bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.closing
}

func (s *Server) addListener(ln net.Listener) bool {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closing {
		return false
	}
	s.listeners[ln] = struct{}{}
	return true
}

func (s *Server) removeListener(ln net.Listener) {
	s.mu.Lock()
	delete(s.listeners, ln)
	s.mu.Unlock()
}

// admit starts a session for c, or closes c at once when a cap is reached.
func (s *Server) admit(c net.Conn) {
	remote := remoteAddr(c)
	key := authstore.SourcePrefix(remote.Addr())
	s.mu.Lock()
	if s.closing {
		s.mu.Unlock()
		c.Close()
		return
	}
	if reason := s.overCap(key); reason != "" {
		s.mu.Unlock()
		// Counted before the close, so whoever sees the close sees the count.
		s.cfg.Metrics.refusedConn(s.proto, reason)
		// Debug: at Info a flood of refused connections would flood the log too.
		s.log.Debug("connection refused", "source", remote.String(), "reason", reason)
		c.Close()
		return
	}
	sess := newSession(s, c, remote)
	s.sessions[sess] = struct{}{}
	s.perIP[key]++
	s.wg.Add(1)
	s.mu.Unlock()
	go func() {
		defer s.wg.Done()
		defer s.release(sess, key)
		sess.run()
	}()
}

// overCap names the cap a new connection from key would break, if any.
// The caller holds s.mu.
func (s *Server) overCap(key netip.Prefix) string {
	switch {
	case s.lim.MaxConns > 0 && len(s.sessions) >= s.lim.MaxConns:
		return refusedMaxConns
	case s.lim.MaxConnsPerIP > 0 && s.perIP[key] >= s.lim.MaxConnsPerIP:
		return refusedMaxConnsPerIP
	}
	return ""
}

func (s *Server) release(sess *session, key netip.Prefix) {
	s.mu.Lock()
	delete(s.sessions, sess)
	if s.perIP[key] <= 1 {
		delete(s.perIP, key)
	} else {
		s.perIP[key]--
	}
	s.mu.Unlock()
}

func remoteAddr(c net.Conn) netip.AddrPort {
	if a, ok := c.RemoteAddr().(*net.TCPAddr); ok {
		ap := a.AddrPort()
		return netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port())
	}
	ap, _ := netip.ParseAddrPort(c.RemoteAddr().String())
	return ap
}

// dial connects to the upstream and counts how long it took.
func (s *Server) dial(ctx context.Context) (*Conn, error) {
	start := time.Now()
	c, err := s.cfg.Upstream.Dial(ctx)
	s.cfg.Metrics.dialed(s.proto, time.Since(start))
	return c, err
}
