package proxy

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"time"
)

// Security says how the proxy protects its connection to the upstream.
type Security int

const (
	// Implicit wraps the connection in TLS at once (993, 995). It is the zero
	// value so that a forgotten setting never means plaintext.
	Implicit Security = iota
	// StartTLS dials in plaintext; the protocol's UpstreamLogin upgrades the
	// connection before any credential is sent, because only it knows the verb.
	StartTLS
	// None leaves the connection in plaintext (loopback or a private link).
	None
)

// String names the mode as the configuration spells it.
func (s Security) String() string {
	switch s {
	case Implicit:
		return "tls"
	case StartTLS:
		return "starttls"
	case None:
		return "none"
	}
	return fmt.Sprintf("Security(%d)", int(s))
}

// Upstream is the server the proxy logs in to on the user's behalf.
type Upstream struct {
	Address string // host:port
	// Security decides between implicit TLS, STARTTLS (done by the protocol)
	// and plaintext.
	Security Security
	// TLS verifies the upstream's certificate; nil means the system roots
	// and the host of Address as server name. ClientTLS turns it into the
	// configuration of every upstream handshake; verification is never
	// skipped: there is no silent plaintext or unverified fallback.
	TLS *tls.Config
	// DialTimeout bounds the TCP connect and, for Implicit, the handshake.
	DialTimeout time.Duration
}

// Dial connects to the upstream and, for Implicit, completes a verified TLS
// handshake, all under DialTimeout. Every failure wraps ErrUpstream.
func (u Upstream) Dial(ctx context.Context) (*Conn, error) {
	timeout := u.DialTimeout
	if timeout <= 0 {
		timeout = DefaultDialTimeout
	}
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	var d net.Dialer
	c, err := d.DialContext(ctx, "tcp", u.Address)
	if err != nil {
		return nil, fmt.Errorf("dial upstream %s: %w: %w", u.Address, ErrUpstream, err)
	}
	if u.Security != Implicit {
		return NewConn(c), nil
	}
	cfg, err := u.ClientTLS()
	if err != nil {
		c.Close()
		return nil, err
	}
	t := tls.Client(c, cfg)
	if err := t.HandshakeContext(ctx); err != nil {
		c.Close()
		return nil, fmt.Errorf("tls handshake with upstream %s: %w: %w", u.Address, ErrUpstream, err)
	}
	return NewConn(t), nil
}

// ClientTLS is the one place the configuration of a TLS handshake with the
// upstream is built, for implicit TLS (Dial) and for STARTTLS (the
// protocol's UpstreamLogin, given it by whoever builds the protocol) alike:
// a copy of TLS, at least TLS 1.2, the server named after Address when the
// configuration does not name it, and verification on. A configuration
// that switches verification off is refused (P5).
func (u Upstream) ClientTLS() (*tls.Config, error) {
	var cfg *tls.Config
	if u.TLS != nil {
		cfg = u.TLS.Clone()
	} else {
		cfg = &tls.Config{}
	}
	if cfg.InsecureSkipVerify {
		return nil, fmt.Errorf("upstream %s: %w: certificate verification cannot be switched off", u.Address, ErrUpstream)
	}
	cfg.MinVersion = max(cfg.MinVersion, tls.VersionTLS12)
	if cfg.ServerName == "" {
		host, _, err := net.SplitHostPort(u.Address)
		if err != nil {
			return nil, fmt.Errorf("upstream address %q: %w: %w", u.Address, ErrUpstream, err)
		}
		cfg.ServerName = host
	}
	return cfg, nil
}
