// Package smtpclient sends a message with the submission clients a person
// is likely to point at postern (swaks, msmtp, curl, Python's smtplib, and
// go-smtp's client), each verifying the server's certificate, for the
// tests that prove those clients work through postern. A client that is
// not installed skips the test, unless POSTERN_REQUIRE_PEERS=1.
package smtpclient

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	gosmtp "github.com/emersion/go-smtp"

	"github.com/postern-dev/postern/internal/testpeer"
)

// Timeout bounds one client's whole session: generous for two shared
// cores under the race detector, and only there to fail instead of hang.
const Timeout = 30 * time.Second

// Send says what one client sends, and where.
type Send struct {
	Addr     string // the listener, host:port
	Implicit bool   // TLS from the first byte (465) rather than STARTTLS (587)
	CAFile   string // PEM certificate the client trusts for Addr
	Mech     string // "PLAIN" or "LOGIN"
	User     string
	Password string
	From, To string
	Subject  string
	// Source is the local address to connect from ("127.0.0.5"), so that
	// a test can tell this client's connection apart; "" lets the system
	// choose.
	Source string
}

// Message is the message Send carries: small, its subject telling it apart.
func (s Send) Message() string {
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nHello from %s.\r\n", s.From, s.To, s.Subject, s.Subject)
}

// Client is one submission client.
type Client struct {
	Name  string
	Hello string // the name it says EHLO with
	send  func(ctx context.Context, t testing.TB, s Send) error
}

// Send sends one message with the client and fails t if it could not.
func (c Client) Send(t testing.TB, s Send) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), Timeout)
	defer cancel()
	if err := c.send(ctx, t, s); err != nil {
		t.Fatalf("%s: %v", c.Name, err)
	}
}

// All are every client: the external programs and go-smtp's.
func All() []Client { return append(External(), GoSMTP()) }

// External are the client programs.
func External() []Client {
	return []Client{
		{Name: "swaks", Hello: "swaks.example", send: external("swaks", swaksArgs, nil)},
		{Name: "msmtp", Hello: "msmtp.example", send: external("msmtp", msmtpArgs, Send.Message)},
		{Name: "curl", Hello: "", send: external("curl", curlArgs, Send.Message)},
		{Name: "python3", Hello: "python.example", send: external("python3", pythonArgs, Send.Message)},
	}
}

func swaksArgs(s Send) []string {
	tlsFlag := "--tls"
	if s.Implicit {
		tlsFlag = "--tls-on-connect"
	}
	args := []string{"--server", s.Addr, tlsFlag, "--tls-verify", "--tls-ca-path", s.CAFile,
		"--auth", s.Mech, "--auth-user", s.User, "--auth-password", s.Password,
		"--from", s.From, "--to", s.To, "--header", "Subject: " + s.Subject,
		"--helo", "swaks.example", "--timeout", "20"}
	if s.Source != "" {
		args = append(args, "--local-interface", s.Source)
	}
	return args
}

func msmtpArgs(s Send) []string {
	host, port, _ := net.SplitHostPort(s.Addr)
	starttls := "on"
	if s.Implicit {
		starttls = "off"
	}
	args := []string{"--host", host, "--port", port, "--tls=on", "--tls-starttls=" + starttls,
		"--tls-trust-file=" + s.CAFile, "--auth=" + strings.ToLower(s.Mech), "--user=" + s.User,
		"--passwordeval=echo " + s.Password, "--from=" + s.From, "--domain=msmtp.example"}
	if s.Source != "" {
		args = append(args, "--source-ip="+s.Source)
	}
	return append(args, s.To)
}

func curlArgs(s Send) []string {
	url := "smtp://" + s.Addr
	if s.Implicit {
		url = "smtps://" + s.Addr
	}
	args := []string{"--silent", "--show-error", "--url", url, "--ssl-reqd", "--cacert", s.CAFile,
		"--user", s.User + ":" + s.Password, "--login-options", "AUTH=" + s.Mech,
		"--mail-from", s.From, "--mail-rcpt", s.To, "--upload-file", "-"}
	if s.Source != "" {
		args = append(args, "--interface", s.Source)
	}
	return args
}

