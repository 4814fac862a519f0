package pop3_test

import (
	"context"
	"fmt"
	"strings"
	"testing"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/internal/memimap"
	"github.com/postern-dev/postern/internal/mempop3"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/pop3"
)

// TestRelayOverMempop3: a client logs in through a real session (implicit
// TLS) to the in-process POP3 server with the user's stored password and
// reads the demo mailbox over the relayed connection.
func TestRelayOverMempop3(t *testing.T) {
	mem, err := mempop3.Start("127.0.0.1:0", map[string]string{"alice": "upstream-pw"}, func(u string) ([][]byte, error) {
		return memimap.SeedMessages(u), nil
	})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	stored := func(context.Context, string) (string, error) { return "upstream-pw", nil }
	front := fronttest.Start(t, proxy.ServerConfig{
		Protocol: pop3.New(pop3.Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: stored}}),
		Auth:     fronttest.GrantAll{}, ImplicitTLS: true,
		Upstream: proxy.Upstream{Address: mem.Addr(), Security: proxy.None},
	})
	c := front.Dial(t)
	c.Expect("+OK")
	c.Transact("USER alice", "", "+OK")
	c.Transact("PASS app-password", "", "+OK")
	stat := c.Transact("STAT", "", "+OK ")
	if n := len(memimap.SeedMessages("alice")); !strings.HasPrefix(stat[0], fmt.Sprintf("+OK %d ", n)) {
		t.Errorf("STAT %q, want %d messages", stat, n)
	}
	c.Transact("RETR 1", "", "+OK")
	retr := c.ReadUntil(".")
	if !strings.Contains(strings.Join(retr, "\n"), "Subject: Welcome to your mailbox") {
		t.Errorf("RETR 1: %q", retr)
	}
	c.Transact("QUIT", "", "+OK")
}
