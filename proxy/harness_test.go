package proxy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"io"
	"net"
	"net/url"
	"runtime"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/clock"
	"github.com/postern-dev/postern/internal/linetest"
	"github.com/postern-dev/postern/internal/testpeer"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/postern-dev/postern/authstore"
)

// ioTimeout bounds every wait of the test harness so that a bug fails a
// test instead of hanging it; no test passes or fails on it.
const ioTimeout = 30 * time.Second

// lineProto is a tiny line protocol standing in for IMAP/POP3:
//
//	server: HELLO                client: LOGIN <user, URL-escaped> <secret>
//	                             client: STARTTLS | NOOP | QUIT
//	server: OK <user> | NO auth|unavailable|upstream | BAD | BYE <reason>
//
// and upstream side: "UP READY", proxy sends "USER <user> <session id>",
// upstream answers "OK" or anything else.
type lineProto struct{}

func (lineProto) Name() authstore.Protocol { return authstore.IMAP }

func (lineProto) NewFrontend(c *Conn, cfg *tls.Config) Frontend {
	return &lineFrontend{c: c, tls: cfg}
}

func (lineProto) UpstreamLogin(ctx context.Context, up *Conn, user string, info ClientInfo) (UpstreamResult, error) {
	line, err := up.R.ReadString('\n')
	if err != nil || line != "UP READY\r\n" {
		return UpstreamResult{}, fmt.Errorf("%w: greeting %q: %v", ErrUpstream, line, err)
	}
	fmt.Fprintf(up.W, "USER %s %s\r\n", user, info.SessionID)
	if err := up.W.Flush(); err != nil {
		return UpstreamResult{}, fmt.Errorf("%w: %w", ErrUpstream, err)
	}
	line, err = up.R.ReadString('\n')
	if err != nil || line != "OK\r\n" {
		return UpstreamResult{}, fmt.Errorf("%w: login answer %q: %v", ErrUpstream, line, err)
	}
	return UpstreamResult{Capabilities: []string{"X-RELAYED"}}, nil
}

type lineFrontend struct {
	c   *Conn
	tls *tls.Config // nil once TLS is on, or when it cannot be offered
}

var errQuit = errors.New("client quit")

func (f *lineFrontend) writeLine(s string) error {
	f.c.W.WriteString(s + "\r\n")
	return f.c.W.Flush()
}

func (f *lineFrontend) Greet() error { return f.writeLine("HELLO") }

func (f *lineFrontend) ReadLogin(ctx context.Context) (Login, error) {
	for {
		line, err := f.c.R.ReadString('\n')
		if err != nil {
			return Login{}, err
		}
		fields := strings.Fields(line)
		switch {
		case len(fields) == 3 && fields[0] == "LOGIN":
			user, err := url.PathUnescape(fields[1])
			if err != nil {
				return Login{}, err
			}
			return Login{Username: user, Secret: fields[2], ClientName: "fake-client"}, nil
		case len(fields) == 1 && fields[0] == "STARTTLS" && f.tls != nil:
			if err := f.writeLine("OK begin"); err != nil {
				return Login{}, err
			}
			if err := f.c.StartTLSServer(ctx, f.tls); err != nil {
				return Login{}, err
			}
			f.tls = nil
		case len(fields) == 1 && fields[0] == "NOOP":
			err = f.writeLine("OK noop")
		case len(fields) == 1 && fields[0] == "QUIT":
			f.writeLine("BYE quit")
			return Login{}, errQuit
		default:
			err = f.writeLine("BAD")
		}
		if err != nil {
			return Login{}, err
		}
	}
}

func (f *lineFrontend) Accept(l Login, u UpstreamResult, g authstore.Grant) error {
	return f.writeLine("OK " + g.Username)
}

