package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"github.com/postern-dev/postern/internal/testpeer"
	"io"
	"net"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/proxy"
)

// ioGuard bounds every blocking read in a test so a broken test fails
// instead of hanging; nothing waits on it to synchronise.
const ioGuard = 20 * time.Second

// testTLS returns a server config with a throwaway self-signed certificate
// for 127.0.0.1 and a client config that trusts exactly that certificate.
func testTLS(t testing.TB) (server, client *tls.Config) {
	t.Helper()
	return testpeer.TLS(t)
}

// tcpPair returns both ends of a real loopback TCP connection.
func tcpPair(t testing.TB) (client, server net.Conn) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	accepted := make(chan net.Conn, 1)
	go func() {
		c, err := ln.Accept()
		if err != nil {
			c = nil
		}
		accepted <- c
	}()
	client, err = net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	server = <-accepted
	if server == nil {
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// connMode says how a test client reaches the front-end.
type connMode int

const (
	modeStartTLS  connMode = iota // cleartext, STARTTLS offered
	modeCleartext                 // cleartext, no STARTTLS on this listener
	modeTLS                       // implicit TLS
)

type result struct {
	login proxy.Login
	err   error
}

// client drives one Frontend over a real TCP connection, the way mox's
// imapserver tests do: write a line, expect the exact answer.
type client struct {
	t         *testing.T
	conn      net.Conn
	r         *bufio.Reader
	f         proxy.Frontend
	clientTLS *tls.Config
	results   chan result
	ctx       context.Context
	greeting  string
	srv       *proxy.Conn
}

func newClient(t *testing.T, p *Protocol, mode connMode) *client {
	t.Helper()
	cc, sc := tcpPair(t)
	serverTLS, clientTLS := testTLS(t)
	var startTLS *tls.Config
	switch mode {
	case modeStartTLS:
		startTLS = serverTLS
	case modeTLS:
		sc = tls.Server(sc, serverTLS)
		cc = tls.Client(cc, clientTLS)
	}
	if err := cc.SetDeadline(time.Now().Add(ioGuard)); err != nil {
		t.Fatal(err)
	}
	c := &client{t: t, conn: cc, r: bufio.NewReader(cc), clientTLS: clientTLS,
		results: make(chan result, 1), ctx: t.Context()}
	greeted := make(chan error, 1)
	go func() {
		// An implicit-TLS handshake needs both ends running.
		c.srv = proxy.NewConn(sc)
		c.f = p.NewFrontend(c.srv, startTLS)
		greeted <- c.f.Greet()
	}()
	c.greeting = c.line()
	if err := <-greeted; err != nil {
		t.Fatal(err)
	}
	return c
}

// serve runs one ReadLogin in the background; its outcome goes to results.
func (c *client) serve() {
	go func() {
		l, err := c.f.ReadLogin(c.ctx)
		if err != nil {
			// As the session would: a failed pre-auth ends the connection.
			c.srv.Close()
		}
		c.results <- result{l, err}
	}()
}

// line reads one line from the front-end, without its CRLF.
func (c *client) line() string {
	c.t.Helper()
	s, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read: %v (partial %q)", err, s)
	}
	if !strings.HasSuffix(s, "\r\n") {
		c.t.Fatalf("line %q does not end in CRLF", s)
	}
	return strings.TrimSuffix(s, "\r\n")
}

func (c *client) write(s string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, s); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

// transact writes raw and expects exactly the lines want in order.
func (c *client) transact(raw string, want ...string) {
	c.t.Helper()
	c.write(raw)
	for _, w := range want {
		if got := c.line(); got != w {
			c.t.Fatalf("after %q: got %q, want %q", raw, got, w)
		}
	}
}

// login waits for ReadLogin to return a login.
func (c *client) login() proxy.Login {
	c.t.Helper()
	r := <-c.results
	if r.err != nil {
		c.t.Fatalf("ReadLogin: %v", r.err)
	}
	return r.login
}

// ended waits for ReadLogin to fail and returns its error.
func (c *client) ended() error {
	c.t.Helper()
	r := <-c.results
	if r.err == nil {
		c.t.Fatalf("ReadLogin returned a login %+v, want an error", r.login)
	}
	return r.err
}

// noLogin proves that no login came out of what was sent so far: after a
// LOGOUT the pending ReadLogin must end as a departure.
func (c *client) noLogin() {
	c.t.Helper()
	c.transact("z LOGOUT\r\n", "* BYE Logging out", "z OK LOGOUT completed")
	if err := c.ended(); !errors.Is(err, io.EOF) {
		c.t.Fatalf("ReadLogin after LOGOUT: %v, want io.EOF", err)
	}
}

// startTLS upgrades the client side after the front-end's OK.
func (c *client) startTLS() {
	c.t.Helper()
	tc := tls.Client(c.conn, c.clientTLS)
	if err := tc.HandshakeContext(c.ctx); err != nil {
		c.t.Fatalf("client TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// readAll reads until the front-end closes the connection.
func (c *client) readAll() []string {
	c.t.Helper()
	all, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, net.ErrClosed) {
		c.t.Fatalf("read to close: %v", err)
	}
	return strings.Split(strings.TrimSuffix(string(all), "\r\n"), "\r\n")
}

var testClientInfo = proxy.ClientInfo{Addr: netip.MustParseAddrPort("192.0.2.7:4242"), SessionID: "s1"}
