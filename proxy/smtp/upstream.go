package smtp

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"fmt"
	"github.com/postern-dev/postern/internal/safetext"
	"strings"

	"github.com/emersion/go-sasl"

	"github.com/postern-dev/postern/proxy"
)

var (
	errNoXClient = errors.New(`the upstream does not offer XCLIENT to postern's address: add it to ` +
		`Postfix's smtpd_authorized_xclient_hosts, or log in with login = "master"`)
	errNoSTARTTLS   = errors.New("the upstream does not offer STARTTLS")
	errNoAuthPlain  = errors.New("the upstream does not offer AUTH PLAIN (Postfix: smtpd_sasl_auth_enable)")
	errNoCredential = errors.New("no master user configured")
	errExtraData    = errors.New("the upstream sent data postern did not ask for")
)

// upstreamConn is one login conversation with the upstream.
type upstreamConn struct {
	c       *proxy.Conn
	maxLine int
}

// UpstreamLogin logs in to a freshly dialed upstream as user: greeting,
// EHLO, STARTTLS and EHLO again when configured, then XCLIENT and EHLO (as
// the client's name) or AUTH PLAIN as the master user; XCLIENT comes at
// once after the greeting when that can work (xclientAtOnce). It returns the
// upstream's extensions, which the guard of the relay needs, and remembers
// them for the EHLO answers of later clients. The connection's deadline
// follows ctx while it runs. Every error wraps proxy.ErrUpstream, and a
// refusal of the login itself proxy.ErrLoginRefused.
func (p *Protocol) UpstreamLogin(ctx context.Context, up *proxy.Conn, user string, info proxy.ClientInfo) (proxy.UpstreamResult, error) {
	if !proxy.ValidCredential(user) {
		return proxy.UpstreamResult{}, fmt.Errorf("smtp upstream login: %w: user name: %w", proxy.ErrUpstream, errUnsafeArgument)
	}
	release := proxy.BindDeadline(ctx, up.Conn.SetDeadline)
	defer release()
	ext, err := p.upstreamDialogue(ctx, &upstreamConn{c: up, maxLine: p.cfg.MaxLine}, user, info)
	if err != nil {
		if ctx.Err() != nil {
			err = fmt.Errorf("%w (%w)", err, context.Cause(ctx))
		}
		if !errors.Is(err, proxy.ErrUpstream) {
			err = fmt.Errorf("%w: %w", proxy.ErrUpstream, err)
		}
		return proxy.UpstreamResult{}, fmt.Errorf("smtp upstream login: %w", err)
	}
	p.SetUpstream(ext)
	return proxy.UpstreamResult{Capabilities: ext.lines()}, nil
}

func (p *Protocol) upstreamDialogue(ctx context.Context, u *upstreamConn, user string, info proxy.ClientInfo) (Extensions, error) {
	if _, err := u.expect("greeting", 220); err != nil {
		return nil, err
	}
	ext, err := p.xclientAtOnce(u, user, info)
	if err == nil && ext == nil {
		ext, err = p.loginAfterEHLO(ctx, u, user, info)
	}
	if err != nil {
		return nil, err
	}
	// The guard counts replies from here on: nothing may be owed.
	if u.c.R.Buffered() > 0 {
		return nil, errExtraData
	}
	return ext, nil
}

