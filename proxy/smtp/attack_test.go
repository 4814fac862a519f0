package smtp_test

import (
	"context"
	"crypto/tls"
	"encoding/base64"
	"errors"
	"io"
	"net"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/internal/linetest"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/smtp"
)

// rawLogin opens an implicit-TLS connection to postern and logs in as
// user, returning the raw client.
func (in *interop) rawLogin(t *testing.T, user string) *linetest.Client {
	t.Helper()
	c := linetest.Dial(t, in.implicit.Addr, in.clientTLS, true)
	c.Expect("220 ")
	c.Transact("EHLO attacker.example", "250 ", "250 ")
	c.Transact("AUTH PLAIN "+b64("\x00"+user+"\x00"+appPassword), "235 ", "235 ")
	return c
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

// settle sends a control message through a fresh session and waits for it:
// once it arrived, whatever Postfix accepted before it has arrived too.
func (in *interop) settle(t *testing.T) []string {
	t.Helper()
	in.sendGoSMTP(t, true, sasl.NewPlainClient("", "alice", appPassword), "alice@example.test", "control "+t.Name())
	in.delivered(t, "alice", "control "+t.Name())
	return in.postfix.Delivered(t)
}

// noMessageFrom fails t if a message from user arrived.
func (in *interop) noMessageFrom(t *testing.T, user string) {
	t.Helper()
	for _, m := range in.settle(t) {
		if strings.Contains(m, "(Authenticated sender: "+user+")") {
			t.Errorf("a message from %s arrived:\n%s", user, m)
		}
	}
}

// tryWrite writes what a client would, ignoring that postern may have
// hung up already.
func tryWrite(c *linetest.Client, s string) {
	c.Conn().SetWriteDeadline(time.Now().Add(fronttest.IOGuard))
	_, _ = io.WriteString(c.Conn(), s)
}

// postfixSession returns Postfix's summary of the session from the
// client's port (smtpd_client_port_logging), e.g. "ehlo=2 xclient=1
// commands=3".
func (in *interop) postfixSession(t *testing.T, c *linetest.Client) string {
	t.Helper()
	mark := "disconnect from unknown[127.0.0.1]:" + strconv.Itoa(c.Conn().LocalAddr().(*net.TCPAddr).Port) + " "
	log := in.postfix.WaitLog(t, mark)
	_, rest, _ := strings.Cut(log, mark)
	line, _, _ := strings.Cut(rest, "\n")
	return line
}

// TestP12_NoOtherIdentityThroughTheRelay: Postfix honours XCLIENT from any
// client address in smtpd_authorized_xclient_hosts, and a client of postern
// may well be in them (here it is: loopback). alice, logged in, tries to
// become bob (XCLIENT, XFORWARD), or to authenticate anew (AUTH), or to hide
// the rest in TLS (STARTTLS): the session ends, and no message from bob ever
// arrives.
func TestP12_NoOtherIdentityThroughTheRelay(t *testing.T) {
	t.Parallel()
	in := startInterop(t, interopSetup{})
	d := in.postfix.Dovecot
	attacks := []struct {
		name string
		send string
	}{
		{"XCLIENT", "XCLIENT LOGIN=bob ADDR=127.0.0.1\r\n"},
		{"XCLIENT pipelined behind AUTH", ""},
		{"xclient in lower case", " xclient login=bob\r\n"},
		{"XCLIENT hidden after a bare LF", "NOOP\nXCLIENT LOGIN=bob\r\n"},
		{"XCLIENT behind a smuggled end of data", "MAIL FROM:<alice@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n"},
		{"AUTH as bob", "AUTH PLAIN " + b64("\x00bob\x00"+d.Users["bob"]) + "\r\n"},
		{"STARTTLS", "STARTTLS\r\n"},
	}
	for _, a := range attacks {
		t.Run(a.name, func(t *testing.T) {
			var c *linetest.Client
			if a.send == "" {
				c = linetest.Dial(t, in.implicit.Addr, in.clientTLS, true)
				c.Expect("220 ")
				c.Transact("EHLO attacker.example", "250 ", "250 ")
				c.Write("AUTH PLAIN " + b64("\x00alice\x00"+appPassword) + "\r\nXCLIENT LOGIN=bob ADDR=127.0.0.1\r\n")
				c.Expect("235 ")
			} else {
				c = in.rawLogin(t, "alice")
				c.Write(a.send)
			}
			if strings.HasSuffix(a.send, "DATA\r\n") {
				c.ExpectLines("250 2.1.0 Ok", "250 2.1.5 Ok")
				c.Expect("354 ")
				tryWrite(c, "Subject: smuggled\r\n\r\nx\n.\nXCLIENT LOGIN=bob ADDR=127.0.0.1\r\n")
			}
			// Whatever else a compliant Postfix would have needed from
			// here to take a message from bob:
			tryWrite(c, "EHLO attacker.example\r\nMAIL FROM:<bob@example.test>\r\nRCPT TO:<carol@example.test>\r\nDATA\r\n")
			tryWrite(c, "Subject: as bob\r\n\r\nHi.\r\n.\r\nQUIT\r\n")
			for {
				l, err := c.LineBefore(time.Now().Add(fronttest.IOGuard))
				if err != nil {
					break // postern hung up
				}
				if strings.HasPrefix(l, "221") {
					t.Fatalf("the session ran to QUIT: postern relayed %q", a.name)
				}
			}
			// Postfix saw postern's own XCLIENT, and none of the client's
			// XCLIENT, AUTH or STARTTLS.
			// (Postfix counts an XCLIENT as 0/1 even when it took it.)
			if got := in.postfixSession(t, c); !strings.Contains(got, "xclient=0/1 ") || strings.Contains(got, "auth=") || strings.Contains(got, "starttls=") {
				t.Errorf("postfix's summary of the session: %s", got)
			}
			in.noMessageFrom(t, "bob")
		})
	}
}

// TestP12_SenderMismatchRefused: who may send as whom stays Postfix's rule
// (smtpd_sender_login_maps with reject_sender_login_mismatch): alice,
// logged in through postern, cannot send as bob.
func TestP12_SenderMismatchRefused(t *testing.T) {
	t.Parallel()
	in := startInterop(t, interopSetup{})
	c, _ := in.dial(t, true)
	if err := c.Auth(sasl.NewPlainClient("", "alice", appPassword)); err != nil {
		t.Fatal(err)
	}
	err := c.SendMail("bob@example.test", []string{"carol@example.test"}, strings.NewReader(testMessage("bob@example.test", "carol@example.test", "as bob")))
	var se *gosmtp.SMTPError
	if !errors.As(err, &se) || se.Code != 553 {
		t.Fatalf("send as bob: %v, want 553 from Postfix", err)
	}
	in.postfix.WaitLog(t, "Sender address rejected: not owned by user alice")
	in.noMessageFrom(t, "bob")
}

// TestP5_NothingBeforeTheUpstreamLogin: AUTH, MAIL FROM and RCPT TO in one
// write, against a Postfix that refuses postern's XCLIENT: the client is
// told to try later, the mail commands get 530 from postern, and Postfix
// saw nothing but the login.
func TestP5_NothingBeforeTheUpstreamLogin(t *testing.T) {
	t.Parallel()
	in := startInterop(t, interopSetup{postfix: testpeer.PostfixOptions{ExtraConfig: "smtpd_authorized_xclient_hosts ="}})
	c := linetest.Dial(t, in.implicit.Addr, in.clientTLS, true)
	c.Expect("220 ")
	c.Transact("EHLO client.example", "250 ", "250 ")
	c.Write("AUTH PLAIN " + b64("\x00alice\x00"+appPassword) + "\r\nMAIL FROM:<alice@example.test>\r\nRCPT TO:<carol@example.test>\r\n")
	c.ExpectLines("454 4.7.0 Temporary authentication failure, try again later",
		"530 5.7.0 Authentication required", "530 5.7.0 Authentication required")
	c.Send("QUIT")
	c.ExpectLines("221 2.0.0 Bye")
	// Postfix offers XCLIENT only to authorized hosts, so postern stopped
	// after EHLO.
	log := in.postfix.WaitLog(t, "disconnect from localhost[127.0.0.1]")
	for _, l := range strings.Split(log, "\n") {
		// commands=0/0: the test peer's own readiness check.
		if strings.Contains(l, "disconnect from") && !strings.HasSuffix(l, " ehlo=1 commands=1") && !strings.HasSuffix(l, " commands=0/0") {
			t.Errorf("postfix saw more than postern's EHLO: %s", l)
		}
	}
}

// TestP4_NoInjectionUpstream: a user name carrying CR LF and a command,
// in PLAIN or LOGIN, is refused by postern like a wrong password, and the
// upstream never even gets a connection.
func TestP4_NoInjectionUpstream(t *testing.T) {
	t.Parallel()
	const smuggled = "alice\r\nRCPT TO:<mallory@example.test>"
	peer := testpeer.StartFault(t, testpeer.FaultBlackhole)
	front := fronttest.Start(t, proxy.ServerConfig{
		Protocol: smtp.New(smtp.Config{}), Auth: fronttest.GrantAll{}, ImplicitTLS: true,
		Upstream: proxy.Upstream{Address: peer.Addr, Security: proxy.None},
	})
	c := front.Dial(t)
	c.Expect("220 ")
	c.Transact("EHLO client.example", "250 ", "250 ")
	c.Send("AUTH PLAIN " + b64("\x00"+smuggled+"\x00"+appPassword))
	c.Expect("535-5.7.8 ")
	c.Expect("535 5.7.8 ")
	c.Send("AUTH LOGIN "+b64(smuggled), b64(appPassword))
	c.Expect("334 ")
	c.Expect("535-5.7.8 ")
	c.Expect("535 5.7.8 ")
	c.Send("QUIT")
	c.Expect("221 ")
	front.Stop()
	if got := peer.Received(); len(got) != 0 {
		t.Errorf("the upstream got %d connections: %q", len(got), got)
	}
}

// TestP6_TryAgainLater: with the store or the upstream down, the answer
// is 454, never 535.
func TestP6_TryAgainLater(t *testing.T) {
	cases := []struct {
		name     string
		auth     proxy.Authenticator
		upstream string
	}{
		{"store unavailable", authFunc(func(authstore.Attempt) (authstore.Grant, error) { return authstore.Grant{}, authstore.ErrUnavailable }), ""},
		{"upstream down", fronttest.GrantAll{}, testpeer.Fault(t, testpeer.FaultDown)},
		{"upstream silent", fronttest.GrantAll{}, testpeer.Fault(t, testpeer.FaultBlackhole)},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			addr := tc.upstream
			if addr == "" {
				addr = testpeer.Fault(t, testpeer.FaultDown)
			}
			front := fronttest.Start(t, proxy.ServerConfig{
				Protocol: smtp.New(smtp.Config{}), Auth: tc.auth, ImplicitTLS: true,
				Upstream: proxy.Upstream{Address: addr, Security: proxy.None},
				Limits:   proxy.Limits{LoginTimeout: time.Second},
			})
			c := front.Dial(t)
			c.Expect("220 ")
			c.Transact("EHLO client.example", "250 ", "250 ")
			c.Send("AUTH PLAIN " + b64("\x00alice\x00"+appPassword))
			c.ExpectLines("454 4.7.0 Temporary authentication failure, try again later")
		})
	}
}

