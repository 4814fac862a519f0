package main

import (
	"fmt"
	"io"
	"net/http"
	"regexp"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/smtpclient"
)

// TestE2E_SMTPClients: every client a person is likely to use (swaks,
// msmtp, curl with smtps:// and with smtp:// --ssl-reqd, Python's smtplib,
// go-smtp) sends through `postern serve`, on the implicit-TLS listener and
// the STARTTLS one, with PLAIN and with LOGIN, to real Postfix, using an app
// password made with the CLI. Each message arrives from the app password's
// user (Postfix's Received header says "Authenticated sender: alice"), and
// Postfix's log names the client's own address (each send comes from its
// own loopback address), which only XCLIENT could have told it: postern
// itself connects from 127.0.0.1.
func TestE2E_SMTPClients(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "alice")
	pf := startPostfix(t, peer, "")
	s := startServedWith(t, peer, e2eOptions{smtp: e2eSMTP{postfix: pf}})
	for _, l := range []string{"smtps", "smtp"} {
		if !regexp.MustCompile(`msg=listening protocol=smtp listener=` + l + ` addr=127\.0\.0\.1:\d+`).MatchString(s.log.String()) {
			t.Fatalf("serve did not log its %s listener:\n%s", l, s.log)
		}
	}
	secrets, _ := s.addSMTPUser(t, "alice", "")
	n := 10
	for _, client := range smtpclient.All() {
		for _, listener := range []string{"smtps", "smtp"} {
			for _, mech := range []string{"PLAIN", "LOGIN"} {
				src := fmt.Sprintf("127.0.0.%d", n)
				n++
				t.Run(client.Name+"/"+listener+"/"+mech, func(t *testing.T) {
					send := s.send(listener, "alice", secrets[0], client.Name+" "+listener+" "+mech)
					send.Mech, send.Source = mech, src
					client.Send(t, send)
					if got := pf.WaitMessage(t, send.Subject); !strings.Contains(got, "(Authenticated sender: alice)") {
						t.Errorf("the message does not name alice as its authenticated sender:\n%s", got)
					}
					logged := regexp.MustCompile(`client=unknown\[` + regexp.QuoteMeta(src) + `\]:\d+, sasl_method=XCLIENT, sasl_username=alice\n`)
					pf.WaitLogFunc(t, logged.String(), logged.MatchString)
				})
			}
		}
	}
}

// TestSMTP_WhoMaySend: over SMTP as over IMAP, the account password of a
// user with two-step verification opens nothing (A8), and an
// app password serves only its scopes: one made for IMAP alone after the
// store gained the smtp scope cannot send, and one made for sending alone
// (a scanner's) sends but cannot read mail. Every refusal is the one 535
// answer (A9). Before any login, the EHLO answer offers Postfix's own
// message size limit, which the start-up probe read.
func TestSMTP_WhoMaySend(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "alice")
	pf := startPostfix(t, peer, "message_size_limit = 7000000")
	e := startE2E(t, peer, e2eOptions{users: []string{"alice"}, totp: []string{"alice"}, smtp: e2eSMTP{postfix: pf}})
	alice := e.account("alice")
	eventually(t, "the EHLO answer to offer Postfix's SIZE", func() bool {
		w := e.smtpWire(t, "smtps", "")
		defer w.conn.Close()
		w.send("EHLO client.example")
		return strings.Contains(w.reply(), "250-SIZE 7000000\r\n")
	})
	imapOnly := e.scopedAppPassword(t, "alice", authstore.IMAP)
	smtpOnly := e.scopedAppPassword(t, "alice", authstore.SMTP)

	for name, secret := range map[string]string{
		"account password of a two-step user": alice.password,
		"IMAP-only app password":              imapOnly,
		"wrong secret":                        "abcdefghijklmnopqrstuvwx",
	} {
		if got := e.smtpTry(t, alice.name, secret); got != smtpFailure {
			t.Errorf("%s: %q, want %q", name, got, smtpFailure)
		}
	}
	if got := e.smtpTry(t, "nobody", alice.appPassword); got != smtpFailure {
		t.Errorf("unknown user: %q, want %q", got, smtpFailure)
	}
	if got := e.imapTry(t, "", alice.name, smtpOnly); got != imapFailure {
		t.Errorf("SMTP-only app password on IMAP: %q, want %q", got, imapFailure)
	}
	if got := e.imapTry(t, "", alice.name, imapOnly); !strings.HasPrefix(got, "a OK ") {
		t.Errorf("IMAP-only app password on IMAP: %q", got)
	}
	for listener, secret := range map[string]string{"smtps": smtpOnly, "smtp": alice.appPassword} {
		send := e.send(listener, alice.name, secret, "sent on "+listener)
		smtpclient.GoSMTP().Send(t, send)
		if got := pf.WaitMessage(t, send.Subject); !strings.Contains(got, "(Authenticated sender: alice)") {
			t.Errorf("the message does not name alice as its authenticated sender:\n%s", got)
		}
	}
}

