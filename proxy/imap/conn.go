package imap

import (
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"net"
	"strings"
	"sync"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/safetext"
	"github.com/postern-dev/postern/proxy"
)

// ID limits from RFC 2971 section 3.3.
const (
	maxIDPairs    = 30
	maxIDField    = 30
	maxIDValue    = 1024
	maxClientPart = 64 // bytes kept of the client's name and of its version
)

// frontend is one client's pre-auth dialogue.
type frontend struct {
	p   *Protocol
	c   *proxy.Conn
	raw net.Conn // the accepted connection; deadlines set on it survive STARTTLS
	dec *decoder
	// tlsConfig is non-nil while STARTTLS is still possible.
	tlsConfig *tls.Config
	secure    bool
	bad       int
	client    string // sanitised ID name and version
	// sensitive is set while the command being read carries a credential,
	// so that a cleartext one is refused before the client sends a literal.
	sensitive bool
	// mu serialises writes: Bye may be called from another goroutine.
	mu sync.Mutex
}

// NewFrontend starts the pre-auth dialogue with one client. tlsConfig
// enables STARTTLS; it is ignored when c is already TLS.
func (p *Protocol) NewFrontend(c *proxy.Conn, tlsConfig *tls.Config) proxy.Frontend {
	f := &frontend{p: p, c: c, raw: c.Conn, secure: c.IsTLS()}
	if !f.secure {
		f.tlsConfig = tlsConfig
	}
	f.dec = newDecoder(c.R, p.cfg.MaxLine, f.continueLiteral)
	return f
}

func (f *frontend) caps() string {
	return f.p.capabilities(f.secure, f.tlsConfig != nil)
}

// Greet sends the greeting with the capabilities, sparing clients a
// CAPABILITY round trip.
func (f *frontend) Greet() error {
	return f.send("* OK [CAPABILITY " + f.caps() + "] postern ready\r\n")
}

// ReadLogin answers pre-auth commands until the client sent a complete
// login. ctx's deadline becomes the connection's read deadline, and its end
// wakes a blocked read; write deadlines stay the session's to set.
func (f *frontend) ReadLogin(ctx context.Context) (proxy.Login, error) {
	defer proxy.BindDeadline(ctx, f.raw.SetReadDeadline)()
	for {
		l, ok, err := f.command(ctx)
		if err != nil {
			if ctxErr := ctx.Err(); ctxErr != nil {
				return proxy.Login{}, fmt.Errorf("imap pre-auth: %w", ctxErr)
			}
			return proxy.Login{}, err
		}
		if ok {
			return l, nil
		}
	}
}

// Accept answers a successful login. The relay takes over the reader and
// drops it once drained; the decoder lets go of it too, or every idle
// session would keep its 4 KiB buffer (bench/RESULTS.md).
func (f *frontend) Accept(l proxy.Login, u proxy.UpstreamResult, g authstore.Grant) error {
	f.dec = nil
	var lines []string
	if !g.GraceUntil.IsZero() {
		lines = append(lines, graceAlert(g.GraceUntil, f.p.cfg.AccountURL).line(""))
	}
	return f.send(append(lines, loggedIn(u.Capabilities).line(l.Tag))...)
}

// Reject answers a failed login; the dialogue may go on with ReadLogin.
func (f *frontend) Reject(l proxy.Login, err error) error {
	return f.send(f.p.answerFor(err).line(l.Tag))
}

// Bye tells the client the session is ending; the session has bounded the
// write (see proxy.Frontend).
func (f *frontend) Bye(reason proxy.Reason) {
	_ = f.send(bye(reason, f.p.cfg.AccountURL).line(""))
}

func (f *frontend) send(lines ...string) error {
	f.mu.Lock()
	defer f.mu.Unlock()
	for _, l := range lines {
		if _, err := f.c.W.WriteString(l); err != nil {
			return fmt.Errorf("imap write: %w", err)
		}
	}
	if err := f.c.W.Flush(); err != nil {
		return fmt.Errorf("imap write: %w", err)
	}
	return nil
}

