// Package pop3 is the POP3 front-end of postern: the pre-auth dialogue with a
// client (RFC 1939, 2449 CAPA and response codes, 2595 STLS, 3206 SYS/AUTH
// codes, 5034 AUTH) and the proxy's own login to the upstream POP3 server.
// It decides nothing about credentials and never reads post-login traffic;
// package proxy owns the session around it.
package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

// Config configures the POP3 front-end and its upstream login.
type Config struct {
	proxy.Adapter
	proxy.UpstreamCredential
	// XClient announces the real client with XCLIENT ADDR/PORT when the
	// upstream offers it (Dovecot's "[XCLIENT]" greeting or a CAPA line).
	XClient bool
}

var (
	// errQuit is returned by ReadLogin after the client sent QUIT.
	errQuit = errors.New("pop3: client quit")
	// errTooManyBadCommands is returned by ReadLogin when the client used up
	// its bad-command allowance.
	errTooManyBadCommands = errors.New("pop3: too many bad commands")
)

// Protocol is the POP3 implementation of proxy.Protocol.
type Protocol struct {
	cfg        Config
	accountURL string
	failure    string
	sasl       proxy.SASLReplies[string]
	maxLine    int
	maxBad     int
	log        *slog.Logger
}

var _ proxy.Protocol = (*Protocol)(nil)

// New returns the POP3 protocol with defaults applied to cfg.
func New(cfg Config) *Protocol {
	cfg.Adapter = cfg.Adapter.WithDefaults()
	p := &Protocol{
		cfg:        cfg,
		accountURL: proxy.SafeText(cfg.AccountURL),
		maxLine:    cfg.MaxLine,
		maxBad:     cfg.MaxBadCommands,
		log:        cfg.Logger,
	}
	p.failure = failureReply(p.accountURL)
	p.sasl = proxy.SASLReplies[string]{Mechanism: replyMechanism, Canceled: replyCanceled, Encoding: replyBadSASL, Failure: p.failure}
	return p
}

// Name reports the protocol for app-password scopes.
func (p *Protocol) Name() authstore.Protocol { return authstore.POP3 }

// NewFrontend starts the pre-auth dialogue with one client. tlsConfig enables
// STLS; it is ignored on a connection that is already TLS.
func (p *Protocol) NewFrontend(c *proxy.Conn, tlsConfig *tls.Config) proxy.Frontend {
	return &frontend{p: p, c: c, tlsConfig: tlsConfig}
}

// frontend is one client's pre-auth state. Every -ERR the front-end gives on
// its own (not the answer to a credential decision) counts as a bad command,
// so a client cannot loop on refusals that never reach the rate limiter.
type frontend struct {
	p         *Protocol
	c         *proxy.Conn
	tlsConfig *tls.Config
	bad       int
	user      string // from USER, waiting for PASS
}

func (f *frontend) Greet() error { return f.reply(replyGreeting) }

// ReadLogin answers pre-auth commands until a complete login arrives.
func (f *frontend) ReadLogin(ctx context.Context) (proxy.Login, error) {
	return proxy.ReadLoginLoop(ctx, f.c.Conn, f.next)
}

// next handles one command; it returns a login when one is complete.
func (f *frontend) next(ctx context.Context) (*proxy.Login, error) {
	line, err := f.readLine()
	if err != nil {
		return nil, err
	}
	cmd, ok := parseCommand(line)
	if !ok {
		return nil, f.badCommand(replyUnknown)
	}
	switch cmd.name {
	case "CAPA":
		return nil, f.replyList(replyCapaHead, capabilities(f.secure(), f.canSTLS()))
	case "NOOP":
		return nil, f.reply(replyOK)
	case "QUIT":
		return nil, f.quit()
	case "STLS":
		return nil, f.stls(ctx)
	case "USER":
		return nil, f.userCommand(cmd.arg)
	case "PASS":
		return f.pass(cmd.arg)
	case "AUTH":
		return f.auth(cmd.arg)
	}
	return nil, f.badCommand(replyUnknown)
}

func (f *frontend) secure() bool  { return f.c.IsTLS() }
func (f *frontend) canSTLS() bool { return !f.secure() && f.tlsConfig != nil }

func (f *frontend) readLine() ([]byte, error) {
	line, err := readLine(f.c.R, f.p.maxLine)
	if errors.Is(err, errLineTooLong) {
		f.p.log.Debug("pop3 client line too long", "limit", f.p.maxLine)
		// The connection closes either way; the reply is a courtesy.
		_ = f.reply(replyLineTooLong)
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("pop3 read command: %w", err)
	}
	return line, nil
}

func (f *frontend) quit() error {
	if err := f.reply(replyBye); err != nil {
		return fmt.Errorf("%w: %w", errQuit, err)
	}
	return errQuit
}