// scopedAppPassword makes an app password for the scopes alone and returns
// it as typed.
func (e *e2e) scopedAppPassword(t *testing.T, user string, scopes ...authstore.Protocol) string {
	t.Helper()
	ap, grouped, err := e.g.store.CreateAppPassword(e2eCtx(), user, authstore.NewAppPassword{Name: "limited", Scopes: scopes})
	if err != nil {
		t.Fatal(err)
	}
	typed := strings.ReplaceAll(grouped, " ", "")
	e.extraSecrets = append(e.extraSecrets, w6Secret{"app password " + ap.ID + " of " + user, user, typed, ""})
	return typed
}

// TestP10_SMTPRevokeDuringData: `postern app-password revoke`, run against
// a live `postern serve`, ends the SMTP sessions of that app password within
// a second: one in the middle of a message's DATA is cut without a word (a
// 421 there would read as message data), and the message never arrives;
// one between commands is told 421 first. The password is refused from
// then on, while the user's other app password still sends.
func TestP10_SMTPRevokeDuringData(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "carol")
	pf := startPostfix(t, peer, "")
	s := startServedWith(t, peer, e2eOptions{smtp: e2eSMTP{postfix: pf}})
	secrets, ids := s.addSMTPUser(t, "carol", "", "smtp")

	idle := s.smtpWire(t)
	if got := idle.smtpAuth("carol", secrets[0]); !strings.HasPrefix(got, "235 ") {
		t.Fatalf("AUTH: %q", got)
	}
	data := s.smtpWire(t)
	if got := data.smtpAuth("carol", secrets[0]); !strings.HasPrefix(got, "235 ") {
		t.Fatalf("AUTH: %q", got)
	}
	data.send("MAIL FROM:<carol@example.test>", "RCPT TO:<dana@example.test>", "DATA")
	data.expect("250 ")
	data.expect("250 ")
	data.expect("354 ")
	if err := <-streamMessage(data, "Subject: cut short\r\n\r\n", 4<<20); err != nil {
		t.Fatalf("the first 4 MB of the message: %v", err)
	}
	start := time.Now()
	s.cli(t, "", "app-password", "revoke", "carol", ids[0])
	if got := data.closedWithin(start, kickLimit); got != "" {
		t.Errorf("the session cut in DATA was sent %q", got)
	}
	if got := idle.closedWithin(start, kickLimit); !strings.HasPrefix(got, "421 4.7.0 ") {
		t.Errorf("the session between commands was sent %q, want a 421", got)
	}
	// Once the other password's message arrived, the cut one would have too.
	control := s.send("smtps", "carol", secrets[1], "after the revocation")
	smtpclient.GoSMTP().Send(t, control)
	pf.WaitMessage(t, control.Subject)
	for _, m := range pf.Delivered(t) {
		if strings.Contains(m, "Subject: cut short") {
			t.Fatalf("the message cut in DATA was delivered")
		}
	}
	if got := s.smtpWire(t).smtpAuth("carol", secrets[0]); got != smtpFailure {
		t.Errorf("AUTH with the revoked app password: %q, want %q", got, smtpFailure)
	}
}