// continueLiteral answers a synchronising literal's header. A credential on
// a cleartext connection is refused before the client sends it.
func (f *frontend) continueLiteral() error {
	if f.sensitive && !f.secure {
		return errPrivacyRequired
	}
	return f.send("+ Ready\r\n")
}

// command reads and answers one command; ok reports a complete login.
func (f *frontend) command(ctx context.Context) (l proxy.Login, ok bool, err error) {
	f.dec.begin()
	f.sensitive = false
	tag, err := f.dec.tag()
	if err != nil {
		return proxy.Login{}, false, f.refuse("", err)
	}
	name, err := f.dec.commandName()
	if err != nil {
		// Not IMAP (an HTTP request line, say): the tag is not echoed.
		return proxy.Login{}, false, f.refuse("", err)
	}
	l, ok, err = f.dispatch(ctx, tag, name)
	if err != nil {
		return proxy.Login{}, false, f.refuse(tag, err)
	}
	return l, ok, nil
}

func (f *frontend) dispatch(ctx context.Context, tag, name string) (proxy.Login, bool, error) {
	switch name {
	case "LOGIN":
		return f.login(tag)
	case "AUTHENTICATE":
		return f.authenticate(tag)
	}
	var err error
	switch name {
	case "CAPABILITY":
		err = f.simple(tag, "* CAPABILITY "+f.caps()+"\r\n", ansCapDone)
	case "NOOP":
		err = f.simple(tag, "", ansNoopDone)
	case "LOGOUT":
		if err = f.simple(tag, ansLogout.line(""), ansLogoutDone); err == nil {
			err = errLogout
		}
	case "ID":
		err = f.id(tag)
	case "STARTTLS":
		err = f.startTLS(ctx, tag)
	default:
		err = errUnknownCommand
	}
	return proxy.Login{}, false, err
}

// simple answers a command without arguments.
func (f *frontend) simple(tag, untagged string, done status) error {
	if err := f.dec.crlf(); err != nil {
		return err
	}
	if untagged == "" {
		return f.send(done.line(tag))
	}
	return f.send(untagged, done.line(tag))
}

// refuse answers a command that ended in a client fault and counts it.
// It returns nil when the dialogue goes on and an error when it must end:
// the client is gone, broke the framing, or ran out of bad commands.
func (f *frontend) refuse(tag string, err error) error {
	var fault *clientError
	if !errors.As(err, &fault) && !errors.Is(err, authstore.ErrUnauthorized) {
		return err
	}
	f.p.log.Debug("imap pre-auth command refused", "remote", f.raw.RemoteAddr().String(), "reason", err.Error())
	ans := f.p.answerFor(err)
	if fatal(err) {
		_ = f.send(ans.line(""))
		return err
	}
	if errors.Is(err, errBadTag) {
		tag = ""
	}
	if sendErr := f.send(ans.line(tag)); sendErr != nil {
		return sendErr
	}
	f.bad++
	if f.bad >= f.p.cfg.MaxBadCommands {
		_ = f.send(ansTooManyBad.line(""))
		return errTooManyBad
	}
	if skipErr := f.dec.skipLine(); skipErr != nil {
		if fatal(skipErr) {
			_ = f.send(f.p.answerFor(skipErr).line(""))
		}
		return skipErr
	}
	return nil
}

// startTLS upgrades the connection. The decoder has read nothing past the
// command's CRLF, and the upgrade discards whatever the client pipelined
// after it, so no plaintext command is ever answered after TLS (P2).
func (f *frontend) startTLS(ctx context.Context, tag string) error {
	if err := f.dec.crlf(); err != nil {
		return err
	}
	if f.tlsConfig == nil {
		return errNoStartTLS
	}
	cfg := f.tlsConfig
	f.tlsConfig = nil
	if err := f.send(ansStartTLS.line(tag)); err != nil {
		return err
	}
	f.mu.Lock()
	defer f.mu.Unlock()
	if err := f.c.StartTLSServer(ctx, cfg); err != nil {
		return fmt.Errorf("imap STARTTLS handshake: %w", err)
	}
	f.secure = true
	return nil
}