// xclientAtOnce sends XCLIENT right after the greeting, with the
// attributes the upstream's last EHLO answer offered, saving the upstream
// an EHLO and postern a round trip per login (Postfix takes XCLIENT before
// EHLO, and answers it with a new greeting either way). It applies only to
// XCLIENT without STARTTLS, when those attributes are known. It returns
// nil extensions and no error when it did not apply or the upstream
// refused XCLIENT before EHLO: then, for good, the usual way follows on the
// same connection, where a refusal counts.
func (p *Protocol) xclientAtOnce(u *upstreamConn, user string, info proxy.ClientInfo) (Extensions, error) {
	offered := p.xclient.Load()
	if p.cfg.Login != LoginXClient || p.cfg.UpstreamTLS != nil || offered == nil || p.atOnceOff.Load() {
		return nil, nil
	}
	cmd, err := xclientCommand(user, info, *offered)
	if err != nil {
		return nil, nil // the usual way says why
	}
	if err := u.send(cmd); err != nil {
		return nil, err
	}
	r, err := readReply(u.c.R, u.maxLine)
	switch {
	case err != nil:
		return nil, fmt.Errorf("smtp upstream XCLIENT: %w: %w", proxy.ErrUpstream, err)
	case r.code >= 500:
		p.atOnceOff.Store(true)
		p.log.Info("the upstream refused XCLIENT before EHLO; postern says EHLO first from now on", "code", r.code)
		return nil, nil
	case r.code != 220:
		return nil, fmt.Errorf("smtp upstream XCLIENT: %w: answered %d", proxy.ErrUpstream, r.code)
	}
	return u.ehlo(clientHello(info, p.hostname))
}

// loginAfterEHLO is the usual way: EHLO, STARTTLS and EHLO again when
// configured, then XCLIENT and EHLO (as the client's name) or AUTH PLAIN
// as the master user.
func (p *Protocol) loginAfterEHLO(ctx context.Context, u *upstreamConn, user string, info proxy.ClientInfo) (Extensions, error) {
	ext, err := u.ehlo(p.hostname)
	if err != nil {
		return nil, err
	}
	if cfg := p.cfg.UpstreamTLS; cfg != nil {
		if ext, err = u.startTLS(ctx, cfg, ext, p.hostname); err != nil {
			return nil, err
		}
	}
	if p.cfg.Login == LoginMaster {
		return ext, u.authMaster(user, p.cfg.MasterUser, p.cfg.MasterPassword, ext)
	}
	p.noteXClient(ext)
	return u.xclient(user, info, ext, p.hostname)
}

// startTLS upgrades the connection (RFC 3207); an upstream that does not
// offer it is refused rather than spoken to in plaintext (P5).
func (u *upstreamConn) startTLS(ctx context.Context, cfg *tls.Config, ext Extensions, name string) (Extensions, error) {
	if !ext.Has("STARTTLS") {
		return nil, errNoSTARTTLS
	}
	if err := u.send([]byte("STARTTLS\r\n")); err != nil {
		return nil, err
	}
	if _, err := u.expect("STARTTLS", 220); err != nil {
		return nil, err
	}
	// Bytes behind the 220 were sent before TLS and may be injected (the
	// server-side twin of CVE-2011-0411).
	if u.c.R.Buffered() > 0 {
		return nil, fmt.Errorf("STARTTLS: %w", errExtraData)
	}
	if err := u.c.StartTLSClient(ctx, cfg); err != nil {
		return nil, fmt.Errorf("upstream TLS handshake: %w", err)
	}
	// What the server said in plaintext no longer counts (RFC 3207 §4.2).
	return u.ehlo(name)
}

// xclient tells the upstream who logged in. Postfix answers with a new
// greeting, after which the session starts over with an EHLO, which
// carries the client's own name so that the upstream's Received header
// and log show it.
func (u *upstreamConn) xclient(user string, info proxy.ClientInfo, ext Extensions, name string) (Extensions, error) {
	offered, ok := ext["XCLIENT"]
	if !ok {
		return nil, fmt.Errorf("%w: %w", proxy.ErrLoginRefused, errNoXClient)
	}
	cmd, err := xclientCommand(user, info, offered)
	if err != nil {
		return nil, fmt.Errorf("XCLIENT: %w", err)
	}
	if err := u.send(cmd); err != nil {
		return nil, err
	}
	if _, err := u.expect("XCLIENT", 220); err != nil {
		return nil, err
	}
	return u.ehlo(clientHello(info, name))
}

// clientHello is the name for the EHLO after XCLIENT: the client's own, so
// that the upstream's Received header and log show it, or else fallback.
func clientHello(info proxy.ClientInfo, fallback string) string {
	if validDomain(info.Hello) {
		return info.Hello
	}
	return fallback
}

