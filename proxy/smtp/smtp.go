// Package smtp is postern's SMTP submission front-end (RFC 6409, on an
// implicit-TLS port per RFC 8314 or with STARTTLS per RFC 3207): the
// pre-auth dialogue with a client (greeting, EHLO and HELO, STARTTLS, AUTH
// PLAIN and LOGIN per RFC 4954, NOOP, RSET, QUIT), and the proxy's own
// login to the upstream submission server (XCLIENT, or AUTH PLAIN as a
// master user). It decides nothing about credentials; package proxy owns
// the session around it.
//
// Unlike IMAP and POP3 it keeps one eye on the relayed stream (guard.go):
// the upstream trusts postern's address to name the user, so a client
// command that could name another one (XCLIENT, XFORWARD, AUTH, STARTTLS)
// must never reach it.
package smtp

import (
	"crypto/tls"
	"log/slog"
	"sync/atomic"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// Scope is the protocol name SMTP logins are decided under, and the name
// of the app-password scope that allows sending.
const Scope = authstore.SMTP

// LoginMode is how postern tells the upstream who is sending.
type LoginMode string

const (
	// LoginXClient sends XCLIENT LOGIN=<user> with the client's address,
	// as Postfix takes it from hosts in smtpd_authorized_xclient_hosts.
	LoginXClient LoginMode = "xclient"
	// LoginMaster authenticates with AUTH PLAIN, the user as the
	// authorization identity and the master user's credentials (Dovecot
	// SASL behind Postfix, and servers without XCLIENT).
	LoginMaster LoginMode = "master"
)

// Config configures the SMTP front-end and its upstream login. Of
// proxy.UpstreamCredential, UpstreamTLS asks for STARTTLS upstream, and
// MasterUser and MasterPassword serve LoginMaster.
type Config struct {
	proxy.Adapter
	proxy.UpstreamCredential
	// Login chooses the upstream login (default LoginXClient).
	Login LoginMode
	// Hostname is what postern calls itself in its greeting, its EHLO
	// answer and its own EHLO to the upstream (default "localhost").
	Hostname string
	// Upstream are the upstream's extensions as its EHLO answer lists them
	// (ParseEHLO), from the start-up probe; the EHLO answer offers clients
	// only what the upstream has too. SetUpstream replaces them, and every
	// upstream login refreshes them.
	Upstream Extensions
}

// Protocol is the SMTP implementation of proxy.Protocol. It is safe for
// concurrent use by many sessions.
type Protocol struct {
	cfg        Config
	hostname   string
	accountURL string
	greeting   string
	failure    []string
	sasl       proxy.SASLReplies[[]string]
	log        *slog.Logger
	upstream   atomic.Pointer[Extensions]
	// xclient is the parameters of the upstream's XCLIENT keyword when an
	// EHLO answer last listed it (nil: not known), so that a login can send
	// XCLIENT without an EHLO first (upstream.go). atOnceOff is set for
	// good once an upstream refused that.
	xclient   atomic.Pointer[string]
	atOnceOff atomic.Bool
}

var _ proxy.Protocol = (*Protocol)(nil)

// New returns the SMTP protocol with cfg's zero fields set to defaults.
func New(cfg Config) *Protocol {
	cfg.Adapter = cfg.Adapter.WithDefaults()
	if cfg.Login == "" {
		cfg.Login = LoginXClient
	}
	p := &Protocol{
		cfg:        cfg,
		hostname:   hostname(cfg.Hostname),
		accountURL: proxy.SafeText(cfg.AccountURL),
		log:        cfg.Logger,
	}
	p.greeting = "220 " + p.hostname + " ESMTP postern"
	p.failure = failureReply(p.accountURL)
	p.sasl = proxy.SASLReplies[[]string]{Mechanism: []string{replyMechanism}, Canceled: []string{replyCanceled},
		Encoding: []string{replyBadSASL}, Failure: p.failure}
	p.SetUpstream(cfg.Upstream)
	return p
}

// hostname keeps a configured name only when it is one token a reply and
// an EHLO command can carry.
func hostname(name string) string {
	if !validDomain(name) {
		return "localhost"
	}
	return name
}

// Name reports the protocol's scope name.
func (p *Protocol) Name() authstore.Protocol { return Scope }

// SetUpstream replaces the upstream's extensions (from a probe's EHLO).
func (p *Protocol) SetUpstream(e Extensions) {
	e = e.clone()
	p.upstream.Store(&e)
	p.noteXClient(e)
}

// noteXClient remembers what XCLIENT an EHLO answer offered. An answer
// without it changes nothing: Postfix's answer after XCLIENT lists it no
// more, and only the probe's says for sure that postern may not use it
// (CheckUpstream).
func (p *Protocol) noteXClient(e Extensions) {
	if params, ok := e["XCLIENT"]; ok {
		p.xclient.Store(&params)
	}
}

// NewFrontend starts the pre-auth dialogue with one client. tlsConfig
// enables STARTTLS; it is ignored on a connection that is already TLS.
func (p *Protocol) NewFrontend(c *proxy.Conn, tlsConfig *tls.Config) proxy.Frontend {
	return &frontend{p: p, c: c, tlsConfig: tlsConfig}
}

// Hostname is the name postern gives itself: in its greeting and EHLO
// answer, and in its EHLO to the upstream.
func (p *Protocol) Hostname() string { return p.hostname }
