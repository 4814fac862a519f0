package smtp

import (
	"bytes"
	"context"
	"crypto/tls"
	"net/netip"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/proxy"
)

// FuzzPreAuth drives the whole pre-auth dialogue with arbitrary client
// bytes on a cleartext connection. Whatever arrives, no login is ever
// returned (P1), and every reply line is one of the fixed answers, so no
// client byte is echoed (P7).
func FuzzPreAuth(f *testing.F) {
	for _, s := range []string{
		"EHLO c\r\nNOOP\r\nRSET\r\nQUIT\r\n", "EHLO c\r\nAUTH PLAIN " + b64("\x00a\x00b") + "\r\n",
		"EHLO c\r\nAUTH LOGIN\r\n" + b64("a") + "\r\n" + b64("b") + "\r\n", "STARTTLS\r\nEHLO c\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n", "MAIL FROM:<a@b>\r\nDATA\r\n", strings.Repeat("x", 300) + "\r\n",
		"HELO \x00\r\nEHLO a b\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	cfg := testConfig(f)
	cfg.MaxLine = 256
	p := New(cfg)
	allowed := fixedReplies(p)
	f.Fuzz(func(t *testing.T, data []byte, offerTLS bool) {
		var out bytes.Buffer
		var offer *tls.Config
		if offerTLS {
			offer = &tls.Config{} // no certificate: any handshake fails
		}
		fe := p.NewFrontend(proxy.NewConn(&fronttest.ScriptConn{R: bytes.NewReader(data), W: &out}), offer)
		if err := fe.Greet(); err != nil {
			t.Fatal(err)
		}
		if l, err := fe.ReadLogin(context.Background()); err == nil {
			t.Fatalf("login %+v returned on cleartext", l)
		}
		for _, line := range strings.Split(strings.TrimSuffix(out.String(), "\r\n"), "\r\n") {
			if !allowed[line] {
				t.Fatalf("reply %q is not a fixed answer", line)
			}
		}
	})
}

func fixedReplies(p *Protocol) map[string]bool {
	m := map[string]bool{p.greeting: true, "250 " + p.hostname: true}
	for _, r := range []string{
		replyOK, replyBye, replyReadyTLS, replyAuthOK, replyContinue, replyAuthRequired, replyTLSRequired, replyTempFail,
		replySyntax, replyParams, replyHelloSyntax, replyHelloFirst, replyHaveTLS, replyNoTLS, replyMechanism,
		replyCanceled, replyBadSASL, replyLineTooLong, replyTooManyBad,
	} {
		m[r] = true
	}
	for _, r := range p.failure {
		m[r] = true
	}
	for _, l := range append(append([]string{p.hostname}, p.upstream.Load().offered()...), "STARTTLS", mechanisms) {
		m["250-"+l], m["250 "+l] = true, true
	}
	return m
}

// FuzzXClientEncoder: the XCLIENT line is refused exactly when a value is
// unsafe, and otherwise an independent parse of it is one command that
// gives back exactly the attributes (P4).
func FuzzXClientEncoder(f *testing.F) {
	f.Add("alice", "phone.example", "192.0.2.7:4000")
	f.Add("al ice+x=y", "[UNAVAILABLE]", "[2001:db8::1]:25")
	f.Add("alice\r\nRCPT TO:<x>", "h", "")
	f.Add("ünïcode", "a\x00b", "")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, user, hello, addr string) {
		info := proxy.ClientInfo{Hello: hello}
		info.Addr, _ = netip.ParseAddrPort(addr)
		line, err := xclientCommand(user, info, "NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT")
		unsafe := !proxy.ValidCredential(user)
		if unsafe && err == nil {
			t.Fatalf("xclientCommand(%q) accepted", user)
		}
		if err != nil {
			// Besides unsafe names, only a line too long for the upstream.
			if !unsafe && len(xtext(user))+len(xtext(hello)) < maxCommandLine-200 {
				t.Fatalf("xclientCommand(%q, %q): %v", user, hello, err)
			}
			return
		}
		attrs := parseXClient(t, line)
		if attrs["LOGIN"] != user || len(attrs) != 6 || attrs["PROTO"] != "ESMTP" || attrs["NAME"] != unavailable {
			t.Fatalf("round trip of %q gave %q", user, attrs)
		}
		if want := hello; !validDomain(hello) && attrs["HELO"] != unavailable || validDomain(hello) && attrs["HELO"] != want {
			t.Fatalf("HELO %q became %q", hello, attrs["HELO"])
		}
		if info.Addr.IsValid() && strings.TrimPrefix(attrs["ADDR"], "IPV6:") != info.Addr.Addr().Unmap().WithZone("").String() {
			t.Fatalf("ADDR %q became %q", info.Addr, attrs["ADDR"])
		}
	})
}

// parseXClient is an independent reading of an XCLIENT line: one line,
// the keyword, then space-separated NAME=xtext attributes.
func parseXClient(t *testing.T, line []byte) map[string]string {
	t.Helper()
	body, ok := bytes.CutSuffix(line, []byte("\r\n"))
	if !ok || bytes.ContainsAny(body, "\r\n\x00") || len(line) > maxCommandLine {
		t.Fatalf("%q is not exactly one command line", line)
	}
	fields := strings.Split(string(body), " ")
	if fields[0] != "XCLIENT" {
		t.Fatalf("%q is not XCLIENT", line)
	}
	attrs := map[string]string{}
	for _, f := range fields[1:] {
		name, value, ok := strings.Cut(f, "=")
		if !ok || name == "" {
			t.Fatalf("attribute %q in %q", f, line)
		}
		if _, dup := attrs[name]; dup {
			t.Fatalf("attribute %s twice in %q", name, line)
		}
		attrs[name] = unxtext(t, value)
	}
	return attrs
}

