package smtp_test

import (
	"context"
	"crypto/tls"
	"fmt"
	"net"
	"os/exec"
	"strconv"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/postern-dev/postern/internal/fronttest"
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
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nHello from %s.\r\n", from, to, subject, subject)
}

// delivered waits for the message with subject and checks that Postfix
// took it from user, as XCLIENT named it.
func (in *interop) delivered(t *testing.T, user, subject string) string {
	t.Helper()
	var got string
	for n := 1; got == ""; n++ {
		for _, m := range in.postfix.WaitDelivered(t, n) {
			if strings.Contains(m, "Subject: "+subject+"\r\n") || strings.Contains(m, "Subject: "+subject+"\n") {
				got = m
			}
		}
	}
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
			for _, client := range externalClients {
				t.Run(client.name+"/"+listener+"/"+mech, func(t *testing.T) {
					subject := client.name + " " + listener + " " + mech
					in.run(t, client, implicit, mech, subject)
					got := in.delivered(t, "alice", subject)
					// XCLIENT HELO= and the EHLO after it carry the
					// client's own name into Postfix's Received header.
					if client.hello != "" && !strings.Contains(got, "Received: from "+client.hello+" (unknown [127.0.0.1]") {
						t.Errorf("Received does not name the client %s:\n%s", client.hello, got)
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

// externalClient is a program that sends one message; args builds its
// command line and stdin its input.
type externalClient struct {
	name  string
	hello string // the name it says EHLO with; empty: not checked
	args  func(c clientRun) []string
	stdin func(c clientRun) string
}

// clientRun is what an external client is told.
type clientRun struct {
	addr, host, port string
	implicit         bool
	mech, subject    string
	certFile         string
}

func (c clientRun) message() string {
	return testMessage("alice@example.test", "carol@example.test", c.subject)
}

// externalClients are the submission clients a person is likely to point
// at postern, each verifying postern's certificate.
var externalClients = []externalClient{
	{name: "swaks", hello: "swaks.example", args: func(c clientRun) []string {
		tlsFlag := "--tls"
		if c.implicit {
			tlsFlag = "--tls-on-connect"
		}
		return []string{"--server", c.addr, tlsFlag, "--tls-verify", "--tls-ca-path", c.certFile,
			"--auth", c.mech, "--auth-user", "alice", "--auth-password", appPassword,
			"--from", "alice@example.test", "--to", "carol@example.test", "--header", "Subject: " + c.subject,
			"--helo", "swaks.example", "--timeout", "20"}
	}},
	{name: "msmtp", hello: "msmtp.example", args: func(c clientRun) []string {
		starttls := "on"
		if c.implicit {
			starttls = "off"
		}
		return []string{"--host", c.host, "--port", c.port, "--tls=on", "--tls-starttls=" + starttls,
			"--tls-trust-file=" + c.certFile, "--auth=" + strings.ToLower(c.mech), "--user=alice",
			"--passwordeval=echo " + appPassword, "--from=alice@example.test", "--domain=msmtp.example",
			"carol@example.test"}
	}, stdin: clientRun.message},
	{name: "curl", args: func(c clientRun) []string {
		url := "smtp://" + c.addr
		if c.implicit {
			url = "smtps://" + c.addr
		}
		return []string{"--silent", "--show-error", "--url", url, "--ssl-reqd", "--cacert", c.certFile,
			"--user", "alice:" + appPassword, "--login-options", "AUTH=" + c.mech,
			"--mail-from", "alice@example.test", "--mail-rcpt", "carol@example.test", "--upload-file", "-"}
	}, stdin: clientRun.message},
	{name: "python3", hello: "python.example", args: func(c clientRun) []string {
		return []string{"-c", pythonSend, c.host, c.port, strconv.FormatBool(c.implicit), c.mech, c.certFile, appPassword}
	}, stdin: clientRun.message},
}

// pythonSend is Python's smtplib: SMTP_SSL or SMTP with starttls, one
// mechanism forced.
const pythonSend = `
import smtplib, ssl, sys
host, port, implicit, mech, cafile, password = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
if implicit == "true":
    s = smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=20)
else:
    s = smtplib.SMTP(host, int(port), timeout=20)
    s.starttls(context=ctx)
s.ehlo("python.example")
s.user, s.password = "alice", password
s.auth(mech, s.auth_plain if mech == "PLAIN" else s.auth_login)
s.sendmail("alice@example.test", ["carol@example.test"], sys.stdin.read())
s.quit()
`

// run sends one message with an external client.
func (in *interop) run(t *testing.T, client externalClient, implicit bool, mech, subject string) {
	t.Helper()
	bin := testpeer.RequirePeer(t, client.name)
	addr := in.starttls.Addr
	if implicit {
		addr = in.implicit.Addr
	}
	host, port, _ := net.SplitHostPort(addr)
	c := clientRun{addr: addr, host: host, port: port, implicit: implicit, mech: mech, subject: subject,
		certFile: in.certFile}
	ctx, cancel := context.WithTimeout(t.Context(), fronttest.IOGuard)
	defer cancel()
	cmd := exec.CommandContext(ctx, bin, client.args(c)...)
	if client.stdin != nil {
		cmd.Stdin = strings.NewReader(client.stdin(c))
	}
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("%s: %v\n%s", client.name, err, out)
	}
}
