package imap

import (
	"bufio"
	"context"
	"crypto/tls"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/internal/linetest"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
)

// fakeUpstream is a scripted upstream IMAP server on a real loopback
// connection. It keeps every command the proxy sent, literals inline, so
// tests can prove what did and did not reach the upstream.
type fakeUpstream struct {
	t    *testing.T
	conn net.Conn
	r    *bufio.Reader
	cmds []string
	tls  *tls.Config
}

// runFake serves script on one end of a loopback connection and returns
// the other end; wait returns the commands once script is done.
func runFake(t *testing.T, serverTLS *tls.Config, script func(s *fakeUpstream)) (up *proxy.Conn, wait func() []string) {
	t.Helper()
	cc, sc := linetest.TCPPair(t)
	if err := sc.SetDeadline(time.Now().Add(fronttest.IOGuard)); err != nil {
		t.Fatal(err)
	}
	s := &fakeUpstream{t: t, conn: sc, r: bufio.NewReader(sc), tls: serverTLS}
	done := make(chan struct{})
	go func() {
		defer close(done)
		defer sc.Close()
		script(s)
	}()
	return proxy.NewConn(cc), func() []string {
		cc.Close()
		<-done
		return s.cmds
	}
}

func (s *fakeUpstream) send(lines ...string) {
	for _, l := range lines {
		if _, err := io.WriteString(s.conn, l+"\r\n"); err != nil {
			return
		}
	}
}

