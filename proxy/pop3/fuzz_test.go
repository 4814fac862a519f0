package pop3

import (
	"bufio"
	"bytes"
	"context"
	"crypto/tls"
	"encoding/base64"
	"strings"
	"testing"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/proxy"
)

// FuzzParseCommand: the line reader never returns more than its limit or a
// line holding LF, and a parsed command always gives back its line.
func FuzzParseCommand(f *testing.F) {
	for _, s := range []string{
		"CAPA\r\n", "USER alice\r\nPASS a b c\r\n", "AUTH PLAIN =\r\n", "\r\n\r\n",
		"GET / HTTP/1.1\r\nHost: x\r\n\r\n", strings.Repeat("A", 100), "pass\tx\n", "\x16\x03\x01\x00\xa5\x01",
	} {
		f.Add([]byte(s))
	}
	f.Fuzz(func(t *testing.T, data []byte) {
		const max = 64
		r := bufio.NewReaderSize(bytes.NewReader(data), 16)
		for {
			line, err := readLine(r, max)
			if err != nil {
				return
			}
			if len(line) > max || bytes.IndexByte(line, '\n') >= 0 {
				t.Fatalf("readLine returned %q", line)
			}
			cmd, ok := parseCommand(line)
			if !ok {
				continue
			}
			if cmd.name == "" || len(cmd.name) > maxKeyword || strings.ToUpper(cmd.name) != cmd.name || strings.ContainsAny(cmd.name, " \r\x00") {
				t.Fatalf("bad keyword %q from %q", cmd.name, line)
			}
			rebuilt := cmd.name
			if bytes.IndexByte(line, ' ') >= 0 {
				rebuilt += " " + cmd.arg
			}
			if !strings.EqualFold(rebuilt, string(line)) || !strings.HasSuffix(string(line), cmd.arg) {
				t.Fatalf("parseCommand(%q) = %+v", line, cmd)
			}
		}
	})
}

// FuzzUpstreamEncoder: the AUTH PLAIN line is refused exactly when a field
// is unsafe, and otherwise an independent parse of it is one command that
// gives back exactly the three fields (P4).
func FuzzUpstreamEncoder(f *testing.F) {
	f.Add("alice", "master", "pw")
	f.Add("", "alice", "p a s s")
	f.Add("alice\r\nDELE 1", "master", "pw")
	f.Add("alice", "master", "p\x00w")
	f.Add("", "", "")
	f.Fuzz(func(t *testing.T, authzid, authcid, password string) {
		line, err := encodeAuthPlain(authzid, authcid, password)
		unsafe := strings.ContainsAny(authzid, "\r\n\x00") || !proxy.ValidCredential(authcid) || !proxy.ValidCredential(password)
		if unsafe != (err != nil) {
			t.Fatalf("encodeAuthPlain(%q, %q, %q) error = %v, unsafe = %v", authzid, authcid, password, err, unsafe)
		}
		if err != nil {
			return
		}
		body, ok := strings.CutSuffix(string(line), "\r\n")
		if !ok || strings.ContainsAny(body, "\r\n\x00") {
			t.Fatalf("line %q is not exactly one command", line)
		}
		fields := strings.Split(body, " ")
		if len(fields) != 3 || fields[0] != "AUTH" || fields[1] != "PLAIN" {
			t.Fatalf("line %q is not AUTH PLAIN <response>", line)
		}
		raw, err := base64.StdEncoding.DecodeString(fields[2])
		if err != nil {
			t.Fatalf("response %q: %v", fields[2], err)
		}
		parts := strings.Split(string(raw), "\x00")
		if len(parts) != 3 || parts[0] != authzid || parts[1] != authcid || parts[2] != password {
			t.Fatalf("round trip gave %q", parts)
		}
	})
}

// FuzzEncodeCommand: a command is built only from safe parts, and splitting
// the result gives them back.
func FuzzEncodeCommand(f *testing.F) {
	f.Add("XCLIENT", "ADDR=192.0.2.1", "PORT=1")
	f.Add("USER", "a b", "x")
	f.Add("CAPA", "", "\r\n")
	f.Fuzz(func(t *testing.T, keyword, a, b string) {
		line, err := encodeCommand(keyword, a, b)
		if err != nil {
			return
		}
		body, ok := strings.CutSuffix(string(line), "\r\n")
		if !ok || strings.ContainsAny(body, "\r\n\x00") {
			t.Fatalf("line %q is not exactly one command", line)
		}
		if got := strings.Split(body, " "); len(got) != 3 || got[0] != keyword || got[1] != a || got[2] != b {
			t.Fatalf("encodeCommand(%q, %q, %q) = %q", keyword, a, b, line)
		}
	})
}

// FuzzFrontendCleartext drives the whole pre-auth dialogue with arbitrary
// client bytes on a cleartext connection. Whatever arrives, no login is
// ever returned (P1), and every reply line is one of the fixed answers, so
// no client byte is echoed (P7).
func FuzzFrontendCleartext(f *testing.F) {
	for _, s := range []string{
		"CAPA\r\nNOOP\r\nQUIT\r\n", "USER alice\r\nPASS secret\r\n", "AUTH PLAIN " + b64("\x00a\x00b") + "\r\n",
		"AUTH LOGIN\r\n" + b64("a") + "\r\n" + b64("b") + "\r\n", "STLS\r\nCAPA\r\n", "GET / HTTP/1.1\r\nHost: x\r\n\r\n",
		strings.Repeat("x", 300) + "\r\n",
	} {
		f.Add([]byte(s), false)
		f.Add([]byte(s), true)
	}
	p := New(Config{Adapter: proxy.Adapter{AccountURL: testAccountURL, MaxLine: 256}})
	allowed := fixedReplies(p)
	f.Fuzz(func(t *testing.T, data []byte, offerSTLS bool) {
		var out bytes.Buffer
		var offer *tls.Config
		if offerSTLS {
			offer = &tls.Config{} // no certificate: any handshake fails
		}
		fe := p.NewFrontend(proxy.NewConn(&fronttest.ScriptConn{R: bytes.NewReader(data), W: &out}), offer)
		if err := fe.Greet(); err != nil {
			t.Fatal(err)
		}
		// Only a login or the end of the input ends ReadLogin here.
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
	m := map[string]bool{".": true, p.failure: true}
	for _, r := range []string{
		replyGreeting, replyOK, replyBye, replyLoggedIn, replyBeginTLS, replyCapaHead, replyMechHead,
		replyContinue, replyLoginUser, replyLoginPass, replyUnknown, replySyntax, replyUserFirst,
		replyHaveTLS, replyNoTLS, replyMechanism, replyCanceled, replyBadSASL, replyLineTooLong,
		replyTooManyBad, replyTLSRequired, replyTempFail,
	} {
		m[r] = true
	}
	for _, secure := range []bool{false, true} {
		for _, c := range capabilities(secure, !secure) {
			m[c] = true
		}
	}
	return m
}