// authFunc is an Authenticator made of one function.
type authFunc func(authstore.Attempt) (authstore.Grant, error)

func (f authFunc) Authenticate(_ context.Context, a authstore.Attempt) (authstore.Grant, error) {
	return f(a)
}

// TestP10_RevokedDuringData: a kick in the middle of a 50 MB message cuts
// the session within a second, and the message is never delivered.
func TestP10_RevokedDuringData(t *testing.T) {
	t.Parallel()
	in := startInterop(t, interopSetup{postfix: testpeer.PostfixOptions{ExtraConfig: "message_size_limit = 0\nvirtual_mailbox_limit = 0"}})
	c := in.rawLogin(t, "alice")
	c.Send("MAIL FROM:<alice@example.test>", "RCPT TO:<carol@example.test>", "DATA")
	c.ExpectLines("250 2.1.0 Ok", "250 2.1.5 Ok")
	c.Expect("354 ")
	c.Write("Subject: big\r\n\r\n")
	line := strings.Repeat("x", 998) + "\r\n"
	chunk := strings.Repeat(line, 1024) // 1 MB
	kicked := make(chan time.Time, 1)
	written := make(chan int, 1)
	go func() {
		mb := 0
		defer func() { written <- mb }()
		for ; mb < 50; mb++ {
			if mb == 10 {
				kicked <- time.Now()
				if n := in.registry.Kick(proxy.Filter{Username: "alice"}, "credentials changed"); n != 1 {
					t.Errorf("kick ended %d sessions", n)
				}
			}
			c.Conn().SetWriteDeadline(time.Now().Add(fronttest.IOGuard))
			if _, err := io.WriteString(c.Conn(), chunk); err != nil {
				return
			}
		}
	}()
	kick := <-kicked
	// In the middle of a message a 421 would read as data: just the end.
	if rest := c.Rest(); rest != "" {
		t.Errorf("postern said %q in the middle of the message", rest)
	}
	if d := time.Since(kick); d > time.Second {
		t.Errorf("the session ended %v after the kick", d)
	}
	if mb := <-written; mb == 50 {
		t.Fatal("the whole message was written: the session was not cut")
	}
	in.postfix.WaitLog(t, "lost connection after DATA")
	for _, m := range in.settle(t) {
		if strings.Contains(m, "Subject: big") {
			t.Error("the cut message was delivered")
		}
	}
}

