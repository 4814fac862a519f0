package pop3

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/postern-dev/postern/internal/safetext"
	"github.com/postern-dev/postern/proxy"
)

// errUnsafeArgument refuses to build an upstream command from a value that
// could end the line or split an argument. It never quotes the value.
var errUnsafeArgument = errors.New("pop3: unsafe command argument")

const (
	// maxCapaLines bounds the upstream's CAPA listing; real servers send
	// about a dozen lines.
	maxCapaLines = 64
	// maxSessionID matches Dovecot's limit for XCLIENT SESSION; a longer id
	// is left out rather than truncated.
	maxSessionID = 64
	// xclientGreeting is how Dovecot tells a trusted peer it takes XCLIENT:
	// its CAPA never lists it.
	xclientGreeting = "+OK [XCLIENT]"
)

// UpstreamLogin logs in to a freshly dialed upstream as user: greeting,
// STLS when configured, XCLIENT when configured and offered, then SASL PLAIN
// with an initial response. The credential is built before any byte is
// exchanged, so an unusable one never costs the upstream a command. The
// connection's deadline follows ctx as in ReadLogin. Every error wraps
// proxy.ErrUpstream.
func (p *Protocol) UpstreamLogin(ctx context.Context, up *proxy.Conn, user string, info proxy.ClientInfo) (proxy.UpstreamResult, error) {
	auth, err := p.authCommand(ctx, user)
	if err != nil {
		return proxy.UpstreamResult{}, err
	}
	release := proxy.BindDeadline(ctx, up.Conn.SetDeadline)
	defer release()
	if err := p.upstreamDialogue(ctx, up, auth, info); err != nil {
		if ctx.Err() != nil {
			return proxy.UpstreamResult{}, fmt.Errorf("%w: %w", err, context.Cause(ctx))
		}
		return proxy.UpstreamResult{}, err
	}
	return proxy.UpstreamResult{}, nil
}

func (p *Protocol) upstreamDialogue(ctx context.Context, up *proxy.Conn, auth []byte, info proxy.ClientInfo) error {
	greeting, err := p.expectOK(up, "greeting")
	if err != nil {
		return err
	}
	if p.cfg.UpstreamTLS != nil {
		if err := p.upstreamSTLS(ctx, up); err != nil {
			return err
		}
	}
	if p.cfg.XClient && info.Addr.IsValid() {
		if err := p.announceClient(up, greeting, info); err != nil {
			return err
		}
	}
	if err := send(up, auth); err != nil {
		return err
	}
	_, err = p.expectOK(up, "login")
	return err
}

// authCommand builds the upstream AUTH PLAIN line: the master user acting as
// user, or user with the stored upstream password.
func (p *Protocol) authCommand(ctx context.Context, user string) ([]byte, error) {
	// An empty authzid would log in as the master account itself.
	if !proxy.ValidCredential(user) {
		return nil, fmt.Errorf("pop3 upstream credential: %w: %w", proxy.ErrUpstream, errUnsafeArgument)
	}
	var authzid, authcid, password string
	switch {
	case p.cfg.MasterUser != "":
		authzid, authcid, password = user, p.cfg.MasterUser, p.cfg.MasterPassword
	case p.cfg.UpstreamPassword != nil:
		pw, err := p.cfg.UpstreamPassword(ctx, user)
		if err != nil {
			return nil, fmt.Errorf("pop3 upstream stored password: %w: %w", proxy.ErrUpstream, err)
		}
		authcid, password = user, pw
	default:
		return nil, fmt.Errorf("pop3 upstream credential: %w: none configured", proxy.ErrUpstream)
	}
	line, err := encodeAuthPlain(authzid, authcid, password)
	if err != nil {
		return nil, fmt.Errorf("pop3 upstream credential: %w: %w", proxy.ErrUpstream, err)
	}
	return line, nil
}

// upstreamSTLS upgrades the upstream connection (RFC 2595 §4). A refusal is
// an error, never a reason to continue in plaintext (P5).
func (p *Protocol) upstreamSTLS(ctx context.Context, up *proxy.Conn) error {
	if err := send(up, []byte("STLS\r\n")); err != nil {
		return err
	}
	if _, err := p.expectOK(up, "STLS"); err != nil {
		return err
	}
	// Bytes behind the +OK were sent before TLS and may be injected
	// (the server-side twin of CVE-2011-0411).
	if up.R.Buffered() > 0 {
		return fmt.Errorf("pop3 upstream STLS: %w: data after the STLS reply", proxy.ErrUpstream)
	}
	if err := up.StartTLSClient(ctx, p.cfg.UpstreamTLS); err != nil {
		return fmt.Errorf("pop3 upstream STLS handshake: %w: %w", proxy.ErrUpstream, err)
	}
	return nil
}

// announceClient sends XCLIENT when the upstream takes it. Dovecot says so
// in its greeting; other servers may list it in CAPA, which costs one more
// round trip and is only asked when the greeting was silent.
func (p *Protocol) announceClient(up *proxy.Conn, greeting string, info proxy.ClientInfo) error {
	offered := strings.HasPrefix(greeting, xclientGreeting)
	if !offered {
		var err error
		if offered, err = p.capaHasXClient(up); err != nil {
			return err
		}
	}
	if !offered {
		p.log.Debug("pop3 upstream does not offer XCLIENT")
		return nil
	}
	cmd, err := xclientCommand(info)
	if err != nil {
		return fmt.Errorf("pop3 upstream XCLIENT: %w: %w", proxy.ErrUpstream, err)
	}
	if err := send(up, cmd); err != nil {
		return err
	}
	_, err = p.expectOK(up, "XCLIENT")
	return err
}

