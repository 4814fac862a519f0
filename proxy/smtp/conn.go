package smtp

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/proxy"
)

var (
	// ErrQuit is returned by ReadLogin after the client sent QUIT.
	ErrQuit = errors.New("smtp: client quit")
	// ErrTooManyBadCommands is returned by ReadLogin when the client used
	// up its bad-command allowance.
	ErrTooManyBadCommands = errors.New("smtp: too many bad commands")
)

// maxDomain bounds the name in EHLO and HELO (RFC 1035's 255 octets).
const maxDomain = 255

// frontend is one client's pre-auth state. Every error reply the
// front-end gives on its own (not the answer to a credential decision)
// counts as a bad command, so a client cannot loop on refusals that never
// reach the rate limiter.
type frontend struct {
	p         *Protocol
	c         *proxy.Conn
	tlsConfig *tls.Config
	bad       int
	hello     string // the name of the last EHLO or HELO; "" before one
	// Set by Accept and FilterRelay for the relay.
	chunking bool   // the upstream takes BDAT
	user     string // for the guard's log
	guard    *guard
}

func (f *frontend) Greet() error { return f.reply(f.p.greeting) }

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
	verb, arg, ok := proxy.SplitCommand(line)
	if !ok {
		return nil, f.badCommand(replySyntax)
	}
	switch verb {
	case "EHLO", "HELO":
		return nil, f.helloCommand(verb, arg)
	case "STARTTLS":
		return nil, f.startTLS(ctx, arg)
	case "AUTH":
		return f.auth(arg)
	case "NOOP":
		return nil, f.reply(replyOK)
	case "RSET":
		return nil, f.withoutArgs(arg, replyOK)
	case "QUIT":
		return nil, f.quit()
	}
	// MAIL, RCPT, DATA, VRFY, and anything else: nothing but the upstream
	// could answer them, and nothing reaches it before a login.
	return nil, f.badCommand(replyAuthRequired)
}

func (f *frontend) secure() bool      { return f.c.IsTLS() }
func (f *frontend) canSTARTTLS() bool { return !f.secure() && f.tlsConfig != nil }

func (f *frontend) readLine() ([]byte, error) {
	line, err := proxy.ReadLine(f.c.R, f.p.cfg.MaxLine)
	if errors.Is(err, proxy.ErrLineTooLong) {
		f.p.log.Debug("smtp client line too long", "limit", f.p.cfg.MaxLine)
		// The connection closes either way; the reply is a courtesy.
		_ = f.reply(replyLineTooLong)
		return nil, err
	}
	if err != nil {
		return nil, fmt.Errorf("smtp read command: %w", err)
	}
	return line, nil
}

func (f *frontend) withoutArgs(arg, answer string) error {
	if arg != "" {
		return f.badCommand(replyParams)
	}
	return f.reply(answer)
}

func (f *frontend) quit() error {
	if err := f.reply(replyBye); err != nil {
		return fmt.Errorf("%w: %w", ErrQuit, err)
	}
	return ErrQuit
}

// helloCommand answers EHLO and HELO (RFC 5321 §4.1.1.1). The EHLO answer
// offers STARTTLS while it can, AUTH only inside TLS (P1), and
// of the upstream's extensions the ones a client may use after login.
func (f *frontend) helloCommand(verb, arg string) error {
	if !validDomain(arg) {
		return f.badCommand(replyHelloSyntax)
	}
	f.hello = arg
	if verb == "HELO" {
		return f.reply("250 " + f.p.hostname)
	}
	lines := []string{f.p.hostname}
	lines = append(lines, f.p.upstream.Load().offered()...)
	if f.canSTARTTLS() {
		lines = append(lines, "STARTTLS")
	}
	if f.secure() {
		lines = append(lines, mechanisms)
	}
	return f.replyMulti("250", lines)
}

// startTLS upgrades the connection (RFC 3207). proxy.Conn discards whatever
// the client pipelined behind STARTTLS, so no plaintext command is ever
// answered inside TLS (P2), and the client must say EHLO again.
func (f *frontend) startTLS(ctx context.Context, arg string) error {
	switch {
	case f.secure():
		return f.badCommand(replyHaveTLS)
	case f.tlsConfig == nil:
		return f.badCommand(replyNoTLS)
	case arg != "":
		return f.badCommand(replyParams)
	}
	if err := f.reply(replyReadyTLS); err != nil {
		return err
	}
	if err := f.c.StartTLSServer(ctx, f.tlsConfig); err != nil {
		return fmt.Errorf("smtp STARTTLS handshake: %w", err)
	}
	f.hello = ""
	return nil
}

