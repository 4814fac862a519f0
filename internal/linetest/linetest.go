// Package linetest is the client side of the test harnesses: a client
// that speaks a line protocol (or raw HTTP/1.1) over real TCP, with
// transact/expect helpers whose reads are bounded so that a broken test
// fails instead of hanging. Tests only.
package linetest

import (
	"bufio"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
	"time"
)

// IOGuard bounds every blocking read so a broken test fails instead of
// hanging; nothing waits on it to synchronise.
const IOGuard = 20 * time.Second

// TCPPair returns both ends of a real loopback TCP connection, closed when
// t ends.
func TCPPair(t testing.TB) (client, server net.Conn) {
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
		client.Close()
		t.Fatal("accept failed")
	}
	t.Cleanup(func() { client.Close(); server.Close() })
	return client, server
}

// Dial connects to addr, with a TLS handshake at once when implicitTLS;
// cfg is for that handshake or a later StartTLS.
func Dial(t testing.TB, addr string, cfg *tls.Config, implicitTLS bool) *Client {
	t.Helper()
	d := &net.Dialer{Timeout: IOGuard}
	var c net.Conn
	var err error
	if implicitTLS {
		c, err = tls.DialWithDialer(d, "tcp", addr, cfg)
	} else {
		c, err = d.Dial("tcp", addr)
	}
	if err != nil {
		t.Fatal(err)
	}
	return NewClient(t, c, cfg)
}

// Client is one client connection.
type Client struct {
	t    testing.TB
	conn net.Conn
	r    *bufio.Reader
	tls  *tls.Config // for StartTLS
}

// NewClient speaks over c, already connected, and closes it when t ends;
// cfg is for StartTLS.
func NewClient(t testing.TB, c net.Conn, cfg *tls.Config) *Client {
	t.Cleanup(func() { c.Close() })
	return &Client{t: t, conn: c, r: bufio.NewReader(c), tls: cfg}
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
	l, err := c.LineBefore(time.Now().Add(IOGuard))
	if err != nil {
		c.t.Fatalf("read a line: %v (got %q)", err, l)
	}
	return l
}

// LineBefore reads one line, which must end in CRLF, before deadline and
// returns it without, or the error that ended the read.
func (c *Client) LineBefore(deadline time.Time) (string, error) {
	c.conn.SetReadDeadline(deadline)
	l, err := c.r.ReadString('\n')
	if err == nil && !strings.HasSuffix(l, "\r\n") {
		err = errors.New("line does not end in CRLF")
	}
	return strings.TrimSuffix(l, "\r\n"), err
}

// ExpectEOF fails the test unless the connection ends, with not one more
// byte, before deadline.
func (c *Client) ExpectEOF(deadline time.Time) {
	c.t.Helper()
	c.conn.SetReadDeadline(deadline)
	n, err := c.r.Read(make([]byte, 1))
	if n != 0 || !errors.Is(err, io.EOF) {
		c.t.Fatalf("%d more bytes, %v; want EOF", n, err)
	}
}

// Conn is the connection, for what the helpers do not cover (half-close,
// raw deadlines and writes). Read through the Client, not Conn: it may
// hold bytes already received.
func (c *Client) Conn() net.Conn { return c.conn }

// Read reads raw bytes through the Client's buffer.
func (c *Client) Read(p []byte) (int, error) { return c.r.Read(p) }

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
