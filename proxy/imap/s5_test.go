package imap_test

import (
	"bufio"
	"context"
	"crypto/tls"
	"crypto/x509"
	"net"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/certs"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/imap"
)

// grantAll accepts every credential: S5 is about the upstream, not the store.
type grantAll struct{}

func (grantAll) Authenticate(_ context.Context, a authstore.Attempt) (authstore.Grant, error) {
	return authstore.Grant{UserID: "1", Username: a.Username, AppPassID: "ap1"}, nil
}

// TestS5_UpstreamFaults logs in through a real session in front of each
// kind of broken upstream: the client must get NO [UNAVAILABLE] within a
// bounded time, the pipelined command must never reach the upstream, and
// goroutines and descriptors must return to their baseline.
func TestS5_UpstreamFaults(t *testing.T) {
	pair, err := certs.SelfSigned(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	mgr, err := certs.New(certs.Options{Pairs: []certs.Pair{pair}})
	if err != nil {
		t.Fatal(err)
	}
	pool, err := certs.CertPool(pair.CertFile)
	if err != nil {
		t.Fatal(err)
	}
	const dialTimeout, loginTimeout = time.Second, 2 * time.Second
	kinds := []testpeer.FaultKind{testpeer.FaultDown, testpeer.FaultBlackhole, testpeer.FaultSlow,
		testpeer.FaultCloseMidLogin, testpeer.FaultHugeLine, testpeer.FaultPreauth,
		testpeer.FaultRefuseLogin, testpeer.FaultBadCert}
	for _, kind := range kinds {
		t.Run(kind.String(), func(t *testing.T) {
			peer := testpeer.StartFault(t, kind)
			up := proxy.Upstream{Address: peer.Addr, Security: proxy.None, DialTimeout: dialTimeout}
			if kind == testpeer.FaultBadCert {
				up.Security = proxy.Implicit
				up.TLS = &tls.Config{RootCAs: x509.NewCertPool(), ServerName: "127.0.0.1"}
			}
			baseG, baseFD := runtime.NumGoroutine(), openFDs(t)
			srv := proxy.NewServer(proxy.ServerConfig{
				Protocol: imap.New(imap.Config{UpstreamCredential: proxy.UpstreamCredential{MasterUser: "master", MasterPassword: "secret"}}),
				Auth:     grantAll{}, Upstream: up, TLS: mgr.TLSConfig(), ImplicitTLS: true,
				Limits: proxy.Limits{LoginTimeout: loginTimeout, PreAuthTimeout: 30 * time.Second},
			})
			ln, err := net.Listen("tcp", "127.0.0.1:0")
			if err != nil {
				t.Fatal(err)
			}
			served := make(chan error, 1)
			go func() { served <- srv.Serve(ln) }()

			c, err := tls.Dial("tcp", ln.Addr().String(), &tls.Config{RootCAs: pool, ServerName: "127.0.0.1"})
			if err != nil {
				t.Fatal(err)
			}
			r := bufio.NewReader(c)
			if _, err := r.ReadString('\n'); err != nil {
				t.Fatal(err)
			}
			start := time.Now()
			c.Write([]byte("a LOGIN alice apppassword\r\nb SELECT INBOX\r\n"))
			c.SetReadDeadline(time.Now().Add(3 * (dialTimeout + loginTimeout)))
			line, err := r.ReadString('\n')
			took := time.Since(start)
			if err != nil || !strings.HasPrefix(line, "a NO [UNAVAILABLE]") {
				t.Fatalf("answer %q, %v", line, err)
			}
			// A bound, not a speed figure: the session must never wait on
			// the upstream longer than its dial and login timeouts.
			if bound := dialTimeout + loginTimeout + time.Second; took > bound {
				t.Errorf("answer after %s, bound %s", took, bound)
			}
			c.Close()
			srv.Shutdown(context.Background())
			if err := <-served; err != nil {
				t.Errorf("Serve: %v", err)
			}
			for i, got := range peer.Received() {
				if strings.Contains(string(got), "SELECT") {
					t.Errorf("connection %d: the pipelined SELECT reached the upstream: %q", i, got)
				}
			}
			held := 0
			if kind == testpeer.FaultBlackhole {
				// The blackhole never reads, so it alone keeps its end of
				// each connection (one handler, one descriptor) until cleanup.
				held = len(peer.Received())
			}
			waitBaseline(t, baseG+held, baseFD+held)
		})
	}
}

func openFDs(t *testing.T) int {
	t.Helper()
	ents, err := os.ReadDir("/proc/self/fd")
	if err != nil {
		t.Skip("no /proc/self/fd")
	}
	return len(ents)
}

func waitBaseline(t *testing.T, goroutines, fds int) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		g, fd := runtime.NumGoroutine(), openFDs(t)
		if g <= goroutines && fd <= fds {
			return
		}
		if time.Now().After(deadline) {
			buf := make([]byte, 1<<16)
			t.Fatalf("leak: goroutines %d (baseline %d), descriptors %d (baseline %d)\n%s",
				g, goroutines, fd, fds, buf[:runtime.Stack(buf, true)])
		}
		time.Sleep(20 * time.Millisecond)
	}
}