// command reads one command, answering synchronising literals with a
// continuation. ok is false when the proxy hung up.
func (s *fakeUpstream) command() (cmd string, ok bool) {
	var b strings.Builder
	for {
		line, err := s.r.ReadString('\n')
		if err != nil {
			return b.String(), false
		}
		line = strings.TrimSuffix(line, "\r\n")
		n, sync, isLiteral := fakeLiteral(line)
		b.WriteString(line)
		if !isLiteral {
			s.cmds = append(s.cmds, b.String())
			return b.String(), true
		}
		if sync {
			s.send("+ go ahead")
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(s.r, buf); err != nil {
			return b.String(), false
		}
		b.WriteString("\r\n")
		b.Write(buf)
	}
}

// fakeLiteral recognises a literal header at the end of a line.
func fakeLiteral(line string) (n int, sync, ok bool) {
	open := strings.LastIndexByte(line, '{')
	if open < 0 || !strings.HasSuffix(line, "}") {
		return 0, false, false
	}
	size := line[open+1 : len(line)-1]
	sync = !strings.HasSuffix(size, "+")
	n, err := strconv.Atoi(strings.TrimSuffix(size, "+"))
	return n, sync, err == nil
}

// expect reads a command and answers it with the lines for its tag.
func (s *fakeUpstream) expect(want string, reply ...string) bool {
	s.t.Helper()
	cmd, ok := s.command()
	if !ok {
		s.t.Errorf("proxy hung up, want %q", want)
		return false
	}
	if cmd != want {
		s.t.Errorf("proxy sent %q, want %q", cmd, want)
		return false
	}
	s.send(reply...)
	return true
}

// drain records whatever else the proxy sends until it hangs up.
func (s *fakeUpstream) drain() {
	for {
		if _, ok := s.command(); !ok {
			return
		}
	}
}

func (s *fakeUpstream) startTLS() bool {
	tc := tls.Server(s.conn, s.tls)
	if err := tc.Handshake(); err != nil {
		s.t.Errorf("fake upstream TLS handshake: %v", err)
		return false
	}
	s.conn = tc
	s.r = bufio.NewReader(tc)
	return true
}

const (
	masterPlain = "alice\x00master\x00master-pw"
	okLoggedIn  = "OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in"
)

func storedPassword(pw string) func(context.Context, string) (string, error) {
	return func(_ context.Context, user string) (string, error) {
		if user != "alice" {
			return "", errors.New("no such user")
		}
		return pw, nil
	}
}

func TestUpstreamLogin(t *testing.T) {
	serverTLS, clientTLS := testpeer.TLS(t)
	master := Config{UpstreamCredential: proxy.UpstreamCredential{MasterUser: "master", MasterPassword: "master-pw"}}
	stored := Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: storedPassword("pw \"q\"")}}
	tests := []struct {
		name     string
		cfg      Config
		user     string
		script   func(s *fakeUpstream)
		wantCaps []string // nil: the login must fail with ErrUpstream
		wantErr  error    // and, when set, with this error too
		wantCmds []string // nil: whatever the script checked
	}{
		{"master, SASL-IR, ID", Config{UpstreamCredential: proxy.UpstreamCredential{MasterUser: "master", MasterPassword: "master-pw"}, SendID: true}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1 SASL-IR ID AUTH=PLAIN] ready")
			_ = s.expect(`P1 ID ("x-originating-ip" "192.0.2.7" "x-originating-port" "4242" "x-session-id" "s1")`,
				`* ID ("name" "Dovecot")`, "P1 OK ID completed") &&
				s.expect("P2 AUTHENTICATE PLAIN "+b64(masterPlain), "P2 "+okLoggedIn)
		}, []string{"IMAP4rev1", "IDLE", "MOVE"}, nil, nil},
		{"master, continuation, caps asked", master, "alice", func(s *fakeUpstream) {
			s.send("* OK ready")
			_ = s.expect("P1 CAPABILITY", "* CAPABILITY IMAP4rev1 AUTH=PLAIN", "P1 OK done") &&
				s.expect("P2 AUTHENTICATE PLAIN", "+ ") &&
				s.expect(b64(masterPlain), "P2 OK Logged in") &&
				s.expect("P3 CAPABILITY", "* CAPABILITY IMAP4rev1 IDLE", "P3 OK done")
		}, []string{"IMAP4rev1", "IDLE"}, nil, nil},
		{"stored, quoted, untagged caps", stored, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			_ = s.expect(`P1 LOGIN "alice" "pw \"q\""`, "* CAPABILITY IMAP4rev1 MOVE", "P1 OK Logged in")
		}, []string{"IMAP4rev1", "MOVE"}, nil, nil},
		{"stored, 8-bit, sync literal", Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: storedPassword("pässwd")}}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			_ = s.expect("P1 LOGIN \"alice\" {7}\r\npässwd", "P1 "+okLoggedIn)
		}, []string{"IMAP4rev1", "IDLE", "MOVE"}, nil, nil},
		{"stored, literal refused", Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: storedPassword("pässwd")}}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			line, _ := s.r.ReadString('\n')
			s.cmds = append(s.cmds, strings.TrimSuffix(line, "\r\n"))
			s.send("P1 NO too big")
			s.drain()
		}, nil, errUpstreamRefused, []string{"P1 LOGIN \"alice\" {7}"}},
		{"starttls", Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamTLS: clientTLS, MasterUser: "master", MasterPassword: "master-pw"}}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1 STARTTLS LOGINDISABLED] ready")
			// Injected after the OK in the same segment: must be discarded.
			_ = s.expect("P1 STARTTLS", "P1 OK Begin TLS\r\n* CAPABILITY IMAP4rev1 SASL-IR") &&
				s.startTLS() &&
				s.expect("P2 CAPABILITY", "* CAPABILITY IMAP4rev1 AUTH=PLAIN", "P2 OK done") &&
				s.expect("P3 AUTHENTICATE PLAIN", "+ ") &&
				s.expect(b64(masterPlain), "P3 "+okLoggedIn)
		}, []string{"IMAP4rev1", "IDLE", "MOVE"}, nil, nil},
		{"starttls, untrusted certificate (P5)", Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamTLS: &tls.Config{ServerName: "127.0.0.1"}, MasterUser: "master", MasterPassword: "master-pw"}}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1 STARTTLS SASL-IR] ready")
			if s.expect("P1 STARTTLS", "P1 OK Begin TLS") {
				// The proxy refuses the certificate, so this handshake fails.
				_ = tls.Server(s.conn, s.tls).Handshake()
			}
		}, nil, nil, []string{"P1 STARTTLS"}},
		{"starttls not offered", Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamTLS: clientTLS, UpstreamPassword: storedPassword("pw")}}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1 AUTH=PLAIN] ready")
			s.drain()
		}, nil, errNoUpstreamTLS, []string{}},
		{"starttls refused", Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamTLS: clientTLS, UpstreamPassword: storedPassword("pw")}}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1 STARTTLS] ready")
			_ = s.expect("P1 STARTTLS", "P1 BAD no")
			s.drain()
		}, nil, errUpstreamRefused, []string{"P1 STARTTLS"}},
		{"login refused", stored, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			_ = s.expect(`P1 LOGIN "alice" "pw \"q\""`, "P1 NO [AUTHENTICATIONFAILED] Authentication failed.")
			s.drain()
		}, nil, proxy.ErrLoginRefused, []string{`P1 LOGIN "alice" "pw \"q\""`}},
		{"ID refused, login goes on", Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: storedPassword("pw")}, SendID: true}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1 ID] ready")
			_ = s.expect(`P1 ID ("x-originating-ip" "192.0.2.7" "x-originating-port" "4242" "x-session-id" "s1")`, "P1 BAD unknown command") &&
				s.expect(`P2 LOGIN "alice" "pw"`, "P2 "+okLoggedIn)
		}, []string{"IMAP4rev1", "IDLE", "MOVE"}, nil, nil},
		{"ID not advertised, not sent", Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: storedPassword("pw")}, SendID: true}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			_ = s.expect(`P1 LOGIN "alice" "pw"`, "P1 "+okLoggedIn)
		}, []string{"IMAP4rev1", "IDLE", "MOVE"}, nil, []string{`P1 LOGIN "alice" "pw"`}},
		{"PREAUTH greeting", stored, "alice", func(s *fakeUpstream) {
			s.send("* PREAUTH [CAPABILITY IMAP4rev1] logged in as root")
			s.drain()
		}, nil, errUpstreamGreet, []string{}},
		{"BYE greeting", stored, "alice", func(s *fakeUpstream) {
			s.send("* BYE too busy")
			s.drain()
		}, nil, errUpstreamGreet, []string{}},
		{"garbage greeting", stored, "alice", func(s *fakeUpstream) {
			s.send("HTTP/1.1 400 Bad Request")
			s.drain()
		}, nil, errUpstreamGreet, []string{}},
		{"BYE during login", stored, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			_ = s.expect(`P1 LOGIN "alice" "pw \"q\""`, "* BYE shutting down")
			s.drain()
		}, nil, errUpstreamBye, nil},
		{"10 MB line", stored, "alice", func(s *fakeUpstream) {
			// The proxy stops reading and hangs up; the write then fails.
			_, _ = io.WriteString(s.conn, "* OK "+strings.Repeat("x", 10<<20))
			s.drain()
		}, nil, errUpstreamLine, []string{}},
		{"CRLF in user (P4)", stored, "alice\r\nx DELETE INBOX", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			s.drain()
		}, nil, errUnencodable, []string{}},
		{"CRLF in stored password (P4)", Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: storedPassword("pw\r\nx DELETE INBOX")}}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			s.drain()
		}, nil, errUnencodable, []string{}},
		{"stored password unavailable", stored, "bob", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			s.drain()
		}, nil, nil, []string{}},
		{"no credential configured", Config{}, "alice", func(s *fakeUpstream) {
			s.send("* OK [CAPABILITY IMAP4rev1] ready")
			s.drain()
		}, nil, errNoCredential, []string{}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			up, wait := runFake(t, serverTLS, tt.script)
			res, err := New(tt.cfg).UpstreamLogin(t.Context(), up, tt.user, testClientInfo)
			cmds := wait()
			if tt.wantErr != nil || tt.wantCaps == nil {
				if !errors.Is(err, proxy.ErrUpstream) || tt.wantErr != nil && !errors.Is(err, tt.wantErr) {
					t.Fatalf("err %v, want %v wrapping %v", err, tt.wantErr, proxy.ErrUpstream)
				}
			} else if err != nil {
				t.Fatalf("UpstreamLogin: %v", err)
			}
			if strings.Join(res.Capabilities, " ") != strings.Join(tt.wantCaps, " ") {
				t.Errorf("capabilities %q, want %q", res.Capabilities, tt.wantCaps)
			}
			if tt.wantCmds != nil && strings.Join(cmds, "\n") != strings.Join(tt.wantCmds, "\n") {
				t.Errorf("upstream saw %q, want %q", cmds, tt.wantCmds)
			}
			for _, c := range cmds {
				if strings.Contains(c, "DELETE") {
					t.Errorf("a second command reached the upstream: %q", c)
				}
			}
		})
	}
}

