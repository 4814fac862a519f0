package main

import (
	"encoding/base64"
	"encoding/json"
	"fmt"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/smtpclient"
	"github.com/postern-dev/postern/internal/testpeer"
)

// The answers postern's SMTP listeners give, as the e2e configuration's
// public_url makes them.
const (
	smtpFailure = "535-5.7.8 Authentication credentials invalid\r\n" +
		"535 5.7.8 Mail apps need an app password: https://mail.example.org/account\r\n"
	smtpTempErr = "454 4.7.0 Temporary authentication failure, try again later\r\n"
)

// e2eSMTP turns postern's SMTP listeners on, in front of a private Postfix
// whose SASL is the test's Dovecot.
type e2eSMTP struct {
	postfix *testpeer.PostfixPeer // nil: SMTP stays off
	master  bool                  // login = "master" rather than "xclient"
}

// startPostfix starts a Postfix that asks peer about SASL logins; extra is
// appended to its main.cf.
func startPostfix(t *testing.T, peer *testpeer.DovecotPeer, extra string) *testpeer.PostfixPeer {
	t.Helper()
	return testpeer.Postfix(t, testpeer.PostfixOptions{Dovecot: peer, ExtraConfig: extra})
}

// config is the [smtp] and [upstream.smtp] tables.
func (o e2eSMTP) config(peer *testpeer.DovecotPeer, masterFile string) string {
	if o.postfix == nil {
		return ""
	}
	login := `login = "xclient"`
	if o.master {
		login = e2eLogin(e2eOptions{}, peer, masterFile)
	}
	q := strconv.Quote
	return fmt.Sprintf(`
[smtp]
listen_tls = "127.0.0.1:0"
listen_starttls = "127.0.0.1:0"
hostname = "postern.example"

[upstream.smtp]
address = %s
security = "starttls"
ca_file = %s
%s
`, q(o.postfix.Addr), q(o.postfix.CAFile), login)
}

// smtpSend is what a client is told to send through the listener named
// ("smtps" or "smtp") at addr.
func smtpSend(listener, addr, certFile, user, secret, subject string) smtpclient.Send {
	return smtpclient.Send{Addr: addr, Implicit: listener == "smtps", CAFile: certFile, Mech: "PLAIN",
		User: user, Password: secret, From: user + "@example.test", To: "dana@example.test", Subject: subject}
}

// send is smtpSend for the in-process gateway.
func (e *e2e) send(listener, user, secret, subject string) smtpclient.Send {
	return smtpSend(listener, e.addr(listener), e.certFile, user, secret, subject)
}

// send is smtpSend for `postern serve`.
func (s *served) send(listener, user, secret, subject string) smtpclient.Send {
	return smtpSend(listener, s.addr(listener), filepath.Join(s.data, "tls", "cert.pem"), user, secret, subject)
}

// smtpWire connects to an SMTP listener from src, past the greeting
// (and STARTTLS on "smtp"), and says EHLO.
func (e *e2e) smtpWire(t *testing.T, listener, src string) *wire {
	t.Helper()
	w := e.dialWire(t, listener, src)
	w.expect("220 ")
	if listener == "smtp" {
		w.send("EHLO client.example")
		w.reply()
		w.send("STARTTLS")
		w.expect("220 ")
		w.startTLS(e.clientTLS())
	}
	w.send("EHLO client.example")
	w.reply()
	return w
}

// smtpTry says AUTH PLAIN on a fresh implicit-TLS connection and returns
// the whole answer.
func (e *e2e) smtpTry(t *testing.T, user, secret string) string {
	t.Helper()
	w := e.smtpWire(t, "smtps", "")
	defer w.conn.Close()
	return w.smtpAuth(user, secret)
}

// smtpAuth sends AUTH PLAIN with an initial response and returns the
// whole answer.
func (w *wire) smtpAuth(user, secret string) string {
	w.t.Helper()
	w.send("AUTH PLAIN " + base64.StdEncoding.EncodeToString([]byte("\x00"+user+"\x00"+secret)))
	return w.reply()
}

// reply reads one SMTP reply (RFC 5321 section 4.2: "ddd-" on every line
// but the last), CRLFs included.
func (w *wire) reply() string {
	w.t.Helper()
	var b strings.Builder
	for {
		line := w.line()
		b.WriteString(line)
		if len(line) < 4 || line[3] != '-' {
			return b.String()
		}
	}
}

// smtpWire is e2e.smtpWire for `postern serve`, over implicit TLS.
func (s *served) smtpWire(t *testing.T) *wire {
	t.Helper()
	w := s.dialTLS(t, "smtps")
	w.expect("220 ")
	w.send("EHLO client.example")
	w.reply()
	return w
}

// addSMTPUser creates user through the CLI of a running serve, with an
// account password and app passwords of the scopes given ("" for
// everything), and returns the app passwords as typed and their ids.
func (s *served) addSMTPUser(t *testing.T, user string, scopes ...string) (secrets, ids []string) {
	t.Helper()
	password := user + "-account-password"
	s.cli(t, password+"\n", "user", "add", user, "--password-stdin")
	s.secrets = append(s.secrets, w6Secret{"account password of " + user, user, password, ""})
	for i, scope := range scopes {
		args := []string{"app-password", "create", user, "--name", fmt.Sprintf("app %d", i)}
		if scope != "" {
			args = append(args, "--scope", scope)
		}
		typed := strings.ReplaceAll(strings.TrimSpace(s.cli(t, "", args...)), " ", "")
		s.secrets = append(s.secrets, w6Secret{fmt.Sprintf("app password %d of %s", i, user), user, typed, ""})
		secrets = append(secrets, typed)
	}
	var aps []authstore.AppPassword
	if err := json.Unmarshal([]byte(s.cli(t, "", "app-password", "list", user, "--json")), &aps); err != nil {
		t.Fatalf("app-password list: %v", err)
	}
	byName := map[string]string{}
	for _, ap := range aps {
		byName[ap.Name] = ap.ID
	}
	for i := range scopes {
		ids = append(ids, byName[fmt.Sprintf("app %d", i)])
	}
	return secrets, ids
}
