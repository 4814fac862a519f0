package main

import (
	"encoding/json"
	"fmt"
	"strconv"
	"strings"
	"testing"

	"github.com/postern-dev/postern/authstore"
	"github.com/postern-dev/postern/internal/testpeer"
)

// TestServe_UpstreamPasswordFromTheCLI: with `postern serve` running in
// front of real Dovecot with login = "stored", an operator sets a user's
// upstream password with the CLI, through the control socket (the server
// holds the store), and the user's IMAP and POP3 logins reach Dovecot with
// it; cleared, they get "try again later". The password appears in no CLI
// output, listing, audit event or log line.
func TestServe_UpstreamPasswordFromTheCLI(t *testing.T) {
	t.Parallel()
	peer := startPeer(t, "erin")
	s := startServedWith(t, peer, e2eOptions{stored: true})
	account, upstream := "erin-account-password", peer.Users["erin"]
	s.secrets = append(s.secrets, w6Secret{"account password of erin", "erin", account, ""},
		w6Secret{"upstream password of erin", "erin", upstream, ""})
	s.cli(t, account+"\n", "user", "add", "erin", "--password-stdin")
	if got := s.imapTry(t, "erin", account); got != imapTempErr {
		t.Errorf("IMAP login before an upstream password is set: %q, want %q", got, imapTempErr)
	}

	var outputs []string
	out := s.cli(t, upstream+"\n", "user", "upstream-password", "set", "erin", "--password-stdin")
	if strings.TrimSpace(out) != "upstream password set for erin" {
		t.Errorf("upstream-password set printed %q", out)
	}
	outputs = append(outputs, out)

	c, _ := s.dialIMAP(t)
	if err := c.Login("erin", account).Wait(); err != nil {
		t.Fatalf("IMAP login with the stored upstream password: %v", err)
	}
	if _, err := c.Select("INBOX", nil).Wait(); err != nil {
		t.Fatalf("SELECT INBOX on Dovecot: %v", err)
	}
	pop := s.dialPOP3(t)
	if got := pop.pop3Login("erin", account); !strings.HasPrefix(got, "+OK") {
		t.Errorf("POP3 login with the stored upstream password: %q", got)
	}
	pop.conn.Close()

	show := s.cli(t, "", "user", "show", "erin", "--json")
	var u authstore.User
	if err := json.Unmarshal([]byte(show), &u); err != nil || !u.HasUpstreamPassword {
		t.Errorf("user show: %v %s", err, show)
	}
	outputs = append(outputs, show, s.cli(t, "", "user", "show", "erin"), s.cli(t, "", "user", "list", "--json"))

	outputs = append(outputs, s.cli(t, "", "user", "upstream-password", "clear", "erin"))
	if got := s.imapTry(t, "erin", account); got != imapTempErr {
		t.Errorf("IMAP login after clearing it: %q, want %q", got, imapTempErr)
	}

	tail := s.cli(t, "", "audit", "tail", "-n", "50", "--json")
	var evs []authstore.Event
	if err := json.Unmarshal([]byte(tail), &evs); err != nil {
		t.Fatal(err)
	}
	byCLI := 0
	for _, e := range evs {
		if e.Kind == "user.upstream_password" && e.User == "erin" && e.Actor == cliActor() {
			byCLI++
		}
	}
	if byCLI != 2 {
		t.Errorf("audit: %d user.upstream_password events by %s, want 2 (set, clear):\n%s", byCLI, cliActor(), tail)
	}
	for what, text := range map[string]string{"CLI output": strings.Join(outputs, "\n"), "audit": tail, "log": s.log.String()} {
		if strings.Contains(text, upstream) {
			t.Errorf("the upstream password appears in the %s:\n%s", what, text)
		}
	}
}

// dialPOP3 connects to the served POP3 listener with implicit TLS and
// reads the greeting.
func (s *served) dialPOP3(t *testing.T) *wire {
	t.Helper()
	w := s.dialTLS(t, "pop3s")
	w.expect("+OK")
	return w
}

// e2eLogin is how an upstream section of e2eConfigText logs in: as the
// peer's master user, or with each user's stored upstream password.
func e2eLogin(opts e2eOptions, peer *testpeer.DovecotPeer, masterFile string) string {
	if opts.stored {
		return `login = "stored"`
	}
	q := strconv.Quote
	return fmt.Sprintf("login = \"master\"\nmaster_user = %s\nmaster_password_file = %s", q(peer.MasterUser), q(masterFile))
}
