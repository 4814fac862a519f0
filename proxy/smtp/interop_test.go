package smtp_test

import (
	"crypto/tls"
	"net"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/internal/smtpclient"
	"github.com/postern-dev/postern/internal/testpeer"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/smtp"
)

// appPassword is what every test client logs in to postern with; the
// fake authenticators decide what it means.
const appPassword = "abcdefghijklmnopqrstuvwx"

// interop is postern's submission front-end, on an implicit-TLS and a
// STARTTLS listener with one certificate, in front of a private Postfix.
type interop struct {
	postfix   *testpeer.PostfixPeer
	implicit  *fronttest.Front // port 465's role
	starttls  *fronttest.Front // port 587's role
	clientTLS *tls.Config
	certFile  string
	registry  *proxy.Registry
}

// interopSetup says what the front-ends run with; zero values pick
// GrantAll and XCLIENT.
type interopSetup struct {
	cfg     smtp.Config
	auth    proxy.Authenticator
	postfix testpeer.PostfixOptions
}

func startInterop(t *testing.T, s interopSetup) *interop {
	t.Helper()
	pf := testpeer.Postfix(t, s.postfix)
	serverTLS, clientTLS, certFile := testpeer.TLSFile(t)
	if s.auth == nil {
		s.auth = fronttest.GrantAll{}
	}
	in := &interop{postfix: pf, clientTLS: clientTLS, certFile: certFile, registry: proxy.NewRegistry()}
	p := smtp.New(s.cfg)
	start := func(implicit bool) *fronttest.Front {
		return fronttest.Start(t, proxy.ServerConfig{
			Protocol: p, Auth: s.auth, Registry: in.registry, TLS: serverTLS, ImplicitTLS: implicit,
			Upstream: proxy.Upstream{Address: pf.Addr, Security: proxy.None},
		})
	}
	in.implicit, in.starttls = start(true), start(false)
	return in
}

// dial connects a go-smtp client, over implicit TLS or with STARTTLS, and
// returns it with the local port it came from.
func (in *interop) dial(t *testing.T, implicit bool) (*gosmtp.Client, int) {
	t.Helper()
	var c *gosmtp.Client
	var conn net.Conn
	var err error
	if implicit {
		conn, err = tls.Dial("tcp", in.implicit.Addr, in.clientTLS)
		if err == nil {
			c = gosmtp.NewClient(conn)
		}
	} else {
		conn, err = net.Dial("tcp", in.starttls.Addr)
		if err == nil {
			c, err = gosmtp.NewClientStartTLS(conn, in.clientTLS)
		}
	}
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	t.Cleanup(func() { c.Close() })
	return c, conn.LocalAddr().(*net.TCPAddr).Port
}

// testMessage is a small message whose subject tells it apart.
func testMessage(from, to, subject string) string {
	return smtpclient.Send{From: from, To: to, Subject: subject}.Message()
}

// delivered waits for the message with subject and checks that Postfix
// took it from user, as XCLIENT named it.
func (in *interop) delivered(t *testing.T, user, subject string) string {
	t.Helper()
	got := in.postfix.WaitMessage(t, subject)
	if !strings.Contains(got, "(Authenticated sender: "+user+")") {
		t.Errorf("message %q does not name %s as its authenticated sender:\n%s", subject, user, got)
	}
	return got
}

// sendGoSMTP sends one message with go-smtp's client and returns the local
// port it came from.
func (in *interop) sendGoSMTP(t *testing.T, implicit bool, auth sasl.Client, from, subject string) int {
	t.Helper()
	c, port := in.dial(t, implicit)
	if err := c.Auth(auth); err != nil {
		t.Fatalf("AUTH: %v", err)
	}
	to := "carol@example.test"
	if err := c.SendMail(from, []string{to}, strings.NewReader(testMessage(from, to, subject))); err != nil {
		t.Fatalf("send: %v", err)
	}
	if err := c.Quit(); err != nil {
		t.Fatalf("QUIT: %v", err)
	}
	return port
}

// TestInteropClients: real clients send through postern, on both
// listeners and with both mechanisms, to real Postfix; each message
// arrives from the app password's user, and Postfix's log names the
// client's own address and port (from XCLIENT), not postern's connection.
func TestInteropClients(t *testing.T) {
	t.Parallel()
	in := startInterop(t, interopSetup{})
	for _, implicit := range []bool{true, false} {
		for _, mech := range []string{"PLAIN", "LOGIN"} {
			listener := map[bool]string{true: "implicit-TLS", false: "STARTTLS"}[implicit]
			t.Run("go-smtp/"+listener+"/"+mech, func(t *testing.T) {
				subject := "go-smtp " + listener + " " + mech
				auth := sasl.NewPlainClient("", "alice", appPassword)
				if mech == "LOGIN" {
					auth = sasl.NewLoginClient("alice", appPassword)
				}
				port := in.sendGoSMTP(t, implicit, auth, "alice@example.test", subject)
				in.delivered(t, "alice", subject)
				in.postfix.WaitLog(t, "client=unknown[127.0.0.1]:"+strconv.Itoa(port)+", sasl_method=XCLIENT, sasl_username=alice")
			})
			for _, client := range smtpclient.External() {
				t.Run(client.Name+"/"+listener+"/"+mech, func(t *testing.T) {
					subject := client.Name + " " + listener + " " + mech
					client.Send(t, in.send(implicit, mech, subject))
					got := in.delivered(t, "alice", subject)
					// XCLIENT HELO= and the EHLO after it carry the
					// client's own name into Postfix's Received header.
					if client.Hello != "" && !strings.Contains(got, "Received: from "+client.Hello+" (unknown [127.0.0.1]") {
						t.Errorf("Received does not name the client %s:\n%s", client.Hello, got)
					}
				})
			}
		}
	}
	// Every delivery came through XCLIENT: none from postern's own address.
	if log := in.postfix.Log(t); strings.Contains(log, "sasl_method=PLAIN") || strings.Contains(log, "sasl_method=LOGIN") {
		t.Errorf("postfix saw a SASL login of its own:\n%s", log)
	}
}

// send is what an external client is told to send as alice.
func (in *interop) send(implicit bool, mech, subject string) smtpclient.Send {
	addr := in.starttls.Addr
	if implicit {
		addr = in.implicit.Addr
	}
	return smtpclient.Send{Addr: addr, Implicit: implicit, CAFile: in.certFile, Mech: mech, User: "alice", Password: appPassword,
		From: "alice@example.test", To: "carol@example.test", Subject: subject}
}

// TestInteropXClientAtOnce: real Postfix takes XCLIENT right after its
// greeting. The first login learns from Postfix's EHLO answer that it
// offers XCLIENT; the next one sends it at once, and Postfix counts one
// EHLO for it instead of two. (Postfix sums a successful XCLIENT up as
// "xclient=0/1": it starts the session over.)
func TestInteropXClientAtOnce(t *testing.T) {
	t.Parallel()
	in := startInterop(t, interopSetup{})
	for _, want := range []string{"ehlo=2 xclient=0/1 quit=1 ", "ehlo=1 xclient=0/1 quit=1 "} {
		c := in.rawLogin(t, "alice")
		c.Transact("QUIT", "221 ", "221 ")
		if got := in.postfixSession(t, c); !strings.HasPrefix(got, want) {
			t.Errorf("postfix summed the session up as %q, want it to start with %q", got, want)
		}
	}
}
