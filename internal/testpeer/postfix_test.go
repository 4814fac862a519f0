package testpeer

import (
	"errors"
	"fmt"
	"strings"
	"testing"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"

	"github.com/postern-dev/postern/internal/linetest"
)

// testMail is a small message from one address to another, with a subject
// that tells it apart.
func testMail(from, to, subject string) string {
	return fmt.Sprintf("From: <%s>\r\nTo: <%s>\r\nSubject: %s\r\n\r\nHello.\r\n", from, to, subject)
}

// submit sends one message over STARTTLS with a SASL client and returns
// the first error.
func submit(t *testing.T, p *PostfixPeer, auth sasl.Client, from, to, body string) error {
	t.Helper()
	c, err := smtp.DialStartTLS(p.Addr, p.ClientTLSConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if auth != nil {
		if err := c.Auth(auth); err != nil {
			return fmt.Errorf("auth: %w", err)
		}
	}
	if err := c.SendMail(from, []string{to}, strings.NewReader(body)); err != nil {
		return err
	}
	return c.Quit()
}

// TestPostfixSubmission: the private Postfix authenticates users and the
// Dovecot master user through Dovecot, delivers into its maildir with the
// authenticated sender in Received, and holds each user to its own
// addresses.
func TestPostfixSubmission(t *testing.T) {
	t.Parallel()
	p := Postfix(t, PostfixOptions{})
	d := p.Dovecot
	tests := []struct {
		name     string
		auth     sasl.Client
		from     string
		wantCode int // 0: delivered
	}{
		{"alice", sasl.NewPlainClient("", "alice", d.Users["alice"]), "alice@example.test", 0},
		{"master user acting as bob", sasl.NewPlainClient("bob", d.MasterUser, d.MasterPassword), "bob@example.test", 0},
		{"alice as bob", sasl.NewPlainClient("", "alice", d.Users["alice"]), "bob@example.test", 553},
		{"no authentication", nil, "alice@example.test", 553},
	}
	delivered := 0
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			err := submit(t, p, tt.auth, tt.from, "carol@example.test", testMail(tt.from, "carol@example.test", tt.name))
			var se *smtp.SMTPError
			switch {
			case tt.wantCode == 0 && err != nil:
				t.Fatalf("send: %v", err)
			case tt.wantCode != 0 && (!errors.As(err, &se) || se.Code != tt.wantCode):
				t.Fatalf("send: %v, want SMTP code %d", err, tt.wantCode)
			case tt.wantCode != 0:
				return
			}
			delivered++
			var got string
			for _, m := range p.WaitDelivered(t, delivered) {
				if strings.Contains(m, "Subject: "+tt.name+"\n") {
					got = m
				}
			}
			user, _, _ := strings.Cut(tt.from, "@")
			if !strings.Contains(got, "(Authenticated sender: "+user+")") {
				t.Errorf("delivered message %q:\n%s", tt.name, got)
			}
		})
	}
}

// TestPostfixXClient: from 127.0.0.1, XCLIENT LOGIN authenticates the
// session as that user and ADDR names the client in the log.
func TestPostfixXClient(t *testing.T) {
	t.Parallel()
	p := Postfix(t, PostfixOptions{})
	c := linetest.Dial(t, p.Addr, nil, false)
	c.Expect("220 ")
	c.Transact("EHLO proxy.example", "250 ", "250 ")
	c.Transact("XCLIENT LOGIN=alice ADDR=203.0.113.5 PORT=4242 NAME=[UNAVAILABLE] HELO=phone.example PROTO=ESMTP", "220 ", "220 ")
	c.Transact("EHLO phone.example", "250 ", "250 ")
	c.Transact("MAIL FROM:<alice@example.test>", "250 ", "250 ")
	c.Transact("RCPT TO:<carol@example.test>", "250 ", "250 ")
	c.Transact("DATA", "354 ", "354 ")
	c.Send(testMail("alice@example.test", "carol@example.test", "xclient"), ".")
	c.Expect("250 ")
	c.Transact("QUIT", "221 ", "221 ")
	p.WaitLog(t, "client=unknown[203.0.113.5]:4242, sasl_method=XCLIENT, sasl_username=alice")
	if got := p.WaitDelivered(t, 1)[0]; !strings.Contains(got, "(Authenticated sender: alice)") || !strings.Contains(got, "from phone.example") {
		t.Errorf("delivered message:\n%s", got)
	}
}

// TestPostfixImplicitTLS: the second smtpd speaks TLS from the first byte
// with the instance's certificate and takes the same logins.
func TestPostfixImplicitTLS(t *testing.T) {
	t.Parallel()
	p := Postfix(t, PostfixOptions{})
	c, err := smtp.DialTLS(p.TLSAddr, p.ClientTLSConfig())
	if err != nil {
		t.Fatalf("dial: %v", err)
	}
	defer c.Close()
	if err := c.Auth(sasl.NewPlainClient("", "alice", p.Dovecot.Users["alice"])); err != nil {
		t.Fatalf("auth: %v", err)
	}
	if err := c.SendMail("alice@example.test", []string{"carol@example.test"},
		strings.NewReader(testMail("alice@example.test", "carol@example.test", "implicit TLS"))); err != nil {
		t.Fatalf("send: %v", err)
	}
	p.WaitMessage(t, "implicit TLS")
}
