// Package fronttest is the test harness every front-end shares: a real
// proxy.Server (or, for DAV, an HTTPS server) on loopback in front of an
// in-process upstream; one Frontend driven as a session would drive it,
// for tests of what ReadLogin returns; and a client (linetest's) that
// speaks the real protocol over TCP with transact/expect helpers. Tests
// only. proxy's own tests, which fronttest cannot serve (it imports
// proxy), use linetest directly.
package fronttest

import (
	"context"
	"crypto/tls"
	"errors"
	"net"
	"net/http"
	"sync"
	"testing"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/linetest"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
)

// IOGuard bounds every blocking read so a broken test fails instead of
// hanging; nothing waits on it to synchronise.
const IOGuard = linetest.IOGuard

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
	stop := sync.OnceFunc(func() {
		srv.Close()
		if err := <-served; err != nil && !errors.Is(err, http.ErrServerClosed) {
			t.Errorf("serve: %v", err)
		}
	})
	t.Cleanup(stop)
	return &Front{Addr: ln.Addr().String(), ClientTLS: clientTLS, implicit: true, stop: stop}
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
type Client = linetest.Client

// Dial connects to the front-end, with TLS when it is implicit.
func (f *Front) Dial(t testing.TB) *Client {
	t.Helper()
	return linetest.Dial(t, f.Addr, f.ClientTLS, f.implicit)
}
