package imap_test

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"os"
	"runtime"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/imap"
)

// TestS5_UpstreamFaults logs in through a real session in front of each
// kind of broken upstream: the client must get NO [UNAVAILABLE] within a
// bounded time, the pipelined command must never reach the upstream, and
// goroutines and descriptors must return to their baseline. An upstream
// that fails verification or greets with PREAUTH hears not one byte (after
// the TLS handshake), and a 10 MiB line costs bounded memory.
func TestS5_UpstreamFaults(t *testing.T) {
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
			front := fronttest.Start(t, proxy.ServerConfig{
				Protocol: imap.New(imap.Config{UpstreamCredential: proxy.UpstreamCredential{MasterUser: "master", MasterPassword: "secret"}}),
				Auth:     fronttest.GrantAll{}, Upstream: up, ImplicitTLS: true,
				Limits: proxy.Limits{LoginTimeout: loginTimeout, PreAuthTimeout: 30 * time.Second},
			})
			c := front.Dial(t)
			c.Expect("* OK ")
			var before runtime.MemStats
			runtime.ReadMemStats(&before)
			start := time.Now()
			c.Write("a LOGIN alice apppassword\r\nb SELECT INBOX\r\n")
			c.Expect("a NO [UNAVAILABLE]")
			took := time.Since(start)
			// A bound, not a speed figure: the session must never wait on
			// the upstream longer than its dial and login timeouts.
			if bound := dialTimeout + loginTimeout + time.Second; took > bound {
				t.Errorf("answer after %s, bound %s", took, bound)
			}
			var after runtime.MemStats
			runtime.ReadMemStats(&after)
			if kind == testpeer.FaultHugeLine {
				// Reading the whole line would allocate at least its 10 MiB;
				// the session may read up to its 64 KiB line cap.
				const bound = 4 << 20
				alloc := after.TotalAlloc - before.TotalAlloc
				t.Logf("allocated %d KiB in front of a 10 MiB line", alloc>>10)
				if alloc > bound {
					t.Errorf("allocated %d KiB in front of a 10 MiB line, bound %d KiB", alloc>>10, bound>>10)
				}
			}
			c.Close()
			front.Stop()
			if kind != testpeer.FaultDown && kind != testpeer.FaultBlackhole {
				ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
				err := peer.Wait(ctx, 1)
				cancel()
				if err != nil {
					t.Fatal(err)
				}
			}
			for i, got := range peer.Received() {
				if strings.Contains(string(got), "SELECT") {
					t.Errorf("connection %d: the pipelined SELECT reached the upstream: %q", i, got)
				}
				// A peer that failed verification must not see the master
				// credential, nor a peer that claims the session is already
				// logged in a single command.
				if silent := kind == testpeer.FaultBadCert || kind == testpeer.FaultPreauth; silent && len(got) != 0 {
					t.Errorf("connection %d: the %v upstream received %d bytes (%d lines)", i, kind, len(got), strings.Count(string(got), "\n"))
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
