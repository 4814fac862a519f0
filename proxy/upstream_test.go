package proxy

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"net"
	"testing"
	"time"
)

// dialWithin runs u.Dial and fails the test if it does not return
// within the harness timeout.
func dialWithin(t *testing.T, ctx context.Context, u Upstream) (*Conn, error) {
	t.Helper()
	type result struct {
		c   *Conn
		err error
	}
	ch := make(chan result, 1)
	go func() {
		c, err := u.Dial(ctx)
		ch <- result{c, err}
	}()
	select {
	case r := <-ch:
		if r.c != nil {
			t.Cleanup(func() { r.c.Close() })
		}
		return r.c, r.err
	case <-time.After(ioTimeout):
		t.Fatal("Dial did not return")
		return nil, nil
	}
}

// silentServer accepts connections and never says a word.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	var conns []net.Conn // owned by the accept loop until done
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			conns = append(conns, c)
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
		for _, c := range conns {
			c.Close()
		}
	})
	return ln.Addr().String()
}

// greetingServer accepts connections and sends a plaintext greeting.
func greetingServer(t *testing.T, cfg *tls.Config) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	if cfg != nil {
		ln = tls.NewListener(ln, cfg)
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			io.WriteString(c, "* OK ready\r\n")
			c.Close()
		}
	}()
	t.Cleanup(func() {
		ln.Close()
		<-done
	})
	return ln.Addr().String()
}

func downAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return addr
}

// TestS5_UpstreamDialFailures: every way the upstream can fail to be
// reached answers ErrUpstream, bounded by DialTimeout.
func TestS5_UpstreamDialFailures(t *testing.T) {
	cert, pool := testCert(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	// Cases that must time out get a short DialTimeout; the others a long
	// one, so that a loaded machine cannot turn their failure into a timeout.
	const short = 300 * time.Millisecond
	tests := []struct {
		name        string
		addr        func(t *testing.T) string
		security    Security
		tls         *tls.Config
		ctx         func() context.Context
		wantTimeout bool
	}{
		{name: "down port", addr: downAddr, security: None},
		{name: "blackholed", addr: blackholeAddr, security: None, wantTimeout: true},
		{name: "silent TLS server", addr: silentServer, security: Implicit, tls: &tls.Config{RootCAs: pool}, wantTimeout: true},
		{name: "untrusted certificate", addr: func(t *testing.T) string { return greetingServer(t, serverTLS) },
			security: Implicit, tls: &tls.Config{RootCAs: x509.NewCertPool()}},
		{name: "wrong server name", addr: func(t *testing.T) string { return greetingServer(t, serverTLS) },
			security: Implicit, tls: &tls.Config{RootCAs: pool, ServerName: "mail.example.org"}},
		{name: "plaintext server on the TLS port", addr: func(t *testing.T) string { return greetingServer(t, nil) },
			security: Implicit, tls: &tls.Config{RootCAs: pool}},
		{name: "address without port", addr: func(*testing.T) string { return "127.0.0.1" }, security: None},
		{name: "cancelled context", addr: silentServer, security: Implicit, tls: &tls.Config{RootCAs: pool},
			ctx: func() context.Context {
				ctx, cancel := context.WithCancel(context.Background())
				cancel()
				return ctx
			}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := Upstream{Address: tt.addr(t), Security: tt.security, TLS: tt.tls, DialTimeout: ioTimeout / 2}
			if tt.wantTimeout {
				u.DialTimeout = short
			}
			ctx := context.Background()
			if tt.ctx != nil {
				ctx = tt.ctx()
			}
			start := time.Now()
			c, err := dialWithin(t, ctx, u)
			if c != nil || !errors.Is(err, ErrUpstream) {
				t.Fatalf("Dial = %v, %v; want ErrUpstream", c, err)
			}
			var ne net.Error
			timedOut := errors.Is(err, context.DeadlineExceeded) || errors.As(err, &ne) && ne.Timeout()
			if timedOut != tt.wantTimeout {
				t.Errorf("Dial error %v: timeout = %v, want %v", err, timedOut, tt.wantTimeout)
			}
			t.Logf("%v after %v", err, time.Since(start).Round(time.Millisecond))
		})
	}
}

