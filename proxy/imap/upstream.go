package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"

	"github.com/emersion/go-sasl"

	"github.com/postern-dev/postern/internal/safetext"
	"github.com/postern-dev/postern/proxy"
)

// Bounds on what an upstream may send before login: a hostile or broken
// server must cost bounded memory (a 10 MB line is an error, S5).
const (
	maxUpstreamLine      = 64 << 10
	maxUntaggedResponses = 1000
)

var (
	errUpstreamLine    = errors.New("upstream line too long")
	errUpstreamSyntax  = errors.New("malformed upstream response")
	errUpstreamGreet   = errors.New("upstream greeting is not OK")
	errUpstreamBye     = errors.New("upstream closed the session (BYE)")
	errNoUpstreamTLS   = errors.New("upstream does not offer STARTTLS")
	errUpstreamRefused = errors.New("upstream refused the proxy's command")
	errNoCredential    = errors.New("no upstream credential configured")
)

// response is one upstream response line as far as a login needs it.
type response struct {
	tag  string   // "*", "+" or a command tag
	kind string   // upper-cased: OK, NO, BAD, BYE, PREAUTH, CAPABILITY, ...
	caps []string // from a CAPABILITY response or response code
}

// upstreamConn is one login conversation with the upstream.
type upstreamConn struct {
	c    *proxy.Conn
	tags int
	tag  string // the tag of the command in flight
	// caps are the capabilities the server announced last; nil when they
	// are unknown (before asking, or after STARTTLS).
	caps []string
}

// UpstreamLogin logs in to a freshly dialed upstream as user: greeting,
// STARTTLS when configured, ID when configured, then SASL PLAIN with the
// master credential or LOGIN with the user's stored password. It returns
// the upstream's post-login capabilities. The connection's deadline follows
// ctx while it runs; a successful login leaves none. Every failure wraps
// proxy.ErrUpstream.
func (p *Protocol) UpstreamLogin(ctx context.Context, up *proxy.Conn, user string, info proxy.ClientInfo) (proxy.UpstreamResult, error) {
	raw := up.Conn
	stop := proxy.BindDeadline(ctx, raw.SetDeadline)
	caps, err := p.upstreamLogin(ctx, &upstreamConn{c: up}, user, info)
	if stop() && err == nil {
		_ = raw.SetDeadline(time.Time{})
	}
	if err != nil {
		if ctxErr := ctx.Err(); ctxErr != nil {
			err = fmt.Errorf("%w (%w)", err, ctxErr)
		}
		return proxy.UpstreamResult{}, fmt.Errorf("imap upstream login: %w: %w", proxy.ErrUpstream, err)
	}
	return proxy.UpstreamResult{Capabilities: caps}, nil
}

func (p *Protocol) upstreamLogin(ctx context.Context, u *upstreamConn, user string, info proxy.ClientInfo) ([]string, error) {
	if !proxy.ValidCredential(user) {
		return nil, fmt.Errorf("user name: %w", errUnencodable)
	}
	if err := u.greeting(); err != nil {
		return nil, err
	}
	if cfg := p.cfg.UpstreamTLS; cfg != nil {
		if err := u.startTLS(ctx, cfg); err != nil {
			return nil, err
		}
	}
	caps, err := u.capabilities()
	if err != nil {
		return nil, err
	}
	p.rememberUpstream(caps)
	// RFC 2971 lets a client send ID only to a server that advertises it;
	// some servers hang up on an unknown command before login.
	if p.cfg.SendID && hasCap(caps, "ID") {
		if err := u.id(info); err != nil {
			return nil, err
		}
	} else if p.cfg.SendID {
		p.log.Debug("imap upstream does not advertise ID; client address not sent")
	}
	if err := p.login(ctx, u, user); err != nil {
		return nil, err
	}
	return u.capabilities()
}

// login authenticates as user with the configured credential.
func (p *Protocol) login(ctx context.Context, u *upstreamConn, user string) error {
	var cmd []chunk
	var err error
	switch {
	case p.cfg.MasterUser != "":
		cmd, err = u.authenticatePlain(user, p.cfg.MasterUser, p.cfg.MasterPassword)
	case p.cfg.UpstreamPassword != nil:
		var password string
		if password, err = p.cfg.UpstreamPassword(ctx, user); err != nil {
			return fmt.Errorf("stored upstream password: %w", err)
		}
		cmd, err = u.loginCommand(user, password)
	default:
		return errNoCredential
	}
	if err != nil {
		return err
	}
	// The server's capabilities change with login; ask afresh unless the
	// completion or an untagged response tells.
	u.caps = nil
	err = u.expectOK(cmd, "login")
	if errors.Is(err, errUpstreamRefused) {
		err = fmt.Errorf("%w: %w", proxy.ErrLoginRefused, err)
	}
	return err
}