// stls upgrades the connection (RFC 2595 §4). proxy.Conn discards whatever
// the client pipelined behind STLS, so no plaintext command is ever answered
// inside TLS (P2).
func (f *frontend) stls(ctx context.Context) error {
	if f.secure() {
		return f.badCommand(replyHaveTLS)
	}
	if f.tlsConfig == nil {
		return f.badCommand(replyNoTLS)
	}
	if err := f.reply(replyBeginTLS); err != nil {
		return err
	}
	if err := f.c.StartTLSServer(ctx, f.tlsConfig); err != nil {
		return fmt.Errorf("pop3 STLS handshake: %w", err)
	}
	f.user = ""
	return nil
}

// userCommand accepts any name (A9: USER must not reveal which
// accounts exist); the name is judged with the password.
func (f *frontend) userCommand(arg string) error {
	if !f.secure() {
		return f.badCommand(replyTLSRequired)
	}
	if arg == "" {
		return f.badCommand(replySyntax)
	}
	f.user = arg
	return f.reply(replyOK)
}

func (f *frontend) pass(arg string) (*proxy.Login, error) {
	if !f.secure() {
		return nil, f.badCommand(replyTLSRequired)
	}
	user := f.user
	f.user = ""
	if user == "" {
		return nil, f.badCommand(replyUserFirst)
	}
	return f.login(user, arg)
}

// auth runs AUTH (RFC 5034). Without a mechanism it lists them, as the
// older RFC 1734 form that some clients still probe with expects.
func (f *frontend) auth(arg string) (*proxy.Login, error) {
	if !f.secure() {
		return nil, f.badCommand(replyTLSRequired)
	}
	f.user = ""
	if arg == "" {
		return nil, f.replyList(replyMechHead, mechanisms)
	}
	mech, ir, hasIR := strings.Cut(arg, " ")
	user, secret, err := proxy.SASLDialogue{Challenge: f.challenge}.Run(mech, ir, hasIR)
	if err != nil {
		return nil, f.saslFailure(err)
	}
	return f.login(user, secret)
}

// saslFailure answers an AUTH exchange that ended without a credential.
func (f *frontend) saslFailure(err error) error {
	if reply, ok := f.p.sasl.For(err); ok {
		return f.badCommand(reply)
	}
	return err
}

// challenge sends a continuation with base64 text (replyContinue,
// replyLoginUser, replyLoginPass) and reads the client's response.
func (f *frontend) challenge(text string) ([]byte, error) {
	if err := f.reply(replyContinue + text); err != nil {
		return nil, err
	}
	return f.readLine()
}

// login hands a complete credential to the session. Control characters are
// refused here with the generic failure, so they never reach the store, a
// log line or the upstream (P4).
func (f *frontend) login(user, secret string) (*proxy.Login, error) {
	if !proxy.ValidCredential(user) || !proxy.ValidCredential(secret) {
		return nil, f.badCommand(f.p.failure)
	}
	return &proxy.Login{Username: user, Secret: secret}, nil
}

func (f *frontend) badCommand(reply string) error {
	f.bad++
	if f.bad >= f.p.maxBad {
		f.p.log.Debug("pop3 too many bad commands", "count", f.bad)
		if err := f.reply(replyTooManyBad); err != nil {
			return fmt.Errorf("%w: %w", errTooManyBadCommands, err)
		}
		return errTooManyBadCommands
	}
	return f.reply(reply)
}

func (f *frontend) Accept(_ proxy.Login, _ proxy.UpstreamResult, g authstore.Grant) error {
	return f.reply(acceptReply(g, f.p.accountURL))
}

func (f *frontend) Reject(_ proxy.Login, err error) error {
	f.user = ""
	return f.reply(rejectReply(err, f.p.failure))
}

// Bye is best effort. The caller bounds it with a write deadline and makes
// sure nothing else writes to the client meanwhile (proxy's session says Bye
// from the goroutine that carries upstream-to-client bytes).
func (f *frontend) Bye(reason proxy.Reason) {
	_ = f.reply(byeReply(reason, f.p.accountURL))
}

func (f *frontend) reply(line string) error {
	return f.replyLines(line)
}

// replyList sends a multi-line reply (RFC 1939 §3). Its items are our own
// constants, none starting with ".", so no dot-stuffing is needed.
func (f *frontend) replyList(head string, items []string) error {
	return f.replyLines(append(append([]string{head}, items...), ".")...)
}

func (f *frontend) replyLines(lines ...string) error {
	for _, l := range lines {
		f.c.W.WriteString(l)
		f.c.W.WriteString("\r\n")
	}
	if err := f.c.W.Flush(); err != nil {
		return fmt.Errorf("pop3 write reply: %w", err)
	}
	return nil
}