// login reads LOGIN's user name and password (RFC 9051 section 6.2.3).
func (f *frontend) login(tag string) (proxy.Login, bool, error) {
	f.sensitive = true
	user, secret, err := f.loginArgs()
	if err != nil {
		return proxy.Login{}, false, err
	}
	return f.credential(tag, user, secret)
}

func (f *frontend) loginArgs() (user, secret string, err error) {
	if err = f.dec.sp(); err != nil {
		return "", "", err
	}
	if user, err = f.dec.astring(); err != nil {
		return "", "", err
	}
	if err = f.dec.sp(); err != nil {
		return "", "", err
	}
	if secret, err = f.dec.astring(); err != nil {
		return "", "", err
	}
	return user, secret, f.dec.crlf()
}

// credential turns a parsed credential into a login, unless it arrived in
// cleartext or can never be valid; those are refused without verification
// and without charging anyone's failure budget.
func (f *frontend) credential(tag, user, secret string) (proxy.Login, bool, error) {
	if !f.secure {
		return proxy.Login{}, false, errPrivacyRequired
	}
	if err := checkCredential(user, secret); err != nil {
		return proxy.Login{}, false, err
	}
	return proxy.Login{Tag: tag, Username: user, Secret: secret, ClientName: f.client}, true, nil
}

// id reads the client's ID (RFC 2971) and keeps its name and version for
// display.
func (f *frontend) id(tag string) error {
	if err := f.dec.sp(); err != nil {
		return err
	}
	fields, err := f.idParams()
	if err != nil {
		return err
	}
	if err := f.dec.crlf(); err != nil {
		return err
	}
	f.client = clientName(fields["name"], fields["version"])
	return f.send(idAnswer, ansIDDone.line(tag))
}

// idParams reads "(" [pair *(SP pair)] ")" or NIL, within RFC 2971's limits.
func (f *frontend) idParams() (map[string]string, error) {
	b, err := f.dec.peek()
	if err != nil {
		return nil, err
	}
	if b != '(' {
		_, isString, err := f.dec.nstring()
		if err == nil && isString {
			err = errSyntax
		}
		return nil, err
	}
	_, _ = f.dec.readByte()
	fields := map[string]string{}
	if b, err = f.dec.peek(); err != nil {
		return nil, err
	}
	if b == ')' {
		_, _ = f.dec.readByte()
		return fields, nil
	}
	for n := 1; ; n++ {
		if err := f.idPair(fields); err != nil {
			return nil, err
		}
		b, err := f.dec.readByte()
		if err != nil {
			return nil, err
		}
		if b == ')' {
			return fields, nil
		}
		if b != ' ' || n == maxIDPairs {
			return nil, errSyntax
		}
	}
}

func (f *frontend) idPair(fields map[string]string) error {
	key, err := f.dec.str()
	if err != nil {
		return err
	}
	if err := f.dec.sp(); err != nil {
		return err
	}
	value, isString, err := f.dec.nstring()
	if err != nil {
		return err
	}
	if len(key) > maxIDField || len(value) > maxIDValue {
		return errSyntax
	}
	if isString {
		fields[strings.ToLower(key)] = value
	}
	return nil
}

// clientName is what sessions and audit records show of the client: its
// name and version, without control characters, each part bounded.
func clientName(name, version string) string {
	name = safetext.Clip(strings.TrimSpace(safetext.OneLine(name, "")), maxClientPart)
	version = safetext.Clip(strings.TrimSpace(safetext.OneLine(version, "")), maxClientPart)
	if name == "" || version == "" {
		return name
	}
	return name + " " + version
}