// authenticatePlain builds AUTHENTICATE PLAIN for a Dovecot master user:
// authzid = user, authcid = master (RFC 4616), with the credential as an
// initial response when the server takes one (RFC 4959).
func (u *upstreamConn) authenticatePlain(user, master, password string) ([]chunk, error) {
	for _, s := range []string{master, password} {
		if safetext.BreaksCommand(s) {
			return nil, fmt.Errorf("master credential: %w", errUnencodable)
		}
	}
	_, msg, err := sasl.NewPlainClient(user, master, password).Start()
	if err != nil {
		return nil, fmt.Errorf("SASL PLAIN: %w", err)
	}
	e := newEncoder(u.caps).atom(u.nextTag()).sp().atom("AUTHENTICATE").sp().atom("PLAIN")
	if hasCap(u.caps, "SASL-IR") {
		e.sp().base64(msg).crlf()
	} else {
		e.crlf().wait().base64(msg).crlf()
	}
	return e.done()
}

// loginCommand builds LOGIN with the user's stored password.
func (u *upstreamConn) loginCommand(user, password string) ([]chunk, error) {
	cmd, err := newEncoder(u.caps).atom(u.nextTag()).sp().atom("LOGIN").
		sp().str(user).sp().str(password).crlf().done()
	if err != nil {
		return nil, fmt.Errorf("login command: %w", err)
	}
	return cmd, nil
}

// greeting reads the server's first line: only "* OK" lets a login go on.
// PREAUTH would mean a session the proxy did not authenticate.
func (u *upstreamConn) greeting() error {
	r, err := u.read()
	if err != nil {
		return fmt.Errorf("read greeting: %w", err)
	}
	if r.tag != "*" || r.kind != "OK" {
		return fmt.Errorf("%w (%s)", errUpstreamGreet, r.kind)
	}
	u.caps = r.caps
	return nil
}

// startTLS upgrades the connection; an upstream that does not offer
// STARTTLS is refused rather than spoken to in plaintext.
func (u *upstreamConn) startTLS(ctx context.Context, cfg *tls.Config) error {
	caps, err := u.capabilities()
	if err != nil {
		return err
	}
	if !hasCap(caps, "STARTTLS") {
		return errNoUpstreamTLS
	}
	cmd, err := newEncoder(caps).atom(u.nextTag()).sp().atom("STARTTLS").crlf().done()
	if err != nil {
		return err
	}
	if err := u.expectOK(cmd, "STARTTLS"); err != nil {
		return err
	}
	// The upgrade discards anything the server sent after its OK, and the
	// capabilities heard in plaintext no longer count (RFC 9051 6.2.1).
	if err := u.c.StartTLSClient(ctx, cfg); err != nil {
		return fmt.Errorf("upstream TLS handshake: %w", err)
	}
	u.caps = nil
	return nil
}

// capabilities returns the server's current capabilities, asking for them
// when they are unknown.
func (u *upstreamConn) capabilities() ([]string, error) {
	if u.caps != nil {
		return u.caps, nil
	}
	cmd, err := newEncoder(nil).atom(u.nextTag()).sp().atom("CAPABILITY").crlf().done()
	if err != nil {
		return nil, err
	}
	if err := u.expectOK(cmd, "CAPABILITY"); err != nil {
		return nil, err
	}
	if u.caps == nil {
		return nil, fmt.Errorf("%w: no CAPABILITY response", errUpstreamSyntax)
	}
	return u.caps, nil
}

// id tells the upstream who the real client is (RFC 2971 with Dovecot's
// x-originating-* fields). A server that answers NO or BAD still gets the
// login.
func (u *upstreamConn) id(info proxy.ClientInfo) error {
	var fields []string
	if info.Addr.IsValid() {
		fields = append(fields,
			"x-originating-ip", info.Addr.Addr().Unmap().String(),
			"x-originating-port", strconv.Itoa(int(info.Addr.Port())))
	}
	if info.SessionID != "" {
		fields = append(fields, "x-session-id", info.SessionID)
	}
	if len(fields) == 0 {
		return nil
	}
	e := newEncoder(u.caps).atom(u.nextTag()).sp().atom("ID").sp().special('(')
	for i, f := range fields {
		if i > 0 {
			e.sp()
		}
		e.str(f)
	}
	cmd, err := e.special(')').crlf().done()
	if err != nil {
		return fmt.Errorf("ID command: %w", err)
	}
	if _, err := u.run(cmd); err != nil {
		return fmt.Errorf("ID: %w", err)
	}
	return nil
}

// nextTag tags a new command; run waits for its completion.
func (u *upstreamConn) nextTag() string {
	u.tags++
	u.tag = "P" + strconv.Itoa(u.tags)
	return u.tag
}