// authMaster logs in with SASL PLAIN: authzid = user, authcid = the master
// user (RFC 4616), as an initial response (RFC 4954 §4).
func (u *upstreamConn) authMaster(user, master, password string, ext Extensions) error {
	if master == "" {
		return errNoCredential
	}
	if !hasWord(ext["AUTH"], "PLAIN") {
		return errNoAuthPlain
	}
	if safetext.BreaksCommand(master) || safetext.BreaksCommand(password) {
		return fmt.Errorf("master credential: %w", errUnsafeArgument)
	}
	_, msg, err := sasl.NewPlainClient(user, master, password).Start()
	if err != nil {
		return fmt.Errorf("SASL PLAIN: %w", err)
	}
	if err := u.send([]byte("AUTH PLAIN " + base64.StdEncoding.EncodeToString(msg) + "\r\n")); err != nil {
		return err
	}
	_, err = u.expect("login", 235)
	return err
}

func hasWord(list, w string) bool {
	return containsWord(strings.Fields(strings.ToUpper(list)), w)
}

// ehlo greets the upstream as name and returns its extensions.
func (u *upstreamConn) ehlo(name string) (Extensions, error) {
	if err := u.send([]byte("EHLO " + name + "\r\n")); err != nil {
		return nil, err
	}
	r, err := u.expect("EHLO", 250)
	if err != nil {
		return nil, err
	}
	return extensionsOf(r.text), nil
}

// expect reads one reply and requires code. A permanent refusal of
// XCLIENT or of the master login is proxy.ErrLoginRefused: a
// configuration problem worth more than a line per login. The upstream's
// text stays out of the error: it may repeat the user name.
func (u *upstreamConn) expect(step string, code int) (reply, error) {
	r, err := readReply(u.c.R, u.maxLine)
	if err != nil {
		return reply{}, fmt.Errorf("smtp upstream %s: %w: %w", step, proxy.ErrUpstream, err)
	}
	if r.code == code { // secret-compare: ok (SMTP reply codes)
		return r, nil
	}
	refused := proxy.ErrUpstream
	if (step == "XCLIENT" || step == "login") && r.code >= 500 {
		refused = proxy.ErrLoginRefused
	}
	return reply{}, fmt.Errorf("smtp upstream %s: %w: answered %d", step, refused, r.code)
}

func (u *upstreamConn) send(b []byte) error {
	if _, err := u.c.W.Write(b); err != nil {
		return fmt.Errorf("smtp upstream write: %w: %w", proxy.ErrUpstream, err)
	}
	if err := u.c.W.Flush(); err != nil {
		return fmt.Errorf("smtp upstream write: %w: %w", proxy.ErrUpstream, err)
	}
	return nil
}

// CheckUpstream reads an EHLO answer of the upstream as the start-up probe
// got it (the lines of the reply without CRLF), keeps its extensions for
// the EHLO answers to clients (SetUpstream), and says what the configured
// login needs that the upstream does not offer: XCLIENT with LOGIN, or
// AUTH PLAIN for a master user. Postfix lists XCLIENT only to the hosts in
// smtpd_authorized_xclient_hosts, so its absence here means postern's
// address is not among them.
func (p *Protocol) CheckUpstream(lines []string) error {
	ext, err := ParseEHLO(lines)
	if err != nil {
		return err
	}
	p.SetUpstream(ext)
	if !ext.Has("XCLIENT") {
		p.xclient.Store(nil) // not to be sent before an EHLO that lists it
	}
	switch {
	case p.cfg.Login == LoginMaster && !hasWord(ext["AUTH"], "PLAIN"):
		return errNoAuthPlain
	case p.cfg.Login == LoginMaster:
		return nil
	case !ext.Has("XCLIENT"):
		return errNoXClient
	case !hasWord(ext["XCLIENT"], "LOGIN"):
		return errNoLoginAttr
	}
	return nil
}
