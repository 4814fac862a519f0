package imap

import (
	"context"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/proxy"
)

// client drives one Frontend over a real TCP connection, the way mox's
// imapserver tests do: write a line, expect the exact answer.
type client struct {
	*fronttest.Client
	t        *testing.T
	s        *fronttest.Session
	greeting string
}

func newClient(t *testing.T, p *Protocol, mode fronttest.Mode) *client {
	t.Helper()
	return newClientContext(t.Context(), t, p, mode)
}

// newClientContext is newClient with ctx as ReadLogin's context.
func newClientContext(ctx context.Context, t *testing.T, p *Protocol, mode fronttest.Mode) *client {
	t.Helper()
	fc, s := fronttest.DriveFrontend(ctx, t, p, mode)
	return &client{Client: fc, t: t, s: s, greeting: fc.Line()}
}

// transact writes raw and expects exactly the lines want in order.
func (c *client) transact(raw string, want ...string) {
	c.t.Helper()
	c.Write(raw)
	c.ExpectLines(want...)
}

// noLogin proves that no login came out of what was sent so far: after a
// LOGOUT the pending ReadLogin must end as a departure.
func (c *client) noLogin() {
	c.t.Helper()
	c.transact("z LOGOUT\r\n", "* BYE Logging out", "z OK LOGOUT completed")
	if err := c.s.Result(c.t); !errors.Is(err, io.EOF) {
		c.t.Fatalf("ReadLogin after LOGOUT: %v, want io.EOF", err)
	}
}

// readAll reads the lines that come until the front-end closes the
// connection.
func (c *client) readAll() []string {
	c.t.Helper()
	return strings.Split(strings.TrimSuffix(c.Rest(), "\r\n"), "\r\n")
}

var testClientInfo = proxy.ClientInfo{Addr: netip.MustParseAddrPort("192.0.2.7:4242"), SessionID: "s1"}