// auth runs AUTH (RFC 4954 §4) with PLAIN or LOGIN, with or without an
// initial response. Before TLS it is refused before any challenge, so the
// client sends nothing more and nothing is judged (P1).
func (f *frontend) auth(arg string) (*proxy.Login, error) {
	switch {
	case !f.secure():
		return nil, f.badCommand(replyTLSRequired)
	case f.hello == "":
		return nil, f.badCommand(replyHelloFirst)
	case arg == "":
		return nil, f.badCommand(replyParams)
	}
	mech, ir, hasIR := strings.Cut(arg, " ")
	user, secret, err := proxy.SASLDialogue{Challenge: f.challenge}.Run(mech, ir, hasIR)
	if err != nil {
		return nil, f.saslFailure(err)
	}
	return &proxy.Login{Username: user, Secret: secret, Hello: f.hello}, nil
}

// saslFailure answers an AUTH exchange that ended without a credential.
func (f *frontend) saslFailure(err error) error {
	if reply, ok := f.p.sasl.For(err); ok {
		return f.badCommand(reply...)
	}
	return err
}

// challenge sends a 334 continuation and reads the client's response.
func (f *frontend) challenge(text string) ([]byte, error) {
	if err := f.reply(replyContinue + text); err != nil {
		return nil, err
	}
	return f.readLine()
}

func (f *frontend) badCommand(reply ...string) error {
	f.bad++
	if f.bad >= f.p.cfg.MaxBadCommands {
		f.p.log.Debug("smtp too many bad commands", "count", f.bad)
		if err := f.reply(replyTooManyBad); err != nil {
			return fmt.Errorf("%w: %w", ErrTooManyBadCommands, err)
		}
		return ErrTooManyBadCommands
	}
	return f.reply(reply...)
}

// Accept answers a successful login and keeps what the relay's guard
// needs: whether the upstream takes BDAT, and who logged in.
func (f *frontend) Accept(_ proxy.Login, u proxy.UpstreamResult, g authstore.Grant) error {
	f.chunking = hasKeyword(u.Capabilities, "CHUNKING")
	f.user = g.Username
	return f.reply(acceptReply(g, f.p.accountURL))
}

func (f *frontend) Reject(_ proxy.Login, err error) error {
	return f.reply(rejectReply(err, f.p.failure)...)
}

// FilterRelay puts the guard between the client and the relay.
func (f *frontend) FilterRelay(client net.Conn, pending []byte) net.Conn {
	f.guard = newGuard(client, pending, f.chunking, f.p.log.With("user", f.user))
	return f.guard
}

// Bye says 421 (RFC 5321 §3.8) when the client is between commands. In the
// middle of a message, or of an upstream reply, a 421 line would read as
// message data or garble the reply, so the connection just closes: the
// upstream never sees the end of the message and drops it. Bye is best
// effort. The caller bounds it with a write deadline and makes sure
// nothing else writes to the client meanwhile (proxy's session says Bye
// from the goroutine that carries upstream-to-client bytes).
func (f *frontend) Bye(reason proxy.Reason) {
	if f.guard != nil && !f.guard.betweenCommands() {
		return
	}
	_ = f.reply(byeReply(reason, f.p.accountURL))
}

func (f *frontend) reply(lines ...string) error {
	for _, l := range lines {
		f.c.W.WriteString(l)
		f.c.W.WriteString("\r\n")
	}
	if err := f.c.W.Flush(); err != nil {
		return fmt.Errorf("smtp write reply: %w", err)
	}
	return nil
}

// replyMulti sends a reply of several lines with one code: "-" after the
// code on every line but the last (RFC 5321 §4.2.1).
func (f *frontend) replyMulti(code string, texts []string) error {
	lines := make([]string, len(texts))
	for i, t := range texts {
		sep := "-"
		if i == len(texts)-1 {
			sep = " "
		}
		lines[i] = code + sep + t
	}
	return f.reply(lines...)
}

// hasKeyword reports whether EHLO keyword lines list keyword.
func hasKeyword(lines []string, keyword string) bool {
	for _, l := range lines {
		k, _, _ := strings.Cut(l, " ")
		if strings.EqualFold(k, keyword) {
			return true
		}
	}
	return false
}

// validDomain accepts what EHLO and HELO may name (RFC 5321 §4.1.1.1: a
// domain or an address literal), loosely, as servers do: one run of
// printable ASCII without spaces, which is all that matters for passing it
// on (it becomes XCLIENT HELO= and the upstream EHLO's argument).
func validDomain(s string) bool {
	if s == "" || len(s) > maxDomain {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] <= ' ' || s[i] > '~' {
			return false
		}
	}
	return true
}