func TestUpstreamDialModes(t *testing.T) {
	cert, pool := testCert(t)
	serverTLS := &tls.Config{Certificates: []tls.Certificate{cert}}
	tests := []struct {
		name     string
		security Security
		server   *tls.Config
		tls      *tls.Config
		wantTLS  bool
	}{
		{name: "implicit TLS, verified", security: Implicit, server: serverTLS, tls: &tls.Config{RootCAs: pool}, wantTLS: true},
		{name: "STARTTLS dials plaintext", security: StartTLS},
		{name: "plaintext", security: None},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			u := Upstream{Address: greetingServer(t, tt.server), Security: tt.security, TLS: tt.tls}
			c, err := dialWithin(t, context.Background(), u)
			if err != nil {
				t.Fatal(err)
			}
			if c.IsTLS() != tt.wantTLS {
				t.Errorf("IsTLS = %v, want %v", c.IsTLS(), tt.wantTLS)
			}
			c.SetReadDeadline(time.Now().Add(ioTimeout))
			if line, err := c.R.ReadString('\n'); line != "* OK ready\r\n" {
				t.Errorf("greeting %q, %v", line, err)
			}
		})
	}
}

// TestP5_ClientTLS: the one builder of upstream handshake configurations
// names the server, keeps the trust roots, never goes below TLS 1.2 and
// refuses to switch verification off.
func TestP5_ClientTLS(t *testing.T) {
	_, pool := testCert(t)
	tests := []struct {
		name     string
		up       Upstream
		wantName string
		wantErr  bool
	}{
		{name: "named after the address", up: Upstream{Address: "mail.example.org:993", TLS: &tls.Config{RootCAs: pool}}, wantName: "mail.example.org"},
		{name: "no configuration", up: Upstream{Address: "192.0.2.1:993"}, wantName: "192.0.2.1"},
		{name: "configured name kept", up: Upstream{Address: "192.0.2.1:143", TLS: &tls.Config{ServerName: "imap.example.org", MinVersion: tls.VersionTLS13}}, wantName: "imap.example.org"},
		{name: "old versions raised", up: Upstream{Address: "192.0.2.1:143", TLS: &tls.Config{MinVersion: tls.VersionTLS10}}, wantName: "192.0.2.1"},
		{name: "verification off", up: Upstream{Address: "192.0.2.1:993", TLS: &tls.Config{InsecureSkipVerify: true}}, wantErr: true},
		{name: "address without port", up: Upstream{Address: "192.0.2.1"}, wantErr: true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			cfg, err := tt.up.ClientTLS()
			if tt.wantErr {
				if !errors.Is(err, ErrUpstream) {
					t.Fatalf("ClientTLS = %v, %v; want ErrUpstream", cfg, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if cfg.ServerName != tt.wantName || cfg.InsecureSkipVerify || cfg.MinVersion < tls.VersionTLS12 {
				t.Fatalf("ServerName %q, InsecureSkipVerify %v, MinVersion %x", cfg.ServerName, cfg.InsecureSkipVerify, cfg.MinVersion)
			}
			if tt.up.TLS != nil {
				if cfg == tt.up.TLS || cfg.RootCAs != tt.up.TLS.RootCAs {
					t.Fatal("not a copy keeping the trust roots")
				}
				if tt.up.TLS.MinVersion > tls.VersionTLS12 && cfg.MinVersion != tt.up.TLS.MinVersion {
					t.Fatalf("MinVersion %x lowered from %x", cfg.MinVersion, tt.up.TLS.MinVersion)
				}
			}
		})
	}
}

func TestSecurityString(t *testing.T) {
	for s, want := range map[Security]string{Implicit: "tls", StartTLS: "starttls", None: "none", 7: "Security(7)"} {
		if got := s.String(); got != want {
			t.Errorf("%d.String() = %q, want %q", int(s), got, want)
		}
	}
}
