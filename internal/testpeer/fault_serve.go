package testpeer

import (
	"bufio"
	"bytes"
	"crypto/tls"
	"errors"
	"fmt"
	"io"
	"strconv"
	"strings"
	"time"
)

// Bounds on what the scripted faults accept, so a runaway client cannot
// exhaust the test's memory.
const (
	scriptMaxLine    = 64 << 10
	scriptMaxLiteral = 64 << 10
)

const faultGreeting = "* OK IMAP4rev1 ready\r\n"

// loginAction is how a scripted fault answers LOGIN and AUTHENTICATE.
type loginAction int

const (
	closeOnLogin loginAction = iota
	refuseLogin
	alreadyAuthenticated
)

func (f *FaultPeer) serve(c *faultConn) {
	switch f.Kind {
	case FaultBlackhole:
		c.settle() // it never reads, so nothing more will be recorded
		<-f.stop
	case FaultSlow:
		f.writeWhileDraining(c, trickle([]byte(slowGreeting), time.Second))
	case FaultHugeLine:
		f.writeWhileDraining(c, hugeLine)
	case FaultCloseMidLogin:
		serveScript(c, faultGreeting, closeOnLogin)
	case FaultPreauth:
		serveScript(c, "* PREAUTH IMAP4rev1 server logged in as nobody\r\n", alreadyAuthenticated)
	case FaultRefuseLogin:
		serveScript(c, faultGreeting, refuseLogin)
	case FaultBadCert:
		// Record what arrives inside TLS, should a client accept the cert.
		c.Conn = tls.Server(c.raw, f.tlsConf)
		serveScript(c, faultGreeting, refuseLogin)
	case FaultBadCertStartTLS:
		if upgradeStartTLS(c) {
			c.restart()
			c.Conn = tls.Server(c.raw, f.tlsConf)
			serveScript(c, "", refuseLogin)
		}
	}
}

// startTLSCaps is what FaultBadCertStartTLS offers before TLS.
const startTLSCaps = "IMAP4rev1 STARTTLS LOGINDISABLED"

// upgradeStartTLS greets offering STARTTLS and answers until the client
// asks for it; it reports whether the client did, the OK sent.
func upgradeStartTLS(c *faultConn) bool {
	if _, err := io.WriteString(c, "* OK [CAPABILITY "+startTLSCaps+"] ready\r\n"); err != nil {
		return false
	}
	for {
		line, err := readLineUnbuffered(c)
		if err != nil {
			return false
		}
		tag, verb, _ := splitCommand(line)
		switch verb {
		case "STARTTLS":
			_, err = fmt.Fprintf(c, "%s OK Begin TLS negotiation now\r\n", tag)
			return err == nil
		case "CAPABILITY":
			_, err = fmt.Fprintf(c, "* CAPABILITY %s\r\n%s OK CAPABILITY completed\r\n", startTLSCaps, tag)
		case "LOGOUT":
			return false
		default:
			_, err = fmt.Fprintf(c, "%s BAD STARTTLS first\r\n", tag)
		}
		if err != nil {
			return false
		}
	}
}

// readLineUnbuffered reads one line of at most scriptMaxLine bytes, one
// byte at a time: nothing the client sends after STARTTLS may end up in a
// buffer that TLS then never sees.
func readLineUnbuffered(r io.Reader) (string, error) {
	var b strings.Builder
	var one [1]byte
	for b.Len() < scriptMaxLine {
		if _, err := io.ReadFull(r, one[:]); err != nil {
			return "", err
		}
		b.WriteByte(one[0])
		if one[0] == '\n' {
			return b.String(), nil
		}
	}
	return "", errors.New("line too long")
}

// writeWhileDraining runs write in its own goroutine and meanwhile records
// whatever the client sends, until the client leaves or the test ends.
func (f *FaultPeer) writeWhileDraining(c *faultConn, write func(w io.Writer, done <-chan struct{})) {
	done := make(chan struct{})
	f.wg.Add(1)
	go func() {
		defer f.wg.Done()
		write(c, done)
	}()
	_, _ = io.Copy(io.Discard, c)
	close(done)
}

// trickle writes msg one byte per interval, the first at once.
func trickle(msg []byte, interval time.Duration) func(io.Writer, <-chan struct{}) {
	return func(w io.Writer, done <-chan struct{}) {
		tick := time.NewTicker(interval)
		defer tick.Stop()
		for i := range msg {
			if i > 0 {
				select {
				case <-done:
					return
				case <-tick.C:
				}
			}
			if _, err := w.Write(msg[i : i+1]); err != nil {
				return
			}
		}
	}
}

// hugeLine writes "* OK " and then hugeLineSize bytes without a line end.
func hugeLine(w io.Writer, done <-chan struct{}) {
	chunk := bytes.Repeat([]byte("x"), 64<<10)
	if _, err := io.WriteString(w, "* OK "); err != nil {
		return
	}
	for sent := 0; sent < hugeLineSize; sent += len(chunk) {
		select {
		case <-done:
			return
		default:
		}
		if _, err := w.Write(chunk); err != nil {
			return
		}
	}
}

