package smtp

import (
	"context"
	"encoding/base64"
	"errors"
	"testing"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/proxy"
)

const (
	testAccountURL = "https://mail.example.test/account"
	testHost       = "mx.example.test"
	testGreeting   = "220 mx.example.test ESMTP postern"
)

// testFailure is spelled out rather than built, so that a change of the
// answer shows up as a failing test.
var testFailure = []string{
	"535-5.7.8 Authentication credentials invalid",
	"535 5.7.8 Mail apps need an app password: https://mail.example.test/account",
}

// postfixEHLO is what the private Postfix answers EHLO with, as the probe
// would read it.
var postfixEHLO = []string{
	"250-mail.example.test", "250-PIPELINING", "250-SIZE 10240000", "250-VRFY", "250-ETRN",
	"250-STARTTLS", "250-AUTH PLAIN LOGIN", "250-XCLIENT NAME ADDR PROTO HELO REVERSE_NAME PORT LOGIN DESTADDR DESTPORT",
	"250-ENHANCEDSTATUSCODES", "250-8BITMIME", "250-DSN", "250-SMTPUTF8", "250 CHUNKING",
}

func b64(s string) string { return base64.StdEncoding.EncodeToString([]byte(s)) }

func testConfig(t testing.TB) Config {
	t.Helper()
	ext, err := ParseEHLO(postfixEHLO)
	if err != nil {
		t.Fatal(err)
	}
	return Config{Adapter: proxy.Adapter{AccountURL: testAccountURL}, Hostname: testHost, Upstream: ext}
}

// startSession drives a front-end of cfg over loopback TCP and returns the
// client side, already past the greeting.
func startSession(t *testing.T, cfg Config, mode fronttest.Mode) (*fronttest.Client, *fronttest.Session) {
	t.Helper()
	return startSessionContext(t.Context(), t, cfg, mode)
}

// startSessionContext is startSession with ctx as ReadLogin's context.
func startSessionContext(ctx context.Context, t *testing.T, cfg Config, mode fronttest.Mode) (*fronttest.Client, *fronttest.Session) {
	t.Helper()
	c, s := fronttest.DriveFrontend(ctx, t, New(cfg), mode)
	c.ExpectLines(testGreeting)
	return c, s
}

// quit asserts the client ended pre-auth with QUIT and no login was handed
// over.
func quit(t *testing.T, s *fronttest.Session) {
	t.Helper()
	if err := s.Result(t); !errors.Is(err, ErrQuit) {
		t.Errorf("ReadLogin error = %v, want ErrQuit", err)
	}
	if n := s.Pending(); n != 0 {
		t.Errorf("%d logins returned, want none", n)
	}
}

// ehlo sends EHLO and reads the whole answer.
func ehlo(c *fronttest.Client) []string {
	return c.Transact("EHLO client.example", "250 ", "250 ")
}