func unxtext(t *testing.T, s string) string {
	t.Helper()
	var b strings.Builder
	for i := 0; i < len(s); i++ {
		c := s[i]
		switch {
		case c == '+':
			if i+3 > len(s) {
				t.Fatalf("truncated xtext %q", s)
			}
			n, err := strconv.ParseUint(s[i+1:i+3], 16, 8)
			if err != nil || strings.ToUpper(s[i+1:i+3]) != s[i+1:i+3] {
				t.Fatalf("bad xtext escape in %q", s)
			}
			b.WriteByte(byte(n))
			i += 2
		case c < '!' || c > '~' || c == '=':
			t.Fatalf("raw byte %q in xtext %q", c, s)
		default:
			b.WriteByte(c)
		}
	}
	return b.String()
}

// FuzzGuard checks the guard against a model of how Postfix reads a
// client's stream (command lines split at LF, one reply each, DATA to a
// line holding only a dot, BDAT chunks skipped). Whatever the client sends,
// in whatever pieces, and whichever DATA the upstream refuses: as long as
// the guard let every piece through, Postfix never read a command that
// could change who is sending.
func FuzzGuard(f *testing.F) {
	for _, s := range []string{
		"MAIL FROM:<a@b>\r\nRCPT TO:<c@d>\r\nDATA\r\n|x\r\nXCLIENT LOGIN=bob\r\n.\r\nQUIT\r\n",
		"DATA\r\n|x\n.\nXCLIENT LOGIN=bob\r\n", "BDAT 19\r\nXCLIENT LOGIN=bob\r\n|NOOP\r\n",
		"DATA\r\n|.\r\n|XCLIENT LOGIN=bob\r\n", "NOOP\rXCLIENT\r\n", "DATA\r\n|..\r\n.\r\n",
	} {
		f.Add(s, true, uint8(0))
		f.Add(s, false, uint8(1))
	}
	f.Fuzz(func(t *testing.T, script string, chunking bool, refuse uint8) {
		g := testGuard(chunking)
		model := &postfixModel{refuseData: refuse}
		var passed []byte
		for _, piece := range strings.Split(script, "|") {
			if err := g.follow([]byte(piece)); err != nil {
				return
			}
			passed = append(passed, piece...)
			replies := model.read(passed)
			if verb := model.forbidden; verb != "" {
				t.Fatalf("postfix read %s from %q", verb, passed)
			}
			if err := g.count([]byte(replies)); err != nil {
				t.Fatalf("the model's replies %q: %v", replies, err)
			}
		}
	})
}

// postfixModel reads a client's stream as Postfix 3.7 does, from the
// start each time, and returns the replies not yet returned.
type postfixModel struct {
	refuseData uint8 // bit i set: refuse the i-th DATA
	replied    int
	forbidden  string
}

func (m *postfixModel) read(stream []byte) string {
	var replies []string
	dataSeen := 0
	for len(stream) > 0 {
		i := bytes.IndexByte(stream, '\n')
		if i < 0 {
			break
		}
		line := bytes.TrimSuffix(stream[:i], []byte("\r"))
		stream = stream[i+1:]
		fields := bytes.FieldsFunc(line, func(r rune) bool { return strings.ContainsRune(" \t\r\v\f\x00", r) })
		verb := ""
		if len(fields) > 0 {
			verb = strings.ToUpper(string(fields[0]))
		}
		if slices.Contains(notRelayed, verb) {
			m.forbidden = verb
		}
		switch verb {
		case "DATA":
			dataSeen++
			if m.refuseData&(1<<(dataSeen%8)) != 0 {
				replies = append(replies, "554 5.5.1 Error: no valid recipients")
				continue
			}
			replies = append(replies, "354 End data with <CR><LF>.<CR><LF>")
			rest, ok := skipData(stream)
			if !ok {
				stream = nil
				continue
			}
			stream = rest
			replies = append(replies, "250 2.0.0 Ok: queued")
		case "BDAT":
			n, _ := strconv.Atoi(string(fields[min(1, len(fields)-1)]))
			if len(fields) < 2 || n < 0 || n > len(stream) {
				stream = nil
				continue
			}
			stream = stream[n:]
			replies = append(replies, "250 2.0.0 Ok")
		default:
			replies = append(replies, "250 2.0.0 Ok")
		}
	}
	out := replies[min(m.replied, len(replies)):]
	m.replied = max(m.replied, len(replies))
	if len(out) == 0 {
		return ""
	}
	return strings.Join(out, "\r\n") + "\r\n"
}

// skipData returns what follows message data ended by a line holding only
// a dot (after its LF, with one CR stripped), if the end has arrived.
func skipData(stream []byte) ([]byte, bool) {
	for {
		i := bytes.IndexByte(stream, '\n')
		if i < 0 {
			return nil, false
		}
		line := bytes.TrimSuffix(stream[:i], []byte("\r"))
		stream = stream[i+1:]
		if string(line) == "." {
			return stream, true
		}
	}
}