// expectOK runs cmd and requires a tagged OK.
func (u *upstreamConn) expectOK(cmd []chunk, what string) error {
	r, err := u.run(cmd)
	if err != nil {
		return fmt.Errorf("%s: %w", what, err)
	}
	if r.kind != "OK" {
		return fmt.Errorf("%s: %w (%s)", what, errUpstreamRefused, r.kind)
	}
	return nil
}

// run sends cmd, waiting for a continuation after each chunk that asks for
// one, and returns the tagged completion. A completion that arrives instead
// of a continuation ends the command: the rest is never sent.
func (u *upstreamConn) run(cmd []chunk) (response, error) {
	tag := u.tag
	for _, ch := range cmd {
		if _, err := u.c.W.Write(ch.data); err != nil {
			return response{}, fmt.Errorf("write: %w", err)
		}
		if !ch.wait {
			continue
		}
		if err := u.c.W.Flush(); err != nil {
			return response{}, fmt.Errorf("write: %w", err)
		}
		r, err := u.until(tag, true)
		if err != nil || r.tag == tag {
			return r, err
		}
	}
	if err := u.c.W.Flush(); err != nil {
		return response{}, fmt.Errorf("write: %w", err)
	}
	return u.until(tag, false)
}

// until reads responses up to the completion of tag, or up to a
// continuation when cont is set, noting capabilities on the way.
func (u *upstreamConn) until(tag string, cont bool) (response, error) {
	for range maxUntaggedResponses {
		r, err := u.read()
		if err != nil {
			return response{}, err
		}
		if r.caps != nil {
			u.caps = r.caps
		}
		switch {
		case r.tag == tag:
			return r, nil
		case r.tag == "+" && cont:
			return r, nil
		case r.tag == "*" && r.kind == "BYE":
			return response{}, errUpstreamBye
		case r.tag != "*":
			return response{}, fmt.Errorf("%w: unexpected continuation or tag", errUpstreamSyntax)
		}
	}
	return response{}, fmt.Errorf("%w: too many untagged responses", errUpstreamSyntax)
}

// read reads and parses one response.
func (u *upstreamConn) read() (response, error) {
	line, err := readResponseLine(u.c.R)
	if err != nil {
		return response{}, err
	}
	return parseResponse(line)
}

// readResponseLine reads one response line of at most maxUpstreamLine
// bytes, skipping the contents of any literals in it (a login needs none).
func readResponseLine(r *bufio.Reader) (string, error) {
	var line []byte
	for {
		frag, err := r.ReadSlice('\n')
		if len(line)+len(frag) > maxUpstreamLine {
			return "", errUpstreamLine
		}
		line = append(line, frag...)
		if errors.Is(err, bufio.ErrBufferFull) {
			continue
		}
		if err != nil {
			return "", fmt.Errorf("read: %w", err)
		}
		line = line[:len(line)-1]
		if n := len(line); n > 0 && line[n-1] == '\r' {
			line = line[:n-1]
		}
		n, ok := literalSuffix(line)
		if !ok {
			return string(line), nil
		}
		if n > maxUpstreamLine-len(line) {
			return "", errUpstreamLine
		}
		if _, err := io.CopyN(io.Discard, r, int64(n)); err != nil {
			return "", fmt.Errorf("read literal: %w", err)
		}
	}
}

// literalSuffix reports whether line ends with a literal header "{n}" and
// its size.
func literalSuffix(line []byte) (int, bool) {
	if len(line) < 3 || line[len(line)-1] != '}' {
		return 0, false
	}
	open := strings.LastIndexByte(string(line), '{')
	if open < 0 {
		return 0, false
	}
	n, err := strconv.Atoi(string(line[open+1 : len(line)-1]))
	if err != nil || n < 0 {
		return 0, false
	}
	return n, true
}

// parseResponse picks out the tag, the kind and any capabilities (RFC 9051 response grammar, loosely: only these matter).
func parseResponse(line string) (response, error) {
	tag, rest, _ := strings.Cut(line, " ")
	if tag == "" {
		return response{}, errUpstreamSyntax
	}
	if tag == "+" {
		return response{tag: tag}, nil
	}
	kind, rest, _ := strings.Cut(rest, " ")
	r := response{tag: tag, kind: strings.ToUpper(kind)}
	if tag == "*" && r.kind == "CAPABILITY" {
		r.caps = capabilityList(rest)
		return r, nil
	}
	if strings.HasPrefix(rest, "[") {
		code, _, ok := strings.Cut(rest[1:], "]")
		if !ok {
			return response{}, errUpstreamSyntax
		}
		name, args, _ := strings.Cut(code, " ")
		if strings.EqualFold(name, "CAPABILITY") {
			r.caps = capabilityList(args)
		}
	}
	return r, nil
}

// capabilityList splits a capability list, keeping only well-formed atoms:
// they are echoed to clients after login.
func capabilityList(s string) []string {
	caps := []string{}
	for _, c := range strings.Fields(s) {
		if capabilityAtom(c) {
			caps = append(caps, c)
		}
	}
	return caps
}
