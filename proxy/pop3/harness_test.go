package pop3

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"github.com/postern-dev/postern/internal/testpeer"
	"io"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

const (
	testAccountURL = "https://mail.example.test/account"
	// testFailure is spelled out rather than built, so that a change of the
	// answer shows up as a failing test.
	testFailure = "-ERR [AUTH] Authentication failed. Mail apps need an app password: https://mail.example.test/account"
	// hangGuard only keeps a broken test from hanging the run; no assertion
	// depends on it.
	hangGuard = 20 * time.Second
)

// testCerts is a throwaway self-signed certificate for localhost.
type testCerts struct {
	server *tls.Config
	client *tls.Config
}

func newTestCerts(t *testing.T) testCerts {
	t.Helper()
	server, client := testpeer.TLS(t)
	client.ServerName = "localhost"
	return testCerts{server: server, client: client}
}

// decision is what the test answers to a login the front-end returned.
type decision struct {
	err   error // non-nil: Reject with it
	grant authstore.Grant
	bye   string // after Accept: call Bye with it
}

// session is the server side of one front-end connection: what a
// proxy.Session would do, reduced to what the front-end needs.
type session struct {
	logins chan proxy.Login
	decide chan decision
	done   chan error // the final result: nil after Accept
}

type sessionOpts struct {
	cfg      Config
	stls     bool // offer STLS on a cleartext connection
	implicit bool // TLS from the first byte
	ctx      context.Context
}

// startSession accepts one loopback TCP connection, drives a Frontend on it
// and returns the client side, already past the greeting.
func startSession(t *testing.T, certs testCerts, o sessionOpts) (*client, *session) {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), hangGuard)
	if o.ctx != nil {
		ctx = o.ctx
	}
	s := &session{logins: make(chan proxy.Login, 4), decide: make(chan decision, 4), done: make(chan error, 1)}
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		s.done <- serve(ctx, ln, certs, o, s)
	}()
	raw, err := net.Dial("tcp", ln.Addr().String())
	if err != nil {
		t.Fatal(err)
	}
	_ = raw.SetDeadline(time.Now().Add(hangGuard))
	c := &client{t: t, conn: raw, r: bufio.NewReader(raw)}
	t.Cleanup(func() {
		cancel()
		c.conn.Close()
		<-exited
	})
	if o.implicit {
		c.startTLS(certs.client)
	}
	c.expect(replyGreeting)
	return c, s
}

func serve(ctx context.Context, ln net.Listener, certs testCerts, o sessionOpts, s *session) error {
	raw, err := ln.Accept()
	ln.Close()
	if err != nil {
		return err
	}
	defer raw.Close()
	if o.implicit {
		tc := tls.Server(raw, certs.server)
		if err := tc.HandshakeContext(ctx); err != nil {
			return err
		}
		raw = tc
	}
	var offer *tls.Config
	if o.stls {
		offer = certs.server
	}
	fe := New(o.cfg).NewFrontend(proxy.NewConn(raw), offer)
	return drive(ctx, fe, s)
}

func drive(ctx context.Context, fe proxy.Frontend, s *session) error {
	if err := fe.Greet(); err != nil {
		return err
	}
	for {
		l, err := fe.ReadLogin(ctx)
		if err != nil {
			return err
		}
		s.logins <- l
		var d decision
		select {
		case d = <-s.decide:
		case <-ctx.Done():
			return ctx.Err()
		}
		if d.err != nil {
			if err := fe.Reject(l, d.err); err != nil {
				return err
			}
			continue
		}
		err = fe.Accept(l, proxy.UpstreamResult{}, d.grant)
		if d.bye != "" {
			fe.Bye(d.bye)
		}
		return err
	}
}

// result waits for the front-end to finish.
func (s *session) result(t *testing.T) error {
	t.Helper()
	select {
	case err := <-s.done:
		return err
	case <-time.After(hangGuard):
		t.Fatal("front-end did not finish")
		return nil
	}
}

// login waits for the front-end to return a login.
func (s *session) login(t *testing.T) proxy.Login {
	t.Helper()
	select {
	case l := <-s.logins:
		return l
	case err := <-s.done:
		t.Fatalf("front-end ended instead of returning a login: %v", err)
	case <-time.After(hangGuard):
		t.Fatal("no login returned")
	}
	return proxy.Login{}
}

// client is the raw client side of a test connection.
type client struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
}

func (c *client) write(raw string) {
	c.t.Helper()
	if _, err := io.WriteString(c.conn, raw); err != nil {
		c.t.Fatalf("write: %v", err)
	}
}

func (c *client) send(line string) { c.t.Helper(); c.write(line + "\r\n") }

func (c *client) readLine() string {
	c.t.Helper()
	line, err := c.r.ReadString('\n')
	if err != nil {
		c.t.Fatalf("read reply: %v (partial %q)", err, line)
	}
	if !strings.HasSuffix(line, "\r\n") {
		c.t.Fatalf("reply %q does not end with CRLF", line)
	}
	return strings.TrimSuffix(line, "\r\n")
}

func (c *client) expect(want ...string) {
	c.t.Helper()
	for _, w := range want {
		if got := c.readLine(); got != w {
			c.t.Fatalf("reply = %q, want %q", got, w)
		}
	}
}

// rest reads until the server closes the connection.
func (c *client) rest() string {
	c.t.Helper()
	b, err := io.ReadAll(c.r)
	if err != nil && !errors.Is(err, net.ErrClosed) && !isReset(err) {
		c.t.Fatalf("read to close: %v", err)
	}
	return string(b)
}

// isReset accepts a reset as a close: a server that closes with unread
// client bytes in its buffer makes the kernel send RST.
func isReset(err error) bool {
	return strings.Contains(err.Error(), "connection reset")
}

func (c *client) startTLS(cfg *tls.Config) {
	c.t.Helper()
	if c.r.Buffered() > 0 {
		c.t.Fatalf("%d unread bytes before TLS", c.r.Buffered())
	}
	tc := tls.Client(c.conn, cfg)
	if err := tc.Handshake(); err != nil {
		c.t.Fatalf("TLS handshake: %v", err)
	}
	c.conn = tc
	c.r = bufio.NewReader(tc)
}

// quit asserts the client ended pre-auth with QUIT.
func (s *session) quit(t *testing.T) {
	t.Helper()
	if err := s.result(t); !errors.Is(err, ErrQuit) {
		t.Errorf("ReadLogin error = %v, want ErrQuit", err)
	}
}

// quitWithoutLogin asserts the client quit and no login was handed over.
func (s *session) quitWithoutLogin(t *testing.T) {
	t.Helper()
	s.quit(t)
	if n := len(s.logins); n != 0 {
		t.Errorf("%d logins returned, want none", n)
	}
}

// contextEnds are the two ways a context ends a blocked read: cancelled
// (by the test, while waiting) and a deadline already past.
var contextEnds = []struct {
	name string
	ctx  func() (context.Context, context.CancelFunc)
	want error
}{
	{"canceled", func() (context.Context, context.CancelFunc) { return context.WithCancel(context.Background()) }, context.Canceled},
	{"deadline passed", func() (context.Context, context.CancelFunc) {
		return context.WithDeadline(context.Background(), time.Now().Add(-time.Second))
	}, context.DeadlineExceeded},
}