func pythonArgs(s Send) []string {
	host, port, _ := net.SplitHostPort(s.Addr)
	return []string{"-c", pythonSend, host, port, strconv.FormatBool(s.Implicit), s.Mech, s.CAFile, s.User, s.Password,
		s.From, s.To, s.Source}
}

// pythonSend is Python's smtplib: SMTP_SSL or SMTP with starttls, one
// mechanism forced.
const pythonSend = `
import smtplib, ssl, sys
host, port, implicit, mech, cafile, user, password, sender, rcpt, source = sys.argv[1:]
ctx = ssl.create_default_context(cafile=cafile)
src = (source, 0) if source else None
if implicit == "true":
    s = smtplib.SMTP_SSL(host, int(port), context=ctx, timeout=20, source_address=src)
else:
    s = smtplib.SMTP(host, int(port), timeout=20, source_address=src)
    s.starttls(context=ctx)
s.ehlo("python.example")
s.user, s.password = user, password
s.auth(mech, s.auth_plain if mech == "PLAIN" else s.auth_login)
s.sendmail(sender, [rcpt], sys.stdin.read())
s.quit()
`

// external runs a client program with args, and stdin when it reads the
// message there.
func external(name string, args func(Send) []string, stdin func(Send) string) func(context.Context, testing.TB, Send) error {
	return func(ctx context.Context, t testing.TB, s Send) error {
		bin := testpeer.RequirePeer(t, name)
		cmd := exec.CommandContext(ctx, bin, args(s)...)
		if stdin != nil {
			cmd.Stdin = strings.NewReader(stdin(s))
		}
		if out, err := cmd.CombinedOutput(); err != nil {
			return fmt.Errorf("%w\n%s", err, out)
		}
		return nil
	}
}

// GoSMTP is go-smtp's client, as Go programs send mail.
func GoSMTP() Client {
	return Client{Name: "go-smtp", Hello: "localhost", send: func(ctx context.Context, _ testing.TB, s Send) error {
		c, err := dialGoSMTP(ctx, s)
		if err != nil {
			return err
		}
		defer c.Close()
		auth := sasl.NewPlainClient("", s.User, s.Password)
		if s.Mech == "LOGIN" {
			auth = sasl.NewLoginClient(s.User, s.Password)
		}
		if err := c.Auth(auth); err != nil {
			return fmt.Errorf("AUTH: %w", err)
		}
		if err := c.SendMail(s.From, []string{s.To}, strings.NewReader(s.Message())); err != nil {
			return fmt.Errorf("send: %w", err)
		}
		return c.Quit()
	}}
}

// dialGoSMTP connects over implicit TLS or with STARTTLS, trusting only
// s.CAFile.
func dialGoSMTP(ctx context.Context, s Send) (*gosmtp.Client, error) {
	cfg, err := tlsConfig(s)
	if err != nil {
		return nil, err
	}
	d := &net.Dialer{}
	if s.Source != "" {
		d.LocalAddr = &net.TCPAddr{IP: net.ParseIP(s.Source)}
	}
	conn, err := d.DialContext(ctx, "tcp", s.Addr)
	if err != nil {
		return nil, err
	}
	if deadline, ok := ctx.Deadline(); ok {
		conn.SetDeadline(deadline)
	}
	if s.Implicit {
		return gosmtp.NewClient(tls.Client(conn, cfg)), nil
	}
	c, err := gosmtp.NewClientStartTLS(conn, cfg)
	if err != nil {
		conn.Close()
	}
	return c, err
}

func tlsConfig(s Send) (*tls.Config, error) {
	pem, err := os.ReadFile(s.CAFile)
	if err != nil {
		return nil, err
	}
	roots := x509.NewCertPool()
	if !roots.AppendCertsFromPEM(pem) {
		return nil, errors.New("no certificate in " + s.CAFile)
	}
	host, _, _ := net.SplitHostPort(s.Addr)
	return &tls.Config{RootCAs: roots, ServerName: host, MinVersion: tls.VersionTLS12}, nil
}