// TestP10_KickBetweenCommands: a kick of a session waiting between
// commands says 421 and hangs up within a second.
func TestP10_KickBetweenCommands(t *testing.T) {
	t.Parallel()
	in := startInterop(t, interopSetup{})
	c := in.rawLogin(t, "alice")
	c.Transact("NOOP", "250 ", "250 ")
	if n := in.registry.Kick(proxy.Filter{Username: "alice"}, "credentials changed"); n != 1 {
		t.Fatalf("kick ended %d sessions", n)
	}
	c.ExpectLines("421 4.7.0 credentials changed")
	if !c.ClosedWithin(time.Second) {
		t.Error("the kicked session stayed open")
	}
}

// TestP3_PreAuthDeadlineSession: a client that does not log in within
// the pre-auth deadline is told 421 and closed.
func TestP3_PreAuthDeadlineSession(t *testing.T) {
	front := fronttest.Start(t, proxy.ServerConfig{
		Protocol: smtp.New(smtp.Config{}), Auth: fronttest.GrantAll{}, ImplicitTLS: true,
		Upstream: proxy.Upstream{Address: testpeer.Fault(t, testpeer.FaultDown), Security: proxy.None},
		Limits:   proxy.Limits{PreAuthTimeout: time.Second},
	})
	c := front.Dial(t)
	c.Expect("220 ")
	c.Transact("EHLO slow.example", "250 ", "250 ")
	c.Write("NOOP") // and never the end of the line
	c.ExpectLines("421 4.7.0 login timeout")
	c.ExpectEOF(time.Now().Add(fronttest.IOGuard))
}

