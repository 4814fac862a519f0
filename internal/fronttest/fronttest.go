// Package fronttest is the test harness every front-end shares: a real
// proxy.Server (or, for DAV, an HTTPS server) on loopback in front of an
// in-process upstream, and a client that speaks the real protocol over TCP
// with transact/expect helpers. Tests only.
package fronttest

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
)

// IOGuard bounds every blocking read so a broken test fails instead of
// hanging; nothing waits on it to synchronise.
const IOGuard = 20 * time.Second

// GrantAll accepts every credential as an app password of its user, for
// tests about the front-end or the upstream, not the store.
type GrantAll struct{}

// Authenticate implements proxy.Authenticator.
func (GrantAll) Authenticate(_ context.Context, a authstore.Attempt) (authstore.Grant, error) {
	return authstore.Grant{UserID: "1", Username: a.Username, AppPassID: "ap1"}, nil
}

// Front is a listening front-end.
type Front struct {
	Addr      string
	ClientTLS *tls.Config // trusts exactly the front-end's certificate
	implicit  bool
	stop      func()
}

// Stop shuts the front-end down now, rather than when the test ends, and
// fails the test unless Shutdown and Serve return nil.
func (f *Front) Stop() { f.stop() }

// Start serves cfg on a loopback port until t ends. A nil cfg.TLS gets a
// throwaway certificate.
func Start(t testing.TB, cfg proxy.ServerConfig) *Front {
	t.Helper()
	f := &Front{implicit: cfg.ImplicitTLS}
	if cfg.TLS == nil {
		cfg.TLS, f.ClientTLS = testpeer.TLS(t)
	}
	srv := proxy.NewServer(cfg)
	ln := listen(t)
	f.Addr = ln.Addr().String()
	served := make(chan error, 1)
	go func() { served <- srv.Serve(ln) }()
	f.stop = sync.OnceFunc(func() {
		ctx, cancel := context.WithTimeout(context.Background(), IOGuard)
		defer cancel()
		if err := srv.Shutdown(ctx); err != nil {
			t.Errorf("shutdown: %v", err)
		}
		if err := <-served; err != nil {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(f.stop)
	return f
}

// StartHTTPS serves h over TLS (HTTP/1.1 and HTTP/2) until t ends, with
// connContext as the server's ConnContext when not nil.
func StartHTTPS(t testing.TB, h http.Handler, connContext func(context.Context, net.Conn) context.Context) *Front {
	t.Helper()
	serverTLS, clientTLS := testpeer.TLS(t)
	serverTLS.NextProtos = []string{"h2", "http/1.1"}
	srv := &http.Server{Handler: h, TLSConfig: serverTLS, ConnContext: connContext, ReadHeaderTimeout: IOGuard}
	ln := listen(t)
	served := make(chan error, 1)
	go func() { served <- srv.ServeTLS(ln, "", "") }()
	t.Cleanup(func() {
		srv.Close()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	return &Front{Addr: ln.Addr().String(), ClientTLS: clientTLS, implicit: true}
}

func listen(t testing.TB) net.Listener {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	return ln
}

// Client is one client connection.
type Client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	tls  *tls.Config // for StartTLS
}

func newClient(t testing.TB, c net.Conn, cfg *tls.Config) *Client {
	return &Client{t: t, conn: c, r: bufio.NewReader(c), tls: cfg}
}

// Dial connects to the front-end, with TLS when it is implicit.
func (f *Front) Dial(t testing.TB) *Client {
	t.Helper()
	d := &net.Dialer{Timeout: IOGuard}
	var c net.Conn
	var err error
	if f.implicit {
		c, err = tls.DialWithDialer(d, "tcp", f.Addr, f.ClientTLS)
	} else {
		c, err = d.Dial("tcp", f.Addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { c.Close() })
	return newClient(t, c, f.ClientTLS)
}

// StartTLS upgrades the connection after the front-end's go-ahead. Bytes
// already read and not yet consumed fail the test: nothing may come
// between that answer and the handshake.
func (c *Client) StartTLS() {
	c.t.Helper()
	if n := c.r.Buffered(); n > 0 {
		c.t.Fatalf("%d unread bytes before TLS", n)
	}
	c.conn.SetDeadline(time.Now().Add(IOGuard))
	tc := tls.Client(c.conn, c.tls)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("client TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// Close closes the connection from the client's side.
func (c *Client) Close() { c.conn.Close() }

// Send writes lines, each ended with CRLF.
func (c *Client) Send(lines ...string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(IOGuard))
	if _, err := io.WriteString(c.conn, strings.Join(lines, "\r\n")+"\r\n"); err != nil {
		c.t.Fatalf("send %q: %v", lines, err)
	}
}

// Write writes raw bytes as they are.
func (c *Client) Write(raw string) {
	c.t.Helper()
	c.conn.SetWriteDeadline(time.Now().Add(IOGuard))
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// Line reads one line, which must end in CRLF, and returns it without.
func (c *Client) Line() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(IOGuard))
	l, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read a line: %v (got %q)", err, l)
	}
	if !strings.HasSuffix(l, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", l)
	}
	return strings.TrimSuffix(l, "\r\n")
}

// ExpectLines reads one line for each of want and fails the test unless
// each is exactly what it reads.
func (c *Client) ExpectLines(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if got := c.Line(); got != w {
			c.t.Fatalf("got %q, want %q", got, w)
		}
	}
}

// Rest reads until the front-end closes the connection and returns what
// came. A reset counts as a close: a server that closes with unread client
// bytes in its buffer makes the kernel send RST.
func (c *Client) Rest() string {
	c.t.Helper()
	c.conn.SetReadDeadline(time.Now().Add(IOGuard))
	b, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, net.ErrClosed) && !errors.Is(err, syscall.ECONNRESET) {
		c.t.Fatalf("read to close: %v (got %q)", err, b)
	}
	return string(b)
}

// Expect reads one line and fails the test unless it starts with prefix.
func (c *Client) Expect(prefix string) string {
	c.t.Helper()
	l := c.Line()
	if !strings.HasPrefix(l, prefix) {
		c.t.Fatalf("got %q, want a line starting %q", l, prefix)
	}
	return l
}

// Transact sends cmd and reads lines until one starts with done (an IMAP
// tag, "+OK", "-ERR"), which must start with want; it returns every line.
func (c *Client) Transact(cmd, done, want string) []string {
	c.t.Helper()
	c.Send(cmd)
	var lines []string
	for {
		l := c.Line()
		lines = append(lines, l)
		if strings.HasPrefix(l, done) {
			if !strings.HasPrefix(l, want) {
				c.t.Fatalf("%q answered %q, want %q", cmd, l, want)
			}
			return lines
		}
	}
}

// ReadUntil reads lines up to and including one equal to last (POP3's ".").
func (c *Client) ReadUntil(last string) []string {
	c.t.Helper()
	var lines []string
	for {
		l := c.Line()
		lines = append(lines, l)
		if l == last {
			return lines
		}
	}
}

// HTTP sends one raw HTTP/1.1 request and reads its answer.
func (c *Client) HTTP(raw string) (*http.Response, string) {
	c.t.Helper()
	c.conn.SetDeadline(time.Now().Add(IOGuard))
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatal(err)
	}
	resp, err := http.ReadResponse(c.r, nil)
	if err != nil {
		c.t.Fatalf("read answer: %v", err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	return resp, string(body)
}

// ClosedWithin reads until the front-end closes the connection and
// reports whether that happened within d.
func (c *Client) ClosedWithin(d time.Duration) bool {
	start := time.Now()
	c.conn.SetReadDeadline(start.Add(IOGuard))
	_, err := io.Copy(io.Discard, c.r)
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return false
	}
	return time.Since(start) <= d
}
