package imap

import (
	"errors"
	"fmt"
	"testing"
	"time"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/proxy"
)

func TestReject(t *testing.T) {
	tests := []struct {
		name       string
		accountURL string
		err        error
		want       string
	}{
		{"unauthorized", testAccountURL, authstore.ErrUnauthorized, "a " + failureText},
		{"throttled", testAccountURL, authstore.ErrThrottled, "a " + failureText},
		{"wrapped throttled", testAccountURL, fmt.Errorf("authenticate: %w", authstore.ErrThrottled), "a " + failureText},
		{"no account url", "", authstore.ErrUnauthorized, "a NO [AUTHENTICATIONFAILED] Authentication failed. Mail apps need an app password."},
		{"url with CRLF", "https://x.example/\r\n* OK forged", authstore.ErrUnauthorized,
			"a NO [AUTHENTICATIONFAILED] Authentication failed. Mail apps need an app password: https://x.example/* OK forged"},
		{"store unavailable", testAccountURL, authstore.ErrUnavailable, "a NO [UNAVAILABLE] Temporary failure, try again later"},
		{"upstream", testAccountURL, fmt.Errorf("dial: %w", proxy.ErrUpstream), "a NO [UNAVAILABLE] Temporary failure, try again later"},
		{"unknown error", testAccountURL, errors.New("boom"), "a NO [UNAVAILABLE] Temporary failure, try again later"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, New(Config{Adapter: proxy.Adapter{AccountURL: tt.accountURL}}), fronttest.Implicit)
			c.Write("a LOGIN alice secret\r\n")
			c.s.Login(t)
			c.s.Decide(t, fronttest.Decision{Err: tt.err})
			if got := c.Line(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			// The dialogue goes on after a failed login.
			c.transact("b NOOP\r\n", "b OK NOOP completed")
			c.noLogin()
		})
	}
}

func TestAccept(t *testing.T) {
	grace := time.Date(2026, 7, 1, 0, 0, 0, 0, time.UTC)
	tests := []struct {
		name  string
		caps  []string
		grant authstore.Grant
		want  []string
	}{
		{"capabilities", []string{"IMAP4rev1", "IDLE", "MOVE"}, authstore.Grant{Username: "alice"},
			[]string{"a OK [CAPABILITY IMAP4rev1 IDLE MOVE] Logged in"}},
		{"no capabilities", nil, authstore.Grant{}, []string{"a OK Logged in"}},
		{"hostile capabilities dropped", []string{"IMAP4rev1", "X]Y", "A\r\nB", "", "Ü"}, authstore.Grant{},
			[]string{"a OK [CAPABILITY IMAP4rev1] Logged in"}},
		{"grace period", []string{"IMAP4rev1"}, authstore.Grant{GraceUntil: grace}, []string{
			"* OK [ALERT] Two-step verification will be required from 2026-07-01: create an app password at " + testAccountURL,
			"a OK [CAPABILITY IMAP4rev1] Logged in",
		}},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			c := newClient(t, testProtocol(), fronttest.Implicit)
			c.Write("a LOGIN alice secret\r\n")
			c.s.Login(t)
			c.s.Decide(t, fronttest.Decision{Upstream: proxy.UpstreamResult{Capabilities: tt.caps}, Grant: tt.grant})
			for _, w := range tt.want {
				if got := c.Line(); got != w {
					t.Fatalf("got %q, want %q", got, w)
				}
			}
		})
	}
}

func TestGraceAlertWithoutURL(t *testing.T) {
	got := graceAlert(time.Date(2026, 7, 1, 23, 0, 0, 0, time.FixedZone("x", -3*3600)), "").line("")
	want := "* OK [ALERT] Two-step verification will be required from 2026-07-02: create an app password\r\n"
	if got != want {
		t.Fatalf("got %q, want %q", got, want)
	}
}

func TestBye(t *testing.T) {
	tests := []struct {
		reason, want string
	}{
		{"Server shutting down", "* BYE Server shutting down"},
		{"Session ended\r\nx OK forged", "* BYE Session endedx OK forged"},
	}
	for _, tt := range tests {
		t.Run(tt.want, func(t *testing.T) {
			c := newClient(t, testProtocol(), fronttest.Implicit)
			// ReadLogin is blocked in a read while Bye writes.
			c.s.Bye(tt.reason)
			if got := c.Line(); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
			c.noLogin()
		})
	}
}

func TestCapabilities(t *testing.T) {
	tests := []struct {
		name        string
		upstream    []string
		secure, tls bool
		want        string
	}{
		{"cleartext with starttls", []string{"IMAP4rev2"}, false, true, "IMAP4rev1 STARTTLS LOGINDISABLED"},
		{"cleartext only", nil, false, false, "IMAP4rev1 LOGINDISABLED"},
		{"tls, upstream unknown", nil, true, false, tlsCaps},
		{"tls, upstream rev1", []string{"IMAP4rev1", "SASL-IR"}, true, false, tlsCaps},
		{"tls, upstream rev2", []string{"IMAP4rev1", "imap4rev2"}, true, false, "IMAP4rev1 IMAP4rev2 SASL-IR LITERAL- ID AUTH=PLAIN AUTH=LOGIN"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			p := testProtocol()
			if tt.upstream != nil {
				p.rememberUpstream(tt.upstream)
			}
			if got := p.capabilities(tt.secure, tt.tls); got != tt.want {
				t.Fatalf("got %q, want %q", got, tt.want)
			}
		})
	}
}
