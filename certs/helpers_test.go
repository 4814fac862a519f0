package certs

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"io"
	"log/slog"
	"net"
	"os"
	"path/filepath"
	"slices"
	"sync"
	"testing"
	"time"
)

// testTimeout bounds every network step so a broken test fails instead of hanging.
const testTimeout = 10 * time.Second

// writePair generates a certificate for names and writes it as
// dir/<base>.crt and dir/<base>.key.
func writePair(t *testing.T, dir, base string, names ...string) (Pair, *x509.Certificate) {
	t.Helper()
	p := Pair{CertFile: filepath.Join(dir, base+".crt"), KeyFile: filepath.Join(dir, base+".key")}
	return p, rewritePair(t, p, names...)
}

// rewritePair overwrites p's files in place with a fresh certificate for names.
func rewritePair(t *testing.T, p Pair, names ...string) *x509.Certificate {
	t.Helper()
	certPEM, keyPEM := genPEM(t, time.Now().Add(time.Hour*24*365), names...)
	writeFile(t, p.KeyFile, keyPEM)
	writeFile(t, p.CertFile, certPEM)
	return parseLeaf(t, certPEM)
}

func genPEM(t *testing.T, notAfter time.Time, names ...string) (certPEM, keyPEM []byte) {
	t.Helper()
	var dnsNames []string
	var ips []net.IP
	for _, n := range names {
		if ip := net.ParseIP(n); ip != nil {
			ips = append(ips, ip)
		} else {
			dnsNames = append(dnsNames, n)
		}
	}
	certPEM, keyPEM, err := generate(dnsNames, ips, time.Now().Add(-time.Hour), notAfter)
	if err != nil {
		t.Fatalf("generate %v: %v", names, err)
	}
	return certPEM, keyPEM
}

func parseLeaf(t *testing.T, certPEM []byte) *x509.Certificate {
	t.Helper()
	certs, err := parsePEMCerts(certPEM)
	if err != nil || len(certs) != 1 {
		t.Fatalf("parse generated certificate: %d certs, %v", len(certs), err)
	}
	return certs[0]
}

func writeFile(t *testing.T, path string, data []byte) {
	t.Helper()
	if err := os.WriteFile(path, data, 0o600); err != nil {
		t.Fatal(err)
	}
}

func newManager(t *testing.T, opts Options) *Manager {
	t.Helper()
	m, err := New(opts)
	if err != nil {
		t.Fatalf("New: %v", err)
	}
	return m
}

// serve runs a TLS echo server with m's config on loopback and returns its
// address. Cleanup closes the listener and every accepted connection and
// waits for all server goroutines.
func serve(t *testing.T, m *Manager) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	tl := tls.NewListener(ln, m.TLSConfig())
	var (
		wg     sync.WaitGroup
		mu     sync.Mutex
		conns  []net.Conn
		closed bool
	)
	track := func(c net.Conn) bool {
		mu.Lock()
		defer mu.Unlock()
		if closed {
			return false
		}
		conns = append(conns, c)
		return true
	}
	wg.Go(func() {
		for {
			c, err := tl.Accept()
			if err != nil {
				return
			}
			if !track(c) {
				c.Close()
				return
			}
			wg.Go(func() {
				defer c.Close()
				_, _ = io.Copy(c, c)
			})
		}
	})
	t.Cleanup(func() {
		tl.Close()
		mu.Lock()
		closed = true
		for _, c := range conns {
			c.Close()
		}
		mu.Unlock()
		wg.Wait()
	})
	return ln.Addr().String()
}

// dial completes a TLS handshake with addr; the connection is closed at cleanup.
func dial(t *testing.T, addr string, cfg *tls.Config) (*tls.Conn, error) {
	t.Helper()
	ctx, cancel := context.WithTimeout(t.Context(), testTimeout)
	defer cancel()
	d := tls.Dialer{Config: cfg}
	c, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, err
	}
	t.Cleanup(func() { c.Close() })
	tc := c.(*tls.Conn)
	if err := tc.SetDeadline(time.Now().Add(testTimeout)); err != nil {
		t.Fatal(err)
	}
	return tc, nil
}

// servedLeaf returns the certificate the server presents for serverName
// ("" sends no SNI). Verification is skipped on purpose: the point is to see
// which certificate was chosen, including for names it does not cover.
func servedLeaf(t *testing.T, addr, serverName string) *x509.Certificate {
	t.Helper()
	c, err := dial(t, addr, &tls.Config{ServerName: serverName, InsecureSkipVerify: true})
	if err != nil {
		t.Fatalf("handshake with SNI %q: %v", serverName, err)
	}
	return c.ConnectionState().PeerCertificates[0]
}

// currentLeaf asks the manager directly, without a handshake, for polling loops.
func currentLeaf(t *testing.T, m *Manager, serverName string) *x509.Certificate {
	t.Helper()
	cert, err := m.TLSConfig().GetCertificate(&tls.ClientHelloInfo{ServerName: serverName})
	if err != nil {
		t.Fatalf("GetCertificate: %v", err)
	}
	return cert.Leaf
}

// echo proves a connection still carries data in both directions.
func echo(t *testing.T, c *tls.Conn, msg string) {
	t.Helper()
	if _, err := io.WriteString(c, msg); err != nil {
		t.Fatalf("write: %v", err)
	}
	buf := make([]byte, len(msg))
	if _, err := io.ReadFull(c, buf); err != nil {
		t.Fatalf("read: %v", err)
	}
	if string(buf) != msg {
		t.Fatalf("echo = %q, want %q", buf, msg)
	}
}

// waitFor polls cond until it holds or the deadline passes.
func waitFor(t *testing.T, what string, cond func() bool) {
	t.Helper()
	deadline := time.After(testTimeout)
	tick := time.NewTicker(5 * time.Millisecond)
	defer tick.Stop()
	for !cond() {
		select {
		case <-deadline:
			t.Fatalf("timed out waiting for %s", what)
		case <-tick.C:
		}
	}
}

// startWatch runs watch in a goroutine; cleanup cancels it and waits for it
// to return, which also proves Watch honours its context.
func startWatch(t *testing.T, run func(ctx context.Context)) {
	t.Helper()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() {
		defer close(done)
		run(ctx)
	}()
	t.Cleanup(func() {
		cancel()
		select {
		case <-done:
		case <-time.After(testTimeout):
			t.Error("Watch did not return after its context ended")
		}
	})
}

// logRecorder keeps log messages so tests can wait for a reload attempt.
type logRecorder struct {
	mu   sync.Mutex
	msgs []string
}

func (r *logRecorder) logger() *slog.Logger { return slog.New(recordHandler{r}) }

func (r *logRecorder) count(msg string) int {
	r.mu.Lock()
	defer r.mu.Unlock()
	n := 0
	for _, m := range r.msgs {
		if m == msg {
			n++
		}
	}
	return n
}

func (r *logRecorder) all() []string {
	r.mu.Lock()
	defer r.mu.Unlock()
	return slices.Clone(r.msgs)
}

type recordHandler struct{ r *logRecorder }

func (recordHandler) Enabled(context.Context, slog.Level) bool { return true }
func (h recordHandler) WithAttrs([]slog.Attr) slog.Handler     { return h }
func (h recordHandler) WithGroup(string) slog.Handler          { return h }
func (h recordHandler) Handle(_ context.Context, rec slog.Record) error {
	h.r.mu.Lock()
	defer h.r.mu.Unlock()
	h.r.msgs = append(h.r.msgs, rec.Message)
	return nil
}
