// Package proxy owns what every mail front-end shares: the session
// lifecycle (accept, pre-auth, authenticate, upstream login, answer, relay,
// close), the live-session registry and its kicks, upstream dialing,
// connection limits and timeouts. It never interprets post-login traffic,
// and it decides nothing about credentials: authstore does.
//
// The files follow one connection: server.go accepts it, session.go holds
// it, preauth.go runs the TLS handshake and the pre-auth dialogue, login.go
// decides a login and logs in upstream, relay.go copies bytes, end.go ends
// it (kicks, goodbyes, cleanup). registry.go lists and kicks live sessions.
package proxy

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"net/netip"

	"github.com/postern-dev/postern/authstore"
)

// Authenticator is the one decision the proxy asks of the credential store.
type Authenticator interface {
	Authenticate(ctx context.Context, a authstore.Attempt) (authstore.Grant, error)
}

// ErrUpstream marks a failure of the upstream server or of the proxy's own
// login to it. Front-ends answer it like authstore.ErrUnavailable: "try again
// later", never "wrong password".
var ErrUpstream = errors.New("upstream unavailable")

// ErrLoginRefused marks an upstream that answered the proxy's login for a
// user with a refusal (IMAP NO, POP3 -ERR), as opposed to failing to
// answer. It wraps ErrUpstream.
var ErrLoginRefused = fmt.Errorf("%w: the upstream refused the login", ErrUpstream)

// Login is one complete credential a client sent during pre-auth.
type Login struct {
	Tag        string // protocol's handle for the answer (IMAP tag); may be empty
	Username   string
	Secret     string
	ClientName string // IMAP ID "name" (and version), if the client sent one
	// Hello is the name the client gave in SMTP's EHLO or HELO, passed on
	// to the upstream in ClientInfo.
	Hello string
}

// ClientInfo tells the upstream who the real client is.
type ClientInfo struct {
	Addr      netip.AddrPort
	SessionID string
	Hello     string // Login.Hello
}

// UpstreamResult is what an upstream login learned for the client's answer.
type UpstreamResult struct {
	// Capabilities the upstream announced after login (IMAP); nil for POP3.
	Capabilities []string
}

// Protocol is what a front-end package (proxy/imap, proxy/pop3) supplies.
type Protocol interface {
	Name() authstore.Protocol
	// NewFrontend starts speaking to one client. tlsConfig is nil when the
	// listener cannot offer STARTTLS/STLS (or the connection is already TLS).
	NewFrontend(c *Conn, tlsConfig *tls.Config) Frontend
	// UpstreamLogin reads the greeting of a freshly dialed upstream
	// connection, upgrades it with STARTTLS when configured, announces the
	// client, and logs in as user. Every failure wraps ErrUpstream.
	UpstreamLogin(ctx context.Context, up *Conn, user string, info ClientInfo) (UpstreamResult, error)
}

// Frontend is one client's pre-auth dialogue. It keeps per-connection state
// (TLS done, bad-command count, ID) across repeated login attempts.
type Frontend interface {
	Greet() error
	// ReadLogin answers pre-auth commands until the client sent a complete
	// login. It returns an error when the client leaves, breaks a limit, or
	// the context ends; the session then closes the connection.
	ReadLogin(ctx context.Context) (Login, error)
	// Accept answers a successful login (after the upstream login).
	Accept(l Login, u UpstreamResult, g authstore.Grant) error
	// Reject answers a failed login. err wraps authstore.ErrUnauthorized,
	// authstore.ErrUnavailable or ErrUpstream.
	Reject(l Login, err error) error
	// Bye tells the client the session is ending (kick, shutdown, login
	// timeout); best effort. The session owns its deadline: before calling
	// Bye it bounds the write to the client to 300 ms, so that a kick of a
	// client that stops reading still closes well within the one-second
	// promise (P10). Bye must not move that deadline. The
	// front-end words reason with Reason.Words and its account URL.
	Bye(reason Reason)
}

// RelayFilter is implemented by a Frontend whose protocol must keep
// watching the client's stream after login (SMTP keeps commands that would
// change who the upstream thinks is sending from reaching it). FilterRelay
// returns the connection the relay then reads the client's bytes from and
// writes the upstream's bytes to, wrapping client. pending are the bytes
// the client sent ahead of the relay, valid only during the call; the
// returned connection must deliver them first. A read or write error from
// it ends the session like any other.
type RelayFilter interface {
	FilterRelay(client net.Conn, pending []byte) net.Conn
}

// Conn is a connection with buffered reading and writing.
type Conn struct {
	net.Conn
	R *bufio.Reader
	W *bufio.Writer
}

// NewConn wraps c with buffers.
func NewConn(c net.Conn) *Conn {
	return &Conn{Conn: c, R: bufio.NewReaderSize(c, 4096), W: bufio.NewWriterSize(c, 4096)}
}

// IsTLS reports whether the connection is already protected by TLS.
func (c *Conn) IsTLS() bool {
	_, ok := c.Conn.(*tls.Conn)
	return ok
}

// StartTLSServer upgrades to TLS as the server. Bytes the client pipelined
// after STARTTLS/STLS are discarded, never parsed (CVE-2011-0411 class).
func (c *Conn) StartTLSServer(ctx context.Context, cfg *tls.Config) error {
	return c.upgrade(ctx, tls.Server(c.Conn, cfg))
}

// StartTLSClient upgrades to TLS as the client (upstream STARTTLS).
func (c *Conn) StartTLSClient(ctx context.Context, cfg *tls.Config) error {
	return c.upgrade(ctx, tls.Client(c.Conn, cfg))
}

func (c *Conn) upgrade(ctx context.Context, t *tls.Conn) error {
	if err := c.W.Flush(); err != nil {
		return err
	}
	if err := t.HandshakeContext(ctx); err != nil {
		return err
	}
	c.Conn = t
	c.R.Reset(t)
	c.W.Reset(t)
	return nil
}