func (f *lineFrontend) Reject(l Login, err error) error {
	kind := "other"
	switch {
	case errors.Is(err, authstore.ErrUnauthorized):
		kind = "auth"
	case errors.Is(err, authstore.ErrUnavailable):
		kind = "unavailable"
	case errors.Is(err, ErrUpstream):
		kind = "upstream"
	}
	return f.writeLine("NO " + kind)
}

func (f *lineFrontend) Bye(reason Reason) { f.writeLine("BYE " + reason.Text) }

// fakeAuth grants secret "pw" (account password) and "ap-<id>" (app
// password <id>) to any user, lower-casing the name as authstore
// canonicalises it; users "throttled" and "unavailable" get those answers.
type fakeAuth struct {
	calls atomic.Int32
	// expires is the expiry of every app password; zero: never.
	expires time.Time
	// hook runs before the decision; a non-nil error is returned as is.
	hook func(ctx context.Context, a authstore.Attempt) error
}

func (f *fakeAuth) Authenticate(ctx context.Context, a authstore.Attempt) (authstore.Grant, error) {
	f.calls.Add(1)
	// Like authstore: admitted past the rate limiter unless throttled.
	if a.Admitted != nil && !strings.EqualFold(a.Username, "throttled") {
		a.Admitted()
	}
	if f.hook != nil {
		if err := f.hook(ctx, a); err != nil {
			return authstore.Grant{}, err
		}
	}
	user := strings.ToLower(a.Username)
	g := authstore.Grant{UserID: "u-" + user, Username: user, Scopes: authstore.AllScopes}
	switch {
	case user == "throttled":
		return authstore.Grant{}, authstore.ErrThrottled
	case user == "unavailable":
		return authstore.Grant{}, fmt.Errorf("read users: %w", authstore.ErrUnavailable)
	case a.Secret == "pw":
		return g, nil
	case strings.HasPrefix(a.Secret, "ap-"):
		g.AppPassID = strings.TrimPrefix(a.Secret, "ap-")
		g.AppPassName, g.Expires = "app "+g.AppPassID, f.expires
		return g, nil
	}
	return authstore.Grant{}, authstore.ErrUnauthorized
}

// upRecord is one connection the fake upstream accepted.
type upRecord struct {
	mu    sync.Mutex
	got   bytes.Buffer
	early bool // bytes arrived between USER and the upstream's OK
	done  chan struct{}
}

func (r *upRecord) Write(p []byte) (int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.Write(p)
}

func (r *upRecord) received() string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.got.String()
}

func (r *upRecord) wait(t *testing.T) {
	t.Helper()
	select {
	case <-r.done:
	case <-time.After(ioTimeout):
		t.Fatal("upstream connection was never closed")
	}
}

// fakeUpstream speaks the upstream side of lineProto; the user name picks
// the behaviour after login: "refuse…" answers NO, "sink…" swallows,
// "tick…" sends 16 lines 125 ms apart, "post…" sends a line right after OK,
// "gate…" checks that nothing arrives before its OK, "half…" sends a line
// and half-closes; others echo.
type fakeUpstream struct {
	ln       net.Listener
	accepted chan *upRecord
	wg       sync.WaitGroup
	mu       sync.Mutex
	conns    []net.Conn
}

func newFakeUpstream(t *testing.T, cfg *tls.Config) *fakeUpstream {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	u := &fakeUpstream{ln: ln, accepted: make(chan *upRecord, 2048)}
	u.wg.Add(1)
	go u.serve()
	t.Cleanup(func() {
		ln.Close()
		u.mu.Lock()
		for _, c := range u.conns {
			c.Close()
		}
		u.mu.Unlock()
		u.wg.Wait()
	})
	return u
}

func (u *fakeUpstream) addr() string { return u.ln.Addr().String() }

