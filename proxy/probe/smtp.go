package probe

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"strings"

	"github.com/postern-dev/postern/proxy"
)

// SMTP is the SMTP dialect (RFC 5321 §3.1, §4.1.1.10; RFC 3207).
func SMTP() Dialect {
	return Dialect{Name: "smtp", Greeting: "220", StartTLS: "STARTTLS\r\n", TLSAnswer: "220", Quit: "QUIT\r\n"}
}

// SMTPCheck is what an SMTP target's probe does beyond a greeting and TLS:
// it says EHLO, again after STARTTLS, and hands the last answer to Check.
// The probe never sends XCLIENT or AUTH: the EHLO answer alone tells
// whether the upstream offers what postern's login needs (Postfix lists
// XCLIENT only to hosts in smtpd_authorized_xclient_hosts).
type SMTPCheck struct {
	// Hostname is the name the probe says EHLO with.
	Hostname string
	// Check reads the upstream's EHLO answer, given as the lines of its
	// reply without CRLF; its error is the probe's problem, and should name
	// the configuration key to change.
	Check func(ehlo []string) error
}

// maxReplyLines bounds one reply the probe reads; an EHLO answer has a
// dozen or so.
const maxReplyLines = 100

// errSMTPCode is a reply whose code is not the one the step needs.
var errSMTPCode = errors.New("unexpected reply")

// smtpDialogue runs the SMTP probe after the connection (and implicit TLS)
// is up: greeting, EHLO, STARTTLS and EHLO again when configured, QUIT.
func (p *Prober) smtpDialogue(ctx context.Context, conn net.Conn, br *bufio.Reader, t Target, implicit bool) error {
	addr := t.Upstream.Address
	greeting, err := readSMTPReply(br, "220")
	switch {
	case errors.Is(err, errSMTPCode):
		return fmt.Errorf("%s greets with %q, not %q", addr, clip(greeting), "220")
	case err != nil:
		return p.greetingProblem(ctx, t, implicit, err)
	}
	hello := "EHLO " + t.SMTP.Hostname + "\r\n"
	ehlo, err := smtpCommand(conn, br, hello, "250")
	if err != nil {
		return fmt.Errorf("EHLO to %s: %w", addr, err)
	}
	if t.Upstream.Security == proxy.StartTLS {
		if answer, err := smtpCommand(conn, br, t.Dialect.StartTLS, "220"); err != nil {
			return fmt.Errorf(`%s refuses STARTTLS (%q): set %s.security = "implicit" for a port that speaks TLS at once, or "none"`,
				addr, clip(strings.Join(answer, " ")), t.Key)
		}
		if conn, err = p.upgrade(conn, br, t); err != nil {
			return err
		}
		br = bufio.NewReaderSize(conn, 1024)
		// What the server said before TLS no longer counts (RFC 3207 §4.2).
		if ehlo, err = smtpCommand(conn, br, hello, "250"); err != nil {
			return fmt.Errorf("EHLO to %s inside TLS: %w", addr, err)
		}
	}
	fmt.Fprint(conn, t.Dialect.Quit)
	if err := t.SMTP.Check(ehlo); err != nil {
		return fmt.Errorf("%s.login: %w", t.Key, err)
	}
	return nil
}

// smtpCommand sends cmd and reads its reply, which must have code. On a
// reply with another code the lines come back with errSMTPCode.
func smtpCommand(conn net.Conn, br *bufio.Reader, cmd, code string) ([]string, error) {
	if _, err := fmt.Fprint(conn, cmd); err != nil {
		return nil, err
	}
	lines, err := readSMTPReplyLines(br)
	if err == nil && !strings.HasPrefix(lines[0], code) {
		return lines, fmt.Errorf("%w %q", errSMTPCode, clip(lines[0]))
	}
	return lines, err
}

// readSMTPReply reads one reply, which must have code; on another code it
// returns the reply's first line with errSMTPCode.
func readSMTPReply(br *bufio.Reader, code string) (string, error) {
	lines, err := readSMTPReplyLines(br)
	switch {
	case err != nil:
		return "", err
	case !strings.HasPrefix(lines[0], code):
		return lines[0], errSMTPCode
	}
	return lines[0], nil
}

// readSMTPReplyLines reads the lines of one reply (RFC 5321 §4.2: "ddd-"
// on every line but the last), without CRLF.
func readSMTPReplyLines(br *bufio.Reader) ([]string, error) {
	var lines []string
	for len(lines) < maxReplyLines {
		line, err := readLine(br)
		if err != nil {
			return nil, err
		}
		lines = append(lines, line)
		if len(line) < 4 || line[3] != '-' {
			return lines, nil
		}
	}
	return nil, fmt.Errorf("a reply of more than %d lines", maxReplyLines)
}