// capaHasXClient asks CAPA (RFC 2449 §5). A server without CAPA simply has
// no XCLIENT.
func (p *Protocol) capaHasXClient(up *proxy.Conn) (bool, error) {
	if err := send(up, []byte("CAPA\r\n")); err != nil {
		return false, err
	}
	line, err := readLine(up.R, p.maxLine)
	if err != nil {
		return false, fmt.Errorf("pop3 upstream CAPA: %w: %w", proxy.ErrUpstream, err)
	}
	if !isOK(line) {
		return false, nil
	}
	found := false
	for range maxCapaLines {
		line, err := readLine(up.R, p.maxLine)
		if err != nil {
			return false, fmt.Errorf("pop3 upstream CAPA: %w: %w", proxy.ErrUpstream, err)
		}
		if string(line) == "." {
			return found, nil
		}
		name, _, _ := strings.Cut(string(line), " ")
		found = found || strings.EqualFold(name, "XCLIENT")
	}
	return false, fmt.Errorf("pop3 upstream CAPA: %w: more than %d lines", proxy.ErrUpstream, maxCapaLines)
}

// xclientCommand announces the client's address and port, and the session
// id when it is short and plain enough to pass unescaped. A v4-mapped
// address is sent in IPv4 form, which is what upstreams log and match
// against their trusted networks.
func xclientCommand(info proxy.ClientInfo) ([]byte, error) {
	addr := info.Addr.Addr().Unmap().WithZone("")
	args := []string{"ADDR=" + addr.String(), "PORT=" + strconv.Itoa(int(info.Addr.Port()))}
	if safeSessionID(info.SessionID) {
		args = append(args, "SESSION="+info.SessionID)
	}
	return encodeCommand("XCLIENT", args...)
}

func safeSessionID(id string) bool {
	if id == "" || len(id) > maxSessionID {
		return false
	}
	for i := 0; i < len(id); i++ {
		c := id[i]
		if !isASCIILetter(c) && !('0' <= c && c <= '9') && !strings.ContainsRune("+/=_-.", rune(c)) {
			return false
		}
	}
	return true
}

// expectOK reads one status line and requires +OK (RFC 1939 §3).
func (p *Protocol) expectOK(up *proxy.Conn, step string) (string, error) {
	line, err := readLine(up.R, p.maxLine)
	if err != nil {
		return "", fmt.Errorf("pop3 upstream %s: %w: %w", step, proxy.ErrUpstream, err)
	}
	if !isOK(line) {
		refused := proxy.ErrUpstream
		if step == "login" {
			refused = proxy.ErrLoginRefused
		}
		return "", fmt.Errorf("pop3 upstream %s: %w: refused%s", step, refused, responseCode(line))
	}
	return string(line), nil
}

func isOK(line []byte) bool {
	return string(line) == "+OK" || bytes.HasPrefix(line, []byte("+OK "))
}

// responseCode extracts an RFC 2449 response code such as "[SYS/TEMP]" for
// the error message. The rest of the upstream's text stays out: it may
// repeat the username, and it is not ours to vouch for.
func responseCode(line []byte) string {
	rest, ok := bytes.CutPrefix(line, []byte("-ERR ["))
	if !ok {
		return ""
	}
	code, _, ok := bytes.Cut(rest, []byte("]"))
	if !ok || len(code) == 0 || len(code) > 32 {
		return ""
	}
	for _, c := range code {
		if !isASCIILetter(c) && !('0' <= c && c <= '9') && c != '/' && c != '-' {
			return ""
		}
	}
	return " [" + string(code) + "]"
}

func send(up *proxy.Conn, b []byte) error {
	if _, err := up.W.Write(b); err != nil {
		return fmt.Errorf("pop3 upstream write: %w: %w", proxy.ErrUpstream, err)
	}
	if err := up.W.Flush(); err != nil {
		return fmt.Errorf("pop3 upstream write: %w: %w", proxy.ErrUpstream, err)
	}
	return nil
}

// encodeAuthPlain builds "AUTH PLAIN <initial response>" (RFC 5034 §4,
// RFC 4616). base64 alone would hide CR or LF from the line, but the
// upstream would still see them inside the name, so they are refused here.
func encodeAuthPlain(authzid, authcid, password string) ([]byte, error) {
	if safetext.BreaksCommand(authzid) || !proxy.ValidCredential(authcid) || !proxy.ValidCredential(password) {
		return nil, errUnsafeArgument
	}
	msg := authzid + "\x00" + authcid + "\x00" + password
	return encodeCommand("AUTH", "PLAIN", base64.StdEncoding.EncodeToString([]byte(msg)))
}

// encodeCommand is the only way upstream commands are built: keyword and
// arguments joined by single spaces and one CRLF. Each part must be
// non-empty and free of space, CR, LF and NUL, so the result is exactly one
// command with exactly these arguments (P4).
func encodeCommand(keyword string, args ...string) ([]byte, error) {
	var b bytes.Buffer
	for i, part := range append([]string{keyword}, args...) {
		if part == "" || strings.ContainsAny(part, " \r\n\x00") {
			return nil, errUnsafeArgument
		}
		if i > 0 {
			b.WriteByte(' ')
		}
		b.WriteString(part)
	}
	b.WriteString("\r\n")
	return b.Bytes(), nil
}