// streamMessage writes message data on w from another goroutine, after
// header, until a write fails. The returned channel gets nil once n bytes
// were written, or the error that stopped the writes before.
func streamMessage(w *wire, header string, n int) <-chan error {
	written := make(chan error, 1)
	go func() {
		line := []byte(strings.Repeat("x", 998) + "\r\n")
		w.conn.SetWriteDeadline(time.Now().Add(e2eIO))
		total, err := io.WriteString(w.conn, header)
		for err == nil && total < n {
			var k int
			k, err = w.conn.Write(line)
			total += k
		}
		written <- err
		for err == nil {
			_, err = w.conn.Write(line)
		}
	}()
	return written
}

// TestStartup_SMTPUpstreamWithoutXClient: a Postfix that does not trust
// postern's address hides XCLIENT from it. The start-up probe says so with
// the key to change and the Postfix setting, /readyz names upstream.smtp,
// a client is told to try later (454, not 535: the password was right),
// and the refused login is logged as a configuration error naming the
// same, once.
func TestStartup_SMTPUpstreamWithoutXClient(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "frank")
	pf := startPostfix(t, peer, "smtpd_authorized_xclient_hosts =")
	e := startE2E(t, peer, e2eOptions{users: []string{"frank"}, smtp: e2eSMTP{postfix: pf}})
	eventually(t, "the probe's warning", func() bool {
		return strings.Contains(e.logs.String(), `msg="upstream probe failed" key=upstream.smtp`)
	})
	warning := regexp.MustCompile(`level=WARN msg="upstream probe failed" key=upstream\.smtp .*problem=".*upstream\.smtp\.login: ` +
		`the upstream does not offer XCLIENT to postern's address: add it to Postfix's smtpd_authorized_xclient_hosts`)
	if !warning.MatchString(e.logs.String()) {
		t.Errorf("the probe's warning does not name the key and the setting:\n%s", e.logs)
	}
	if code, failing := e.readyz(t); code != http.StatusServiceUnavailable || !slices.Equal(failing, []string{"upstream.smtp"}) {
		t.Errorf("/readyz: %d %v", code, failing)
	}
	frank := e.account("frank")
	for range 3 {
		if got := e.smtpTry(t, frank.name, frank.appPassword); got != smtpTempErr {
			t.Fatalf("AUTH through an upstream that refuses XCLIENT: %q, want %q", got, smtpTempErr)
		}
	}
	refused := regexp.MustCompile(`level=ERROR msg="the upstream refused postern's XCLIENT login; check upstream\.smtp\.login ` +
		`and that the upstream trusts postern's address \(Postfix: smtpd_authorized_xclient_hosts\)"`)
	if n := len(refused.FindAllString(e.logs.String(), -1)); n != 1 {
		t.Errorf("%d errors for the refused XCLIENT login, want 1:\n%s", n, e.logs)
	}
}

// TestE2E_SMTPMasterLogin: with login = "master", postern logs in to
// Postfix with AUTH PLAIN as Dovecot's master user on the user's behalf,
// and Postfix takes the message as the user's.
func TestE2E_SMTPMasterLogin(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "grace")
	pf := startPostfix(t, peer, "")
	e := startE2E(t, peer, e2eOptions{users: []string{"grace"}, smtp: e2eSMTP{postfix: pf, master: true}})
	grace := e.account("grace")
	send := e.send("smtp", grace.name, grace.appPassword, "through a master login")
	smtpclient.GoSMTP().Send(t, send)
	if got := pf.WaitMessage(t, send.Subject); !strings.Contains(got, "(Authenticated sender: grace)") {
		t.Errorf("the message does not name grace as its authenticated sender:\n%s", got)
	}
	pf.WaitLog(t, "sasl_method=PLAIN, sasl_username=grace")
	if strings.Contains(pf.Log(t), "sasl_method=XCLIENT") {
		t.Error("postern used XCLIENT with login = \"master\"")
	}
}