func (u *fakeUpstream) serve() {
	defer u.wg.Done()
	for {
		c, err := u.ln.Accept()
		if err != nil {
			return
		}
		rec := &upRecord{done: make(chan struct{})}
		u.mu.Lock()
		u.conns = append(u.conns, c)
		u.mu.Unlock()
		u.accepted <- rec
		u.wg.Add(1)
		go func() {
			defer u.wg.Done()
			defer close(rec.done)
			defer c.Close()
			handleUpstream(c, rec)
		}()
	}
}

func handleUpstream(c net.Conn, rec *upRecord) {
	if _, err := io.WriteString(c, "UP READY\r\n"); err != nil {
		return
	}
	r := bufio.NewReader(io.TeeReader(c, rec))
	line, err := r.ReadString('\n')
	if err != nil {
		return
	}
	user := strings.Fields(line + " x")[1]
	switch {
	case strings.HasPrefix(user, "refuse"):
		io.WriteString(c, "NO\r\n")
		io.Copy(io.Discard, r)
	case strings.HasPrefix(user, "sink"):
		io.WriteString(c, "OK\r\n")
		io.Copy(io.Discard, r)
	case strings.HasPrefix(user, "tick"):
		io.WriteString(c, "OK\r\n")
		tick := time.NewTicker(125 * time.Millisecond)
		for range 16 {
			<-tick.C
			io.WriteString(c, "tick\r\n")
		}
		tick.Stop()
		io.Copy(io.Discard, r)
	case strings.HasPrefix(user, "half"):
		// Finish sending but keep listening, as after a POP3 QUIT race.
		io.WriteString(c, "OK\r\nLAST\r\n")
		c.(*net.TCPConn).CloseWrite()
		io.Copy(io.Discard, r)
	case strings.HasPrefix(user, "post"):
		io.WriteString(c, "OK\r\nPOSTLOGIN\r\n")
		io.Copy(c, r)
	case strings.HasPrefix(user, "gate"):
		// A proxy that forwarded pipelined bytes before the login
		// finished would have them here already.
		c.SetReadDeadline(time.Now().Add(50 * time.Millisecond))
		if _, err := r.Peek(1); err == nil {
			rec.mu.Lock()
			rec.early = true
			rec.mu.Unlock()
		}
		c.SetReadDeadline(time.Time{})
		io.WriteString(c, "OK\r\n")
		io.Copy(c, r)
	default:
		io.WriteString(c, "OK\r\n")
		io.Copy(c, r)
	}
}

// harness runs a proxy Server on loopback in front of a fake upstream.
type harness struct {
	t         *testing.T
	srv       *Server
	addr      string
	up        *fakeUpstream
	auth      *fakeAuth
	reg       *Registry
	metrics   *Metrics
	clientTLS *tls.Config   // set when the server uses implicit TLS
	park      time.Duration // overrides the server's park when set
	serveErr  chan error
}

type harnessOpt func(*ServerConfig, *harness)

// withClock runs the registry on c and gives every app password the
// expiry expires (zero: never).
func withClock(c clock.Clock, expires time.Time) harnessOpt {
	return func(cfg *ServerConfig, h *harness) {
		h.reg = newRegistryWithClock(c)
		cfg.Registry = h.reg
		h.auth.expires = expires
	}
}

// withAuth puts a in front of the sessions instead of the fake.
func withAuth(a Authenticator) harnessOpt {
	return func(cfg *ServerConfig, _ *harness) { cfg.Auth = a }
}

func withLimits(l Limits) harnessOpt {
	return func(c *ServerConfig, _ *harness) { c.Limits = l }
}