func TestUpstreamLoginContext(t *testing.T) {
	accepted := make(chan struct{})
	up, wait := runFake(t, nil, func(s *fakeUpstream) {
		close(accepted)
		s.drain() // never greets
	})
	ctx, cancel := context.WithCancel(t.Context())
	errc := make(chan error, 1)
	go func() {
		_, err := testProtocol().UpstreamLogin(ctx, up, "alice", testClientInfo)
		errc <- err
	}()
	<-accepted
	cancel()
	err := <-errc
	wait()
	if !errors.Is(err, proxy.ErrUpstream) || !errors.Is(err, context.Canceled) {
		t.Fatalf("err %v, want ErrUpstream and context.Canceled", err)
	}
}

func TestUpstreamRemembersCapabilities(t *testing.T) {
	p := New(Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: storedPassword("pw")}})
	up, wait := runFake(t, nil, func(s *fakeUpstream) {
		s.send("* OK [CAPABILITY IMAP4rev1 IMAP4rev2 LITERAL+] ready")
		_ = s.expect(`P1 LOGIN "alice" "pw"`, "P1 "+okLoggedIn)
	})
	if _, err := p.UpstreamLogin(t.Context(), up, "alice", testClientInfo); err != nil {
		t.Fatal(err)
	}
	wait()
	c := newClient(t, p, fronttest.Implicit)
	want := "* OK [CAPABILITY IMAP4rev1 IMAP4rev2 SASL-IR LITERAL- ID AUTH=PLAIN AUTH=LOGIN] postern ready"
	if c.greeting != want {
		t.Fatalf("greeting %q, want %q", c.greeting, want)
	}
}