// serveScript greets and answers the pre-login commands a proxy sends
// upstream, until the client leaves or the login action ends the dialogue.
func serveScript(c *faultConn, greeting string, action loginAction) {
	if greeting != "" {
		if _, err := io.WriteString(c, greeting); err != nil {
			return
		}
	}
	br := bufio.NewReaderSize(c, scriptMaxLine)
	for {
		cmd, err := readCommand(br, c)
		if err != nil {
			return
		}
		tag, verb, rest := splitCommand(cmd)
		if !answer(c, br, tag, verb, rest, action) {
			return
		}
	}
}

// answer replies to one command and reports whether to keep going.
func answer(w io.Writer, br *bufio.Reader, tag, verb, rest string, action loginAction) bool {
	var err error
	switch verb {
	case "CAPABILITY":
		_, err = fmt.Fprintf(w, "* CAPABILITY IMAP4rev1 AUTH=PLAIN SASL-IR\r\n%s OK CAPABILITY completed\r\n", tag)
	case "NOOP":
		_, err = fmt.Fprintf(w, "%s OK NOOP completed\r\n", tag)
	case "ID":
		_, err = fmt.Fprintf(w, "* ID NIL\r\n%s OK ID completed\r\n", tag)
	case "LOGOUT":
		_, _ = fmt.Fprintf(w, "* BYE logging out\r\n%s OK LOGOUT completed\r\n", tag)
		return false
	case "LOGIN", "AUTHENTICATE":
		return answerLogin(w, br, tag, verb, rest, action)
	default:
		_, err = fmt.Fprintf(w, "%s BAD unknown command\r\n", tag)
	}
	return err == nil
}

func answerLogin(w io.Writer, br *bufio.Reader, tag, verb, rest string, action loginAction) bool {
	switch action {
	case closeOnLogin:
		return false
	case alreadyAuthenticated:
		_, err := fmt.Fprintf(w, "%s BAD already authenticated\r\n", tag)
		return err == nil
	}
	// AUTHENTICATE without an initial response waits for one (RFC 3501
	// section 6.2.2); "*" cancels.
	if verb == "AUTHENTICATE" && !strings.Contains(rest, " ") {
		if _, err := io.WriteString(w, "+ \r\n"); err != nil {
			return false
		}
		line, err := br.ReadSlice('\n')
		if err != nil {
			return false
		}
		if strings.TrimSpace(string(line)) == "*" {
			_, err = fmt.Fprintf(w, "%s BAD AUTHENTICATE cancelled\r\n", tag)
			return err == nil
		}
	}
	_, err := fmt.Fprintf(w, "%s NO [AUTHENTICATIONFAILED] no\r\n", tag)
	return err == nil
}

// readCommand reads one command line, including any literals it carries
// (RFC 3501 section 4.3; "{n+}" is RFC 7888's non-synchronizing form).
func readCommand(br *bufio.Reader, w io.Writer) (string, error) {
	var cmd bytes.Buffer
	for {
		line, err := br.ReadSlice('\n')
		if err != nil {
			return "", fmt.Errorf("read command: %w", err)
		}
		cmd.Write(line)
		n, sync, ok := literalSize(line)
		if !ok {
			return cmd.String(), nil
		}
		if n > scriptMaxLiteral || cmd.Len() > scriptMaxLine {
			return "", errors.New("command too long")
		}
		if sync {
			if _, err := io.WriteString(w, "+ go ahead\r\n"); err != nil {
				return "", err
			}
		}
		if _, err := io.CopyN(&cmd, br, n); err != nil {
			return "", fmt.Errorf("read literal: %w", err)
		}
	}
}

// literalSize parses a trailing "{n}" or "{n+}".
func literalSize(line []byte) (n int64, sync, ok bool) {
	s := strings.TrimRight(string(line), "\r\n")
	if !strings.HasSuffix(s, "}") {
		return 0, false, false
	}
	open := strings.LastIndexByte(s, '{')
	if open < 0 {
		return 0, false, false
	}
	digits := s[open+1 : len(s)-1]
	sync = !strings.HasSuffix(digits, "+")
	n, err := strconv.ParseInt(strings.TrimSuffix(digits, "+"), 10, 64)
	if err != nil || n < 0 {
		return 0, false, false
	}
	return n, sync, true
}

// splitCommand returns the tag, the upper-cased command name and the rest
// of the first line.
func splitCommand(cmd string) (tag, verb, rest string) {
	first, _, _ := strings.Cut(cmd, "\n")
	fields := strings.SplitN(strings.TrimRight(first, "\r"), " ", 3)
	tag = fields[0]
	if len(fields) > 1 {
		verb = strings.ToUpper(fields[1])
	}
	if len(fields) > 2 {
		rest = fields[2]
	}
	return tag, verb, rest
}
