package pop3

import (
	"context"
	"crypto/tls"
	"errors"
	"testing"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/internal/testpeer"
)

const (
	testAccountURL = "https://mail.example.test/account"
	// testFailure is spelled out rather than built, so that a change of the
	// answer shows up as a failing test.
	testFailure = "-ERR [AUTH] Authentication failed. Mail apps need an app password: https://mail.example.test/account"
)

// testCerts is a throwaway self-signed certificate for localhost.
type testCerts struct {
	server *tls.Config
	client *tls.Config
}

func newTestCerts(t *testing.T) testCerts {
	t.Helper()
	server, client := testpeer.TLS(t)
	client.ServerName = "localhost"
	return testCerts{server: server, client: client}
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
	c.ExpectLines(replyGreeting)
	return c, s
}

// quit asserts the client ended pre-auth with QUIT.
func quit(t *testing.T, s *fronttest.Session) {
	t.Helper()
	if err := s.Result(t); !errors.Is(err, errQuit) {
		t.Errorf("ReadLogin error = %v, want errQuit", err)
	}
}

// quitWithoutLogin asserts the client quit and no login was handed over.
func quitWithoutLogin(t *testing.T, s *fronttest.Session) {
	t.Helper()
	quit(t, s)
	if n := s.Pending(); n != 0 {
		t.Errorf("%d logins returned, want none", n)
	}
}
