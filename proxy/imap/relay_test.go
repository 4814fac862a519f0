package imap_test

import (
	"context"
	"strings"
	"testing"
	"time"

	"github.com/postern-dev/postern/internal/fronttest"
	"github.com/postern-dev/postern/internal/memimap"
	"github.com/postern-dev/postern/proxy"
	"github.com/postern-dev/postern/proxy/imap"
)

// TestRelayOverMemimap: a client logs in through a real session (implicit
// TLS) to the in-process IMAP server with the user's stored password and
// works on the relayed connection; a kick ends it with BYE within a second.
func TestRelayOverMemimap(t *testing.T) {
	mem, err := memimap.Start("127.0.0.1:0", map[string]string{"alice": "upstream-pw"})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { mem.Close() })
	reg := proxy.NewRegistry()
	stored := func(context.Context, string) (string, error) { return "upstream-pw", nil }
	front := fronttest.Start(t, proxy.ServerConfig{
		Protocol: imap.New(imap.Config{UpstreamCredential: proxy.UpstreamCredential{UpstreamPassword: stored}}),
		Auth:     fronttest.GrantAll{}, Registry: reg, ImplicitTLS: true,
		Upstream: proxy.Upstream{Address: mem.Addr(), Security: proxy.None},
	})
	c := front.Dial(t)
	c.Expect("* OK [CAPABILITY ")
	c.Transact("a LOGIN alice app-password", "a ", "a OK [CAPABILITY ")
	sel := c.Transact("b SELECT INBOX", "b ", "b OK")
	if !strings.Contains(strings.Join(sel, "\n"), "EXISTS") {
		t.Errorf("SELECT answered %q", sel)
	}
	c.Transact("c NOOP", "c ", "c OK")
	if n := reg.Kick(proxy.Filter{Username: "alice"}, "credentials changed"); n != 1 {
		t.Fatalf("kick ended %d sessions", n)
	}
	c.Expect("* BYE")
	if !c.ClosedWithin(time.Second) {
		t.Error("the kicked session stayed open")
	}
}