func newHarness(t *testing.T, opts ...harnessOpt) *harness {
	t.Helper()
	h := &harness{t: t, auth: &fakeAuth{}, reg: NewRegistry(), serveErr: make(chan error, 1)}
	h.metrics = NewMetrics(prometheus.NewRegistry())
	cfg := ServerConfig{
		Protocol: lineProto{},
		Auth:     h.auth,
		Registry: h.reg,
		Upstream: Upstream{Security: None},
		Metrics:  h.metrics,
	}
	var upTLS *tls.Config
	for _, o := range opts {
		o(&cfg, h)
	}
	if cfg.Upstream.Security == Implicit {
		upTLS = &tls.Config{Certificates: cfg.Upstream.TLS.Certificates}
	}
	h.up = newFakeUpstream(t, upTLS)
	cfg.Upstream.Address = h.up.addr()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	h.addr = ln.Addr().String()
	h.srv = NewServer(cfg)
	if h.park > 0 {
		h.srv.park = h.park
	}
	go func() { h.serveErr <- h.srv.Serve(ln) }()
	t.Cleanup(h.shutdown)
	return h
}

// shutdown stops the server and checks that Serve returned nil.
func (h *harness) shutdown() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), ioTimeout)
	defer cancel()
	if err := h.srv.Shutdown(ctx); err != nil {
		h.t.Errorf("Shutdown: %v", err)
	}
	select {
	case err := <-h.serveErr:
		if err != nil {
			h.t.Errorf("Serve returned %v after Shutdown", err)
		}
		h.serveErr <- nil // later calls see it too
	case <-time.After(ioTimeout):
		h.t.Error("Serve did not return after Shutdown")
	}
}

// client is a raw connection to the proxy.
type client = linetest.Client

// connect opens a connection without reading anything.
func (h *harness) connect() *client {
	h.t.Helper()
	return linetest.Dial(h.t, h.addr, h.clientTLS, h.clientTLS != nil)
}

// dial connects and reads the greeting.
func (h *harness) dial() *client {
	h.t.Helper()
	cl := h.connect()
	cl.ExpectLines("HELLO")
	return cl
}

// loggedIn connects and logs in as user with secret.
func (h *harness) loggedIn(user, secret string) *client {
	h.t.Helper()
	cl := h.dial()
	cl.Write("LOGIN " + user + " " + secret + "\r\n")
	cl.ExpectLines("OK " + strings.ToLower(user))
	return cl
}

// expectEnd reads the final BYE line and then end of stream, all before
// deadline.
func expectEnd(t *testing.T, cl *client, bye string, deadline time.Time) {
	t.Helper()
	if bye != "" {
		got, err := cl.LineBefore(deadline)
		if err != nil || got != "BYE "+bye {
			t.Fatalf("read %q, %v; want BYE %s", got, err, bye)
		}
	}
	cl.ExpectEOF(deadline)
}

// nextUpstream returns the next connection the fake upstream accepted.
func (h *harness) nextUpstream() *upRecord {
	h.t.Helper()
	select {
	case r := <-h.up.accepted:
		return r
	case <-time.After(ioTimeout):
		h.t.Fatal("upstream accepted no connection")
		return nil
	}
}

// sessionOf returns the id of the live session of user with credential.
func (h *harness) sessionOf(user, credential string) string {
	h.t.Helper()
	for _, s := range h.reg.List() {
		if s.Username == user && s.CredentialID == credential {
			return s.ID
		}
	}
	h.t.Fatalf("no live session of %s with %s in %+v", user, credential, h.reg.List())
	return ""
}

// eventually polls cond until it holds or the harness timeout passes.
func eventually(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for !cond() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out waiting for %s", what)
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// goroutinesBack waits until the goroutine count is back to base.
func goroutinesBack(t *testing.T, base int) {
	t.Helper()
	deadline := time.Now().Add(ioTimeout)
	for runtime.NumGoroutine() > base {
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<20)
			t.Fatalf("goroutines: %d, baseline %d\n%s", runtime.NumGoroutine(), base, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(5 * time.Millisecond)
	}
}

// testCert returns a self-signed certificate for 127.0.0.1 and a pool
// that trusts it.
func testCert(t *testing.T) (tls.Certificate, *x509.CertPool) {
	t.Helper()
	server, client := testpeer.TLS(t)
	return server.Certificates[0], client.RootCAs
}