// TestShutdownBeforeLogin: a server shutting down says 421 to a client
// that has not logged in.
func TestShutdownBeforeLogin(t *testing.T) {
	front := fronttest.Start(t, proxy.ServerConfig{
		Protocol: smtp.New(smtp.Config{}), Auth: fronttest.GrantAll{}, ImplicitTLS: true,
		Upstream: proxy.Upstream{Address: testpeer.Fault(t, testpeer.FaultDown), Security: proxy.None},
	})
	c := front.Dial(t)
	c.Expect("220 ")
	front.Stop()
	c.ExpectLines("421 4.7.0 server shutting down")
}

// TestInteropMasterUser: with login = master, postern authenticates to
// Postfix as Dovecot's master user on the user's behalf, and Postfix takes
// the message from the user.
func TestInteropMasterUser(t *testing.T) {
	t.Parallel()
	d := testpeer.Dovecot(t, testpeer.DovecotOptions{})
	in := startInterop(t, interopSetup{
		cfg: smtp.Config{Login: smtp.LoginMaster, UpstreamCredential: proxy.UpstreamCredential{
			MasterUser: d.MasterUser, MasterPassword: d.MasterPassword}},
		postfix: testpeer.PostfixOptions{Dovecot: d, ExtraConfig: "smtpd_authorized_xclient_hosts ="},
	})
	in.sendGoSMTP(t, true, sasl.NewPlainClient("", "alice", appPassword), "alice@example.test", "via master user")
	in.delivered(t, "alice", "via master user")
	in.postfix.WaitLog(t, "sasl_method=PLAIN, sasl_username=alice")
}

// TestInteropUpstreamSTARTTLS: postern upgrades its connection to Postfix
// with STARTTLS and verifies Postfix's certificate; a certificate it does
// not trust makes the login fail with 454, and nothing is sent in the
// clear.
func TestInteropUpstreamSTARTTLS(t *testing.T) {
	t.Parallel()
	pf := testpeer.Postfix(t, testpeer.PostfixOptions{})
	for _, trusted := range []bool{true, false} {
		t.Run(map[bool]string{true: "trusted", false: "untrusted"}[trusted], func(t *testing.T) {
			upTLS := pf.ClientTLSConfig()
			if !trusted {
				_, upTLS = testpeer.TLS(t)
			}
			front := fronttest.Start(t, proxy.ServerConfig{
				Protocol: smtp.New(smtp.Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamTLS: upTLS}}),
				Auth:     fronttest.GrantAll{}, ImplicitTLS: true,
				Upstream: proxy.Upstream{Address: pf.Addr, Security: proxy.StartTLS},
			})
			conn, err := tlsDial(front)
			if err != nil {
				t.Fatal(err)
			}
			c := gosmtp.NewClient(conn)
			defer c.Close()
			err = c.Auth(sasl.NewPlainClient("", "alice", appPassword))
			var se *gosmtp.SMTPError
			switch {
			case trusted && err != nil:
				t.Fatalf("AUTH: %v", err)
			case !trusted && (!errors.As(err, &se) || se.Code != 454):
				t.Fatalf("AUTH with an untrusted upstream: %v, want 454", err)
			case trusted:
				if err := c.SendMail("alice@example.test", []string{"carol@example.test"}, strings.NewReader(testMessage("alice@example.test", "carol@example.test", "over TLS"))); err != nil {
					t.Fatal(err)
				}
				if got := pf.WaitDelivered(t, 1)[0]; !strings.Contains(got, "(Authenticated sender: alice)") {
					t.Errorf("delivered:\n%s", got)
				}
			}
		})
	}
}

func tlsDial(f *fronttest.Front) (net.Conn, error) {
	return tls.Dial("tcp", f.Addr, f.ClientTLS)
}
